/**
 * The decisions behind the TuringPiFlash and SwupdateDelivery dynamic resources (providers/delivery.ts),
 * testable without Pulumi: check, diff (with the human-readable reason shown by `pulumi preview`),
 * create / update / read / delete on top of ./tpi.ts and ./swupdate.ts.
 *
 * Contract:
 * - check: validates every input, fills defaults; failures name the input and the fix; secret inputs
 *   (sshPrivateKey, aesKey) are never echoed.
 * - diff (pure, no I/O):
 *   TuringPiFlash: a different image (imageId or sha256), slot, BMC name or node name → replace with
 *   deleteBeforeReplace (the slot holds one image); refresh having found the node running another image,
 *   or presenting another host key (re-installed outside this program) → replace; any other input change
 *   (timeouts, endpoints, credentials, local image path, sources) → update in place, which touches
 *   nothing on the board.
 *   SwupdateDelivery: a different image id or bundle sha256, or drift found by refresh → update
 *   (install); node name → replace; other changes → update in place without touching the node.
 *   `detailedDiff` names the inputs; `reason` is `describeDeliveryChange`.
 * - create / update run the delivery and return inputs + what was found (node host key, running image
 *   id). A failure throws: Pulumi keeps the old state (for update: the node keeps its old image).
 * - read (refresh) never fails on an unreachable node: it records `lastCheck` and keeps the state; a
 *   node running another image sets `runningImageId` (drift, diff then redelivers).
 * - delete: TuringPiFlash powers the slot off and removes the uploaded image from the BMC;
 *   SwupdateDelivery leaves the node as it is (an installed update cannot be taken back).
 */
import { normalizeSha256 } from "../model/checks";
import { DELIVERY_DEFAULTS } from "../model/defaults";
import { readEndpoint, SshEndpoint } from "../transport/endpoint";
import { UNKNOWN, containsUnknown } from "../unknown";
import { ProgressSink, short as shortHash } from "./common";

/** Short form for messages; a value only known at `up` (preview) says so. */
function short(v: string | undefined): string {
  return v === UNKNOWN ? "(known after the image is built)" : shortHash(v);
}
import { flashNode, probeNode, remoteImagePath, unflashNode, TpiFlashSpec, FlashOptions } from "./tpi";
import { installBundle, probeSwupdateNode, SwupdateSpec, InstallOptions } from "./swupdate";

type Raw = Record<string, unknown>;

interface Common {
  nodeName: string;
  node: SshEndpoint;
  /** What the image is made of, for "why" messages: e.g. { "rootfs sha256": "…", "files digest": "…" }. */
  sources?: Record<string, string>;
  bootTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  /** Secret. */
  sshPrivateKey?: string;
}

export interface TpiInputs extends Common {
  kind: "tpi";
  hostname?: string;
  slot: number;
  bmc: SshEndpoint & { name: string; imageDir: string };
  image: { path: string; sha256: string; imageId: string };
  flashTimeoutSeconds: number;
  tpiSha256: boolean;
}

export interface SwupdateInputs extends Common {
  kind: "swupdate";
  hardware: string;
  hwRevision: string;
  selection?: string;
  bundle: { path: string; sha256: string };
  imageId: string;
  version?: string;
  certificate?: string;
  certPath?: string;
  certPurpose?: "emailProtection" | "codeSigning";
  remoteDir?: string;
  installTimeoutSeconds: number;
  rebootArgv?: string[];
  /** Secret: SWUpdate AES key file text. */
  aesKey?: string;
}

export type DeliveryInputs = TpiInputs | SwupdateInputs;

export interface DeliveryState {
  /** Image id the node reported after our delivery, or at the last refresh. */
  runningImageId?: string;
  /** TuringPiFlash: the node's host key recorded right after our flash. */
  nodeHostKey?: string;
  /** Refresh found the node presenting another host key. */
  hostKeyChanged?: boolean;
  /** Result of the last refresh ("ok", or why the node could not be checked). */
  lastCheck?: string;
}

export type DeliveryOutputs = DeliveryInputs & DeliveryState;

import type { CheckFailure } from "../provider-types";
export type { CheckFailure };

