/**
 * Fleet: the top-level ComponentResource. It turns the validated fleet model into dependency-ordered
 * children: per-machine ISAR artifacts, per-node images, SWUpdate bundles, delivery and the k3s join.
 * The constructor stays thin: ordering and rendering come from lib/ (plan, renderers).
 */
import * as pulumi from "@pulumi/pulumi";
import { Fleet as FleetModel } from "../lib/model/types";
import { deploymentPlan, DeploymentPlan } from "../lib/plan/plan";
import { nodeFilesDigest, renderNodeFiles } from "../lib/render/node-files";
import { FleetSecrets } from "./config";

export interface FleetArgs {
  /** The validated fleet (from `readFleetConfig`). Required. */
  fleet: FleetModel;
  /** Secrets read from stack config; each optional, default: absent. */
  secrets?: FleetSecrets;
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

  constructor(name: string, args: FleetArgs, opts?: pulumi.ComponentResourceOptions) {
    super("isar-k3s:fleet:Fleet", name, {}, opts);
    const { fleet } = args;
    this.plan = deploymentPlan(fleet);
    const plan = this.plan;

    this.phases = pulumi.output(plan.phases.map((p) => ({ name: p.name, nodes: p.nodes.map((n) => n.name) })));
    this.nodes = pulumi.output(
      fleet.nodes.map((n) => ({
        name: n.name,
        role: n.role,
        hardware: n.hardware,
        address: n.address,
        delivery: n.delivery.method === "tpi" ? `tpi ${n.delivery.bmc} slot ${n.delivery.slot}` : "swupdate",
        filesDigest: nodeFilesDigest(renderNodeFiles(fleet, plan, n)),
      })),
    );

    this.registerOutputs({ phases: this.phases, nodes: this.nodes });
  }
}
