/**
 * The decisions behind the NodeImage dynamic resource (providers/image.ts), testable without Pulumi.
 *
 * Contract:
 * - check: validates inputs (lib/image/compose validateRequest) and fills defaults, including
 *   `expressionHash` (sha256 of the nix/ files) so a changed expression shows up as a changed input.
 * - diff: pure. `inputDigest` = sha256 over node identity, artifacts (store path + sha256), rendered files,
 *   wic options, package set and expressionHash. A different digest → replace, naming the inputs that
 *   changed; a store path found missing by refresh → replace (rebuild); only operational settings
 *   (timeout, offline, cacheDir, gcRoot, projectDir) changed → update in place; else no change.
 *   Never builds, never calls Nix.
 * - create: builds with `nix build` and records the store path, image id and files (+ sha256).
 * - read: checks the store path still exists (`storePathValid`); outputs otherwise as stored.
 * - delete: removes the GC root; the store path itself goes with the next garbage collection.
 */
import type { CheckFailure, DiffDecision } from "../provider-types";
import { containsUnknown } from "../unknown";
import * as fs from "fs";
import {
  ComposeOptions,
  ComposeResult,
  composeNodeImage,
  expressionDigest,
  findProjectDir,
  ImageEntry,
  NodeImageRequest,
  nodeImageDigest,
  OutputFile,
  PkgsSource,
  removeGcRoot,
  validateRequest,
} from "./compose";

/** Inputs as stored by the provider (after check). */
export interface NodeImageInputs extends Pick<NodeImageRequest, "hardware" | "arch" | "role" | "artifacts" | "files" | "wicRootPartition"> {
  nodeName: string;
  headroomPercent: number;
  pkgsSource: "host" | "nixpkgs";
  nixpkgs?: string;
  expressionHash: string;
  offline: boolean;
  timeoutSeconds: number;
  gcRoot: boolean;
  projectDir?: string;
  cacheDir?: string;
}

export interface NodeImageState extends NodeImageInputs {
  storePath: string;
  drvPath: string;
  imageId: string;
  files: ImageEntry[];
  outputFiles: OutputFile[];
  inputDigest: string;
  storePathValid: boolean;
}

export type { CheckFailure, DiffDecision } from "../provider-types";

/** Inputs that decide the image bytes (part of the digest). */
export const IMAGE_KEYS = [
  "nodeName",
  "hardware",
  "arch",
  "role",
  "artifacts",
  "files",
  "wicRootPartition",
  "headroomPercent",
  "pkgsSource",
  "nixpkgs",
  "expressionHash",
] as const;
/** Inputs that only change how the build runs. */
export const OPERATIONAL_KEYS = ["offline", "timeoutSeconds", "gcRoot", "projectDir", "cacheDir"] as const;

export function requestOf(i: NodeImageInputs): NodeImageRequest {
  return {
    name: i.nodeName,
    hardware: i.hardware,
    arch: i.arch,
    role: i.role,
    artifacts: i.artifacts,
    files: i.files,
    wicRootPartition: i.wicRootPartition,
    headroomPercent: i.headroomPercent,
  };
}

export function pkgsOf(i: Pick<NodeImageInputs, "pkgsSource" | "nixpkgs">): PkgsSource {
  return i.pkgsSource === "host" ? "host" : { nixpkgs: i.nixpkgs };
}

export function digestOf(i: NodeImageInputs): string {
  return nodeImageDigest(requestOf(i), i.expressionHash, pkgsOf(i));
}

function optionsOf(i: NodeImageInputs): ComposeOptions {
  return {
    projectDir: i.projectDir ?? findProjectDir(),
    cacheDir: i.cacheDir,
    pkgs: pkgsOf(i),
    offline: i.offline,
    timeoutMs: i.timeoutSeconds * 1000,
    gcRoot: i.gcRoot,
  };
}

