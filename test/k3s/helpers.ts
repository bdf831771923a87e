/**
 * Test helpers for the k3s suites: a Host wrapper that records every command our code sends (argv,
 * env names and values, whether stdin was used), and a sampler of every process's argv and environment
 * on this machine (the lab's hosts are namespaces of it), to prove a secret never was a process argument.
 */
import * as fs from "fs";
import type { Host, RunOptions, RunResult, UploadOptions, UploadResult } from "../../lib/transport/host";

export interface Recorded {
  host: string;
  argv: string[];
  env: Record<string, string>;
  stdinBytes: number;
}

/** Wraps a Host; every `run` is appended to `log`. */
export class RecordingHost implements Host {
  constructor(
    private readonly inner: Host,
    readonly log: Recorded[],
  ) {}
  get label(): string {
    return this.inner.label;
  }
  run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    const s = opts?.stdin;
    this.log.push({
      host: this.inner.label,
      argv: [...argv],
      env: { ...(opts?.env ?? {}) },
      stdinBytes: typeof s === "string" ? Buffer.byteLength(s) : Buffer.isBuffer(s) ? s.length : s ? -1 : 0,
    });
    return this.inner.run(argv, opts);
  }
  upload(localPath: string, remotePath: string, opts?: UploadOptions): Promise<UploadResult> {
    this.log.push({ host: this.inner.label, argv: ["<upload>", localPath, remotePath], env: {}, stdinBytes: 0 });
    return this.inner.upload(localPath, remotePath, opts);
  }
  readFile(p: string, opts?: { timeoutMs?: number }): Promise<Buffer> {
    return this.inner.readFile(p, opts);
  }
  sha256(p: string, opts?: { timeoutMs?: number }): Promise<string | undefined> {
    return this.inner.sha256(p, opts);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * Samples /proc/<pid>/cmdline and /proc/<pid>/environ of every process every `everyMs` and remembers
 * any that contains one of the needles. Sampling can miss very short processes: it complements the
 * recorded commands and the stand-in's argv log, it does not replace them.
 */
export class ProcWatcher {
  readonly hits: { pid: string; where: "cmdline" | "environ"; text: string }[] = [];
  samples = 0;
  processesSeen = new Set<string>();
  private timer?: NodeJS.Timeout;
  constructor(
    private readonly needles: () => string[],
    private readonly everyMs = 40,
  ) {}
  start(): void {
    const tick = () => {
      this.scan();
      this.timer = setTimeout(tick, this.everyMs);
    };
    tick();
  }
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
  }
  private scan(): void {
    const needles = this.needles().filter((n) => n.length >= 8);
    this.samples++;
    let pids: string[];
    try {
      pids = fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && p !== String(process.pid));
    } catch {
      return;
    }
    for (const pid of pids) {
      for (const where of ["cmdline", "environ"] as const) {
        let text: string;
        try {
          text = fs.readFileSync(`/proc/${pid}/${where}`, "latin1");
        } catch {
          continue;
        }
        if (where === "cmdline") this.processesSeen.add(`${pid}:${text.split("\0")[0]}`);
        for (const n of needles) if (text.includes(n)) this.hits.push({ pid, where, text: text.replace(/\0/g, " ").slice(0, 200) });
      }
    }
  }
}

/** Every file under `dir` (recursively) whose bytes contain `needle`, except the `allowed` predicate's. */
export function filesContaining(dir: string, needle: string, allowed: (p: string) => boolean = () => false): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          if (fs.statSync(p).size > 64 << 20) continue;
          if (fs.readFileSync(p).includes(needle) && !allowed(p)) out.push(p);
        } catch {
          /* vanished */
        }
      }
    }
  };
  walk(dir);
  return out;
}
