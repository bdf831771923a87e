/**
 * The decisions behind the `NodeLeave` dynamic resource (providers/leave.ts is a thin adapter): one per
 * node, ordered before the node's delivery (flash / SWUpdate), so that when the delivery is about to
 * replace what runs on the board, the node has left the cluster first (./leave.ts leaveCluster: quorum
 * check for servers, etcd snapshot to the deployer, drain, Node deleted).
 *
 * Contract:
 * - `generation` is the image the delivery will put on the node (its image id). A change of it is an
 *   update of this resource, and the update is the leave; Pulumi runs it before the delivery (which
 *   depends on this resource) and, when it fails (a refusal), never starts the delivery.
 * - create does nothing on the nodes (a first delivery: the node is not in the cluster yet; or a stack
 *   that predates this resource: the first run records the generation only).
 * - Any other input change updates the state only. read returns the state as it is; delete does nothing
 *   (removing a node's join is the k3s resource's deletion).
 * - SSH: every server is reached with a pinned (or delivery-learned) host key; a server without one is
 *   reported as unreachable, never trusted on first use. Secrets (the private key) stay in their input key.
 */
import type { Host } from "../transport/host";
import { endpointLabel, readEndpoint, SshEndpoint } from "../transport/endpoint";
import type { CheckFailure } from "../provider-types";
import { UNKNOWN } from "../unknown";
import { K3sError, K3sRole, redact, RootShell } from "./join";
import { sshConnect, type Connect } from "./k3s-provider";
import { leaveCluster, LeaveResult, ServerRoute } from "./leave";

export interface LeaveServer {
  /** Fleet node name. */
  name: string;
  /** Its Node's name. */
  hostname: string;
  /** SSH endpoint; without a host key it cannot be used (see the contract). */
  ssh: SshEndpoint;
}

export interface NodeLeaveInputs {
  node: string;
  hostname: string;
  role: K3sRole;
  /** The image the delivery will put on the node; a change = the node leaves before it. */
  generation: string;
  /** "re-flash" (Turing Pi) or "re-image" (SWUpdate): for messages. */
  why: string;
  /** The node's k3s state is wiped by the delivery: its Node (and etcd member) is deleted. */
  deleteNode: boolean;
  /** The other servers, tried in order, to read the cluster and act through. */
  servers: LeaveServer[];
  privateKey?: string;
  drainTimeoutSeconds: number;
  /** Deployer directory for etcd snapshots (0700; files 0600). */
  snapshotDir: string;
}

export interface NodeLeaveOutputs extends NodeLeaveInputs {
  /** What the last leave did (ISO time, server used, snapshot path), "" when none ran. */
  lastLeave: string;
}

export interface LeaveDeps {
  connect?: Connect;
  log?: (msg: string) => void;
  pollMs?: number;
}

export function checkLeave(news: Record<string, unknown>): { inputs: Record<string, unknown>; failures: CheckFailure[] } {
  const failures: CheckFailure[] = [];
  const inputs = { why: "re-flash", deleteNode: true, servers: [], ...news };
  if (news.role !== "server" && news.role !== "agent")
    failures.push({ property: "role", reason: `must be "server" or "agent", got ${JSON.stringify(news.role)}` });
  if (news.servers !== UNKNOWN && news.servers !== undefined && !Array.isArray(news.servers))
    failures.push({ property: "servers", reason: "must be a list of { name, hostname, ssh }" });
  if (Array.isArray(news.servers))
    news.servers.forEach((s, i) => {
      if (s === UNKNOWN || (s as { ssh?: unknown })?.ssh === UNKNOWN) return;
      const found: CheckFailure[] = [];
      readEndpoint((s as { ssh?: unknown })?.ssh, `servers[${i}].ssh`, false, found);
      if (!JSON.stringify((s as { ssh?: unknown }).ssh ?? null).includes(UNKNOWN)) failures.push(...found);
    });
  const t = news.drainTimeoutSeconds;
  if (t !== UNKNOWN && !(typeof t === "number" && t > 0)) failures.push({ property: "drainTimeoutSeconds", reason: "must be a number > 0" });
  if (news.snapshotDir !== UNKNOWN && (typeof news.snapshotDir !== "string" || !news.snapshotDir.startsWith("/")))
    failures.push({ property: "snapshotDir", reason: "must be an absolute path on the deployer" });
  return { inputs, failures };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export function diffLeave(
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
): { changes: boolean; replaces: string[]; deleteBeforeReplace: boolean } {
  const keys = ["node", "hostname", "role", "generation", "why", "deleteNode", "servers", "privateKey", "drainTimeoutSeconds", "snapshotDir"];
  return { changes: keys.some((k) => !same(olds[k], news[k])), replaces: [], deleteBeforeReplace: false };
}

export function createLeave(i: NodeLeaveInputs): NodeLeaveOutputs {
  return { ...i, lastLeave: "" };
}

/** Connect to each server (pinned key only); unreachable ones carry the reason. */
async function routes(servers: LeaveServer[], key: string | undefined, deps: LeaveDeps): Promise<ServerRoute[]> {
  const connect = deps.connect ?? sshConnect;
  return Promise.all(
    servers.map(async (s): Promise<ServerRoute> => {
      if (!s.ssh.hostKey)
        return { name: s.name, hostname: s.hostname, shell: { unreachable: `no pinned host key for ${endpointLabel(s.ssh)} (set nodes[].ssh.hostKey)` } };
      try {
        const h: Host = await connect(s.ssh, key, { retryForMs: 10_000, what: `server ${s.name}` });
        return { name: s.name, hostname: s.hostname, shell: new RootShell(h) };
      } catch (e) {
        return { name: s.name, hostname: s.hostname, shell: { unreachable: (e as Error).message.split("\n")[0] } };
      }
    }),
  );
}

/** The leave itself (see ./leave.ts), through the given servers. */
export async function runLeave(i: NodeLeaveInputs, deps: LeaveDeps = {}): Promise<LeaveResult> {
  const secrets = i.privateKey ? [i.privateKey] : [];
  const rs = await routes(
    i.servers.filter((s) => s.hostname !== i.hostname),
    i.privateKey,
    deps,
  );
  try {
    return await leaveCluster(
      { servers: rs, log: deps.log, pollMs: deps.pollMs, secrets },
      {
        node: i.node,
        hostname: i.hostname,
        role: i.role,
        why: i.why,
        drainTimeoutSeconds: i.drainTimeoutSeconds,
        deleteNode: i.deleteNode,
        snapshotDir: i.snapshotDir,
      },
    );
  } catch (e) {
    throw e instanceof K3sError ? e : new K3sError(redact((e as Error).message, secrets));
  } finally {
    await Promise.all(rs.map((r) => ("unreachable" in r.shell ? undefined : r.shell.host.close().catch(() => undefined))));
  }
}

export async function updateLeave(olds: NodeLeaveOutputs, news: NodeLeaveInputs, deps: LeaveDeps = {}): Promise<NodeLeaveOutputs> {
  if (same(olds.generation, news.generation)) return { ...news, lastLeave: olds.lastLeave ?? "" };
  const r = await runLeave(news, deps);
  const lastLeave =
    r.action === "not-in-cluster"
      ? `${new Date().toISOString()}: not in the cluster (checked through ${r.via ?? "no server"})`
      : `${new Date().toISOString()}: left through ${r.via ?? "no server"}${r.snapshot ? `; snapshot ${r.snapshot}` : ""}${r.drained ? "; drained" : ""}${r.nodeDeleted ? "; Node deleted" : ""}`;
  return { ...news, lastLeave };
}
