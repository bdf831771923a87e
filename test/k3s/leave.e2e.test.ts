/**
 * Day-2 safety under the real Pulumi engine (issue 15 items 3, 5, 7) against a lab with two Turing Pi
 * BMCs: three servers (bmc1 slots 1–3) and two agents (bmc2 slots 1–2), every node flashed for real
 * through the BMC (tpi flash) and joined over real etcd / kube-apiserver. The program wires NodeLeave,
 * TuringPiFlash and K3sServer/K3sAgent the way components/fleet.ts and components/cluster.ts do, with
 * the unit dependencies of lib/delivery/rollout.ts (deliveryDependencies over the parsed fleet).
 * - re-flash of a server while another server is down: refused before the board is touched (no flash
 *   request reached the BMC, the Node and its etcd member are unchanged);
 * - a normal re-flash of a server: etcd snapshot on the deployer (0600), the node drained before the BMC
 *   was asked to flash it, etcd keeps three members afterwards, and the API stays available through
 *   the other servers (/readyz polled every 0.5 s; the longest gap is printed);
 * - refresh with an agent powered off: drift reported (the agent's k3s resource is updated), and the
 *   next preview plans its rejoin;
 * - a server join that fails mid-rollout (every node has a new image): the agents after it are not touched.
 * Skipped, saying so, when no Pulumi CLI is installed.
 */
import { execFile, spawn } from "child_process";
import { promisify } from "util";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as os from "os";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import type { Lab } from "../../lab/lab";
import { parseFleet } from "../../lib/model/parse";
import type { Fleet } from "../../lib/model/types";
import { deploymentPlan, DeploymentPlan } from "../../lib/plan/plan";
import { deliveryDependencies } from "../../lib/delivery/rollout";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { connectSsh } from "../../lib/transport/ssh";
import { validRaw } from "../model/fixtures";
import { makeNodeImage, TestImage } from "../delivery/labutil";
import { findPulumiBin, initStack, pulumiProject, runPulumi } from "./helpers";
import { K3sLab, startK3sLab } from "./labk3s";

jest.setTimeout(600_000);

const execFileP = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
const PULUMI_BIN = findPulumiBin();
const maybe = PULUMI_BIN ? describe : describe.skip;
if (!PULUMI_BIN) console.warn("leave.e2e: no Pulumi CLI (run scripts/pulumi-toolchain.sh); skipped");

const TOKEN = crypto.randomBytes(30).toString("hex").slice(0, 44) + "Qx7w";
const NODES = [
  { name: "s1", role: "server", bmc: "bmc1", slot: 1 },
  { name: "s2", role: "server", bmc: "bmc1", slot: 2 },
  { name: "s3", role: "server", bmc: "bmc1", slot: 3 },
  { name: "a1", role: "agent", bmc: "bmc2", slot: 1 },
  { name: "a2", role: "agent", bmc: "bmc2", slot: 2 },
];
let dir: string;
let k3sLab: K3sLab;
let lab: Lab;
let fleet: Fleet;
let plan: DeploymentPlan;
let pp: { pulumiBin: string; project: string; env: NodeJS.ProcessEnv };
let project: string;
const images: Record<string, TestImage> = {};
const started = Date.now();

