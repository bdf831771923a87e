/**
 * The cluster's health as a live server sees it, and the decision whether one server may leave.
 *
 * What is read (`readClusterView`, through one live server over the Host interface, as root):
 * - every Node (`k3s kubectl get nodes -o json`): its Ready condition, whether it is a server
 *   (`node-role.kubernetes.io/etcd` or `control-plane` = "true", labels k3s sets on server Nodes), and
 *   its etcd member name (annotation `etcd.k3s.cattle.io/node-name`, which k3s sets on server Nodes);
 * - the etcd members, from the live server's own etcd (the v3 JSON gateway `POST /v3/cluster/member/list`
 *   over the client port with k3s's etcd client certificate, /var/lib/rancher/k3s/server/tls/etcd), and
 *   each member's `/health` on its own client URL. curl does the HTTPS (k3s ships no etcdctl).
 *
 * The decision (`leaveProblems`, pure): a server may leave when, after it is gone, the remaining
 * voting members keep quorum (healthy >= floor(n/2) + 1), every remaining voting member is healthy,
 * every remaining server Node is Ready, and no learner is being promoted (a join in progress). The
 * problems come back as sentences naming the node and what is missing; empty = may leave.
 */
import type { RootShell } from "./join";
import { tailLines } from "../transport/host";

/** k3s's etcd client certificate and CA on a server (k3s pkg/daemons/control/deps). */
export const ETCD_TLS_DIR = "/var/lib/rancher/k3s/server/tls/etcd";
const ETCD_CA = `${ETCD_TLS_DIR}/server-ca.crt`;
const ETCD_CERT = `${ETCD_TLS_DIR}/client.crt`;
const ETCD_KEY = `${ETCD_TLS_DIR}/client.key`;
/** Annotation k3s sets on a server's Node: the etcd member's name. */
export const ETCD_NAME_ANNOTATION = "etcd.k3s.cattle.io/node-name";
/** Annotation k3s sets on a server's Node: the address its etcd listens on. */
export const ETCD_ADDRESS_ANNOTATION = "etcd.k3s.cattle.io/node-address";

export interface EtcdMember {
  /** Member id (decimal, as the JSON gateway prints uint64). */
  id: string;
  name: string;
  clientUrls: string[];
  learner: boolean;
}

export interface MemberHealth extends EtcdMember {
  healthy: boolean;
  /** Why not healthy (or "ok"). */
  detail: string;
}

export interface ClusterNode {
  name: string;
  ready: boolean;
  readyDetail: string;
  server: boolean;
  /** The etcd member name (servers; from the k3s annotation). */
  etcdMember?: string;
  /** The address its etcd listens on (servers; from the k3s annotation). */
  etcdAddress?: string;
}

export interface ClusterView {
  /** The server the view was read through (label). */
  via: string;
  nodes: ClusterNode[];
  members: MemberHealth[];
}

/** Majority of `n` voting members. */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Parse `kubectl get nodes -o json`. */
export function parseNodeList(text: string): ClusterNode[] {
  let doc: { kind?: string; items?: unknown[] };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`kubectl get nodes -o json did not print JSON (${(e as Error).message})`, { cause: e });
  }
  if (!doc || !Array.isArray(doc.items)) throw new Error(`kubectl get nodes -o json printed no item list (kind ${JSON.stringify(doc?.kind)})`);
  return doc.items.map((raw) => {
    const n = raw as {
      metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
      status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
    };
    const labels = n.metadata?.labels ?? {};
    const ann = n.metadata?.annotations ?? {};
    const ready = (n.status?.conditions ?? []).find((c) => c.type === "Ready");
    return {
      name: String(n.metadata?.name ?? ""),
      ready: ready?.status === "True",
      readyDetail: ready
        ? `Ready=${ready.status}${ready.reason ? ` (${ready.reason}${ready.message ? `: ${ready.message}` : ""})` : ""}`
        : "no Ready condition",
      server: labels["node-role.kubernetes.io/etcd"] === "true" || labels["node-role.kubernetes.io/control-plane"] === "true",
      ...(ann[ETCD_NAME_ANNOTATION] ? { etcdMember: ann[ETCD_NAME_ANNOTATION] } : {}),
      ...(ann[ETCD_ADDRESS_ANNOTATION] ? { etcdAddress: ann[ETCD_ADDRESS_ANNOTATION] } : {}),
    };
  });
}

