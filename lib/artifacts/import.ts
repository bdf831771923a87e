/**
 * Import one pinned ISAR artifact into the Nix store, in the spirit of Nix's requireFile / fetchurl:
 * the bytes must have the pinned sha256 or nothing happens.
 *
 * Guarantees:
 * - `importArtifact` verifies before it adds: it streams the file (or the download) once, compares with
 *   the pin, and only on a match runs `nix-store --add-fixed sha256`. On a mismatch it throws
 *   ArtifactHashMismatchError ("specified: sha256-… got: sha256-…" plus how to update the pin) and the
 *   store is untouched. A missing file throws MissingArtifactError carrying the kas-container command that
 *   would build it. URL sources whose fixed-output path is already in the store are not downloaded again
 *   (the store content is the pinned content by construction).
 * - `verify: "always"` (the default) hashes every time; `"cached"` trusts a HashCache entry whose stat
 *   fingerprint (size, mtime, ctime, inode) is unchanged.
 * - `inspectArtifact` (for refresh) reports drift without adding anything: a vanished store path, a source
 *   file whose bytes changed (re-hashed only when its stat fingerprint moved, or always with full: true).
 * - Relative pin paths are resolved against `projectDir`. Nothing here reads secrets.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { ArtifactKind, ArtifactPin, NetworkProfile } from "../model/types";
import { hexToSri, normalizeSha256 } from "../model/checks";
import {
  DownloadError,
  FileHash,
  HashCache,
  HashMismatchError,
  StatFingerprint,
  downloadToFile,
  fingerprintOf,
  hashFile,
  hexForms,
  redactUrl,
  sameFingerprint,
} from "./hash";
import { NixStoreOptions, addFixed, fixedOutputStorePath, isStorePathValid, isValidStoreName, defaultStoreDir } from "./nixstore";
import { KasImageOverlay, formatCommand, kasBuildArgv } from "./isar-names";

/** Where to point the user when an artifact is missing or its pin is stale. All optional. */
export interface ArtifactHints {
  /** Pulumi stack whose config holds the pin (for `npm run pin -- --stack <s>`). */
  stack?: string;
  /** Config path of the pin inside the isar-k3s namespace, e.g. "artifacts.jetson-orin-nano.rootfs". */
  configPath?: string;
  /** The ISAR tree kas-container runs in. */
  kasDir?: string;
  /** kas image overlay that builds this artifact. Default "k3s-server". */
  image?: KasImageOverlay;
  /** kas network overlay. Default "simple". */
  network?: NetworkProfile;
}

export interface ImportRequest {
  /** Human name of the artifact for messages, e.g. "jetson-orin-nano-rootfs". */
  name: string;
  /** ISAR MACHINE. */
  machine: string;
  /** ISAR build version label. */
  version: string;
  kind: ArtifactKind;
  /** The pin: sha256 (hex or SRI) and exactly one of path / url. */
  pin: ArtifactPin;
  /** Base for relative pin paths. */
  projectDir: string;
  /** Stat cache, used only with verify: "cached". */
  cache?: HashCache;
  /** "always" (default): hash the bytes now. "cached": reuse a cache entry with an unchanged stat fingerprint. */
  verify?: "always" | "cached";
  /** Store path name for URL sources. Default: the last URL path segment. */
  storeName?: string;
  /** Where URL downloads are staged before they are added to the store. Default os.tmpdir(). */
  downloadDir?: string;
  hints?: ArtifactHints;
  nix?: NixStoreOptions;
}

export interface ArtifactOutputs {
  name: string;
  machine: string;
  version: string;
  kind: ArtifactKind;
  size: number;
  /** Lowercase hex sha256. */
  sha256: string;
  sri: string;
  nixBase32: string;
  storePath: string;
  /** Absolute file path, or the URL for URL sources (user:password replaced by ***). */
  sourcePath: string;
  /** Source file mtime (ms since epoch) when it was verified; null for URL sources. */
  mtimeMs: number | null;
  /** Full stat fingerprint of the verified source file; null for URL sources. */
  fingerprint: StatFingerprint | null;
}

export class ArtifactHashMismatchError extends Error {
  constructor(
    message: string,
    readonly specifiedHex: string,
    readonly got: FileHash,
  ) {
    super(message);
    this.name = "ArtifactHashMismatchError";
  }
}

export class MissingArtifactError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly buildArgv?: string[],
  ) {
    super(message);
    this.name = "MissingArtifactError";
  }
}

export class ArtifactPinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArtifactPinError";
  }
}

