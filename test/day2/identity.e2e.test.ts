/**
 * Day-2 changes keep the cluster (issue 15, items 1-3), under the real Pulumi engine (Go-built CLI, file
 * backend) against a lab of its own (random addresses): three servers s1..s3 (s1 on a BMC slot, so it
 * can be re-flashed for real with tpi) and one agent a1, with real etcd, kube-apiserver, controllers and
 * kwok (lab/k3s). The proof that nothing was lost: the kube-system namespace UID and a canary ConfigMap
 * created after the first `up`, both read back from the real API after every change, with the etcd
 * member list equal to the configured servers, every Node Ready, and a `pulumi preview` that expects no
 * changes. During every change a poller asks /readyz of the servers that are not changed, every 0.5 s;
 * the time with no server answering is the API's unavailability (printed, and 0 expected).
 * (a) a label edit on each server in turn: only that Node's labels change, no rejoin (same Node UID,
 *     same join ids), no image input changes (the node files' digest is the same);
 * (b) a re-flash of the first server (tpi flash of a fresh image, a new generation): it rejoins the
 *     existing cluster through a live server, never cluster-init;
 * (c) agent -> server, then server -> agent of a1, each one update of one resource;
 * (d) with the other servers down (their etcd data on disk), a rejoin of the first server refuses,
 *     naming the recorded cluster, and changes nothing: never cluster-init against an existing cluster.
 * The program uses K3sNode directly (chained as components/cluster.ts chains it). Skipped, saying so,
 * when no Pulumi CLI is installed.
 */
import { execFile } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { parse as parseYaml } from "yaml";
import { k8sComponentsDir, type Lab } from "../../lab/lab";
import { parseFleet } from "../../lib/model/parse";
import type { Fleet, NodeSpec } from "../../lib/model/types";
import { deploymentPlan } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { nodeFilesDigest, renderNodeFiles } from "../../lib/render/node-files";
import { connectSsh } from "../../lib/transport/ssh";
import { makeNodeImage, TestImage } from "../delivery/labutil";
import { validRaw } from "../model/fixtures";
import { findPulumiBin, initStack, pulumiProject, runPulumi, testToken } from "../k3s/helpers";
import { flashSlotNode, K3sLab, startK3sLab } from "../k3s/labk3s";

const execP = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
jest.setTimeout(900_000);

const PULUMI_BIN = findPulumiBin(ROOT);
const maybe = PULUMI_BIN ? describe : describe.skip;
if (!PULUMI_BIN) console.warn("day2 identity e2e: no Pulumi CLI (run scripts/pulumi-toolchain.sh); skipped");

const TOKEN = testToken("Day2");
const NODES = ["s1", "s2", "s3", "a1"];
let dir: string;
let k3sLab: K3sLab;
let lab: Lab;
let fleet: Fleet;
let env: NodeJS.ProcessEnv;
let project: string;
let image: TestImage;
let admin: { ca: Buffer; cert: Buffer; key: Buffer };
let clusterUid: string;
const measured: { scenario: string; unavailableSeconds: number; samples: number; wallSeconds: number }[] = [];

/** What the stack config says, per node: role, labels, generation. */
const state: Record<string, { role: "server" | "agent"; labels: Record<string, string>; generation: string }> = {};

const PROGRAM = `"use strict";
const fs = require("fs");
const pulumi = require("@pulumi/pulumi");
const { K3sNode } = require(process.env.K3S_E2E_BIN + "/providers/k3s");
const cfg = new pulumi.Config();
const spec = JSON.parse(fs.readFileSync(cfg.require("specFile"), "utf8"));
const token = cfg.requireSecret("token");
const privateKey = cfg.requireSecret("sshKey");
const servers = spec.nodes.filter((n) => n.role === "server");
const serverRefs = servers.map((n) => ({ node: n.name, address: n.address, ssh: n.ssh }));
const common = (n) => ({ node: n.name, hostname: n.hostname, role: n.role, ssh: n.ssh, servers: serverRefs, privateKey, token, config: n.config,
  labels: n.labels, taints: [], joinTimeoutSeconds: spec.joinTimeoutSeconds, drainTimeoutSeconds: spec.drainTimeoutSeconds, generation: n.generation });
let prev;
const all = [];
servers.forEach((s, i) => { prev = new K3sNode(s.name, { ...common(s), bootstrap: i === 0 }, { dependsOn: prev ? [prev] : [] }); all.push(prev); });
for (const a of spec.nodes.filter((n) => n.role === "agent")) all.push(new K3sNode(a.name, common(a), { dependsOn: [prev] }));
exports.joins = pulumi.all(all.map((r) => pulumi.all([r.hostname, r.joinId, r.clusterId, r.joinedVia]))).apply((xs) => Object.fromEntries(xs.map(([h, j, c, v]) => [h, { joinId: j, clusterId: c, joinedVia: v }])));
`;

