/**
 * The k3s join, update and removal of one node, over the Host interface (SSH in production, the lab
 * in tests). Every cluster query runs through the first server (`k3s kubectl` on it), so "Ready" means
 * Ready as the cluster sees it, not as the node believes.
 *
 * Guarantees:
 * - The cluster token reaches the node only on stdin (`dd of=/etc/rancher/k3s/token`, the file created 0600 first):
 *   never in an argv, an environment variable, a log line or an error message (`redact` scrubs every
 *   message built from remote output). The rendered config names `token-file`, never the token.
 * - `joinNode` is idempotent and completes only when the Node is Ready as seen from the first server,
 *   within `joinTimeoutSeconds` (enforced here, with every remote call bounded by the time left).
 *   Before a (re)join it deletes a stale Node of the same name through the first server (that removes
 *   k3s's node-password secret: a re-flashed node would otherwise be rejected as a duplicate hostname).
 *   It writes a join marker (/etc/rancher/k3s/isar-k3s-join) holding this join's id.
 * - `removeNode` cordons, drains (within `drainTimeoutSeconds`), deletes the Node and runs the uninstall
 *   script. A node that is gone (SSH unreachable, Node NotFound, or re-flashed: marker missing or
 *   foreign) never blocks it: the step that cannot run is skipped with a warning. A drain that does not
 *   finish in time on a live node fails (pods with disruption budgets are protected).
 * - Labels and taints are reconciled with kubectl (k3s reads node-label / node-taint at registration
 *   only); only keys this program manages are ever removed.
 */
import { setTimeout as sleep } from "timers/promises";
import { parse as parseYaml } from "yaml";
import type { DataDisk, Taint } from "../model/types";
import { isRfc1123Label } from "../model/checks";
import { dataDiskStatus, FINDMNT_ARGV } from "../render/baseline";
import { Host, HostError, RunOptions, RunResult, checkResult, tailLines } from "../transport/host";
import { rewriteKubeconfig } from "../render/kubeconfig";
import { checkLabelsAndTaints, isEmptyChange, isNotFound, labelArgv, labelChange, NodeView, parseNodeJson, taintArgv, taintChange } from "./node";

export const K3S_DIR = "/etc/rancher/k3s";
export const CONFIG_PATH = `${K3S_DIR}/config.yaml`;
export const TOKEN_PATH = `${K3S_DIR}/token`;
export const MARKER_PATH = `${K3S_DIR}/isar-k3s-join`;
export const KUBECONFIG_PATH = `${K3S_DIR}/k3s.yaml`;
export const DEFAULT_INSTALL_SCRIPT = "/usr/local/bin/k3s-install.sh";

export type K3sRole = "server" | "agent";

/** A command runner on one machine, as root (a non-root login's transport runs commands through `sudo -n`: lib/transport/sudo.ts). */
export class RootShell {
  constructor(
    readonly host: Host,
    readonly asRoot: string[] = [],
  ) {}
  get label(): string {
    return this.host.label;
  }
  run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return this.host.run([...this.asRoot, ...argv], opts);
  }
  async check(argv: string[], opts?: RunOptions): Promise<RunResult> {
    return checkResult(this.host, [...this.asRoot, ...argv], await this.run(argv, opts));
  }
}

export interface NodeJoinSpec {
  /** Fleet node name (for messages). */
  node: string;
  /** k3s node name (the Node object's name). */
  hostname: string;
  role: K3sRole;
  /** This node runs cluster-init. */
  firstServer: boolean;
  /** Rendered /etc/rancher/k3s/config.yaml (names token-file, never the token). */
  config: string;
  /** Labels the Node must carry (hardware defaults + configured). */
  labels: Record<string, string>;
  taints: Taint[];
  joinTimeoutSeconds: number;
  drainTimeoutSeconds: number;
  /** The airgap install script on the node. Default /usr/local/bin/k3s-install.sh. */
  installScript?: string;
  /** The node's data disks (mounted by its image before k3s starts); their state is reported. Default none. */
  dataDisks?: DataDisk[];
}

/**
 * The node's status line for each data disk (seed 003): what `findmnt` on the node shows at the disk's
 * mount point. A missing disk is a warning (the node runs without it: nofail), never an error.
 */
