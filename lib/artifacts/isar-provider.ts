/**
 * The decisions behind the IsarArtifact and IsarBuild dynamic resources (providers/isar.ts), kept here so
 * they are testable without Pulumi: input checks, diffs, and the create / update / refresh steps over
 * ./import.ts and ./kas.ts.
 *
 * Guarantees:
 * - Diffs never hash and never touch the store or the disk: an unchanged pin costs nothing at preview.
 *   IsarArtifact: a changed pin (compared as normalised hex, so hex ↔ SRI rewrites are no change), source
 *   path / url or store name replaces; drift recorded by a refresh (vanished store path, changed bytes)
 *   replaces; anything else is an in-place update. IsarBuild: any input that shapes the image replaces
 *   (i.e. rebuilds); outputs found missing by a refresh rebuild too.
 * - Create always verifies the bytes (full hash). Refresh re-hashes a source only when its stat
 *   fingerprint moved (or always with refreshVerify "full").
 * - Deleting an IsarArtifact leaves its store path (removing store paths is the garbage collector's job:
 *   other stacks or GC roots may use it). Deleting an IsarBuild leaves the build directory (it holds the
 *   sstate cache and downloads; remove it by hand or with `kas-container clean`).
 */
import type { CheckFailure, DiffDecision } from "../provider-types";
import * as fs from "fs";
import { ARCHES, ARTIFACT_KINDS, NETWORK_PROFILES } from "../model/types";
import type { Arch, ArtifactKind, IsarBuildSettings, NetworkProfile } from "../model/types";
import { isVersionString, normalizeSha256 } from "../model/checks";
import { ArtifactOutputs, importArtifact, inspectArtifact, resolvePinPath } from "./import";
import { KAS_IMAGE_OVERLAYS, KasImageOverlay } from "./isar-names";
import { DEFAULT_BUILD_TIMEOUT_SECONDS, DeployOutputs, findDeployOutputs, runKasBuild } from "./kas";

export type { CheckFailure, DiffDecision } from "../provider-types";

/** Inputs of an IsarArtifact as stored by the provider (see providers/isar.ts for their documentation). */
export interface ArtifactInputs {
  name: string;
  machine: string;
  version: string;
  kind: ArtifactKind;
  sha256: string;
  path?: string;
  url?: string;
  projectDir: string;
  storeName?: string;
  refreshVerify?: "stat" | "full";
  downloadDir?: string;
  stack?: string;
  configPath?: string;
  kasDir?: string;
  kasImage?: KasImageOverlay;
  network?: NetworkProfile;
}

/** What the provider stores: the inputs, then the import outputs, then drift found by refresh. */
export type ArtifactState = ArtifactInputs & ArtifactOutputs & { drift: string[] };

const isStr = (v: unknown): v is string => typeof v === "string";

export function checkArtifactInputs(news: Record<string, unknown>): CheckFailure[] {
  const f: CheckFailure[] = [];
  const need = (k: string) => {
    if (!isStr(news[k]) || news[k] === "") f.push({ property: k, reason: `${k} is required (a non-empty string)` });
  };
  need("name");
  need("machine");
  need("version");
  need("projectDir");
  if (isStr(news.machine) && !/^[a-z0-9][a-z0-9._-]*$/.test(news.machine))
    f.push({ property: "machine", reason: `${JSON.stringify(news.machine)} is not an ISAR MACHINE name ([a-z0-9._-])` });
  if (isStr(news.version) && !isVersionString(news.version))
    f.push({ property: "version", reason: `${JSON.stringify(news.version)} is not a version label ([A-Za-z0-9._+-])` });
  if (!(ARTIFACT_KINDS as readonly unknown[]).includes(news.kind)) f.push({ property: "kind", reason: `kind must be one of ${ARTIFACT_KINDS.join(", ")}` });
  if (!isStr(news.sha256) || !normalizeSha256(news.sha256)) {
    f.push({
      property: "sha256",
      reason: `${JSON.stringify(news.sha256)} is not a sha256: give 64 hex digits or SRI "sha256-<base64>" (\`npm run pin\` computes it)`,
    });
  }
  const hasPath = news.path !== undefined;
  const hasUrl = news.url !== undefined;
  if (hasPath === hasUrl)
    f.push({ property: hasPath ? "url" : "path", reason: "set exactly one of path (a file in the ISAR deploy directory) or url (http/https)" });
  if (hasPath && (!isStr(news.path) || news.path === "" || /[\0\n]/.test(news.path)))
    f.push({ property: "path", reason: "path must be a non-empty file path on one line" });
  if (hasUrl && (!isStr(news.url) || !/^https?:\/\/\S+$/.test(news.url)))
    f.push({ property: "url", reason: `${JSON.stringify(news.url)} is not an http(s) URL` });
  if (news.refreshVerify !== undefined && news.refreshVerify !== "stat" && news.refreshVerify !== "full")
    f.push({ property: "refreshVerify", reason: 'refreshVerify must be "stat" or "full"' });
  if (news.kasImage !== undefined && !(KAS_IMAGE_OVERLAYS as readonly unknown[]).includes(news.kasImage))
    f.push({ property: "kasImage", reason: `kasImage must be one of ${KAS_IMAGE_OVERLAYS.join(", ")}` });
  if (news.network !== undefined && !(NETWORK_PROFILES as readonly unknown[]).includes(news.network))
    f.push({ property: "network", reason: `network must be one of ${NETWORK_PROFILES.join(", ")}` });
  return f;
}

