/**
 * sw-description renderer: a typed description of one SWUpdate bundle in, libconfig text out.
 *
 * Contract:
 * - Pure (no I/O). Output is deterministic: same input, same bytes; fields in a fixed order.
 * - Strings are libconfig string literals: backslash, double quote, \n, \r, \t, \f escaped by name, every
 *   other control character (and DEL) as \xHH; other characters are written as UTF-8.
 * - Layout: `software = { version; [description;] <board> = { hardware-compatibility; entries } }` when a
 *   board is given (SWUpdate then only installs on `-H <board>:<rev>` / /etc/hwrevision "<board> <rev>"),
 *   otherwise the entries sit directly under `software`. With selections, entries go one level deeper:
 *   `<set> = { <mode> = { images: (...); files: (...); scripts: (...); }; }` (chosen with `-e set,mode`).
 * - Every entry carries a sha256 (64 hex digits over the bytes as stored in the bundle). Invalid input
 *   (missing device for raw, missing ivt for encrypted, bad names...) throws a SwDescriptionError that
 *   names the entry and the fix.
 */

export class SwDescriptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SwDescriptionError";
  }
}

export type Compression = "zlib" | "zstd";

/** One image, file or script of a bundle. */
export interface SwEntry {
  /** Name of the file inside the bundle (the cpio entry name). */
  filename: string;
  /** SWUpdate handler: "raw" (device), "rawfile" (file at path), "archive" (tar into path), "shellscript", ... */
  type: string;
  /** Lowercase hex sha256 of the bytes as stored in the bundle (after compression / encryption). */
  sha256: string;
  /** Target device (raw, or archive onto a device). */
  device?: string;
  /** Target path (rawfile: the target file itself, e.g. /boot/Image — not a directory; archive: the directory to unpack into). */
  path?: string;
  /** Filesystem type used when SWUpdate mounts `device` for rawfile/archive. */
  filesystem?: string;
  /** Stream compression of the stored bytes: "zstd", or "zlib" which SWUpdate inflates as gzip format. */
  compressed?: Compression;
  /** Stored bytes are AES-256-CBC encrypted; `ivt` is then required. */
  encrypted?: boolean;
  /** 32 hex digits: the AES IV of this entry. */
  ivt?: string;
  /** Stream directly to the target without a temporary copy. */
  installedDirectly?: boolean;
}

export interface SwSection {
  images?: SwEntry[];
  files?: SwEntry[];
  scripts?: SwEntry[];
}

export interface SwSelections {
  /** Software set name, e.g. "stable". */
  set: string;
  /** Mode name (e.g. "main", "alt") to the entries installed in that mode. */
  modes: Record<string, SwSection>;
}

export interface SwDescriptionInput {
  /** Bundle version (mandatory for SWUpdate). */
  version: string;
  description?: string;
  /** Board name: entries are nested under it so the bundle only installs on that board. */
  board?: string;
  /** Accepted board revisions (at least one). */
  hardwareCompatibility: string[];
  /** Entries for a single-copy layout. Exactly one of `entries` / `selections`. */
  entries?: SwSection;
  /** Entries per mode for A/B layouts. */
  selections?: SwSelections;
}

// ---------------------------------------------------------------------------------------------------
// libconfig primitives

/** A libconfig string literal for `s`. */
export function libconfigString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === "\\") out += "\\\\";
    else if (ch === '"') out += '\\"';
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\f") out += "\\f";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}

const SETTING_NAME = /^[A-Za-z*][-A-Za-z0-9_*]*$/;

/** True when `s` can be a libconfig setting name (group member). */
export function isLibconfigName(s: string): boolean {
  return SETTING_NAME.test(s);
}

type Scalar = string | number | boolean;
type Value = Scalar | Scalar[] | Group | Group[];
interface Group {
  [key: string]: Value | undefined;
}

const LIST_KEYS = new Set(["images", "files", "scripts"]);

function renderValue(v: Value, indent: string): string {
  if (typeof v === "string") return libconfigString(v);
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new SwDescriptionError(`libconfig: ${v} is not an integer`);
    return String(v);
  }
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === "object") {
      const inner = indent + "  ";
      return "(\n" + (v as Group[]).map((g) => inner + renderGroup(g, inner)).join(",\n") + "\n" + indent + ")";
    }
    return "[ " + (v as Scalar[]).map((x) => renderValue(x, indent)).join(", ") + " ]";
  }
  return renderGroup(v, indent);
}

function renderGroup(g: Group, indent: string): string {
  const inner = indent + "  ";
  const lines: string[] = [];
  for (const [k, v] of Object.entries(g)) {
    if (v === undefined) continue;
    if (!isLibconfigName(k)) throw new SwDescriptionError(`libconfig: ${JSON.stringify(k)} is not a valid setting name ([A-Za-z*][-A-Za-z0-9_*]*)`);
    // Lists use the "name: ( ... );" spelling of the SWUpdate docs; both are valid libconfig.
    const sep = LIST_KEYS.has(k) ? ": " : " = ";
    lines.push(`${inner}${k}${sep}${renderValue(v, inner)};`);
  }
  return "{\n" + lines.join("\n") + "\n" + indent + "}";
}

// ---------------------------------------------------------------------------------------------------
// SWUpdate layer

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