/** Validate and fill defaults. */
export function checkNodeImage(news: Record<string, unknown>): { inputs: NodeImageInputs; failures: CheckFailure[] } {
  const failures: CheckFailure[] = [];
  const n = { ...news } as Record<string, unknown>;
  n.headroomPercent = n.headroomPercent ?? 30;
  n.pkgsSource = n.pkgsSource ?? "nixpkgs";
  n.offline = n.offline ?? true;
  n.timeoutSeconds = n.timeoutSeconds ?? 1800;
  n.gcRoot = n.gcRoot ?? true;
  for (const k of ["nodeName", "hardware", "arch", "role", "artifacts", "files"]) {
    if (n[k] === undefined || n[k] === null) failures.push({ property: k, reason: `${k} is required` });
  }
  if (n.pkgsSource !== "host" && n.pkgsSource !== "nixpkgs") failures.push({ property: "pkgsSource", reason: `pkgsSource must be "host" or "nixpkgs"` });
  if (typeof n.headroomPercent !== "number" || !Number.isInteger(n.headroomPercent) || n.headroomPercent < 0) {
    failures.push({ property: "headroomPercent", reason: "headroomPercent must be a non-negative integer" });
  }
  if (typeof n.timeoutSeconds !== "number" || !(n.timeoutSeconds > 0)) failures.push({ property: "timeoutSeconds", reason: "timeoutSeconds must be > 0" });
  if (n.expressionHash === undefined) {
    try {
      n.expressionHash = expressionDigest(typeof n.projectDir === "string" ? n.projectDir : findProjectDir());
    } catch (e) {
      failures.push({ property: "projectDir", reason: (e as Error).message });
    }
  }
  const inputs = n as unknown as NodeImageInputs;
  // During preview, artifact store paths computed by other resources are still unknown: validate the
  // request once they are known (at `up`).
  const known = !containsUnknown(inputs.artifacts) && !containsUnknown(inputs.files);
  if (failures.length === 0 && known && Array.isArray(inputs.files) && inputs.artifacts && typeof inputs.artifacts === "object") {
    for (const p of validateRequest(requestOf(inputs))) failures.push({ property: "files", reason: p });
  }
  return { inputs, failures };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Pure diff (see the contract). `olds` are the stored outputs (inputs + state). */
export function diffNodeImage(olds: Partial<NodeImageState>, news: NodeImageInputs): DiffDecision {
  const oldDigest = olds.inputDigest;
  const newDigest = digestOf(news);
  const replaces: string[] = [];
  if (oldDigest !== newDigest) {
    for (const k of IMAGE_KEYS) if (!same(olds[k], news[k])) replaces.push(k);
    if (replaces.length === 0) replaces.push("inputDigest");
  } else if (olds.storePathValid === false) {
    replaces.push("storePath");
  }
  if (replaces.length > 0) return { changes: true, replaces, deleteBeforeReplace: false };
  const changes = OPERATIONAL_KEYS.some((k) => !same(olds[k], news[k]));
  return { changes, replaces: [], deleteBeforeReplace: false, stables: ["storePath", "imageId", "outputFiles", "drvPath"] };
}

export async function createNodeImage(inputs: NodeImageInputs, compose: typeof composeNodeImage = composeNodeImage): Promise<NodeImageState> {
  const r: ComposeResult = await compose(requestOf(inputs), optionsOf(inputs));
  return {
    ...inputs,
    storePath: r.storePath,
    drvPath: r.drvPath,
    imageId: r.imageId,
    outputFiles: r.files,
    inputDigest: digestOf(inputs),
    storePathValid: true,
  };
}

/** In-place update: only operational settings changed; the image is the same. */
export function updateNodeImage(olds: NodeImageState, news: NodeImageInputs): NodeImageState {
  return {
    ...news,
    storePath: olds.storePath,
    drvPath: olds.drvPath,
    imageId: olds.imageId,
    outputFiles: olds.outputFiles,
    inputDigest: olds.inputDigest,
    storePathValid: olds.storePathValid,
  };
}

export function refreshNodeImage(props: NodeImageState): NodeImageState {
  return {
    ...props,
    storePathValid: typeof props.storePath === "string" && fs.existsSync(props.storePath) && fs.existsSync(`${props.storePath}/metadata.json`),
  };
}

export function deleteNodeImage(props: NodeImageState): void {
  if (props.gcRoot) removeGcRoot(props.nodeName, { projectDir: props.projectDir, cacheDir: props.cacheDir });
}
