/**
 * Fleet: the top-level ComponentResource. It turns the validated fleet model into dependency-ordered
 * children: per-machine ISAR artifacts, per-node images, SWUpdate bundles, delivery and the k3s join.
 * The constructor stays thin: ordering and rendering come from lib/ (plan, renderers).
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { Fleet as FleetModel, Hardware } from "../lib/model/types";
import { deploymentPlan, DeploymentPlan } from "../lib/plan/plan";
import { nodeFilesDigest, renderNodeFiles } from "../lib/render/node-files";
import { deliveryDependencies } from "../lib/delivery/rollout";
import { projectRoot } from "../lib/project";
import { FleetUpdate } from "../providers/swupdate";
import { MachineArtifacts } from "./artifacts";
import { K3sCluster } from "./cluster";
import { FleetSecrets } from "./config";
import { FleetNode } from "./node";

export interface FleetArgs {
  /** The validated fleet (from `readFleetConfig`). Required. */
  fleet: FleetModel;
  /** Secrets read from stack config; each optional, default: absent. */
  secrets?: FleetSecrets;
  /** Directory for build outputs (bundles, manifest). Default <project>/.cache/<stack>. */
  outputDir?: string;
  /** Project directory: relative config paths are resolved against it. Default: where Pulumi.yaml is, at or above the working directory. */
  projectDir?: string;
}

export interface FleetNodeSummary {
  name: string;
  role: string;
  hardware: string;
  address: string;
  delivery: string;
  /** sha256 over the node's rendered image files (k3s config, hostname, network, keys). */
  filesDigest: string;
}

export class Fleet extends pulumi.ComponentResource {
  /** Join phases in order: first server, further servers one at a time, then agents. */
  public readonly phases: pulumi.Output<{ name: string; nodes: string[] }[]>;
  /** Per-node summary, in config order. */
  public readonly nodes: pulumi.Output<FleetNodeSummary[]>;
  public readonly plan: DeploymentPlan;
  /** Artifacts per hardware kind in use. */
  public readonly artifacts: Partial<Record<Hardware, MachineArtifacts>>;
  /** Per-node image / bundle chain, by node name. */
  public readonly fleetNodes: Record<string, FleetNode>;
  /** The fleet update manifest (when any node is delivered with SWUpdate). */
  public readonly updateManifest?: FleetUpdate;
  /** Node name → composed image store path. */
  public readonly images: pulumi.Output<Record<string, string>>;
  /** The k3s cluster on the delivered nodes. */
  public readonly cluster: K3sCluster;
  /** Admin kubeconfig of the cluster (secret). */
  public readonly kubeconfig: pulumi.Output<string>;
  /** OpenSSH known_hosts lines for the nodes (pinned or learned at flash). */
  public readonly knownHosts: pulumi.Output<string>;
  /** Node name → image id the node reported after its delivery. */
  public readonly delivered: pulumi.Output<Record<string, string>>;
  /** Path of the fleet update manifest.json, when any node uses SWUpdate. */
  public readonly updateManifestPath: pulumi.Output<string | undefined>;

  constructor(name: string, args: FleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("isar-k3s:fleet:Fleet", name, {}, opts);
    const { fleet } = args;
    this.plan = deploymentPlan(fleet);
    const secrets = args.secrets ?? {};
    const projectDir = args.projectDir ?? projectRoot();
    const outputDir = args.outputDir ?? path.join(projectDir, ".cache", pulumi.getStack());

    this.phases = pulumi.output(this.plan.phases.map((p) => ({ name: p.name, nodes: p.nodes.map((n) => n.name) })));
    this.nodes = pulumi.output(nodeSummaries(fleet, this.plan));
    this.artifacts = createMachineArtifacts(this, name, fleet, projectDir);
    this.fleetNodes = createFleetNodes(this, name, fleet, this.plan, this.artifacts, secrets, outputDir, projectDir);
    this.updateManifest = createUpdateManifest(this, name, fleet, this.fleetNodes, outputDir);
    this.cluster = createCluster(this, name, fleet, this.plan, this.fleetNodes, secrets, projectDir);
    this.kubeconfig = this.cluster.kubeconfig;
    this.knownHosts = this.cluster.knownHosts;

    this.images = byNode(this.fleetNodes, (fnode) => fnode.image.storePath);
    this.delivered = byNode(this.fleetNodes, (fnode) => fnode.delivery.runningImageId);
    this.updateManifestPath = this.updateManifest ? this.updateManifest.manifestPath : pulumi.output(undefined);

    this.registerOutputs({
      phases: this.phases,
      nodes: this.nodes,
      images: this.images,
      delivered: this.delivered,
      kubeconfig: this.kubeconfig,
      knownHosts: this.knownHosts,
      updateManifestPath: this.updateManifestPath,
    });
  }
}

/** Node name → one output of its FleetNode. */
function byNode(fleetNodes: Record<string, FleetNode>, pick: (fnode: FleetNode) => pulumi.Output<string>): pulumi.Output<Record<string, string>> {
  return pulumi.all(Object.entries(fleetNodes).map(([n, fnode]) => pick(fnode).apply((v) => [n, v] as const))).apply((es) => Object.fromEntries(es));
}

