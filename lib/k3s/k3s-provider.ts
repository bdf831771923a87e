/**
 * The decisions behind the `K3sNode` and `K3sKubeconfig` dynamic resources
 * (providers/k3s.ts is a thin adapter over this file): input checks, diff (what replaces, what
 * updates in place), and create / update / read / delete over SSH with ./join.ts doing the work.
 *
 * Contract:
 * - Node resources are replaced (delete first, then create: it is the same machine) when the node's
 *   name in the cluster or the cluster token changes. A new `generation` (the delivery's image id: a
 *   re-flashed node) is an update that rejoins: the old join is removed (drain, delete Node, uninstall
 *   when the node still runs it) then the node joins again, through a live member of the cluster
 *   recorded in state (`clusterId`): never cluster-init against an existing cluster (join.ts
 *   chooseJoin). No node takes another node's join as an input: a change to one node touches only
 *   that node's resource. Everything else (config, labels, taints, endpoints, timeouts) updates in
 *   place; labels and taints never cause a rejoin.
 * - Outputs are the inputs plus `joinId` / `joinedAt` / `clusterId` / `joinedVia` (node) or `kubeconfig`.
 *   The token and the SSH private key only ever sit in keys that are secret inputs (so Pulumi keeps
 *   them secret in outputs); the kubeconfig is a new key the adapter lists in additionalSecretOutputs.
 * - SSH host keys must be pinned (config or the delivery's learned key): nothing is trusted on first use here.
 * - Errors never carry the token (K3sError scrubs it) nor the kubeconfig.
 */
import { UNKNOWN } from "../unknown";
import * as crypto from "crypto";
import type { Host } from "../transport/host";
import { connectSsh } from "../transport/ssh";
import { endpointLabel, readEndpoint, SshEndpoint, sshConnectOptions } from "../transport/endpoint";
import { isRfc1123Label } from "../model/checks";
import type { CheckFailure } from "../provider-types";
import {
  dataDiskReport,
  fetchKubeconfig,
  Peer,
  probePeer,
  UNKNOWN_CLUSTER,
  getNode,
  K3sError,
  NodeJoinSpec,
  joinNode,
  readMarker,
  redact,
  clusterIdOf,
  decideJoin,
  removeNode,
  RemoveResult,
  RootShell,
  updateNode,
  checkJoinSpec,
} from "./join";
import { assessLeave, memberOf, readClusterView } from "./health";
import { refusal, snapshotToDeployer } from "./leave";
import { resumeNode } from "./resume";

/** The value Pulumi hands a dynamic provider for an input that is not known yet (preview). */
/** Pulumi's preview "unknown" marker (one definition: lib/unknown.ts). */
export { UNKNOWN };

/** K3sNode; K3sServer / K3sAgent in state written before the one node type. */
export type NodeResourceType = "K3sNode" | "K3sServer" | "K3sAgent";

/** One configured server: how the join reaches it (SSH) and the address its API listens on. */
export interface ServerRef {
  /** Fleet node name. */
  node: string;
  /** Address of its API (https://<address>:6443). */
  address: string;
  ssh: SshEndpoint;
}

/** The join spec (./join.ts NodeJoinSpec) plus how to reach the node and the cluster. */
export interface K3sNodeInputs extends NodeJoinSpec {
  resourceType: NodeResourceType;
  /** SSH endpoint of the node. */
  ssh: SshEndpoint;
  /** Every configured server, in fleet order (this node too when it is one): joins and kubectl go through a live one. */
  servers: ServerRef[];
  /** This node may initialise a new cluster when none exists (the fleet's first server). Only read at join time. */
  bootstrap: boolean;
  /** SSH private key (secret); absent = ssh-agent. */
  privateKey?: string;
  /** Cluster token (secret). */
  token: string;
  /** Changes when the node was re-flashed / re-imaged (e.g. the delivered image's digest): the node rejoins. */
  generation: string;
  /** Deployer directory for the etcd snapshot taken before this server is removed (./leave.ts). Default: none. */
  snapshotDir?: string;
  /**
   * The OS image the node runs when its k3s state is persistent (SWUpdate nodes; "" otherwise). A
   * change (an OS update) restarts k3s on the kept state as the same member (./resume.ts): an update,
   * never a rejoin.
   */
  image?: string;
}

