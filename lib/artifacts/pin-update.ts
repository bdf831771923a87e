/**
 * ADR 001's pin update: after an ISAR build, hash the deploy outputs, add them to the Nix store and
 * write the new sha256 pins into a stack's Pulumi.<stack>.yaml.
 *
 * Guarantees:
 * - The stack file is edited in place, byte for byte except for the replaced values: the yaml Document
 *   API locates each pin's scalar (its source range), and only that text is replaced, keeping its quoting
 *   style; comments, flow / block style, key order and secure values are untouched. The result is parsed
 *   again and checked before it is written (atomically: temp file + rename, same mode).
 * - A pin keeps its spelling: hex stays hex, SRI stays SRI.
 * - All or nothing: every selected file is hashed first; if any is missing, nothing is added to the
 *   store and nothing is written, and every problem is reported. Files are added to the store before the
 *   stack file is written, so a written pin always has its store path.
 * - URL pins are reported and left alone (the CI artifact store owns them).
 * - Files are hashed through a HashCache, so re-running on unchanged outputs does not re-read them.
 */
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { HARDWARE, HARDWARE_ARCH } from "../model/types";
import type { ArtifactKind, Hardware } from "../model/types";
import { hexToSri, normalizeSha256 } from "../model/checks";
import { HashCache } from "./hash";
import { NixStoreOptions, addFixed } from "./nixstore";
import { defaultFileName } from "./isar-names";

export const CONFIG_NAMESPACE = "isar-k3s";

export interface PinUpdateOptions {
  /** Stack name: the file is Pulumi.<stack>.yaml in projectDir unless stackFile is given. */
  stack: string;
  projectDir: string;
  stackFile?: string;
  /** Only these entries (hardware key or ISAR machine name). Default: all. */
  machines?: string[];
  /** Take files from here instead of the pins' paths: <deployDir>/<machine>/ if that exists, else <deployDir>/. Pins' paths are rewritten to the files used. */
  deployDir?: string;
  /** New version label for the selected entries. Default: unchanged. */
  version?: string;
  /** Report only; write nothing, add nothing. Default false. */
  dryRun?: boolean;
  /** Add each file to the Nix store. Default true. */
  addToStore?: boolean;
  cache?: HashCache;
  nix?: NixStoreOptions;
}

export interface PinChange {
  hardware: string;
  machine: string;
  kind: ArtifactKind;
  index: number;
  file: string;
  oldSha256: string;
  newSha256: string;
  oldPath?: string;
  newPath?: string;
  storePath?: string;
  changed: boolean;
  /** The file's sha256, lowercase hex. */
  hex: string;
}

export interface PinUpdateResult {
  stackFile: string;
  changes: PinChange[];
  skipped: { hardware: string; kind: ArtifactKind; index: number; reason: string }[];
  versionChanges: { hardware: string; old: string; new: string }[];
  problems: string[];
  written: boolean;
}

interface Edit {
  start: number;
  end: number;
  text: string;
}

const PIN_KINDS = ["rootfs", "kernel", "initramfs", "firmware", "wic"] as const;

/** Render `value` in the quoting style of the original scalar source text. */
function renderLike(original: string, value: string): string {
  if (original.startsWith('"')) return JSON.stringify(value);
  if (original.startsWith("'")) return `'${value.replace(/'/g, "''")}'`;
  // plain only if it reads back as the same string (not a number, boolean, null...)
  if (/^[A-Za-z0-9_./+=-]+$/.test(value) && YAML.parse(`{ k: ${value} }`)?.k === value && YAML.parse(`k: ${value}`)?.k === value) return value;
  return JSON.stringify(value);
}

function scalarEdit(src: string, node: unknown, value: string): Edit | undefined {
  if (!YAML.isScalar(node) || !node.range) return undefined;
  const [start, end] = node.range;
  return { start, end, text: renderLike(src.slice(start, end), value) };
}