export async function dataDiskReport(
  ctx: Pick<K3sContext, "node" | "log">,
  spec: Pick<NodeJoinSpec, "node" | "dataDisks">,
  timeoutMs = 30_000,
): Promise<string[]> {
  const disks = spec.dataDisks ?? [];
  if (disks.length === 0) return [];
  const r = await ctx.node.check(FINDMNT_ARGV, { timeoutMs });
  const states = dataDiskStatus({ name: spec.node, dataDisks: disks }, r.stdout.toString("utf8"));
  for (const s of states) ctx.log?.(`${s.ok ? "" : "warning: "}${spec.node}: ${s.line}`);
  return states.map((s) => s.line);
}

export interface K3sContext {
  /** The node itself. */
  node: RootShell;
  /** The first server (kubectl runs there). For the first server itself: the same shell. */
  api: RootShell;
  /** Poll interval while waiting, ms (default 2000). */
  pollMs?: number;
  /** Progress and warnings (console in the provider: it becomes Pulumi diagnostics). */
  log?: (msg: string) => void;
  /** Secrets to scrub from every message (the token). */
  secrets?: string[];
}

/** Replace every occurrence of each secret by "[redacted]". */
export function redact(text: string, secrets: (string | undefined)[] = []): string {
  let out = text;
  for (const s of secrets) if (s && s.length >= 4) out = out.split(s).join("[redacted]");
  return out;
}

/** An error whose message has been scrubbed of secrets (the original error is not kept: it may hold them). */
export class K3sError extends Error {
  constructor(message: string, secrets: (string | undefined)[] = []) {
    super(redact(message, secrets));
    this.name = "K3sError";
  }
}

const KUBECTL = ["k3s", "kubectl"];

/** Validate a join spec; the list of problems (empty when fine). */
export function checkJoinSpec(s: NodeJoinSpec): string[] {
  const out: string[] = [];
  if (!isRfc1123Label(s.hostname)) out.push(`hostname ${JSON.stringify(s.hostname)} is not an RFC 1123 label`);
  if (s.role !== "server" && s.role !== "agent") out.push(`role must be "server" or "agent", got ${JSON.stringify(s.role)}`);
  if (s.firstServer && s.role !== "server") out.push("firstServer is only valid for a server");
  if (!(s.joinTimeoutSeconds > 0)) out.push("joinTimeoutSeconds must be > 0");
  if (!(s.drainTimeoutSeconds > 0)) out.push("drainTimeoutSeconds must be > 0");
  if (typeof s.config !== "string" || s.config.trim() === "") out.push("config (the rendered config.yaml) is empty");
  else {
    let doc: unknown;
    try {
      doc = parseYaml(s.config);
    } catch (e) {
      out.push(`config is not valid YAML: ${(e as Error).message.split("\n")[0]}`);
    }
    if (doc !== undefined) {
      const d = doc as Record<string, unknown>;
      if (!d || typeof d !== "object") out.push("config must be a YAML map");
      else {
        if ("token" in d || "agent-token" in d) out.push("config holds a `token`: the token must travel only as the token file; render `token-file` instead");
        if (d["node-name"] !== undefined && d["node-name"] !== s.hostname)
          out.push(`config node-name ${JSON.stringify(d["node-name"])} differs from hostname ${JSON.stringify(s.hostname)}`);
        if (s.firstServer && d["cluster-init"] !== true) out.push("the first server's config needs `cluster-init: true`");
        if (!s.firstServer && typeof d.server !== "string") out.push("a joining node's config needs `server: https://<first server>:6443`");
      }
    }
  }
  out.push(...checkLabelsAndTaints(s.labels ?? {}, s.taints ?? []));
  return out;
}

/** Config keys that only matter at registration (changing them needs kubectl, not a restart). */
const REGISTRATION_ONLY = ["node-label", "node-taint"];

/** True when two rendered configs differ in more than node-label / node-taint (k3s must restart to see it). */
export function configNeedsRestart(oldConfig: string, newConfig: string): boolean {
  const strip = (t: string) => {
    const d = { ...((parseYaml(t) as Record<string, unknown>) ?? {}) };
    for (const k of REGISTRATION_ONLY) delete d[k];
    return JSON.stringify(
      Object.keys(d)
        .sort()
        .map((k) => [k, d[k]]),
    );
  };
  return strip(oldConfig) !== strip(newConfig);
}

