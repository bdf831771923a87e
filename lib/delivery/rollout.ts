/**
 * Rollout order of node deliveries (flash / SWUpdate), as dependencies between deliveries.
 *
 * `deliveryDependencies(plan, maxAgentsInFlight)` tells each node's delivery which other deliveries it
 * must wait for; the Fleet component turns the names into Pulumi `dependsOn`, so the order is enforced
 * by the engine itself:
 * - servers one at a time, in plan order (the first server, then each joining server after the previous);
 * - then the agents: the first agent alone (a canary: when it fails, no other agent is touched), then the
 *   remaining agents with at most `maxAgentsInFlight` in flight — remaining agent j waits for remaining
 *   agent j - maxAgentsInFlight (lib/plan agentPredecessor), which bounds the parallelism and makes a
 *   failure stop the agents queued behind it.
 * - Turing Pi nodes behind the same BMC are flashed one after the other (each also waits for the previous
 *   delivery through that BMC): the BMC daemon runs one transfer at a time and a new flash request
 *   cancels the running one (turing-machines/bmcd).
 * Pulumi stops scheduling new steps after the first failure (unless run with --continue-on-error), and
 * dependents of a failed resource are never attempted.
 *
 * `runRollout` executes the same graph outside Pulumi (CLI tools, tests) with the engine's semantics:
 * a delivery starts when all its dependencies succeeded; after the first failure nothing new starts,
 * in-flight deliveries finish; the result lists succeeded / failed / not attempted nodes, and
 * `RolloutError` says which node failed, in which phase, with the tail of its output.
 *
 * Pure apart from the callbacks given to runRollout.
 */
import { DeploymentPlan, agentPredecessor } from "../plan/plan";
import type { NodeSpec } from "../model/types";
import { DeliveryError } from "./common";

export interface DeliveryDependency {
  node: string;
  /** Names of the nodes whose delivery must succeed first. */
  dependsOn: string[];
  /** "server" | "canary" | "agents". */
  stage: "server" | "canary" | "agents";
}

export function deliveryDependencies(plan: DeploymentPlan, maxAgentsInFlight: number, opts: { canary?: boolean } = {}): DeliveryDependency[] {
  if (!Number.isInteger(maxAgentsInFlight) || maxAgentsInFlight < 1)
    throw new Error(`delivery.maxAgentsInFlight must be an integer >= 1, got ${maxAgentsInFlight}`);
  const canary = opts.canary ?? true;
  const out: DeliveryDependency[] = [];
  const servers = [plan.firstServer, ...plan.joiningServers];
  servers.forEach((s, i) => out.push({ node: s.name, dependsOn: i === 0 ? [] : [servers[i - 1].name], stage: "server" }));
  const lastServer = servers[servers.length - 1].name;
  const agents = plan.agents;
  if (agents.length === 0) return out;
  const rest = canary ? agents.slice(1) : agents;
  if (canary) out.push({ node: agents[0].name, dependsOn: [lastServer], stage: "canary" });
  const restPlan: DeploymentPlan = { ...plan, agents: rest };
  rest.forEach((a, j) => {
    const pred = agentPredecessor(restPlan, j, maxAgentsInFlight);
    const deps = [canary ? agents[0].name : lastServer];
    if (pred) deps.push(pred.name);
    out.push({ node: a.name, dependsOn: deps, stage: "agents" });
  });
  return chainPerBmc(out, [...servers, ...agents]);
}

/** Add, for each Turing Pi node, a dependency on the previous delivery (in rollout order) through the same BMC. */
function chainPerBmc(deps: DeliveryDependency[], nodes: NodeSpec[]): DeliveryDependency[] {
  const bmcOf = new Map(nodes.map((n) => [n.name, n.delivery?.method === "tpi" ? n.delivery.bmc : undefined]));
  const last = new Map<string, string>();
  return deps.map((d) => {
    const bmc = bmcOf.get(d.node);
    if (bmc === undefined) return d;
    const prev = last.get(bmc);
    last.set(bmc, d.node);
    return prev !== undefined && !d.dependsOn.includes(prev) ? { ...d, dependsOn: [...d.dependsOn, prev] } : d;
  });
}

export interface RolloutResult {
  succeeded: string[];
  failed?: { node: string; error: Error };
  /** Failures of deliveries that were already running when the first one failed. */
  alsoFailed: { node: string; error: Error }[];
  /** Nodes that were never started (dependents of the failure, and all not yet reached). */
  notAttempted: string[];
  /** Order in which deliveries started. */
  started: string[];
  /** Highest number of deliveries running at once. */
  maxConcurrent: number;
}

export class RolloutError extends Error {
  constructor(readonly result: RolloutResult) {
    const f = result.failed!;
    const phase = f.error instanceof DeliveryError ? ` in phase ${f.error.phase}` : "";
    super(
      `rollout stopped: ${f.node} failed${phase}. Delivered: ${result.succeeded.join(", ") || "none"}. ` +
        `Not attempted (left as they were): ${result.notAttempted.join(", ") || "none"}.` +
        (result.alsoFailed.length ? ` Also failed while running: ${result.alsoFailed.map((x) => x.node).join(", ")}.` : "") +
        `\n${f.error.message}` +
        result.alsoFailed.map((x) => `\n\n${x.error.message}`).join(""),
    );
    this.name = "RolloutError";
  }
}

/** Run `deliver` for every node respecting `deps` (see the file contract). Throws RolloutError on the first failure. */
export async function runRollout(deps: DeliveryDependency[], deliver: (node: string) => Promise<void>): Promise<RolloutResult> {
  const names = deps.map((d) => d.node);
  for (const d of deps) for (const p of d.dependsOn) if (!names.includes(p)) throw new Error(`rollout: ${d.node} depends on unknown node ${p}`);
  const state = new Map<string, "pending" | "running" | "ok" | "failed">(names.map((n) => [n, "pending"]));
  const res: RolloutResult = { succeeded: [], alsoFailed: [], notAttempted: [], started: [], maxConcurrent: 0 };
  let running = 0;
  await new Promise<void>((resolve) => {
    const pump = () => {
      if (!res.failed) {
        for (const d of deps) {
          if (state.get(d.node) !== "pending") continue;
          if (!d.dependsOn.every((p) => state.get(p) === "ok")) continue;
          state.set(d.node, "running");
          running++;
          res.maxConcurrent = Math.max(res.maxConcurrent, running);
          res.started.push(d.node);
          deliver(d.node).then(
            () => {
              state.set(d.node, "ok");
              res.succeeded.push(d.node);
              running--;
              pump();
            },
            (e: unknown) => {
              state.set(d.node, "failed");
              const f = { node: d.node, error: e instanceof Error ? e : new Error(String(e)) };
              if (res.failed) res.alsoFailed.push(f);
              else res.failed = f;
              running--;
              pump();
            },
          );
        }
      }
      if (running === 0) resolve();
    };
    pump();
  });
  res.notAttempted = names.filter((n) => state.get(n) === "pending");
  if (res.failed) throw new RolloutError(res);
  if (res.notAttempted.length) throw new Error(`rollout: ${res.notAttempted.join(", ")} could not start: the dependencies form a cycle`);
  return res;
}
