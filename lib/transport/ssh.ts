/**
 * SshHost: the Host interface over SSH (ssh2), for BMCs and nodes.
 *
 * Guarantees:
 * - Host key pinning. With a pin (an OpenSSH public key line) the server's key blob must equal the
 *   pin's blob byte for byte; otherwise the connection is refused with HostKeyMismatchError showing both
 *   SHA256 fingerprints and how to update the pin. Without a pin the connection is refused unless the
 *   caller passes `acceptNewHostKey: true` (only right after our own flash of that node); the key seen
 *   is available as `hostKeySeen` so the caller records it. Reconnections pin the key seen first.
 * - Auth with a private key given as a string (a secret; never written to disk or argv) or the SSH
 *   agent (`agent` or SSH_AUTH_SOCK).
 * - Connect retries with exponential backoff within a bounded total time (`retryForMs`); host key and
 *   authentication failures are not retried. Keepalives detect dead peers. Every operation has a
 *   timeout (Pulumi's customTimeouts do not reach dynamic providers).
 * - Remote commands are argv arrays quoted once by ./argv.ts.
 * - Uploads (`cat` over an exec channel by default, or pipelined SFTP) skip unchanged files, resume
 *   `<path>.partial`, verify sha256 and rename atomically (./upload.ts). A connection lost during an
 *   upload is re-established and the upload resumed, up to `uploadAttempts` times.
 * - A non-root login (a node's deploy user) runs every command, upload, read and hash as root through
 *   `sudo -n` (./sudo.ts); sudo refusing (password required, no rights, not installed) throws SudoError
 *   with the fix. Root logins (BMCs) run commands directly.
 */
import { setTimeout as sleep } from "timers/promises";
import * as crypto from "crypto";
import * as fs from "fs";
import { Transform } from "stream";
import { pipeline } from "stream/promises";
import { Client, ClientChannel, ConnectConfig, SFTPWrapper } from "ssh2";
import { isOpenSshPublicKey } from "./syntax";
import { shellQuoteArgv } from "./argv";
import { Host, HostError, RunOptions, RunResult, TailBuffer, UploadOptions, UploadResult, checkResult, tailLines } from "./host";
import { uploadFile, UploadTarget } from "./upload";
import { SUDO_PREFIX, sudoFailure } from "./sudo";

export interface SshConnectOptions {
  host: string;
  port?: number;
  user?: string;
  /** Pinned host key, an OpenSSH public key line ("ssh-ed25519 AAAA... [comment]"). */
  hostKey?: string;
  /** Where the pin lives in config, for the mismatch message, e.g. "nodes[1].ssh.hostKey". */
  hostKeyConfigPath?: string;
  /** Accept an unknown host key (no pin). Only right after our own flash of this node. */
  acceptNewHostKey?: boolean;
  /** Private key text (OpenSSH or PEM). A secret: kept in memory only. */
  privateKey?: string | Buffer;
  passphrase?: string;
  /** SSH agent socket; defaults to SSH_AUTH_SOCK when no private key is given. */
  agent?: string;
  /** Per-attempt handshake timeout, ms (default 15 s). */
  connectTimeoutMs?: number;
  /** Keep retrying refused / unreachable / timed-out connects for this long, ms (default 60 s). */
  retryForMs?: number;
  /** First backoff delay, ms (default 250); doubles up to 5 s. */
  retryInitialDelayMs?: number;
  /** Keepalive interval, ms (default 10 s); the connection is dropped after 3 unanswered. */
  keepaliveIntervalMs?: number;
  /** Default timeout of `run`, `readFile` and `sha256`, ms (default 10 min). */
  operationTimeoutMs?: number;
  /** Attempts for one upload across lost connections (default 4). */
  uploadAttempts?: number;
  /** Transfer method for uploads: "exec" (default: `cat` over an exec channel, fastest) or "sftp" (pipelined SFTP writes; falls back to exec without an SFTP subsystem). */
  uploadMethod?: "sftp" | "exec";
  /**
   * Run every command (so every upload, readFile and sha256 too) as root through `sudo -n` (./sudo.ts).
   * Default: true for a non-root `user` (the deploy user of a node), false for root (a BMC).
   */
  sudo?: boolean;
}

