/**
 * Cluster token generation for stacks that cannot use @pulumi/random (no provider plugin reachable,
 * as on this project's offline machines): `length` characters of [A-Za-z0-9] drawn from the OS CSPRNG
 * by rejection sampling (no modulo bias). The same alphabet RandomPassword uses with special: false.
 */
import { randomBytes } from "crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function generateToken(length = 48): string {
  if (!Number.isInteger(length) || length < 32 || length > 256) throw new Error(`token length ${length} must be an integer from 32 to 256`);
  let out = "";
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < 248) out += ALPHABET[b % 62]; // 248 = 4 * 62: bytes above it would bias the draw
      if (out.length === length) break;
    }
  }
  return out;
}
