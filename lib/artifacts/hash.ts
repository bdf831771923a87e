/**
 * Content hashing for ISAR artifacts: sha256 of a file or of an http(s) download, read once, in the three
 * spellings the project uses (lowercase hex, SRI "sha256-<base64>", Nix base32), plus the byte count.
 *
 * Guarantees:
 * - Files are read exactly once, sequentially, through two reused buffers (one being hashed while the
 *   other is filled), so memory stays flat (a few MiB) whatever the file size, and disk reads overlap
 *   hashing. Every full hash increments `hashCounters`, which tests use to prove a cache hit did not hash.
 * - `toNixBase32` is Nix's own base32 (alphabet "0123456789abcdfghijklmnpqrsvwxyz", digits taken from the
 *   last 5-bit group first), the form `nix-hash --type sha256 --flat --base32` prints.
 * - `downloadToFile` streams the body to a temporary file next to the destination while hashing it, and
 *   renames it onto the destination only when the transfer was complete (Content-Length honoured) and, if
 *   an expected hash was given, the hash matches. On any failure the temporary file is removed and the
 *   destination is left untouched. Errors name the URL and say what went wrong (HTTP status, truncation,
 *   hash mismatch).
 * - `HashCache` maps (real path, size, mtime, ctime, inode) to a hash so an unchanged file is not re-read;
 *   any write to the file changes its ctime, so a stale entry is never returned for modified bytes.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as path from "path";
import { Transform } from "stream";
import { pipeline } from "stream/promises";
import { hexToSri } from "../model/checks";

/** The sha256 of some bytes in every form the project prints or pins, plus the byte count. */
export interface FileHash {
  /** Lowercase hex (what `sha256sum` prints and what pins store). */
  hex: string;
  /** SRI form "sha256-<base64>" (what Nix prints in hash mismatch errors). */
  sri: string;
  /** Nix base32 (what `nix-hash --type sha256 --flat --base32` prints). */
  nixBase32: string;
  /** Number of bytes hashed. */
  size: number;
}

/** Counts full hash computations in this process (files and downloads). Tests read it to prove cache hits. */
export const hashCounters = { files: 0, bytes: 0, downloads: 0 };

/** Default read size: 4 MiB per buffer (two buffers in flight). */
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;

const NIX_BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";

/** Encode bytes in Nix's base32 (as in `nix-hash --base32`, store path hash parts). */
export function toNixBase32(bytes: Uint8Array): string {
  const len = Math.ceil((bytes.length * 8) / 5);
  let out = "";
  for (let n = len - 1; n >= 0; n--) {
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    const c = (bytes[i] >> j) | (i + 1 < bytes.length ? bytes[i + 1] << (8 - j) : 0);
    out += NIX_BASE32_ALPHABET[c & 0x1f];
  }
  return out;
}

/** Decode Nix base32 back to `byteLength` bytes; undefined if a character is outside the alphabet or bits overflow. */
export function fromNixBase32(s: string, byteLength: number): Buffer | undefined {
  if (s.length !== Math.ceil((byteLength * 8) / 5)) return undefined;
  const out = Buffer.alloc(byteLength);
  for (let n = 0; n < s.length; n++) {
    const digit = NIX_BASE32_ALPHABET.indexOf(s[s.length - n - 1]);
    if (digit < 0) return undefined;
    const b = n * 5;
    const i = b >> 3;
    const j = b & 7;
    out[i] |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < byteLength) out[i + 1] |= carry;
    else if (carry !== 0) return undefined;
  }
  return out;
}

/** All spellings of a sha256 digest given as raw bytes. */
export function digestForms(digest: Buffer, size: number): FileHash {
  const hex = digest.toString("hex");
  return { hex, sri: hexToSri(hex), nixBase32: toNixBase32(digest), size };
}

/** All spellings of a sha256 given as 64 hex digits (size is not known from a hash alone). */
export function hexForms(hex: string): Omit<FileHash, "size"> {
  const digest = Buffer.from(hex, "hex");
  return { hex: hex.toLowerCase(), sri: hexToSri(hex), nixBase32: toNixBase32(digest) };
}

export interface HashFileOptions {
  /** Bytes per read; two buffers of this size are allocated. Default 4 MiB. */
  chunkSize?: number;
}

/**
 * sha256 of a file's bytes, reading it once with two alternating buffers: while one chunk is hashed
 * (on the main thread) the next is read (on the libuv pool). Throws the fs error (ENOENT, EISDIR, ...)
 * unchanged so callers can tell a missing file from a broken one.
 */