/** "SHA256:<base64 without padding>" of a key blob, as `ssh-keygen -lf` prints it. */
export function sshFingerprint(blob: Buffer): string {
  return "SHA256:" + crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

/** Type and blob of an OpenSSH public key line. Throws when the line is not one. */
export function parseOpenSshPublicKey(line: string): { type: string; blob: Buffer } {
  if (!isOpenSshPublicKey(line)) throw new Error(`${JSON.stringify(line.slice(0, 60))} is not an OpenSSH public key line ("ssh-ed25519 AAAA...")`);
  const [type, b64] = line.trim().split(/\s+/);
  return { type, blob: Buffer.from(b64, "base64") };
}

/** The OpenSSH public key line ("<type> <base64>") of a wire-format key blob. */
export function openSshLineOf(blob: Buffer): string {
  const n = blob.readUInt32BE(0);
  return `${blob.subarray(4, 4 + n).toString("latin1")} ${blob.toString("base64")}`;
}

export class HostKeyMismatchError extends Error {
  constructor(
    readonly endpoint: string,
    readonly expected: string,
    readonly seen: string,
    readonly seenKey: string,
    configPath: string | undefined,
  ) {
    super(
      `host key mismatch for ${endpoint}: the pinned key has fingerprint ${expected} but the server presented ${seen} (${seenKey.split(" ")[0]}). ` +
        `Refusing to connect: this is either a man-in-the-middle or a re-installed host. If the host was legitimately re-flashed or re-keyed, ` +
        `check the new key out of band (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on its console) and update the pin ` +
        `${configPath ? `\`${configPath}\`` : "(`nodes[i].ssh.hostKey` or `bmcs[i].ssh.hostKey`)"} in the stack config to the new public key line, ` +
        `e.g. the output of \`ssh-keygen -lf\`-checked \`ssh-keyscan -t ed25519 -p <port> <address>\`: "${seenKey}".`,
    );
    this.name = "HostKeyMismatchError";
  }
}

export class UnknownHostKeyError extends Error {
  constructor(
    readonly endpoint: string,
    readonly seen: string,
    readonly seenKey: string,
    configPath: string | undefined,
  ) {
    super(
      `unknown host key for ${endpoint} (${seen}): no key is pinned, and unknown keys are only accepted right after this program flashed the node. ` +
        `Pin it: set ${configPath ? `\`${configPath}\`` : "`nodes[i].ssh.hostKey` (or `bmcs[i].ssh.hostKey`)"} to the host's public key line ` +
        `(check it out of band, then e.g. \`ssh-keyscan -t ed25519 -p <port> <address>\`): "${seenKey}".`,
    );
    this.name = "UnknownHostKeyError";
  }
}

export class SshAuthError extends Error {
  constructor(endpoint: string, how: string) {
    super(
      `authentication to ${endpoint} failed (${how}): make sure the deploy public key is in the user's authorized_keys on the host (baked into the image from \`authorizedKeys\`), and that the private key secret or ssh-agent holds the matching key`,
    );
    this.name = "SshAuthError";
  }
}

/** First stderr line of every remote command: its pid (see `run`). */
const PID_MARK = "isar-k3s-remote-pid:";

const RETRYABLE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EPIPE|EAI_AGAIN|Timed out while waiting for handshake|Connection lost before handshake|socket hang up|Not connected|No response from server/i;

function keyTypeAlgorithms(type: string): string[] {
  if (type === "ssh-rsa") return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"];
  return [type];
}

/** Open a connection (with retries) and return the SshHost. */
export async function connectSsh(opts: SshConnectOptions): Promise<SshHost> {
  const h = new SshHost(opts);
  await h.connect();
  return h;
}

export class SshHost implements Host {
  readonly label: string;
  /** The host key the server presented on the first successful connection (OpenSSH line). */
  hostKeySeen?: string;
  private client?: Client;
  private sftp?: SFTPWrapper;
  private connecting?: Promise<Client>;
  private closed = false;
  /** Count of connections lost or dropped so far (an upload retries when it changes under it). */
  private drops = 0;
  private readonly pin?: { type: string; blob: Buffer };

