/**
 * cpio "crc" writer: golden header bytes, alignment properties over random small sizes, GNU cpio listing
 * and byte-for-byte extraction (GNU cpio verifies the crc checksum on extraction), equality with GNU
 * `cpio -o -H crc --reproducible` up to inode numbering, SWUpdate order and limit errors, backpressure.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { Writable } from "stream";
import { CPIO_MAX_FILE_SIZE, CpioError, CpioWriter, byteSum, cpioCheck, encodeHeader, padLength, scanFile } from "../../lib/swupdate/cpio";
import { run } from "../../lib/swupdate/run";
import { tempDir } from "./helpers";

interface ParsedEntry {
  magic: string;
  fields: number[]; // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  name: string;
  data: Buffer;
  headerOffset: number;
}

/** Independent reader for the test: walks an archive, asserting 4-byte alignment of names and data. */
function parseCpio(buf: Buffer): { entries: ParsedEntry[]; end: number } {
  const entries: ParsedEntry[] = [];
  let off = 0;
  for (;;) {
    const magic = buf.toString("latin1", off, off + 6);
    expect(magic).toBe("070702");
    const fields: number[] = [];
    for (let i = 0; i < 13; i++) {
      const f = buf.toString("latin1", off + 6 + i * 8, off + 14 + i * 8);
      expect(f).toMatch(/^[0-9A-F]{8}$/);
      fields.push(parseInt(f, 16));
    }
    const namesize = fields[11];
    const name = buf.toString("utf8", off + 110, off + 110 + namesize - 1);
    expect(buf[off + 110 + namesize - 1]).toBe(0);
    let p = off + 110 + namesize;
    while (p % 4 !== 0) expect(buf[p++]).toBe(0);
    const data = buf.subarray(p, p + fields[6]);
    entries.push({ magic, fields, name, data, headerOffset: off });
    p += fields[6];
    while (p % 4 !== 0) expect(buf[p++]).toBe(0);
    off = p;
    if (name === "TRAILER!!!") break;
  }
  return { entries, end: off };
}

