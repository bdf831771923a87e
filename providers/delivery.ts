/**
 * `TuringPiFlash` (a node image on a Turing Pi 2 slot, flashed through the BMC over SSH) and
 * `SwupdateDelivery` (a signed .swu installed on a node over SSH with its own swupdate). Thin adapters
 * over lib/delivery/delivery-provider.ts (decisions, generic over the methods) and lib/delivery/tpi/,
 * lib/delivery/swupdate/ (the work).
 *
 * One provider object serves both resources; it dispatches on the `kind` input ("tpi" | "swupdate").
 * - diff: pure; a changed image replaces a TuringPiFlash (delete before replace: the slot holds one
 *   image) and updates a SwupdateDelivery (install); settings-only changes update the state without
 *   touching the node. Every diff prints one line saying what `up` will do to the node and why
 *   ("srv1: reflash slot 1 of bmc (image changed: rootfs sha256 a1b2… → c3d4…)"): console output of a
 *   dynamic provider is shown by `pulumi preview` as diagnostics.
 * - create / update: the delivery, with progress lines (phase, percent; at most one per 10 %) on the
 *   console; a failure throws a DeliveryError (node, phase, BMC/slot or endpoint, output tail) and Pulumi
 *   keeps the old state.
 * - read (refresh): asks the node for its running image id (pinned / recorded host key only); drift makes
 *   the next diff redeliver; an unreachable node is recorded in `lastCheck`, not an error.
 * - delete: TuringPiFlash powers the slot off and removes its uploaded image from the BMC.
 * Secrets (sshPrivateKey, aesKey) are wrapped with pulumi.secret and listed in additionalSecretOutputs.
 * Pulumi's customTimeouts do not reach dynamic providers: the timeouts are inputs, enforced in lib/.
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import type { SshEndpointArgs } from "./endpoint";

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

export const deliveryProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    const r = impl.checkDelivery(news);
    return { inputs: r.inputs, failures: r.failures };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    const d = impl.diffDelivery(olds, news);
    console.log(d.reason);
    return { changes: d.changes, replaces: d.replaces, deleteBeforeReplace: d.deleteBeforeReplace, detailedDiff: d.detailedDiff } as pulumi.dynamic.DiffResult;
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    const common = require(ROOT + "/lib/delivery/common") as typeof import("../lib/delivery/common");
    const outs = await impl.createDelivery(inputs, { progress: common.consoleProgress });
    return { id: impl.deliveryId(inputs), outs };
  },
  async update(_id, olds, news) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    const common = require(ROOT + "/lib/delivery/common") as typeof import("../lib/delivery/common");
    return { outs: await impl.updateDelivery(olds, news, { progress: common.consoleProgress }) };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    if (!props || !props.kind) throw new Error(`${id}: a delivery cannot be imported; declare it and let \`pulumi up\` deliver the node`);
    return { id, props: await impl.readDelivery(props) };
  },
  async delete(_id, props) {
    const impl = require(ROOT + "/lib/delivery/delivery-provider") as typeof import("../lib/delivery/delivery-provider");
    await impl.deleteDelivery(props);
  },
};

interface CommonArgs {
  /** The node's name in the fleet. Required; a change replaces. */
  nodeName: pulumi.Input<string>;
  /** The node's SSH endpoint. TuringPiFlash: its hostKey is optional (the key seen right after our flash is recorded). SwupdateDelivery: required. */
  node: pulumi.Input<SshEndpointArgs>;
  /** What the image is made of, shown when it changes: e.g. { "rootfs sha256": …, "files digest": … }. Default none. */
  sources?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Seconds to wait for SSH after power-on / reboot (delivery.bootTimeoutSeconds). Default 900 (lib/model/defaults.ts). */
  bootTimeoutSeconds?: pulumi.Input<number>;
  /** Seconds to keep retrying an SSH connection to the BMC / a running node. Default 60. */
  connectTimeoutSeconds?: pulumi.Input<number>;
  /** Deploy private key (secret). Default: the ssh-agent (SSH_AUTH_SOCK). */
  sshPrivateKey?: pulumi.Input<string>;
}

