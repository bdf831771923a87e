/**
 * Syntax predicates for fleet config values. Pure functions, no I/O. Each returns a boolean; the
 * messages that say how to fix a value live with the parser (./parse.ts), which knows the config path.
 * The syntax of host key pins and sha256 digests belongs to the transport (lib/transport/syntax.ts) and is
 * re-exported here.
 */
export { isHexSha256, isOpenSshPublicKey, normalizeSha256 } from "../transport/syntax";

/** Dotted-quad IPv4, each octet 0–255, no leading zeros ("010.1.1.1" is ambiguous and refused). */
export function isIPv4(s: string): boolean {
  const parts = s.split(".");
  if (parts.length !== 4) return false;
  return parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** IPv4 CIDR such as "10.42.0.0/16". */
export function isIPv4Cidr(s: string): boolean {
  const m = /^([^/]+)\/([0-9]{1,2})$/.exec(s);
  return m !== null && isIPv4(m[1]) && Number(m[2]) <= 32;
}

export function isPort(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** RFC 1123 label: 1–63 of [a-z0-9-], starting and ending alphanumeric. */
export function isRfc1123Label(s: string): boolean {
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(s);
}

/** RFC 1123 subdomain (dot-joined labels, at most 253 characters). */
export function isRfc1123Subdomain(s: string): boolean {
  return s.length <= 253 && s.split(".").every(isRfc1123Label);
}

/** Kubernetes qualified name part: 1–63 chars, alphanumeric ends, [-_.A-Za-z0-9] inside. */
function isQualifiedNamePart(s: string): boolean {
  return /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(s);
}

/** Kubernetes label (and taint) key: optional DNS-subdomain prefix and '/', then a name part. */
export function isLabelKey(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash === -1) return isQualifiedNamePart(s);
  const prefix = s.slice(0, slash);
  const name = s.slice(slash + 1);
  return isRfc1123Subdomain(prefix) && isQualifiedNamePart(name);
}

/** Kubernetes label value: empty, or up to 63 chars with alphanumeric ends and [-_.A-Za-z0-9] inside. */
export function isLabelValue(s: string): boolean {
  return s === "" || isQualifiedNamePart(s);
}

/** SRI form of a hex sha256. */
export function hexToSri(hex: string): string {
  return "sha256-" + Buffer.from(hex, "hex").toString("base64");
}

/** A semver-ish version string safe for file names and libconfig: digits, letters, '.', '-', '+', '_'. */
export function isVersionString(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(s);
}

/** A Linux network interface name (IFNAMSIZ - 1 = 15 bytes, no '/', whitespace or ':'). */
export function isInterfaceName(s: string): boolean {
  return /^[A-Za-z0-9_.-]{1,15}$/.test(s) && s !== "." && s !== "..";
}

/** A plain user name for SSH logins (POSIX portable user name). */
export function isUserName(s: string): boolean {
  return /^[a-z_][a-z0-9_-]{0,31}$/.test(s);
}

/** A config value as error messages show it: a string quoted, else its kind ("a list", "number 7"). */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (Array.isArray(v)) return "a list";
  if (v === null) return "null";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}
