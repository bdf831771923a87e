/**
 * The decisions behind the TuringPiFlash and SwupdateDelivery dynamic resources (providers/delivery.ts),
 * testable without Pulumi: check, diff (with the human-readable reason shown by `pulumi preview`),
 * create / update / read / delete, generic over the delivery methods (./common/method.ts): the tpi
 * method (./tpi/) and the swupdate method (./swupdate/). Nothing here branches on the kind: each decision
 * that differs is the method's own.
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
import { isRfc1123Label } from "../model/checks";
import { DELIVERY_DEFAULTS } from "../model/defaults";
import type { CheckFailure } from "../provider-types";
import { UNKNOWN, containsUnknown } from "../unknown";
import { shortKnown as short } from "./common/errors";
import { CommonInputs, DeliveryMethod, DeliveryState, OpOptions, Raw } from "./common/method";
import type { ProbeResult } from "./common/node";
import { isObj, num, str } from "./common/read";
import { swupdateMethod, SwupdateInputs } from "./swupdate/method";
import { tpiMethod, TpiInputs } from "./tpi/method";

export type { CheckFailure, DeliveryState, OpOptions, SwupdateInputs, TpiInputs };
export type DeliveryInputs = TpiInputs | SwupdateInputs;
export type DeliveryOutputs = DeliveryInputs & DeliveryState;

type AnyMethod = DeliveryMethod<DeliveryInputs>;
/** The delivery methods by `kind`. */
const METHODS: Record<string, AnyMethod> = { tpi: tpiMethod as unknown as AnyMethod, swupdate: swupdateMethod as unknown as AnyMethod };

function methodOf(i: { kind?: unknown }): AnyMethod {
  const m = METHODS[String(i.kind)];
  if (!m) throw new Error(`delivery kind ${JSON.stringify(i.kind)} must be one of ${Object.keys(METHODS).join(", ")}`);
  return m;
}

function checkSources(v: unknown, f: CheckFailure[]): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObj(v) || !Object.values(v).every((x) => typeof x === "string")) {
    f.push({ property: "sources", reason: 'must map names to strings, e.g. { "rootfs sha256": "…" }' });
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
  const nodeName = str(news.nodeName) ?? "";
  if (!isRfc1123Label(nodeName))
    f.push({ property: "nodeName", reason: `${JSON.stringify(news.nodeName)} must be an RFC 1123 label (the node's name in the fleet)` });
  const sshPrivateKey = str(news.sshPrivateKey);
  const common: Omit<CommonInputs, "node"> = {
    nodeName,
    sources: checkSources(news.sources, f),
    bootTimeoutSeconds: num(news.bootTimeoutSeconds, DELIVERY_DEFAULTS.bootTimeoutSeconds, "bootTimeoutSeconds", f),
    connectTimeoutSeconds: num(news.connectTimeoutSeconds, DELIVERY_DEFAULTS.connectTimeoutSeconds, "connectTimeoutSeconds", f),
    ...(sshPrivateKey ? { sshPrivateKey } : {}),
  };
  const method = METHODS[String(news.kind)];
  if (!method) {
    f.push({
      property: "kind",
      reason: `${JSON.stringify(news.kind)} must be ${Object.keys(METHODS)
        .map((k) => JSON.stringify(k))
        .join(" or ")}`,
    });
    return { inputs: { kind: "tpi" } as TpiInputs, failures: f };
  }
  return { inputs: method.check(news, common, f), failures: f };
}

// ------------------------------------------------------------------ diff and description

