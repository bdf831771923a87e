/**
 * Delivery progress: events, their one-line text, and the rate limiter.
 *
 * Guarantee: `ProgressReporter` emits one line per phase change and at most one line per `stepPercent`
 * of progress (default 10 %), plus the final 100 %: a dynamic provider's console output becomes Pulumi
 * diagnostics, which must stay readable over a flash of tens of minutes.
 */
import type { DeliveryPhase } from "./errors";

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
