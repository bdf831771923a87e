/**
 * Shared pieces of node delivery (Turing Pi flashing, SWUpdate over SSH): the error type every delivery
 * failure is reported with, the rate-limited progress reporter, deadlines, and the "boot marker" used
 * to tell that a node really rebooted.
 *
 * Guarantees:
 * - `DeliveryError` always names the node, the phase and where it ran (BMC and slot, or the node's SSH
 *   endpoint), says how to fix it when we know, and carries at most the last 40 lines of the output
 *   of the command that failed. Secrets are never put into it (callers pass output tails only).
 * - `ProgressReporter` emits one line per phase change and at most one line per `stepPercent` of
 *   progress (default 10 %), plus the final 100 %: a dynamic provider's console output becomes Pulumi
 *   diagnostics, which must stay readable over a flash of tens of minutes.
 * - `bootMarker` differs between two boots of a host: it combines the kernel's boot_id (a real reboot)
 *   with the start time of process 1 (a new PID namespace in the simulated lab, where the kernel is shared).
 */
import type { Host } from "../transport/host";
import { tailLines } from "../transport/host";

export type DeliveryPhase =
  | "check"
  | "connect-bmc"
  | "upload"
  | "flash"
  | "power-on"
  | "boot"
  | "verify"
  | "connect"
  | "install"
  | "reboot"
  | "delete";

export class DeliveryError extends Error {
  constructor(
    readonly node: string,
    readonly phase: DeliveryPhase,
    /** Where: "bmc slot 2 (root@10.0.0.2:22)" or "root@10.0.0.20:22". */
    readonly where: string,
    readonly reason: string,
    readonly outputTail = "",
    readonly hint = "",
  ) {
    super(
      `${node}: ${phase} failed on ${where}: ${reason}` +
        (hint ? `\nHow to fix: ${hint}` : "") +
        (outputTail.trim() ? `\n--- last output (${phase}) ---\n${tailLines(outputTail, 40)}` : ""),
    );
    this.name = "DeliveryError";
  }
}

/** Wrap any error into a DeliveryError for this node and phase (DeliveryErrors pass through unchanged). */
export function asDeliveryError(e: unknown, node: string, phase: DeliveryPhase, where: string, hint = ""): DeliveryError {
  if (e instanceof DeliveryError) return e;
  const err = e as Error & { result?: { stderr?: Buffer; stdout?: Buffer } };
  const out = err?.result ? Buffer.concat([err.result.stdout ?? Buffer.alloc(0), err.result.stderr ?? Buffer.alloc(0)]).toString("utf8") : "";
  return new DeliveryError(node, phase, where, err?.message ?? String(e), out, hint);
}

export interface ProgressEvent {
  node: string;
  phase: DeliveryPhase | "done" | "skip";
  /** 0–100 when the phase has a measurable size. */
  percent?: number;
  detail?: string;
  /** Time since this node's delivery started, ms. */
  elapsedMs?: number;
}

export type ProgressSink = (e: ProgressEvent) => void;

/** Text of one progress line, e.g. "[srv1] flash 40% slot 1 (+2m05s)". */
export function formatProgress(e: ProgressEvent): string {
  const t = e.elapsedMs === undefined ? "" : ` (+${formatDuration(e.elapsedMs)})`;
  return `[${e.node}] ${e.phase}${e.percent !== undefined ? ` ${Math.floor(e.percent)}%` : ""}${e.detail ? ` ${e.detail}` : ""}${t}`;
}

/** "850ms", "12.3s", "2m05s", "1h02m". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.floor(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Rate-limits progress: phase changes always pass, percentages only when a new `stepPercent` bucket is reached. */
export class ProgressReporter {
  private phase?: string;
  private bucket = -1;
  private readonly t0 = Date.now();
  constructor(
    private readonly node: string,
    private readonly sink: ProgressSink,
    private readonly stepPercent = 10,
  ) {}

  report(phase: ProgressEvent["phase"], percent?: number, detail?: string): void {
    if (phase !== this.phase) {
      this.phase = phase;
      this.bucket = percent === undefined ? -1 : Math.floor(Math.min(100, Math.max(0, percent)) / this.stepPercent);
      this.sink({ node: this.node, phase, percent, detail, elapsedMs: Date.now() - this.t0 });
      return;
    }
    if (percent === undefined) return;
    const p = Math.min(100, Math.max(0, percent));
    const b = Math.floor(p / this.stepPercent);
    if (b > this.bucket) {
      this.bucket = b;
      this.sink({ node: this.node, phase, percent: p, detail, elapsedMs: Date.now() - this.t0 });
    }
  }
}

/** Progress lines to the console (what a dynamic provider's user sees as diagnostics). */
export function consoleProgress(e: ProgressEvent): void {
  console.log(formatProgress(e));
}

/** Serializes async work per key (e.g. one flash at a time per BMC) inside this process. */
export class KeyedMutex {
  private tails = new Map<string, Promise<void>>();
  /** Whether work is running or queued for `key`. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(key, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** boot_id + start time of process 1 (see the file contract). Throws when it cannot be read. */
export async function bootMarker(host: Host, timeoutMs = 30_000): Promise<string> {
  const res = await host.run(["cat", "/proc/sys/kernel/random/boot_id", "/proc/1/stat"], { timeoutMs });
  if (res.code !== 0) throw new Error(`cannot read the boot marker on ${host.label}: ${tailLines(res.stderr, 5)}`);
  const [bootId, stat] = res.stdout.toString("utf8").split("\n");
  const afterComm = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields after "(comm)": state=3 ... starttime=22 → index 22 - 3 = 19
  return `${bootId.trim()}/${afterComm[19] ?? "?"}`;
}

/** The image id a node reports (/etc/isar-k3s/image-id), or undefined when the file is absent. */
export const IMAGE_ID_FILE = "/etc/isar-k3s/image-id";

export async function readImageId(host: Host, timeoutMs = 30_000): Promise<string | undefined> {
  const argv = ["sh", "-c", 'if [ -f "$1" ]; then cat "$1"; else echo "<absent>"; fi', "sh", IMAGE_ID_FILE];
  const res = await host.run(argv, { timeoutMs });
  if (res.code !== 0) throw new Error(`cannot read ${IMAGE_ID_FILE} on ${host.label}: ${tailLines(res.stderr, 5)}`);
  const s = res.stdout.toString("utf8").trim();
  return s === "<absent>" ? undefined : s;
}

/** Short form of a hash for messages: "a1b2c3d4e5f6…". */
export function short(h: string | undefined, n = 12): string {
  if (h === undefined || h === "") return "(none)";
  return h.length > n ? h.slice(0, n) + "…" : h;
}
