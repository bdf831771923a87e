/**
 * The decisions behind the SwuBundle and FleetUpdate dynamic resources (providers/swupdate.ts), testable
 * without Pulumi.
 *
 * Contract (SwuBundle, one per hardware and version):
 * - check: validates every input and fills defaults (signing "cms", file name "<hardware>-<version>.swu",
 *   image names, post-update script on); image sha256 pins are normalised to lowercase hex. Failures name
 *   the input and the fix; secret values never appear in them.
 * - diff: compares inputs key by key (image files are represented by their pinned sha256: no big file is
 *   read); any change → replace, listing the changed keys. The output file missing or of another size
 *   (a stat, no read), or found changed by refresh (`outputValid: false`) → replace. When the
 *   replacement writes to the same path, deleteBeforeReplace is set so the old resource's delete cannot
 *   remove the new file.
 * - create: buildBundle (atomic write); outputs path, size, sha256, sw-description, entries and the file
 *   identity (device + inode) used by read and delete.
 * - read: missing file → blank id (dropped from state, the next up rebuilds); different size or sha256 →
 *   `outputValid: false`.
 * - delete: removes the bundle only if the file at the path is still the one this resource wrote (same
 *   device + inode).
 *
 * FleetUpdate: manifest.json + checksums.txt in a directory. Input changes → update in place (rewrite),
 * except outputDir → replace. read: missing manifest → blank id; changed → `outputValid: false` (diff then
 * rewrites). delete removes both files.
 */
import { UNKNOWN } from "../unknown";
import { renderPostUpdateScript } from "./postupdate";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { HARDWARE, SIGNING_METHODS, type ArtifactKind, type SigningMethod, ARTIFACT_KINDS } from "../model/types";
import { isVersionString, normalizeSha256 } from "../model/checks";
import { BundleImage, BundleSelection, buildBundle } from "./bundle";
import { FleetManifestInput, ManifestBundle, ManifestNode, canonicalJson, renderFleetManifest, writeFleetUpdate } from "./manifest";
import { Compression, isLibconfigName } from "./swdescription";
import { CPIO_MAX_NAME_BYTES } from "./cpio";
import { parseAesKeyFile } from "./sign";
import type { CheckFailure } from "../provider-types";

export type { CheckFailure };

export interface SwuBundleImageInput {
  path: string;
  sha256: string;
  kind: ArtifactKind;
  name: string;
  device?: string;
  targetPath?: string;
  compressed?: Compression;
}

export interface SwuBundleInputs {
  hardware: string;
  hwRevisions: string[];
  version: string;
  description?: string;
  images: SwuBundleImageInput[];
  signing: SigningMethod;
  certificate?: string;
  signingKey: string;
  encryptionKey?: string;
  selection?: BundleSelection;
  postUpdate: boolean;
  postUpdateTimeoutSeconds: number;
  /** sha256 of the generated post-update script (set by check). */
  postUpdateDigest?: string;
  outputDir: string;
  fileName: string;
}

export interface SwuBundleState extends SwuBundleInputs {
  path: string;
  size: number;
  sha256: string;
  swDescription: string;
  entries: { name: string; size: number; sha256: string }[];
  /** "<dev>:<ino>" of the file written. */
  fileIdentity: string;
  /** false when refresh found the file changed. */
  outputValid: boolean;
}

type Raw = Record<string, unknown>;

/** What @pulumi/pulumi passes for values not known yet (preview). */
/** Pulumi's preview "unknown" marker (one definition: lib/unknown.ts). */
export { UNKNOWN };

/** True when `v` holds a not-yet-known value anywhere: check then defers validation to the real run. */
export function hasUnknown(v: unknown): boolean {
  if (v === UNKNOWN) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v !== null && typeof v === "object") return Object.values(v as Raw).some(hasUnknown);
  return false;
}

function str(v: unknown): v is string {
  return typeof v === "string" && v.length > 0;
}

