/**
 * The error every delivery failure is reported with.
 *
 * Guarantees: a `DeliveryError` always names the node, the phase and where it ran (BMC and slot, or the
 * node's SSH endpoint), says how to fix it when we know, and carries at most the last 40 lines of the
 * output of the command that failed. Secrets are never put into it (callers pass output tails only).
 */
import { tailLines } from "../../transport/host";
import { UNKNOWN } from "../../unknown";

export type DeliveryPhase =
  "check" | "connect-bmc" | "upload" | "check-image" | "flash" | "flash-check" | "power-on" | "boot" | "verify" | "connect" | "install" | "reboot" | "delete";

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

/** Short form of a hash for messages: "a1b2c3d4e5f6…". */
export function short(h: string | undefined, n = 12): string {
  if (h === undefined || h === "") return "(none)";
  return h.length > n ? h.slice(0, n) + "…" : h;
}

/** `short`, saying so for a value only known at `up` (preview's unknown sentinel). */
export function shortKnown(v: string | undefined): string {
  return v === UNKNOWN ? "(known after the image is built)" : short(v);
}