function nodeSpec(name: string): NodeSpec {
  const n = fleet.nodes.find((x) => x.name === name)!;
  return { ...n, role: state[name].role, labels: state[name].labels };
}

function writeSpec(): void {
  const ep = (n: string) => ({ address: lab.hosts[n].address, port: lab.hosts[n].port, user: lab.hosts[n].user, hostKey: lab.hosts[n].hostKey });
  const spec = {
    joinTimeoutSeconds: 150,
    drainTimeoutSeconds: 30,
    nodes: NODES.map((name) => {
      const n = nodeSpec(name);
      return {
        name,
        hostname: n.hostname,
        role: n.role,
        address: n.address,
        ssh: ep(name),
        config: renderK3sConfig(fleet, deploymentPlan(fleet), n),
        labels: nodeLabels(n),
        generation: state[name].generation,
      };
    }),
  };
  fs.writeFileSync(path.join(project, "spec.json"), JSON.stringify(spec, null, 1));
}

async function pulumi(args: string[], input?: string): Promise<string> {
  return (await runPulumi({ pulumiBin: PULUMI_BIN!, project, env }, args, input)).stdout;
}

/** An HTTPS GET to one server's kube-apiserver with the cluster's admin identity. */
function apiGet(address: string, p: string, timeoutMs = 1000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: address, port: 6443, path: p, ca: admin.ca, cert: admin.cert, key: admin.key, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

/** GET JSON through the first of `servers` that answers. */
async function apiJson(p: string, servers = liveServerNames()): Promise<Record<string, unknown>> {
  const errors: string[] = [];
  for (const s of servers) {
    try {
      const r = await apiGet(lab.hosts[s].address, p, 5000);
      if (r.status === 200) return JSON.parse(r.body);
      errors.push(`${s}: HTTP ${r.status}`);
    } catch (e) {
      errors.push(`${s}: ${(e as Error).message}`);
    }
  }
  throw new Error(`GET ${p}: no server answered (${errors.join("; ")})`);
}

function liveServerNames(): string[] {
  return NODES.filter((n) => state[n].role === "server");
}

/**
 * Poll /readyz of `servers` every 0.5 s until stopped; unavailable = samples in which none answered "ok",
 * times 0.5 s.
 */
function pollReadyz(servers: string[]): { stop: () => Promise<{ samples: number; failed: number }> } {
  let stopped = false;
  let samples = 0;
  let failed = 0;
  const loop = (async () => {
    while (!stopped) {
      const tick = Date.now();
      const answers = await Promise.all(
        servers.map((s) =>
          apiGet(lab.hosts[s].address, "/readyz", 1000).then(
            (r) => r.status === 200 && r.body === "ok",
            () => false,
          ),
        ),
      );
      samples++;
      if (!answers.some(Boolean)) failed++;
      await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - tick))));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      return { samples, failed };
    },
  };
}

/** Run one change with the poller on the unchanged servers; record the API's unavailability. */
async function measure<T>(scenario: string, unchanged: string[], fn: () => Promise<T>): Promise<T> {
  const t = Date.now();
  const poller = pollReadyz(unchanged);
  try {
    return await fn();
  } finally {
    const r = await poller.stop();
    const m = { scenario, unavailableSeconds: r.failed * 0.5, samples: r.samples, wallSeconds: Math.round((Date.now() - t) / 100) / 10 };
    measured.push(m);
    console.log(`day2 API availability: ${JSON.stringify(m)}`);
  }
}

type ApiNode = { metadata: { name: string; uid: string; labels: Record<string, string> }; status: { conditions: { type: string; status: string }[] } };
async function apiNodes(): Promise<ApiNode[]> {
  return (await apiJson("/api/v1/nodes")).items as ApiNode[];
}

/** `etcdctl member list` through one server's own member: the voting members' node names. */
async function etcdMembers(through: string): Promise<string[]> {
  const tls = lab.hostPath(through, "/var/lib/rancher/k3s/server/tls/etcd");
  const { stdout } = await execP(
    path.join(k8sComponentsDir(ROOT), "bin/etcdctl"),
    [
      `--endpoints=https://${lab.hosts[through].address}:2379`,
      `--cacert=${tls}/server-ca.crt`,
      `--cert=${tls}/client.crt`,
      `--key=${tls}/client.key`,
      "member",
      "list",
    ],
    { env: { ...process.env, ETCDCTL_API: "3" } },
  );
  return stdout
    .trim()
    .split("\n")
    .map((l) => l.split(", "))
    .filter((f) => f[5] !== "true")
    .map((f) => f[2].replace(/-[0-9a-f]{8}$/, ""))
    .sort();
}

