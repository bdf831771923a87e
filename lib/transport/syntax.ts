/**
 * Syntax of what the transport itself handles: OpenSSH public key lines (host key pins) and sha256
 * digests (upload verification). Pure predicates; the fleet model's checks (lib/model/checks.ts)
 * re-export them, so the transport needs nothing from the model.
 */

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