export interface K3sNodeOutputs extends K3sNodeInputs {
  joinId: string;
  joinedAt: string;
  /** The cluster's identity (kube-system namespace UID) at the last join: a rejoin must find it live. Absent in state written before it was recorded. */
  clusterId?: string;
  /** The server the last join went through, or "cluster-init". */
  joinedVia?: string;
  /** One line per data disk, as of the last join, update or refresh: mounted, or MISSING with the fix. */
  dataDiskStatus?: string[];
  /**
   * "Ready" after a join or update; a refresh that finds the Node not Ready, or a server that is no
   * etcd member, records why here: the next diff replaces the resource (the node rejoins).
   */
  readiness?: string;
}

/**
 * The admin kubeconfig. What it contains (the cluster's CA and admin credentials, cluster-wide in k3s:
 * every server hands out the same ones) is defined by `server`, `clusterName` and `cluster`; `servers`
 * and `privateKey` only say where and how to read it, so a change there alone is no change.
 */
export interface K3sKubeconfigInputs {
  resourceType: "K3sKubeconfig";
  /** The configured servers: the kubeconfig is read from the first one that answers. */
  servers: ServerRef[];
  privateKey?: string;
  /** Server URL written into the kubeconfig (https://<first server>:6443). */
  server: string;
  /** Name of cluster, user and context. */
  clusterName: string;
  /**
   * Identity of the cluster whose CA and admin credentials the kubeconfig holds: changes only when the
   * cluster itself is new (its datastore and certificates created afresh). A change re-reads it. "" = never.
   */
  cluster: string;
}

export interface K3sKubeconfigOutputs extends K3sKubeconfigInputs {
  kubeconfig: string;
}

export type Connect = (target: SshEndpoint, privateKey: string | undefined, opts: { retryForMs: number; what: string }) => Promise<Host>;

export interface Deps {
  connect?: Connect;
  log?: (msg: string) => void;
  pollMs?: number;
  /** How long removal keeps trying to reach a node before treating it as gone, ms (default 15000). */
  goneAfterMs?: number;
  /** How long a join keeps trying to reach another server before counting it unreachable, ms (default 10000). */
  peerRetryMs?: number;
}

/** Default connection: SshHost with a pinned host key. */
export const sshConnect: Connect = async (t, privateKey, opts) => {
  if (!t.hostKey) {
    throw new Error(
      `${opts.what}: no pinned SSH host key for ${endpointLabel(t)}; pin it in the stack config (nodes[i].ssh.hostKey) or let the delivery record it`,
    );
  }
  return connectSsh(sshConnectOptions(t, { privateKey }, { retryForMs: opts.retryForMs, operationTimeoutMs: 15 * 60_000 }));
};

function isUnknown(v: unknown): boolean {
  return v === UNKNOWN;
}

function known(v: unknown): boolean {
  if (isUnknown(v)) return false;
  if (Array.isArray(v)) return v.every(known);
  if (v && typeof v === "object") return Object.values(v).every(known);
  return true;
}

/**
 * State written before the SSH endpoint became one type (lib/transport/endpoint.ts) says `host` where it
 * now says `address`: read such a state's endpoints as the same endpoints, so an existing stack neither
 * shows a change nor connects nowhere on refresh. Other values pass through unchanged.
 */
export function fromState<T extends Record<string, unknown>>(props: T): T {
  const upgrade = (e: unknown): unknown => {
    if (!e || typeof e !== "object" || !("host" in e) || "address" in e) return e;
    const { host, ...rest } = e as { host: unknown };
    return { address: host, ...rest };
  };
  const out: Record<string, unknown> = { ...props };
  for (const k of ["ssh", "apiSsh"]) if (k in out) out[k] = upgrade(out[k]);
  // state written before joins went through any live server: the one server it knew (the first)
  if (!("servers" in out) && out.apiSsh && typeof out.apiSsh === "object") {
    const api = out.apiSsh as { address?: unknown };
    out.servers = [{ node: "the first server", address: api.address, ssh: out.apiSsh }];
  }
  if (Array.isArray(out.servers))
    out.servers = out.servers.map((r: Record<string, unknown>) => (r && typeof r === "object" ? { ...r, ssh: upgrade(r.ssh) } : r));
  return out as T;
}

// ------------------------------------------------------------------ check / diff

export type { CheckFailure };

