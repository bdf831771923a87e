/**
 * buildBundle: ISAR artifacts of one hardware kind + version in, a signed SWUpdate .swu bundle out.
 *
 * Contract:
 * - Output is written atomically: a temp file in the output directory, fsync, rename. On any failure the
 *   temp file (and any encrypted intermediates) are removed and the previous bundle, if any, stays.
 * - Deterministic apart from the signature: same inputs (including the AES key) give the same
 *   sw-description and the same archive layout. RSA PKCS#1 v1.5 bundles are byte-identical; CMS adds
 *   openssl's signingTime attribute and RSA-PSS a random salt, so only the .sig bytes (and the bundle
 *   sha256) change between builds.
 * - Every image is read once to compute size, sha256 and cpio check (and compared with its pinned sha256
 *   when given) and once more to copy it; nothing is held in memory whole.
 * - sw-description: entries nested under the hardware name (the bundle installs only on that board) with
 *   the given revisions; rootfs → `archive` into "/" (tarballs) or `raw` onto a device (filesystem and disk
 *   images); wic → `raw` onto the disk device; kernel → `rawfile` at /boot/<name>; initramfs, dtb,
 *   firmware → `files` (rawfile at /boot/<name>, firmware tarballs → archive into "/"); the generated
 *   post-update script (restart k3s / k3s-agent, wait for Ready) as `scripts`.
 * - The signing key and AES key are secrets: they never reach argv, logs or error messages (see sign.ts).
 */
import * as fs from "fs";
import * as path from "path";
import * as crypto from "crypto";
import type { ArtifactKind, SigningMethod } from "../model/types";
import { normalizeSha256 } from "../model/checks";
import { CpioError, CpioWriter, FileScan, scanBuffer, scanFile, validateEntryName, validateEntrySize } from "./cpio";
import { Compression, SwEntry, SwSection, renderSwDescription } from "./swdescription";
import { deriveIvt, encryptFile, parseAesKeyFile, signSwDescription, withPrivateDir } from "./sign";
import { PostUpdateScriptOptions, renderPostUpdateScript } from "./postupdate";

export class BundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BundleError";
  }
}

export interface BundleImage {
  /** Local file to put into the bundle. */
  path: string;
  /** What the file is; decides the SWUpdate handler and target. */
  kind: ArtifactKind;
  /** Name inside the bundle; default: the file's basename. */
  name?: string;
  /** Pinned sha256 (hex or SRI) of the file; the build fails when the file differs. */
  sha256?: string;
  /** Target device for raw images (rootfs filesystem images, wic). Per-mode devices come from `selection`. */
  device?: string;
  /** Target path overriding the default (/boot/<name> for rawfiles, "/" for archives). */
  targetPath?: string;
  /** The file is already compressed and SWUpdate decompresses it while installing: "zstd", or "zlib" = gzip format (.gz). */
  compressed?: Compression;
}

export interface BundleSelection {
  /** Software set, e.g. "stable". */
  set: string;
  /** Mode → the device the rootfs (or wic) is written to in that mode, e.g. { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" }. */
  rootDevices: Record<string, string>;
}

export interface BuildBundleOptions {
  /** Hardware kind (board name in sw-description and in -H / /etc/hwrevision). */
  hardware: string;
  /** Accepted board revisions. */
  hwRevisions: string[];
  version: string;
  description?: string;
  images: BundleImage[];
  signing: SigningMethod;
  /** PEM private key. Secret. */
  key: string;
  /** PEM certificate (CMS). */
  cert?: string;
  selection?: BundleSelection;
  /** SWUpdate AES key file text "<hexkey> <hexiv>": encrypt every image and file. Secret. */
  encrypt?: string;
  /** Post-update script options; false leaves the script out. Default: generated, role detected on the node. */
  postUpdate?: PostUpdateScriptOptions | false;
  /** Where the bundle goes (directories are created). */
  outPath: string;
  /** openssl binary for CMS; default "openssl". */
  openssl?: string;
}

export interface BundleEntryInfo {
  name: string;
  size: number;
  sha256: string;
}

export interface BundleResult {
  path: string;
  size: number;
  /** sha256 of the .swu file. */
  sha256: string;
  swDescription: string;
  entries: BundleEntryInfo[];
}

const TARBALL = /\.(tar|tar\.gz|tgz|tar\.xz|txz|tar\.zst|tar\.bz2)$/;
export const POST_UPDATE_SCRIPT_NAME = "post-update.sh";

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