  constructor(private readonly opts: SshConnectOptions) {
    this.label = `${opts.user ?? "root"}@${opts.host}:${opts.port ?? 22}`;
    if (opts.hostKey !== undefined) {
      try {
        this.pin = parseOpenSshPublicKey(opts.hostKey);
      } catch (e) {
        throw new Error(`${opts.hostKeyConfigPath ?? "host key pin"} for ${this.label}: ${(e as Error).message}`, { cause: e });
      }
    }
    if (opts.privateKey === undefined && !(opts.agent ?? process.env.SSH_AUTH_SOCK)) {
      throw new Error(
        `no SSH credentials for ${this.label}: set the private key secret (e.g. \`pulumi config set --secret sshPrivateKey < key\`) or run an ssh-agent holding the deploy key (SSH_AUTH_SOCK)`,
      );
    }
  }

  /** Connect now (retrying within `retryForMs`). Later operations reconnect on demand. */
  async connect(): Promise<void> {
    await this.getClient();
  }

  private getClient(): Promise<Client> {
    if (this.closed) return Promise.reject(new HostError(`${this.label}: connection already closed`, this.label));
    if (this.client) return Promise.resolve(this.client);
    if (!this.connecting) {
      this.connecting = this.connectWithRetries().finally(() => {
        this.connecting = undefined;
      });
    }
    return this.connecting;
  }

  private async connectWithRetries(): Promise<Client> {
    const deadline = Date.now() + (this.opts.retryForMs ?? 60_000);
    let delay = this.opts.retryInitialDelayMs ?? 250;
    let attempt = 0;
    for (;;) {
      attempt++;
      try {
        const perAttempt = Math.max(1000, Math.min(this.opts.connectTimeoutMs ?? 15_000, deadline - Date.now()));
        return await this.connectOnce(perAttempt);
      } catch (e) {
        const msg = (e as Error).message;
        const retryable =
          !(e instanceof HostKeyMismatchError || e instanceof UnknownHostKeyError || e instanceof SshAuthError) &&
          RETRYABLE.test(msg + " " + ((e as NodeJS.ErrnoException).code ?? ""));
        if (!retryable || Date.now() + delay > deadline) {
          if (!retryable) throw e;
          throw new HostError(
            `cannot connect to ${this.label} after ${attempt} attempts over ${this.opts.retryForMs ?? 60_000} ms: ${msg}. Check that the host is up and the address/port in the stack config are right`,
            this.label,
          );
        }
        await sleep(delay * (0.75 + Math.random() * 0.5));
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private connectOnce(timeoutMs: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const c = new Client();
      let verdict: Error | undefined;
      let settled = false;
      const endpoint = `${this.opts.host}:${this.opts.port ?? 22}`;
      const pin = this.pin ?? (this.hostKeySeen ? parseOpenSshPublicKey(this.hostKeySeen) : undefined);
      const hostVerifier = (blob: Buffer): boolean => {
        const seenLine = openSshLineOf(blob);
        if (pin) {
          if (pin.blob.equals(blob)) {
            this.hostKeySeen ??= seenLine;
            return true;
          }
          verdict = new HostKeyMismatchError(endpoint, sshFingerprint(pin.blob), sshFingerprint(blob), seenLine, this.opts.hostKeyConfigPath);
          return false;
        }
        if (this.opts.acceptNewHostKey) {
          this.hostKeySeen = seenLine;
          return true;
        }
        verdict = new UnknownHostKeyError(endpoint, sshFingerprint(blob), seenLine, this.opts.hostKeyConfigPath);
        return false;
      };
      const cfg: ConnectConfig = {
        host: this.opts.host,
        port: this.opts.port ?? 22,
        username: this.opts.user ?? "root",
        readyTimeout: timeoutMs,
        keepaliveInterval: this.opts.keepaliveIntervalMs ?? 10_000,
        keepaliveCountMax: 3,
        hostVerifier,
      };
      if (pin) cfg.algorithms = { serverHostKey: keyTypeAlgorithms(pin.type) as NonNullable<ConnectConfig["algorithms"]>["serverHostKey"] };
      if (this.opts.privateKey !== undefined) {
        cfg.privateKey = this.opts.privateKey;
        if (this.opts.passphrase !== undefined) cfg.passphrase = this.opts.passphrase;
      } else cfg.agent = this.opts.agent ?? process.env.SSH_AUTH_SOCK;
      c.on("ready", () => {
        settled = true;
        this.client = c;
        this.sftp = undefined;
        resolve(c);
      });
      c.on("error", (err: Error & { level?: string }) => {
        if (!settled) {
          settled = true;
          c.end();
          if (verdict) reject(verdict);
          else if (err.level === "client-authentication") reject(new SshAuthError(endpoint, this.opts.privateKey !== undefined ? "private key" : "ssh-agent"));
          else reject(err);
        }
      });
      c.setMaxListeners(0); // one "close" listener per concurrent operation
      c.on("close", () => {
        if (this.client === c) {
          this.client = undefined;
          this.sftp = undefined;
          this.drops++;
        }
        if (!settled) {
          settled = true;
          reject(verdict ?? new Error("Connection lost before handshake"));
        }
      });
      try {
        c.connect(cfg);
      } catch (e) {
        settled = true;
        reject(e);
      }
    });
  }

  private dropConnection(c: Client): void {
    if (this.client === c) {
      this.client = undefined;
      this.sftp = undefined;
      this.drops++;
    }
    // destroy the socket outright: a graceful end() would wait for a peer that may be hung
    c.destroy();
    (c as unknown as { _sock?: { destroy(): void } })._sock?.destroy();
  }

  /** Commands run as root through `sudo -n` (see SshConnectOptions.sudo). */
  get sudo(): boolean {
    return this.opts.sudo ?? (this.opts.user ?? "root") !== "root";
  }

  async run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    const res = await this.exec(argv, opts);
    const refused = this.sudo ? sudoFailure(this.label, this.opts.user ?? "root", argv, res) : undefined;
    if (refused) throw refused;
    return res;
  }

