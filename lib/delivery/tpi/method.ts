/**
 * TuringPiFlash as a delivery method (../common/method.ts): its inputs, what their changes mean, and
 * the operations on top of ./flash.ts.
 *
 * Diff: a different image (imageId or sha256), slot or BMC name → replace with deleteBeforeReplace (the
 * slot holds one image); refresh having found the node running another image, or presenting another
 * host key (re-installed outside this program) → replace. Delete powers the slot off and removes the
 * uploaded image from the BMC. Refresh connects with the pinned key, else the one recorded after our flash.
 */
import { normalizeSha256 } from "../../transport/syntax";
import { readEndpoint, SshEndpoint } from "../../transport/endpoint";
import { DELIVERY_DEFAULTS } from "../../model/defaults";
import { UNKNOWN } from "../../unknown";
import type { CheckFailure } from "../../provider-types";
import { CommonInputs, DeliveryMethod, DeliveryState, Raw } from "../common/method";
import { probeImageId } from "../common/node";
import { shortKnown } from "../common/errors";
import { TpiFlashSpec } from "./bmc";
import { flashNode, unflashNode } from "./flash";
import { isObj, num, pick, str } from "../common/read";

export interface TpiInputs extends CommonInputs {
  kind: "tpi";
  hostname?: string;
  slot: number;
  bmc: SshEndpoint & { name: string; imageDir: string };
  image: { path: string; sha256: string; imageId: string };
  flashTimeoutSeconds: number;
}

/** The flash's spec: the inputs without the credentials and the state. */
function spec(i: TpiInputs): TpiFlashSpec {
  return pick(i, ["nodeName", "hostname", "slot", "bmc", "node", "image", "flashTimeoutSeconds", "bootTimeoutSeconds", "connectTimeoutSeconds"]);
}

const target = (i: TpiInputs) => `slot ${i.slot} of ${i.bmc.name}`;

export const tpiMethod: DeliveryMethod<TpiInputs> = {
  kind: "tpi",
  deleteBeforeReplace: true,
  artifactName: "disk image sha256",

  check(news: Raw, common, f: CheckFailure[]): TpiInputs {
    const node = readEndpoint(news.node, "node", false, f);
    const b = isObj(news.bmc) ? news.bmc : {};
    const bmcEp = readEndpoint(news.bmc, "bmc", false, f);
    const bmcName = str(b.name) ?? "";
    if (!bmcName) f.push({ property: "bmc.name", reason: "is required (the BMC's name in bmcs)" });
    const imageDir = str(b.imageDir) ?? "";
    if (!imageDir.startsWith("/"))
      f.push({ property: "bmc.imageDir", reason: `${JSON.stringify(b.imageDir)} must be an absolute directory on the BMC, e.g. /mnt/sdcard/images` });
    const slot = Number(news.slot);
    if (![1, 2, 3, 4].includes(slot)) f.push({ property: "slot", reason: `${JSON.stringify(news.slot)} is not a Turing Pi 2 slot (1–4)` });
    const im = isObj(news.image) ? news.image : news.image === UNKNOWN ? { path: UNKNOWN, sha256: UNKNOWN, imageId: UNKNOWN } : {};
    const imagePath = str(im.path) ?? "";
    if (!imagePath.startsWith("/"))
      f.push({ property: "image.path", reason: "must be the absolute path of the node's disk image (NodeImage storePath + /disk.img)" });
    const sha = normalizeSha256(String(im.sha256 ?? ""));
    if (!sha) f.push({ property: "image.sha256", reason: `${JSON.stringify(im.sha256)} is not a sha256 (64 hex digits or sha256-<base64>)` });
    const imageId = str(im.imageId) ?? "";
    if (!/^[A-Za-z0-9._-]{1,128}$/.test(imageId))
      f.push({ property: "image.imageId", reason: `${JSON.stringify(im.imageId)} must be the NodeImage's imageId ([A-Za-z0-9._-])` });
    const hostname = str(news.hostname);
    return {
      kind: "tpi",
      ...common,
      ...(hostname ? { hostname } : {}),
      slot,
      bmc: { ...bmcEp, name: bmcName, imageDir },
      node,
      image: { path: imagePath, sha256: sha ?? String(im.sha256 ?? ""), imageId },
      flashTimeoutSeconds: num(news.flashTimeoutSeconds, DELIVERY_DEFAULTS.flashTimeoutSeconds, "flashTimeoutSeconds", f),
    };
  },

  id: (i) => `${i.nodeName}@${i.bmc.name}/slot${i.slot}`,
  imageId: (i) => i.image?.imageId,
  artifactSha: (i) => i.image?.sha256,
  target,
  verbs: (i) => ({ create: `flash ${target(i)}`, replace: `reflash ${target(i)}`, update: `reflash ${target(i)}`, unchanged: `on ${target(i)}` }),

  diff(o: Partial<TpiInputs & DeliveryState>, news: TpiInputs, v) {
    const replaces: string[] = [];
    const reasons: string[] = [];
    if (v.imageChanged) {
      replaces.push("image");
      reasons.push(`image changed: ${v.why}`);
    }
    if (o.slot !== news.slot) {
      replaces.push("slot");
      reasons.push(`slot ${o.slot} → ${news.slot}`);
    }
    if (o.bmc?.name !== news.bmc.name) {
      replaces.push("bmc");
      reasons.push(`BMC ${o.bmc?.name} → ${news.bmc.name}`);
    }
    if (v.drift) {
      replaces.push("runningImageId");
      reasons.push(`drift: the node runs image ${shortKnown(o.runningImageId)}, expected ${shortKnown(news.image.imageId)}`);
    }
    if (o.hostKeyChanged) {
      replaces.push("nodeHostKey");
      reasons.push("drift: the node presents another SSH host key than after our flash (re-installed outside this program)");
    }
    return { replaces, reasons, touches: false };
  },

  async deliver(i, o) {
    const r = await flashNode(spec(i), { privateKey: i.sshPrivateKey }, o);
    return { runningImageId: r.runningImageId, nodeHostKey: r.nodeHostKey };
  },

  probe(i, o) {
    const key = i.node.hostKey ?? i.nodeHostKey;
    return probeImageId(
      { ...i.node, hostKey: key },
      { privateKey: i.sshPrivateKey },
      { timeoutSeconds: Math.min(30, i.connectTimeoutSeconds), noKey: `${i.nodeName}: no host key recorded, cannot check the node safely`, connect: o.connect },
    );
  },

  remove: (i, o) => unflashNode(spec(i), { privateKey: i.sshPrivateKey }, o),
};