export async function hashFile(file: string, opts: HashFileOptions = {}): Promise<FileHash> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const fh = await fs.promises.open(file, "r");
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: "EISDIR" });
    const hash = crypto.createHash("sha256");
    const bufs = [Buffer.allocUnsafe(chunkSize), Buffer.allocUnsafe(chunkSize)];
    let size = 0;
    let pos = 0;
    let which = 0;
    let pending = fh.read(bufs[which], 0, chunkSize, pos);
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      pos += bytesRead;
      const current = bufs[which];
      which ^= 1;
      // Start the next read before hashing this chunk so disk and CPU overlap.
      pending = fh.read(bufs[which], 0, chunkSize, pos);
      hash.update(bytesRead === chunkSize ? current : current.subarray(0, bytesRead));
      size += bytesRead;
    }
    hashCounters.files++;
    hashCounters.bytes += size;
    return digestForms(hash.digest(), size);
  } finally {
    await fh.close();
  }
}

/** The identity of a file's current bytes as far as the file system tells: any write changes one of these. */
export interface StatFingerprint {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export function fingerprintOf(st: fs.Stats): StatFingerprint {
  return { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, dev: st.dev };
}

export function sameFingerprint(a: StatFingerprint, b: StatFingerprint): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.ino === b.ino && a.dev === b.dev;
}

interface CacheEntry extends StatFingerprint {
  hex: string;
}

/**
 * A stat cache: real path + (size, mtime, ctime, inode, device) → sha256. In memory, optionally persisted
 * to a JSON file (written atomically: temp file + rename) so separate runs (previews, the pin command)
 * share it. A corrupt or unreadable cache file is ignored (treated as empty), never trusted partially.
 */
export class HashCache {
  private entries = new Map<string, CacheEntry>();
  private loaded = false;

  /** @param file JSON file to persist to; undefined keeps the cache in memory only. */
  constructor(readonly file?: string) {}

  private async load(): Promise<void> {
    if (this.loaded) return;
    this.loaded = true;
    if (!this.file) return;
    try {
      const raw = JSON.parse(await fs.promises.readFile(this.file, "utf8")) as unknown;
      if (raw && typeof raw === "object" && !Array.isArray(raw)) {
        for (const [k, v] of Object.entries(raw as Record<string, CacheEntry>)) {
          if (v && typeof v.hex === "string" && /^[0-9a-f]{64}$/.test(v.hex) && typeof v.size === "number") this.entries.set(k, v);
        }
      }
    } catch {
      // missing or corrupt cache: start empty
    }
  }

  private async save(): Promise<void> {
    if (!this.file) return;
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(Object.fromEntries(this.entries)), { mode: 0o600 });
    await fs.promises.rename(tmp, this.file);
  }

  /** The cached hash if the file's stat fingerprint is unchanged, else undefined (no hashing). */
  async lookup(file: string): Promise<FileHash | undefined> {
    await this.load();
    const real = await fs.promises.realpath(file);
    const e = this.entries.get(real);
    if (!e) return undefined;
    const st = await fs.promises.stat(real);
    if (!sameFingerprint(e, fingerprintOf(st))) return undefined;
    return { ...hexForms(e.hex), size: e.size };
  }

  /**
   * Hash a file unless the cache already knows its current bytes. `force` hashes regardless (and refreshes
   * the entry). The fingerprint is taken before and after hashing; if the file changed meanwhile the
   * result is returned but not cached.
   */
  async hash(file: string, opts: HashFileOptions & { force?: boolean } = {}): Promise<FileHash & { cached: boolean }> {
    await this.load();
    const real = await fs.promises.realpath(file);
    const before = fingerprintOf(await fs.promises.stat(real));
    if (!opts.force) {
      const e = this.entries.get(real);
      if (e && sameFingerprint(e, before)) return { ...hexForms(e.hex), size: e.size, cached: true };
    }
    const h = await hashFile(real, opts);
    const after = fingerprintOf(await fs.promises.stat(real));
    if (sameFingerprint(before, after) && after.size === h.size) {
      this.entries.set(real, { ...after, hex: h.hex });
      await this.save();
    }
    return { ...h, cached: false };
  }
}

/** Raised when bytes do not match the hash they were pinned to. */
export class HashMismatchError extends Error {
  constructor(
    message: string,
    readonly expectedHex: string,
    readonly actual: FileHash,
  ) {
    super(message);
    this.name = "HashMismatchError";
  }
}