const PROGRAM = `"use strict";
const fs = require("fs");
const pulumi = require("@pulumi/pulumi");
const { K3sNode, K3sKubeconfig } = require(process.env.K3S_E2E_BIN + "/providers/k3s");
const { TuringPiFlash } = require(process.env.K3S_E2E_BIN + "/providers/delivery");
const { NodeLeave } = require(process.env.K3S_E2E_BIN + "/providers/leave");
const cfg = new pulumi.Config();
const spec = JSON.parse(fs.readFileSync(cfg.require("specFile"), "utf8"));
const token = cfg.requireSecret("token");
const privateKey = cfg.requireSecret("sshKey");
const delivery = {}, leave = {}, join = {};
const joinWaiters = {};
const joinOf = (n) => (joinWaiters[n] = joinWaiters[n] || (() => { let r; const p = new Promise((x) => (r = x)); return { p, r }; })()).p;
for (const u of spec.units) {
  const servers = spec.units.filter((s) => s.role === "server" && s.name !== u.name).map((s) => ({ name: s.name, hostname: s.name,
    ssh: { ...s.ssh, hostKey: delivery[s.name] ? delivery[s.name].nodeHostKey : undefined } }));
  leave[u.name] = new NodeLeave(u.name + "-leave", { node: u.name, hostname: u.name, role: u.role, generation: u.image.imageId, servers, privateKey,
    drainTimeoutSeconds: 20, snapshotDir: spec.snapshotDir }, { dependsOn: u.dependsOn.map(joinOf) });
  delivery[u.name] = new TuringPiFlash(u.name + "-flash", { nodeName: u.name, hostname: u.name, slot: u.slot, bmc: u.bmc, node: u.ssh, image: u.image,
    flashTimeoutSeconds: 120, bootTimeoutSeconds: 60, sshPrivateKey: privateKey, sources: { image: u.image.imageId } }, { dependsOn: [leave[u.name], ...u.dependsOn.map((d) => delivery[d])], deleteBeforeReplace: true });
}
const serverUnits = spec.units.filter((x) => x.role === "server");
// as components/cluster.ts: learned host keys only for servers that join before the node
const refsFor = (u) => {
  const me = u.role === "server" ? serverUnits.findIndex((s) => s.name === u.name) : serverUnits.length;
  return serverUnits.map((s, j) => ({ node: s.name, address: s.ssh.address, ssh: j <= me ? { ...s.ssh, hostKey: delivery[s.name].nodeHostKey } : s.ssh }));
};
const joinArgs = (u) => ({ node: u.name, hostname: u.name, ssh: { ...u.ssh, hostKey: delivery[u.name].nodeHostKey }, servers: refsFor(u), privateKey, token,
  config: u.config, labels: u.labels, taints: [], joinTimeoutSeconds: 60, drainTimeoutSeconds: 20, generation: delivery[u.name].runningImageId, snapshotDir: spec.snapshotDir });
let prev;
const all = [];
for (const u of serverUnits) {
  const r = new K3sNode(u.name, { ...joinArgs(u), role: "server", bootstrap: !prev }, { dependsOn: prev ? [prev, delivery[u.name]] : [delivery[u.name]] });
  prev = r; all.push(r); join[u.name] = r;
}
for (const u of spec.units.filter((x) => x.role === "agent")) {
  join[u.name] = new K3sNode(u.name, { ...joinArgs(u), role: "agent" }, { dependsOn: [prev, delivery[u.name]] });
  all.push(join[u.name]);
}
for (const [n, w] of Object.entries(joinWaiters)) w.r(join[n]);
const kc = new K3sKubeconfig("kubeconfig", { apiSsh: { ...serverUnits[0].ssh, hostKey: delivery[serverUnits[0].name].nodeHostKey }, privateKey, server: spec.server,
  clusterName: "e2e-leave", members: all.map((r) => r.joinId) }, { dependsOn: all });
exports.kubeconfig = kc.kubeconfig;
`;

/** Write the program's spec: `version` per node picks its image; `badJoin` breaks that server's join config. */
function writeSpec(version: Record<string, string> = {}, badJoin?: string): void {
  const deps = deliveryDependencies(plan, 2);
  const units = deps.map((d) => {
    const n = NODES.find((x) => x.name === d.node)!;
    const h = lab.hosts[n.name];
    const b = lab.hosts[n.bmc];
    const img = images[`${n.name}-${version[n.name] ?? "v1"}`];
    const spec = fleet.nodes.find((x) => x.name === n.name)!;
    let config = renderK3sConfig(fleet, plan, spec);
    // an address this machine does not have: etcd and the apiserver cannot bind it, so k3s fails to start
    if (badJoin === n.name) config = config.replace(/^node-ip: .*$/m, "node-ip: 192.0.2.1");
    return {
      name: n.name,
      role: n.role,
      slot: n.slot,
      dependsOn: d.dependsOn,
      ssh: { address: h.address, port: h.port, user: h.user },
      bmc: { name: n.bmc, address: b.address, port: b.port, user: b.user, hostKey: b.hostKey, imageDir: "/mnt/sdcard/images" },
      image: { path: img.path, sha256: img.sha256, imageId: img.imageId },
      config,
      labels: nodeLabels(spec),
    };
  });
  fs.writeFileSync(
    path.join(project, "spec.json"),
    JSON.stringify({ units, server: plan.serverUrl, snapshotDir: path.join(project, ".cache", "e2e", "etcd-snapshots") }, null, 1),
  );
}

