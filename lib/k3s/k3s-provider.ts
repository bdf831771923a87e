/**
 * The decisions behind the `K3sServer`, `K3sAgent` and `K3sKubeconfig` dynamic resources
 * (providers/k3s.ts is a thin adapter over this file): input checks, diff (what replaces, what
 * updates in place), and create / update / read / delete over SSH with ./join.ts doing the work.
 *
 * Contract:
 * - Node resources are replaced (delete first, then create: it is the same machine) when the node's
 *   identity changes: role, hostname, first-server flag, cluster token, or `generation` (the delivery's
 *   image id: a new image means a re-flashed node that must rejoin). Everything else (config, labels,
 *   taints, endpoints, timeouts) updates in place; labels and taints never cause a rejoin.
 * - Outputs are the inputs plus `joinId` / `joinedAt` (node) or `kubeconfig` (kubeconfig resource).
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
  getNode,
  K3sError,
  NodeJoinSpec,
  joinNode,
  readMarker,
  redact,
  removeNode,
  RemoveResult,
  RootShell,
  updateNode,
  checkJoinSpec,
} from "./join";

/** The value Pulumi hands a dynamic provider for an input that is not known yet (preview). */
/** Pulumi's preview "unknown" marker (one definition: lib/unknown.ts). */
export { UNKNOWN };

export type NodeResourceType = "K3sServer" | "K3sAgent";

/** The join spec (./join.ts NodeJoinSpec) plus how to reach the node and the cluster. */
export interface K3sNodeInputs extends NodeJoinSpec {
  resourceType: NodeResourceType;
  /** SSH endpoint of the node. */
  ssh: SshEndpoint;
  /** SSH endpoint of the first server (kubectl runs there). */
  apiSsh: SshEndpoint;
  /** SSH private key (secret); absent = ssh-agent. */
  privateKey?: string;
  /** Cluster token (secret). */
  token: string;
  /** Changes when the node was re-flashed / re-imaged (e.g. the delivered image's digest): replaces. */
  generation: string;
  /** Identity of the cluster joined: the first server's join id ("" for the first server). A change (the first server was rebuilt) replaces: the node rejoins the new cluster. */
  cluster: string;
}

export interface K3sNodeOutputs extends K3sNodeInputs {
  joinId: string;
  joinedAt: string;
  /** One line per data disk, as of the last join, update or refresh: mounted, or MISSING with the fix. */
  dataDiskStatus?: string[];
}

export interface K3sKubeconfigInputs {
  resourceType: "K3sKubeconfig";
  apiSsh: SshEndpoint;
  privateKey?: string;
  /** Server URL written into the kubeconfig (https://<first server>:6443). */
  server: string;
  /** Name of cluster, user and context. */
  clusterName: string;
  /** Join ids of the nodes this kubeconfig belongs to (re-read when they change). */
  members: string[];
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
    cluster: news.cluster ?? "",
    labels: news.labels ?? {},
    taints: news.taints ?? [],
  };
  if (inputs.installScript === undefined) delete (inputs as Record<string, unknown>).installScript;
  checkTarget(news.ssh, "ssh", failures);
  checkTarget(news.apiSsh, "apiSsh", failures);
  if (known(news.token) && (typeof news.token !== "string" || news.token.length < 16))
    failures.push({ property: "token", reason: "the cluster token must be a string of at least 16 characters" });
  const expectRole = news.resourceType === "K3sServer" ? "server" : "agent";
  if (news.role !== expectRole) failures.push({ property: "role", reason: `${String(news.resourceType)} needs role ${expectRole}` });
  if (known(inputs)) {
    for (const p of checkJoinSpec(inputs as unknown as NodeJoinSpec)) failures.push({ property: "", reason: p });
  }
  return { inputs, failures };
}