function checkTarget(t: unknown, prop: string, out: CheckFailure[]): void {
  if (isUnknown(t)) return; // at preview, e.g. the host key a re-flash will record: checked again at up
  if (!t || typeof t !== "object") return void out.push({ property: prop, reason: "SSH endpoint {address, port, user, hostKey} is required" });
  const found: CheckFailure[] = [];
  readEndpoint(t, prop, false, found);
  // a field still unknown at preview is checked again at up
  out.push(...found.filter((f) => known((t as Record<string, unknown>)[f.property.slice(prop.length + 1)])));
}

export function checkNode(news: Record<string, unknown>): { inputs: Record<string, unknown>; failures: CheckFailure[] } {
  const failures: CheckFailure[] = [];
  const inputs = {
    ...news,
    installScript: news.installScript ?? undefined,
    generation: news.generation ?? "",
    bootstrap: news.bootstrap ?? false,
    servers: news.servers ?? [],
    labels: news.labels ?? {},
    taints: news.taints ?? [],
  };
  if (inputs.installScript === undefined) delete (inputs as Record<string, unknown>).installScript;
  checkTarget(news.ssh, "ssh", failures);
  if (known(news.servers) && (!Array.isArray(news.servers) || news.servers.length === 0))
    failures.push({ property: "servers", reason: "the list of the fleet's servers is required (joins go through a live one)" });
  else if (Array.isArray(news.servers))
    news.servers.forEach((r: Record<string, unknown>, i: number) => {
      if (known(r) && (!r || typeof r.node !== "string" || typeof r.address !== "string"))
        failures.push({ property: `servers[${i}]`, reason: "needs node, address and ssh" });
      else if (r) checkTarget(r.ssh, `servers[${i}].ssh`, failures);
    });
  if (known(news.token) && (typeof news.token !== "string" || news.token.length < 16))
    failures.push({ property: "token", reason: "the cluster token must be a string of at least 16 characters" });
  if (known(news.role) && news.role !== "server" && news.role !== "agent")
    failures.push({ property: "role", reason: `role must be "server" or "agent", got ${JSON.stringify(news.role)}` });
  if (known(inputs)) {
    for (const p of checkJoinSpec(inputs as unknown as NodeJoinSpec)) failures.push({ property: "", reason: p });
  }
  return { inputs, failures };
}

export function checkKubeconfig(news: Record<string, unknown>): { inputs: Record<string, unknown>; failures: CheckFailure[] } {
  const failures: CheckFailure[] = [];
  if (known(news.servers) && (!Array.isArray(news.servers) || news.servers.length === 0))
    failures.push({ property: "servers", reason: "the list of the cluster's servers is required (the kubeconfig is read from one that answers)" });
  else if (Array.isArray(news.servers))
    news.servers.forEach((r: Record<string, unknown>, i: number) => {
      if (isUnknown(r)) return;
      if (!r || typeof r !== "object" || !r.node || !r.ssh) failures.push({ property: `servers[${i}]`, reason: "needs node, address and ssh" });
      else checkTarget(r.ssh, `servers[${i}].ssh`, failures);
    });
  if (known(news.server) && !/^https:\/\/[^/\s]+:\d+$/.test(String(news.server)))
    failures.push({ property: "server", reason: "must be https://<address>:<port>" });
  if (known(news.clusterName) && !isRfc1123Label(String(news.clusterName))) failures.push({ property: "clusterName", reason: "must be an RFC 1123 label" });
  return { inputs: { ...news, cluster: news.cluster ?? "" }, failures };
}

/** Keys whose change means a different join: the resource is replaced (delete first). */
export const NODE_REPLACE_KEYS = ["hostname", "token"] as const;
/**
 * Keys whose change makes the update rejoin the node: remove the old join (in its old role), then join
 * again (in the new role); the recorded cluster is kept. One update does both in that order, so the
 * old role's removal can never delete the new member.
 */
export const NODE_REJOIN_KEYS = ["generation", "role"] as const;
const NODE_UPDATE_KEYS = [
  "node",
  "ssh",
  "servers",
  "generation",
  "role",
  "privateKey",
  "config",
  "labels",
  "taints",
  "joinTimeoutSeconds",
  "drainTimeoutSeconds",
  "installScript",
  "dataDisks",
  "image",
] as const;

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
  stables?: string[];
}

