/**
 * K3sCluster (`isar-k3s:k3s:Cluster`): the k3s cluster on delivered nodes, and what runs on it.
 *
 * Children, in dependency order:
 * - the cluster token: a `@pulumi/random` RandomPassword (48 characters, no specials), a secret that
 *   reaches nodes only on stdin (providers/k3s.ts → lib/k3s/join.ts);
 * - one K3sServer per server, chained: the first (cluster-init) after its delivery, each further server
 *   after the previous one is Ready; one K3sAgent per agent after the last server (in parallel). Pulumi
 *   destroys dependents first, so removal runs agents, then servers last-joined first;
 * - per node with `postJoinCommand`: a `@pulumi/command` remote.Command that runs it on the node over
 *   SSH (pinned host key, the fleet's private key) after the node joined, again when it rejoins;
 * - K3sKubeconfig: the first server's kubeconfig rewritten to its address and the cluster name, after
 *   every node joined (secret output `kubeconfig`);
 * - a `@pulumi/kubernetes` Provider built from it, and the platform workloads of `fleet.workloads`
 *   (namespaces, manifests through k8s.yaml.ConfigFile, Helm charts through k8s.helm.v3.Release).
 * The ordering comes from lib/plan (deploymentPlan); the per-node configs from lib/render/k3s-config.
 */
import * as command from "@pulumi/command";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import * as path from "path";
import { Fleet, NodeSpec } from "../lib/model/types";
import { localChartDir, manifestPath } from "../lib/model/workload-files";
import { deploymentPlan, DeploymentPlan } from "../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../lib/render/k3s-config";
import { renderKnownHosts } from "../lib/render/known-hosts";
import { K3sAgent, K3sKubeconfig, K3sServer } from "../providers/k3s";
import type { SshEndpointArgs } from "../providers/endpoint";

/** How to reach one node, and what its join waits for. */
export interface K3sClusterNodeArgs {
  /** SSH endpoint. Default: the node's address and `ssh` settings from the fleet (port, user, pinned hostKey). */
  ssh?: SshEndpointArgs;
  /**
   * The node's host key as learned by its delivery (e.g. `TuringPiFlash.nodeHostKey`, for nodes whose key
   * is not pinned in config). Overrides the endpoint's hostKey. Default: the endpoint's hostKey.
   */
  hostKey?: pulumi.Input<string>;
  /** The resource that delivered the node's image (flash / SWUpdate); the join waits for it. Default: none. */
  delivered?: pulumi.Resource;
  /**
   * Anything that changes when the node is re-flashed or re-imaged, e.g. the delivery's `runningImageId`.
   * A change replaces the node's k3s resource: the old join is removed and the node rejoins under its
   * name (its stale Node is deleted first). Default "" (never).
   */
  generation?: pulumi.Input<string>;
}

export interface K3sClusterArgs {
  /** The validated fleet. Required. */
  fleet: Fleet;
  /** The deployment plan. Default: `deploymentPlan(fleet)`. */
  plan?: DeploymentPlan;
  /** Rendered config.yaml per node name. Default: `renderK3sConfig(fleet, plan, node)` for each node. */
  configs?: Record<string, string>;
  /** Per-node SSH endpoint, delivery dependency and generation, by node name. Default: from the fleet, no delivery dependency. */
  nodes?: Record<string, K3sClusterNodeArgs>;
  /** SSH private key (a Pulumi secret) for every node. Default: the ssh-agent (SSH_AUTH_SOCK). */
  sshPrivateKey?: pulumi.Input<string>;
  /**
   * Cluster token (a Pulumi secret), for adopting a cluster whose token exists already. Default: a new
   * `random.RandomPassword` (48 characters, no specials). Changing it rejoins every node.
   */
  token?: pulumi.Input<string>;
  /** Airgap install script on the nodes. Default /usr/local/bin/k3s-install.sh. */
  installScript?: string;
  /** Deploy `fleet.workloads` through the cluster's Kubernetes provider. Default true. */
  workloads?: boolean;
  /** Directory relative manifest paths are resolved against. Default: the program's working directory. */
  projectDir?: string;
}

