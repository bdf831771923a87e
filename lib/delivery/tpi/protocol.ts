/**
 * The `tpi` command line (turing-machines/tpi): argv builders and readers of its output. Pure.
 *
 * - `tpi flash` exits 0 on BMC-side failures and prints "Error occured during flashing: …" on stderr;
 *   success ends with "Done" on stdout (`parseFlashOutcome` needs both).
 * - An older tpi refuses `--sha256` with clap's usage error (exit 2).
 */
import { normalizeSha256 } from "../../transport/syntax";

export function tpiFlashArgv(slot: number, imagePath: string, sha256?: string): string[] {
  checkSlot(slot);
  const argv = ["tpi", "flash", "--local", "-n", String(slot), "-i", imagePath];
  if (sha256 !== undefined) {
    const hex = normalizeSha256(sha256);
    if (!hex) throw new Error(`sha256 ${JSON.stringify(sha256)} is not a sha256`);
    argv.push("--sha256", hex);
  }
  return argv;
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

export type FlashOutcome = { ok: true } | { ok: false; kind: "bmc-error" | "exit" | "no-done" | "sha256-unsupported"; message: string };

/**
 * Decide a `tpi flash` result from exit code AND output: tpi prints "Error occured during flashing: …"
 * on stderr and still exits 0 when the BMC fails; success ends with "Done".
 */
export function parseFlashOutcome(r: { code: number | null; stdout: string; stderr: string }): FlashOutcome {
  const err = r.stderr;
  const bmcErr = /Error occu?rr?ed during flashing[^\n]*/i.exec(err);
  if (bmcErr) return { ok: false, kind: "bmc-error", message: bmcErr[0].trim() };
  if (r.code !== 0) {
    if (r.code === 2 && /unexpected argument '--sha256'|unrecognized.*--sha256|Found argument '--sha256'/i.test(err)) {
      return { ok: false, kind: "sha256-unsupported", message: "this tpi does not know --sha256" };
    }
    const first = err.split("\n").find((l) => /error/i.test(l)) ?? err.split("\n").find((l) => l.trim()) ?? "";
    return { ok: false, kind: "exit", message: `tpi exited ${r.code === null ? "by a signal" : r.code}${first ? `: ${first.trim()}` : ""}` };
  }
  const lines = r.stdout
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l);
  if (lines.length === 0 || !/^Done\b/i.test(lines[lines.length - 1])) {
    return {
      ok: false,
      kind: "no-done",
      message: `tpi exited 0 but did not report "Done" (last line: ${JSON.stringify(lines[lines.length - 1] ?? "")}): the outcome is unknown, treating it as a failure`,
    };
  }
  return { ok: true };
}

/** The last percentage in a chunk of tpi output ("Writing: 40% (…)"), or undefined. */
export function lastPercent(text: string): number | undefined {
  const all = [...text.matchAll(/(\d{1,3}(?:\.\d+)?)\s?%/g)];
  if (all.length === 0) return undefined;
  const v = Number(all[all.length - 1][1]);
  return v >= 0 && v <= 100 ? v : undefined;
}

/** `tpi power status` → slot → on. Lines like "node1: On". */
export function parsePowerStatus(stdout: string): Record<number, boolean> {
  const out: Record<number, boolean> = {};
  for (const m of stdout.matchAll(/node\s*([1-4])\s*:\s*(on|off)/gi)) out[Number(m[1])] = m[2].toLowerCase() === "on";
  return out;
}