/** Validate and default SwuBundle inputs. Pure apart from resolving a relative outputDir against cwd. */
export function checkSwuBundle(news: Raw): { inputs: Raw; failures: CheckFailure[] } {
  const f: CheckFailure[] = [];
  const fail = (property: string, reason: string) => f.push({ property, reason });
  const out: Raw = { ...news };
  if (hasUnknown(news)) return { inputs: out, failures: [] };

  if (!str(news.hardware) || !(HARDWARE as readonly string[]).includes(news.hardware)) {
    fail("hardware", `must be one of ${HARDWARE.join(", ")}`);
  }
  if (!Array.isArray(news.hwRevisions) || news.hwRevisions.length === 0 || !news.hwRevisions.every((r) => str(r) && !/[\s\0]/.test(r))) {
    fail("hwRevisions", 'must list the accepted board revisions, e.g. ["1.0"] (the nodes\' hwRevision values)');
  }
  if (!str(news.version) || !isVersionString(news.version)) fail("version", "must be a version label of [A-Za-z0-9._+-]");
  out.signing = news.signing ?? "cms";
  if (!(SIGNING_METHODS as readonly string[]).includes(out.signing as string)) fail("signing", `must be one of ${SIGNING_METHODS.join(", ")} (default cms)`);
  if (!str(news.signingKey) || !/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(news.signingKey)) {
    fail("signingKey", "must be the PEM private key (set it as a secret: pulumi config set --secret swupdateSigningKey < key.pem)");
  }
  if (out.signing === "cms" && (!str(news.certificate) || !/-----BEGIN CERTIFICATE-----/.test(news.certificate))) {
    fail("certificate", "CMS signing needs the PEM certificate of the signing key (swupdate.certificate)");
  }
  if (news.encryptionKey !== undefined) {
    try {
      parseAesKeyFile(String(news.encryptionKey));
    } catch {
      fail("encryptionKey", 'must be "<64 hex digits key> <32 hex digits iv>" (SWUpdate key file format)');
    }
  }
  if (!str(news.outputDir)) fail("outputDir", "must be the directory the bundle is written to");
  else out.outputDir = path.resolve(news.outputDir);
  out.postUpdate = news.postUpdate ?? true;
  out.postUpdateTimeoutSeconds = news.postUpdateTimeoutSeconds ?? 300;
  if (typeof out.postUpdate !== "boolean") fail("postUpdate", "must be true or false (default true)");
  if (!Number.isInteger(out.postUpdateTimeoutSeconds) || (out.postUpdateTimeoutSeconds as number) < 1)
    fail("postUpdateTimeoutSeconds", "must be a positive integer (default 300)");
  // The script is generated by this code, not given as an input: its digest makes a changed generator
  // rebuild the bundle like any other changed input.
  if (out.postUpdate === true && Number.isInteger(out.postUpdateTimeoutSeconds)) {
    out.postUpdateDigest = crypto
      .createHash("sha256")
      .update(renderPostUpdateScript({ timeoutSeconds: out.postUpdateTimeoutSeconds as number }))
      .digest("hex");
  }
  out.fileName = news.fileName ?? `${String(news.hardware)}-${String(news.version)}.swu`;
  if (!str(out.fileName) || (out.fileName as string).includes("/") || !(out.fileName as string).endsWith(".swu"))
    fail("fileName", 'must be a plain file name ending in ".swu"');

  const images: SwuBundleImageInput[] = [];
  if (!Array.isArray(news.images) || news.images.length === 0) {
    fail("images", "must list at least one image ({ path, sha256, kind })");
  } else {
    news.images.forEach((raw: unknown, i: number) => {
      const p = `images[${i}]`;
      const img = (raw ?? {}) as Raw;
      if (!str(img.path)) fail(`${p}.path`, "must be the image file path");
      const sha = str(img.sha256) ? normalizeSha256(img.sha256) : undefined;
      if (sha === undefined) fail(`${p}.sha256`, "must be the image's sha256 (64 hex digits or sha256-<base64>)");
      if (!(ARTIFACT_KINDS as readonly string[]).includes(img.kind as string)) fail(`${p}.kind`, `must be one of ${ARTIFACT_KINDS.join(", ")}`);
      const name = str(img.name) ? img.name : str(img.path) ? path.basename(img.path) : "";
      if (name.includes("/") || Buffer.byteLength(name) > CPIO_MAX_NAME_BYTES)
        fail(`${p}.name`, `must be a plain file name of at most ${CPIO_MAX_NAME_BYTES} bytes`);
      if (img.compressed !== undefined && img.compressed !== "zlib" && img.compressed !== "zstd") fail(`${p}.compressed`, 'must be "zlib" or "zstd"');
      images.push({
        path: str(img.path) ? path.resolve(img.path) : "",
        sha256: sha ?? "",
        kind: img.kind as ArtifactKind,
        name,
        ...(str(img.device) ? { device: img.device } : {}),
        ...(str(img.targetPath) ? { targetPath: img.targetPath } : {}),
        ...(img.compressed !== undefined ? { compressed: img.compressed as Compression } : {}),
      });
    });
    const names = images.map((i) => i.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) fail("images", `two images are named ${dup} in the bundle: set images[].name`);
  }
  out.images = images;
  if (news.selection !== undefined) {
    const s = news.selection as Raw;
    if (!str(s.set) || !isLibconfigName(s.set)) fail("selection.set", 'must be a software set name such as "stable"');
    const devs = s.rootDevices as Record<string, unknown> | undefined;
    if (!devs || typeof devs !== "object" || Object.keys(devs).length === 0 || !Object.entries(devs).every(([m, d]) => isLibconfigName(m) && str(d))) {
      fail("selection.rootDevices", 'must map modes to devices, e.g. { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" }');
    }
  }
  return { inputs: out, failures: f };
}

