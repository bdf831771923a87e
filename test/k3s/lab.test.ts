/**
 * The k3s join against the simulated lab over SSH (real sshd per node; lab/k3s over real etcd,
 * kube-apiserver, controllers and kwok on every node), driven through lib/k3s/k3s-provider.ts the way the dynamic provider drives it and
 * in the order Pulumi's dependsOn chain gives (servers one at a time, agents in parallel):
 * - join order proven by the stand-in's join.log timestamps; every node Ready from the first server;
 * - the kubeconfig points at the first server with the stack's names, and works;
 * - label / taint changes are applied with kubectl without a rejoin;
 * - a re-flashed agent is rejected by k3s ("Node password rejected") until its stale Node is deleted,
 *   and our join does exactly that: it rejoins under its name;
 * - removing an agent drains, deletes and uninstalls it, the others untouched; a hanging drain fails
 *   within the timeout; a node that is gone does not block; servers go last-joined first;
 * - the token never appears in a process argument (our commands, the stand-in's argv log, a /proc
 *   sampler over the whole machine), a log, or any file but the 0600 token files.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { execFile } from "child_process";
import { promisify } from "util";
import { parse as parseYaml } from "yaml";
import { k8sComponentsDir, type Lab } from "../../lab/lab";
import { parseFleet } from "../../lib/model/parse";
import type { Fleet, NodeSpec } from "../../lib/model/types";
import { deploymentPlan, DeploymentPlan, teardownOrder } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { renderDataDiskFiles } from "../../lib/render/baseline";
import { installArgv, RootShell, writeNodeFiles } from "../../lib/k3s/join";
import {
  createKubeconfig,
  createNode,
  deleteNode,
  Deps,
  diffNode,
  K3sNodeInputs,
  K3sNodeOutputs,
  readNode,
  sshConnect,
  updateNodeResource,
} from "../../lib/k3s/k3s-provider";
import { connectSsh } from "../../lib/transport/ssh";
import { sshConnectOptions } from "../../lib/transport/endpoint";
import { makeNodeImage, TestImage } from "../delivery/labutil";
import { K3sLab, startK3sLab } from "./labk3s";
import { validRaw } from "../model/fixtures";
import { filesContaining, ProcWatcher, Recorded, RecordingHost } from "./helpers";

const execP = promisify(execFile);
jest.setTimeout(600_000);

const TOKEN =
  crypto
    .randomBytes(36)
    .toString("base64")
    .replace(/[^A-Za-z0-9]/g, "")
    .slice(0, 40) + "Zq9x8w7v"; // like RandomPassword: alphanumeric
let lab: Lab;
let k3sLab: K3sLab;
let dir: string;
let cluster: string;
let fleet: Fleet;
let plan: DeploymentPlan;
const recorded: Recorded[] = [];
const logs: string[] = [];
const outs: Record<string, K3sNodeOutputs> = {};
let watcher: ProcWatcher;
let image: TestImage;

const deps: Deps = {
  pollMs: 300,
  goneAfterMs: 3000,
  log: (m) => logs.push(m),
  connect: async (t, key, o) => new RecordingHost(await sshConnect(t, key, o), recorded),
};

function node(name: string): NodeSpec {
  return fleet.nodes.find((n) => n.name === name)!;
}

function inputs(n: NodeSpec, over: Partial<K3sNodeInputs> = {}): K3sNodeInputs {
  const first = n.name === plan.firstServer.name;
  const h = lab.hosts[n.name];
  const api = lab.hosts[plan.firstServer.name];
  return {
    resourceType: n.role === "server" ? "K3sServer" : "K3sAgent",
    node: n.name,
    hostname: n.hostname,
    role: n.role,
    firstServer: first,
    ssh: { address: h.address, port: h.port, user: h.user, hostKey: h.hostKey },
    apiSsh: { address: api.address, port: api.port, user: api.user, hostKey: api.hostKey },
    privateKey: lab.deployKey.privateKey,
    token: TOKEN,
    config: renderK3sConfig(fleet, plan, n),
    labels: nodeLabels(n),
    taints: n.taints,
    joinTimeoutSeconds: fleet.k3s.joinTimeoutSeconds,
    drainTimeoutSeconds: fleet.k3s.drainTimeoutSeconds,
    generation: "image-1",
    cluster: first ? "" : (outs[plan.firstServer.name]?.joinId ?? ""),
    dataDisks: n.dataDisks,
    ...over,
  };
}

interface JoinEvent {
  ts: string;
  tsMs: number;
  node: string;
  role: string;
  event: string;
  detail?: string;
}
function joinLog(): JoinEvent[] {
  const f = path.join(cluster, "join.log");
  return fs.existsSync(f)
    ? fs
        .readFileSync(f, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
}
function firstEvent(nodeName: string, event: string, after = 0): JoinEvent | undefined {
  return joinLog().find((e) => e.node === nodeName && e.event === event && e.tsMs >= after);
}

async function shell(name: string): Promise<RootShell> {
  const h = lab.hosts[name];
  return new RootShell(await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey }));
}
async function kubectlJson(args: string[]): Promise<{ code: number | null; json?: Record<string, unknown>; stderr: string }> {
  const s = await shell("s1");
  try {
    const r = await s.run(["k3s", "kubectl", ...args, "-o", "json"]);
    return { code: r.code, json: r.code === 0 ? JSON.parse(r.stdout.toString()) : undefined, stderr: r.stderr.toString() };
  } finally {
    await s.host.close();
  }
}
async function nodeObj(name: string): Promise<
  | {
      metadata: { uid: string; labels: Record<string, string> };
      spec: { taints?: { key: string; value?: string; effect: string }[]; unschedulable?: boolean };
      status: { conditions: { type: string; status: string }[] };
    }
  | undefined
> {
  const r = await kubectlJson(["get", "node", name]);
  return r.json as never;
}
function isReady(n: Awaited<ReturnType<typeof nodeObj>>): boolean {
  return !!n?.status.conditions.some((c) => c.type === "Ready" && c.status === "True");
}
async function k3sPid(name: string, unit: string): Promise<string> {
  const s = await shell(name);
  try {
    const r = await s.run(["cat", `/run/k3s-sim/${unit}.pid`]);
    return r.code === 0 ? r.stdout.toString().trim() : "";
  } finally {
    await s.host.close();
  }
}

/** Flash the slot node a1 with the test image through the BMC's tpi, power it on, wait for its sshd. */
async function flashA1(): Promise<void> {
  const b = lab.hosts.bmc;
  const bmc = await connectSsh({ host: b.address, port: b.port, user: b.user, hostKey: b.hostKey, privateKey: lab.deployKey.privateKey });
  try {
    await bmc.run(["mkdir", "-p", "/mnt/sdcard"]);
    await bmc.upload(image.path, "/mnt/sdcard/a1.img", { sha256: image.sha256 });
    for (const argv of [
      ["tpi", "power", "off", "-n", "1"],
      ["tpi", "flash", "--local", "-n", "1", "-i", "/mnt/sdcard/a1.img"],
      ["tpi", "power", "on", "-n", "1"],
    ]) {
      const r = await bmc.run(argv, { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
    }
  } finally {
    await bmc.close();
  }
  const deadline = Date.now() + 30_000;
  while (!lab.status().hosts.a1?.up || !lab.hosts.a1.hostKey) {
    if (Date.now() > deadline) throw new Error("a1 did not boot after the flash");
    await new Promise((r) => setTimeout(r, 200));
  }
  await k3sLab.ensureK3s("a1");
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-lab-"));
  watcher = new ProcWatcher(() => [TOKEN]);
  watcher.start();
  k3sLab = await startK3sLab(
    [
      { name: "bmc", role: "bmc" },
      // seed 003: every node is reached as the deploy user, every k3s step runs through sudo -n
      { name: "s1", role: "node", user: "deploy" },
      { name: "s2", role: "node", user: "deploy" },
      { name: "s3", role: "node", user: "deploy" },
      { name: "a1", role: "node", user: "deploy", tpi: { bmc: "bmc", slot: 1 }, disks: { sda1: { sizeBytes: 64 << 20, filesystem: "ext4" } } },
      { name: "a2", role: "node", user: "deploy" },
    ],
    path.join(dir, "lab"),
    { K3S_SIM_START_TIMEOUT_SECONDS: "150", K3S_SIM_JOIN_SECONDS: "0.5", K3S_SIM_GRACE_SECONDS: "10", K3S_SIM_LEASE_SECONDS: "4" },
  );
  lab = k3sLab.lab;
  cluster = k3sLab.clusterDir;
  const a1Disks = [{ device: "/dev/sda1", filesystem: "ext4" as const, mountPoint: "/var/lib/longhorn" }];
  image = await makeNodeImage(dir, {
    name: "a1img",
    hostname: "a1",
    authorizedKey: lab.deployKey.publicKey,
    deployUser: "deploy",
    extraFiles: renderDataDiskFiles({ dataDisks: a1Disks } as NodeSpec),
  });
  await flashA1();
  const raw = validRaw();
  const ep = (n: string, hostKey = true) => ({ user: lab.hosts[n].user, port: lab.hosts[n].port, ...(hostKey ? { hostKey: lab.hosts[n].hostKey } : {}) });
  fleet = parseFleet({
    ...raw,
    clusterName: "k3s-lab",
    bmcs: [{ name: "bmc", address: lab.hosts.bmc.address, ssh: ep("bmc") }],
    nodes: [
      { name: "s1", role: "server", hardware: "x86-controller", address: lab.hosts.s1.address, delivery: { method: "swupdate" }, ssh: ep("s1") },
      { name: "s2", role: "server", hardware: "x86-controller", address: lab.hosts.s2.address, delivery: { method: "swupdate" }, ssh: ep("s2") },
      { name: "s3", role: "server", hardware: "x86-controller", address: lab.hosts.s3.address, delivery: { method: "swupdate" }, ssh: ep("s3") },
      {
        name: "a1",
        role: "agent",
        hardware: "turing-rk1",
        address: lab.hosts.a1.address,
        delivery: { method: "tpi", bmc: "bmc", slot: 1 },
        ssh: ep("a1", false),
        labels: { "example.com/zone": "line-1" },
        dataDisks: a1Disks,
      },
      {
        name: "a2",
        role: "agent",
        hardware: "x86-controller",
        address: lab.hosts.a2.address,
        delivery: { method: "swupdate" },
        ssh: ep("a2"),
        labels: { "example.com/zone": "line-2", "example.com/old": "x" },
        taints: ["example.com/old=1:NoSchedule"],
        dataDisks: [{ device: "/dev/sdb1", mountPoint: "/srv/data" }],
      },
    ],
    k3s: { joinTimeoutSeconds: 240, drainTimeoutSeconds: 10 },
    authorizedKeys: [lab.deployKey.publicKey],
  });
  plan = deploymentPlan(fleet);
});

afterAll(async () => {
  watcher?.stop();
  await lab?.stop();
  await k3sLab?.cleanup();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test("servers join one at a time, agents in parallel after them; all Ready from the first server", async () => {
  const t0 = Date.now();
  for (const s of [plan.firstServer, ...plan.joiningServers]) outs[s.name] = await createNode(inputs(s), deps);
  const spans: { begin: number; end: number }[] = [];
  const agents = await Promise.all(
    plan.agents.map(async (a) => {
      const span = { begin: Date.now(), end: 0 };
      spans.push(span);
      const o = await createNode(inputs(a), deps);
      span.end = Date.now();
      return o;
    }),
  );
  plan.agents.forEach((a, i) => (outs[a.name] = agents[i]));
  // seed 003: each node's data disks in its status: a1's SSD mounted before k3s, a2's disk absent (a warning, not a failure)
  expect(outs.a1.dataDiskStatus).toEqual([expect.stringMatching(/^data disk \/dev\/sda1 on \/var\/lib\/longhorn: mounted \(\/dev\/loop\d+, ext4\)$/)]);
  expect(outs.a2.dataDiskStatus).toEqual([expect.stringMatching(/^data disk \/dev\/sdb1 on \/srv\/data: MISSING, nothing is mounted there/)]);
  expect(logs).toContainEqual(expect.stringMatching(/^warning: a2: data disk \/dev\/sdb1 on \/srv\/data: MISSING/));
  expect(outs.s1.dataDiskStatus).toEqual([]);

  const ready = (n: string) => firstEvent(n, "ready", t0)!.tsMs;
  const start = (n: string) => firstEvent(n, "start", t0)!.tsMs;
  expect(ready("s1")).toBeLessThanOrEqual(start("s2"));
  expect(ready("s2")).toBeLessThanOrEqual(start("s3"));
  expect(ready("s3")).toBeLessThanOrEqual(Math.min(start("a1"), start("a2")));
  // agents in parallel: both joins were under way at once
  expect(Math.max(...spans.map((x) => x.begin))).toBeLessThan(Math.min(...spans.map((x) => x.end)));
  expect(joinLog().filter((e) => e.event === "failed" || e.event === "rejected")).toEqual([]);
  for (const n of fleet.nodes) {
    const o = await nodeObj(n.hostname);
    expect(isReady(o)).toBe(true);
    expect(o!.metadata.labels).toMatchObject(nodeLabels(n));
  }
  expect((await nodeObj("a2"))!.spec.taints).toEqual([{ key: "example.com/old", value: "1", effect: "NoSchedule" }]);
  // the outputs hold the token only under the secret input key
  for (const o of Object.values(outs)) expect(JSON.stringify({ ...o, token: undefined, privateKey: undefined })).not.toContain(TOKEN);
});

test("kubeconfig: first server's address, the stack's names, and it works", async () => {
  const kc = await createKubeconfig(
    {
      resourceType: "K3sKubeconfig",
      apiSsh: inputs(node("s1")).apiSsh,
      privateKey: lab.deployKey.privateKey,
      server: plan.serverUrl,
      clusterName: fleet.clusterName,
      members: [],
    },
    deps,
  );
  const doc = parseYaml(kc.kubeconfig);
  expect(doc.clusters).toHaveLength(1);
  expect(doc.clusters[0]).toMatchObject({ name: "k3s-lab", cluster: { server: `https://${lab.hosts.s1.address}:6443` } });
  expect(doc.contexts[0]).toEqual({ name: "k3s-lab", context: { cluster: "k3s-lab", user: "k3s-lab" } });
  expect(doc.users[0].name).toBe("k3s-lab");
  expect(doc["current-context"]).toBe("k3s-lab");
  expect(kc.kubeconfig).not.toMatch(/127\.0\.0\.1|name: default/);
  // use it from this machine with the real kubectl, against the first server's real kube-apiserver
  const f = path.join(dir, "kubeconfig");
  fs.writeFileSync(f, kc.kubeconfig, { mode: 0o600 });
  const kubectl = path.join(k8sComponentsDir(path.resolve(__dirname, "../..")), "bin/kubectl");
  const { stdout } = await execP(kubectl, ["--kubeconfig", f, "get", "nodes", "-o", "json"]);
  expect(
    JSON.parse(stdout)
      .items.map((i: { metadata: { name: string } }) => i.metadata.name)
      .sort(),
  ).toEqual(["a1", "a2", "s1", "s2", "s3"]);
  expect((await execP(kubectl, ["--kubeconfig", f, "get", "--raw", "/readyz"])).stdout).toBe("ok");
});

test("label and taint changes are applied with kubectl, without a rejoin", async () => {
  const pid = await k3sPid("a2", "k3s-agent");
  const before = joinLog().length;
  const next = inputs(node("a2"), {
    labels: { ...nodeLabels(node("a2")), "example.com/zone": "line-3", "example.com/new": "y" },
    taints: [{ key: "example.com/new", effect: "PreferNoSchedule" }],
  });
  delete next.labels["example.com/old"];
  const d = diffNode(outs.a2 as never, next as never);
  expect(d).toMatchObject({ changes: true, replaces: [] });
  outs.a2 = await updateNodeResource(outs.a2, next, deps);
  const o = (await nodeObj("a2"))!;
  expect(o.metadata.labels).toMatchObject({ "example.com/zone": "line-3", "example.com/new": "y" });
  expect(o.metadata.labels["example.com/old"]).toBeUndefined();
  expect(o.metadata.labels["kubernetes.io/hostname"]).toBe("a2"); // foreign labels kept
  expect(o.spec.taints).toEqual([{ key: "example.com/new", effect: "PreferNoSchedule" }]);
  expect(await k3sPid("a2", "k3s-agent")).toBe(pid);
  expect(
    joinLog()
      .slice(before)
      .filter((e) => e.node === "a2"),
  ).toEqual([]);
});

test("refresh sees label drift and a vanished Node; a config change beyond labels restarts k3s", async () => {
  // drift: someone relabels the node by hand → refresh reports it → the next update puts it back
  const s = await shell("s1");
  try {
    await s.check(["k3s", "kubectl", "label", "node", "a2", "--overwrite", "example.com/zone=by-hand"]);
  } finally {
    await s.host.close();
  }
  const seen = (await readNode(outs.a2, deps))!;
  expect(seen.labels["example.com/zone"]).toBe("by-hand");
  const want = { ...outs.a2 } as K3sNodeInputs;
  expect(diffNode(seen as never, { ...want, labels: outs.a2.labels } as never)).toMatchObject({ changes: true, replaces: [] });
  outs.a2 = await updateNodeResource(seen, { ...want, labels: outs.a2.labels }, deps);
  expect((await nodeObj("a2"))!.metadata.labels["example.com/zone"]).toBe("line-3");

  // a config change that k3s must read at start: rewritten and restarted, Ready again, same Node
  const pid = await k3sPid("a2", "k3s-agent");
  const uid = (await nodeObj("a2"))!.metadata.uid;
  const n2 = { ...node("a2"), address: node("a2").address };
  const cfg = renderK3sConfig({ ...fleet, k3s: { ...fleet.k3s, kubeletArgs: [...fleet.k3s.kubeletArgs, "image-gc-high-threshold=90"] } }, plan, n2);
  outs.a2 = await updateNodeResource(outs.a2, { ...outs.a2, config: cfg }, deps);
  expect(await k3sPid("a2", "k3s-agent")).not.toBe(pid);
  const after = (await nodeObj("a2"))!;
  expect(isReady(after)).toBe(true);
  expect(after.metadata.uid).toBe(uid);
  const a2 = await shell("a2");
  try {
    expect((await a2.check(["cat", "/etc/rancher/k3s/config.yaml"])).stdout.toString()).toContain("image-gc-high-threshold=90");
    expect((await a2.check(["stat", "-c", "%a", "/etc/rancher/k3s/token"])).stdout.toString().trim()).toBe("600");
  } finally {
    await a2.host.close();
  }

  // the Node vanished from the cluster: refresh drops the resource, so the next up rejoins it
  const s2 = await shell("s1");
  try {
    await s2.check(["k3s", "kubectl", "delete", "node", "a2"]);
  } finally {
    await s2.host.close();
  }
  expect(await readNode(outs.a2, deps)).toBeUndefined();
  outs.a2 = await createNode(inputs(node("a2"), { labels: outs.a2.labels, taints: outs.a2.taints, config: cfg }), deps);
  expect(isReady(await nodeObj("a2"))).toBe(true);
});

test("a re-flashed agent is rejected until its stale Node goes; our join deletes it and the node rejoins under its name", async () => {
  const oldUid = (await nodeObj("a1"))!.metadata.uid;
  await flashA1(); // wipes a1's state (/etc/rancher/node/password, k3s files) and gives it a new host key
  const t = Date.now();
  // what a naive rejoin gets: k3s rejects the new node password
  const fresh = inputs(node("a1"), { generation: "image-2" });
  const s = new RootShell(await connectSsh(sshConnectOptions(fresh.ssh, { privateKey: lab.deployKey.privateKey }, {})));
  try {
    await writeNodeFiles(s, { ...fresh, node: "a1" } as never, TOKEN, "naive");
    const r = await s.run(installArgv({ role: "agent" }), { timeoutMs: 20_000 });
    expect(firstEvent("a1", "rejected", t)).toBeDefined();
    const log = (await s.run(["tail", "-n", "40", "/var/log/k3s-agent.log"])).stdout.toString() + r.stdout.toString() + r.stderr.toString();
    expect(log).toMatch(/Node password rejected, duplicate hostname/);
  } finally {
    await s.host.close();
  }
  // Pulumi: generation changed → replace, delete first
  expect(diffNode(outs.a1 as never, fresh as never)).toEqual({ changes: true, replaces: ["generation"], deleteBeforeReplace: true });
  const del = await deleteNode(outs.a1, deps); // old pin no longer matches: the old node is gone
  expect(del.warnings.join("\n")).toMatch(/a1: (cannot reach the node|the node does not carry this join's marker)/);
  outs.a1 = await createNode(fresh, deps);
  const now = (await nodeObj("a1"))!;
  expect(isReady(now)).toBe(true);
  expect(now.metadata.uid).not.toBe(oldUid);
  expect(now.metadata.labels["example.com/zone"]).toBe("line-1");
  expect(firstEvent("a1", "registered", t)).toBeDefined();

  // a second re-flash with the old join never removed (state lost): create alone deletes the stale Node
  const uid2 = now.metadata.uid;
  await flashA1();
  const t2 = Date.now();
  outs.a1 = await createNode(inputs(node("a1"), { generation: "image-3" }), deps);
  expect(logs.join("\n")).toMatch(/a1: a Node of this name already exists .*deleting it and its node-password secret/);
  const again = (await nodeObj("a1"))!;
  expect(isReady(again)).toBe(true);
  expect(again.metadata.uid).not.toBe(uid2);
  expect(firstEvent("a1", "rejected", t2)).toBeUndefined();
});

test("removing an agent drains, deletes and uninstalls it; the others are untouched", async () => {
  const others = ["s1", "s2", "s3", "a1"];
  const before = Object.fromEntries(await Promise.all(others.map(async (n) => [n, (await nodeObj(n))!.metadata.uid] as const)));
  const pids = { s1: await k3sPid("s1", "k3s"), a1: await k3sPid("a1", "k3s-agent") };
  const argvBefore = fs.readFileSync(path.join(cluster, "argv.log"), "utf8").split("\n").filter(Boolean).length;
  const r = await deleteNode(outs.a2, deps);
  expect(r).toEqual({ drained: true, nodeDeleted: true, uninstalled: true, warnings: [] });
  const gone = await kubectlJson(["get", "node", "a2"]);
  expect(gone.code).toBe(1);
  expect(gone.stderr).toMatch(/NotFound/);
  expect(firstEvent("a2", "uninstalled")).toBeDefined();
  const argv = fs
    .readFileSync(path.join(cluster, "argv.log"), "utf8")
    .split("\n")
    .filter(Boolean)
    .slice(argvBefore)
    .map((l) => JSON.parse(l) as { argv: string[]; prog: string });
  const cmds = argv.map((a) => a.argv.join(" "));
  const iCordon = cmds.findIndex((c) => c === "kubectl cordon a2");
  const iDrain = cmds.findIndex((c) => c.startsWith("kubectl drain a2 "));
  const iDelete = cmds.findIndex((c) => c.startsWith("kubectl delete node a2"));
  expect(iCordon).toBeGreaterThanOrEqual(0);
  expect(iDrain).toBeGreaterThan(iCordon);
  expect(iDelete).toBeGreaterThan(iDrain);
  expect(argv.some((a) => a.prog === "k3s-agent-uninstall.sh")).toBe(true);
  const a2 = await shell("a2");
  try {
    expect((await a2.run(["test", "-e", "/usr/local/bin/k3s-agent-uninstall.sh"])).code).not.toBe(0);
    expect((await a2.run(["test", "-e", "/etc/rancher/k3s/token"])).code).not.toBe(0);
  } finally {
    await a2.host.close();
  }
  for (const n of others) {
    const o = await nodeObj(n);
    expect(isReady(o)).toBe(true);
    expect(o!.metadata.uid).toBe(before[n]);
    expect(o!.spec.unschedulable).toBeFalsy();
  }
  expect(await k3sPid("s1", "k3s")).toBe(pids.s1);
  expect(await k3sPid("a1", "k3s-agent")).toBe(pids.a1);
});

test("a drain that hangs fails within the drain timeout; a node that is gone does not block", async () => {
  // a pod bound to a1 whose termination nothing ever confirms (kwok runs no pods): the drain cannot finish
  const s = await shell("s1");
  try {
    const pod = JSON.stringify({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "stuck", namespace: "default" },
      spec: { nodeName: "a1", containers: [{ name: "c", image: "none" }] },
    });
    const r = await s.run(["k3s", "kubectl", "create", "-f", "-"], { stdin: pod });
    expect(r.code).toBe(0);
  } finally {
    await s.host.close();
  }
  const t = Date.now();
  await expect(deleteNode(outs.a1, deps)).rejects.toThrow(/a1: drain did not finish within 10 s/);
  expect(Date.now() - t).toBeLessThan(60_000);
  expect((await nodeObj("a1"))!.spec.unschedulable).toBe(true);
  await lab.powerOff("a1");
  // powered off: its kwok is gone, the real node lifecycle controller marks the Node (grace period 10 s)
  const off = Date.now();
  while (isReady(await nodeObj("a1")) && Date.now() - off < 60_000) await new Promise((r) => setTimeout(r, 500));
  expect(isReady(await nodeObj("a1"))).toBe(false);
  expect(Date.now() - off).toBeGreaterThan(5_000);
  const r = await deleteNode(outs.a1, deps);
  expect(r.warnings.join("\n")).toMatch(/a1: cannot reach the node/);
  expect(r).toMatchObject({ drained: false, nodeDeleted: true, uninstalled: false });
  expect((await kubectlJson(["get", "node", "a1"])).code).toBe(1);
});

test("servers go last-joined first; the first server last", async () => {
  const order = teardownOrder(plan)
    .filter((n) => n.role === "server")
    .map((n) => n.name);
  expect(order).toEqual(["s3", "s2", "s1"]);
  const t = Date.now();
  for (const n of order) {
    const r = await deleteNode(outs[n], deps);
    expect(r.uninstalled).toBe(true);
    expect(r.warnings).toEqual([]);
  }
  const un = order.map((n) => firstEvent(n, "uninstalled", t)!.tsMs);
  expect(un[0]).toBeLessThanOrEqual(un[1]);
  expect(un[1]).toBeLessThanOrEqual(un[2]);
});

test("the token never was a process argument, an environment value, a log line or a stray file", async () => {
  watcher.stop();
  // every command our code sent: argv and env free of it; it went on stdin (the token file writes)
  expect(recorded.length).toBeGreaterThan(50);
  for (const r of recorded) {
    expect(r.argv.join(" ")).not.toContain(TOKEN);
    expect(Object.values(r.env).join(" ")).not.toContain(TOKEN);
  }
  expect(
    recorded.filter((r) => r.argv[0] === "dd" && r.argv[1] === "of=/etc/rancher/k3s/token" && r.stdinBytes === TOKEN.length + 1).length,
  ).toBeGreaterThanOrEqual(5);
  // every stand-in process (k3s, kubectl, install, uninstall) as recorded by the lab
  const argvLog = fs.readFileSync(path.join(cluster, "argv.log"), "utf8");
  expect(argvLog.length).toBeGreaterThan(1000);
  expect(argvLog).not.toContain(TOKEN);
  // every process of the machine, sampled throughout
  expect(watcher.samples).toBeGreaterThan(100);
  expect(watcher.hits).toEqual([]);
  // the sampler does see a secret in an argv when there is one (canary)
  const canary = `canary-${crypto.randomBytes(8).toString("hex")}`;
  const w = new ProcWatcher(() => [canary], 20);
  w.start();
  await execP("sh", ["-c", "sleep 0.5", "sh", canary]);
  w.stop();
  expect(w.hits.some((h) => h.where === "cmdline" && h.text.includes(canary))).toBe(true);
  // our own diagnostics
  expect(logs.join("\n")).not.toContain(TOKEN);
  // every file of the lab (host filesystems, logs, cluster datastore) but the token files themselves
  // k3s's own token files: the config's token file, server/token, and server/cred/passwd (k3s keeps the
  // password there; here the apiserver's token file)
  const allowed = (p: string) => /\/etc\/rancher\/k3s\/token$|\/var\/lib\/rancher\/k3s\/server\/token$|\/var\/lib\/rancher\/k3s\/server\/cred\/passwd$/.test(p);
  expect(filesContaining(lab.dir, TOKEN, allowed)).toEqual([]);
  expect(filesContaining(cluster, TOKEN)).toEqual([]); // the shared observation logs never hold it
  for (const p of filesContaining(lab.dir, TOKEN)) expect((fs.statSync(p).mode & 0o777).toString(8)).toBe("600");
});