function pulumi(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  return runPulumi(pp, args, input);
}

async function on(host: string, argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const h = lab.hosts[host];
  const key = lab.hosts[host].hostKey ?? (await hostKeyOf(host));
  const s = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: key, privateKey: lab.deployKey.privateKey, retryForMs: 5000 });
  try {
    const r = await s.run(argv);
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } finally {
    await s.close();
  }
}
async function hostKeyOf(host: string): Promise<string> {
  const st = JSON.parse((await pulumi(["stack", "export"])).stdout);
  const r = st.deployment.resources.find((x: { urn: string }) => x.urn.endsWith(`::${host}-flash`));
  return r.outputs.nodeHostKey;
}
async function nodeInfo(n: string, via = "s1"): Promise<{ uid: string; ready: boolean; unschedulable: boolean } | undefined> {
  const r = await on(via, ["sudo", "-n", "k3s", "kubectl", "get", "node", n, "-o", "json"]);
  if (r.code !== 0) return undefined;
  const j = JSON.parse(r.stdout);
  return {
    uid: j.metadata.uid,
    ready: j.status.conditions.find((c: { type: string }) => c.type === "Ready")?.status === "True",
    unschedulable: !!j.spec.unschedulable,
  };
}
async function etcdMembers(via = "s1"): Promise<string[]> {
  const r = await on(via, ["sudo", "-n", "k3s", "kubectl", "get", "nodes", "-o", "json"]);
  const nodes = JSON.parse(r.stdout).items as { metadata: { name: string; annotations?: Record<string, string> } }[];
  const addr = nodes.find((x) => x.metadata.name === via)!.metadata.annotations!["etcd.k3s.cattle.io/node-address"];
  const tls = "/var/lib/rancher/k3s/server/tls/etcd";
  const m = await on(via, [
    "sudo",
    "-n",
    "curl",
    "-sS",
    "--cacert",
    `${tls}/server-ca.crt`,
    "--cert",
    `${tls}/client.crt`,
    "--key",
    `${tls}/client.key`,
    "-X",
    "POST",
    "-d",
    "{}",
    `https://${addr}:2379/v3/cluster/member/list`,
  ]);
  // voting members only: a server whose join failed may leave an unstarted learner (no name yet)
  return (JSON.parse(m.stdout).members as { name?: string; isLearner?: boolean }[])
    .filter((x) => !x.isLearner)
    .map((x) => (x.name ?? "").replace(/-[0-9a-f]{8}$/, ""))
    .sort();
}
async function waitFor(what: string, ms: number, fn: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`timed out waiting for ${what}`);
}
/** Flash requests the BMC logged for a slot (lab.log: "bmcd <bmc>: #N 'Node<slot> os install service' ... - started"), with their times. */
function flashStarts(bmc: string, slot: number): number[] {
  const f = path.join(lab.dir, "lab.log");
  return fs
    .readFileSync(f, "utf8")
    .split("\n")
    .filter((l) => l.includes(`bmcd ${bmc}: #`) && l.includes(`'Node${slot} os install service'`) && l.includes("- started"))
    .map((l) => Date.parse(l.split(" ")[0]));
}
function argvLog(): { ts: string; prog: string; argv: string[] }[] {
  return fs
    .readFileSync(path.join(k3sLab.clusterDir, "argv.log"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

/** Pids of every descendant of `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const e of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    try {
      const st = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      parent.set(Number(e), Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // ended meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent)
      if (pp === p && !out.includes(c)) {
        out.push(c);
        walk(c);
      }
  };
  walk(pid);
  return out;
}
function alive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1][0] !== "Z";
  } catch {
    return false;
  }
}
function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
  } catch {
    return "";
  }
}

maybe("day-2 safety under the Pulumi engine", () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "leave-e2e-"));
    const bin = path.join(dir, "bin");
    const tsc = execFileP(process.execPath, [
      path.join(ROOT, "node_modules/typescript/bin/tsc"),
      ...[
        "--strict",
        "--outDir",
        bin,
        "--rootDir",
        ROOT,
        "--module",
        "commonjs",
        "--target",
        "ES2022",
        "--esModuleInterop",
        "--skipLibCheck",
        "--types",
        "node",
      ],
      ...["providers/k3s.ts", "providers/delivery.ts", "providers/leave.ts"].map((p) => path.join(ROOT, p)),
    ]);
    k3sLab = await startK3sLab(
      [
        { name: "bmc1", role: "bmc" },
        { name: "bmc2", role: "bmc" },
        ...NODES.map((n) => ({ name: n.name, role: "node" as const, user: "deploy", tpi: { bmc: n.bmc, slot: n.slot } })),
      ],
      path.join(dir, "lab"),
      { K3S_SIM_GRACE_SECONDS: "8" },
    );
    lab = k3sLab.lab;
    const key = lab.deployKey.publicKey;
    for (const n of NODES)
      for (const v of ["v1", "v2"])
        images[`${n.name}-${v}`] = await makeNodeImage(dir, {
          name: `${n.name}-${v}`,
          hostname: n.name,
          authorizedKey: key,
          deployUser: "deploy",
          extra: `# ${v}\n`,
        });
    await tsc;
    const raw = validRaw();
    fleet = parseFleet({
      ...raw,
      clusterName: "e2e-leave",
      bmcs: ["bmc1", "bmc2"].map((b) => ({
        name: b,
        address: lab.hosts[b].address,
        ssh: { user: "root", port: lab.hosts[b].port, hostKey: lab.hosts[b].hostKey },
      })),
      nodes: NODES.map((n) => ({
        name: n.name,
        role: n.role,
        hardware: "turing-rk1",
        address: lab.hosts[n.name].address,
        delivery: { method: "tpi", bmc: n.bmc, slot: n.slot },
        ssh: { user: "deploy", port: lab.hosts[n.name].port },
      })),
      k3s: { joinTimeoutSeconds: 60, drainTimeoutSeconds: 20 },
      authorizedKeys: [key],
    });
    plan = deploymentPlan(fleet);
    const made = pulumiProject({ dir, name: "leave-e2e", program: PROGRAM, pulumiBin: PULUMI_BIN!, providerBin: bin, root: ROOT });
    pp = { pulumiBin: PULUMI_BIN!, ...made };
    project = pp.project;
    writeSpec();
    await initStack(pp, "e2e", { specFile: path.join(project, "spec.json"), token: TOKEN, sshKey: lab.deployKey.privateKey });
  });

  afterAll(async () => {
    await lab?.stop();
    await k3sLab?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
    console.log(`leave.e2e wall time: ${Math.round((Date.now() - started) / 1000)} s`);
  });

  test("up: every node flashed and joined, unit by unit", async () => {
    await pulumi(["up", "--yes", "--skip-preview"]);
    for (const n of NODES) expect((await nodeInfo(n.name))?.ready).toBe(true);
    expect(await etcdMembers()).toEqual(["s1", "s2", "s3"]);
    // unit order: s2's flash started after s1 was Ready, the canary's after s3's join, a2's after the canary's
    const log = fs
      .readFileSync(path.join(k3sLab.clusterDir, "join.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { tsMs: number; node: string; event: string });
    const ready = (n: string) => log.find((e) => e.node === n && e.event === "ready")!.tsMs;
    expect(flashStarts("bmc1", 2)[0]).toBeGreaterThanOrEqual(ready("s1"));
    expect(flashStarts("bmc2", 1)[0]).toBeGreaterThanOrEqual(ready("s3"));
    expect(flashStarts("bmc2", 2)[0]).toBeGreaterThanOrEqual(ready("a1"));
  });

  test("re-flash of a server while another server is down: refused before the board is touched", async () => {
    const before = { flashes: flashStarts("bmc1", 2).length, s2: await nodeInfo("s2") };
    await lab.powerOff("s3");
    writeSpec({ s2: "v2" });
    const err = await pulumi(["up", "--yes", "--skip-preview"]).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/refusing the re-flash of server s2/);
    expect(err?.message).toMatch(/etcd member s3-[0-9a-f]{8} \(server s3\) is not healthy/);
    expect(err?.message).toMatch(/quorum needs 2/);
    expect(flashStarts("bmc1", 2).length).toBe(before.flashes);
    const s2 = await nodeInfo("s2");
    expect(s2).toEqual({ ...before.s2!, unschedulable: false });
    expect(await etcdMembers()).toEqual(["s1", "s2", "s3"]);
    await lab.powerOn("s3");
    await waitFor("s3 Ready again", 120_000, async () => (await nodeInfo("s3"))?.ready === true);
  });

  test("normal re-flash of a server: snapshot (0600) on the deployer, drained before the flash, quorum and API kept", async () => {
    const s1 = lab.hosts.s1.address;
    const s3 = lab.hosts.s3.address;
    const kc = parseYaml(JSON.parse((await pulumi(["stack", "output", "--json", "--show-secrets"])).stdout).kubeconfig);
    const u = kc.users[0].user;
    const agent = new https.Agent({
      cert: Buffer.from(u["client-certificate-data"], "base64"),
      key: Buffer.from(u["client-key-data"], "base64"),
      rejectUnauthorized: false,
    });
    const ok = (addr: string) =>
      new Promise<boolean>((res) => {
        const req = https.get({ host: addr, port: 6443, path: "/readyz", agent, timeout: 2000 }, (r) => {
          r.resume();
          res(r.statusCode === 200);
        });
        req.on("error", () => res(false));
        req.on("timeout", () => {
          req.destroy();
          res(false);
        });
      });
    const samples: { t: number; up: boolean }[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const t = Date.now();
        const [a, b] = await Promise.all([ok(s1), ok(s3)]);
        samples.push({ t, up: a || b });
        await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - t))));
      }
    })();
    const t0 = Date.now();
    writeSpec({ s2: "v2" });
    await pulumi(["up", "--yes", "--skip-preview"]).finally(() => (polling = false));
    await poller;
    // the snapshot: a file on the deployer, mode 0600, in a 0700 directory, not in the state
    const snapDir = path.join(project, ".cache", "e2e", "etcd-snapshots");
    const snaps = fs.readdirSync(snapDir).filter((f) => f.startsWith("isar-k3s-before-s2"));
    expect(snaps).toHaveLength(1);
    expect(fs.statSync(path.join(snapDir, snaps[0])).mode & 0o777).toBe(0o600);
    expect(fs.statSync(snapDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(snapDir, snaps[0])).size).toBeGreaterThan(4096);
    // drained (and deleted) through another server before the BMC was asked to flash slot 2
    const drain = argvLog().find((e) => Date.parse(e.ts) >= t0 && e.argv.includes("drain") && e.argv.includes("s2"));
    expect(drain).toBeDefined();
    const flash = flashStarts("bmc1", 2).filter((t) => t >= t0);
    expect(flash).toHaveLength(1);
    expect(Date.parse(drain!.ts)).toBeLessThan(flash[0]);
    // quorum kept: three members again, every server Ready
    expect(await etcdMembers()).toEqual(["s1", "s2", "s3"]);
    for (const n of ["s1", "s2", "s3"]) expect((await nodeInfo(n))?.ready).toBe(true);
    let longest = 0;
    let downSince: number | undefined;
    for (const s of samples) {
      if (!s.up && downSince === undefined) downSince = s.t;
      if (s.up && downSince !== undefined) {
        longest = Math.max(longest, s.t - downSince);
        downSince = undefined;
      }
    }
    const down = samples.filter((s) => !s.up).length;
    console.log(
      `leave.e2e: re-flash of s2: ${samples.length} /readyz polls through s1 and s3 (0.5 s), ${down} failed, longest gap ${(longest / 1000).toFixed(1)} s`,
    );
    expect(samples.length).toBeGreaterThan(10);
    expect(down).toBe(0);
  });

  test("refresh with an agent powered off reports drift; the next preview plans its rejoin", async () => {
    await lab.powerOff("a2");
    await waitFor("a2 NotReady", 90_000, async () => (await nodeInfo("a2"))?.ready === false);
    const out = (await pulumi(["refresh", "--yes", "--skip-preview"])).stdout;
    expect(out).toMatch(/a2\s+updated/);
    const pre = (await pulumi(["preview", "--diff"])).stdout;
    expect(pre).toMatch(/~ pulumi-nodejs:dynamic\/k3s:K3sNode: \(update\)\s*\n\s*\[id=a2-/);
    await lab.powerOn("a2");
    await waitFor("a2 Ready again", 90_000, async () => (await nodeInfo("a2"))?.ready === true);
  });

  test("kill -9 of the engine during a re-flash: its provider processes stop; cancel, refresh, up converge", async () => {
    writeSpec({ s2: "v1" });
    const t0 = Date.now();
    const cli = spawn(path.join(PULUMI_BIN!, "pulumi"), ["up", "--yes", "--skip-preview", "--non-interactive", "--cwd", project], {
      env: pp.env,
      stdio: "ignore",
    });
    await waitFor("the BMC flashing s2", 180_000, async () => flashStarts("bmc1", 2).some((t) => t >= t0));
    const providers = descendants(cli.pid!).filter((p) => /dynamic-provider/.test(cmdline(p)));
    expect(providers.length).toBeGreaterThan(0);
    cli.kill("SIGKILL");
    const killedAt = Date.now();
    await waitFor("the provider processes to exit", 10_000, async () => providers.every((p) => !alive(p)));
    console.log(`leave.e2e: ${providers.length} provider process(es) exited ${((Date.now() - killedAt) / 1000).toFixed(1)} s after kill -9 of the engine`);
    // the documented recovery, with no command on the nodes
    await pulumi(["cancel", "--yes"]).catch(() => undefined);
    await pulumi(["refresh", "--yes", "--skip-preview", "--clear-pending-creates"]);
    await pulumi(["up", "--yes", "--skip-preview"]);
    for (const n of NODES) expect((await nodeInfo(n.name))?.ready).toBe(true);
    expect(await etcdMembers()).toEqual(["s1", "s2", "s3"]);
    const pre = (await pulumi(["preview", "--expect-no-changes"])).stdout;
    expect(pre).not.toMatch(/to (update|replace|create|delete)/);
  });

  test("a server join that fails mid-rollout: the agents after it are not touched", async () => {
    const before = { a1: await nodeInfo("a1"), a2: await nodeInfo("a2"), f1: flashStarts("bmc2", 1).length, f2: flashStarts("bmc2", 2).length };
    writeSpec({ s3: "v2", a1: "v2", a2: "v2" }, "s3");
    const err = await pulumi(["up", "--yes", "--skip-preview"]).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/pulumi up failed/);
    const s3 = JSON.parse((await pulumi(["stack", "export"])).stdout).deployment.resources.find((r: { urn: string }) => r.urn.endsWith("::s3"));
    expect(s3?.outputs?.generation).not.toBe(images["s3-v2"].imageId); // its join did not complete
    expect([flashStarts("bmc2", 1).length, flashStarts("bmc2", 2).length]).toEqual([before.f1, before.f2]);
    expect(await nodeInfo("a1")).toEqual(before.a1);
    expect(await nodeInfo("a2")).toEqual(before.a2);
    expect(argvLog().some((e) => e.argv.includes("cordon") && (e.argv.includes("a1") || e.argv.includes("a2")))).toBe(false);
    expect(await etcdMembers()).toEqual(["s1", "s2"]);
  });
});