/** Parse the JSON gateway's `/v3/cluster/member/list` answer. */
export function parseMemberList(text: string): EtcdMember[] {
  let doc: { members?: unknown[]; error?: string; message?: string };
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`etcd member list is not JSON (${(e as Error).message}): ${JSON.stringify(text.slice(0, 120))}`, { cause: e });
  }
  if (!doc || !Array.isArray(doc.members))
    throw new Error(`etcd member list has no members: ${JSON.stringify(doc?.message ?? doc?.error ?? text.slice(0, 120))}`);
  return doc.members.map((raw) => {
    const m = raw as { ID?: string | number; name?: string; clientURLs?: string[]; isLearner?: boolean };
    return { id: String(m.ID ?? ""), name: String(m.name ?? ""), clientUrls: m.clientURLs ?? [], learner: m.isLearner === true };
  });
}

/** The argv of one HTTPS request to etcd with k3s's client certificate (curl; bounded). */
export function etcdCurlArgv(url: string, post?: string): string[] {
  return [
    "curl",
    "-sS",
    "--max-time",
    "8",
    "--cacert",
    ETCD_CA,
    "--cert",
    ETCD_CERT,
    "--key",
    ETCD_KEY,
    ...(post !== undefined ? ["-X", "POST", "-H", "Content-Type: application/json", "-d", post] : []),
    url,
  ];
}

/**
 * Read the cluster through `server` (a live server, named by its Node's name or by the address its etcd
 * listens on; unnamed, the etcd of any Ready server is asked). Throws when the API or the server's own etcd cannot be read (then it is not a live server).
 */
export async function readClusterView(server: RootShell, self: { hostname?: string; address?: string }, timeoutMs = 30_000): Promise<ClusterView> {
  const r = await server.run(["k3s", "kubectl", "get", "nodes", "-o", "json"], { timeoutMs });
  if (r.code !== 0) throw new Error(`${server.label}: k3s kubectl get nodes failed: ${tailLines(r.stderr, 3)}`);
  const nodes = parseNodeList(r.stdout.toString("utf8"));
  // named: that server's etcd; unnamed ({}): any server's (every member lists the same members), Ready
  // ones first and the next one when a member does not answer (a Node can still say Ready for its grace
  // period after its board was re-flashed or powered off)
  const named = self.hostname !== undefined || self.address !== undefined;
  const candidates = named
    ? nodes.filter((n) => (self.hostname !== undefined && n.name === self.hostname) || (self.address !== undefined && n.etcdAddress === self.address))
    : nodes.filter((n) => n.server && n.etcdAddress).sort((a, b) => Number(b.ready) - Number(a.ready));
  if (!candidates.some((n) => n.etcdAddress))
    throw new Error(
      `${server.label}: no Node ${named ? (self.hostname ?? `with etcd address ${self.address}`) : "of a server"} carrying the ${ETCD_ADDRESS_ANNOTATION} annotation (not a k3s server with embedded etcd?)`,
    );
  let ml: Awaited<ReturnType<RootShell["run"]>> | undefined;
  const failures: string[] = [];
  for (const me of candidates.filter((n) => n.etcdAddress)) {
    const url = `https://${me.etcdAddress!.includes(":") ? `[${me.etcdAddress}]` : me.etcdAddress}:2379`;
    const r = await server.run(etcdCurlArgv(`${url}/v3/cluster/member/list`, "{}"), { timeoutMs });
    if (r.code === 0) {
      ml = r;
      break;
    }
    failures.push(`cannot list etcd members at ${url}: ${tailLines(r.stderr, 3) || tailLines(r.stdout, 3)}`);
  }
  if (!ml) throw new Error(`${server.label}: ${failures.join("; ")}`);
  const members = parseMemberList(ml.stdout.toString("utf8"));
  const health = await Promise.all(
    members.map(async (m): Promise<MemberHealth> => {
      if (m.learner) return { ...m, healthy: false, detail: "learner (not yet promoted)" };
      const u = m.clientUrls[0];
      if (!u) return { ...m, healthy: false, detail: "no client URL" };
      const h = await server.run(etcdCurlArgv(`${u.replace(/\/$/, "")}/health`), { timeoutMs });
      const out = h.stdout.toString("utf8").trim();
      if (h.code !== 0) return { ...m, healthy: false, detail: `unreachable at ${u}: ${tailLines(h.stderr, 1)}` };
      try {
        const j = JSON.parse(out) as { health?: string; reason?: string };
        return { ...m, healthy: j.health === "true", detail: j.health === "true" ? "ok" : `health ${j.health}${j.reason ? ` (${j.reason})` : ""}` };
      } catch {
        return { ...m, healthy: false, detail: `unexpected /health answer ${JSON.stringify(out.slice(0, 80))}` };
      }
    }),
  );
  return { via: server.label, nodes, members: health };
}