function nodeSummaries(fleet: FleetModel, plan: DeploymentPlan): FleetNodeSummary[] {
  return fleet.nodes.map((n) => ({
    name: n.name,
    role: n.role,
    hardware: n.hardware,
    address: n.address,
    delivery: n.delivery.method === "tpi" ? `tpi ${n.delivery.bmc} slot ${n.delivery.slot}` : "swupdate",
    filesDigest: nodeFilesDigest(renderNodeFiles(fleet, plan, n)),
  }));
}

/** One MachineArtifacts per hardware kind in use. */
function createMachineArtifacts(parent: pulumi.Resource, name: string, fleet: FleetModel, projectDir: string): Partial<Record<Hardware, MachineArtifacts>> {
  const out: Partial<Record<Hardware, MachineArtifacts>> = {};
  for (const hw of [...new Set(fleet.nodes.map((n) => n.hardware))]) {
    const users = fleet.nodes.filter((n) => n.hardware === hw);
    out[hw] = new MachineArtifacts(
      `${name}-${hw}`,
      {
        hardware: hw,
        pins: fleet.artifacts[hw]!,
        arch: users[0].arch,
        isar: fleet.isar,
        network: fleet.network.profile,
        roles: users.map((n) => n.role),
        projectDir,
      },
      { parent },
    );
  }
  return out;
}

/** The FleetNodes, built in rollout order so each delivery can wait for the ones before it. */
function createFleetNodes(
  parent: pulumi.Resource,
  name: string,
  fleet: FleetModel,
  plan: DeploymentPlan,
  artifacts: Partial<Record<Hardware, MachineArtifacts>>,
  secrets: FleetSecrets,
  outputDir: string,
  projectDir: string,
): Record<string, FleetNode> {
  const out: Record<string, FleetNode> = {};
  const byName = new Map(fleet.nodes.map((n) => [n.name, n]));
  for (const dep of deliveryDependencies(plan, fleet.delivery.maxAgentsInFlight)) {
    const n = byName.get(dep.node)!;
    const files = renderNodeFiles(fleet, plan, n);
    out[n.name] = new FleetNode(
      `${name}-${n.name}`,
      {
        node: n,
        fleet,
        artifacts: artifacts[n.hardware]!,
        files,
        filesDigest: nodeFilesDigest(files),
        swupdateSigningKey: secrets.swupdateSigningKey,
        swupdateAesKey: secrets.swupdateAesKey,
        outputDir,
        projectDir,
        bmc: n.delivery.method === "tpi" ? fleet.bmcs.find((b) => b.name === (n.delivery as { bmc: string }).bmc) : undefined,
        sshPrivateKey: secrets.sshPrivateKey,
        deliverAfter: dep.dependsOn.map((d) => out[d].delivery),
      },
      { parent },
    );
  }
  return out;
}

/** The fleet update manifest, when any node is delivered with SWUpdate. */
function createUpdateManifest(
  parent: pulumi.Resource,
  name: string,
  fleet: FleetModel,
  fleetNodes: Record<string, FleetNode>,
  outputDir: string,
): FleetUpdate | undefined {
  const swNodes = fleet.nodes.filter((n) => n.delivery.method === "swupdate");
  if (swNodes.length === 0) return undefined;
  return new FleetUpdate(
    `${name}-update-manifest`,
    {
      version: fleet.swupdate.version,
      nodes: swNodes.map((n) => ({
        name: n.name,
        address: n.address,
        arch: n.arch,
        hardware: n.hardware,
        role: n.role,
        selection: n.delivery.method === "swupdate" ? n.delivery.selection : undefined,
      })),
      bundles: swNodes.map((n) => {
        const b = fleetNodes[n.name].bundle!;
        return { hardware: n.hardware, node: n.name, path: b.path, sha256: b.sha256, size: b.size };
      }),
      outputDir,
    },
    { parent },
  );
}

/**
 * k3s join on the delivered nodes: each node's join waits for its delivery; a re-flash (new running
 * image) replaces its join so it rejoins under its name. Turing Pi nodes are reached with the host key
 * their flash recorded.
 */
function createCluster(
  parent: pulumi.Resource,
  name: string,
  fleet: FleetModel,
  plan: DeploymentPlan,
  fleetNodes: Record<string, FleetNode>,
  secrets: FleetSecrets,
  projectDir: string,
): K3sCluster {
  return new K3sCluster(
    `${name}-k3s`,
    {
      fleet,
      plan,
      sshPrivateKey: secrets.sshPrivateKey,
      token: secrets.clusterToken,
      projectDir,
      nodes: Object.fromEntries(
        fleet.nodes.map((n) => {
          const d = fleetNodes[n.name].delivery;
          const hostKey = n.delivery.method === "tpi" && !n.ssh.hostKey ? (d as { nodeHostKey: pulumi.Output<string> }).nodeHostKey : n.ssh.hostKey;
          return [n.name, { ssh: { address: n.address, port: n.ssh.port, user: n.ssh.user, hostKey }, delivered: d, generation: d.runningImageId }];
        }),
      ),
    },
    { parent },
  );
}