async function joins(): Promise<Record<string, { joinId: string; clusterId: string; joinedVia: string }>> {
  return JSON.parse(await pulumi(["stack", "output", "joins", "--json"]));
}

/** The cluster is the same one, whole: UID, canary, etcd members = configured servers, every Node Ready, a no-op preview. */
async function expectIntact(): Promise<void> {
  const servers = liveServerNames();
  const ns = (await apiJson("/api/v1/namespaces/kube-system")) as { metadata: { uid: string } };
  expect(ns.metadata.uid).toBe(clusterUid);
  const canary = (await apiJson("/api/v1/namespaces/default/configmaps/day2-canary")) as { data: Record<string, string> };
  expect(canary.data).toEqual({ born: "first-up", uid: clusterUid });
  expect(await etcdMembers(servers.find((s) => s !== "s1") ?? servers[0])).toEqual([...servers].sort());
  const nodes = await apiNodes();
  expect(nodes.map((n) => n.metadata.name).sort()).toEqual([...NODES].sort());
  for (const n of nodes) expect([n.metadata.name, n.status.conditions.find((c) => c.type === "Ready")?.status]).toEqual([n.metadata.name, "True"]);
  for (const j of Object.values(await joins())) expect(j.clusterId).toBe(clusterUid);
  await pulumi(["preview", "--expect-no-changes"]);
}

/** Run `argv` as root on a lab node (the deploy user through sudo -n). */
async function onNode(name: string, argv: string[], timeoutMs = 200_000): Promise<{ code: number | null; out: string }> {
  const h = lab.hosts[name];
  const sh = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey });
  try {
    const r = await sh.run(["sudo", "-n", ...argv], { timeoutMs });
    return { code: r.code, out: r.stdout.toString() + r.stderr.toString() };
  } finally {
    await sh.close();
  }
}