export function diffNode(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  const replaces: string[] = NODE_REPLACE_KEYS.filter((k) => !same(olds[k], news[k]));
  const updates: string[] = NODE_UPDATE_KEYS.filter((k) => !same(olds[k], news[k]));
  // a refresh found the node not Ready or not an etcd member: the update rejoins it (needsRejoin)
  if (driftFound(olds)) updates.push("readiness");
  return { changes: replaces.length + updates.length > 0, replaces: [...replaces], deleteBeforeReplace: true };
}

/**
 * What the kubeconfig contains: a change re-reads it (an update). The servers it is read from and the SSH
 * key are not compared: a re-flashed or added server, a rejoined agent or a new host key leave it (and the
 * Kubernetes provider built from it) unchanged, where re-reading would make it unknown at preview and
 * plan every workload on it for replacement. They are recorded at the next re-read.
 */
export const KUBECONFIG_CONTENT_KEYS = ["server", "clusterName", "cluster"] as const;

export function diffKubeconfig(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  const changed = KUBECONFIG_CONTENT_KEYS.filter((k) => !same(olds[k] ?? "", news[k] ?? ""));
  return { changes: changed.length > 0, replaces: [], deleteBeforeReplace: false };
}

// ------------------------------------------------------------------ node create / update / read / delete

function specOf(i: K3sNodeInputs): NodeJoinSpec {
  return {
    node: i.node,
    hostname: i.hostname,
    role: i.role,
    config: i.config,
    labels: i.labels ?? {},
    taints: i.taints ?? [],
    joinTimeoutSeconds: i.joinTimeoutSeconds,
    drainTimeoutSeconds: i.drainTimeoutSeconds,
    installScript: i.installScript,
    dataDisks: i.dataDisks ?? [],
  };
}

function sameTarget(a: SshEndpoint, b: SshEndpoint): boolean {
  return a.address === b.address && a.port === b.port && a.user === b.user;
}

/**
 * SSH connections of one operation: the node, and the configured servers opened lazily (each at most
 * once); all closed by `close()`.
 */
class Shells {
  private readonly opened = new Map<string, Promise<RootShell | { unreachable: string }>>();
  constructor(
    private readonly connect: Connect,
    private readonly key: string | undefined,
  ) {}
  open(t: SshEndpoint, what: string, retryForMs: number): Promise<RootShell | { unreachable: string }> {
    const k = `${t.user}@${t.address}:${t.port}`;
    let p = this.opened.get(k);
    if (!p) {
      p = this.connect(t, this.key, { retryForMs, what }).then(
        (h) => new RootShell(h),
        (e: Error) => ({ unreachable: e.message.split("\n")[0] }),
      );
      this.opened.set(k, p);
    }
    return p;
  }
  async required(t: SshEndpoint, what: string, retryForMs: number): Promise<RootShell> {
    const s = await this.open(t, what, retryForMs);
    if (s instanceof RootShell) return s;
    this.opened.delete(`${t.user}@${t.address}:${t.port}`);
    return new RootShell(await this.connect(t, this.key, { retryForMs: 0, what }));
  }
  async close(): Promise<void> {
    const all = await Promise.all(this.opened.values());
    await Promise.all(all.map((s) => (s instanceof RootShell ? s.host.close().catch(() => undefined) : undefined)));
  }
}

/** The configured servers other than the node itself, as join peers (opened on demand). */
function peersOf(i: K3sNodeInputs, shells: Shells, retryForMs: number): Peer[] {
  return (i.servers ?? [])
    .filter((r) => !sameTarget(r.ssh, i.ssh))
    .map((r) => ({ node: r.node, address: r.address, open: () => shells.open(r.ssh, `server ${r.node} (for ${i.node})`, retryForMs) }));
}

/** The first configured server (the node itself first when it is a server) whose API answers; else why none does. */
async function liveServer(
  i: K3sNodeInputs,
  shells: Shells,
  node: RootShell | undefined,
  retryForMs: number,
  others = false,
): Promise<RootShell | { unreachable: string }> {
  const seen: string[] = [];
  const self: Peer[] = !others && node && i.role === "server" ? [{ node: i.node, address: i.ssh.address, open: async () => node }] : [];
  for (const p of [...self, ...peersOf(i, shells, retryForMs)]) {
    const probe = await probePeer(p);
    if (probe.state === "live" && probe.shell) return probe.shell;
    seen.push(`${p.node}: ${probe.detail}`);
  }
  return { unreachable: `no ${others ? "other " : ""}server answers as a live member (${seen.join("; ") || "no other server is configured"})` };
}

