/**
 * Taking one node out of the cluster before its board is touched (re-flash, re-image, removal), the
 * way k3s expects it: check, snapshot, drain, delete.
 *
 * `leaveCluster` runs, through a live server (never through the leaving node when another server answers):
 * 1. read the cluster (./health.ts readClusterView: Nodes, etcd members and their health);
 * 2. a node without a Node object is not in the cluster: nothing to do;
 * 3. for a server: refuse (K3sError naming the node and each missing piece) unless the remaining servers
 *    keep quorum and are Ready (./health.ts assessLeave); the last server may leave (the cluster ends
 *    with it: a warning);
 * 4. for a server: `k3s etcd-snapshot save` on the live server, copied to the deployer
 *    (`snapshotDir`, directory 0700, file 0600, checked by sha256 against the server's copy); never in state;
 * 5. cordon and drain (within `drainTimeoutSeconds`; a node that is not Ready is only cordoned: its
 *    pods cannot be evicted gracefully);
 * 6. when the node's k3s state will be wiped (`deleteNode`): delete the Node. k3s removes a server's
 *    etcd member when its Node is deleted (finalizer of k3s's etcd member controller), and the Node's
 *    node-password Secret goes with it; for a server this waits until the member is gone.
 * Nothing here touches the leaving node itself.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { setTimeout as sleep } from "timers/promises";
import { checkResult, tailLines } from "../transport/host";
import { assessLeave, ClusterView, readClusterView } from "./health";
import { K3sError, K3sRole, RootShell } from "./join";

export interface LeaveSpec {
  /** Fleet node name (messages). */
  node: string;
  /** Its Node's name. */
  hostname: string;
  role: K3sRole;
  /** Why it leaves, for messages: "re-flash", "re-image", "removal". */
  why: string;
  drainTimeoutSeconds: number;
  /** The node's k3s state will be wiped: delete its Node (and so its etcd member). */
  deleteNode: boolean;
  /** Directory on the deployer for the etcd snapshot (servers). */
  snapshotDir: string;
}

/** A server that may answer for the cluster: its name, Node name and shell, or why it cannot be reached. */
export interface ServerRoute {
  name: string;
  hostname: string;
  shell: RootShell | { unreachable: string };
}

export interface LeaveContext {
  /** The other servers, in the order to try them. */
  servers: ServerRoute[];
  log?: (msg: string) => void;
  pollMs?: number;
  secrets?: string[];
}

export interface LeaveResult {
  /** "not-in-cluster": no Node of that name (first delivery, or left already). */
  action: "not-in-cluster" | "left";
  /** Label of the server used. */
  via?: string;
  /** Local path of the etcd snapshot (servers). */
  snapshot?: string;
  drained: boolean;
  nodeDeleted: boolean;
  /** The etcd member removed (servers with deleteNode). */
  memberRemoved?: string;
  warnings: string[];
}

const KUBECTL = ["k3s", "kubectl"];

