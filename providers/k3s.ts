/**
 * `K3sNode` (one node's k3s join, server or agent) and `K3sKubeconfig` (the rewritten admin kubeconfig
 * of a server): Pulumi dynamic resources, thin adapters over lib/k3s/k3s-provider.ts.
 *
 * One provider object serves both; it dispatches on the `resourceType` input.
 * - Node resources: a changed hostname or token replaces the resource, deleting first (same machine).
 *   A new `generation` (the delivered image) or `role` is an update that rejoins: the old join is
 *   removed first (drain, delete Node, the old role's uninstall when the node still runs it), then the
 *   node joins, in its role, the cluster recorded in state through a live server (never cluster-init
 *   against an existing cluster). State of the former K3sServer / K3sAgent types is kept (aliases).
 *   Config, label and taint changes update in place (labels and taints through kubectl, no rejoin).
 * - No node's inputs hold another node's join: every node gets the list of configured servers and
 *   joins through whichever is live. Order comes from `dependsOn` only (set by components/cluster.ts): servers chained one after another,
 *   agents after the last server. Pulumi deletes dependents first, so destroy runs agents, then servers
 *   last-joined first.
 * - Secrets: `token` and `privateKey` must be passed as Pulumi secrets (then outputs of the same key stay
 *   secret); `kubeconfig` is a new key, listed in additionalSecretOutputs here.
 * - Timeouts are enforced in lib/k3s (customTimeouts do not reach dynamic providers).
 */
import * as pulumi from "@pulumi/pulumi";
import * as path from "path";
import type { DataDisk, Taint } from "../lib/model/types";
import { endpointOutput, SshEndpointArgs } from "./endpoint";

/** Project root under jest, bin/ when compiled; captured by value when the provider is serialized. */
const ROOT = path.resolve(__dirname, "..");

export const k3sProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds, news) {
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    const r = news.resourceType === "K3sKubeconfig" ? impl.checkKubeconfig(news) : impl.checkNode(news);
    return { inputs: r.inputs, failures: r.failures };
  },
  async diff(_id, olds, news) {
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    return news.resourceType === "K3sKubeconfig" ? impl.diffKubeconfig(impl.fromState(olds), news) : impl.diffNode(impl.fromState(olds), news);
  },
  async create(inputs) {
    (require(ROOT + "/lib/engine-watch") as typeof import("../lib/engine-watch")).watchEngine();
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    const log = (m: string) => console.log(m);
    if (inputs.resourceType === "K3sKubeconfig") {
      const outs = await impl.createKubeconfig(inputs, { log });
      return { id: `kubeconfig-${outs.clusterName}`, outs };
    }
    const outs = await impl.createNode(inputs, { log });
    return { id: `${outs.hostname}-${outs.joinId}`, outs };
  },
  async update(_id, olds, news) {
    (require(ROOT + "/lib/engine-watch") as typeof import("../lib/engine-watch")).watchEngine();
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    const log = (m: string) => console.log(m);
    if (news.resourceType === "K3sKubeconfig") return { outs: await impl.createKubeconfig(news, { log }) };
    return { outs: await impl.updateNodeResource(impl.fromState(olds), news, { log }) };
  },
  async read(id, props) {
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    if (!props) throw new Error(`${id}: k3s resources cannot be imported; declare the node in the stack config and let \`pulumi up\` join it`);
    const log = (m: string) => console.log(m);
    if (props.resourceType === "K3sKubeconfig") return { id, props: await impl.readKubeconfig(impl.fromState(props), { log }) };
    const next = await impl.readNode(impl.fromState(props), { log });
    return next ? { id, props: next } : { id: "", props: {} };
  },
  async delete(_id, props) {
    (require(ROOT + "/lib/engine-watch") as typeof import("../lib/engine-watch")).watchEngine();
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    if (props.resourceType === "K3sKubeconfig") return;
    await impl.deleteNode(impl.fromState(props), { log: (m: string) => console.log(m) });
  },
};