function scrub(e: unknown, secrets: (string | undefined)[]): Error {
  if (e instanceof K3sError) return e;
  return new K3sError((e as Error)?.message ?? String(e), secrets);
}

/** The cluster identity this node's state recorded: "" (never joined), the id, or UNKNOWN_CLUSTER (joined before ids were recorded). */
export function recordedCluster(olds: Partial<K3sNodeOutputs> | undefined): string {
  if (!olds?.joinId) return "";
  return olds.clusterId || UNKNOWN_CLUSTER;
}

async function join(i: K3sNodeInputs, deps: Deps, recorded: string): Promise<K3sNodeOutputs> {
  const joinId = crypto.randomUUID();
  const shells = new Shells(deps.connect ?? sshConnect, i.privateKey);
  try {
    const node = await shells.required(i.ssh, `k3s ${i.role} ${i.node}`, 120_000);
    const r = await joinNode(
      { node, peers: peersOf(i, shells, deps.peerRetryMs ?? 10_000), log: deps.log, pollMs: deps.pollMs, secrets: i.privateKey ? [i.privateKey] : [] },
      specOf(i),
      i.token,
      joinId,
      { bootstrap: i.bootstrap, recordedCluster: recorded },
    );
    return { ...i, joinId, joinedAt: r.joinedAt, dataDiskStatus: r.dataDiskStatus, clusterId: r.clusterId, joinedVia: r.joinedVia, readiness: "Ready" };
  } finally {
    await shells.close();
  }
}

/**
 * Before a rejoin removes anything: the node must be able to join again (a live member of the recorded
 * cluster, or nothing that says a cluster exists, see chooseJoin); otherwise refuse with the reason,
 * leaving the node and its old join as they are.
 */
async function rejoinPreflight(i: K3sNodeInputs, deps: Deps, recorded: string): Promise<void> {
  const shells = new Shells(deps.connect ?? sshConnect, i.privateKey);
  try {
    const { decision } = await decideJoin(peersOf(i, shells, deps.peerRetryMs ?? 10_000), {
      node: i.node,
      role: i.role,
      bootstrap: i.bootstrap,
      recordedCluster: recorded,
    });
    if (decision.kind === "refuse")
      throw new K3sError(`k3s ${i.role} ${i.node}: cannot rejoin, nothing was changed: ${decision.reason}`, [i.token, i.privateKey]);
  } finally {
    await shells.close();
  }
}

export async function createNode(i: K3sNodeInputs, deps: Deps = {}): Promise<K3sNodeOutputs> {
  try {
    return await join(i, deps, "");
  } catch (e) {
    throw scrub(e, [i.token, i.privateKey]);
  }
}

/** True when the update must rejoin the node (a new image: the old join is gone with it). */
export function needsRejoin(olds: Record<string, unknown>, news: Record<string, unknown>): boolean {
  return NODE_REJOIN_KEYS.some((k) => !same(olds[k], news[k])) || driftFound(olds);
}

/** The last refresh found the node not Ready or not an etcd member (readNode's `readiness`). */
export function driftFound(olds: Record<string, unknown>): boolean {
  return typeof olds.readiness === "string" && olds.readiness !== "Ready";
}