// ------------------------------------------------------------------ cluster queries (first server)

/** The Node as the first server sees it, or undefined when it does not exist. */
export async function getNode(api: RootShell, hostname: string, timeoutMs = 30_000): Promise<NodeView | undefined> {
  const argv = [...KUBECTL, "get", "node", hostname, "-o", "json"];
  const r = await api.run(argv, { timeoutMs });
  if (r.code !== 0 && isNotFound(r.stderr.toString())) return undefined;
  checkResult(api.host, [...api.asRoot, ...argv], r);
  return parseNodeJson(r.stdout.toString());
}

async function kubectl(api: RootShell, args: string[], timeoutMs: number): Promise<RunResult> {
  return api.check([...KUBECTL, ...args], { timeoutMs });
}

/**
 * Wait until the Node is Ready as seen from the first server. Throws (after `deadline`, epoch ms) with
 * the last state seen and `diagnose()`'s output.
 */
export async function waitReady(ctx: K3sContext, hostname: string, deadline: number, what: string, diagnose?: () => Promise<string>): Promise<NodeView> {
  const poll = ctx.pollMs ?? 2000;
  let last: string;
  for (;;) {
    const left = deadline - Date.now();
    try {
      const n = await getNode(ctx.api, hostname, Math.max(1000, Math.min(30_000, left)));
      if (n?.ready) return n;
      last = n ? n.readyDetail : "no Node object yet (the node has not registered)";
    } catch (e) {
      last = `kubectl on the first server failed: ${(e as Error).message.split("\n").slice(0, 6).join(" / ")}`;
    }
    if (Date.now() + poll > deadline) {
      const diag = diagnose ? await diagnose().catch((e) => `(diagnostics failed: ${(e as Error).message})`) : "";
      throw new K3sError(
        `${what}: node ${hostname} was not Ready as seen from the first server within the join timeout; last state: ${last}.` +
          `\nHow to fix: look at the k3s service on the node (journalctl -u k3s / k3s-agent); for "Node password rejected" delete the stale Node ` +
          `(k3s kubectl delete node ${hostname}); for a slow board raise isar-k3s:k3s.joinTimeoutSeconds.` +
          (diag ? `\n--- node diagnostics ---\n${tailLines(diag, 40)}` : ""),
        ctx.secrets,
      );
    }
    await sleep(poll);
  }
}

/** Apply label and taint changes with kubectl. `managed*` = what this program set before. Returns the commands' count. */
export async function reconcileLabelsAndTaints(
  ctx: K3sContext,
  hostname: string,
  desired: { labels: Record<string, string>; taints: Taint[] },
  managed: { labels: Record<string, string>; taints: Taint[] },
  timeoutMs = 60_000,
): Promise<number> {
  const n = await getNode(ctx.api, hostname, timeoutMs);
  if (!n)
    throw new K3sError(
      `node ${hostname} does not exist in the cluster, so its labels and taints cannot be set; run \`pulumi refresh\` then \`pulumi up\` to rejoin it`,
      ctx.secrets,
    );
  const lc = labelChange(n.labels, desired.labels, [...Object.keys(managed.labels), ...Object.keys(desired.labels)]);
  const tc = taintChange(n.taints, desired.taints, [...managed.taints, ...desired.taints]);
  if (isEmptyChange(lc, tc)) return 0;
  const cmds = [...labelArgv(hostname, lc), ...taintArgv(hostname, tc)];
  for (const c of cmds) await kubectl(ctx.api, c, timeoutMs);
  ctx.log?.(`${hostname}: labels/taints updated (${cmds.length} kubectl command(s))`);
  return cmds.length;
}

// ------------------------------------------------------------------ node side

/**
 * Write `content` to `path` on the node from stdin, the file having `mode` before a byte is written:
 * `install -m MODE /dev/null PATH` creates it empty (replacing any file there, whatever its mode), then
 * `dd of=PATH` fills it from stdin. (Not `install /dev/stdin`: opening /dev/stdin fails when stdin is a
 * socket, as with some SSH servers and Node's child processes.)
 */
export async function writeFileFromStdin(node: RootShell, path: string, content: string, mode: string, timeoutMs = 60_000): Promise<void> {
  await node.check(["install", "-m", mode, "/dev/null", path], { timeoutMs });
  await node.check(["dd", `of=${path}`, "status=none"], { stdin: content, timeoutMs });
}