function isObj(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function num(v: unknown, def: number, p: string, f: CheckFailure[], min = 1): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) f.push({ property: p, reason: `${JSON.stringify(v)} must be a number >= ${min}` });
  return n;
}

function checkSources(v: unknown, f: CheckFailure[]): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === "string")) {
    f.push({ property: "sources", reason: "must map names to strings, e.g. { \"rootfs sha256\": \"…\" }" });
    return undefined;
  }
  return v as Record<string, string>;
}

/**
 * Failures about values still unknown at preview (Pulumi's sentinel: an image path, sha256 or id computed
 * by a NodeImage not built yet, or a whole object of them) are dropped: they are checked again at `up`.
 */
function knownFailures(news: Raw, f: CheckFailure[]): CheckFailure[] {
  return f.filter((x) => {
    let v: unknown = news;
    for (const part of x.property.split(".")) {
      if (v === UNKNOWN) return false;
      v = isObj(v) ? v[part] : undefined;
    }
    return !containsUnknown(v);
  });
}

/** Validate and fill defaults; values unknown at preview are not judged (see knownFailures). */
export function checkDelivery(news: Raw): { inputs: DeliveryInputs; failures: CheckFailure[] } {
  const r = checkKnownDelivery(news);
  return { inputs: r.inputs, failures: knownFailures(news, r.failures) };
}