  private async exec(argv: string[], opts: RunOptions): Promise<RunResult> {
    let full = argv;
    if (opts.env && Object.keys(opts.env).length) {
      for (const k of Object.keys(opts.env))
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`environment variable name ${JSON.stringify(k)} is not valid`);
      full = ["env", ...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`), ...argv];
    }
    // after env: sudo resets the environment, `env` then sets the caller's variables for the command
    if (this.sudo) full = [...SUDO_PREFIX, ...full];
    // The wrapper reports the remote pid first on stderr (stripped again below), so that a timeout can
    // kill the remote process group: sshd refuses "signal" requests on root logins (no post-auth
    // privilege separation for root), and root is the usual login on BMCs and fresh nodes.
    const command = shellQuoteArgv(["sh", "-c", `echo "${PID_MARK}$$" >&2; exec "$@"`, "sh", ...full]);
    const c = await this.getClient();
    const timeoutMs = opts.timeoutMs ?? this.opts.operationTimeoutMs ?? 600_000;
    const out = new TailBuffer(opts.maxStdoutBytes ?? 16 << 20);
    const err = new TailBuffer(64 << 10);
    const what = argv.join(" ");
    return new Promise((resolve, reject) => {
      let code: number | null = null;
      let signal: string | null = null;
      let gotExit = false;
      let done = false;
      let ch: ClientChannel | undefined;
      let remotePid = 0;
      const result = (): RunResult => ({ code, signal, stdout: out.get(), stderr: err.get(), stdoutTruncated: out.truncated });
      const onClientClose = () =>
        finish(new HostError(`${this.label}: connection lost while running \`${what}\`; last output:\n${tailLines(err.get())}`, this.label, result()));
      const timer = setTimeout(() => {
        // SIGKILL the remote process group (sshd does killpg on a "signal" request). ssh2's
        // Channel.signal() refuses once our side sent EOF (stdin done), so send the request directly.
        try {
          const proto = (c as unknown as { _protocol?: { signal(id: number, sig: string): void } })._protocol;
          const out = (ch as unknown as { outgoing?: { id: number; state: string } } | undefined)?.outgoing;
          // not under sudo: the signal would end sudo alone and orphan the command (killRemoteGroup gets both)
          if (!this.sudo && proto && out && (out.state === "open" || out.state === "eof")) proto.signal(out.id, "KILL");
        } catch {
          /* channel already gone */
        }
        ch?.close();
        if (remotePid) void this.killRemoteGroup(remotePid);
        finish(
          new HostError(
            `${this.label}: \`${what}\` timed out after ${timeoutMs} ms and was stopped; last output:\n${tailLines(err.get()) || tailLines(out.get())}`,
            this.label,
            result(),
          ),
        );
      }, timeoutMs);
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        c.removeListener("close", onClientClose);
        if (e) reject(e);
        else resolve(result());
      };
      c.once("close", onClientClose);
      c.exec(command, (e, channel) => {
        if (e) return finish(new HostError(`${this.label}: cannot start \`${what}\`: ${e.message}`, this.label));
        ch = channel;
        channel.on("data", (b: Buffer) => out.push(b));
        let head: Buffer | undefined = Buffer.alloc(0);
        channel.stderr.on("data", (b: Buffer) => {
          if (head === undefined) return err.push(b);
          head = Buffer.concat([head, b]);
          const nl = head.indexOf(10);
          if (nl < 0 && head.length < 64) return;
          const first = head.subarray(0, nl < 0 ? head.length : nl).toString();
          if (first.startsWith(PID_MARK)) {
            remotePid = Number(first.slice(PID_MARK.length));
            err.push(head.subarray(nl + 1));
          } else err.push(head);
          head = undefined;
        });
        channel.on("exit", (c0: number | null, sig?: string) => {
          gotExit = true;
          code = c0 ?? null;
          signal = sig ? String(sig).replace(/^SIG/, "") : null;
        });
        channel.on("close", () => {
          if (!gotExit)
            finish(
              new HostError(
                `${this.label}: \`${what}\` ended without an exit status (connection cut?); last output:\n${tailLines(err.get())}`,
                this.label,
                result(),
              ),
            );
          else finish();
        });
        channel.on("error", () => undefined);
        const stdin = opts.stdin;
        if (stdin === undefined) channel.end();
        else if (typeof stdin === "string" || Buffer.isBuffer(stdin)) channel.end(stdin);
        else {
          stdin.on("error", (se) => finish(new HostError(`${this.label}: reading stdin for \`${what}\` failed: ${se.message}`, this.label)));
          stdin.pipe(channel);
        }
      });
    });
  }

  /** SIGKILL the process group of a remote process (best effort, bounded). */
  private async killRemoteGroup(pid: number): Promise<void> {
    // the whole group only when the command leads it (sshd gives each session its own); else the command
    // alone; and every descendant (sudo runs the command in a process group of its own), as root with sudo
    const script =
      'tree=$(cat /proc/[0-9]*/stat 2>/dev/null | awk -v t="$1" \'{ p = $1; sub(/.*\\) /, ""); pp[p] = $2 } END { want[t] = 1; do { c = 0; for (k in pp) if (!(k in want) && (pp[k] in want)) { want[k] = 1; c++ } } while (c); for (k in want) print k }\'); ' +
      'g=$(sed "s/.*) //" "/proc/$1/stat" 2>/dev/null | cut -d" " -f3); kill -KILL $tree 2>/dev/null; if [ "$g" = "$1" ]; then kill -KILL "-$g"; fi';
    try {
      const c = await this.getClient();
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 5000);
        c.exec(shellQuoteArgv([...(this.sudo ? SUDO_PREFIX : []), "sh", "-c", script, "sh", String(pid)]), (e, ch) => {
          if (e) return resolve();
          ch.on("close", () => {
            clearTimeout(t);
            resolve();
          });
          ch.on("data", () => undefined);
          ch.stderr.on("data", () => undefined);
          ch.end();
        });
      });
    } catch {
      /* the connection is gone: nothing more to do */
    }
  }

  /** run, and throw HostError with the output tail unless it exits 0. */
  async runChecked(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return checkResult(this, argv, await this.run(argv, opts));
  }

  async readFile(remotePath: string, opts: { timeoutMs?: number } = {}): Promise<Buffer> {
    const res = await this.run(["cat", "--", remotePath], { timeoutMs: opts.timeoutMs, maxStdoutBytes: 1 << 30 });
    if (res.code !== 0) throw new HostError(`${this.label}: cannot read ${remotePath}: ${tailLines(res.stderr) || `cat exited ${res.code}`}`, this.label, res);
    return res.stdout;
  }

  async sha256(remotePath: string, opts: { timeoutMs?: number } = {}): Promise<string | undefined> {
    // openssl uses the CPU's SHA extensions (5-10x faster than coreutils sha256sum on 1 GiB images)
    const script =
      'if [ ! -f "$1" ]; then echo absent; elif command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r < "$1"; else sha256sum < "$1"; fi';
    const argv = ["sh", "-c", script, "sh", remotePath];
    const res = checkResult(this, argv, await this.run(argv, { timeoutMs: opts.timeoutMs }));
    const s = res.stdout.toString().trim();
    if (s === "absent") return undefined;
    const m = /^([0-9a-f]{64})\b/.exec(s);
    if (!m) throw new HostError(`${this.label}: unexpected sha256sum output for ${remotePath}: ${JSON.stringify(s.slice(0, 200))}`, this.label);
    return m[1];
  }

  private getSftp(c: Client): Promise<SFTPWrapper> {
    if (this.sftp && this.client === c) return Promise.resolve(this.sftp);
    return new Promise((resolve, reject) => {
      c.sftp((e, s) => {
        if (e) return reject(e);
        this.sftp = s;
        resolve(s);
      });
    });
  }

  private async writeSftp(
    c: Client,
    localPath: string,
    path: string,
    offset: number,
    total: number,
    progress: (n: number) => void,
    stallMs: number,
  ): Promise<void> {
    const sftp = await this.getSftp(c);
    const handle: Buffer = await new Promise((res, rej) => sftp.open(path, offset === 0 ? "w" : "r+", (e, h) => (e ? rej(e) : res(h))));
    const fh = await fs.promises.open(localPath, "r");
    const CHUNK = 256 << 10;
    const INFLIGHT = 16;
    let next = offset;
    let failed: Error | undefined;
    let lastMove = Date.now();
    try {
      await new Promise<void>((resolve, reject) => {
        let active = 0;
        const stall = setInterval(
          () => {
            if (Date.now() - lastMove > stallMs) {
              failed = new HostError(`${this.label}: upload to ${path} stalled (no progress for ${stallMs} ms)`, this.label);
              clearInterval(stall);
              this.dropConnection(c);
              reject(failed);
            }
          },
          Math.min(1000, stallMs),
        );
        const onClose = () => {
          failed ??= new HostError(`${this.label}: connection lost during upload to ${path}`, this.label);
          clearInterval(stall);
          reject(failed);
        };
        c.once("close", onClose);
        const finish = () => {
          clearInterval(stall);
          c.removeListener("close", onClose);
          if (failed) reject(failed);
          else resolve();
        };
        const pump = (): void => {
          while (!failed && active < INFLIGHT && next < total) {
            const pos = next;
            const len = Math.min(CHUNK, total - pos);
            next += len;
            active++;
            const buf = Buffer.allocUnsafe(len);
            fh.read(buf, 0, len, pos).then(
              ({ bytesRead }) => {
                if (bytesRead !== len) throw new Error(`local file ${localPath} shrank during the upload`);
                sftp.write(handle, buf, 0, len, pos, (e) => {
                  active--;
                  if (e) failed ??= e;
                  else {
                    lastMove = Date.now();
                    progress(len);
                  }
                  if (active === 0 && (failed || next >= total)) finish();
                  else pump();
                });
              },
              (e: Error) => {
                active--;
                failed ??= e;
                if (active === 0) finish();
              },
            );
          }
          if (active === 0 && next >= total) finish();
        };
        pump();
      });
    } finally {
      await fh.close();
      if (this.client === c) await new Promise<void>((res) => sftp.close(handle, () => res()));
    }
  }

  private async writeExec(
    localPath: string,
    path: string,
    offset: number,
    total: number,
    progress: (n: number) => void,
    stallMs: number,
  ): Promise<{ streamSha256?: string }> {
    if (offset === total) {
      await this.runChecked(["truncate", "-s", String(total), "--", path]);
      return {};
    }
    let lastMove = Date.now();
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        lastMove = Date.now();
        progress(chunk.length);
        cb(null, chunk);
      },
    });
    const src = fs.createReadStream(localPath, { start: offset, end: total - 1, highWaterMark: 1 << 20 });
    const c = await this.getClient();
    const stall = setInterval(
      () => {
        if (Date.now() - lastMove > stallMs) this.dropConnection(c);
      },
      Math.min(1000, stallMs),
    );
    try {
      const piping = pipeline(src, counter).catch(() => undefined);
      // Measured: hashing on the remote side while writing (tee | openssl) is slower on small machines
      // than writing with cat and hashing the file afterwards (openssl uses the CPU's SHA extensions).
      const script = offset === 0 ? 'exec cat > "$1"' : 'exec cat >> "$1"';
      await this.runChecked(["sh", "-c", script, "sh", path], { stdin: counter, timeoutMs: 24 * 3600_000 });
      await piping;
      return {};
    } finally {
      clearInterval(stall);
      src.destroy();
    }
  }

  private target(): UploadTarget {
    return {
      label: this.label,
      sha256: (p) => this.sha256(p),
      size: async (p) => {
        const argv = ["sh", "-c", 'if [ -f "$1" ]; then wc -c < "$1"; else echo absent; fi', "sh", p];
        const s = checkResult(this, argv, await this.run(argv))
          .stdout.toString()
          .trim();
        return s === "absent" ? undefined : Number(s);
      },
      mkdirParent: async (p) => {
        const dir = p.replace(/\/[^/]*$/, "") || "/";
        await this.runChecked(["mkdir", "-p", "--", dir]);
      },
      writeFrom: async (local, p, offset, total, progress, stallMs) => {
        // SFTP writes as the login user: with sudo, files are written by root over exec instead
        if (this.opts.uploadMethod === "sftp" && !this.sudo) {
          const c = await this.getClient();
          let sftpOk = true;
          try {
            await this.getSftp(c);
          } catch {
            sftpOk = false; // no SFTP subsystem on this host: fall back to cat over exec
          }
          if (sftpOk) return this.writeSftp(c, local, p, offset, total, progress, stallMs);
        }
        return this.writeExec(local, p, offset, total, progress, stallMs);
      },
      commit: async (from, to, mode) => {
        const argv = mode !== undefined ? ["sh", "-c", 'chmod "$3" "$1" && mv -f "$1" "$2"', "sh", from, to, mode.toString(8)] : ["mv", "-f", "--", from, to];
        await this.runChecked(argv);
      },
      chmod: async (p, mode) => {
        await this.runChecked(["chmod", mode.toString(8), "--", p]);
      },
      remove: async (p) => {
        await this.runChecked(["rm", "-f", "--", p]);
      },
    };
  }

  async upload(localPath: string, remotePath: string, opts: UploadOptions = {}): Promise<UploadResult> {
    const attempts = this.opts.uploadAttempts ?? 4;
    const sent = { bytes: 0 };
    for (let i = 1; ; i++) {
      const drops = this.drops;
      try {
        return await uploadFile(this.target(), localPath, remotePath, opts, sent);
      } catch (e) {
        // retry (resuming the partial file) only when the connection went away during this attempt
        const lost = this.drops !== drops || (e instanceof HostError && /connection lost|without an exit status|stalled/i.test(e.message));
        if (i >= attempts || !lost) throw e;
        if (this.client) this.dropConnection(this.client);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const c = this.client;
    this.client = undefined;
    this.sftp = undefined;
    if (c) {
      await new Promise<void>((res) => {
        c.once("close", () => res());
        c.end();
        setTimeout(res, 2000).unref();
      });
    }
  }
}