export function checkKubeconfig(news: Record<string, unknown>): { inputs: Record<string, unknown>; failures: CheckFailure[] } {
  const failures: CheckFailure[] = [];
  checkTarget(news.apiSsh, "apiSsh", failures);
  if (known(news.server) && !/^https:\/\/[^/\s]+:\d+$/.test(String(news.server)))
    failures.push({ property: "server", reason: "must be https://<address>:<port>" });
  if (known(news.clusterName) && !isRfc1123Label(String(news.clusterName))) failures.push({ property: "clusterName", reason: "must be an RFC 1123 label" });
  return { inputs: { ...news, members: news.members ?? [] }, failures };
}

/** Keys whose change means a different join: the resource is replaced (delete first). */
export const NODE_REPLACE_KEYS = ["resourceType", "hostname", "role", "firstServer", "token", "generation", "cluster"] as const;
const NODE_UPDATE_KEYS = [
  "node",
  "ssh",
  "apiSsh",
  "privateKey",
  "config",
  "labels",
  "taints",
  "joinTimeoutSeconds",
  "drainTimeoutSeconds",
  "installScript",
  "dataDisks",
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
  const replaces = NODE_REPLACE_KEYS.filter((k) => !same(olds[k], news[k]));
  const updates = NODE_UPDATE_KEYS.filter((k) => !same(olds[k], news[k]));
  return { changes: replaces.length + updates.length > 0, replaces: [...replaces], deleteBeforeReplace: true };
}

export function diffKubeconfig(olds: Record<string, unknown>, news: Record<string, unknown>): DiffResult {
  const keys = ["apiSsh", "privateKey", "server", "clusterName", "members"];
  return { changes: keys.some((k) => !same(olds[k], news[k])), replaces: [], deleteBeforeReplace: false };
}

// ------------------------------------------------------------------ node create / update / read / delete

