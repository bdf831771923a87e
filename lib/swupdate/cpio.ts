/**
 * Streaming writer for cpio "crc" archives (magic 070702), the container format of SWUpdate .swu bundles.
 *
 * Contract:
 * - Every entry is a regular file: 110-byte ASCII header (magic + 13 fields of 8 upper-case hex digits),
 *   name + NUL padded to a 4-byte boundary, data padded to a 4-byte boundary. `check` is the sum of all
 *   data bytes modulo 2^32 (what SWUpdate verifies). The archive ends with a "TRAILER!!!" entry and is
 *   padded with zeros to a multiple of 512 bytes.
 * - Deterministic: mtime 0, uid/gid 0, mode 0100644, nlink 1, device numbers 0, inodes numbered 1..n in
 *   the order entries are added (the trailer has inode 0, as GNU cpio writes it).
 * - SWUpdate order is enforced by default: the first entry is `sw-description`; `sw-description.sig`, when
 *   present, is the second. Names are unique, non-empty, without NUL, at most 250 bytes (CPIO_MAX_NAME_BYTES); data is at
 *   most 4 GiB - 1 bytes. Violations throw a `CpioError` naming the file.
 * - File data is never held in memory: `scanFile` computes size, sha256 and check in one streaming pass;
 *   `addFile` then streams the bytes with backpressure (two reused 1 MiB buffers, each refilled only after
 *   the output stream's write callback; the output stream's own highWaterMark/drain is honoured for
 *   headers) and fails if the byte count differs from the scan (content changes of equal size are caught by the
 *   sha256 SWUpdate checks, not here).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import { Writable } from "stream";

export const CPIO_CRC_MAGIC = "070702";
export const CPIO_HEADER_SIZE = 110;
/** Largest data size a cpio entry can describe (32-bit filesize field). */
export const CPIO_MAX_FILE_SIZE = 0xffffffff;
/**
 * Longest accepted name in bytes. The cpio header would carry 254 (SWUpdate rejects namesize >= 256), but
 * SWUpdate extracts each member to "$TMPDIR/<name>" and refuses a path over 255 bytes ("Path too long"):
 * with a board's default TMPDIR /tmp that leaves 250 (test/swupdate/name-limit.test.ts shows both sides
 * with the real swupdate).
 */
export const CPIO_MAX_NAME_BYTES = 250;
export const CPIO_TRAILER_NAME = "TRAILER!!!";
export const CPIO_BLOCK = 512;
/** S_IFREG | 0644. */
export const REGULAR_FILE_MODE = 0o100644;

export class CpioError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CpioError";
  }
}

/** Bytes of padding needed to bring `n` up to a multiple of `align`. */
export function padLength(n: number, align = 4): number {
  const r = n % align;
  return r === 0 ? 0 : align - r;
}

/** Header fields of one entry; everything not listed is fixed (see the contract). */
export interface CpioHeaderFields {
  name: string;
  ino: number;
  size: number;
  check: number;
  /** Defaults to 0100644. The trailer uses 0. */
  mode?: number;
  /** Defaults to 1. */
  nlink?: number;
}

function hex8(n: number, field: string, name: string): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new CpioError(`cpio entry ${JSON.stringify(name)}: ${field} ${n} does not fit in 32 bits`);
  }
  return n.toString(16).toUpperCase().padStart(8, "0");
}

/** Check an entry name against what the format and SWUpdate accept. */
export function validateEntryName(name: string): void {
  if (name.length === 0) throw new CpioError("cpio entry name is empty: give every bundle file a name");
  if (name.includes("\0")) throw new CpioError(`cpio entry name ${JSON.stringify(name)} contains a NUL byte: rename the file`);
  const bytes = Buffer.byteLength(name, "utf8");
  if (bytes > CPIO_MAX_NAME_BYTES) {
    throw new CpioError(
      `cpio entry name ${JSON.stringify(name.slice(0, 40) + "…")} is ${bytes} bytes: SWUpdate accepts names of at most ${CPIO_MAX_NAME_BYTES} bytes; use a shorter file name`,
    );
  }
}

export function validateEntrySize(name: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new CpioError(`cpio entry ${JSON.stringify(name)}: invalid size ${size}`);
  if (size > CPIO_MAX_FILE_SIZE) {
    throw new CpioError(
      `cpio entry ${JSON.stringify(name)} is ${size} bytes: the cpio format (and SWUpdate) allows at most 4 GiB - 1 (${CPIO_MAX_FILE_SIZE}) bytes per file; compress or split the artifact`,
    );
  }
}

/**
 * Encode one header followed by the name, its NUL and the padding to 4 bytes. Pure; throws CpioError for
 * names or sizes the format cannot carry.
 */
