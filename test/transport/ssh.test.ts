/**
 * SshHost against real sshd hosts of a small lab: host key pinning, auth, retries, argv fidelity,
 * timeouts, and resumable / skipping / atomic uploads (including a connection cut mid-upload).
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Readable } from "stream";
import { Lab, startLab } from "../../lab/lab";
import { HostError } from "../../lib/transport/host";
import { HostKeyMismatchError, SshAuthError, SshHost, UnknownHostKeyError, connectSsh, sshFingerprint } from "../../lib/transport/ssh";
import { ECHO_ARGS_SCRIPT, HOSTILE, parseEchoed } from "./hostile";

jest.setTimeout(120_000);

let lab: Lab;
let tmp: string;
const open: SshHost[] = [];

async function connect(name: string, extra: Partial<Parameters<typeof connectSsh>[0]> = {}): Promise<SshHost> {
  const h = lab.hosts[name];
  const host = await connectSsh({
    host: h.address,
    port: h.port,
    user: h.user,
    hostKey: h.hostKey,
    privateKey: lab.deployKey.privateKey,
    retryForMs: 5000,
    ...extra,
  });
  open.push(host);
  return host;
}

function fingerprintWithSshKeygen(line: string): string {
  const f = path.join(tmp, `k-${crypto.randomBytes(4).toString("hex")}.pub`);
  fs.writeFileSync(f, line + "\n");
  return execFileSync("ssh-keygen", ["-lf", f]).toString().split(/\s+/)[1];
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-test-"));
  lab = await startLab(
    {
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "a", role: "node", swupdate: { devices: {} } },
        { name: "b", role: "node", swupdate: { devices: {} }, user: "deploy" },
        { name: "c", role: "node", swupdate: { devices: {} }, user: "deploy", sudoPassword: true },
      ],
    },
    path.join(tmp, "lab"),
    { ownerPid: process.pid },
  );
});

afterAll(async () => {
  for (const h of open) await h.close().catch(() => undefined);
  await lab?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("host keys", () => {
  test("the pinned key is accepted", async () => {
    const h = await connect("a");
    const r = await h.run(["cat", "/etc/hostname"]);
    expect(r.code).toBe(0);
    expect(r.stdout.toString().trim()).toBe("a");
    expect(h.hostKeySeen).toBe(lab.hosts.a.hostKey);
  });

  test("a different key is refused, showing both fingerprints in OpenSSH format and how to fix the pin", async () => {
    const wrong = lab.hosts.b.hostKey!;
    const err = await connect("a", { hostKey: wrong, hostKeyConfigPath: "nodes[0].ssh.hostKey" }).catch((e) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    const expectedFp = fingerprintWithSshKeygen(wrong);
    const seenFp = fingerprintWithSshKeygen(lab.hosts.a.hostKey!);
    expect(expectedFp).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    expect(err.message).toContain(expectedFp);
    expect(err.message).toContain(seenFp);
    expect(err.message).toContain("nodes[0].ssh.hostKey");
    expect(err.message).toContain("ssh-keyscan");
    expect(err.message).toContain(lab.hosts.a.hostKey);
  });

  test("sshFingerprint matches ssh-keygen -lf", () => {
    const line = lab.hosts.bmc.hostKey!;
    expect(sshFingerprint(Buffer.from(line.split(" ")[1], "base64"))).toBe(fingerprintWithSshKeygen(line));
  });

  test("an unknown key is refused unless acceptNewHostKey, and then reported", async () => {
    const err = await connect("a", { hostKey: undefined }).catch((e) => e);
    expect(err).toBeInstanceOf(UnknownHostKeyError);
    expect(err.message).toContain(fingerprintWithSshKeygen(lab.hosts.a.hostKey!));
    const h = await connect("a", { hostKey: undefined, acceptNewHostKey: true });
    expect(h.hostKeySeen).toBe(lab.hosts.a.hostKey);
  });

  test("host key mismatch is not retried", async () => {
    const t0 = Date.now();
    await expect(connect("a", { hostKey: lab.hosts.b.hostKey, retryForMs: 30_000 })).rejects.toBeInstanceOf(HostKeyMismatchError);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe("auth and connection", () => {
  test("a key that is not authorized fails fast with SshAuthError", async () => {
    const other = path.join(tmp, "other_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const t0 = Date.now();
    const err = await connect("a", { privateKey: fs.readFileSync(other, "utf8"), retryForMs: 30_000 }).catch((e) => e);
    expect(err).toBeInstanceOf(SshAuthError);
    expect(err.message).not.toContain("PRIVATE KEY");
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test("auth through an ssh-agent", async () => {
    const sock = path.join(tmp, "agent.sock");
    const out = execFileSync("ssh-agent", ["-a", sock, "-s"]).toString();
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1]);
    try {
      execFileSync("ssh-add", [lab.deployKey.path], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: "ignore" });
      const h = await connect("a", { privateKey: undefined, agent: sock });
      expect((await h.run(["true"])).code).toBe(0);
    } finally {
      process.kill(pid);
    }
  });

  test("a non-root login user works (its own home, its authorized_keys)", async () => {
    const h = await connect("b", { sudo: false });
    const r = await h.run(["sh", "-c", 'id -un; echo "$HOME"']);
    expect(r.stdout.toString().split("\n").slice(0, 2)).toEqual(["deploy", "/home/deploy"]);
  });

  test("a non-root login runs every command, upload, read and hash as root through the real sudo -n", async () => {
    const h = await connect("b");
    expect(h.sudo).toBe(true);
    const r = await h.run(["sh", "-c", 'id -u; echo "$GREETING"'], { env: { GREETING: "hello from env" } });
    expect(r.stdout.toString()).toBe("0\nhello from env\n");
    // argv survives the extra hop unchanged
    const echoed = await h.run(["sh", "-c", ECHO_ARGS_SCRIPT, "sh", ...HOSTILE]);
    expect(parseEchoed(echoed.stdout.toString())).toEqual(HOSTILE);
    const f = path.join(tmp, "sudo-up.bin");
    fs.writeFileSync(f, crypto.randomBytes(70_000));
    await h.upload(f, "/var/lib/isar-k3s-test/up.bin", { mode: 0o600 });
    expect((await h.run(["stat", "-c", "%U %a", "/var/lib/isar-k3s-test/up.bin"])).stdout.toString()).toBe("root 600\n");
    expect(await h.sha256("/var/lib/isar-k3s-test/up.bin")).toBe(crypto.createHash("sha256").update(fs.readFileSync(f)).digest("hex"));
    expect((await h.readFile("/etc/shadow")).toString()).toMatch(/^root:/m);
    // a timeout still stops the command, which runs as root under sudo
    const t = await h.run(["sleep", "31.5"], { timeoutMs: 1000 }).catch((e) => e);
    expect(t.message).toMatch(/timed out after 1000 ms/);
    let left = "";
    for (let i = 0; i < 30; i++) {
      left = (await h.run(["sh", "-c", "ps -eo args | grep -c '^sleep 31[.]5' || true"])).stdout.toString().trim();
      if (left === "0") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe("0");
    // a root login (a BMC) runs without sudo
    expect((await connect("bmc")).sudo).toBe(false);
  });

  test("sudo asking for a password: a SudoError naming the host, the user and the fix, nothing run", async () => {
    const h = await connect("c");
    const err = await h.run(["touch", "/etc/never"]).catch((e) => e);
    expect(err.name).toBe("SudoError");
    expect(err.message).toMatch(
      /^deploy@127\.[0-9.]+:22: sudo asks deploy for a password.*`sudo -n`, which never prompts \(`touch \/etc\/never` was not run\).*NOPASSWD: ALL.*visudo -f \/etc\/sudoers.d\/isar-k3s-deploy/,
    );
    expect(fs.existsSync(lab.hostPath("c", "/etc/never"))).toBe(false);
  });

  test("connect retries with backoff until the host comes up, within the bound", async () => {
    await lab.powerOff("a");
    const t0 = Date.now();
    const later = new Promise((r) => setTimeout(r, 1500)).then(() => lab.powerOn("a"));
    const h = await connect("a", { retryForMs: 20_000, retryInitialDelayMs: 100 });
    await later;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect((await h.run(["true"])).code).toBe(0);
  });

  test("retries give up after retryForMs", async () => {
    await lab.powerOff("a");
    try {
      const t0 = Date.now();
      const err = await connect("a", { retryForMs: 1500, retryInitialDelayMs: 100 }).catch((e) => e);
      expect(err).toBeInstanceOf(HostError);
      expect(err.message).toMatch(/cannot connect to root@127\.[0-9.]+:22 after \d+ attempts/);
      expect(Date.now() - t0).toBeLessThan(4000);
    } finally {
      await lab.powerOn("a");
    }
  });
});

describe("run", () => {
  test("hostile arguments reach the remote command verbatim", async () => {
    const h = await connect("a");
    const r = await h.run(["sh", "-c", ECHO_ARGS_SCRIPT, "sh", ...HOSTILE], { env: { LC_ALL: "C" } });
    expect(r.code).toBe(0);
    expect(parseEchoed(r.stdout.toString())).toEqual(HOSTILE);
    // and nothing was executed on the way
    expect((await h.run(["test", "-e", "/tmp/pwned-by-argv-test"])).code).toBe(1);
  });

  test("stdin as Buffer, string and stream; exit codes; stderr", async () => {
    const h = await connect("a");
    expect((await h.run(["cat"], { stdin: Buffer.from([0, 1, 2, 255]) })).stdout).toEqual(Buffer.from([0, 1, 2, 255]));
    expect((await h.run(["cat"], { stdin: "text\n" })).stdout.toString()).toBe("text\n");
    const big = crypto.randomBytes(3 << 20);
    const r = await h.run(["sha256sum"], { stdin: Readable.from([big.subarray(0, 1 << 20), big.subarray(1 << 20)]) });
    expect(r.stdout.toString().split(" ")[0]).toBe(crypto.createHash("sha256").update(big).digest("hex"));
    const e = await h.run(["sh", "-c", "echo oops >&2; exit 7"]);
    expect(e.code).toBe(7);
    expect(e.stderr.toString()).toBe("oops\n");
  });

  test("a command killed by a signal reports it", async () => {
    const h = await connect("a");
    const r = await h.run(["sh", "-c", "kill -TERM $$"]);
    expect(r.code).toBeNull();
    expect(r.signal).toBe("TERM");
  });

  test("per-operation timeout stops the command and keeps the output tail", async () => {
    const h = await connect("a");
    const t0 = Date.now();
    const err = await h.run(["sh", "-c", "echo started >&2; sleep 30"], { timeoutMs: 800 }).catch((e) => e);
    expect(err).toBeInstanceOf(HostError);
    expect(err.message).toMatch(/timed out after 800 ms/);
    expect(err.message).toContain("started");
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await h.run(["true"])).code).toBe(0); // the connection is still usable
    // the remote command was stopped, not left running
    let left = lab.processes("a").filter((p) => p.cmd === "sleep 30");
    for (let i = 0; i < 20 && left.length; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = lab.processes("a").filter((p) => p.cmd === "sleep 30");
    }
    expect(left).toEqual([]);
  });

  test("readFile and sha256", async () => {
    const h = await connect("a");
    await h.run(["sh", "-c", "printf 'abc' > /root/f"]);
    expect((await h.readFile("/root/f")).toString()).toBe("abc");
    expect(await h.sha256("/root/f")).toBe(crypto.createHash("sha256").update("abc").digest("hex"));
    expect(await h.sha256("/root/nope")).toBeUndefined();
    await expect(h.readFile("/root/nope")).rejects.toThrow(/cannot read \/root\/nope/);
  });
});

describe("upload", () => {
  let file: string;
  let sha: string;
  beforeAll(() => {
    file = path.join(tmp, "payload.bin");
    const data = crypto.randomBytes(96 << 20);
    fs.writeFileSync(file, data);
    sha = crypto.createHash("sha256").update(data).digest("hex");
  });

  test.each(["sftp", "exec"] as const)("uploads (%s), then skips the unchanged re-upload; mode applied", async (method) => {
    const h = await connect("a", { uploadMethod: method });
    const dst = `/var/tmp/up-${method}/payload.bin`;
    const progress: number[] = [];
    const r1 = await h.upload(file, dst, { mode: 0o640, onProgress: (s) => progress.push(s) });
    expect(r1).toEqual({ skipped: false, bytes: 96 << 20, resumedFrom: 0 });
    expect(progress[progress.length - 1]).toBe(96 << 20);
    expect(await h.sha256(dst)).toBe(sha);
    expect((await h.run(["stat", "-c", "%a", dst])).stdout.toString().trim()).toBe("640");
    expect((await h.run(["test", "-e", dst + ".partial"])).code).toBe(1);
    const r2 = await h.upload(file, dst, { sha256: sha });
    expect(r2.skipped).toBe(true);
    expect(r2.bytes).toBe(0);
  });

  test("resumes a partial upload whose prefix matches, restarts one that does not", async () => {
    const h = await connect("a");
    const dst = "/var/tmp/resume/payload.bin";
    await h.run(["mkdir", "-p", "/var/tmp/resume"]);
    const prefix = fs.readFileSync(file).subarray(0, 10 << 20);
    await h.run(["sh", "-c", 'cat > "$1"', "sh", dst + ".partial"], { stdin: prefix });
    const r = await h.upload(file, dst);
    expect(r.resumedFrom).toBe(10 << 20);
    expect(r.bytes).toBe((96 - 10) << 20);
    expect(await h.sha256(dst)).toBe(sha);

    await h.run(["sh", "-c", 'head -c 5000000 /dev/urandom > "$1"', "sh", dst + ".partial"]);
    await h.run(["rm", dst]);
    const r2 = await h.upload(file, dst);
    expect(r2.resumedFrom).toBe(0);
    expect(await h.sha256(dst)).toBe(sha);
  });

  test("a wrong sha256 pin fails, leaves no final file and names the pin", async () => {
    const h = await connect("a");
    const err = await h.upload(file, "/var/tmp/wrong/payload.bin", { sha256: "0".repeat(64) }).catch((e) => e);
    expect(err).toBeInstanceOf(HostError);
    expect(err.message).toMatch(/check that the given sha256 pin matches/);
    expect(await h.sha256("/var/tmp/wrong/payload.bin")).toBeUndefined();
    expect(await h.sha256("/var/tmp/wrong/payload.bin.partial")).toBeUndefined();
  });

  test("connection cut mid-upload (the session's sshd killed): reconnects, resumes, final sha256 matches", async () => {
    const h = await connect("a", { retryInitialDelayMs: 50 });
    const dst = "/var/tmp/cut/payload.bin";
    let killed: number[] = [];
    const r = await h.upload(file, dst, {
      onProgress: (sent) => {
        if (killed.length === 0 && sent > 30 << 20) {
          killed = lab.sshSessionPids("a");
          for (const pid of killed) process.kill(pid, "SIGKILL");
        }
      },
    });
    expect(killed.length).toBeGreaterThan(0);
    expect(r.skipped).toBe(false);
    expect(r.resumedFrom).toBeGreaterThan(0);
    expect(r.bytes).toBeLessThan((96 << 20) + r.resumedFrom);
    expect(await h.sha256(dst)).toBe(sha);
    // the file as the node sees it, read from this machine through the node's own root
    const onNode = fs.readFileSync(lab.hostPath("a", dst));
    expect(crypto.createHash("sha256").update(onNode).digest("hex")).toBe(sha);
  });

  test("a hung connection (session sshd stopped) is detected; the upload resumes on a new connection", async () => {
    const h = await connect("a", { retryInitialDelayMs: 50, keepaliveIntervalMs: 60_000 });
    const dst = "/var/tmp/hung/payload.bin";
    let stopped: number[] = [];
    try {
      const r = await h.upload(file, dst, {
        stallTimeoutMs: 1500,
        onProgress: (sent) => {
          if (stopped.length === 0 && sent > 20 << 20) {
            stopped = lab.sshSessionPids("a");
            for (const pid of stopped) process.kill(pid, "SIGSTOP");
          }
        },
      });
      expect(stopped.length).toBeGreaterThan(0);
      expect(r.resumedFrom).toBeGreaterThan(0);
      expect(await h.sha256(dst)).toBe(sha);
    } finally {
      for (const pid of stopped) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
  });

  test("keepalives detect a dead peer during a long command", async () => {
    const h = await connect("a", { keepaliveIntervalMs: 300 });
    const running = h.run(["sleep", "60"]).catch((e) => e);
    // the command is running on the host (bounded wait for it to show up)
    for (let i = 0; i < 100 && !lab.processes("a").some((p) => p.cmd === "sleep 60"); i++) await new Promise((r) => setTimeout(r, 50));
    expect(lab.processes("a").some((p) => p.cmd === "sleep 60")).toBe(true);
    const pids = lab.sshSessionPids("a");
    for (const pid of pids) process.kill(pid, "SIGSTOP");
    try {
      const t0 = Date.now();
      const err = await running;
      expect(err).toBeInstanceOf(HostError);
      expect(err.message).toMatch(/connection lost/);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
  });

  test("the final file appears atomically: a reader never sees a partial final file", async () => {
    const h = await connect("a");
    const watcher = await connect("a");
    const dst = "/var/tmp/atomic/payload.bin";
    await h.run(["mkdir", "-p", "/var/tmp/atomic"]);
    const sizes = new Set<string>();
    let done = false;
    const watching = (async () => {
      while (!done) {
        const r = await watcher.run(["sh", "-c", 'if [ -e "$1" ]; then wc -c < "$1"; else echo none; fi', "sh", dst]);
        sizes.add(r.stdout.toString().trim());
      }
    })();
    await h.upload(file, dst);
    done = true;
    await watching;
    for (const s of sizes) expect(["none", String(96 << 20)]).toContain(s);
  });
});