class Sink extends Writable {
  chunks: Buffer[] = [];
  maxBuffered = 0;
  constructor(
    private delayMs = 0,
    hwm = 64 * 1024,
  ) {
    super({ highWaterMark: hwm });
  }
  _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(Buffer.from(chunk));
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    if (this.delayMs > 0) setTimeout(cb, this.delayMs);
    else cb();
  }
  get data(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

let dir: string;
beforeAll(async () => {
  dir = await tempDir("swu-cpio-");
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

describe("header encoder (golden bytes)", () => {
  test("one-letter name: 110 + 2 bytes, no padding, GNU field order and upper-case hex", () => {
    const h = encodeHeader({ name: "a", ino: 1, size: 3, check: 0x126 });
    const want =
      "070702" +
      "00000001" + // ino
      "000081A4" + // mode 0100644
      "00000000" + // uid
      "00000000" + // gid
      "00000001" + // nlink
      "00000000" + // mtime
      "00000003" + // filesize
      "00000000" + // devmajor
      "00000000" + // devminor
      "00000000" + // rdevmajor
      "00000000" + // rdevminor
      "00000002" + // namesize incl NUL
      "00000126" + // check
      "a\0";
    expect(h.toString("latin1")).toBe(want);
    expect(h.length).toBe(112);
  });

  test("sw-description: namesize 15, padded from 125 to 128 bytes with NULs", () => {
    const h = encodeHeader({ name: "sw-description", ino: 1, size: 0x1234, check: 0xdeadbeef });
    expect(h.length).toBe(128);
    expect(h.toString("latin1", 0, 110)).toBe(
      "070702" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" + "00000000" + "00001234" + "00000000".repeat(4) + "0000000F" + "DEADBEEF",
    );
    expect(h.subarray(110)).toEqual(Buffer.from("sw-description\0\0\0\0", "latin1"));
  });

  test("trailer as GNU cpio writes it (ino 0, mode 0, nlink 1, namesize 11)", () => {
    const h = encodeHeader({ name: "TRAILER!!!", ino: 0, mode: 0, nlink: 1, size: 0, check: 0 });
    expect(h.toString("latin1")).toBe(
      "070702" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000".repeat(6) + "0000000B" + "00000000" + "TRAILER!!!\0" + "\0\0\0",
    ); // 121 bytes padded to 124
  });

  test("names over 250 bytes (SWUpdate's limit with TMPDIR=/tmp) and sizes over 4 GiB - 1 are refused, naming the file", () => {
    expect(() => encodeHeader({ name: "x".repeat(250), ino: 1, size: 0, check: 0 })).not.toThrow();
    expect(() => encodeHeader({ name: "y".repeat(251), ino: 1, size: 0, check: 0 })).toThrow(/251 bytes.*at most 250/);
    expect(() => encodeHeader({ name: "y".repeat(255), ino: 1, size: 0, check: 0 })).toThrow(/255 bytes.*at most 250/);
    expect(() => encodeHeader({ name: "é".repeat(128), ino: 1, size: 0, check: 0 })).toThrow(CpioError); // 256 UTF-8 bytes
    expect(() => encodeHeader({ name: "big.img", ino: 1, size: CPIO_MAX_FILE_SIZE, check: 0 })).not.toThrow();
    expect(() => encodeHeader({ name: "big.img", ino: 1, size: CPIO_MAX_FILE_SIZE + 1, check: 0 })).toThrow(/"big\.img" is 4294967296 bytes.*4 GiB - 1/);
    expect(() => encodeHeader({ name: "", ino: 1, size: 0, check: 0 })).toThrow(/empty/);
    expect(() => encodeHeader({ name: "a\0b", ino: 1, size: 0, check: 0 })).toThrow(/NUL/);
  });
});

describe("checksum", () => {
  test("byteSum equals a naive byte loop for random buffers at every alignment", () => {
    for (let i = 0; i < 200; i++) {
      const len = Math.floor(Math.random() * 5000);
      const backing = crypto.randomBytes(len + 8);
      const start = i % 4;
      const view = backing.subarray(start, start + len);
      let naive = 0;
      for (const b of view) naive += b;
      expect(byteSum(view)).toBe(naive);
    }
    // All 0xff: lanes at their maximum for many words.
    const ff = Buffer.alloc(1 << 20, 0xff);
    expect(byteSum(ff)).toBe(255 * (1 << 20));
  });

  test("cpioCheck wraps modulo 2^32", () => {
    // 16843010 bytes of 0xff sum to 4294967550 = 2^32 + 254.
    const b = Buffer.alloc(16843010, 0xff);
    expect(cpioCheck(b)).toBe(254);
  });

  test("scanFile gives size, sha256 and check in one pass", async () => {
    const f = path.join(dir, "scan.bin");
    const data = crypto.randomBytes(3 * 1024 * 1024 + 3);
    await fs.promises.writeFile(f, data);
    const s = await scanFile(f);
    expect(s).toEqual({ size: data.length, sha256: crypto.createHash("sha256").update(data).digest("hex"), check: cpioCheck(data) });
  });
});

describe("property: random sizes 0-5 bytes around alignment edges", () => {
  test("every archive is aligned, 512-padded, listed and extracted byte-for-byte by GNU cpio", async () => {
    for (let round = 0; round < 12; round++) {
      const rdir = await fs.promises.mkdtemp(path.join(dir, "prop-"));
      const files: { name: string; data: Buffer }[] = [];
      const n = 1 + Math.floor(Math.random() * 6);
      for (let i = 0; i < n; i++) {
        // Sizes 0-5, and 0-5 around multiples of 4 and 512; name lengths moving the header across mod 4.
        const bases = [0, 4, 508, 512, 4096];
        const size = bases[Math.floor(Math.random() * bases.length)] + Math.floor(Math.random() * 6);
        const name = `f${i}_` + "n".repeat(Math.floor(Math.random() * 6));
        files.push({ name, data: crypto.randomBytes(size) });
      }
      const sink = new Sink();
      const w = new CpioWriter(sink, { swuOrder: false, hash: true });
      for (const [i, f] of files.entries()) {
        if (i % 2 === 0) {
          await w.addBuffer(f.name, f.data);
        } else {
          const p = path.join(rdir, "src-" + f.name);
          await fs.promises.writeFile(p, f.data);
          await w.addFile(f.name, p);
        }
      }
      const total = await w.finish();
      const archive = sink.data;
      expect(archive.length).toBe(total);
      expect(total % 512).toBe(0);
      expect(w.sha256()).toBe(crypto.createHash("sha256").update(archive).digest("hex"));
      const parsed = parseCpio(archive);
      expect(parsed.entries.map((e) => e.name)).toEqual([...files.map((f) => f.name), "TRAILER!!!"]);
      parsed.entries.slice(0, -1).forEach((e, i) => {
        expect(e.fields[0]).toBe(i + 1); // ino 1..n
        expect(e.fields[1]).toBe(0o100644);
        expect(e.fields[5]).toBe(0); // mtime
        expect(e.data.equals(files[i].data)).toBe(true);
        expect(e.fields[12]).toBe(cpioCheck(files[i].data));
      });
      expect(archive.subarray(parsed.end).every((b) => b === 0)).toBe(true);
      expect(archive.length - parsed.end).toBeLessThan(512);

      const swu = path.join(rdir, "a.cpio");
      await fs.promises.writeFile(swu, archive);
      const list = await run(["cpio", "-t", "--quiet", "-F", swu]);
      expect(list.code).toBe(0);
      expect(list.stdout.toString().trim().split("\n")).toEqual(files.map((f) => f.name));
      const x = path.join(rdir, "x");
      await fs.promises.mkdir(x);
      const ex = await run(["cpio", "-i", "--quiet", "-F", swu], { cwd: x });
      expect(ex.outputTail).toBe(""); // GNU cpio prints "checksum error" for a wrong crc
      expect(ex.code).toBe(0);
      for (const f of files) {
        expect((await fs.promises.readFile(path.join(x, f.name))).equals(f.data)).toBe(true);
      }
      await fs.promises.rm(rdir, { recursive: true, force: true });
    }
  });

  test("GNU cpio reports a checksum error when the check field is wrong (the test above can fail)", async () => {
    const sink = new Sink();
    const w = new CpioWriter(sink, { swuOrder: false });
    await w.addBuffer("f", Buffer.from("hello"));
    await w.finish();
    const bad = sink.data;
    bad[109] = bad[109] === 0x30 ? 0x31 : 0x30; // last hex digit of c_check
    const f = path.join(dir, "bad.cpio");
    await fs.promises.writeFile(f, bad);
    const x = await fs.promises.mkdtemp(path.join(dir, "badx-"));
    const ex = await run(["cpio", "-i", "--quiet", "-F", f], { cwd: x });
    expect(ex.outputTail).toMatch(/checksum error/);
  });
});

test("same bytes as GNU `cpio -o -H crc --reproducible` except inode numbers (GNU counts from 0)", async () => {
  const g = await fs.promises.mkdtemp(path.join(dir, "gnu-"));
  const files = [
    { name: "sw-description", data: Buffer.from('software = { version = "1"; };\n') },
    { name: "sw-description.sig", data: crypto.randomBytes(257) },
    { name: "rootfs.ext4", data: crypto.randomBytes(70001) },
    { name: "empty", data: Buffer.alloc(0) },
  ];
  for (const f of files) {
    const p = path.join(g, f.name);
    await fs.promises.writeFile(p, f.data, { mode: 0o644 });
    await fs.promises.chmod(p, 0o644);
    await fs.promises.utimes(p, 0, 0);
  }
  if (process.getuid && process.getuid() !== 0) return; // GNU records the real uid/gid; ours are 0
  const gnu = await run(["cpio", "-o", "-H", "crc", "--reproducible", "--quiet"], { cwd: g, input: files.map((f) => f.name).join("\n") + "\n" });
  expect(gnu.code).toBe(0);
  const sink = new Sink();
  const w = new CpioWriter(sink);
  for (const f of files) await w.addFile(f.name, path.join(g, f.name));
  await w.finish();
  const ours = parseCpio(sink.data);
  const theirs = parseCpio(gnu.stdout);
  expect(ours.entries.length).toBe(theirs.entries.length);
  ours.entries.forEach((e, i) => {
    const t = theirs.entries[i];
    const isTrailer = e.name === "TRAILER!!!";
    expect(e.fields[0]).toBe(isTrailer ? 0 : i + 1);
    expect(t.fields[0]).toBe(isTrailer ? 0 : i);
    expect(e.fields.slice(1)).toEqual(t.fields.slice(1));
    expect(e.name).toBe(t.name);
    expect(e.data.equals(t.data)).toBe(true);
  });
  expect(sink.data.length).toBe(gnu.stdout.length);
});

describe("SWUpdate order and misuse", () => {
  test("sw-description must come first and the signature second", async () => {
    const w1 = new CpioWriter(new Sink());
    await expect(w1.addBuffer("rootfs.ext4", Buffer.from("x"))).rejects.toThrow(/first entry must be "sw-description", got "rootfs.ext4"/);
    const w2 = new CpioWriter(new Sink());
    await w2.addBuffer("sw-description", Buffer.from("x"));
    await w2.addBuffer("image", Buffer.from("x"));
    await expect(w2.addBuffer("sw-description.sig", Buffer.from("x"))).rejects.toThrow(/must be the second entry/);
    await expect(w2.addBuffer("image", Buffer.from("y"))).rejects.toThrow(/added twice/);
    await expect(w2.addBuffer("TRAILER!!!", Buffer.from("y"))).rejects.toThrow(/reserved/);
    await w2.finish();
    await expect(w2.addBuffer("late", Buffer.from("y"))).rejects.toThrow(/after finish/);
    await expect(new CpioWriter(new Sink()).finish()).rejects.toThrow(/empty/);
  });

  test("a file over 4 GiB - 1 is refused before any byte is written", async () => {
    const sink = new Sink();
    const w = new CpioWriter(sink, { swuOrder: false });
    const f = path.join(dir, "huge.img");
    await fs.promises.writeFile(f, "");
    await expect(w.addFile("huge.img", f, { size: CPIO_MAX_FILE_SIZE + 1, sha256: "0".repeat(64), check: 0 })).rejects.toThrow(
      /"huge\.img" is 4294967296 bytes/,
    );
    expect(sink.data.length).toBe(0);
  });

  test("a file that changed size between scan and copy is an error naming it", async () => {
    const f = path.join(dir, "moving.img");
    await fs.promises.writeFile(f, Buffer.alloc(1000, 1));
    const scan = await scanFile(f);
    await fs.promises.appendFile(f, Buffer.alloc(10, 1));
    const w = new CpioWriter(new Sink(), { swuOrder: false });
    await expect(w.addFile("moving.img", f, scan)).rejects.toThrow(
      /moving\.img changed while the bundle was written \(1000 bytes scanned, it grew past that\)/,
    );
    await fs.promises.truncate(f, 900);
    const w2 = new CpioWriter(new Sink(), { swuOrder: false });
    await expect(w2.addFile("moving.img", f, scan)).rejects.toThrow(/\(1000 bytes scanned, only 900 could be copied\)/);
  });
});

test("backpressure: a slow consumer never has more than a few MiB queued while a 24 MiB file streams", async () => {
  const f = path.join(dir, "stream.img");
  const data = crypto.randomBytes(24 * 1024 * 1024);
  await fs.promises.writeFile(f, data);
  const sink = new Sink(1, 64 * 1024);
  const w = new CpioWriter(sink, { swuOrder: false });
  await w.addFile("stream.img", f);
  await w.finish();
  expect(sink.maxBuffered).toBeLessThanOrEqual(2 * 1024 * 1024 + 64 * 1024);
  const parsed = parseCpio(sink.data);
  expect(parsed.entries[0].data.equals(data)).toBe(true);
  expect(padLength(5)).toBe(3);
});