async function checkCompressedMagic(file: string, c: Compression): Promise<void> {
  const fh = await fs.promises.open(file, "r");
  try {
    const b = Buffer.alloc(4);
    const { bytesRead } = await fh.read(b, 0, 4, 0);
    // SWUpdate's "zlib" means the gzip format (inflate with gzip framing): a bare zlib stream fails there.
    const ok = c === "zstd" ? bytesRead === 4 && b.equals(ZSTD_MAGIC) : bytesRead >= 2 && b[0] === 0x1f && b[1] === 0x8b;
    const want = c === "zstd" ? "zstd" : 'gzip (SWUpdate\'s "zlib" is gzip-framed: use gzip, not a bare zlib stream)';
    if (!ok) throw new BundleError(`${file} is declared compressed = "${c}" but does not start with a ${want} header: compress it first or drop "compressed"`);
  } finally {
    await fh.close();
  }
}

interface Planned {
  image: BundleImage;
  name: string;
  /** File actually stored (the original or its encrypted copy). */
  storedPath: string;
  stored: FileScan;
  ivt?: string;
}

function entryFor(p: Planned, mode: string | undefined, sel: BundleSelection | undefined): { section: keyof SwSection; entry: SwEntry } {
  const img = p.image;
  const base: SwEntry = {
    filename: p.name,
    type: "rawfile",
    sha256: p.stored.sha256,
    compressed: img.compressed,
    encrypted: p.ivt !== undefined ? true : undefined,
    ivt: p.ivt,
  };
  const device = mode !== undefined && sel ? sel.rootDevices[mode] : img.device;
  switch (img.kind) {
    case "rootfs":
      if (TARBALL.test(p.name)) {
        // With A/B selections the tarball is unpacked into the mode's partition (mounted by SWUpdate).
        if (mode !== undefined) return { section: "images", entry: { ...base, type: "archive", device, filesystem: "ext4", path: img.targetPath ?? "/" } };
        return { section: "images", entry: { ...base, type: "archive", path: img.targetPath ?? "/" } };
      }
      if (!device) throw new BundleError(`rootfs ${p.name} is a filesystem image: give its target device (images[].device, or selection.rootDevices)`);
      return { section: "images", entry: { ...base, type: "raw", device } };
    case "wic":
      if (!device) throw new BundleError(`wic ${p.name} is a disk image: give its target disk device (images[].device, or selection.rootDevices)`);
      return { section: "images", entry: { ...base, type: "raw", device } };
    case "kernel":
      return { section: "images", entry: { ...base, type: "rawfile", path: img.targetPath ?? `/boot/${p.name}` } };
    case "firmware":
      if (TARBALL.test(p.name)) return { section: "files", entry: { ...base, type: "archive", path: img.targetPath ?? "/" } };
      return { section: "files", entry: { ...base, type: "rawfile", path: img.targetPath ?? `/lib/firmware/${p.name}` } };
    case "initramfs":
    case "dtb":
      return { section: "files", entry: { ...base, type: "rawfile", path: img.targetPath ?? `/boot/${p.name}` } };
    default:
      throw new BundleError(`image ${p.name}: unknown kind ${JSON.stringify(img.kind)}`);
  }
}

function sectionFor(
  planned: Planned[],
  script: { name: string; sha256: string } | undefined,
  mode: string | undefined,
  sel: BundleSelection | undefined,
): SwSection {
  const s: Required<SwSection> = { images: [], files: [], scripts: [] };
  for (const p of planned) {
    const { section, entry } = entryFor(p, mode, sel);
    s[section].push(entry);
  }
  if (script) s.scripts.push({ filename: script.name, type: "shellscript", sha256: script.sha256 });
  return s;
}

function validateOptions(o: BuildBundleOptions): void {
  if (o.images.length === 0) throw new BundleError(`bundle ${o.hardware} ${o.version}: no images given`);
  if (o.signing === "cms" && !o.cert) throw new BundleError(`bundle ${o.hardware} ${o.version}: CMS signing needs the certificate (swupdate.certificate)`);
  if (!path.isAbsolute(o.outPath)) throw new BundleError(`bundle output path ${o.outPath} must be absolute`);
  if (o.selection) {
    const modes = Object.keys(o.selection.rootDevices);
    if (modes.length === 0)
      throw new BundleError(`selection ${o.selection.set}: rootDevices is empty; give e.g. { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" }`);
  }
  const names = new Set<string>();
  for (const img of o.images) {
    const name = img.name ?? path.basename(img.path);
    validateEntryName(name);
    if (names.has(name)) throw new BundleError(`two images are named ${name} in the bundle: set images[].name to tell them apart`);
    if (name === POST_UPDATE_SCRIPT_NAME && o.postUpdate !== false) throw new BundleError(`image name ${name} is reserved for the post-update script`);
    names.add(name);
    if (img.sha256 !== undefined && normalizeSha256(img.sha256) === undefined) {
      throw new BundleError(`image ${name}: sha256 ${JSON.stringify(img.sha256)} is neither 64 hex digits nor sha256-<base64>`);
    }
  }
}