/** Raised for HTTP failures: bad status, truncated body, network errors, too many redirects. */
export class DownloadError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "DownloadError";
  }
}

export interface DownloadOptions {
  /** Lowercase hex sha256 the body must have; on mismatch nothing is written to `dest`. */
  expectedHex?: string;
  /** Give up if no data arrives for this long, ms. Default 60 000. */
  idleTimeoutMs?: number;
  /** Redirects followed (301/302/303/307/308). Default 5. */
  maxRedirects?: number;
}

/** The URL with any user:password replaced, for messages and state. */
export function redactUrl(u: URL): string {
  const c = new URL(u.toString());
  if (c.username || c.password) {
    c.username = "***";
    c.password = "";
  }
  return c.toString();
}

function get(u: URL, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(u, { headers: { "user-agent": "isar-k3s-artifacts", "accept-encoding": "identity" } }, resolve);
    req.setTimeout(idleTimeoutMs, () => req.destroy(new Error(`no response within ${idleTimeoutMs} ms`)));
    req.on("error", reject);
  });
}

/**
 * Download `url` to `dest` while hashing it. The body goes to `<dest>.part-<random>` in the same directory
 * and is renamed onto `dest` only after a complete transfer and (if `expectedHex` is set) a matching hash.
 */
export async function downloadToFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<FileHash> {
  const idle = opts.idleTimeoutMs ?? 60_000;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DownloadError(`${JSON.stringify(url)} is not a valid URL: give an absolute http:// or https:// URL`, url);
  }
  const shown = redactUrl(u);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new DownloadError(`cannot download ${shown}: only http and https URLs are supported`, url);
  }
  let res: http.IncomingMessage;
  for (let redirects = 0; ; redirects++) {
    try {
      res = await get(u, idle);
    } catch (e) {
      throw new DownloadError(`download of ${shown} failed: ${(e as Error).message}: check the URL and that the server is reachable`, url);
    }
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      res.resume();
      if (redirects >= (opts.maxRedirects ?? 5)) throw new DownloadError(`download of ${shown}: more than ${opts.maxRedirects ?? 5} redirects`, url, status);
      u = new URL(res.headers.location, u);
      continue;
    }
    if (status !== 200) {
      res.resume();
      const hint =
        status === 404
          ? "the artifact is not (or no longer) at this URL: check the pin's url, or that CI published this build"
          : status === 401 || status === 403
            ? "the server refused access: check credentials for the artifact store"
            : "the server did not deliver the file";
      throw new DownloadError(`download of ${shown} failed: HTTP ${status} ${res.statusMessage ?? ""}`.trimEnd() + `: ${hint}`, url, status);
    }
    break;
  }
  const lenHeader = res.headers["content-length"];
  const expectedLength = lenHeader !== undefined && /^[0-9]+$/.test(lenHeader) ? Number(lenHeader) : undefined;
  await fs.promises.mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.part-${crypto.randomBytes(6).toString("hex")}`;
  const hash = crypto.createHash("sha256");
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  res.setTimeout(idle, () => res.destroy(new Error(`no data for ${idle} ms`)));
  try {
    try {
      await pipeline(res, tap, fs.createWriteStream(tmp, { mode: 0o644 }));
    } catch (e) {
      const msg = (e as Error).message;
      const got = expectedLength !== undefined ? `${size} of ${expectedLength} bytes` : `${size} bytes`;
      throw new DownloadError(`download of ${shown} was interrupted after ${got} (${msg}): the transfer is incomplete; retry, and check the server`, url, 200);
    }
    if (!res.complete || (expectedLength !== undefined && size !== expectedLength)) {
      throw new DownloadError(
        `download of ${shown} is truncated: received ${size} bytes` +
          (expectedLength !== undefined ? ` but Content-Length announced ${expectedLength}` : ` and the connection closed early`) +
          `: retry, and check the server`,
        url,
        200,
      );
    }
    const got = digestForms(hash.digest(), size);
    hashCounters.downloads++;
    hashCounters.bytes += size;
    if (opts.expectedHex !== undefined && got.hex !== opts.expectedHex.toLowerCase()) {
      throw new HashMismatchError(
        `hash mismatch in download of ${shown}:\n  specified: ${hexToSri(opts.expectedHex)}\n  got:       ${got.sri}`,
        opts.expectedHex.toLowerCase(),
        got,
      );
    }
    await fs.promises.rename(tmp, dest);
    return got;
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}