export interface TuringPiFlashArgs extends CommonArgs {
  /** Expected hostname after boot (checked). Default: not checked. */
  hostname?: pulumi.Input<string>;
  /** Slot 1–4. A change replaces. */
  slot: pulumi.Input<number>;
  bmc: pulumi.Input<SshEndpointArgs & { name: pulumi.Input<string>; imageDir: pulumi.Input<string> }>;
  /** The node image: disk.img path, its sha256, and the image id it carries. A change reflashes (replace). */
  image: pulumi.Input<{ path: pulumi.Input<string>; sha256: pulumi.Input<string>; imageId: pulumi.Input<string> }>;
  /** Seconds allowed for `tpi flash` (delivery.flashTimeoutSeconds). Default 3600. */
  flashTimeoutSeconds?: pulumi.Input<number>;
}

export interface SwupdateDeliveryArgs extends CommonArgs {
  /** Board name of the bundle (the node's hardware) and the node's revision: `-H hardware:hwRevision`. */
  hardware: pulumi.Input<string>;
  hwRevision: pulumi.Input<string>;
  /** A/B selection "set,mode". Default none. */
  selection?: pulumi.Input<string>;
  /** The .swu (SwuBundle path and sha256). A change installs it. */
  bundle: pulumi.Input<{ path: pulumi.Input<string>; sha256: pulumi.Input<string> }>;
  /** Image id the node must report after the update. A change installs. */
  imageId: pulumi.Input<string>;
  version?: pulumi.Input<string>;
  /** Signing certificate (PEM) uploaded next to the bundle. Default: `certPath` must exist on the node. */
  certificate?: pulumi.Input<string>;
  certPath?: pulumi.Input<string>;
  certPurpose?: pulumi.Input<"emailProtection" | "codeSigning">;
  /** Default /var/tmp/isar-k3s. */
  remoteDir?: pulumi.Input<string>;
  /** Default 1800. */
  installTimeoutSeconds?: pulumi.Input<number>;
  /** Default ["reboot"]. */
  rebootArgv?: pulumi.Input<pulumi.Input<string>[]>;
  /** SWUpdate AES key file text (secret) for encrypted bundles. */
  aesKey?: pulumi.Input<string>;
}

function secretOpts(opts: pulumi.CustomResourceOptions | undefined): pulumi.CustomResourceOptions {
  return { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "sshPrivateKey", "aesKey"] };
}

const OUTPUTS = { runningImageId: undefined, nodeHostKey: undefined, hostKeyChanged: undefined, lastCheck: undefined };

/** The property bag a delivery resource registers: `kind` set, secrets wrapped with pulumi.secret, output slots. */
export function deliveryProps(kind: "tpi" | "swupdate", args: TuringPiFlashArgs | SwupdateDeliveryArgs): Record<string, unknown> {
  const props: Record<string, unknown> = { ...args, kind, ...OUTPUTS };
  if (args.sshPrivateKey !== undefined) props.sshPrivateKey = pulumi.secret(args.sshPrivateKey);
  const aes = (args as SwupdateDeliveryArgs).aesKey;
  if (aes !== undefined) props.aesKey = pulumi.secret(aes);
  return props;
}

/** Flashes a node image onto a Turing Pi 2 slot and waits for the node to boot it. */
export class TuringPiFlash extends pulumi.dynamic.Resource {
  declare readonly runningImageId: pulumi.Output<string>;
  /** The node's SSH host key, recorded right after our flash: pin it for everything that connects later. */
  declare readonly nodeHostKey: pulumi.Output<string>;
  declare readonly lastCheck: pulumi.Output<string>;
  constructor(name: string, args: TuringPiFlashArgs, opts?: pulumi.CustomResourceOptions) {
    super(deliveryProvider, name, deliveryProps("tpi", args), secretOpts(opts));
  }
}

/** Installs a node's SWUpdate bundle over SSH, reboots it and verifies the new image id. */
export class SwupdateDelivery extends pulumi.dynamic.Resource {
  declare readonly runningImageId: pulumi.Output<string>;
  declare readonly lastCheck: pulumi.Output<string>;
  constructor(name: string, args: SwupdateDeliveryArgs, opts?: pulumi.CustomResourceOptions) {
    super(deliveryProvider, name, deliveryProps("swupdate", args), secretOpts(opts));
  }
}