/** Build the bundle; see the file contract. */
export async function buildBundle(o: BuildBundleOptions): Promise<BundleResult> {
  validateOptions(o);
  const outDir = path.dirname(o.outPath);
  await fs.promises.mkdir(outDir, { recursive: true });
  const aes = o.encrypt !== undefined ? parseAesKeyFile(o.encrypt) : undefined;

  return withPrivateDir(async (work) => {
    // Pass 1: scan (and encrypt) every image.
    const planned: Planned[] = [];
    for (const img of o.images) {
      const name = img.name ?? path.basename(img.path);
      let scan: FileScan;
      try {
        const st = await fs.promises.stat(img.path);
        if (!st.isFile()) throw new BundleError(`image ${img.path} is not a regular file`);
        // Refuse before reading gigabytes; AES padding adds at most 16 bytes.
        validateEntrySize(name, aes ? st.size + 16 - (st.size % 16) : st.size);
        if (img.compressed) await checkCompressedMagic(img.path, img.compressed);
        scan = await scanFile(img.path);
      } catch (e) {
        if (e instanceof BundleError || e instanceof CpioError) throw e;
        throw new BundleError(`cannot read image ${img.path}: ${(e as Error).message}`);
      }
      const want = img.sha256 !== undefined ? normalizeSha256(img.sha256) : undefined;
      if (want !== undefined && want !== scan.sha256) {
        throw new BundleError(`image ${img.path} has sha256 ${scan.sha256}, but ${want} is pinned: the artifact changed; re-import it and update the pin`);
      }
      if (aes) {
        const ivt = deriveIvt(aes.key, name, scan.sha256);
        const enc = path.join(work, `${planned.length}.enc`);
        await encryptFile(img.path, enc, aes.key, ivt);
        planned.push({ image: img, name, storedPath: enc, stored: await scanFile(enc), ivt });
      } else {
        planned.push({ image: img, name, storedPath: img.path, stored: scan });
      }
    }

    const scriptText = o.postUpdate === false ? undefined : Buffer.from(renderPostUpdateScript(o.postUpdate ?? {}), "utf8");
    const script = scriptText ? { name: POST_UPDATE_SCRIPT_NAME, sha256: scanBuffer(scriptText).sha256 } : undefined;

    const swDescription = renderSwDescription({
      version: o.version,
      description: o.description,
      board: o.hardware,
      hardwareCompatibility: o.hwRevisions,
      entries: o.selection ? undefined : sectionFor(planned, script, undefined, undefined),
      selections: o.selection
        ? {
            set: o.selection.set,
            modes: Object.fromEntries(Object.keys(o.selection.rootDevices).map((m) => [m, sectionFor(planned, script, m, o.selection)])),
          }
        : undefined,
    });
    const swd = Buffer.from(swDescription, "utf8");
    const sig = await signSwDescription(swd, { method: o.signing, key: o.key, certificate: o.cert, openssl: o.openssl });

    // Pass 2: write the archive to a temp file next to the target, then rename.
    const tmp = path.join(outDir, `.${path.basename(o.outPath)}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`);
    const out = fs.createWriteStream(tmp, { flags: "wx", mode: 0o644, highWaterMark: 1 << 20 });
    const opened = new Promise<void>((resolve, reject) => {
      out.once("open", () => resolve());
      out.once("error", reject);
    });
    let renamed = false;
    try {
      await opened;
      const w = new CpioWriter(out, { hash: true });
      await w.addBuffer("sw-description", swd);
      await w.addBuffer("sw-description.sig", sig);
      for (const p of planned) await w.addFile(p.name, p.storedPath, p.stored);
      if (scriptText && script) await w.addBuffer(script.name, scriptText);
      const size = await w.finish();
      await new Promise<void>((resolve, reject) => {
        out.once("error", reject);
        out.end(() => resolve());
      });
      const fh = await fs.promises.open(tmp, "r");
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.promises.rename(tmp, o.outPath);
      renamed = true;
      const entries: BundleEntryInfo[] = [
        { name: "sw-description", size: swd.length, sha256: scanBuffer(swd).sha256 },
        { name: "sw-description.sig", size: sig.length, sha256: scanBuffer(sig).sha256 },
        ...planned.map((p) => ({ name: p.name, size: p.stored.size, sha256: p.stored.sha256 })),
        ...(script && scriptText ? [{ name: script.name, size: scriptText.length, sha256: script.sha256 }] : []),
      ];
      return { path: o.outPath, size, sha256: w.sha256(), swDescription, entries };
    } finally {
      if (!renamed) {
        out.destroy();
        await fs.promises.rm(tmp, { force: true });
      }
    }
  }, outDir);
}