/** Arguments of {@link K3sNode} (besides its role). */
export interface K3sNodeArgs {
  /** Fleet node name, used in messages. Required. */
  node: pulumi.Input<string>;
  /** k3s node name (Node object name, the node's hostname). Required; a change replaces. */
  hostname: pulumi.Input<string>;
  /** SSH endpoint of this node (non-root users need passwordless sudo; the host key is required at apply time: from the stack config or the delivery's learned key). Required. */
  ssh: pulumi.Input<SshEndpointArgs>;
  /**
   * Every configured server in fleet order (this node too when it is one): the join goes through the
   * first that answers as a live member, kubectl through any live one. Required. Endpoints here must
   * not depend on resources that wait for this node (no cycles): pass pinned host keys, or learned ones
   * only of servers joined before.
   */
  servers: pulumi.Input<pulumi.Input<ServerRefArgs>[]>;
  /** SSH private key, a Pulumi secret. Default: none (the ssh-agent at SSH_AUTH_SOCK). */
  privateKey?: pulumi.Input<string>;
  /** Cluster token, a Pulumi secret (e.g. RandomPassword.result). Required; a change replaces. */
  token: pulumi.Input<string>;
  /** Rendered /etc/rancher/k3s/config.yaml (lib/render/k3s-config.ts). Required. */
  config: pulumi.Input<string>;
  /** Labels the Node carries; changes are applied with kubectl. Default {}. */
  labels?: pulumi.Input<Record<string, string>>;
  /** Taints the Node carries; changes are applied with kubectl. Default []. */
  taints?: pulumi.Input<Taint[]>;
  /** Seconds to wait for Ready after (re)start. Required (fleet k3s.joinTimeoutSeconds). */
  joinTimeoutSeconds: pulumi.Input<number>;
  /** Seconds a drain may take on removal. Required (fleet k3s.drainTimeoutSeconds). */
  drainTimeoutSeconds: pulumi.Input<number>;
  /** The airgap install script on the node. Default /usr/local/bin/k3s-install.sh. */
  installScript?: pulumi.Input<string>;
  /** Anything that changes when the node is re-flashed (the delivered image's id); a change rejoins the node (an update). Default "". */
  generation?: pulumi.Input<string>;
  /**
   * The OS image the node runs, for nodes whose k3s state is persistent (SWUpdate: the data partition).
   * A change (an OS update) restarts k3s on the kept state as the same member: an update, never a
   * rejoin. Default "" (none).
   */
  image?: pulumi.Input<string>;
  /** The node's data disks (fleet `nodes[].dataDisks`); their state is the `dataDiskStatus` output. Default []. */
  dataDisks?: pulumi.Input<DataDisk[]>;
  /** Deployer directory for the etcd snapshot taken before this server is removed. Default: none (no snapshot). */
  snapshotDir?: pulumi.Input<string>;
}

/** One configured server in {@link K3sNodeArgs.servers}. */
export interface ServerRefArgs {
  /** Fleet node name (messages). Required. */
  node: pulumi.Input<string>;
  /** Address its API listens on (https://<address>:6443). Required. */
  address: pulumi.Input<string>;
  /** SSH endpoint (host key pinned). Required. */
  ssh: pulumi.Input<SshEndpointArgs>;
}

function nodeProps(args: K3sNodeArgs, resourceType: string, role: pulumi.Input<string>, bootstrap: pulumi.Input<boolean>): Record<string, unknown> {
  return {
    resourceType,
    role,
    bootstrap,
    node: args.node,
    hostname: args.hostname,
    ssh: endpointOutput(args.ssh),
    servers: pulumi.output(args.servers).apply((xs) => xs.map((x) => ({ node: x.node, address: x.address, ssh: endpointOutput(x.ssh) }))),
    privateKey: args.privateKey === undefined ? undefined : pulumi.secret(args.privateKey),
    token: pulumi.secret(args.token),
    config: args.config,
    labels: args.labels ?? {},
    taints: args.taints ?? [],
    joinTimeoutSeconds: args.joinTimeoutSeconds,
    drainTimeoutSeconds: args.drainTimeoutSeconds,
    installScript: args.installScript,
    generation: args.generation ?? "",
    image: args.image ?? "",
    dataDisks: args.dataDisks ?? [],
    snapshotDir: args.snapshotDir,
    joinId: undefined,
    joinedAt: undefined,
    clusterId: undefined,
    joinedVia: undefined,
    dataDiskStatus: undefined,
  };
}

/** Type tokens the node resources had before the one K3sNode type (aliases: existing state is kept, no rejoin). */
export const LEGACY_NODE_TYPES = ["pulumi-nodejs:dynamic/k3s:K3sServer", "pulumi-nodejs:dynamic/k3s:K3sAgent"];

