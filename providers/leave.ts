/**
 * `NodeLeave`: takes a node out of the cluster before its delivery replaces what runs on it (a thin
 * adapter over lib/k3s/leave-provider.ts; the steps are lib/k3s/leave.ts's: quorum check for servers,
 * etcd snapshot to the deployer, drain, Node deleted).
 *
 * Order: the node's delivery depends on this resource (components/fleet.ts), and this resource depends
 * on the previous rollout unit's k3s join, so a node leaves only once the node before it is back and Ready.
 * A change of `generation` (the image to deliver) is an update, which is the leave; a refusal fails the
 * update and Pulumi never starts the delivery.
 * Secrets: `privateKey` is wrapped with pulumi.secret and listed in additionalSecretOutputs.
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import { endpointOutput, SshEndpointArgs } from "./endpoint";

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

export const leaveProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/k3s/leave-provider") as typeof import("../lib/k3s/leave-provider");
    return impl.checkLeave(news);
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/k3s/leave-provider") as typeof import("../lib/k3s/leave-provider");
    return impl.diffLeave(olds, news);
  },
  async create(inputs) {
    const impl = require(ROOT + "/lib/k3s/leave-provider") as typeof import("../lib/k3s/leave-provider");
    return { id: `leave-${inputs.node}`, outs: impl.createLeave(inputs) };
  },
  async update(_id, olds, news) {
    (require(ROOT + "/lib/engine-watch") as typeof import("../lib/engine-watch")).watchEngine();
    const impl = require(ROOT + "/lib/k3s/leave-provider") as typeof import("../lib/k3s/leave-provider");
    return { outs: await impl.updateLeave(olds, news, { log: (m: string) => console.log(m) }) };
  },
  async read(id, props) {
    if (!props) throw new Error(`${id}: a NodeLeave cannot be imported; declare the node and let \`pulumi up\` create it`);
    return { id, props };
  },
  async delete() {
    return;
  },
};

/** A server the leave may read the cluster through. */
export interface NodeLeaveServerArgs {
  /** Fleet node name. Required. */
  name: pulumi.Input<string>;
  /** Its Node's name. Required. */
  hostname: pulumi.Input<string>;
  /** SSH endpoint; a server without a host key is not used (reported as unreachable). Required. */
  ssh: pulumi.Input<SshEndpointArgs>;
}

/** Arguments of {@link NodeLeave}. */
export interface NodeLeaveArgs {
  /** Fleet node name. Required. */
  node: pulumi.Input<string>;
  /** Its Node's name. Required. */
  hostname: pulumi.Input<string>;
  /** "server" or "agent". Required. */
  role: pulumi.Input<string>;
  /** The image the delivery will put on the node (its image id); a change makes the node leave first. Required. */
  generation: pulumi.Input<string>;
  /** For messages: "re-flash" or "re-image". Default "re-flash". */
  why?: pulumi.Input<string>;
  /** The delivery wipes the node's k3s state: delete its Node (k3s then removes its etcd member). Default true. */
  deleteNode?: pulumi.Input<boolean>;
  /** The other servers, in the order to try them. Default []. */
  servers?: pulumi.Input<pulumi.Input<NodeLeaveServerArgs>[]>;
  /** SSH private key (a Pulumi secret). Default: the ssh-agent. */
  privateKey?: pulumi.Input<string>;
  /** Seconds a drain may take (fleet k3s.drainTimeoutSeconds). Required. */
  drainTimeoutSeconds: pulumi.Input<number>;
  /** Absolute deployer directory for etcd snapshots (created 0700, files 0600). Required. */
  snapshotDir: pulumi.Input<string>;
}

/** Takes one node out of the cluster (check, snapshot, drain, delete) before its delivery; see the file comment. */
export class NodeLeave extends pulumi.dynamic.Resource {
  /** What the last leave did ("" when none ran). */
  declare readonly lastLeave: pulumi.Output<string>;

  constructor(name: string, args: NodeLeaveArgs, opts?: pulumi.CustomResourceOptions) {
    const servers = pulumi
      .output(args.servers ?? [])
      .apply((ss) =>
        pulumi.all(ss.map((s) => pulumi.all([s.name, s.hostname, endpointOutput(s.ssh)]).apply(([n, h, ssh]) => ({ name: n, hostname: h, ssh })))),
      );
    super(
      leaveProvider,
      name,
      {
        node: args.node,
        hostname: args.hostname,
        role: args.role,
        generation: args.generation,
        why: args.why ?? "re-flash",
        deleteNode: args.deleteNode ?? true,
        servers,
        privateKey: args.privateKey === undefined ? undefined : pulumi.secret(args.privateKey),
        drainTimeoutSeconds: args.drainTimeoutSeconds,
        snapshotDir: args.snapshotDir,
        lastLeave: undefined,
      },
      { ...opts, additionalSecretOutputs: ["privateKey", ...(opts?.additionalSecretOutputs ?? [])] },
      "k3s",
      "NodeLeave",
    );
  }
}