/** Write config.yaml, the token file (0600, content from stdin only) and the join marker. */
export async function writeNodeFiles(node: RootShell, spec: NodeJoinSpec, token: string, joinId: string, timeoutMs = 60_000): Promise<void> {
  await node.check(["install", "-d", "-m", "0755", K3S_DIR], { timeoutMs });
  await writeFileFromStdin(node, CONFIG_PATH, spec.config, "0600", timeoutMs);
  await writeFileFromStdin(node, TOKEN_PATH, token + "\n", "0600", timeoutMs);
  await writeFileFromStdin(node, MARKER_PATH, joinId + "\n", "0644", timeoutMs);
}

/** The install command: airgap (k3s already in the image), role from INSTALL_K3S_EXEC, no secret in it. */
export function installArgv(spec: Pick<NodeJoinSpec, "role" | "installScript">): string[] {
  return ["env", "INSTALL_K3S_SKIP_DOWNLOAD=true", `INSTALL_K3S_EXEC=${spec.role}`, "sh", spec.installScript ?? DEFAULT_INSTALL_SCRIPT];
}

export function uninstallScript(role: K3sRole): string {
  return role === "server" ? "/usr/local/bin/k3s-uninstall.sh" : "/usr/local/bin/k3s-agent-uninstall.sh";
}

/** Last lines of the k3s service log on the node (journald, else the log files k3s-style setups write). */
export async function nodeDiagnostics(node: RootShell, role: K3sRole): Promise<string> {
  const unit = role === "server" ? "k3s" : "k3s-agent";
  const tries: string[][] = [
    ["journalctl", "-u", unit, "-n", "40", "--no-pager", "-q"],
    ["tail", "-n", "40", `/var/log/${unit}.log`],
  ];
  for (const argv of tries) {
    const r = await node.run(argv, { timeoutMs: 15_000 }).catch(() => undefined);
    const out = r ? r.stdout.toString().trim() : "";
    if (r && r.code === 0 && out) return out;
  }
  return "";
}

/** The join marker's content on the node: the join id, "" when absent. */
export async function readMarker(node: RootShell, timeoutMs = 30_000): Promise<string> {
  const r = await node.run(["cat", MARKER_PATH], { timeoutMs });
  return r.code === 0 ? r.stdout.toString().trim() : "";
}

export interface JoinResult {
  joinedAt: string;
  /** One line per data disk: mounted, or MISSING with the fix (dataDiskReport). */
  dataDiskStatus: string[];
  /** A stale Node of that name was deleted first (re-flashed or re-created node). */
  staleNodeDeleted: boolean;
}

/**
 * Join (or rejoin) one node. For a node other than the first server, first delete a stale Node of
 * the same name (see the file comment). Then write the files, run the airgap install, and wait for
 * Ready; then make labels and taints match the spec.
 */
export async function joinNode(ctx: K3sContext, spec: NodeJoinSpec, token: string, joinId: string): Promise<JoinResult> {
  const secrets = [token, ...(ctx.secrets ?? [])];
  const c: K3sContext = { ...ctx, secrets };
  const what = `k3s ${spec.role} ${spec.node}`;
  const problems = checkJoinSpec(spec);
  if (problems.length) throw new K3sError(`${what}: ${problems.join("; ")}`, secrets);
  if (!token || /\s/.test(token)) throw new K3sError(`${what}: the cluster token is empty or contains whitespace`, secrets);
  const deadline = Date.now() + spec.joinTimeoutSeconds * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  try {
    let staleNodeDeleted = false;
    if (!spec.firstServer) {
      const stale = await getNode(c.api, spec.hostname, Math.min(30_000, left()));
      if (stale) {
        c.log?.(`${spec.hostname}: a Node of this name already exists (${stale.readyDetail}); deleting it and its node-password secret before the join`);
        await kubectl(
          c.api,
          ["delete", "node", spec.hostname, "--ignore-not-found", `--timeout=${Math.ceil(Math.min(60_000, left()) / 1000)}s`],
          Math.min(90_000, left()),
        );
        staleNodeDeleted = true;
      }
    }
    await writeNodeFiles(c.node, spec, token, joinId, Math.min(60_000, left()));
    c.log?.(`${spec.hostname}: config and token written, running the k3s install (${spec.role})`);
    const argv = installArgv(spec);
    const r = await c.node.run(argv, { timeoutMs: left() });
    if (r.code !== 0) {
      throw new K3sError(
        `${what}: \`${argv.join(" ")}\` exited ${r.code ?? "by signal " + r.signal} on ${c.node.label}:\n${tailLines(Buffer.concat([r.stdout, r.stderr]), 40)}` +
          `\nHow to fix: the image must ship k3s (/usr/local/bin/k3s) and the install script ${spec.installScript ?? DEFAULT_INSTALL_SCRIPT}.`,
        secrets,
      );
    }
    await waitReady(c, spec.hostname, deadline, what, () => nodeDiagnostics(c.node, spec.role));
    await reconcileLabelsAndTaints(c, spec.hostname, spec, { labels: {}, taints: [] }, Math.min(60_000, left()));
    c.log?.(`${spec.hostname}: Ready`);
    return { joinedAt: new Date().toISOString(), staleNodeDeleted, dataDiskStatus: await dataDiskReport(c, spec) };
  } catch (e) {
    if (e instanceof K3sError) throw e;
    throw new K3sError(`${what}: ${(e as Error).message}`, secrets);
  }
}

