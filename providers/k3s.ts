/**
 * `K3sServer`, `K3sAgent` (one node's k3s join) and `K3sKubeconfig` (the rewritten admin kubeconfig of
 * the first server): Pulumi dynamic resources, thin adapters over lib/k3s/k3s-provider.ts.
 *
 * One provider object serves all three; it dispatches on the `resourceType` input.
 * - Node resources: a changed role, hostname, first-server flag, token or `generation` (the delivered
 *   image) replaces the resource, deleting first (same machine): the old join is removed (drain,
 *   delete Node, uninstall when the node still runs it) and the node rejoins, after its stale Node is
 *   deleted. Config, label and taint changes update in place (labels and taints through kubectl).
 * - Order comes from `dependsOn` (set by components/cluster.ts): servers chained one after another,
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
    const impl = require(ROOT + "/lib/k3s/k3s-provider") as typeof import("../lib/k3s/k3s-provider");
    if (props.resourceType === "K3sKubeconfig") return;
    await impl.deleteNode(impl.fromState(props), { log: (m: string) => console.log(m) });
  },
};

/** Arguments of {@link K3sServer} and {@link K3sAgent}. */
export interface K3sNodeArgs {
  /** Fleet node name, used in messages. Required. */
  node: pulumi.Input<string>;
  /** k3s node name (Node object name, the node's hostname). Required; a change replaces. */
  hostname: pulumi.Input<string>;
  /** SSH endpoint of this node (non-root users need passwordless sudo; the host key is required at apply time: from the stack config or the delivery's learned key). Required. */
  ssh: pulumi.Input<SshEndpointArgs>;
  /** SSH endpoint of the first server, where kubectl runs. Required (for the first server: its own endpoint). */
  apiSsh: pulumi.Input<SshEndpointArgs>;
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
  /** Anything that changes when the node is re-flashed (the delivered image's id); a change replaces (rejoin). Default "". */
  generation?: pulumi.Input<string>;
  /** The first server's join id (its `joinId` output), for every node but the first server: when the first server is rebuilt, the node rejoins. Default "". */
  cluster?: pulumi.Input<string>;
  /** The node's data disks (fleet `nodes[].dataDisks`); their state is the `dataDiskStatus` output. Default []. */
  dataDisks?: pulumi.Input<DataDisk[]>;
}

function nodeProps(args: K3sNodeArgs, resourceType: string, role: string, firstServer: boolean): Record<string, unknown> {
  return {
    resourceType,
    role,
    firstServer,
    node: args.node,
    hostname: args.hostname,
    ssh: endpointOutput(args.ssh),
    apiSsh: endpointOutput(args.apiSsh),
    privateKey: args.privateKey === undefined ? undefined : pulumi.secret(args.privateKey),
    token: pulumi.secret(args.token),
    config: args.config,
    labels: args.labels ?? {},
    taints: args.taints ?? [],
    joinTimeoutSeconds: args.joinTimeoutSeconds,
    drainTimeoutSeconds: args.drainTimeoutSeconds,
    installScript: args.installScript,
    generation: args.generation ?? "",
    cluster: args.cluster ?? "",
    dataDisks: args.dataDisks ?? [],
    joinId: undefined,
    joinedAt: undefined,
    dataDiskStatus: undefined,
  };
}

/** A k3s server node. `firstServer` runs cluster-init; the others join the first server one at a time (chain them with dependsOn). */
export class K3sServer extends pulumi.dynamic.Resource {
  /** Random id of this join (written to the node as /etc/rancher/k3s/isar-k3s-join). */
  declare readonly joinId: pulumi.Output<string>;
  /** When the node was Ready (ISO time). */
  declare readonly joinedAt: pulumi.Output<string>;
  declare readonly hostname: pulumi.Output<string>;
  /** One line per data disk (join, update, refresh): "data disk /dev/sda1 on /var/lib/longhorn: mounted (...)" or MISSING with the fix. */
  declare readonly dataDiskStatus: pulumi.Output<string[]>;

  constructor(
    name: string,
    args: K3sNodeArgs & { /** This server runs cluster-init. Default false; a change replaces. */ firstServer?: boolean },
    opts?: pulumi.CustomResourceOptions,
  ) {
    super(
      k3sProvider,
      name,
      nodeProps(args, "K3sServer", "server", args.firstServer ?? false),
      { ...opts, additionalSecretOutputs: ["token", "privateKey", ...(opts?.additionalSecretOutputs ?? [])] },
      "k3s",
      "K3sServer",
    );
  }
}

/** A k3s agent node; joins after the servers (dependsOn the last server). */
export class K3sAgent extends pulumi.dynamic.Resource {
  declare readonly joinId: pulumi.Output<string>;
  declare readonly joinedAt: pulumi.Output<string>;
  declare readonly hostname: pulumi.Output<string>;
  declare readonly dataDiskStatus: pulumi.Output<string[]>;

  constructor(name: string, args: K3sNodeArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      k3sProvider,
      name,
      nodeProps(args, "K3sAgent", "agent", false),
      { ...opts, additionalSecretOutputs: ["token", "privateKey", ...(opts?.additionalSecretOutputs ?? [])] },
      "k3s",
      "K3sAgent",
    );
  }
}

/** Arguments of {@link K3sKubeconfig}. */
export interface K3sKubeconfigArgs {
  /** SSH endpoint of the first server. Required. */
  apiSsh: pulumi.Input<SshEndpointArgs>;
  /** SSH private key, a Pulumi secret. Default: the ssh-agent. */
  privateKey?: pulumi.Input<string>;
  /** API server URL written into the kubeconfig, e.g. https://10.0.0.11:6443. Required. */
  server: pulumi.Input<string>;
  /** Name of the kubeconfig's cluster, user and context (fleet.clusterName). Required. */
  clusterName: pulumi.Input<string>;
  /** Join ids of the cluster's nodes: the kubeconfig is re-read when one changes. Default []. */
  members?: pulumi.Input<pulumi.Input<string>[]>;
}

/** The first server's admin kubeconfig, rewritten to the server's address and the stack's names. A secret output. */
export class K3sKubeconfig extends pulumi.dynamic.Resource {
  /** The kubeconfig YAML (secret). */
  declare readonly kubeconfig: pulumi.Output<string>;

  constructor(name: string, args: K3sKubeconfigArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      k3sProvider,
      name,
      {
        resourceType: "K3sKubeconfig",
        apiSsh: endpointOutput(args.apiSsh),
        privateKey: args.privateKey === undefined ? undefined : pulumi.secret(args.privateKey),
        server: args.server,
        clusterName: args.clusterName,
        members: args.members ?? [],
        kubeconfig: undefined,
      },
      { ...opts, additionalSecretOutputs: ["kubeconfig", "privateKey", ...(opts?.additionalSecretOutputs ?? [])] },
      "k3s",
      "K3sKubeconfig",
    );
  }
}