/** Wait until every Node is Ready again (after servers were stopped). */
async function waitAllReady(timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nodes = await apiNodes().catch(() => [] as ApiNode[]);
    if (nodes.length === NODES.length && nodes.every((n) => n.status.conditions.some((c) => c.type === "Ready" && c.status === "True"))) return;
    if (Date.now() > deadline) throw new Error(`not every Node Ready within ${timeoutMs} ms: ${JSON.stringify(nodes.map((n) => n.metadata.name))}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function flashS1(): Promise<void> {
  await flashSlotNode(lab, image, "s1", 1);
}

maybe("day-2 changes keep the cluster (real engine, real etcd and API)", () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "day2-"));
    const bin = path.join(dir, "bin");
    const tsc = execP(process.execPath, [
      path.join(ROOT, "node_modules/typescript/bin/tsc"),
      ...["--outDir", bin, "--rootDir", ROOT, "--module", "commonjs", "--target", "ES2022", "--esModuleInterop", "--skipLibCheck", "--types", "node"],
      path.join(ROOT, "providers/k3s.ts"),
    ]);
    k3sLab = await startK3sLab(
      [
        { name: "bmc", role: "bmc" as const },
        { name: "s1", role: "node" as const, user: "deploy", tpi: { bmc: "bmc", slot: 1 } },
        ...["s2", "s3", "a1"].map((name) => ({ name, role: "node" as const, user: "deploy" })),
      ],
      path.join(dir, "lab"),
      { K3S_SIM_START_TIMEOUT_SECONDS: "150", K3S_SIM_JOIN_SECONDS: "0.5", K3S_SIM_GRACE_SECONDS: "10", K3S_SIM_LEASE_SECONDS: "4" },
    );
    lab = k3sLab.lab;
    image = await makeNodeImage(dir, { name: "s1img", hostname: "s1", authorizedKey: lab.deployKey.publicKey, deployUser: "deploy" });
    await flashS1();
    await tsc;
    const ssh = (n: string) => ({ user: lab.hosts[n].user, port: lab.hosts[n].port, hostKey: lab.hosts[n].hostKey });
    const node = (name: string, role: string) => ({
      name,
      role,
      hardware: "x86-controller",
      address: lab.hosts[name].address,
      delivery: { method: "swupdate" },
      ssh: ssh(name),
    });
    fleet = parseFleet({
      ...validRaw(),
      clusterName: "day2",
      bmcs: [{ name: "bmc", address: lab.hosts.bmc.address, ssh: ssh("bmc") }],
      nodes: [node("s1", "server"), node("s2", "server"), node("s3", "server"), node("a1", "agent")],
      k3s: { joinTimeoutSeconds: 150, drainTimeoutSeconds: 30 },
      authorizedKeys: [lab.deployKey.publicKey],
    });
    for (const n of fleet.nodes) state[n.name] = { role: n.role, labels: { "example.com/zone": `zone-${n.name}` }, generation: "image-1" };
    ({ project, env } = pulumiProject({ dir, name: "day2", program: PROGRAM, pulumiBin: PULUMI_BIN!, providerBin: bin, root: ROOT }));
    writeSpec();
    await initStack({ pulumiBin: PULUMI_BIN!, project, env }, "day2", {
      specFile: path.join(project, "spec.json"),
      token: TOKEN,
      sshKey: lab.deployKey.privateKey,
    });
  });

  afterAll(async () => {
    if (measured.length)
      console.log(`day2 API unavailability (s): ${measured.map((m) => `${m.scenario}=${m.unavailableSeconds} (${m.wallSeconds} s)`).join(", ")}`);
    await lab?.stop();
    await k3sLab?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("first up: s1 initialises the cluster, the others join through a live member; the canary is written", async () => {
    await pulumi(["up", "--yes", "--skip-preview"]);
    const j = await joins();
    expect(j.s1.joinedVia).toBe("cluster-init");
    for (const n of ["s2", "s3", "a1"]) expect(j[n].joinedVia).toMatch(/^s[12]$/);
    // the admin identity, read from a server's own kubeconfig (0600), for this machine's API calls
    const kc = parseYaml(fs.readFileSync(lab.hostPath("s2", "/etc/rancher/k3s/k3s.yaml"), "utf8"));
    const b64 = (s: string) => Buffer.from(s, "base64");
    admin = {
      ca: b64(kc.clusters[0].cluster["certificate-authority-data"]),
      cert: b64(kc.users[0].user["client-certificate-data"]),
      key: b64(kc.users[0].user["client-key-data"]),
    };
    clusterUid = ((await apiJson("/api/v1/namespaces/kube-system")) as { metadata: { uid: string } }).metadata.uid;
    expect(j.s1.clusterId).toBe(clusterUid);
    const sh = await connectSsh({
      host: lab.hosts.s2.address,
      port: lab.hosts.s2.port,
      user: "deploy",
      hostKey: lab.hosts.s2.hostKey,
      privateKey: lab.deployKey.privateKey,
    });
    try {
      const r = await sh.run([
        "sudo",
        "-n",
        "k3s",
        "kubectl",
        "create",
        "configmap",
        "day2-canary",
        "--from-literal=born=first-up",
        `--from-literal=uid=${clusterUid}`,
      ]);
      expect([r.code, r.stdout.toString().trim()]).toEqual([0, "configmap/day2-canary created"]);
    } finally {
      await sh.close();
    }
    await expectIntact();
  });

  test("(a) a label edit on each server changes only that Node's labels: no rejoin, no image change, API always up", async () => {
    for (const s of ["s1", "s2", "s3"]) {
      const before = await joins();
      const nodesBefore = Object.fromEntries((await apiNodes()).map((n) => [n.metadata.name, n.metadata]));
      const digestBefore = nodeFilesDigest(renderNodeFiles(fleet, deploymentPlan(fleet), nodeSpec(s)));
      state[s].labels = { ...state[s].labels, "example.com/zone": `moved-${s}`, "example.com/edited": "yes" };
      // the node's image inputs (every file of its image) are the same with the new labels
      const edited = { ...fleet, nodes: fleet.nodes.map((n) => (n.name === s ? nodeSpec(s) : n)) };
      expect(nodeFilesDigest(renderNodeFiles(edited, deploymentPlan(edited), nodeSpec(s)))).toBe(digestBefore);
      writeSpec();
      const out = await measure(
        `label edit ${s}`,
        ["s1", "s2", "s3"].filter((x) => x !== s),
        () => pulumi(["up", "--yes", "--skip-preview"]),
      );
      expect(out).toMatch(new RegExp(`${s}\\s+updated`));
      expect(out).not.toMatch(/replaced|created|deleted/);
      expect(await joins()).toEqual(before);
      const after = Object.fromEntries((await apiNodes()).map((n) => [n.metadata.name, n.metadata]));
      for (const n of NODES) {
        expect(after[n].uid).toBe(nodesBefore[n].uid);
        if (n === s) expect(after[n].labels).toMatchObject({ "example.com/zone": `moved-${s}`, "example.com/edited": "yes" });
        else expect(after[n].labels).toEqual(nodesBefore[n].labels);
      }
    }
    await expectIntact();
    for (const m of measured.filter((x) => x.scenario.startsWith("label edit"))) expect(m.unavailableSeconds).toBe(0);
  });

  test("(b) the first server, re-flashed, rejoins the existing cluster through a live member", async () => {
    const before = await joins();
    const oldUid = (await apiNodes()).find((n) => n.metadata.name === "s1")!.metadata.uid;
    await measure("re-flash s1", ["s2", "s3"], async () => {
      await flashS1(); // a fresh image: no k3s state, a new host key
      state.s1.generation = "image-2";
      writeSpec();
      return pulumi(["up", "--yes", "--skip-preview"]);
    });
    const j = await joins();
    expect(j.s1.joinedVia).toMatch(/^s[23]$/);
    expect(j.s1.joinId).not.toBe(before.s1.joinId);
    for (const n of ["s2", "s3", "a1"]) expect(j[n].joinId).toBe(before[n].joinId);
    expect((await apiNodes()).find((n) => n.metadata.name === "s1")!.metadata.uid).not.toBe(oldUid);
    await expectIntact();
  });

  test("(c) agent -> server, then server -> agent: the old role leaves before the new one joins; nothing else moves", async () => {
    const before = await joins();
    state.a1.role = "server";
    writeSpec();
    const up1 = await measure("a1 agent->server", ["s1", "s2", "s3"], () => pulumi(["up", "--yes", "--skip-preview"]));
    expect(up1).toMatch(/a1\s+updated/);
    expect(up1).not.toMatch(/replaced|created|deleted/);
    const a1 = (await apiNodes()).find((n) => n.metadata.name === "a1")!;
    expect(a1.metadata.labels["node-role.kubernetes.io/etcd"]).toBe("true");
    await expectIntact(); // etcd members: s1, s2, s3, a1
    state.a1.role = "agent";
    writeSpec();
    const up2 = await measure("a1 server->agent", ["s1", "s2", "s3"], () => pulumi(["up", "--yes", "--skip-preview"]));
    expect(up2).toMatch(/a1\s+updated/);
    expect((await apiNodes()).find((n) => n.metadata.name === "a1")!.metadata.labels["node-role.kubernetes.io/etcd"]).toBeUndefined();
    await expectIntact(); // etcd members: s1, s2, s3
    const j = await joins();
    for (const n of ["s1", "s2", "s3"]) expect(j[n].joinId).toBe(before[n].joinId);
    for (const m of measured.filter((x) => x.scenario.startsWith("a1 "))) expect(m.unavailableSeconds).toBe(0);
  });

  test("(d) no live member: the first server's rejoin refuses with the recorded cluster and changes nothing (no cluster-init)", async () => {
    const marker = fs.readFileSync(lab.hostPath("s1", "/etc/rancher/k3s/isar-k3s-join"), "utf8");
    for (const s of ["s2", "s3"]) expect(await onNode(s, ["systemctl", "stop", "k3s"])).toMatchObject({ code: 0 });
    try {
      state.s1.generation = "image-3";
      writeSpec();
      const err = await pulumi(["up", "--yes", "--skip-preview"]).then(
        () => "",
        (e: Error) => e.message,
      );
      expect(err).toMatch(/s1: cannot rejoin, nothing was changed: the cluster exists \(kube-system [0-9a-f-]{36}, recorded in state when s1 last joined\)/);
      expect(err).toMatch(/s2 \([0-9.]+\): holds cluster data .* but its API does not answer/);
      expect(err).toMatch(/cluster-init would start a new, empty cluster/);
      // s1 untouched: same join marker, its etcd member's data still there
      expect(fs.readFileSync(lab.hostPath("s1", "/etc/rancher/k3s/isar-k3s-join"), "utf8")).toBe(marker);
      expect(fs.existsSync(lab.hostPath("s1", "/var/lib/rancher/k3s/server/db/etcd"))).toBe(true);
    } finally {
      for (const s of ["s2", "s3"]) expect(await onNode(s, ["systemctl", "start", "k3s"])).toMatchObject({ code: 0 });
    }
    state.s1.generation = "image-2";
    writeSpec();
    await waitAllReady();
    await expectIntact();
  });
});