function checkKnownDelivery(news: Raw): { inputs: DeliveryInputs; failures: CheckFailure[] } {
  const f: CheckFailure[] = [];
  const kind = news.kind;
  const nodeName = str(news.nodeName) ?? "";
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(nodeName)) f.push({ property: "nodeName", reason: `${JSON.stringify(news.nodeName)} must be an RFC 1123 label (the node's name in the fleet)` });
  const sshPrivateKey = str(news.sshPrivateKey);
  const common = {
    nodeName,
    sources: checkSources(news.sources, f),
    bootTimeoutSeconds: num(news.bootTimeoutSeconds, DELIVERY_DEFAULTS.bootTimeoutSeconds, "bootTimeoutSeconds", f),
    connectTimeoutSeconds: num(news.connectTimeoutSeconds, DELIVERY_DEFAULTS.connectTimeoutSeconds, "connectTimeoutSeconds", f),
    ...(sshPrivateKey ? { sshPrivateKey } : {}),
  };
  if (kind === "tpi") {
    const node = readEndpoint(news.node, "node", false, f);
    const b = isObj(news.bmc) ? news.bmc : {};
    const bmcEp = readEndpoint(news.bmc, "bmc", false, f);
    const bmcName = str(b.name) ?? "";
    if (!bmcName) f.push({ property: "bmc.name", reason: "is required (the BMC's name in bmcs)" });
    const imageDir = str(b.imageDir) ?? "";
    if (!imageDir.startsWith("/")) f.push({ property: "bmc.imageDir", reason: `${JSON.stringify(b.imageDir)} must be an absolute directory on the BMC, e.g. /mnt/sdcard/images` });
    const slot = Number(news.slot);
    if (![1, 2, 3, 4].includes(slot)) f.push({ property: "slot", reason: `${JSON.stringify(news.slot)} is not a Turing Pi 2 slot (1–4)` });
    const im = isObj(news.image) ? news.image : news.image === UNKNOWN ? { path: UNKNOWN, sha256: UNKNOWN, imageId: UNKNOWN } : {};
    const imagePath = str(im.path) ?? "";
    if (!imagePath.startsWith("/")) f.push({ property: "image.path", reason: "must be the absolute path of the node's disk image (NodeImage storePath + /disk.img)" });
    const sha = normalizeSha256(String(im.sha256 ?? ""));
    if (!sha) f.push({ property: "image.sha256", reason: `${JSON.stringify(im.sha256)} is not a sha256 (64 hex digits or sha256-<base64>)` });
    const imageId = str(im.imageId) ?? "";
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(imageId)) f.push({ property: "image.imageId", reason: `${JSON.stringify(im.imageId)} must be the NodeImage's imageId ([A-Za-z0-9._-])` });
    const hostname = str(news.hostname);
    const inputs: TpiInputs = {
      kind: "tpi",
      ...common,
      ...(hostname ? { hostname } : {}),
      slot,
      bmc: { ...bmcEp, name: bmcName, imageDir },
      node,
      image: { path: imagePath, sha256: sha ?? String(im.sha256 ?? ""), imageId },
      flashTimeoutSeconds: num(news.flashTimeoutSeconds, DELIVERY_DEFAULTS.flashTimeoutSeconds, "flashTimeoutSeconds", f),
      tpiSha256: news.tpiSha256 === undefined ? DELIVERY_DEFAULTS.tpiSha256 : news.tpiSha256 === true,
    };
    return { inputs, failures: f };
  }
  if (kind === "swupdate") {
    const node = readEndpoint(news.node, "node", true, f);
    const hardware = str(news.hardware) ?? "";
    if (!/^[A-Za-z0-9._+-]+$/.test(hardware)) f.push({ property: "hardware", reason: "is required: the bundle's board name (the node's hardware)" });
    const hwRevision = str(news.hwRevision) ?? "";
    if (!/^[A-Za-z0-9._+-]+$/.test(hwRevision)) f.push({ property: "hwRevision", reason: "is required: the node's board revision (nodes[].hwRevision)" });
    const selection = str(news.selection);
    if (selection !== undefined && !/^[A-Za-z0-9_-]+,[A-Za-z0-9_-]+$/.test(selection)) f.push({ property: "selection", reason: `${JSON.stringify(selection)} must look like "stable,main"` });
    const bu = isObj(news.bundle) ? news.bundle : news.bundle === UNKNOWN ? { path: UNKNOWN, sha256: UNKNOWN } : {};
    const bpath = str(bu.path) ?? "";
    if (!bpath.startsWith("/")) f.push({ property: "bundle.path", reason: "must be the absolute path of the .swu (SwuBundle path)" });
    const bsha = normalizeSha256(String(bu.sha256 ?? ""));
    if (!bsha) f.push({ property: "bundle.sha256", reason: `${JSON.stringify(bu.sha256)} is not a sha256` });
    const imageId = str(news.imageId) ?? "";
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(imageId)) f.push({ property: "imageId", reason: "must be the image id the node reports after the update (NodeImage imageId)" });
    const certificate = str(news.certificate);
    if (certificate !== undefined && !/-----BEGIN CERTIFICATE-----/.test(certificate)) f.push({ property: "certificate", reason: "is not a PEM certificate" });
    const certPurpose = news.certPurpose;
    if (certPurpose !== undefined && certPurpose !== "emailProtection" && certPurpose !== "codeSigning") f.push({ property: "certPurpose", reason: 'must be "emailProtection" or "codeSigning"' });
    const rebootArgv = news.rebootArgv;
    if (rebootArgv !== undefined && !(Array.isArray(rebootArgv) && rebootArgv.length > 0 && rebootArgv.every((x) => typeof x === "string"))) f.push({ property: "rebootArgv", reason: 'must be a non-empty argv array, e.g. ["systemctl", "reboot"]' });
    const aesKey = str(news.aesKey);
    if (aesKey !== undefined && !/^[0-9a-fA-F]{64}\s+[0-9a-fA-F]{32}\s*$/.test(aesKey.trim())) f.push({ property: "aesKey", reason: 'must be a SWUpdate AES key file: "<64 hex key> <32 hex iv>" (value not shown)' });
    const opt = <T>(k: string, v: T | undefined) => (v === undefined ? {} : { [k]: v });
    const inputs: SwupdateInputs = {
      kind: "swupdate",
      ...common,
      node,
      hardware,
      hwRevision,
      ...opt("selection", selection),
      bundle: { path: bpath, sha256: bsha ?? String(bu.sha256 ?? "") },
      imageId,
      ...opt("version", str(news.version)),
      ...opt("certificate", certificate),
      ...opt("certPath", str(news.certPath)),
      ...opt("certPurpose", certPurpose as SwupdateInputs["certPurpose"]),
      ...opt("remoteDir", str(news.remoteDir)),
      installTimeoutSeconds: num(news.installTimeoutSeconds, DELIVERY_DEFAULTS.installTimeoutSeconds, "installTimeoutSeconds", f),
      ...opt("rebootArgv", rebootArgv as string[] | undefined),
      ...opt("aesKey", aesKey),
    };
    return { inputs, failures: f };
  }
  f.push({ property: "kind", reason: `${JSON.stringify(kind)} must be "tpi" or "swupdate"` });
  return { inputs: { kind: "tpi" } as TpiInputs, failures: f };
}

