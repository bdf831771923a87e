/**
 * The k3s resources under the real Pulumi engine (the Go-built CLI of scripts/pulumi-toolchain.sh, file
 * backend, passphrase secrets) against the simulated lab:
 * - `pulumi up` joins three servers one after another and two agents after them (dependsOn chain, order
 *   read from the stand-in's join.log); the kubeconfig stack output is a secret and points at s1;
 * - the state (checkpoint, history, backups) never holds the token, the SSH key or the kubeconfig's
 *   key in plaintext;
 * - a second `up` with one agent relabelled and the other removed from the config: an in-place update
 *   (kubectl, no rejoin) and a removal (drain, delete, uninstall);
 * - a third `up` with a new image id for the remaining agent replaces its join (delete first, then create);
 * - `pulumi destroy` removes the rest in dependency order: agents, then servers last-joined first.
 * The program uses K3sServer / K3sAgent / K3sKubeconfig directly (chained as components/cluster.ts chains
 * them), since the random and kubernetes provider plugins cannot be built here; the component's wiring
 * is covered by cluster.mock.test.ts. Skipped, saying so, when no Pulumi CLI is installed.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { parse as parseYaml } from "yaml";
import type { Lab } from "../../lab/lab";
import { parseFleet } from "../../lib/model/parse";
import type { Fleet } from "../../lib/model/types";
import { deploymentPlan, DeploymentPlan } from "../../lib/plan/plan";
import { nodeLabels, renderK3sConfig } from "../../lib/render/k3s-config";
import { connectSsh } from "../../lib/transport/ssh";
import { validRaw } from "../model/fixtures";
import { filesContaining } from "./helpers";
import { K3sLab, startK3sLab } from "./labk3s";

const execP = promisify(execFile);
const ROOT = path.resolve(__dirname, "../..");
jest.setTimeout(300_000);

function findPulumiBin(): string | undefined {
  const cands: string[] = [];
  if (process.env.PULUMI_BIN_DIR) cands.push(process.env.PULUMI_BIN_DIR);
  const pinned = path.join(ROOT, ".pulumi-bin-dir");
  if (fs.existsSync(pinned)) cands.push(fs.readFileSync(pinned, "utf8").trim());
  const cache = path.join(process.env.ISAR_K3S_CACHE ?? path.join(os.homedir(), ".cache/isar-k3s"), "pulumi");
  if (fs.existsSync(cache))
    for (const v of fs
      .readdirSync(cache)
      .filter((d) => /^v\d/.test(d))
      .sort()
      .reverse())
      cands.push(path.join(cache, v, "bin"));
  return cands.find((d) => ["pulumi", "pulumi-language-nodejs", "pulumi-resource-pulumi-nodejs"].every((b) => fs.existsSync(path.join(d, b))));
}
const PULUMI_BIN = findPulumiBin();
const maybe = PULUMI_BIN ? describe : describe.skip;
if (!PULUMI_BIN) console.warn("pulumi.e2e: no Pulumi CLI (run scripts/pulumi-toolchain.sh); skipped");

const TOKEN =
  crypto
    .randomBytes(40)
    .toString("base64")
    .replace(/[^A-Za-z0-9]/g, "")
    .slice(0, 44) + "Qx7w";
let dir: string;
let k3sLab: K3sLab;
let lab: Lab;
let fleet: Fleet;
let plan: DeploymentPlan;
let env: NodeJS.ProcessEnv;
let project: string;

const PROGRAM = `"use strict";
const fs = require("fs");
const pulumi = require("@pulumi/pulumi");
const { K3sServer, K3sAgent, K3sKubeconfig } = require(process.env.K3S_E2E_BIN + "/providers/k3s");
const cfg = new pulumi.Config();
const spec = JSON.parse(fs.readFileSync(cfg.require("specFile"), "utf8"));
const token = cfg.requireSecret("token");
const privateKey = cfg.requireSecret("sshKey");
const common = (n) => ({ node: n.name, hostname: n.hostname, ssh: n.ssh, apiSsh: spec.api, privateKey, token, config: n.config,
  labels: n.labels, taints: n.taints, joinTimeoutSeconds: spec.joinTimeoutSeconds, drainTimeoutSeconds: spec.drainTimeoutSeconds, generation: n.generation });
let first, prev;
const all = [];
for (const s of spec.servers) {
  const r = new K3sServer(s.name, { ...common(s), firstServer: !first, cluster: first ? first.joinId : "" }, { dependsOn: prev ? [prev] : [] });
  first = first || r; prev = r; all.push(r);
}
for (const a of spec.agents) all.push(new K3sAgent(a.name, { ...common(a), cluster: first.joinId }, { dependsOn: [prev] }));
const kc = new K3sKubeconfig("kubeconfig", { apiSsh: spec.api, privateKey, server: spec.server, clusterName: spec.clusterName, members: all.map((r) => r.joinId) }, { dependsOn: all });
exports.kubeconfig = kc.kubeconfig;
exports.joined = all.map((r) => r.hostname);
`;

function writeSpec(over: { agents?: string[]; labels?: Record<string, Record<string, string>>; generation?: Record<string, string> } = {}): void {
  const ep = (n: string) => ({ address: lab.hosts[n].address, port: lab.hosts[n].port, user: lab.hosts[n].user, hostKey: lab.hosts[n].hostKey });
  const nodeSpec = (name: string) => {
    const n = fleet.nodes.find((x) => x.name === name)!;
    return {
      name,
      hostname: n.hostname,
      ssh: ep(name),
      config: renderK3sConfig(fleet, plan, n),
      labels: over.labels?.[name] ?? nodeLabels(n),
      taints: n.taints,
      generation: over.generation?.[name] ?? "image-1",
    };
  };
  const spec = {
    api: ep("s1"),
    server: plan.serverUrl,
    clusterName: fleet.clusterName,
    joinTimeoutSeconds: fleet.k3s.joinTimeoutSeconds,
    drainTimeoutSeconds: fleet.k3s.drainTimeoutSeconds,
    servers: [plan.firstServer, ...plan.joiningServers].map((n) => nodeSpec(n.name)),
    agents: (over.agents ?? plan.agents.map((a) => a.name)).map(nodeSpec),
  };
  fs.writeFileSync(path.join(project, "spec.json"), JSON.stringify(spec, null, 1));
}

async function pulumi(args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  const p = execP(path.join(PULUMI_BIN!, "pulumi"), [...args, "--non-interactive", "--cwd", project], { env, maxBuffer: 64 << 20 });
  if (input !== undefined) {
    p.child.stdin!.end(input);
  }
  try {
    return await p;
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`pulumi ${args[0]} failed: ${err.message}\n${(err.stdout ?? "").split("\n").slice(-40).join("\n")}\n${err.stderr ?? ""}`, { cause: e });
  }
}

interface JoinEvent {
  tsMs: number;
  node: string;
  event: string;
}
function events(): JoinEvent[] {
  const f = path.join(k3sLab.clusterDir, "join.log");
  return fs.existsSync(f)
    ? fs
        .readFileSync(f, "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
    : [];
}
function at(node: string, event: string, after = 0): number {
  const e = events().find((x) => x.node === node && x.event === event && x.tsMs >= after);
  if (!e) throw new Error(`no ${event} event for ${node} in join.log`);
  return e.tsMs;
}
async function kubectl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const h = lab.hosts.s1;
  const s = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey });
  try {
    const r = await s.run(["k3s", "kubectl", ...args]);
    return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } finally {
    await s.close();
  }
}

maybe("k3s resources under the Pulumi engine", () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "k3s-e2e-"));
    const bin = path.join(dir, "bin");
    const tsc = execP(process.execPath, [
      path.join(ROOT, "node_modules/typescript/bin/tsc"),
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
      path.join(ROOT, "providers/k3s.ts"),
    ]);
    k3sLab = await startK3sLab(
      // Nodes log in as the deploy user (their images refuse root, issue 18); the BMC stays root.
      ["bmc", "s1", "s2", "s3", "a1", "a2"].map((name) => (name === "bmc" ? { name, role: "bmc" as const } : { name, role: "node" as const, user: "deploy" })),
      path.join(dir, "lab"),
    );
    lab = k3sLab.lab;
    await tsc;
    const raw = validRaw();
    const ssh = (n: string) => ({ user: lab.hosts[n].user, port: lab.hosts[n].port, hostKey: lab.hosts[n].hostKey });
    const node = (name: string, role: string) => ({
      name,
      role,
      hardware: "x86-controller",
      address: lab.hosts[name].address,
      delivery: { method: "swupdate" },
      ssh: ssh(name),
      labels: { "example.com/zone": `zone-${name}` },
    });
    fleet = parseFleet({
      ...raw,
      clusterName: "e2e-k3s",
      bmcs: [{ name: "bmc", address: lab.hosts.bmc.address, ssh: ssh("bmc") }],
      nodes: [node("s1", "server"), node("s2", "server"), node("s3", "server"), node("a1", "agent"), node("a2", "agent")],
      k3s: { joinTimeoutSeconds: 60, drainTimeoutSeconds: 20 },
      authorizedKeys: [lab.deployKey.publicKey],
    });
    plan = deploymentPlan(fleet);
    project = path.join(dir, "project");
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, "Pulumi.yaml"), "name: k3s-e2e\nruntime: nodejs\nmain: index.js\n");
    fs.writeFileSync(path.join(project, "package.json"), '{"name":"k3s-e2e","private":true}\n');
    fs.writeFileSync(path.join(project, "index.js"), PROGRAM);
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(project, "node_modules"));
    fs.mkdirSync(path.join(dir, "state"));
    env = {
      ...process.env,
      PATH: `${PULUMI_BIN}:${path.join(ROOT, "node_modules/.bin")}:${process.env.PATH}`,
      PULUMI_BACKEND_URL: `file://${path.join(dir, "state")}`,
      PULUMI_CONFIG_PASSPHRASE: "k3s-e2e-passphrase",
      PULUMI_HOME: path.join(dir, "home"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
      K3S_E2E_BIN: bin,
      NODE_PATH: path.join(ROOT, "node_modules"),
    };
    writeSpec();
    await pulumi(["stack", "init", "e2e"]);
    await pulumi(["config", "set", "specFile", path.join(project, "spec.json")]);
    await pulumi(["config", "set", "--secret", "token"], TOKEN);
    await pulumi(["config", "set", "--secret", "sshKey"], lab.deployKey.privateKey);
  });

  afterAll(async () => {
    await lab?.stop();
    await k3sLab?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test("up: servers chained, agents after them; kubeconfig a secret output pointing at s1", async () => {
    const t0 = Date.now();
    await pulumi(["up", "--yes", "--skip-preview"]);
    expect(at("s1", "ready", t0)).toBeLessThanOrEqual(at("s2", "start", t0));
    expect(at("s2", "ready", t0)).toBeLessThanOrEqual(at("s3", "start", t0));
    expect(at("s3", "ready", t0)).toBeLessThanOrEqual(Math.min(at("a1", "start", t0), at("a2", "start", t0)));
    const nodes = JSON.parse((await kubectl(["get", "nodes", "-o", "json"])).stdout).items as {
      metadata: { name: string };
      status: { conditions: { type: string; status: string }[] };
    }[];
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(["a1", "a2", "s1", "s2", "s3"]);
    for (const n of nodes) expect(n.status.conditions.find((c) => c.type === "Ready")?.status).toBe("True");

    const shown = JSON.parse((await pulumi(["stack", "output", "--json"])).stdout);
    expect(shown.kubeconfig).toBe("[secret]");
    const kc = parseYaml(JSON.parse((await pulumi(["stack", "output", "--json", "--show-secrets"])).stdout).kubeconfig);
    expect(kc.clusters[0].cluster.server).toBe(`https://${lab.hosts.s1.address}:6443`);
    expect(kc["current-context"]).toBe("e2e-k3s");

    // the state: no plaintext token, SSH key or client key anywhere in the backend
    const clientKey = Buffer.from(kc.users[0].user["client-key-data"], "base64").toString().split("\n")[1];
    const sshKeyLine = lab.deployKey.privateKey.split("\n")[1];
    const state = path.join(dir, "state");
    for (const needle of [TOKEN, sshKeyLine, clientKey, kc.users[0].user["client-key-data"]]) expect(filesContaining(state, needle)).toEqual([]);
    const stack = JSON.parse(fs.readFileSync(path.join(state, ".pulumi/stacks/k3s-e2e/e2e.json"), "utf8"));
    const res = stack.checkpoint.latest.resources as { urn: string; outputs?: Record<string, unknown> }[];
    const a1 = res.find((r) => r.urn.endsWith("::a1"))!;
    expect(a1.outputs!.token).toMatchObject({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" });
    expect(a1.outputs!.privateKey).toMatchObject({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" });
    const kcRes = res.find((r) => r.urn.endsWith("::kubeconfig"))!;
    expect(kcRes.outputs!.kubeconfig).toMatchObject({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270" });
  });

  test("second up: a relabelled agent is updated in place, a removed agent is drained, deleted and uninstalled", async () => {
    const uidOf = async (n: string) => JSON.parse((await kubectl(["get", "node", n, "-o", "json"])).stdout).metadata.uid as string;
    const s3uid = await uidOf("s3");
    const a2uid = await uidOf("a2");
    const before = events().length;
    writeSpec({ agents: ["a2"], labels: { a2: { ...nodeLabels(fleet.nodes.find((n) => n.name === "a2")!), "example.com/zone": "moved" } } });
    const out = (await pulumi(["up", "--yes", "--skip-preview"])).stdout;
    expect(out).toMatch(/a2\s+updated/);
    expect(out).toMatch(/a1\s+deleted/);
    const a2 = JSON.parse((await kubectl(["get", "node", "a2", "-o", "json"])).stdout);
    expect(a2.metadata.labels["example.com/zone"]).toBe("moved");
    expect(a2.metadata.uid).toBe(a2uid);
    expect(await uidOf("s3")).toBe(s3uid);
    const gone = await kubectl(["get", "node", "a1"]);
    expect(gone.stderr).toMatch(/NotFound/);
    const since = events().slice(before);
    expect(since.filter((e) => e.node === "a1").map((e) => e.event)).toContain("uninstalled");
    expect(since.filter((e) => e.node !== "a1").map((e) => `${e.node}:${e.event}`)).toEqual([]);
    const argv = fs.readFileSync(path.join(k3sLab.clusterDir, "argv.log"), "utf8");
    expect(argv).toMatch(/"drain","a1"/);
  });

  test("third up: a new image for an agent replaces its join, deleting first (same machine), and it rejoins under its name", async () => {
    const uid = JSON.parse((await kubectl(["get", "node", "a2", "-o", "json"])).stdout).metadata.uid as string;
    const t = Date.now();
    const labels = { a2: { ...nodeLabels(fleet.nodes.find((n) => n.name === "a2")!), "example.com/zone": "moved" } };
    writeSpec({ agents: ["a2"], labels, generation: { a2: "image-2" } });
    const out = (await pulumi(["up", "--yes", "--skip-preview"])).stdout;
    expect(out).toMatch(/a2\s+replaced/);
    expect(at("a2", "uninstalled", t)).toBeLessThanOrEqual(at("a2", "start", t));
    const a2 = JSON.parse((await kubectl(["get", "node", "a2", "-o", "json"])).stdout);
    expect(a2.metadata.uid).not.toBe(uid);
    expect(a2.status.conditions.find((c: { type: string }) => c.type === "Ready").status).toBe("True");
    expect(a2.metadata.labels["example.com/zone"]).toBe("moved");
  });

  test("destroy: agents first, then servers last-joined first", async () => {
    const t = Date.now();
    await pulumi(["destroy", "--yes", "--skip-preview"]);
    const u = (n: string) => at(n, "uninstalled", t);
    expect(u("a2")).toBeLessThanOrEqual(u("s3"));
    expect(u("s3")).toBeLessThanOrEqual(u("s2"));
    expect(u("s2")).toBeLessThanOrEqual(u("s1"));
    const state = path.join(dir, "state");
    expect(filesContaining(state, TOKEN)).toEqual([]);
  });
});
