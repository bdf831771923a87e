/**
 * Minimal argv-only process runner for the SWUpdate helpers (openssl, cpio, swupdate).
 *
 * Contract: no shell; stdin is the given buffer or closed; stdout/stderr are captured (stdout in full up to
 * `maxStdout` bytes, stderr as the last ~40 lines for error messages); a timeout kills the process (SIGKILL)
 * and rejects. Resolves with exit code and output; never throws for a non-zero exit (callers decide).
 *
 * Children the process forks (swupdate forks several) can outlive it and hold its stdout/stderr open. So:
 * with a timeout, the process runs in its own process group and the whole group is killed; and once the
 * process itself has exited, its pipes are given a short grace to drain and are then closed by us, so a
 * lingering child can never hold the result back.
 */
import { spawn } from "child_process";

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  /** Last ~40 lines of stderr. */
  stderrTail: string;
  /** Last ~40 lines of stdout + stderr interleaved in arrival order. */
  outputTail: string;
}

export interface RunOptions {
  input?: Buffer | string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  maxStdout?: number;
}

export function tailLines(s: string, n = 40): string {
  const lines = s.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-n).join("\n");
}

const TAIL_BYTES = 64 * 1024;
/** How long a finished process's pipes may stay open (held by its children) before we close them. */
const EXIT_DRAIN_MS = 2000;

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: opts.timeoutMs !== undefined,
    });
    const maxStdout = opts.maxStdout ?? 16 * 1024 * 1024;
    const out: Buffer[] = [];
    let outLen = 0;
    let err = "";
    let both = "";
    const keep = (s: string) => (s.length > TAIL_BYTES ? s.slice(-TAIL_BYTES) : s);
    child.stdout!.on("data", (b: Buffer) => {
      if (outLen < maxStdout) {
        out.push(b);
        outLen += b.length;
      }
      both = keep(both + b.toString("utf8"));
    });
    child.stderr!.on("data", (b: Buffer) => {
      err = keep(err + b.toString("utf8"));
      both = keep(both + b.toString("utf8"));
    });
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            killGroup(child.pid);
            child.kill("SIGKILL");
          }, opts.timeoutMs)
        : undefined;
    let drain: NodeJS.Timeout | undefined;
    child.on("exit", () => {
      drain = setTimeout(() => {
        if (opts.timeoutMs !== undefined) killGroup(child.pid);
        child.stdout!.destroy();
        child.stderr!.destroy();
      }, EXIT_DRAIN_MS);
    });
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${argv[0]}: ${e.message} (is it installed and on PATH?)`));
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (drain) clearTimeout(drain);
      if (timedOut) {
        reject(new Error(`${argv[0]} did not finish within ${opts.timeoutMs} ms and was killed; last output:\n${tailLines(both)}`));
        return;
      }
      resolve({ code, signal, stdout: Buffer.concat(out), stderrTail: tailLines(err), outputTail: tailLines(both) });
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on("error", () => undefined); // EPIPE when the child exits early; the exit code tells
      child.stdin.end(opts.input);
    }
  });
}