export function encodeHeader(h: CpioHeaderFields): Buffer {
  if (h.name !== CPIO_TRAILER_NAME) validateEntryName(h.name);
  validateEntrySize(h.name, h.size);
  const nameBytes = Buffer.from(h.name, "utf8");
  const namesize = nameBytes.length + 1;
  const fields = [
    h.ino, // c_ino
    h.mode ?? REGULAR_FILE_MODE, // c_mode
    0, // c_uid
    0, // c_gid
    h.nlink ?? 1, // c_nlink
    0, // c_mtime
    h.size, // c_filesize
    0, // c_devmajor
    0, // c_devminor
    0, // c_rdevmajor
    0, // c_rdevminor
    namesize, // c_namesize
    h.check, // c_check
  ];
  const names = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"];
  const ascii = CPIO_CRC_MAGIC + fields.map((v, i) => hex8(v, names[i], h.name)).join("");
  const total = CPIO_HEADER_SIZE + namesize;
  const out = Buffer.alloc(total + padLength(total));
  out.write(ascii, 0, "latin1");
  nameBytes.copy(out, CPIO_HEADER_SIZE);
  return out;
}

/** Sum of the bytes of `buf` (an exact integer, not reduced). Reads 32-bit words where aligned. */
export function byteSum(buf: Uint8Array): number {
  let sum = 0;
  let i = 0;
  const n = buf.length;
  // Unaligned head.
  while (i < n && (buf.byteOffset + i) % 4 !== 0) sum += buf[i++];
  const words = Math.floor((n - i) / 4);
  if (words > 0) {
    const u32 = new Uint32Array(buf.buffer, buf.byteOffset + i, words);
    // Two 16-bit lanes per accumulator; 256 words * 255 per lane stays below 2^16 (no carry).
    let w = 0;
    while (w < words) {
      const end = Math.min(words, w + 256);
      let lo = 0;
      let hi = 0;
      for (; w < end; w++) {
        const x = u32[w];
        lo += x & 0x00ff00ff;
        hi += (x >>> 8) & 0x00ff00ff;
      }
      sum += (lo & 0xffff) + (lo >>> 16) + (hi & 0xffff) + (hi >>> 16);
    }
    i += words * 4;
  }
  while (i < n) sum += buf[i++];
  return sum;
}

/** cpio "crc" check of a buffer: sum of bytes mod 2^32. */
export function cpioCheck(buf: Uint8Array): number {
  return byteSum(buf) % 0x100000000;
}

export interface FileScan {
  size: number;
  /** Lowercase hex sha256 of the bytes. */
  sha256: string;
  /** Sum of bytes mod 2^32. */
  check: number;
}

const READ_CHUNK = 1 << 20;

/** One streaming pass over a file: size, sha256 and cpio check, with constant memory (one reused buffer). */
export async function scanFile(path: string): Promise<FileScan> {
  const hash = crypto.createHash("sha256");
  let sum = 0;
  let size = 0;
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  const fh = await fs.promises.open(path, "r");
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, READ_CHUNK, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      hash.update(chunk);
      sum = (sum + byteSum(chunk)) % 0x100000000;
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { size, sha256: hash.digest("hex"), check: sum };
}

export function scanBuffer(buf: Buffer): FileScan {
  return { size: buf.length, sha256: crypto.createHash("sha256").update(buf).digest("hex"), check: cpioCheck(buf) };
}

export interface CpioWriterOptions {
  /** Enforce SWUpdate order (sw-description first, .sig second). Default true. */
  swuOrder?: boolean;
  /** Also compute the sha256 of the archive bytes as they are written (see `sha256()`). Default false. */
  hash?: boolean;
}

/**
 * Writes entries to `out` in order. Call `finish()` once; it writes the trailer and end padding and
 * resolves with the total archive size. The caller owns `out` (finish does not end it).
 */
export class CpioWriter {
  private readonly out: Writable;
  private readonly swuOrder: boolean;
  private readonly names = new Set<string>();
  private offset = 0;
  private nextIno = 1;
  private finished = false;
  private busy = false;
  private readonly hash?: crypto.Hash;

  constructor(out: Writable, opts: CpioWriterOptions = {}) {
    this.out = out;
    this.swuOrder = opts.swuOrder ?? true;
    if (opts.hash) this.hash = crypto.createHash("sha256");
  }

  /** Lowercase hex sha256 of the whole archive; only with `hash: true`, after `finish()`. */
  sha256(): string {
    if (!this.hash || !this.finished) throw new CpioError("archive sha256 is available only with { hash: true } after finish()");
    return this.hash.copy().digest("hex");
  }

  /** Bytes written so far. */
  get size(): number {
    return this.offset;
  }