export async function updateNodeResource(olds: K3sNodeOutputs, news: K3sNodeInputs, deps: Deps = {}): Promise<K3sNodeOutputs> {
  const secrets = [news.token, news.privateKey, olds.token];
  try {
    if (needsRejoin(olds as unknown as Record<string, unknown>, news as unknown as Record<string, unknown>)) {
      const why =
        olds.role !== news.role
          ? `role ${olds.role} -> ${news.role}`
          : olds.generation === news.generation && olds.readiness
            ? `refresh found it ${olds.readiness}`
            : `new generation (${olds.generation || "none"} -> ${news.generation})`;
      deps.log?.(`${news.node}: ${why}: removing the old join (as ${olds.role}), then joining the cluster as ${news.role}`);
      await rejoinPreflight(news, deps, recordedCluster(olds));
      await deleteNode({ ...olds, servers: news.servers, ssh: news.ssh, privateKey: news.privateKey }, deps);
      return await join(news, deps, recordedCluster(olds));
    }
    const shells = new Shells(deps.connect ?? sshConnect, news.privateKey);
    try {
      const node = await shells.required(news.ssh, `k3s ${news.role} ${news.node}`, 120_000);
      const api = await liveServer(news, shells, node, deps.peerRetryMs ?? 10_000);
      if (!(api instanceof RootShell)) throw new K3sError(`k3s ${news.role} ${news.node}: cannot update: ${api.unreachable}`, secrets);
      const ctx = { node, api, log: deps.log, pollMs: deps.pollMs, secrets: news.privateKey ? [news.privateKey] : [] };
      let before = specOf(olds);
      // an OS update of a node whose k3s state is persistent: the same member comes back (no rejoin);
      // it writes the new config and restarts k3s, so the update below only reconciles labels and taints
      if (news.image && (olds.image ?? "") !== news.image) {
        await resumeNode(ctx, specOf(news), news.token, olds.joinId, news.image);
        before = { ...before, config: news.config, installScript: news.installScript };
      }
      await updateNode(ctx, before, specOf(news), news.token, olds.joinId);
      const dataDiskStatus = await dataDiskReport({ node, log: deps.log }, specOf(news));
      const clusterId = olds.clusterId || (await clusterIdOf(api).catch(() => undefined));
      return { ...news, joinId: olds.joinId, joinedAt: olds.joinedAt, joinedVia: olds.joinedVia, clusterId, dataDiskStatus, readiness: "Ready" };
    } finally {
      await shells.close();
    }
  } catch (e) {
    throw scrub(e, secrets);
  }
}

/**
 * Refresh. The cluster is asked first, through the first server, whether or not the node answers:
 * - no Node any more: undefined (dropped from state, so the next `up` rejoins);
 * - Node not Ready, or (servers) no etcd member of it: `readiness` records why (refresh shows an update;
 *   the next diff replaces the resource: the node rejoins);
 * - otherwise `readiness` "Ready".
 * Then the node itself: a node that no longer carries this join's marker (re-flashed outside Pulumi) is
 * dropped from state; managed labels and taints are read back as observed (drift shows up as an update).
 * A first server that cannot be reached leaves the state unchanged (nothing can be judged), with a warning.
 */
export async function readNode(props: K3sNodeOutputs, deps: Deps = {}): Promise<K3sNodeOutputs | undefined> {
  const log = deps.log ?? (() => undefined);
  const secrets = [props.token, props.privateKey];
  const first = (e: unknown) => redact((e as Error).message.split("\n")[0], secrets);
  const shells = new Shells(deps.connect ?? sshConnect, props.privateKey);
  try {
    // the cluster first, through another server: a node that is off is still seen (NotReady)
    let api = await liveServer(props, shells, undefined, 5_000, true);
    const node = await shells.open(props.ssh, `k3s ${props.role} ${props.node}`, 20_000);
    if (!(api instanceof RootShell) && node instanceof RootShell) api = await liveServer(props, shells, node, 5_000);
    if (!(api instanceof RootShell)) {
      log(`warning: refresh of ${props.node}: ${api.unreachable}; keeping the recorded state`);
      return props;
    }
    const n = await getNode(api, props.hostname);
    if (!n) {
      log(`${props.hostname}: no Node in the cluster any more; it will rejoin on the next up`);
      return undefined;
    }
    let readiness = n.ready ? "Ready" : `not Ready: ${n.readyDetail}`;
    if (props.role === "server" && n.ready) {
      const view = await readClusterView(api, {}).catch((e) => {
        log(`warning: refresh of ${props.node}: cannot read etcd membership (${first(e)})`);
        return undefined;
      });
      if (view && !memberOf(view, props.hostname)) readiness = "not an etcd member";
    }
    if (readiness !== "Ready") log(`${props.node}: ${readiness}; the next up rejoins it`);
    if (!(node instanceof RootShell)) {
      log(`warning: refresh of ${props.node} could not reach the node (${node.unreachable})`);
      return { ...props, readiness };
    }
    const marker = await readMarker(node);
    if (marker !== props.joinId) {
      log(`${props.node}: the node no longer carries this join's marker (re-flashed?); it will rejoin on the next up`);
      return undefined;
    }
    const labels: Record<string, string> = {};
    for (const k of Object.keys(props.labels ?? {})) if (k in n.labels) labels[k] = n.labels[k];
    const managed = new Set((props.taints ?? []).map((t) => `${t.key}:${t.effect}`));
    const taints = n.taints.filter((t) => managed.has(`${t.key}:${t.effect}`));
    return { ...props, labels, taints, readiness, dataDiskStatus: await dataDiskReport({ node, log }, specOf(props)) };
  } catch (e) {
    log(`warning: refresh of ${props.node} failed (${first(e)}); keeping the recorded state`);
    return props;
  } finally {
    await shells.close();
  }
}

