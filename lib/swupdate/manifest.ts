/**
 * Fleet update manifest (seed 000, "Coordinated Fleet Updates"): which bundle each node installs and in
 * which order (servers first), plus the checksums of all bundles.
 *
 * Contract:
 * - Pure rendering (`renderFleetManifest`, `renderChecksums`) plus an atomic writer (`writeFleetUpdate`).
 * - Deterministic: object keys sorted, nodes and bundles sorted by name, 2-space JSON with a final newline;
 *   no clock is read — a timestamp appears only when the caller passes one.
 * - updateOrder: servers 1, agents 2 (all servers are updated and Ready before any agent starts).
 * - A node's bundle is the one built for that node (`node` set: per-node images carry the node's own
 *   hostname and k3s config), else the one built for its hardware; a node with neither, two bundles for
 *   one node, or two shared bundles for one hardware, is an error naming the node / hardware.
 * - checksums.txt is in `sha256sum` format ("<hex>  <file>") so `sha256sum -c checksums.txt` checks it.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";

export interface ManifestNode {
  name: string;
  address: string;
  arch: string;
  hardware: string;
  role: "server" | "agent";
  /** SWUpdate selection for A/B layouts ("stable,main"). */
  selection?: string;
}

export interface ManifestBundle {
  hardware: string;
  /** The node this bundle is built for (a per-node image); absent = shared by every node of `hardware`. */
  node?: string;
  /** Bundle file name (relative to the manifest directory) or path; the manifest records the basename. */
  file: string;
  sha256: string;
  size: number;
}

export interface FleetManifestInput {
  version: string;
  /** Optional, caller-supplied (e.g. a release time); never read from the clock here. */
  timestamp?: string;
  nodes: ManifestNode[];
  bundles: ManifestBundle[];
}

export class ManifestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ManifestError";
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .filter((k) => o[k] !== undefined)
        .sort()
        .map((k) => [k, sortKeys(o[k])]),
    );
  }
  return v;
}

/** JSON with sorted keys, 2-space indent and a final newline. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v), null, 2) + "\n";
}

export function fleetManifest(input: FleetManifestInput): Record<string, unknown> {
  const byHw = new Map<string, ManifestBundle>();
  const byNode = new Map<string, ManifestBundle>();
  for (const b of input.bundles) {
    if (!/^[0-9a-f]{64}$/.test(b.sha256)) throw new ManifestError(`bundle ${b.file}: sha256 must be 64 lowercase hex digits`);
    if (b.node !== undefined) {
      if (byNode.has(b.node)) throw new ManifestError(`two bundles for node ${b.node} (${byNode.get(b.node)!.file}, ${b.file})`);
      byNode.set(b.node, b);
      continue;
    }
    if (byHw.has(b.hardware))
      throw new ManifestError(`two bundles for hardware ${b.hardware} (${byHw.get(b.hardware)!.file}, ${b.file}): build one bundle per hardware and version`);
    byHw.set(b.hardware, b);
  }
  const seen = new Set<string>();
  const nodes: Record<string, unknown> = {};
  for (const n of [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (seen.has(n.name)) throw new ManifestError(`node ${n.name} is listed twice`);
    seen.add(n.name);
    const b = byNode.get(n.name) ?? byHw.get(n.hardware);
    if (!b) throw new ManifestError(`node ${n.name} (${n.hardware}) has no bundle: build a SwuBundle for hardware ${n.hardware} version ${input.version}`);
    if (b.hardware !== n.hardware) throw new ManifestError(`node ${n.name} is ${n.hardware} but its bundle ${b.file} is for ${b.hardware}`);
    nodes[n.name] = {
      address: n.address,
      arch: n.arch,
      hardware: n.hardware,
      role: n.role,
      bundle: path.basename(b.file),
      sha256: b.sha256,
      selection: n.selection,
      updateOrder: n.role === "server" ? 1 : 2,
    };
  }
  const bundles = [...byHw.values(), ...byNode.values()]
    .sort((a, b) => (a.hardware + "\0" + (a.node ?? "") < b.hardware + "\0" + (b.node ?? "") ? -1 : 1))
    .map((b) => ({ hardware: b.hardware, node: b.node, file: path.basename(b.file), sha256: b.sha256, size: b.size }));
  return { version: input.version, timestamp: input.timestamp, nodes, bundles };
}

export function renderFleetManifest(input: FleetManifestInput): string {
  return canonicalJson(fleetManifest(input));
}

/** sha256sum-format lines for the bundles, sorted by file name. */
export function renderChecksums(bundles: ManifestBundle[]): string {
  return (
    [...bundles]
      .map((b) => `${b.sha256}  ${path.basename(b.file)}`)
      .sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1))
      .join("\n") + "\n"
  );
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString("hex")}.tmp`);
  try {
    await fs.promises.writeFile(tmp, content, { flag: "wx", mode: 0o644 });
    await fs.promises.rename(tmp, file);
  } finally {
    await fs.promises.rm(tmp, { force: true });
  }
}

export interface FleetUpdateFiles {
  manifestPath: string;
  manifestSha256: string;
  checksumsPath: string;
  manifest: string;
}

/** Write manifest.json and checksums.txt into `dir` (atomically each). */
export async function writeFleetUpdate(dir: string, input: FleetManifestInput): Promise<FleetUpdateFiles> {
  const manifest = renderFleetManifest(input);
  const checksums = renderChecksums(input.bundles);
  await fs.promises.mkdir(dir, { recursive: true });
  const manifestPath = path.join(dir, "manifest.json");
  const checksumsPath = path.join(dir, "checksums.txt");
  await writeAtomic(checksumsPath, checksums);
  await writeAtomic(manifestPath, manifest);
  return { manifestPath, checksumsPath, manifest, manifestSha256: crypto.createHash("sha256").update(manifest).digest("hex") };
}
