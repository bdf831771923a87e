/**
 * The deployment plan as data: which node is the first server (cluster-init), which servers join after
 * it one at a time, and which agents join in parallel after all servers. Every later step that orders
 * work (delivery, k3s join, destroy) reads this plan instead of re-deriving the order.
 *
 * Contract: order follows the order of `nodes` in the stack config; the first server listed is the
 * first server. Pure: no I/O.
 */
import { Fleet, NodeSpec } from "../model/types";

export interface DeploymentPlan {
  firstServer: NodeSpec;
  /** Servers after the first, in join order (each waits for the previous to be Ready). */
  joiningServers: NodeSpec[];
  /** Agents, joined in parallel (at most `maxAgentsInFlight` at once) after every server. */
  agents: NodeSpec[];
  /** Phases in order; nodes inside one phase may run in parallel. */
  phases: { name: string; nodes: NodeSpec[] }[];
  /** The k3s API URL every joining node points at. */
  serverUrl: string;
}

export const K3S_API_PORT = 6443;

export function deploymentPlan(fleet: Fleet): DeploymentPlan {
  const servers = fleet.nodes.filter((n) => n.role === "server");
  const agents = fleet.nodes.filter((n) => n.role === "agent");
  if (servers.length === 0) throw new Error("deploymentPlan: the fleet has no server (parseFleet should have refused it)");
  const [firstServer, ...joiningServers] = servers;
  const phases = [
    { name: "first-server", nodes: [firstServer] },
    ...joiningServers.map((s, i) => ({ name: `server-${i + 2}`, nodes: [s] })),
    ...(agents.length > 0 ? [{ name: "agents", nodes: agents }] : []),
  ];
  return { firstServer, joiningServers, agents, phases, serverUrl: `https://${firstServer.address}:${K3S_API_PORT}` };
}

/**
 * Batches of agents for a bounded-parallel rollout: agent i waits for agent i - maxInFlight, so at
 * most `maxInFlight` are in flight at once and a failure stops the agents behind it.
 */
export function agentPredecessor(plan: DeploymentPlan, agentIndex: number, maxInFlight: number): NodeSpec | undefined {
  return agentIndex >= maxInFlight ? plan.agents[agentIndex - maxInFlight] : undefined;
}

/** Destroy order: agents first, then servers last-joined first. */
export function teardownOrder(plan: DeploymentPlan): NodeSpec[] {
  return [...plan.agents, ...[...plan.joiningServers].reverse(), plan.firstServer];
}