  private checkOrder(name: string): void {
    if (this.finished) throw new CpioError(`cpio entry ${JSON.stringify(name)} added after finish()`);
    if (this.busy) throw new CpioError(`cpio entry ${JSON.stringify(name)} added while another entry is still being written: await each add`);
    validateEntryName(name);
    if (name === CPIO_TRAILER_NAME) throw new CpioError(`cpio entry name ${CPIO_TRAILER_NAME} is reserved for the archive end`);
    if (this.names.has(name)) throw new CpioError(`cpio entry ${JSON.stringify(name)} is added twice: bundle file names must be unique`);
    if (this.swuOrder) {
      const index = this.names.size;
      if (index === 0 && name !== "sw-description") {
        throw new CpioError(`SWUpdate bundle: the first entry must be "sw-description", got ${JSON.stringify(name)}`);
      }
      if (name === "sw-description.sig" && index !== 1) {
        throw new CpioError(`SWUpdate bundle: "sw-description.sig" must be the second entry, right after "sw-description"`);
      }
    }
  }

  private async write(buf: Buffer): Promise<void> {
    if (buf.length === 0) return;
    this.offset += buf.length;
    this.hash?.update(buf);
    if (!this.out.write(buf)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = () => {
          this.out.off("error", onError);
          resolve();
        };
        const onError = (e: Error) => {
          this.out.off("drain", onDrain);
          reject(e);
        };
        this.out.once("drain", onDrain);
        this.out.once("error", onError);
      });
    }
  }

  /** Add an in-memory entry (sw-description, signature, scripts). */
  async addBuffer(name: string, data: Buffer): Promise<void> {
    this.checkOrder(name);
    validateEntrySize(name, data.length);
    this.busy = true;
    try {
      this.names.add(name);
      await this.write(encodeHeader({ name, ino: this.nextIno++, size: data.length, check: cpioCheck(data) }));
      await this.write(data);
      await this.write(Buffer.alloc(padLength(data.length)));
    } finally {
      this.busy = false;
    }
  }

  /**
   * Stream a file's bytes into `out` with backpressure and constant memory: two reused 1 MiB buffers; a
   * buffer is refilled only after the stream's write callback reported its previous chunk written, so at
   * most two chunks are ever queued. Stops once more than `limit` bytes were copied (a growing file).
   * Returns the number of bytes copied.
   */
  private async copyFrom(path: string, limit: number): Promise<number> {
    const fh = await fs.promises.open(path, "r");
    const pool = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
    const inFlight: Promise<void>[] = [Promise.resolve(), Promise.resolve()];
    let copied = 0;
    try {
      for (let i = 0; ; i ^= 1) {
        await inFlight[i];
        if (copied > limit) break;
        const want = Math.min(READ_CHUNK, limit - copied + 1);
        const { bytesRead } = await fh.read(pool[i], 0, want, null);
        if (bytesRead === 0) break;
        const chunk = pool[i].subarray(0, bytesRead);
        copied += bytesRead;
        this.offset += bytesRead;
        this.hash?.update(chunk);
        inFlight[i] = new Promise<void>((resolve, reject) => {
          this.out.write(chunk, (err) => (err ? reject(err) : resolve()));
        });
        inFlight[i].catch(() => undefined); // observed by the await above or below
      }
      await Promise.all(inFlight);
    } finally {
      await Promise.allSettled(inFlight);
      await fh.close();
    }
    return copied;
  }

  /**
   * Add a file entry, streaming its bytes. `scan` (from `scanFile`) supplies size and check; without it
   * the file is scanned first. The copy pass recounts the bytes and throws if the size changed.
   */
  async addFile(name: string, path: string, scan?: FileScan): Promise<FileScan> {
    this.checkOrder(name);
    const s = scan ?? (await scanFile(path));
    validateEntrySize(name, s.size);
    this.busy = true;
    try {
      this.names.add(name);
      await this.write(encodeHeader({ name, ino: this.nextIno++, size: s.size, check: s.check }));
      const copied = await this.copyFrom(path, s.size);
      if (copied !== s.size) {
        const what = copied > s.size ? "it grew past that" : `only ${copied} could be copied`;
        throw new CpioError(`${path} changed while the bundle was written (${s.size} bytes scanned, ${what}): rebuild when the artifact is stable`);
      }
      await this.write(Buffer.alloc(padLength(copied)));
      return s;
    } finally {
      this.busy = false;
    }
  }

  /** Write the trailer and pad the archive to 512 bytes. Resolves with the archive size. */
  async finish(): Promise<number> {
    if (this.finished) throw new CpioError("cpio archive finished twice");
    if (this.swuOrder && this.names.size === 0) throw new CpioError("SWUpdate bundle is empty: sw-description is required");
    this.finished = true;
    await this.write(encodeHeader({ name: CPIO_TRAILER_NAME, ino: 0, mode: 0, nlink: 1, size: 0, check: 0 }));
    await this.write(Buffer.alloc(padLength(this.offset, CPIO_BLOCK)));
    return this.offset;
  }
}
