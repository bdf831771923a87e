/**
 * Host: what every step that acts on a machine (BMC, node, this computer) needs from it. Two
 * implementations: LocalHost (./local.ts, this machine, no shell) and SshHost (./ssh.ts, ssh2).
 *
 * Contract shared by the implementations:
 * - `run` takes an argv array; nothing is ever spliced into shell text by the caller. A non-zero exit
 *   is returned, not thrown (use `checkResult`); a timeout or a lost connection throws `HostError`
 *   carrying the output tails.
 * - `upload` is idempotent and restartable: it skips when the remote file already has the wanted
 *   sha256, resumes `<remotePath>.partial` when its content is a prefix of the local file, and makes the
 *   final file appear atomically (temp, verify sha256, chmod, rename).
 * - `sha256` returns undefined when the file does not exist.
 */
import type { Readable } from "stream";

export interface RunOptions {
  /** Bytes fed to the command's stdin, then EOF. Without it stdin is empty (EOF at once). */
  stdin?: Buffer | string | Readable;
  /** Kill the command (and throw HostError) after this many milliseconds. */
  timeoutMs?: number;
  /**
   * Extra environment. Not for secrets: over SSH it travels as `env NAME=VALUE` arguments, visible
   * in the remote process list. Pass secrets on stdin.
   */
  env?: Record<string, string>;
  /** Keep at most this many bytes of stdout (the tail beyond it is kept, `stdoutTruncated` set). Default 16 MiB. */
  maxStdoutBytes?: number;
}

export interface RunResult {
  /** Exit status, or null when the command was ended by a signal. */
  code: number | null;
  /** Signal name ("KILL", "TERM"...) without the SIG prefix, when ended by a signal. */
  signal: string | null;
  stdout: Buffer;
  /** Tail of stderr (last 64 KiB). */
  stderr: Buffer;
  stdoutTruncated: boolean;
}

export interface UploadOptions {
  /** Expected sha256 of the local file (hex or SRI); computed from the file when absent. */
  sha256?: string;
  /** File mode of the final file, e.g. 0o644. */
  mode?: number;
  onProgress?: (sent: number, total: number) => void;
  /** Abort when no byte has moved for this long (ms). Default 60 s. */
  stallTimeoutMs?: number;
}

export interface UploadResult {
  /** True when the remote file already had the wanted content: nothing was sent. */
  skipped: boolean;
  /** Bytes sent over the wire by this call (all attempts). */
  bytes: number;
  /** Offset the last attempt resumed from (0 = started from scratch). */
  resumedFrom: number;
}

export interface Host {
  /** Human-readable name for messages, e.g. "root@127.0.10.2:22". */
  readonly label: string;
  run(argv: string[], opts?: RunOptions): Promise<RunResult>;
  upload(localPath: string, remotePath: string, opts?: UploadOptions): Promise<UploadResult>;
  readFile(remotePath: string, opts?: { timeoutMs?: number }): Promise<Buffer>;
  sha256(remotePath: string, opts?: { timeoutMs?: number }): Promise<string | undefined>;
  close(): Promise<void>;
}

/** Failure to carry out an operation on a host (timeout, lost connection, remote error). */
export class HostError extends Error {
  constructor(
    message: string,
    readonly host: string,
    readonly result?: Partial<RunResult>,
  ) {
    super(message);
    this.name = "HostError";
  }
}

/** Last `n` lines of a buffer, as text, for error messages. */
export function tailLines(buf: Buffer | string, n = 40): string {
  const s = typeof buf === "string" ? buf : buf.toString("utf8");
  const lines = s.replace(/\n+$/, "").split("\n");
  return lines.slice(-n).join("\n");
}

/** Throw a HostError (with the output tails) unless the command exited 0. Returns the result. */
export function checkResult(host: Host | string, argv: string[], res: RunResult): RunResult {
  if (res.code === 0) return res;
  const label = typeof host === "string" ? host : host.label;
  const how = res.code === null ? `was killed by SIG${res.signal}` : `exited ${res.code}`;
  const out = [tailLines(res.stderr), res.stderr.length ? "" : tailLines(res.stdout)].filter((s) => s).join("\n");
  throw new HostError(`${label}: \`${argv.join(" ")}\` ${how}${out ? ":\n" + out : ""}`, label, res);
}

/** A bounded byte collector that keeps the tail once over its limit. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly limit: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    if (this.size > this.limit * 2) this.compact();
  }
  private compact(): void {
    const all = Buffer.concat(this.chunks);
    if (all.length > this.limit) {
      this.truncated = true;
      const t = all.subarray(all.length - this.limit);
      this.chunks = [Buffer.from(t)];
      this.size = t.length;
    } else {
      this.chunks = [all];
    }
  }
  get(): Buffer {
    this.compact();
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}
