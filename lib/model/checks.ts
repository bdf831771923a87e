/**
 * Syntax predicates for fleet config values. Pure functions, no I/O. Each returns a boolean; the
 * messages that say how to fix a value live with the parser (./parse.ts), which knows the config path.
 */

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

/** Lowercase or uppercase 64-digit hex. */
export function isHexSha256(s: string): boolean {
  return /^[0-9a-fA-F]{64}$/.test(s);
}

/**
 * Normalise a sha256 pin given as hex or SRI ("sha256-<base64 of 32 bytes>") to lowercase hex.
 * Returns undefined for anything else.
 */
export function normalizeSha256(s: string): string | undefined {
  if (isHexSha256(s)) return s.toLowerCase();
  const m = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(s);
  if (!m) return undefined;
  const bytes = Buffer.from(m[1], "base64");
  if (bytes.length !== 32 || bytes.toString("base64") !== m[1]) return undefined;
  return bytes.toString("hex");
}

/** SRI form of a hex sha256. */
export function hexToSri(hex: string): string {
  return "sha256-" + Buffer.from(hex, "hex").toString("base64");
}

const SSH_KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/**
 * An OpenSSH public key line: "<type> <base64 blob> [comment]" where the blob decodes to a wire-format
 * key whose first field repeats the type. A single line (no newline, no NUL).
 */
export function isOpenSshPublicKey(s: string): boolean {
  if (/[\r\n\0]/.test(s)) return false;
  const parts = s.trim().split(/\s+/);
  if (parts.length < 2) return false;
  const [type, blob] = parts;
  if (!SSH_KEY_TYPES.has(type)) return false;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return false;
  const raw = Buffer.from(blob, "base64");
  if (raw.length < 4) return false;
  const n = raw.readUInt32BE(0);
  if (n !== type.length || raw.length < 4 + n) return false;
  return raw.subarray(4, 4 + n).toString("latin1") === type;
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
