/** Readers of a provider's raw inputs (values as Pulumi hands them to check), shared by the methods' checks. */
import type { CheckFailure } from "../../provider-types";

export function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A non-empty string, else undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

/** A number >= `min`, `def` when absent; a failure for property `p` otherwise. */
export function num(v: unknown, def: number, p: string, f: CheckFailure[], min = 1): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) f.push({ property: p, reason: `${JSON.stringify(v)} must be a number >= ${min}` });
  return n;
}

/** The named keys of `o` (those present), e.g. a method's inputs narrowed to what its worker takes: no secret rides along. */
export function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