// ------------------------------------------------------------------ diff and description

export interface DeliveryDiff {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** Property → "update" | "update-replace" (Pulumi's detailed diff kinds). */
  detailedDiff: Record<string, { kind: "update" | "update-replace"; inputDiff: boolean }>;
  /** Human-readable decision, e.g. "srv1: reflash (image changed: rootfs sha256 a1b2… → c3d4…)". */
  reason: string;
  /** Whether the node itself is acted on (flash / install), not just the state. */
  touchesNode: boolean;
}

const SECRET_KEYS = new Set(["sshPrivateKey", "aesKey"]);

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

function expectedImageId(i: Partial<DeliveryInputs>): string | undefined {
  return i.kind === "tpi" ? (i as TpiInputs).image?.imageId : (i as SwupdateInputs).imageId;
}

function artifactSha(i: Partial<DeliveryInputs>): string | undefined {
  return i.kind === "tpi" ? (i as TpiInputs).image?.sha256 : (i as SwupdateInputs).bundle?.sha256;
}

/** Why the image differs, from `sources` (falls back to the image id / artifact sha256). */
function imageChangeWhy(olds: Partial<DeliveryInputs>, news: DeliveryInputs): string {
  const parts: string[] = [];
  // sources are compared only when both sides have them (at preview they may still be unknown)
  if (olds.sources && news.sources) {
    const os = olds.sources;
    const ns = news.sources;
    for (const k of [...new Set([...Object.keys(os), ...Object.keys(ns)])].sort()) {
      if (os[k] !== ns[k]) parts.push(`${k} ${short(os[k])} → ${short(ns[k])}`);
    }
  }
  if (parts.length === 0) {
    const what = news.kind === "tpi" ? "disk image sha256" : "bundle sha256";
    if (artifactSha(olds) !== artifactSha(news)) parts.push(`${what} ${short(artifactSha(olds))} → ${short(artifactSha(news))}`);
    if (expectedImageId(olds) !== expectedImageId(news)) parts.push(`image id ${short(expectedImageId(olds))} → ${short(expectedImageId(news))}`);
  }
  return parts.join("; ");
}

/**
 * What the next `pulumi up` does to this node's delivery, and why (one line, no secrets):
 * "srv1: reflash slot 1 of bmc (image changed: rootfs sha256 a1b2… → c3d4…)",
 * "jetson1: update via SWUpdate (bundle changed: …)", "agent2: left alone (image 0f3c… on slot 3)".
 */
export function describeDeliveryChange(olds: Partial<DeliveryOutputs> | undefined, news: DeliveryInputs): string {
  return diffDelivery(olds, news).reason;
}

export function diffDelivery(oldsIn: Partial<DeliveryOutputs> | undefined, news: DeliveryInputs): DeliveryDiff {
  const n = news.nodeName;
  const target = news.kind === "tpi" ? `slot ${news.slot} of ${news.bmc.name}` : `${news.node.address}`;
  if (!oldsIn || !oldsIn.kind) {
    const verb = news.kind === "tpi" ? `flash ${target}` : "install via SWUpdate";
    return { changes: true, replaces: [], deleteBeforeReplace: false, detailedDiff: {}, reason: `${n}: ${verb} (new delivery, image ${short(expectedImageId(news))})`, touchesNode: true };
  }
  const olds = oldsIn;
  const detailed: DeliveryDiff["detailedDiff"] = {};
  const changed: string[] = [];
  for (const k of new Set([...Object.keys(olds), ...Object.keys(news)])) {
    // state-only keys, and the runtime's own (`__provider`: the serialized provider, which changes with
    // every program upgrade and must not make every delivery look changed)
    if (["runningImageId", "nodeHostKey", "hostKeyChanged", "lastCheck"].includes(k) || k.startsWith("__")) continue;
    if (!same((olds as Raw)[k], (news as unknown as Raw)[k])) changed.push(k);
  }
  const replaces: string[] = [];
  const reasons: string[] = [];
  let touches = false;
  const imageChanged =
    expectedImageId(news) === UNKNOWN || artifactSha(news) === UNKNOWN || !same(expectedImageId(olds), expectedImageId(news)) || !same(artifactSha(olds), artifactSha(news));
  const drift = olds.runningImageId !== undefined && olds.runningImageId !== expectedImageId(news) && !imageChanged;
  if (olds.kind !== news.kind) {
    replaces.push("kind");
    reasons.push(`delivery method ${olds.kind} → ${news.kind}`);
  }
  if (olds.nodeName !== news.nodeName) {
    replaces.push("nodeName");
    reasons.push(`node name ${olds.nodeName} → ${news.nodeName}`);
  }
  if (news.kind === "tpi") {
    const o = olds as Partial<TpiInputs & DeliveryState>;
    if (imageChanged) {
      replaces.push("image");
      reasons.push(`image changed: ${imageChangeWhy(olds, news)}`);
    }
    if (o.slot !== news.slot) {
      replaces.push("slot");
      reasons.push(`slot ${o.slot} → ${news.slot}`);
    }
    if (o.bmc?.name !== news.bmc.name) {
      replaces.push("bmc");
      reasons.push(`BMC ${o.bmc?.name} → ${news.bmc.name}`);
    }
    if (drift) {
      replaces.push("runningImageId");
      reasons.push(`drift: the node runs image ${short(olds.runningImageId)}, expected ${short(news.image.imageId)}`);
    }
    if (o.hostKeyChanged) {
      replaces.push("nodeHostKey");
      reasons.push("drift: the node presents another SSH host key than after our flash (re-installed outside this program)");
    }
  } else {
    if (imageChanged) reasons.push(`image changed: ${imageChangeWhy(olds, news)}`);
    if (drift) reasons.push(`drift: the node runs image ${short(olds.runningImageId)}, expected ${short(news.imageId)}`);
    if (olds.hostKeyChanged) reasons.push("the node presents another SSH host key than pinned: check it, then update nodes[].ssh.hostKey");
    touches = imageChanged || drift;
  }
  for (const k of changed) detailed[k] = { kind: replaces.includes(k) ? "update-replace" : "update", inputDiff: true };
  for (const k of replaces) detailed[k] ??= { kind: "update-replace", inputDiff: false };
  if (drift && news.kind === "swupdate") detailed["runningImageId"] = { kind: "update", inputDiff: false };
  const changes = changed.length > 0 || replaces.length > 0 || touches;
  let reason: string;
  if (replaces.length > 0) {
    reason = news.kind === "tpi" ? `${n}: reflash ${target} (${reasons.join("; ")})` : `${n}: replace delivery (${reasons.join("; ")})`;
    touches = true;
  } else if (touches) {
    reason = `${n}: update via SWUpdate (${reasons.join("; ")})`;
  } else if (changed.length > 0) {
    const shown = [...changed].sort().map((k) => (SECRET_KEYS.has(k) ? `${k} (secret)` : k));
    reason = `${n}: left alone on the node; settings changed: ${shown.join(", ")}`;
  } else {
    reason = `${n}: left alone (image ${short(expectedImageId(news))} ${news.kind === "tpi" ? `on ${target}` : "installed"})`;
  }
  return { changes, replaces, deleteBeforeReplace: news.kind === "tpi" && replaces.length > 0, detailedDiff: detailed, reason, touchesNode: touches };
}

// ------------------------------------------------------------------ operations

function tpiSpec(i: TpiInputs): TpiFlashSpec {
  return {
    nodeName: i.nodeName,
    hostname: i.hostname,
    slot: i.slot,
    bmc: i.bmc,
    node: i.node,
    image: i.image,
    flashTimeoutSeconds: i.flashTimeoutSeconds,
    bootTimeoutSeconds: i.bootTimeoutSeconds,
    connectTimeoutSeconds: i.connectTimeoutSeconds,
    tpiSha256: i.tpiSha256,
  };
}

function swSpec(i: SwupdateInputs): SwupdateSpec {
  return {
    nodeName: i.nodeName,
    node: i.node,
    hardware: i.hardware,
    hwRevision: i.hwRevision,
    selection: i.selection,
    bundle: i.bundle,
    imageId: i.imageId,
    certificate: i.certificate,
    certPath: i.certPath,
    certPurpose: i.certPurpose,
    remoteDir: i.remoteDir,
    installTimeoutSeconds: i.installTimeoutSeconds,
    bootTimeoutSeconds: i.bootTimeoutSeconds,
    connectTimeoutSeconds: i.connectTimeoutSeconds,
    rebootArgv: i.rebootArgv,
  };
}

export interface OpOptions {
  progress?: ProgressSink;
  connect?: FlashOptions["connect"] & InstallOptions["connect"];
}

/** Resource id: "<node>@<bmc>/slot<N>" or "<node>@swupdate". */
export function deliveryId(i: DeliveryInputs): string {
  return i.kind === "tpi" ? `${i.nodeName}@${i.bmc.name}/slot${i.slot}` : `${i.nodeName}@swupdate`;
}

export async function createDelivery(i: DeliveryInputs, o: OpOptions = {}): Promise<DeliveryOutputs> {
  const creds = { privateKey: i.sshPrivateKey };
  if (i.kind === "tpi") {
    const r = await flashNode(tpiSpec(i), creds, o);
    return { ...i, runningImageId: r.runningImageId, nodeHostKey: r.nodeHostKey, lastCheck: "ok" };
  }
  const r = await installBundle(swSpec(i), { ...creds, aesKey: i.aesKey }, o);
  return { ...i, runningImageId: r.runningImageId, lastCheck: "ok" };
}

export async function updateDelivery(olds: DeliveryOutputs, news: DeliveryInputs, o: OpOptions = {}): Promise<DeliveryOutputs> {
  const d = diffDelivery(olds, news);
  if (!d.touchesNode) {
    // settings only: keep what we know about the node
    return { ...news, runningImageId: olds.runningImageId, ...(olds.nodeHostKey ? { nodeHostKey: olds.nodeHostKey } : {}), lastCheck: olds.lastCheck };
  }
  return createDelivery(news, o);
}

export async function readDelivery(props: DeliveryOutputs, o: OpOptions = {}): Promise<DeliveryOutputs> {
  const creds = { privateKey: props.sshPrivateKey };
  if (props.kind === "tpi") {
    const key = props.node.hostKey ?? props.nodeHostKey;
    const r = await probeNode(props.nodeName, { ...props.node, hostKey: key }, creds, { timeoutSeconds: Math.min(30, props.connectTimeoutSeconds), connect: o.connect });
    return applyProbe(props, r);
  }
  const r = await probeSwupdateNode({ nodeName: props.nodeName, node: props.node, connectTimeoutSeconds: Math.min(30, props.connectTimeoutSeconds) }, creds, o.connect);
  return applyProbe(props, r);
}

function applyProbe(props: DeliveryOutputs, r: { reachable: boolean; runningImageId?: string; hostKeyChanged?: boolean; error?: string }): DeliveryOutputs {
  const { hostKeyChanged: _h, ...rest } = props;
  void _h;
  if (r.hostKeyChanged) return { ...rest, hostKeyChanged: true, lastCheck: "host key changed" };
  if (!r.reachable) return { ...rest, lastCheck: `unreachable: ${(r.error ?? "").split("\n")[0].slice(0, 300)}` };
  return { ...rest, runningImageId: r.runningImageId ?? "(none)", lastCheck: "ok" };
}

export async function deleteDelivery(props: DeliveryOutputs, o: OpOptions = {}): Promise<void> {
  if (props.kind !== "tpi") return;
  await unflashNode(tpiSpec(props), { privateKey: props.sshPrivateKey }, o);
}

export { remoteImagePath };