function specOf(i: K3sNodeInputs): NodeJoinSpec {
  return {
    node: i.node,
    hostname: i.hostname,
    role: i.role,
    firstServer: i.firstServer,
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

/** Connect to the node and the first server (one connection when they are the same), run `fn`, close. */
async function withShells<T>(i: K3sNodeInputs, deps: Deps, retryForMs: number, fn: (node: RootShell, api: RootShell) => Promise<T>): Promise<T> {
  const connect = deps.connect ?? sshConnect;
  const hosts: Host[] = [];
  try {
    const nodeHost = await connect(i.ssh, i.privateKey, { retryForMs, what: `k3s ${i.role} ${i.node}` });
    hosts.push(nodeHost);
    const node = new RootShell(nodeHost);
    let api = node;
    if (!sameTarget(i.ssh, i.apiSsh)) {
      const apiHost = await connect(i.apiSsh, i.privateKey, { retryForMs, what: `first server (for ${i.node})` });
      hosts.push(apiHost);
      api = new RootShell(apiHost);
    }
    return await fn(node, api);
  } finally {
    await Promise.all(hosts.map((h) => h.close().catch(() => undefined)));
  }
}

function scrub(e: unknown, secrets: (string | undefined)[]): Error {
  if (e instanceof K3sError) return e;
  return new K3sError((e as Error)?.message ?? String(e), secrets);
}

export async function createNode(i: K3sNodeInputs, deps: Deps = {}): Promise<K3sNodeOutputs> {
  const joinId = crypto.randomUUID();
  const secrets = [i.token, i.privateKey];
  try {
    const r = await withShells(i, deps, 120_000, (node, api) =>
      joinNode({ node, api, log: deps.log, pollMs: deps.pollMs, secrets: i.privateKey ? [i.privateKey] : [] }, specOf(i), i.token, joinId),
    );
    return { ...i, joinId, joinedAt: r.joinedAt, dataDiskStatus: r.dataDiskStatus };
  } catch (e) {
    throw scrub(e, secrets);
  }
}

export async function updateNodeResource(olds: K3sNodeOutputs, news: K3sNodeInputs, deps: Deps = {}): Promise<K3sNodeOutputs> {
  const secrets = [news.token, news.privateKey, olds.token];
  try {
    const dataDiskStatus = await withShells(news, deps, 120_000, async (node, api) => {
      await updateNode(
        { node, api, log: deps.log, pollMs: deps.pollMs, secrets: news.privateKey ? [news.privateKey] : [] },
        specOf(olds),
        specOf(news),
        news.token,
        olds.joinId,
      );
      return dataDiskReport({ node, log: deps.log }, specOf(news));
    });
    return { ...news, joinId: olds.joinId, joinedAt: olds.joinedAt, dataDiskStatus };
  } catch (e) {
    throw scrub(e, secrets);
  }
}

/**
 * Refresh: undefined (drop from state, so the next `up` rejoins) when the Node is gone from the
 * cluster or the node no longer carries this join's marker (re-flashed outside Pulumi). Otherwise the
 * props, with managed labels and taints as observed (drift shows up as an update). Unreachable
 * machines leave the props unchanged.
 */
export async function readNode(props: K3sNodeOutputs, deps: Deps = {}): Promise<K3sNodeOutputs | undefined> {
  const log = deps.log ?? (() => undefined);
  try {
    return await withShells(props, deps, 20_000, async (node, api) => {
      const n = await getNode(api, props.hostname);
      if (!n) {
        log(`${props.hostname}: no Node in the cluster any more; it will rejoin on the next up`);
        return undefined;
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
      return { ...props, labels, taints, dataDiskStatus: await dataDiskReport({ node, log }, specOf(props)) };
    });
  } catch (e) {
    log(
      `warning: refresh of ${props.node} could not reach it (${redact((e as Error).message.split("\n")[0], [props.token, props.privateKey])}); keeping the recorded state`,
    );
    return props;
  }
}

async function tryConnect(
  connect: Connect,
  t: SshEndpoint,
  key: string | undefined,
  what: string,
  retryForMs: number,
): Promise<RootShell | { unreachable: string }> {
  try {
    return new RootShell(await connect(t, key, { retryForMs, what }));
  } catch (e) {
    return { unreachable: (e as Error).message.split("\n")[0] };
  }
}

export async function deleteNode(props: K3sNodeOutputs, deps: Deps = {}): Promise<RemoveResult> {
  const connect = deps.connect ?? sshConnect;
  const secrets = [props.token, props.privateKey];
  const gone = deps.goneAfterMs ?? 15_000;
  const node = await tryConnect(connect, props.ssh, props.privateKey, `k3s ${props.role} ${props.node}`, gone);
  const api =
    props.firstServer || sameTarget(props.ssh, props.apiSsh)
      ? node
      : await tryConnect(connect, props.apiSsh, props.privateKey, `first server (for ${props.node})`, gone);
  try {
    return await removeNode({ node, api, log: deps.log, secrets: secrets.filter((s): s is string => !!s) }, specOf(props), props.joinId);
  } catch (e) {
    throw scrub(e, secrets);
  } finally {
    for (const s of new Set([node, api])) if (s instanceof RootShell) await s.host.close().catch(() => undefined);
  }
}

// ------------------------------------------------------------------ kubeconfig

export async function createKubeconfig(i: K3sKubeconfigInputs, deps: Deps = {}): Promise<K3sKubeconfigOutputs> {
  const connect = deps.connect ?? sshConnect;
  let host: Host | undefined;
  try {
    host = await connect(i.apiSsh, i.privateKey, { retryForMs: 120_000, what: "first server (kubeconfig)" });
    const kubeconfig = await fetchKubeconfig(new RootShell(host), i.server, i.clusterName);
    return { ...i, kubeconfig };
  } catch (e) {
    throw scrub(e, [i.privateKey]);
  } finally {
    await host?.close().catch(() => undefined);
  }
}

export async function readKubeconfig(props: K3sKubeconfigOutputs, deps: Deps = {}): Promise<K3sKubeconfigOutputs> {
  try {
    return await createKubeconfig(props, deps);
  } catch (e) {
    (deps.log ?? (() => undefined))(`warning: cannot re-read the kubeconfig (${(e as Error).message.split("\n")[0]}); keeping the recorded one`);
    return props;
  }
}