const INPUT_KEYS: (keyof SwuBundleInputs)[] = [
  "hardware",
  "hwRevisions",
  "version",
  "description",
  "images",
  "signing",
  "certificate",
  "signingKey",
  "encryptionKey",
  "selection",
  "postUpdate",
  "postUpdateTimeoutSeconds",
  "postUpdateDigest",
  "outputDir",
  "fileName",
];

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? null) === canonicalJson(b ?? null);
}

export interface DiffResult {
  changes: boolean;
  replaces?: string[];
  deleteBeforeReplace?: boolean;
  stables?: string[];
}

export function bundlePath(i: { outputDir: string; fileName: string }): string {
  return path.join(i.outputDir, i.fileName);
}

/** Diff for SwuBundle: see the contract. Only stats the output file. */
export function diffSwuBundle(olds: Raw, news: Raw): DiffResult {
  const replaces: string[] = INPUT_KEYS.filter((k) => !same(olds[k], news[k]));
  const oldPath = typeof olds.path === "string" ? olds.path : undefined;
  if (oldPath) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(oldPath);
    } catch {
      st = undefined;
    }
    if (!st || st.size !== olds.size || olds.outputValid === false) replaces.push("path");
  }
  if (replaces.length === 0) return { changes: false };
  const newPath = str(news.outputDir) && str(news.fileName) ? bundlePath(news as { outputDir: string; fileName: string }) : undefined;
  return { changes: true, replaces, deleteBeforeReplace: newPath === oldPath };
}

function identity(st: fs.Stats): string {
  return `${st.dev}:${st.ino}`;
}

export async function createSwuBundle(inputs: Raw): Promise<SwuBundleState> {
  const i = inputs as unknown as SwuBundleInputs;
  const out = bundlePath(i);
  const images: BundleImage[] = i.images.map((m) => ({
    path: m.path,
    kind: m.kind,
    name: m.name,
    sha256: m.sha256,
    device: m.device,
    targetPath: m.targetPath,
    compressed: m.compressed,
  }));
  const r = await buildBundle({
    hardware: i.hardware,
    hwRevisions: i.hwRevisions,
    version: i.version,
    description: i.description,
    images,
    signing: i.signing,
    key: i.signingKey,
    cert: i.certificate,
    selection: i.selection,
    encrypt: i.encryptionKey,
    postUpdate: i.postUpdate ? { timeoutSeconds: i.postUpdateTimeoutSeconds } : false,
    outPath: out,
  });
  const st = await fs.promises.stat(r.path);
  return {
    ...i,
    path: r.path,
    size: r.size,
    sha256: r.sha256,
    swDescription: r.swDescription,
    entries: r.entries,
    fileIdentity: identity(st),
    outputValid: true,
  };
}

async function sha256File(file: string): Promise<string> {
  const h = crypto.createHash("sha256");
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) h.update(chunk);
  return h.digest("hex");
}

