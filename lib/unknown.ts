/**
 * Pulumi's "unknown" marker as dynamic providers see it: during `pulumi preview`, an input computed
 * from another resource's not-yet-known output reaches check/diff as this sentinel string. Checks must
 * skip validating such values (they are validated again at `up`, when known); diffs must treat them as
 * "will change". One definition here, for every provider's lib code.
 */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** True when `v` is the unknown sentinel or contains it anywhere (arrays and plain objects). */
export function containsUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(containsUnknown);
  if (v !== null && typeof v === "object") return Object.values(v as Record<string, unknown>).some(containsUnknown);
  return false;
}