/**
 * Apply a changed spec to a joined node without rejoining: rewrite config.yaml; restart k3s (re-run
 * the install script) only when more than labels/taints changed, then wait Ready; apply label and
 * taint changes with kubectl.
 */
export async function updateNode(
  ctx: K3sContext,
  olds: NodeJoinSpec,
  spec: NodeJoinSpec,
  token: string,
  joinId: string,
): Promise<{ restarted: boolean; kubectlCommands: number }> {
  const secrets = [token, ...(ctx.secrets ?? [])];
  const c: K3sContext = { ...ctx, secrets };
  const what = `k3s ${spec.role} ${spec.node}`;
  const problems = checkJoinSpec(spec);
  if (problems.length) throw new K3sError(`${what}: ${problems.join("; ")}`, secrets);
  const deadline = Date.now() + spec.joinTimeoutSeconds * 1000;
  try {
    let restarted = false;
    const changedConfig = olds.config !== spec.config || (olds.installScript ?? DEFAULT_INSTALL_SCRIPT) !== (spec.installScript ?? DEFAULT_INSTALL_SCRIPT);
    if (changedConfig) {
      await writeNodeFiles(c.node, spec, token, joinId);
      if (configNeedsRestart(olds.config, spec.config)) {
        c.log?.(`${spec.hostname}: k3s configuration changed, restarting k3s`);
        await c.node.check(installArgv(spec), { timeoutMs: Math.max(1000, deadline - Date.now()) });
        await waitReady(c, spec.hostname, deadline, what, () => nodeDiagnostics(c.node, spec.role));
        restarted = true;
      }
    }
    const kubectlCommands = await reconcileLabelsAndTaints(c, spec.hostname, spec, olds);
    return { restarted, kubectlCommands };
  } catch (e) {
    if (e instanceof K3sError) throw e;
    throw new K3sError(`${what}: ${(e as Error).message}`, secrets);
  }
}

export interface RemoveContext {
  /** The node, or the reason it cannot be reached (then the node-side steps are skipped). */
  node: RootShell | { unreachable: string };
  /** The first server, or why it cannot be reached (then the cluster-side steps are skipped). */
  api: RootShell | { unreachable: string };
  log?: (msg: string) => void;
  secrets?: string[];
}

export interface RemoveResult {
  drained: boolean;
  nodeDeleted: boolean;
  uninstalled: boolean;
  warnings: string[];
}

/**
 * Remove a node from the cluster: cordon, drain, delete the Node (through the first server), then run
 * the uninstall script on the node. `joinId` is the id this program wrote when it joined the node: a
 * node whose marker differs was re-flashed since, so its k3s is not ours to uninstall and it has no
 * pods left to drain. The first server's own removal (the cluster ends with it) skips the cluster
 * steps. Gone nodes never block: the skipped steps come back as warnings.
 */