export interface DeliveryDiff {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** Property → "update" | "update-replace" (Pulumi's detailed diff kinds). */
  detailedDiff: Record<string, { kind: "update" | "update-replace"; inputDiff: boolean }>;
  /** Human-readable decision, e.g. "srv1: reflash slot 1 of bmc (image changed: rootfs sha256 a1b2… → c3d4…)". */
  reason: string;
  /** Whether the node itself is acted on (flash / install), not just the state. */
  touchesNode: boolean;
}

const SECRET_KEYS = new Set(["sshPrivateKey", "aesKey"]);
/**
 * Keys of the state, not inputs: never a change by themselves. (`tpiSha256` was an input of earlier
 * versions: tpi drops --sha256 with --local and the BMC's copy of the image is hashed instead; state that
 * still holds it must not diff.)
 */
const STATE_KEYS = ["runningImageId", "nodeHostKey", "hostKeyChanged", "lastCheck", "tpiSha256"];

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Why the image differs, from `sources` (falls back to the image id / artifact sha256). */
function imageChangeWhy(m: AnyMethod, olds: Partial<DeliveryInputs>, news: DeliveryInputs): string {
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
    if (m.artifactSha(olds) !== m.artifactSha(news)) parts.push(`${m.artifactName} ${short(m.artifactSha(olds))} → ${short(m.artifactSha(news))}`);
    if (m.imageId(olds) !== m.imageId(news)) parts.push(`image id ${short(m.imageId(olds))} → ${short(m.imageId(news))}`);
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
  const m = methodOf(news);
  const n = news.nodeName;
  const verbs = m.verbs(news);
  if (!oldsIn || !oldsIn.kind) {
    return {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
      detailedDiff: {},
      reason: `${n}: ${verbs.create} (new delivery, image ${short(m.imageId(news))})`,
      touchesNode: true,
    };
  }
  const olds = oldsIn;
  const detailed: DeliveryDiff["detailedDiff"] = {};
  const changed: string[] = [];
  for (const k of new Set([...Object.keys(olds), ...Object.keys(news)])) {
    // state-only keys, and the runtime's own (`__provider`: the serialized provider, which changes with
    // every program upgrade and must not make every delivery look changed)
    if (STATE_KEYS.includes(k) || k.startsWith("__")) continue;
    if (!same((olds as Raw)[k], (news as unknown as Raw)[k])) changed.push(k);
  }
  const replaces: string[] = [];
  const reasons: string[] = [];
  const imageChanged =
    m.imageId(news) === UNKNOWN ||
    m.artifactSha(news) === UNKNOWN ||
    !same(m.imageId(olds), m.imageId(news)) ||
    !same(m.artifactSha(olds), m.artifactSha(news));
  const drift = olds.runningImageId !== undefined && olds.runningImageId !== m.imageId(news) && !imageChanged;
  if (olds.kind !== news.kind) {
    replaces.push("kind");
    reasons.push(`delivery method ${olds.kind} → ${news.kind}`);
  }
  if (olds.nodeName !== news.nodeName) {
    replaces.push("nodeName");
    reasons.push(`node name ${olds.nodeName} → ${news.nodeName}`);
  }
  const own = m.diff(olds as Partial<DeliveryOutputs>, news, { imageChanged, drift, why: imageChanged ? imageChangeWhy(m, olds, news) : "" });
  replaces.push(...own.replaces);
  reasons.push(...own.reasons);
  let touches = own.touches;
  for (const k of changed) detailed[k] = { kind: replaces.includes(k) ? "update-replace" : "update", inputDiff: true };
  for (const k of replaces) detailed[k] ??= { kind: "update-replace", inputDiff: false };
  // drift redelivered in place (not by a replace) shows as an update of the state key
  if (drift && !replaces.includes("runningImageId")) detailed["runningImageId"] = { kind: "update", inputDiff: false };
  const changes = changed.length > 0 || replaces.length > 0 || touches;
  let reason: string;
  if (replaces.length > 0) {
    reason = `${n}: ${verbs.replace} (${reasons.join("; ")})`;
    touches = true;
  } else if (touches) {
    reason = `${n}: ${verbs.update} (${reasons.join("; ")})`;
  } else if (changed.length > 0) {
    const shown = [...changed].sort().map((k) => (SECRET_KEYS.has(k) ? `${k} (secret)` : k));
    reason = `${n}: left alone on the node; settings changed: ${shown.join(", ")}`;
  } else {
    reason = `${n}: left alone (image ${short(m.imageId(news))} ${verbs.unchanged})`;
  }
  return { changes, replaces, deleteBeforeReplace: m.deleteBeforeReplace && replaces.length > 0, detailedDiff: detailed, reason, touchesNode: touches };
}

// ------------------------------------------------------------------ operations

/** Resource id: "<node>@<bmc>/slot<N>" or "<node>@swupdate". */
export function deliveryId(i: DeliveryInputs): string {
  return methodOf(i).id(i);
}

export async function createDelivery(i: DeliveryInputs, o: OpOptions = {}): Promise<DeliveryOutputs> {
  const r = await methodOf(i).deliver(i, o);
  return { ...i, ...r, lastCheck: "ok" };
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
  return applyProbe(props, await methodOf(props).probe(props, o));
}

function applyProbe(props: DeliveryOutputs, r: ProbeResult): DeliveryOutputs {
  const { hostKeyChanged: _h, ...rest } = props;
  void _h;
  if (r.hostKeyChanged) return { ...rest, hostKeyChanged: true, lastCheck: "host key changed" };
  if (!r.reachable) return { ...rest, lastCheck: `unreachable: ${(r.error ?? "").split("\n")[0].slice(0, 300)}` };
  return { ...rest, runningImageId: r.runningImageId ?? "(none)", lastCheck: "ok" };
}

export async function deleteDelivery(props: DeliveryOutputs, o: OpOptions = {}): Promise<void> {
  await methodOf(props).remove(props, o);
}