export class K3sCluster extends pulumi.ComponentResource {
  /** Admin kubeconfig for the cluster (server = first server's address:6443, names = fleet.clusterName). Secret. */
  public readonly kubeconfig: pulumi.Output<string>;
  /** Kubernetes provider for the cluster; present when the fleet has workloads to deploy. */
  public readonly provider?: k8s.Provider;
  /** The k3s resource of each node, by node name. */
  public readonly nodes: Record<string, K3sServer | K3sAgent>;
  /** Join order: server node names in join order, then agents (joined in parallel). */
  public readonly joinOrder: { servers: string[]; agents: string[] };
  /** OpenSSH known_hosts lines of the nodes (pinned or learned host keys), for `ssh -o UserKnownHostsFile=`. */
  public readonly knownHosts: pulumi.Output<string>;
  /** The post-join command of each node that has one (`postJoinCommand`), by node name. */
  public readonly postJoin: Record<string, command.remote.Command>;
  /** Workload resources (namespaces, manifests, Helm releases), by kind and name. */
  public readonly workloads: {
    namespaces: Record<string, k8s.core.v1.Namespace>;
    manifests: Record<string, k8s.yaml.ConfigFile>;
    helmReleases: Record<string, k8s.helm.v3.Release>;
  };

  constructor(name: string, args: K3sClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("isar-k3s:k3s:Cluster", name, {}, opts);
    const plan = args.plan ?? deploymentPlan(args.fleet);
    const joined = createJoins(this, name, args, plan);
    this.nodes = joined.nodes;
    this.knownHosts = joined.knownHosts;
    this.postJoin = createPostJoinCommands(this, name, args.fleet, joined);
    this.joinOrder = { servers: [plan.firstServer, ...plan.joiningServers].map((n) => n.name), agents: plan.agents.map((n) => n.name) };
    const all = Object.values(this.nodes);
    const kc = new K3sKubeconfig(
      `${name}-kubeconfig`,
      { apiSsh: joined.apiSsh, privateKey: joined.privateKey, server: plan.serverUrl, clusterName: args.fleet.clusterName, members: all.map((r) => r.joinId) },
      { parent: this, dependsOn: all },
    );
    this.kubeconfig = pulumi.secret(kc.kubeconfig);
    const w = args.fleet.workloads;
    // No workloads, no Kubernetes provider: it needs the kubernetes plugin and a reachable API server.
    if ((args.workloads ?? true) && w.namespaces.length + w.manifests.length + w.helmCharts.length > 0) {
      this.provider = new k8s.Provider(`${name}-k8s`, { kubeconfig: this.kubeconfig }, { parent: this });
      this.workloads = createWorkloads(this, name, w, this.provider, args.projectDir);
    } else {
      this.workloads = { namespaces: {}, manifests: {}, helmReleases: {} };
    }
    this.registerOutputs({ kubeconfig: this.kubeconfig, knownHosts: this.knownHosts, joinOrder: this.joinOrder });
  }
}

/**
 * The joins: the first server, then each joining server after the previous one, then the agents after
 * the last server; every join also waits for its node's delivery.
 */
function createJoins(parent: pulumi.Resource, name: string, args: K3sClusterArgs, plan: DeploymentPlan) {
  const { fleet } = args;
  const per = args.nodes ?? {};
  const config = (n: NodeSpec) => args.configs?.[n.name] ?? renderK3sConfig(fleet, plan, n);
  const sshOf = (n: NodeSpec): SshEndpointArgs => {
    const ep = per[n.name]?.ssh ?? { address: n.address, port: n.ssh.port, user: n.ssh.user, hostKey: n.ssh.hostKey };
    const learned = per[n.name]?.hostKey;
    return learned === undefined ? ep : { ...ep, hostKey: learned };
  };
  const apiSsh = sshOf(plan.firstServer);
  const privateKey = args.sshPrivateKey === undefined ? undefined : pulumi.secret(args.sshPrivateKey);
  const token =
    args.token === undefined
      ? new random.RandomPassword(`${name}-token`, { length: 48, special: false }, { parent, additionalSecretOutputs: ["result"] }).result
      : pulumi.secret(args.token);

  const common = (n: NodeSpec) => ({
    node: n.name,
    hostname: n.hostname,
    ssh: sshOf(n),
    apiSsh,
    privateKey,
    token,
    config: config(n),
    labels: nodeLabels(n),
    taints: n.taints,
    joinTimeoutSeconds: fleet.k3s.joinTimeoutSeconds,
    drainTimeoutSeconds: fleet.k3s.drainTimeoutSeconds,
    installScript: args.installScript,
    generation: per[n.name]?.generation ?? "",
    dataDisks: n.dataDisks,
  });
  const deliveredOf = (n: NodeSpec): pulumi.Resource[] => (per[n.name]?.delivered ? [per[n.name]!.delivered!] : []);

  const nodes: Record<string, K3sServer | K3sAgent> = {};
  const first = new K3sServer(
    `${name}-${plan.firstServer.name}`,
    { ...common(plan.firstServer), firstServer: true },
    { parent, dependsOn: deliveredOf(plan.firstServer) },
  );
  nodes[plan.firstServer.name] = first;
  let previous: K3sServer = first;
  for (const s of plan.joiningServers) {
    const r = new K3sServer(`${name}-${s.name}`, { ...common(s), cluster: first.joinId }, { parent, dependsOn: [previous, ...deliveredOf(s)] });
    nodes[s.name] = r;
    previous = r;
  }
  for (const a of plan.agents) {
    nodes[a.name] = new K3sAgent(`${name}-${a.name}`, { ...common(a), cluster: first.joinId }, { parent, dependsOn: [previous, ...deliveredOf(a)] });
  }
  const knownHosts = pulumi
    .all(fleet.nodes.map((n) => pulumi.output(sshOf(n))))
    .apply((eps) => renderKnownHosts(eps.map((e) => ({ address: e.address, port: e.port, hostKey: e.hostKey }))));
  return { nodes, apiSsh, privateKey, knownHosts, sshOf };
}