const norm = (v: unknown) => (isStr(v) ? (normalizeSha256(v) ?? v) : v);

/** Keys whose change is an in-place update (metadata, hints): no rehash unless the resolved source moved. */
const ARTIFACT_UPDATE_KEYS = [
  "name",
  "machine",
  "version",
  "kind",
  "projectDir",
  "refreshVerify",
  "downloadDir",
  "stack",
  "configPath",
  "kasDir",
  "kasImage",
  "network",
] as const;

export function diffArtifact(olds: Partial<ArtifactState>, news: Partial<ArtifactInputs>): DiffDecision {
  const replaces: string[] = [];
  if (norm(olds.sha256) !== norm(news.sha256)) replaces.push("sha256");
  if (olds.path !== news.path) replaces.push("path");
  if (olds.url !== news.url) replaces.push("url");
  if (olds.storeName !== news.storeName) replaces.push("storeName");
  if (Array.isArray(olds.drift) && olds.drift.length > 0) replaces.push("storePath");
  const changes = replaces.length > 0 || ARTIFACT_UPDATE_KEYS.some((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
  return { changes, replaces, deleteBeforeReplace: false };
}

function toRequest(inputs: ArtifactInputs) {
  return {
    name: inputs.name,
    machine: inputs.machine,
    version: inputs.version,
    kind: inputs.kind,
    pin: { sha256: inputs.sha256, path: inputs.path, url: inputs.url },
    projectDir: inputs.projectDir,
    storeName: inputs.storeName,
    downloadDir: inputs.downloadDir,
    verify: "always" as const,
    hints: { stack: inputs.stack, configPath: inputs.configPath, kasDir: inputs.kasDir, image: inputs.kasImage, network: inputs.network },
  };
}

/** Create: full verification and import. */
export async function createArtifact(inputs: ArtifactInputs): Promise<ArtifactState> {
  const out = await importArtifact(toRequest(inputs));
  return { ...inputs, ...out, drift: [] };
}

/** Update (no replace): metadata only, unless the resolved source file moved (projectDir change): then re-import. */
export async function updateArtifact(olds: ArtifactState, news: ArtifactInputs): Promise<ArtifactState> {
  const moved = news.path !== undefined && resolvePinPath(olds.projectDir, news.path) !== resolvePinPath(news.projectDir, news.path);
  if (moved) return createArtifact(news);
  const { size, sha256, sri, nixBase32, storePath, sourcePath, mtimeMs, fingerprint } = olds;
  return { ...news, size, sha256, sri, nixBase32, storePath, sourcePath, mtimeMs, fingerprint, drift: olds.drift ?? [] };
}

/** Refresh: what changed underneath (see inspectArtifact). Returns the new state and whether it rehashed. */
export async function refreshArtifact(state: ArtifactState): Promise<{ state: ArtifactState; rehashed: boolean }> {
  const r = await inspectArtifact(state, { full: state.refreshVerify === "full" });
  return { state: { ...state, ...r.outputs, drift: r.drift }, rehashed: r.rehashed };
}

// ---------------------------------------------------------------------------------------------------
// IsarBuild

export interface BuildInputs {
  kasDir: string;
  workDir?: string;
  buildDir?: string;
  dlDir?: string;
  sstateDir?: string;
  engine: "podman" | "docker";
  timeoutSeconds: number;
  machine: string;
  image: KasImageOverlay;
  network: NetworkProfile;
  extraOverlays?: string[];
  arch: Arch;
  imageRecipe: string;
  distro: string;
  rootfsType?: string;
  wicType?: string;
  projectDir: string;
  kasContainer?: string;
  allowRoot?: boolean;
  searchPath?: string[];
  killGraceSeconds?: number;
  triggers?: unknown[];
}

/** What a build found in its deploy directory (kas.ts findDeployOutputs), plus where and how long. */
export interface BuildOutputs extends DeployOutputs {
  /** The resolved KAS_BUILD_DIR (absolute). The input `buildDir` stays as written, so diffs compare like with like. */
  buildPath: string;
  logPath: string;
  durationMs: number;
  /** Outputs that a refresh found gone (a rebuild follows). */
  missing: string[];
}

export type BuildState = BuildInputs & BuildOutputs;

export function checkBuildInputs(news: Record<string, unknown>): CheckFailure[] {
  const f: CheckFailure[] = [];
  for (const k of ["kasDir", "machine", "projectDir", "imageRecipe", "distro"]) {
    if (!isStr(news[k]) || news[k] === "") f.push({ property: k, reason: `${k} is required (a non-empty string)` });
  }
  for (const k of ["machine", "imageRecipe", "distro"]) {
    if (isStr(news[k]) && !/^[a-z0-9][a-z0-9._-]*$/.test(news[k] as string)) f.push({ property: k, reason: `${JSON.stringify(news[k])} must be [a-z0-9._-]` });
  }
  if (news.engine !== "podman" && news.engine !== "docker") f.push({ property: "engine", reason: 'engine must be "podman" or "docker"' });
  if (typeof news.timeoutSeconds !== "number" || !(news.timeoutSeconds > 0))
    f.push({ property: "timeoutSeconds", reason: "timeoutSeconds must be a positive number of seconds" });
  if (!(KAS_IMAGE_OVERLAYS as readonly unknown[]).includes(news.image))
    f.push({ property: "image", reason: `image must be one of ${KAS_IMAGE_OVERLAYS.join(", ")}` });
  if (!(NETWORK_PROFILES as readonly unknown[]).includes(news.network))
    f.push({ property: "network", reason: `network must be one of ${NETWORK_PROFILES.join(", ")}` });
  if (!(ARCHES as readonly unknown[]).includes(news.arch)) f.push({ property: "arch", reason: `arch must be one of ${ARCHES.join(", ")}` });
  if (news.extraOverlays !== undefined && (!Array.isArray(news.extraOverlays) || news.extraOverlays.some((o) => !isStr(o) || o === "" || o.includes(":")))) {
    f.push({ property: "extraOverlays", reason: "extraOverlays must be a list of overlay file paths without ':'" });
  }
  return f;
}

/** Inputs whose change means a different image, so a rebuild. */
const REBUILD_KEYS = [
  "kasDir",
  "workDir",
  "buildDir",
  "engine",
  "machine",
  "image",
  "network",
  "extraOverlays",
  "arch",
  "imageRecipe",
  "distro",
  "rootfsType",
  "wicType",
  "triggers",
] as const;
const BUILD_UPDATE_KEYS = ["dlDir", "sstateDir", "timeoutSeconds", "projectDir", "kasContainer", "allowRoot", "searchPath", "killGraceSeconds"] as const;

export function diffBuild(olds: Partial<BuildState>, news: Partial<BuildInputs>): DiffDecision {
  const replaces: string[] = REBUILD_KEYS.filter((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
  if (Array.isArray(olds.missing) && olds.missing.length > 0) replaces.push("deployDir");
  const changes = replaces.length > 0 || BUILD_UPDATE_KEYS.some((k) => JSON.stringify(olds[k]) !== JSON.stringify(news[k]));
  return { changes, replaces, deleteBeforeReplace: false };
}

function settingsOf(i: BuildInputs): IsarBuildSettings {
  return {
    kasDir: i.kasDir,
    workDir: i.workDir,
    buildDir: i.buildDir,
    dlDir: i.dlDir,
    sstateDir: i.sstateDir,
    engine: i.engine,
    timeoutSeconds: i.timeoutSeconds || DEFAULT_BUILD_TIMEOUT_SECONDS,
  };
}

/** Run the build and collect its outputs; fails if neither a rootfs nor a disk image was deployed. */
export async function runBuild(inputs: BuildInputs): Promise<BuildState> {
  const r = await runKasBuild({
    settings: settingsOf(inputs),
    target: { machine: inputs.machine, image: inputs.image, network: inputs.network, extraOverlays: inputs.extraOverlays },
    projectDir: inputs.projectDir,
    kasContainer: inputs.kasContainer,
    allowRoot: inputs.allowRoot,
    searchPath: inputs.searchPath,
    killGraceMs: inputs.killGraceSeconds !== undefined ? inputs.killGraceSeconds * 1000 : undefined,
  });
  const id = { machine: inputs.machine, image: inputs.imageRecipe, distro: inputs.distro };
  const found = await findDeployOutputs(r.deployDir, id, { arch: inputs.arch, rootfsType: inputs.rootfsType, wicType: inputs.wicType });
  if (!found.rootfs && !found.wic) {
    throw new Error(
      `kas-container finished, but ${r.deployDir} has no ${id.image}-${id.distro}-${id.machine}.${inputs.rootfsType ?? "tar.gz"} or .${inputs.wicType ?? "wic"} ` +
        `(files there: ${found.files.map((f) => f.slice(r.deployDir.length + 1)).join(", ") || "none"}): check imageRecipe / distro against the kas target and distro. Full log: ${r.logPath}`,
    );
  }
  const { deployDir, rootfs, kernel, initramfs, wic, dtbs, files } = found;
  return {
    ...inputs,
    buildPath: r.command.buildDir,
    deployDir,
    logPath: r.logPath,
    durationMs: r.durationMs,
    rootfs,
    kernel,
    initramfs,
    wic,
    dtbs,
    files,
    missing: [],
  };
}

/** Refresh: which previously found outputs are gone. */
export async function refreshBuild(state: BuildState): Promise<BuildState> {
  const had = [state.rootfs, state.kernel, state.initramfs, state.wic, ...(state.dtbs ?? [])].filter((p): p is string => isStr(p));
  const missing = had.filter((p) => !fs.existsSync(p));
  return { ...state, missing };
}