/** Arguments of {@link K3sNode}. */
export interface K3sNodeResourceArgs extends K3sNodeArgs {
  /** "server" or "agent". Required. A change is an update that removes the old role's join (drain, delete Node, uninstall) before the node joins in its new role. */
  role: pulumi.Input<"server" | "agent">;
  /** A server that may initialise a new cluster when none exists (the fleet's first server). Default false; read only at join time. */
  bootstrap?: pulumi.Input<boolean>;
}

/**
 * One node's k3s join, server or agent. It joins through a live server; only a `bootstrap` server
 * initialises a cluster, and only when none exists. Chain servers with dependsOn (one join at a time),
 * agents after the last server. A role change happens inside one update, old role out before new role
 * in, so no step of the old role can touch the new member.
 */
export class K3sNode extends pulumi.dynamic.Resource {
  /** Random id of this join (written to the node as /etc/rancher/k3s/isar-k3s-join). */
  declare readonly joinId: pulumi.Output<string>;
  /** When the node was Ready (ISO time). */
  declare readonly joinedAt: pulumi.Output<string>;
  /** The cluster's identity (kube-system namespace UID) at the last join. */
  declare readonly clusterId: pulumi.Output<string>;
  /** The server the last join went through, or "cluster-init". */
  declare readonly joinedVia: pulumi.Output<string>;
  declare readonly hostname: pulumi.Output<string>;
  declare readonly role: pulumi.Output<string>;
  /** One line per data disk (join, update, refresh): "data disk /dev/sda1 on /var/lib/longhorn: mounted (...)" or MISSING with the fix. */
  declare readonly dataDiskStatus: pulumi.Output<string[]>;

  constructor(name: string, args: K3sNodeResourceArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      k3sProvider,
      name,
      nodeProps(args, "K3sNode", args.role, args.bootstrap ?? false),
      {
        ...opts,
        aliases: [...LEGACY_NODE_TYPES.map((type) => ({ type })), ...(opts?.aliases ?? [])],
        additionalSecretOutputs: ["token", "privateKey", ...(opts?.additionalSecretOutputs ?? [])],
      },
      "k3s",
      "K3sNode",
    );
  }
}

/** Arguments of {@link K3sKubeconfig}. */
export interface K3sKubeconfigArgs {
  /**
   * The configured servers (the first server first); the kubeconfig is read from the first that answers
   * (k3s's CA and admin credentials are cluster-wide). Where it is read from is not part of what it
   * contains: a change here alone changes nothing. Required, at least one.
   */
  servers: pulumi.Input<pulumi.Input<ServerRefArgs>[]>;
  /** SSH private key, a Pulumi secret. Default: the ssh-agent. */
  privateKey?: pulumi.Input<string>;
  /** API server URL written into the kubeconfig, e.g. https://10.0.0.11:6443. Required; a change re-reads. */
  server: pulumi.Input<string>;
  /** Name of the kubeconfig's cluster, user and context (fleet.clusterName). Required; a change re-reads. */
  clusterName: pulumi.Input<string>;
  /**
   * Identity of the cluster (changes only when the cluster is created afresh, with a new CA and admin
   * credentials); a change re-reads. Members joining, rejoining or leaving must not change it, else every
   * workload on the Kubernetes provider built from this kubeconfig is planned for replacement. Default "".
   */
  cluster?: pulumi.Input<string>;
}

/**
 * The cluster's admin kubeconfig, rewritten to `server` and the stack's names. A secret output that changes
 * only when what it contains changes (server URL, cluster name, the cluster's CA and admin credentials):
 * order it after the joins with `dependsOn`, not through their outputs.
 */
export class K3sKubeconfig extends pulumi.dynamic.Resource {
  /** The kubeconfig YAML (secret). */
  declare readonly kubeconfig: pulumi.Output<string>;

  constructor(name: string, args: K3sKubeconfigArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      k3sProvider,
      name,
      {
        resourceType: "K3sKubeconfig",
        servers: pulumi.output(args.servers).apply((xs) => xs.map((x) => ({ node: x.node, address: x.address, ssh: endpointOutput(x.ssh) }))),
        privateKey: args.privateKey === undefined ? undefined : pulumi.secret(args.privateKey),
        server: args.server,
        clusterName: args.clusterName,
        cluster: args.cluster ?? "",
        kubeconfig: undefined,
      },
      { ...opts, additionalSecretOutputs: ["kubeconfig", "privateKey", ...(opts?.additionalSecretOutputs ?? [])] },
      "k3s",
      "K3sKubeconfig",
    );
  }
}