export async function deleteNode(props: K3sNodeOutputs, deps: Deps = {}): Promise<RemoveResult> {
  const secrets = [props.token, props.privateKey];
  const gone = deps.goneAfterMs ?? 15_000;
  const shells = new Shells(deps.connect ?? sshConnect, props.privateKey);
  try {
    const node = await shells.open(props.ssh, `k3s ${props.role} ${props.node}`, gone);
    const api = await liveServer(props, shells, undefined, gone, true);
    if (props.role === "server" && api instanceof RootShell) await refuseUnsafeRemoval(api, props, deps.log);
    return await removeNode({ node, api, log: deps.log, secrets: secrets.filter((s): s is string => !!s) }, specOf(props), props.joinId);
  } catch (e) {
    throw scrub(e, secrets);
  } finally {
    await shells.close();
  }
}

/**
 * Before a server that is still a member is removed (its Node deleted, so k3s removes its etcd member):
 * the remaining servers must keep quorum and be Ready (./health.ts assessLeave), else a K3sError.
 * A server whose Node is gone already (it left before a re-flash) passes.
 */
async function refuseUnsafeRemoval(api: RootShell, props: K3sNodeOutputs, log?: (m: string) => void): Promise<void> {
  const view = await readClusterView(api, {});
  if (!view.nodes.some((n) => n.name === props.hostname)) return;
  const a = assessLeave(view, props.hostname);
  if (a.problems.length) throw new K3sError(refusal({ node: props.node, hostname: props.hostname, why: "removal" }, a.problems, api.label));
  if (props.snapshotDir) log?.(`${props.node}: etcd snapshot saved to ${await snapshotToDeployer(api, props.node, props.snapshotDir)} before its removal`);
}

// ------------------------------------------------------------------ kubeconfig

/**
 * Read the admin kubeconfig from the first of `servers` that answers (they all hand out the same CA and
 * admin credentials), trying them in turn for up to `retryForMs` in all.
 */
export async function createKubeconfig(i: K3sKubeconfigInputs, deps: Deps = {}, retryForMs = 120_000): Promise<K3sKubeconfigOutputs> {
  const connect = deps.connect ?? sshConnect;
  if (i.servers.length === 0) throw new Error("kubeconfig: no server to read it from");
  const deadline = Date.now() + retryForMs;
  const failures = new Map<string, string>();
  for (let round = 0; ; round++) {
    for (const r of i.servers) {
      let host: Host | undefined;
      try {
        const left = Math.max(1_000, deadline - Date.now());
        host = await connect(r.ssh, i.privateKey, { retryForMs: Math.min(left, 10_000 * (round + 1)), what: `server ${r.node} (kubeconfig)` });
        const kubeconfig = await fetchKubeconfig(new RootShell(host), i.server, i.clusterName);
        return { ...i, kubeconfig };
      } catch (e) {
        failures.set(`${r.node} (${endpointLabel(r.ssh)})`, redact((e as Error).message.split("\n")[0], [i.privateKey]));
      } finally {
        await host?.close().catch(() => undefined);
      }
    }
    if (Date.now() >= deadline) break;
  }
  throw new Error(
    `kubeconfig: no server could be read (${[...failures].map(([k, v]) => `${k}: ${v}`).join("; ")}); check that a k3s server runs and is reachable over SSH`,
  );
}

/** Refresh: the kubeconfig as the recorded servers hand it out now; the recorded one when none answers. */
export async function readKubeconfig(props: K3sKubeconfigOutputs, deps: Deps = {}): Promise<K3sKubeconfigOutputs> {
  try {
    return { ...props, ...(await createKubeconfig(props, deps, 20_000)) };
  } catch (e) {
    (deps.log ?? (() => undefined))(`warning: cannot re-read the kubeconfig (${(e as Error).message.split("\n")[0]}); keeping the recorded one`);
    return props;
  }
}