/** The etcd member of a Node: by k3s's annotation, else by k3s's member naming (`<hostname>-<8 hex>`). */
export function memberOf(view: Pick<ClusterView, "nodes" | "members">, hostname: string): EtcdMember | undefined {
  const ann = view.nodes.find((n) => n.name === hostname)?.etcdMember;
  return view.members.find((m) => (ann ? m.name === ann : new RegExp(`^${hostname.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-[0-9a-f]{8}$`).test(m.name)));
}

export interface LeaveAssessment {
  /** Empty when the server may leave. */
  problems: string[];
  /** The leaving server's etcd member, when it has one. */
  member?: EtcdMember;
  /** Voting members left after it leaves, and how many of them are healthy. */
  remainingVoters: number;
  healthyRemaining: number;
  /** No other server: leaving ends the cluster (there is no quorum to keep). */
  lastServer: boolean;
}

/** May the server `hostname` leave the cluster seen in `view`? (see the file comment) */
export function assessLeave(view: Pick<ClusterView, "nodes" | "members">, hostname: string): LeaveAssessment {
  const problems: string[] = [];
  const member = memberOf(view, hostname);
  const remaining = view.members.filter((m) => m.id !== member?.id);
  const voters = remaining.filter((m) => !m.learner);
  const healthy = voters.filter((m) => m.healthy);
  const otherServers = view.nodes.filter((n) => n.server && n.name !== hostname);
  const lastServer = voters.length === 0 && otherServers.length === 0;
  const nodeOfMember = (m: EtcdMember) => view.nodes.find((n) => n.etcdMember === m.name)?.name;
  for (const m of remaining.filter((x) => x.learner))
    problems.push(`etcd member ${m.name} is a learner (a server join is in progress): wait until it is promoted`);
  for (const m of voters.filter((x) => !x.healthy)) {
    const n = nodeOfMember(m);
    problems.push(`etcd member ${m.name}${n ? ` (server ${n})` : ""} is not healthy: ${m.detail}`);
  }
  for (const n of otherServers.filter((x) => !x.ready)) problems.push(`server ${n.name} is not Ready (${n.readyDetail})`);
  if (!lastServer && healthy.length < quorumOf(voters.length))
    problems.push(
      `after ${hostname} leaves, ${healthy.length} of the ${voters.length} remaining etcd voting member(s) are healthy; quorum needs ${quorumOf(voters.length)}`,
    );
  return { problems, member, remainingVoters: voters.length, healthyRemaining: healthy.length, lastServer };
}