function relOrAbs(projectDir: string, file: string): string {
  const rel = path.relative(projectDir, file);
  return rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

function pickDeployDir(deployDir: string, machine: string): string {
  const sub = path.join(deployDir, machine);
  return fs.existsSync(sub) && fs.statSync(sub).isDirectory() ? sub : deployDir;
}

export async function updatePins(opts: PinUpdateOptions): Promise<PinUpdateResult> {
  const stackFile = opts.stackFile ?? path.join(opts.projectDir, `Pulumi.${opts.stack}.yaml`);
  const result: PinUpdateResult = { stackFile, changes: [], skipped: [], versionChanges: [], problems: [], written: false };
  let src: string;
  try {
    src = await fs.promises.readFile(stackFile, "utf8");
  } catch (e) {
    result.problems.push(`cannot read ${stackFile}: ${(e as Error).message} (is --stack right? run from the project directory)`);
    return result;
  }
  const doc = YAML.parseDocument(src);
  if (doc.errors.length > 0) {
    result.problems.push(`${stackFile} is not valid YAML: ${doc.errors[0].message}`);
    return result;
  }
  const key = `${CONFIG_NAMESPACE}:artifacts`;
  const artifacts = doc.getIn(["config", key], true);
  if (!YAML.isMap(artifacts)) {
    result.problems.push(`${stackFile} has no config.${key} map: add the artifact pins first (see Pulumi.yaml)`);
    return result;
  }
  const cache = opts.cache ?? new HashCache();
  const edits: Edit[] = [];
  const selected = new Set<string>();

  for (const pair of artifacts.items) {
    const hardware = String(YAML.isScalar(pair.key) ? pair.key.value : pair.key);
    const entry = pair.value;
    if (!YAML.isMap(entry)) continue;
    const machine = String(entry.get("machine") ?? hardware);
    if (opts.machines && opts.machines.length > 0 && !opts.machines.includes(hardware) && !opts.machines.includes(machine)) continue;
    selected.add(hardware);
    const id = { machine, image: String(entry.get("image") ?? "isar-image-base"), distro: String(entry.get("distro") ?? "debian-trixie") };
    const arch = (HARDWARE as readonly string[]).includes(hardware) ? HARDWARE_ARCH[hardware as Hardware] : undefined;

    if (opts.version !== undefined) {
      const vnode = entry.get("version", true);
      const e = scalarEdit(src, vnode, opts.version);
      if (!e) result.problems.push(`${key}.${hardware}.version is missing or not a plain value: add one before --version can set it`);
      else {
        edits.push(e);
        result.versionChanges.push({ hardware, old: String((vnode as YAML.Scalar).value), new: opts.version });
      }
    }

    const pins: { kind: ArtifactKind; index: number; node: YAML.YAMLMap }[] = [];
    for (const kind of PIN_KINDS) {
      const n = entry.get(kind, true);
      if (YAML.isMap(n)) pins.push({ kind, index: 0, node: n });
    }
    const dtbs = entry.get("dtbs", true);
    if (YAML.isSeq(dtbs)) dtbs.items.forEach((n, index) => YAML.isMap(n) && pins.push({ kind: "dtb", index, node: n }));

    for (const { kind, index, node } of pins) {
      const where = `${key}.${hardware}.${kind === "dtb" ? `dtbs[${index}]` : kind}`;
      const shaNode = node.get("sha256", true);
      const pathNode = node.get("path", true);
      const oldPath = YAML.isScalar(pathNode) ? String(pathNode.value) : undefined;
      if (node.get("url") !== undefined) {
        result.skipped.push({ hardware, kind, index, reason: "url pin: left alone (the CI artifact store owns it)" });
        continue;
      }
      if (!YAML.isScalar(shaNode)) {
        result.problems.push(`${where}.sha256 is missing: add a sha256 key (any value) so it can be filled in`);
        continue;
      }
      let file: string;
      if (opts.deployDir) {
        const dir = pickDeployDir(path.resolve(opts.projectDir, opts.deployDir), machine);
        let name: string;
        try {
          name = oldPath ? path.basename(oldPath) : defaultFileName(id, kind, { arch });
        } catch (e) {
          result.problems.push(`${where}: ${(e as Error).message}`);
          continue;
        }
        file = path.join(dir, name);
      } else if (oldPath) {
        file = path.resolve(opts.projectDir, oldPath);
      } else {
        result.problems.push(`${where} has neither path nor url: set path, or pass --deploy-dir`);
        continue;
      }
      let hex: string;
      try {
        hex = (await cache.hash(file)).hex;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        result.problems.push(
          code === "ENOENT"
            ? `${where}: ${file} does not exist (did the build for ${machine} finish? is --deploy-dir right?)`
            : `${where}: cannot read ${file}: ${(e as Error).message}`,
        );
        continue;
      }
      const oldRaw = String(shaNode.value ?? "");
      const oldHex = normalizeSha256(oldRaw);
      const wasSri = /^sha256-/.test(oldRaw);
      const newValue = wasSri ? hexToSri(hex) : hex;
      const newPath = opts.deployDir ? relOrAbs(opts.projectDir, file) : oldPath;
      const changed = oldHex !== hex || newPath !== oldPath;
      if (oldHex !== hex || oldRaw !== newValue) {
        const e = scalarEdit(src, shaNode, newValue);
        if (e) edits.push(e);
      }
      if (newPath !== oldPath && newPath !== undefined) {
        if (YAML.isScalar(pathNode)) {
          const e = scalarEdit(src, pathNode, newPath);
          if (e) edits.push(e);
        } else result.problems.push(`${where}: cannot add a path key to this pin automatically: add path: ${newPath}`);
      }
      result.changes.push({ hardware, machine, kind, index, file, oldSha256: oldRaw, newSha256: newValue, oldPath, newPath, changed, hex });
    }
  }
  if (opts.machines && opts.machines.length > 0) {
    for (const m of opts.machines) {
      const known = artifacts.items.some((p) => {
        const hw = String(YAML.isScalar(p.key) ? p.key.value : p.key);
        return hw === m || (YAML.isMap(p.value) && p.value.get("machine") === m);
      });
      if (!known) result.problems.push(`--machine ${m}: no entry in ${key} has this hardware key or machine name`);
    }
  }
  if (result.problems.length > 0 || opts.dryRun) return result;

  // every file is there and hashed: now add them to the store (still before writing anything)
  if (opts.addToStore !== false) {
    for (const c of result.changes) {
      try {
        c.storePath = await addFixed(c.file, c.hex, opts.nix);
      } catch (e) {
        result.problems.push(`${c.hardware} ${c.kind}: ${(e as Error).message}`);
      }
    }
    if (result.problems.length > 0) return result;
  }
  if (edits.length === 0) return result;

  // apply edits back to front so earlier offsets stay valid
  edits.sort((a, b) => b.start - a.start);
  let out = src;
  for (const e of edits) out = out.slice(0, e.start) + e.text + out.slice(e.end);

  // check: the new text parses and says what we meant
  const check = YAML.parseDocument(out);
  const errs: string[] = [];
  if (check.errors.length > 0) errs.push(check.errors[0].message);
  for (const c of result.changes) {
    const base = ["config", key, c.hardware, ...(c.kind === "dtb" ? ["dtbs", c.index] : [c.kind])];
    if (check.getIn([...base, "sha256"]) !== c.newSha256) errs.push(`${base.join(".")}.sha256 did not read back as ${c.newSha256}`);
    if (c.newPath !== undefined && check.getIn([...base, "path"]) !== c.newPath) errs.push(`${base.join(".")}.path did not read back as ${c.newPath}`);
  }
  for (const v of result.versionChanges)
    if (check.getIn(["config", key, v.hardware, "version"]) !== v.new) errs.push(`${v.hardware}.version did not read back`);
  if (errs.length > 0) {
    result.problems.push(`internal error: the edited ${stackFile} would not read back correctly (${errs.join("; ")}); nothing was written`);
    return result;
  }
  const mode = (await fs.promises.stat(stackFile)).mode & 0o7777;
  const tmp = `${stackFile}.pin-${process.pid}.tmp`;
  await fs.promises.writeFile(tmp, out, { mode });
  await fs.promises.rename(tmp, stackFile);
  result.written = true;
  return result;
}

/** Human report: one line per file, `old → new`. */
export function formatReport(r: PinUpdateResult): string {
  const lines: string[] = [];
  const short = (s: string) => (s.length > 20 ? `${s.slice(0, s.startsWith("sha256-") ? 19 : 12)}…` : s || "(none)");
  for (const v of r.versionChanges) lines.push(`${v.hardware} version: ${v.old} → ${v.new}`);
  for (const c of r.changes) {
    const label = `${c.hardware} ${c.kind === "dtb" ? `dtbs[${c.index}]` : c.kind} ${path.basename(c.file)}`;
    const sha = c.oldSha256 === c.newSha256 ? `${short(c.newSha256)} (unchanged)` : `${short(c.oldSha256)} → ${c.newSha256}`;
    lines.push(
      `${label}: ${sha}` +
        (c.newPath !== c.oldPath ? `\n    path: ${c.oldPath ?? "(none)"} → ${c.newPath}` : "") +
        (c.storePath ? `\n    store: ${c.storePath}` : ""),
    );
  }
  for (const s of r.skipped) lines.push(`${s.hardware} ${s.kind === "dtb" ? `dtbs[${s.index}]` : s.kind}: ${s.reason}`);
  for (const p of r.problems) lines.push(`error: ${p}`);
  if (r.problems.length > 0) lines.push(`${r.stackFile} was not changed.`);
  else if (r.written) lines.push(`wrote ${r.stackFile}`);
  else if (r.changes.some((c) => c.changed) || r.versionChanges.length > 0) lines.push(`dry run: ${r.stackFile} not written`);
  else lines.push(`all pins in ${r.stackFile} are up to date`);
  return lines.join("\n");
}
