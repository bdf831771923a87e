/**
 * The `tpi` command line (turing-machines/tpi 1.0.7) and the BMC API it calls: argv builders, readers of
 * tpi's output and of the API's flash status. Pure functions and fixed scripts only; every value reaches
 * a shell as a positional parameter.
 *
 * Facts this relies on (the real tpi against the firmware's bmcd API; see lab/README.md):
 *   - `tpi flash --local` sends the BMC neither `--sha256` nor `--skip-crc` (the firmware takes no
 *     checksum for local files and always reads the module back for its crc check).
 *   - tpi prints runtime errors on stdout (exit 1), BMC-side flash errors on stderr with exit 0
 *     (`Error occured during flashing: "<text>"`), `Done` on stdout at the end; a panic (e.g. `Invalid
 *     flashing handle` when another flash took over) exits 101 with the message on stderr.
 *   - `GET /api/bmc?opt=get&type=flash` answers `"Ready"`, `{"Transferring":{"id","size","bytes_written",..}}`,
 *     `{"Done":[{"secs","nanos"},size]}` or `{"Error":"<text>"}`. While a flash runs, `bytes_written`
 *     counts the bytes written to the module, then counts again from 0 while the BMC reads them back.
 *     A new flash request replaces the running transfer (a new `id`).
 *   - tpi on the BMC reaches that API at 127.0.0.1:443 without a login, or at $TPI_HOSTNAME / $TPI_PORT
 *     (its own settings); the status poll below asks the same address. The firmware ships curl.
 */
import { tailLines } from "../../transport/host";

/** `tpi flash --local`: no --sha256 (tpi drops it with --local; flash.ts checks the BMC's copy instead). */
export function tpiFlashArgv(slot: number, imagePath: string): string[] {
  checkSlot(slot);
  return ["tpi", "flash", "--local", "-n", String(slot), "-i", imagePath];
}

export function tpiPowerArgv(action: "on" | "off" | "reset" | "status", slot?: number): string[] {
  if (slot !== undefined) checkSlot(slot);
  return ["tpi", "power", action, ...(slot !== undefined ? ["-n", String(slot)] : [])];
}

export function tpiUartGetArgv(slot: number): string[] {
  checkSlot(slot);
  return ["tpi", "uart", "get", "-n", String(slot)];
}

function checkSlot(slot: number): void {
  if (![1, 2, 3, 4].includes(slot)) throw new Error(`slot ${slot} is not a Turing Pi 2 slot (1–4)`);
}

/** `tpi power status` → slot → on. Lines like "node1: On". */
export function parsePowerStatus(stdout: string): Record<number, boolean> {
  const out: Record<number, boolean> = {};
  for (const m of stdout.matchAll(/node\s*([1-4])\s*:\s*(on|off)/gi)) out[Number(m[1])] = m[2].toLowerCase() === "on";
  return out;
}

export type BmcFlashStatus =
  | { state: "Ready" }
  | { state: "Transferring"; id: number; size: number; bytesWritten: number }
  | { state: "Done"; seconds: number; size: number }
  | { state: "Error"; message: string };

/** Asks the BMC's own API for the flash status, at the address tpi uses. Fixed script, no parameters. */
export const FLASH_STATUS_SCRIPT = 'exec curl -sSk --max-time 10 "https://${TPI_HOSTNAME:-127.0.0.1}${TPI_PORT:+:$TPI_PORT}/api/bmc?opt=get&type=flash"';

export function flashStatusArgv(): string[] {
  return ["sh", "-c", FLASH_STATUS_SCRIPT];
}

/** Parse the API's flash status; undefined when it is not one of the firmware's shapes. */
export function parseFlashStatus(text: string): BmcFlashStatus | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (v === "Ready") return { state: "Ready" };
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const t = o.Transferring as Record<string, unknown> | undefined;
  if (t && typeof t.id === "number" && typeof t.size === "number" && typeof t.bytes_written === "number") {
    return { state: "Transferring", id: t.id, size: t.size, bytesWritten: t.bytes_written };
  }
  const d = o.Done;
  if (Array.isArray(d) && d.length === 2 && typeof d[1] === "number") {
    const dur = d[0] as { secs?: number; nanos?: number };
    return { state: "Done", seconds: (dur?.secs ?? 0) + (dur?.nanos ?? 0) / 1e9, size: d[1] };
  }
  if (typeof o.Error === "string") return { state: "Error", message: o.Error };
  return undefined;
}

