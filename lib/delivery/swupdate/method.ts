/**
 * SwupdateDelivery as a delivery method (../common/method.ts): its inputs, what their changes mean, and
 * the operations on top of ./install.ts.
 *
 * Diff: a different image id or bundle sha256, or drift found by refresh → update in place (install);
 * the node's host key is required (SWUpdate nodes are not flashed by this program, so nothing is
 * learned). Delete leaves the node as it is: an installed update cannot be taken back.
 */
import { normalizeSha256 } from "../../transport/syntax";
import { readEndpoint } from "../../transport/endpoint";
import { DELIVERY_DEFAULTS } from "../../model/defaults";
import { UNKNOWN } from "../../unknown";
import type { CheckFailure } from "../../provider-types";
import { CommonInputs, DeliveryMethod, DeliveryState, Raw } from "../common/method";
import { probeImageId } from "../common/node";
import { shortKnown } from "../common/errors";
import { isObj, num, pick, str } from "../common/read";
import { installBundle, SwupdateSpec } from "./install";

export interface SwupdateInputs extends CommonInputs {
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

/** The install's spec: the inputs without the credentials, the AES key and the state. */
function spec(i: SwupdateInputs): SwupdateSpec {
  return pick(i, [
    "nodeName",
    "node",
    "hardware",
    "hwRevision",
    "selection",
    "bundle",
    "imageId",
    "certificate",
    "certPath",
    "certPurpose",
    "remoteDir",
    "installTimeoutSeconds",
    "bootTimeoutSeconds",
    "connectTimeoutSeconds",
    "rebootArgv",
  ]);
}

export const swupdateMethod: DeliveryMethod<SwupdateInputs> = {
  kind: "swupdate",
  deleteBeforeReplace: false,
  artifactName: "bundle sha256",

  check(news: Raw, common, f: CheckFailure[]): SwupdateInputs {
    const node = readEndpoint(news.node, "node", true, f);
    const hardware = str(news.hardware) ?? "";
    if (!/^[A-Za-z0-9._+-]+$/.test(hardware)) f.push({ property: "hardware", reason: "is required: the bundle's board name (the node's hardware)" });
    const hwRevision = str(news.hwRevision) ?? "";
    if (!/^[A-Za-z0-9._+-]+$/.test(hwRevision)) f.push({ property: "hwRevision", reason: "is required: the node's board revision (nodes[].hwRevision)" });
    const selection = str(news.selection);
    if (selection !== undefined && !/^[A-Za-z0-9_-]+,[A-Za-z0-9_-]+$/.test(selection))
      f.push({ property: "selection", reason: `${JSON.stringify(selection)} must look like "stable,main"` });
    const bu = isObj(news.bundle) ? news.bundle : news.bundle === UNKNOWN ? { path: UNKNOWN, sha256: UNKNOWN } : {};
    const bpath = str(bu.path) ?? "";
    if (!bpath.startsWith("/")) f.push({ property: "bundle.path", reason: "must be the absolute path of the .swu (SwuBundle path)" });
    const bsha = normalizeSha256(String(bu.sha256 ?? ""));
    if (!bsha) f.push({ property: "bundle.sha256", reason: `${JSON.stringify(bu.sha256)} is not a sha256` });
    const imageId = str(news.imageId) ?? "";
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(imageId))
      f.push({ property: "imageId", reason: "must be the image id the node reports after the update (NodeImage imageId)" });
    const certificate = str(news.certificate);
    if (certificate !== undefined && !/-----BEGIN CERTIFICATE-----/.test(certificate)) f.push({ property: "certificate", reason: "is not a PEM certificate" });
    const certPurpose = news.certPurpose;
    if (certPurpose !== undefined && certPurpose !== "emailProtection" && certPurpose !== "codeSigning")
      f.push({ property: "certPurpose", reason: 'must be "emailProtection" or "codeSigning"' });
    const rebootArgv = news.rebootArgv;
    if (rebootArgv !== undefined && !(Array.isArray(rebootArgv) && rebootArgv.length > 0 && rebootArgv.every((x) => typeof x === "string"))) {
      f.push({ property: "rebootArgv", reason: 'must be a non-empty argv array, e.g. ["systemctl", "reboot"]' });
    }
    const aesKey = str(news.aesKey);
    if (aesKey !== undefined && !/^[0-9a-fA-F]{64}\s+[0-9a-fA-F]{32}\s*$/.test(aesKey.trim()))
      f.push({ property: "aesKey", reason: 'must be a SWUpdate AES key file: "<64 hex key> <32 hex iv>" (value not shown)' });
    const opt = <T>(k: string, v: T | undefined) => (v === undefined ? {} : { [k]: v });
    return {
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
  },

  id: (i) => `${i.nodeName}@swupdate`,
  imageId: (i) => i.imageId,
  artifactSha: (i) => i.bundle?.sha256,
  target: (i) => i.node.address,
  verbs: () => ({ create: "install via SWUpdate", replace: "replace delivery", update: "update via SWUpdate", unchanged: "installed" }),

  diff(olds: Partial<SwupdateInputs & DeliveryState>, news: SwupdateInputs, v) {
    const reasons: string[] = [];
    if (v.imageChanged) reasons.push(`image changed: ${v.why}`);
    if (v.drift) reasons.push(`drift: the node runs image ${shortKnown(olds.runningImageId)}, expected ${shortKnown(news.imageId)}`);
    if (olds.hostKeyChanged) reasons.push("the node presents another SSH host key than pinned: check it, then update nodes[].ssh.hostKey");
    return { replaces: [], reasons, touches: v.imageChanged || v.drift };
  },

  async deliver(i, o) {
    const r = await installBundle(spec(i), { privateKey: i.sshPrivateKey, aesKey: i.aesKey }, o);
    return { runningImageId: r.runningImageId };
  },

  probe: (i, o) =>
    probeImageId(
      i.node,
      { privateKey: i.sshPrivateKey },
      { timeoutSeconds: Math.min(30, i.connectTimeoutSeconds), noKey: "no pinned host key", connect: o.connect },
    ),

  async remove() {
    // an installed update cannot be taken back: the node keeps what it runs
  },
};