/** Validate a pin; returns the lowercase hex or throws ArtifactPinError naming the artifact. */
export function pinHex(name: string, pin: ArtifactPin): string {
  const hex = typeof pin.sha256 === "string" ? normalizeSha256(pin.sha256) : undefined;
  if (!hex) {
    throw new ArtifactPinError(
      `ISAR artifact '${name}': sha256 ${JSON.stringify(pin.sha256)} is not a sha256: give 64 hex digits (sha256sum) or SRI "sha256-<base64>"; \`npm run pin\` computes it`,
    );
  }
  if ((pin.path === undefined) === (pin.url === undefined)) {
    throw new ArtifactPinError(`ISAR artifact '${name}': set exactly one of path (a file in the ISAR deploy directory) or url (http/https)`);
  }
  if (pin.url !== undefined && !/^https?:\/\/\S+$/.test(pin.url)) {
    throw new ArtifactPinError(`ISAR artifact '${name}': url ${JSON.stringify(pin.url)} is not an http(s) URL`);
  }
  if (pin.path !== undefined && (pin.path === "" || /[\0\n]/.test(pin.path))) {
    throw new ArtifactPinError(`ISAR artifact '${name}': path must be a non-empty file path on one line`);
  }
  return hex;
}

/** Absolute path of a path pin. */
export function resolvePinPath(projectDir: string, p: string): string {
  return path.resolve(projectDir, p);
}

/** Store path name for an artifact: the file's base name, or the URL's last path segment. */
export function storeNameFor(pin: ArtifactPin, storeName?: string): string {
  let name = storeName;
  if (!name && pin.path !== undefined) name = path.basename(pin.path);
  if (!name && pin.url !== undefined) name = decodeURIComponent(new URL(pin.url).pathname.split("/").filter(Boolean).pop() ?? "");
  if (!name || !isValidStoreName(name)) {
    throw new ArtifactPinError(
      `cannot derive a Nix store name from ${JSON.stringify(pin.path ?? pin.url)} (got ${JSON.stringify(name ?? "")}): store names allow letters, digits and + - . _ ? = only; set storeName`,
    );
  }
  return name;
}

function pinUpdateAdvice(req: ImportRequest, gotHex: string): string {
  const h = req.hints ?? {};
  const stack = h.stack ?? "<stack>";
  const key = h.configPath ? `isar-k3s:${h.configPath}.sha256` : `the sha256 of this artifact's pin (isar-k3s:artifacts)`;
  return (
    `If these bytes are the build you want, update the pin:\n` +
    `  npm run pin -- --stack ${stack} --machine ${req.machine}\n` +
    `or set ${key} to "${gotHex}" in Pulumi.${stack}.yaml.\n` +
    `Otherwise put the pinned file back (ISAR builds are not bit-reproducible: a rebuild changes the hash).\n` +
    `Nothing was added to the Nix store.`
  );
}

function mismatchError(req: ImportRequest, source: string, specifiedHex: string, got: FileHash): ArtifactHashMismatchError {
  return new ArtifactHashMismatchError(
    `hash mismatch in ISAR artifact '${req.name}' (machine ${req.machine}, version ${req.version}):\n` +
      `  source:    ${source}\n` +
      `  specified: ${hexToSri(specifiedHex)}\n` +
      `  got:       ${got.sri}\n` +
      pinUpdateAdvice(req, got.hex),
    specifiedHex,
    got,
  );
}

/** The kas-container command that builds this artifact, when the hints allow it. */
export function buildCommandFor(req: Pick<ImportRequest, "machine" | "hints">): string[] {
  const h = req.hints ?? {};
  return kasBuildArgv({ machine: req.machine, image: h.image ?? "k3s-server", network: h.network ?? "simple" });
}

function missingError(req: ImportRequest, file: string): MissingArtifactError {
  const argv = buildCommandFor(req);
  const h = req.hints ?? {};
  const cd = h.kasDir ? `cd ${formatCommand([path.resolve(req.projectDir, h.kasDir)])} && ` : "cd <your ISAR tree> && ";
  return new MissingArtifactError(
    `ISAR artifact '${req.name}' (machine ${req.machine}, version ${req.version}) is missing: no file at ${file}\n` +
      `Build it with kas-container in the ISAR tree:\n` +
      `  ${cd}${formatCommand(argv)}\n` +
      `then record the new hashes: npm run pin -- --stack ${h.stack ?? "<stack>"} --machine ${req.machine}\n` +
      `If the file exists elsewhere, fix the pin's path` +
      (h.configPath ? ` (isar-k3s:${h.configPath}.path)` : "") +
      `, or add it by hand: nix-store --add-fixed sha256 <file>.`,
    file,
    argv,
  );
}

async function statOrMissing(req: ImportRequest, file: string): Promise<fs.Stats> {
  try {
    const st = await fs.promises.stat(file);
    if (!st.isFile()) throw new ArtifactPinError(`ISAR artifact '${req.name}': ${file} is not a regular file: point the pin's path at the deployed file`);
    return st;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw missingError(req, file);
    throw e;
  }
}

/**
 * Verify and import one artifact. Returns its outputs (hashes, size, store path, source). Throws
 * ArtifactHashMismatchError, MissingArtifactError, ArtifactPinError, DownloadError or NixStoreError.
 */
