/**
 * Disk images for the lab: find the ext4 root filesystem in a flashed image (bare ext4, or a .wic-like
 * disk with an MBR or GPT partition table), copy a node's identity files out of it with `debugfs`
 * (e2fsprogs: no mount, no loop device), and build such images for tests.
 *
 * Guarantees: images are only read (debugfs opens them read-only); files missing from the image are
 * simply not extracted; `makeDiskImage` writes a valid MBR or GPT (CRC32s included) whose first partition
 * holds an ext4 filesystem populated from a directory (`mkfs.ext4 -d`).
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { promisify } from "util";
import * as zlib from "zlib";

const exec = promisify(execFile);
const EXT_MAGIC_OFFSET = 1024 + 56;

async function readAt(fh: fs.promises.FileHandle, pos: number, len: number): Promise<Buffer> {
  const b = Buffer.alloc(len);
  const { bytesRead } = await fh.read(b, 0, len, pos);
  return b.subarray(0, bytesRead);
}

async function isExtAt(fh: fs.promises.FileHandle, offset: number): Promise<boolean> {
  const m = await readAt(fh, offset + EXT_MAGIC_OFFSET, 2);
  return m.length === 2 && m.readUInt16LE(0) === 0xef53;
}

/** Byte offsets of the ext2/3/4 filesystems in an image: 0 for a bare filesystem, else its partitions in table order. */
export async function findExtFilesystems(imagePath: string): Promise<number[]> {
  const fh = await fs.promises.open(imagePath, "r");
  try {
    if (await isExtAt(fh, 0)) return [0];
    const mbr = await readAt(fh, 0, 512);
    if (mbr.length < 512 || mbr[510] !== 0x55 || mbr[511] !== 0xaa) return [];
    const starts: number[] = [];
    const types = [0, 1, 2, 3].map((i) => mbr[446 + i * 16 + 4]);
    if (types.includes(0xee)) {
      const hdr = await readAt(fh, 512, 92);
      if (hdr.subarray(0, 8).toString("latin1") !== "EFI PART") return [];
      const entriesLba = Number(hdr.readBigUInt64LE(72));
      const count = hdr.readUInt32LE(80);
      const size = hdr.readUInt32LE(84);
      const table = await readAt(fh, entriesLba * 512, Math.min(count, 128) * size);
      for (let i = 0; i * size + size <= table.length; i++) {
        const e = table.subarray(i * size, (i + 1) * size);
        if (e.subarray(0, 16).every((x) => x === 0)) continue;
        starts.push(Number(e.readBigUInt64LE(32)) * 512);
      }
    } else {
      for (let i = 0; i < 4; i++) {
        const e = mbr.subarray(446 + i * 16, 446 + (i + 1) * 16);
        if (e[4] === 0 || e[4] === 0x05 || e[4] === 0x0f) continue;
        starts.push(e.readUInt32LE(8) * 512);
      }
    }
    const out: number[] = [];
    for (const s of starts) if (await isExtAt(fh, s)) out.push(s);
    return out;
  } finally {
    await fh.close();
  }
}

/** Does the filesystem at `offset` have this path? */
async function hasPath(imagePath: string, offset: number, p: string): Promise<boolean> {
  const r = await exec("debugfs", ["-R", `stat "${p}"`, `${imagePath}?offset=${offset}`], { maxBuffer: 1 << 20 }).catch(
    (e) => e as { stdout?: string; stderr?: string },
  );
  return !/not found|File not found|Bad magic|Couldn't find/i.test(`${r.stderr ?? ""}`) && /Inode:/.test(`${r.stdout ?? ""}`);
}

/** The offset of the root filesystem (the first ext filesystem holding /etc), or undefined. */
export async function findRootFilesystem(imagePath: string): Promise<number | undefined> {
  for (const off of await findExtFilesystems(imagePath)) if (await hasPath(imagePath, off, "/etc")) return off;
  return undefined;
}

const SAFE_PATH = /^\/[A-Za-z0-9._/+@-]*$/;

/**
 * Copy `files` (regular files) and `dirs` (recursively) from the filesystem at `offset` of `imagePath`
 * into `destRoot` (same relative paths). Returns the paths that existed and were copied.
 */