/** The first server that answers with a full view; the reasons the others did not. */
export async function liveView(
  servers: ServerRoute[],
  exclude: string,
  timeoutMs = 30_000,
): Promise<{ view?: ClusterView; route?: ServerRoute; failures: string[] }> {
  const failures: string[] = [];
  for (const s of servers) {
    if (s.hostname === exclude) continue;
    if ("unreachable" in s.shell) {
      failures.push(`${s.name}: ${s.shell.unreachable}`);
      continue;
    }
    try {
      return { view: await readClusterView(s.shell, { hostname: s.hostname }, timeoutMs), route: s, failures };
    } catch (e) {
      failures.push(`${s.name}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return { failures };
}

/** Save an etcd snapshot on `server` and copy it to `dir` (0700) as a 0600 file; returns the local path. */
export async function snapshotToDeployer(server: RootShell, node: string, dir: string, timeoutMs = 300_000): Promise<string> {
  const name = `isar-k3s-before-${node}`;
  const r = await server.run(["k3s", "etcd-snapshot", "save", "--name", name], { timeoutMs });
  const out = `${r.stdout.toString()}\n${r.stderr.toString()}`;
  if (r.code !== 0) throw new Error(`${server.label}: k3s etcd-snapshot save failed (exit ${r.code}):\n${tailLines(out, 10)}`);
  const m = /Saving etcd snapshot to (\S+?)"?\s*$/m.exec(out);
  if (!m) throw new Error(`${server.label}: k3s etcd-snapshot save did not say where it saved the snapshot:\n${tailLines(out, 10)}`);
  const remote = m[1];
  const data = await server.check(["cat", "--", remote], { timeoutMs, maxStdoutBytes: 2 ** 31 - 1 });
  if (data.stdoutTruncated) throw new Error(`${server.label}: ${remote} is 2 GiB or larger: copy it by hand (k3s etcd-snapshot ls on that server lists it)`);
  const sum = await server.check(["sha256sum", "--", remote], { timeoutMs });
  const want = sum.stdout.toString().split(/\s+/)[0];
  const got = crypto.createHash("sha256").update(data.stdout).digest("hex");
  if (want !== got) throw new Error(`${server.label}: the copy of ${remote} does not match the server's (sha256 ${got} ≠ ${want}); not kept`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const local = path.join(dir, `${path.basename(remote)}.db`);
  const tmp = `${local}.part`;
  fs.writeFileSync(tmp, data.stdout, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, local);
  return local;
}

/** The refusal, naming the node, what is missing and how to fix it. */
export function refusal(spec: Pick<LeaveSpec, "node" | "hostname" | "why">, problems: string[], via: string): string {
  return (
    `refusing the ${spec.why} of server ${spec.node}: the cluster would not keep a healthy quorum without it.\n` +
    problems.map((p) => `  - ${p}`).join("\n") +
    `\n(checked through ${via}; nothing was changed: ${spec.node} was not drained, flashed or removed)` +
    `\nHow to fix: bring the missing servers back (power, network, the k3s service) until \`k3s kubectl get nodes\` shows every server Ready, then run \`pulumi up\` again.`
  );
}

/** See the file comment. Throws K3sError on a refusal or a failed step (nothing after it runs). */
export async function leaveCluster(ctx: LeaveContext, spec: LeaveSpec): Promise<LeaveResult> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    ctx.log?.(`warning: ${m}`);
  };
  const h = spec.hostname;
  const res: LeaveResult = { action: "left", drained: false, nodeDeleted: false, warnings };
  try {
    const { view, route, failures } = await liveView(ctx.servers, h);
    if (!view || !route) {
      const others = ctx.servers.filter((s) => s.hostname !== h);
      if (others.length === 0 && spec.role === "server") {
        warn(`${spec.node}: no other server is declared; the ${spec.why} of the only server ends the cluster (no snapshot could be taken)`);
        return { ...res, action: "left" };
      }
      throw new K3sError(
        `refusing the ${spec.why} of ${spec.role} ${spec.node}: no other server answered, so the cluster's quorum and the drain cannot be checked:\n` +
          failures.map((f) => `  - ${f}`).join("\n") +
          `\nNothing was changed on ${spec.node}. How to fix: make a server reachable over SSH with a known host key ` +
          `(nodes[].ssh.hostKey pins it; servers later in the rollout than ${spec.node} can only be used with a pinned key).`,
        ctx.secrets,
      );
    }
    const api = route.shell as RootShell;
    res.via = route.name;
    const me = view.nodes.find((n) => n.name === h);
    if (!me) {
      ctx.log?.(`${spec.node}: no Node ${h} in the cluster (checked through ${route.name}); nothing to drain`);
      return { ...res, action: "not-in-cluster" };
    }
    let memberName: string | undefined;
    if (spec.role === "server") {
      const a = assessLeave(view, h);
      if (a.problems.length) throw new K3sError(refusal(spec, a.problems, route.name), ctx.secrets);
      memberName = a.member?.name;
      if (a.lastServer) warn(`${spec.node} is the last server: its ${spec.why} ends the cluster; the snapshot below is the way back`);
      else ctx.log?.(`${spec.node}: ${a.healthyRemaining} of ${a.remainingVoters} remaining etcd members healthy, every other server Ready: it may leave`);
      res.snapshot = await snapshotToDeployer(api, spec.node, spec.snapshotDir);
      ctx.log?.(`${spec.node}: etcd snapshot saved to ${res.snapshot}`);
    }
    await api.check([...KUBECTL, "cordon", h], { timeoutMs: 60_000 });
    if (me.ready) {
      const t = spec.drainTimeoutSeconds;
      const drainArgv = [...KUBECTL, "drain", h, "--ignore-daemonsets", "--delete-emptydir-data", "--force", `--timeout=${t}s`];
      const r = await api.run(drainArgv, { timeoutMs: (t + 30) * 1000 });
      if (r.code !== 0)
        throw new K3sError(
          `${spec.node}: drain before the ${spec.why} did not finish within ${t} s (through ${route.name}):\n${tailLines(Buffer.concat([r.stdout, r.stderr]), 20)}` +
            `\nHow to fix: look for PodDisruptionBudgets or stuck pods on ${h}; raise isar-k3s:k3s.drainTimeoutSeconds. ${spec.node} stays cordoned and was not touched.`,
          ctx.secrets,
        );
      res.drained = true;
    } else warn(`${spec.node} is not Ready (${me.readyDetail}): cordoned, not drained (its pods cannot be evicted gracefully)`);
    if (spec.deleteNode) {
      const argv = [...KUBECTL, "delete", "node", h, "--ignore-not-found", "--timeout=90s"];
      checkResult(api.host, [...api.asRoot, ...argv], await api.run(argv, { timeoutMs: 120_000 }));
      res.nodeDeleted = true;
      if (spec.role === "server" && memberName) {
        const deadline = Date.now() + 90_000;
        for (;;) {
          const v = await readClusterView(api, { hostname: route.hostname }).catch(() => undefined);
          if (v && !v.members.some((m) => m.name === memberName)) break;
          if (Date.now() > deadline)
            throw new K3sError(
              `${spec.node}: its Node was deleted but etcd member ${memberName} is still listed after 90 s (k3s removes it when the Node goes); ` +
                `nothing was flashed. How to fix: look at the k3s log of ${route.name}, then run \`pulumi up\` again.`,
              ctx.secrets,
            );
          await sleep(ctx.pollMs ?? 1000);
        }
        res.memberRemoved = memberName;
      }
      ctx.log?.(`${spec.node}: drained and deleted from the cluster${memberName ? ` (etcd member ${memberName} removed)` : ""}`);
    }
    return res;
  } catch (e) {
    if (e instanceof K3sError) throw e;
    throw new K3sError(`${spec.node}: leaving the cluster before the ${spec.why} failed: ${(e as Error).message}\nNothing was flashed.`, ctx.secrets);
  }
}