export async function importArtifact(req: ImportRequest): Promise<ArtifactOutputs> {
  const specified = pinHex(req.name, req.pin);
  const base = { name: req.name, machine: req.machine, version: req.version, kind: req.kind };
  if (req.pin.path !== undefined) {
    const file = resolvePinPath(req.projectDir, req.pin.path);
    const name = storeNameFor(req.pin);
    await statOrMissing(req, file);
    const got = req.verify === "cached" && req.cache ? await req.cache.hash(file) : await (req.cache ? req.cache.hash(file, { force: true }) : hashFile(file));
    if (got.hex !== specified) throw mismatchError(req, file, specified, got);
    const expectedPath = fixedOutputStorePath(specified, name, req.nix?.storeDir ?? defaultStoreDir());
    const storePath = (await isStorePathValid(expectedPath, req.nix)) ? expectedPath : await addFixed(file, specified, req.nix);
    // fingerprint after hashing: nix-store does not modify the source, so this is the state we verified
    const st = await fs.promises.stat(file);
    if (st.size !== got.size) throw new Error(`ISAR artifact '${req.name}': ${file} changed while it was being imported; re-run when the build has finished`);
    return {
      ...base,
      size: got.size,
      sha256: got.hex,
      sri: got.sri,
      nixBase32: got.nixBase32,
      storePath,
      sourcePath: file,
      mtimeMs: st.mtimeMs,
      fingerprint: fingerprintOf(st),
    };
  }

  // URL source (credentials in the URL never reach messages or outputs)
  const url = req.pin.url!;
  const shownUrl = redactUrl(new URL(url));
  const name = storeNameFor(req.pin, req.storeName);
  const expectedPath = fixedOutputStorePath(specified, name, req.nix?.storeDir ?? defaultStoreDir());
  if (await isStorePathValid(expectedPath, req.nix)) {
    const st = await fs.promises.stat(expectedPath);
    const f = hexForms(specified);
    return {
      ...base,
      size: st.size,
      sha256: f.hex,
      sri: f.sri,
      nixBase32: f.nixBase32,
      storePath: expectedPath,
      sourcePath: shownUrl,
      mtimeMs: null,
      fingerprint: null,
    };
  }
  const stage = await fs.promises.mkdtemp(path.join(req.downloadDir ?? os.tmpdir(), "isar-artifact-"));
  try {
    const dest = path.join(stage, name);
    let got: FileHash;
    try {
      got = await downloadToFile(url, dest, { expectedHex: specified });
    } catch (e) {
      if (e instanceof HashMismatchError) throw mismatchError(req, shownUrl, specified, e.actual);
      if (e instanceof DownloadError) throw new DownloadError(`ISAR artifact '${req.name}' (machine ${req.machine}): ${e.message}`, e.url, e.status);
      throw e;
    }
    const storePath = await addFixed(dest, specified, req.nix);
    return {
      ...base,
      size: got.size,
      sha256: got.hex,
      sri: got.sri,
      nixBase32: got.nixBase32,
      storePath,
      sourcePath: shownUrl,
      mtimeMs: null,
      fingerprint: null,
    };
  } finally {
    await fs.promises.rm(stage, { recursive: true, force: true });
  }
}

export interface InspectResult {
  /** The outputs as they are now (store path emptied if it vanished, hashes updated if the file changed). */
  outputs: ArtifactOutputs;
  /** Why the imported artifact no longer matches reality; empty when all is well. */
  drift: string[];
  /** Whether the source file was re-hashed (false when its stat fingerprint was unchanged). */
  rehashed: boolean;
}

/**
 * Compare imported outputs with reality without changing anything: is the store path still there; is
 * the source file still the verified bytes? The file is re-hashed only if its stat fingerprint changed,
 * or always with `full`. A source file that disappeared is not drift: its bytes are in the store.
 */
export async function inspectArtifact(prev: ArtifactOutputs, opts: { full?: boolean; nix?: NixStoreOptions } = {}): Promise<InspectResult> {
  const drift: string[] = [];
  let outputs = { ...prev };
  let rehashed = false;
  if (!prev.storePath || !(await isStorePathValid(prev.storePath, opts.nix))) {
    if (prev.storePath) drift.push(`store path ${prev.storePath} vanished (garbage-collected?): it will be added again`);
    outputs.storePath = "";
  }
  if (prev.fingerprint && !/^https?:/.test(prev.sourcePath)) {
    let st: fs.Stats | undefined;
    try {
      st = await fs.promises.stat(prev.sourcePath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (st && (opts.full || !sameFingerprint(prev.fingerprint, fingerprintOf(st)))) {
      const h = await hashFile(prev.sourcePath);
      rehashed = true;
      const now = fingerprintOf(await fs.promises.stat(prev.sourcePath));
      if (h.hex !== prev.sha256) {
        drift.push(`source ${prev.sourcePath} changed: was ${prev.sri}, now ${h.sri}`);
        outputs = { ...outputs, size: h.size, sha256: h.hex, sri: h.sri, nixBase32: h.nixBase32, storePath: "", mtimeMs: now.mtimeMs, fingerprint: now };
      } else {
        // same bytes, new stat (touched or copied): remember the new fingerprint so we don't rehash again
        outputs = { ...outputs, mtimeMs: now.mtimeMs, fingerprint: now };
      }
    }
  }
  return { outputs, drift, rehashed };
}