export async function extractFromImage(imagePath: string, offset: number, destRoot: string, files: string[], dirs: string[] = []): Promise<string[]> {
  const spec = `${imagePath}?offset=${offset}`;
  const copied: string[] = [];
  const cmds: string[] = [];
  const wanted: string[] = [];
  for (const p of [...files, ...dirs]) {
    if (!SAFE_PATH.test(p) || p.split("/").includes("..")) throw new Error(`lab image: refusing path ${JSON.stringify(p)} (absolute, [A-Za-z0-9._/+@-] only)`);
  }
  for (const f of files) {
    if (!(await hasPath(imagePath, offset, f))) continue;
    const dst = path.join(destRoot, f);
    await fs.promises.mkdir(path.dirname(dst), { recursive: true });
    await fs.promises.rm(dst, { force: true, recursive: true });
    cmds.push(`dump -p "${f}" "${dst}"`);
    wanted.push(f);
  }
  for (const d of dirs) {
    if (!(await hasPath(imagePath, offset, d))) continue;
    const parent = path.join(destRoot, path.dirname(d));
    await fs.promises.mkdir(parent, { recursive: true });
    await fs.promises.rm(path.join(destRoot, d), { force: true, recursive: true });
    cmds.push(`rdump "${d}" "${parent}"`);
    wanted.push(d);
  }
  if (cmds.length === 0) return copied;
  const cmdFile = path.join(destRoot, `.debugfs-${process.pid}-${Date.now()}.cmd`);
  await fs.promises.writeFile(cmdFile, cmds.join("\n") + "\n");
  try {
    await exec("debugfs", ["-f", cmdFile, spec], { maxBuffer: 4 << 20 });
  } catch (e) {
    throw new Error(
      `lab image: debugfs could not read ${imagePath} at offset ${offset}: ${String((e as { stderr?: string }).stderr ?? e)
        .split("\n")
        .slice(-10)
        .join("\n")}`,
      { cause: e },
    );
  } finally {
    await fs.promises.rm(cmdFile, { force: true });
  }
  for (const w of wanted) if (fs.existsSync(path.join(destRoot, w))) copied.push(w);
  return copied;
}

export interface MakeImageOptions {
  /** Directory whose contents become the root filesystem. */
  rootDir: string;
  out: string;
  /** "bare": the file is the ext4 filesystem; "mbr"/"gpt": a disk with one partition at 1 MiB. */
  layout: "bare" | "mbr" | "gpt";
  /** Total size, MiB (default 16). */
  sizeMiB?: number;
}

function guid(): Buffer {
  return Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256)));
}

/** Build a test disk image (see MakeImageOptions). */
export async function makeDiskImage(o: MakeImageOptions): Promise<void> {
  const size = (o.sizeMiB ?? 16) << 20;
  await fs.promises.rm(o.out, { force: true });
  const part = 1 << 20;
  const fsStart = o.layout === "bare" ? 0 : part;
  const fsEnd = o.layout === "gpt" ? size - part : size; // room for the backup GPT
  await fs.promises.writeFile(o.out, Buffer.alloc(0));
  await fs.promises.truncate(o.out, size);
  const fsKiB = (fsEnd - fsStart) >> 10;
  const args = ["-q", "-F", "-t", "ext4", "-d", o.rootDir];
  if (fsStart) args.push("-E", `offset=${fsStart}`);
  args.push(o.out, `${fsKiB}k`);
  await exec("mkfs.ext4", args);
  if (o.layout === "bare") return;
  const sectors = size / 512;
  const first = fsStart / 512;
  const last = fsEnd / 512 - 1;
  const fh = await fs.promises.open(o.out, "r+");
  try {
    const mbr = Buffer.alloc(512);
    const e = mbr.subarray(446, 462);
    if (o.layout === "mbr") {
      e[4] = 0x83;
      e.writeUInt32LE(first, 8);
      e.writeUInt32LE(last - first + 1, 12);
    } else {
      e[4] = 0xee;
      e.writeUInt32LE(1, 8);
      e.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), 12);
    }
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    await fh.write(mbr, 0, 512, 0);
    if (o.layout === "gpt") {
      const entries = Buffer.alloc(128 * 128);
      const linuxFs = Buffer.from("af3dc60f838472478e793d69d8477de4", "hex"); // 0FC63DAF-8483-4772-8E79-3D69D8477DE4, mixed-endian
      linuxFs.copy(entries, 0);
      guid().copy(entries, 16);
      entries.writeBigUInt64LE(BigInt(first), 32);
      entries.writeBigUInt64LE(BigInt(last), 40);
      Buffer.from("rootfs", "utf16le").copy(entries, 56);
      const entriesCrc = zlib.crc32(entries);
      const diskGuid = guid();
      const header = (myLba: number, altLba: number, entriesLba: number): Buffer => {
        const h = Buffer.alloc(512);
        h.write("EFI PART", 0, "latin1");
        h.writeUInt32LE(0x00010000, 8);
        h.writeUInt32LE(92, 12);
        h.writeBigUInt64LE(BigInt(myLba), 24);
        h.writeBigUInt64LE(BigInt(altLba), 32);
        h.writeBigUInt64LE(34n, 40);
        h.writeBigUInt64LE(BigInt(sectors - 34), 48);
        diskGuid.copy(h, 56);
        h.writeBigUInt64LE(BigInt(entriesLba), 72);
        h.writeUInt32LE(128, 80);
        h.writeUInt32LE(128, 84);
        h.writeUInt32LE(entriesCrc, 88);
        h.writeUInt32LE(zlib.crc32(h.subarray(0, 92)), 16);
        return h;
      };
      await fh.write(header(1, sectors - 1, 2), 0, 512, 512);
      await fh.write(entries, 0, entries.length, 1024);
      await fh.write(entries, 0, entries.length, (sectors - 33) * 512);
      await fh.write(header(sectors - 1, 1, sectors - 33), 0, 512, (sectors - 1) * 512);
    }
  } finally {
    await fh.close();
  }
}