/**
 * Each node's `postJoinCommand`, run on the node over SSH (its pinned or learned host key, the fleet's
 * private key) after it joined, and again when it rejoins (a new join id).
 */
function createPostJoinCommands(parent: pulumi.Resource, name: string, fleet: Fleet, joined: ReturnType<typeof createJoins>) {
  const out: Record<string, command.remote.Command> = {};
  for (const n of fleet.nodes) {
    if (n.postJoinCommand === undefined) continue;
    const ep = joined.sshOf(n);
    const hostKey = pulumi.output(ep.hostKey).apply((k) => {
      if (!k) throw new Error(`nodes[${n.name}].postJoinCommand: no host key for ${n.name}: set nodes[].ssh.hostKey (or deliver with tpi, which learns it)`);
      return k;
    });
    const node = joined.nodes[n.name];
    out[n.name] = new command.remote.Command(
      `${name}-${n.name}-post-join`,
      {
        connection: { host: ep.address, port: ep.port ?? 22, user: ep.user ?? "root", hostKey, privateKey: joined.privateKey, dialErrorLimit: 5 },
        create: n.postJoinCommand,
        triggers: [node.joinId],
      },
      { parent, dependsOn: [node] },
    );
  }
  return out;
}

/** Namespaces first, then manifests and Helm releases in them, through the cluster's provider. */
function createWorkloads(
  parent: pulumi.Resource,
  name: string,
  w: Fleet["workloads"],
  provider: k8s.Provider,
  projectDir: string | undefined,
): K3sCluster["workloads"] {
  const out: K3sCluster["workloads"] = { namespaces: {}, manifests: {}, helmReleases: {} };
  const k8sOpts = { parent, provider };
  const dir = projectDir ?? process.cwd();
  for (const ns of w.namespaces) {
    out.namespaces[ns] = new k8s.core.v1.Namespace(`${name}-ns-${ns}`, { metadata: { name: ns } }, k8sOpts);
  }
  const nsDeps = Object.values(out.namespaces);
  w.manifests.forEach((m, i) => {
    const file = manifestPath(m, dir);
    const base = path
      .basename(m)
      .replace(/\.(ya?ml|json)$/, "")
      .replace(/[^A-Za-z0-9-]/g, "-");
    out.manifests[m] = new k8s.yaml.ConfigFile(`${name}-manifest-${i}-${base}`, { file }, { ...k8sOpts, dependsOn: nsDeps });
  });
  for (const h of w.helmCharts) {
    out.helmReleases[h.name] = new k8s.helm.v3.Release(
      `${name}-helm-${h.name}`,
      {
        name: h.name,
        // A local chart directory is resolved against projectDir (readFleetConfig checked it exists).
        chart: localChartDir(h, dir) ?? h.chart,
        ...(h.version ? { version: h.version } : {}),
        ...(h.repo ? { repositoryOpts: { repo: h.repo } } : {}),
        namespace: h.namespace,
        createNamespace: !w.namespaces.includes(h.namespace),
        values: h.values,
      },
      { ...k8sOpts, dependsOn: nsDeps },
    );
  }
  return out;
}