/** Refresh: undefined = the file is gone (drop from state). */
export async function readSwuBundle(props: Raw): Promise<Raw | undefined> {
  const p = props.path;
  if (!str(p)) return undefined;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(p);
  } catch {
    return undefined;
  }
  const valid = st.size === props.size && (await sha256File(p)) === props.sha256;
  return { ...props, outputValid: valid };
}

export async function deleteSwuBundle(props: Raw): Promise<void> {
  const p = props.path;
  if (!str(p)) return;
  try {
    const st = await fs.promises.stat(p);
    if (identity(st) === props.fileIdentity) await fs.promises.rm(p, { force: true });
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------------
// FleetUpdate

export interface FleetUpdateState {
  version: string;
  timestamp?: string;
  nodes: ManifestNode[];
  bundles: ManifestBundle[];
  outputDir: string;
  manifestPath: string;
  checksumsPath: string;
  manifestSha256: string;
  manifest: string;
  outputValid: boolean;
}

export function checkFleetUpdate(news: Raw): { inputs: Raw; failures: CheckFailure[] } {
  const f: CheckFailure[] = [];
  const out: Raw = { ...news };
  if (hasUnknown(news)) return { inputs: out, failures: [] };
  if (!str(news.version) || !isVersionString(news.version)) f.push({ property: "version", reason: "must be a version label of [A-Za-z0-9._+-]" });
  if (!str(news.outputDir)) f.push({ property: "outputDir", reason: "must be the directory manifest.json and checksums.txt are written to" });
  else out.outputDir = path.resolve(news.outputDir);
  if (!Array.isArray(news.nodes) || news.nodes.length === 0) f.push({ property: "nodes", reason: "must list the nodes to update" });
  if (!Array.isArray(news.bundles) || news.bundles.length === 0)
    f.push({ property: "bundles", reason: "must list the bundles (SwuBundle outputs: hardware, path, sha256, size)" });
  if (f.length === 0) {
    try {
      renderFleetManifest(fleetInput(out));
    } catch (e) {
      f.push({ property: "nodes", reason: (e as Error).message });
    }
  }
  return { inputs: out, failures: f };
}

function fleetInput(i: Raw): FleetManifestInput {
  return {
    version: i.version as string,
    timestamp: i.timestamp as string | undefined,
    nodes: i.nodes as ManifestNode[],
    bundles: (i.bundles as (ManifestBundle & { path?: string })[]).map((b) => ({
      hardware: b.hardware,
      ...(b.node ? { node: b.node } : {}),
      file: b.file ?? b.path ?? "",
      sha256: b.sha256,
      size: b.size,
    })),
  };
}

export function diffFleetUpdate(olds: Raw, news: Raw): DiffResult {
  const keys = ["version", "timestamp", "nodes", "bundles", "outputDir"];
  const changed = keys.filter((k) => !same(olds[k], news[k]));
  let stale = olds.outputValid === false;
  if (str(olds.manifestPath) && !fs.existsSync(olds.manifestPath)) stale = true;
  if (changed.length === 0 && !stale) return { changes: false };
  if (changed.includes("outputDir")) return { changes: true, replaces: ["outputDir"] };
  return { changes: true };
}

export async function createFleetUpdate(inputs: Raw): Promise<FleetUpdateState> {
  const r = await writeFleetUpdate(inputs.outputDir as string, fleetInput(inputs));
  return {
    ...(inputs as unknown as FleetUpdateState),
    manifestPath: r.manifestPath,
    checksumsPath: r.checksumsPath,
    manifestSha256: r.manifestSha256,
    manifest: r.manifest,
    outputValid: true,
  };
}

export async function readFleetUpdate(props: Raw): Promise<Raw | undefined> {
  if (!str(props.manifestPath)) return undefined;
  let text: string;
  try {
    text = await fs.promises.readFile(props.manifestPath, "utf8");
  } catch {
    return undefined;
  }
  return { ...props, outputValid: crypto.createHash("sha256").update(text).digest("hex") === props.manifestSha256 };
}

export async function deleteFleetUpdate(props: Raw): Promise<void> {
  for (const k of ["manifestPath", "checksumsPath"]) {
    const p = props[k];
    if (str(p)) await fs.promises.rm(p, { force: true });
  }
}