export async function removeNode(ctx: RemoveContext, spec: NodeJoinSpec, joinId: string): Promise<RemoveResult> {
  const warnings: string[] = [];
  const warn = (m: string) => {
    const w = redact(m, ctx.secrets);
    warnings.push(w);
    ctx.log?.(`warning: ${w}`);
  };
  const res: RemoveResult = { drained: false, nodeDeleted: false, uninstalled: false, warnings };
  const h = spec.hostname;

  // 1. Is the node still the one we joined?
  let ours = false;
  if ("unreachable" in ctx.node) warn(`${spec.node}: cannot reach the node (${ctx.node.unreachable}); treating it as gone: no drain, no uninstall`);
  else {
    try {
      const m = await readMarker(ctx.node);
      ours = m === joinId;
      if (!ours)
        warn(
          `${spec.node}: the node does not carry this join's marker (${m ? "another join id" : "no marker"}): it was re-flashed or reinstalled since; skipping drain and uninstall`,
        );
    } catch (e) {
      warn(`${spec.node}: cannot read the join marker (${(e as Error).message.split("\n")[0]}); treating the node as gone`);
    }
  }

  // 2. Cluster side, through the first server (skipped for the first server itself).
  if (spec.firstServer) {
    ctx.log?.(`${h}: the first server is removed last; the cluster ends with it (no drain)`);
  } else if ("unreachable" in ctx.api) {
    warn(`${h}: cannot reach the first server (${ctx.api.unreachable}); the Node object is not deleted`);
  } else {
    const api = ctx.api;
    let present: NodeView | undefined;
    let queried = false;
    try {
      present = await getNode(api, h);
      queried = true;
    } catch (e) {
      warn(`${h}: cannot query the cluster (${(e as Error).message.split("\n")[0]}); the Node object is not deleted`);
    }
    if (present) {
      if (ours) {
        await kubectl(api, ["cordon", h], 60_000);
        const t = spec.drainTimeoutSeconds;
        const drainArgv = [...KUBECTL, "drain", h, "--ignore-daemonsets", "--delete-emptydir-data", "--force", `--timeout=${t}s`];
        const r = await api.run(drainArgv, { timeoutMs: (t + 30) * 1000 });
        if (r.code !== 0) {
          throw new K3sError(
            `${h}: drain did not finish within ${t} s on the first server (${api.label}):\n${tailLines(Buffer.concat([r.stdout, r.stderr]), 40)}` +
              `\nHow to fix: look for PodDisruptionBudgets or stuck pods on ${h} (kubectl get pods -A -o wide --field-selector spec.nodeName=${h}); ` +
              `raise isar-k3s:k3s.drainTimeoutSeconds; the node stays cordoned until the next attempt.`,
            ctx.secrets,
          );
        }
        res.drained = true;
      }
      const d = await api.run([...KUBECTL, "delete", "node", h, "--ignore-not-found", "--timeout=60s"], { timeoutMs: 90_000 });
      if (d.code !== 0 && !isNotFound(d.stderr.toString())) checkResult(api.host, [...api.asRoot, ...KUBECTL, "delete", "node", h], d);
      res.nodeDeleted = true;
    } else if (queried) {
      ctx.log?.(`${h}: no Node object in the cluster (already deleted)`);
    }
  }

  // 3. Node side.
  if (ours && !("unreachable" in ctx.node)) {
    const script = uninstallScript(spec.role);
    const exists = await ctx.node.run(["test", "-x", script], { timeoutMs: 30_000 });
    if (exists.code !== 0) warn(`${spec.node}: ${script} is missing on the node; k3s not uninstalled`);
    else {
      await ctx.node.check([script], { timeoutMs: 300_000 });
      res.uninstalled = true;
    }
  }
  return res;
}

// ------------------------------------------------------------------ kubeconfig

/**
 * Read /etc/rancher/k3s/k3s.yaml on the first server and rewrite it (server URL, names). The text is a
 * secret (client key): it never goes into a message.
 */
export async function fetchKubeconfig(api: RootShell, server: string, name: string, timeoutMs = 60_000): Promise<string> {
  const r = await api.run(["cat", KUBECONFIG_PATH], { timeoutMs, maxStdoutBytes: 1 << 20 });
  if (r.code !== 0) {
    throw new HostError(
      `${api.label}: cannot read ${KUBECONFIG_PATH} (exit ${r.code}): ${tailLines(r.stderr, 5)}; is k3s running as a server there?`,
      api.label,
    );
  }
  return rewriteKubeconfig(r.stdout.toString("utf8"), { server, name });
}