function validateEntry(e: SwEntry, where: string): void {
  const id = `${where} ${JSON.stringify(e.filename)}`;
  if (!e.filename || e.filename.includes("/") || e.filename.includes("\0") || Buffer.byteLength(e.filename) > 254) {
    throw new SwDescriptionError(`${id}: filename must be a plain bundle file name (no '/', at most 254 bytes)`);
  }
  if (e.filename === "sw-description" || e.filename === "sw-description.sig") {
    throw new SwDescriptionError(`${id}: this name is reserved for the bundle's own description and signature`);
  }
  if (!/^[a-z][a-z0-9_-]*$/.test(e.type)) throw new SwDescriptionError(`${id}: type ${JSON.stringify(e.type)} is not a handler name`);
  if (!HEX64.test(e.sha256)) throw new SwDescriptionError(`${id}: sha256 must be 64 lowercase hex digits, got ${JSON.stringify(e.sha256)}`);
  if (e.type === "raw" && !e.device) throw new SwDescriptionError(`${id}: type "raw" needs a device (e.g. /dev/mmcblk0p1)`);
  if (e.type === "rawfile" && !e.path) throw new SwDescriptionError(`${id}: type "rawfile" needs a path (the target file, e.g. /boot/Image)`);
  if (e.path !== undefined && Buffer.byteLength(e.path) > 254)
    throw new SwDescriptionError(`${id}: path is longer than 254 bytes, which SWUpdate's file handlers refuse ("Path too long")`);
  if (e.type === "archive" && !e.path) throw new SwDescriptionError(`${id}: type "archive" needs a path (the directory to unpack into, e.g. /)`);
  if (e.compressed !== undefined && e.compressed !== "zlib" && e.compressed !== "zstd") {
    throw new SwDescriptionError(`${id}: compressed must be "zlib" or "zstd" (what SWUpdate 2022.12 decompresses)`);
  }
  if (e.encrypted && (e.ivt === undefined || !HEX32.test(e.ivt))) {
    throw new SwDescriptionError(`${id}: encrypted entries need ivt = 32 lowercase hex digits (the AES-CBC IV used to encrypt it)`);
  }
  if (!e.encrypted && e.ivt !== undefined) throw new SwDescriptionError(`${id}: ivt is set but encrypted is not`);
}

function entryGroup(e: SwEntry): Group {
  return {
    filename: e.filename,
    type: e.type,
    device: e.device,
    path: e.path,
    filesystem: e.filesystem,
    sha256: e.sha256,
    compressed: e.compressed,
    encrypted: e.encrypted ? true : undefined,
    ivt: e.ivt,
    "installed-directly": e.installedDirectly ? true : undefined,
  };
}

function sectionGroup(s: SwSection, where: string): Group {
  const g: Group = {};
  const seen = new Set<string>();
  let count = 0;
  for (const key of ["images", "files", "scripts"] as const) {
    const list = s[key];
    if (!list || list.length === 0) continue;
    for (const e of list) {
      validateEntry(e, `${where}${key}`);
      if (seen.has(e.filename)) throw new SwDescriptionError(`${where}${key} ${JSON.stringify(e.filename)}: listed twice in one section`);
      seen.add(e.filename);
    }
    g[key] = list.map(entryGroup);
    count += list.length;
  }
  if (count === 0) throw new SwDescriptionError(`${where || "software "}has nothing to install: give at least one image, file or script`);
  return g;
}

/** Render the sw-description text (ends with a newline). */
export function renderSwDescription(d: SwDescriptionInput): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/.test(d.version)) {
    throw new SwDescriptionError(`version ${JSON.stringify(d.version)} is not a version label: use [A-Za-z0-9._+-]`);
  }
  if (d.hardwareCompatibility.length === 0) {
    throw new SwDescriptionError("hardware-compatibility is empty: list the board revisions this bundle may be installed on");
  }
  for (const r of d.hardwareCompatibility) {
    if (r.length === 0 || /[\s\0]/.test(r)) throw new SwDescriptionError(`hardware revision ${JSON.stringify(r)} must be non-empty without whitespace`);
  }
  if ((d.entries === undefined) === (d.selections === undefined)) {
    throw new SwDescriptionError("give exactly one of entries (single-copy layout) or selections (A/B layout)");
  }
  if (d.board !== undefined && !isLibconfigName(d.board)) {
    throw new SwDescriptionError(`board ${JSON.stringify(d.board)} must match [A-Za-z][-A-Za-z0-9_]* to be a sw-description section name`);
  }
  const body: Group = { "hardware-compatibility": d.hardwareCompatibility };
  if (d.entries) {
    Object.assign(body, sectionGroup(d.entries, ""));
  } else if (d.selections) {
    const { set, modes } = d.selections;
    if (!isLibconfigName(set)) throw new SwDescriptionError(`selection set ${JSON.stringify(set)} must match [A-Za-z][-A-Za-z0-9_]*`);
    const modeNames = Object.keys(modes);
    if (modeNames.length === 0) throw new SwDescriptionError(`selection set ${set} has no modes: add e.g. main and alt`);
    const setGroup: Group = {};
    for (const m of modeNames) {
      if (!isLibconfigName(m)) throw new SwDescriptionError(`selection mode ${JSON.stringify(m)} must match [A-Za-z][-A-Za-z0-9_]*`);
      if (m === "hardware-compatibility" || m === "version") throw new SwDescriptionError(`selection mode ${m} is a reserved name`);
      setGroup[m] = sectionGroup(modes[m], `${set},${m}: `);
    }
    if (set === "hardware-compatibility" || set === "version" || set === "images" || set === "files" || set === "scripts") {
      throw new SwDescriptionError(`selection set ${set} is a reserved name`);
    }
    body[set] = setGroup;
  }
  const software: Group = { version: d.version, description: d.description };
  if (d.board !== undefined) software[d.board] = body;
  else Object.assign(software, body);
  return "software = " + renderGroup(software, "") + ";\n";
}