export interface FlashProgress {
  stage: "writing" | "read-back";
  percent: number;
}

/**
 * Follows one flash through successive status polls: the first transfer id seen is ours; the stage
 * switches to the read-back when `bytes_written` falls (it restarts from 0 for that pass); another id later
 * means another client's flash replaced ours (the BMC cancels the running one).
 */
export class FlashWatcher {
  handle?: number;
  foreignHandle?: number;
  stage: FlashProgress["stage"] = "writing";
  private last = 0;
  private size = 0;

  observe(s: BmcFlashStatus | undefined): FlashProgress | undefined {
    if (!s || s.state !== "Transferring") return undefined;
    if (this.handle === undefined) this.handle = s.id;
    else if (s.id !== this.handle) {
      this.foreignHandle ??= s.id;
      return undefined;
    }
    this.size = s.size;
    // writing only counts up: a smaller count for the same transfer is the read-back pass
    if (this.stage === "writing" && s.bytesWritten < this.last) this.stage = "read-back";
    this.last = s.bytesWritten;
    return { stage: this.stage, percent: this.size > 0 ? Math.min(100, (100 * s.bytesWritten) / this.size) : 0 };
  }
}

export type FlashOutcome = { ok: true } | { ok: false; kind: "bmc-error" | "exit" | "replaced" | "no-done"; message: string };

/** The line of tpi's output that says why it failed: its error lines are on stdout, panics on stderr. */
function causeLine(text: string): string {
  const lines = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !/^(Flashing from image file|request flashing of|started transfer of|note: run with)/.test(l));
  return lines[lines.length - 1] ?? "";
}

/**
 * Decide a `tpi flash` result from exit code AND output: tpi prints "Error occured during flashing: …"
 * on stderr and still exits 0 when the BMC fails; success ends with "Done" on stdout.
 */
export function parseFlashOutcome(r: { code: number | null; stdout: string; stderr: string }): FlashOutcome {
  const bmcErr = /Error occu?rr?ed during flashing: ?(.*)/i.exec(r.stderr);
  if (bmcErr) {
    const text = bmcErr[1].trim().replace(/^"(.*)"$/, "$1");
    return { ok: false, kind: "bmc-error", message: `the BMC reported a flash error: ${text}` };
  }
  if (/Invalid flashing handle/.test(r.stderr)) {
    return {
      ok: false,
      kind: "replaced",
      message: "another flash through this BMC replaced ours (the BMC runs one transfer at a time and cancels the running one)",
    };
  }
  if (r.code !== 0) {
    const cause = causeLine(r.stdout) || causeLine(r.stderr);
    return { ok: false, kind: "exit", message: `tpi exited ${r.code === null ? "by a signal" : r.code}${cause ? `: ${cause}` : ""}` };
  }
  const unexpected = /Unexpected response:?(.*)/.exec(r.stderr);
  if (unexpected)
    return {
      ok: false,
      kind: "bmc-error",
      message: `tpi could not read the BMC's flash status: Unexpected response${unexpected[1].trim() ? ` ${unexpected[1].trim()}` : ""}`,
    };
  const lines = r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l);
  if (lines.length === 0 || lines[lines.length - 1] !== "Done") {
    return {
      ok: false,
      kind: "no-done",
      message: `tpi exited 0 but did not report "Done" (last line: ${JSON.stringify(lines[lines.length - 1] ?? "")}): the outcome is unknown, treating it as a failure`,
    };
  }
  return { ok: true };
}

/** The last lines of a command's stdout and of its stderr, labelled, for an error message. */
export function outputTails(r: { stdout: string; stderr: string }, command = "tpi", lines = 15): string {
  const parts: string[] = [];
  if (r.stdout.trim()) parts.push(`${command} stdout (last lines):\n${tailLines(r.stdout, lines)}`);
  if (r.stderr.trim()) parts.push(`${command} stderr (last lines):\n${tailLines(r.stderr, lines)}`);
  return parts.join("\n");
}
