/**
 * Benchmark: `pulumi up` of a generated fleet of 3 servers + 9 agents on a simulated lab of its own
 * (a random free 127.X.Y.0/24 block: never the dev lab's addresses), with real k3s-lab components on every
 * host (etcd, kube-apiserver, controllers, kwok; lab/k3s). Prints:
 *   - the wall time of the `pulumi up` that delivers and joins every node, from images already built (a
 *     first, untimed `pulumi up` builds the artifacts, images and .swu bundles: every delivery and
 *     everything after it excluded);
 *   - per node, its delivery (tpi flash or SWUpdate) and its k3s join, timed from the engine's own event
 *     log (`--event-log`, enabled by PULUMI_DEBUG_COMMANDS: step start → step outputs). The log's
 *     timestamps are whole seconds (each step ±1 s; the file is written in bursts, so stamping lines as
 *     they appear would be worse);
 *   - the sum of the per-node delivery+join times against the wall time of `pulumi up` and against the
 *     rollout's own span (first delivery start → last join end, without the program's start-up): their
 *     ratio is the rollout's parallelism (1.0 = strictly one node at a time);
 *   - memory of the lab per host once the cluster is up: RSS and PSS of the host's whole process tree
 *     (its PID namespace: sshd, etcd, kube-apiserver, controllers, kwok, the k3s supervisor...), and the
 *     sum per component over all hosts. RSS counts shared pages (the same binaries) once per process;
 *     PSS splits them, so the PSS column adds up to what the lab really holds.
 *
 *   bash scripts/setup.sh && npx tsc -p . && bash bench/run.sh rollout     (root: the lab; ~5 min)
 *
 * Environment: BENCH_IN_FLIGHT (delivery.maxAgentsInFlight; default: the dev stack's), BENCH_KEEP=1
 * (keep the stack, its state and the event log; the lab stops with this process). Not part of CI.
 * The fleet: a 2-BMC Turing Pi setup (RK1 servers in bmc0 slots 1-2; agents in bmc0 slots 3-4 and bmc1
 * slots 1-2) and Jetson SWUpdate nodes (one server, five agents), artifacts, keys and settings of the dev
 * stack (Pulumi.dev.yaml); each SWUpdate node gets a host key of its own, made for this run.
 */
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse, stringify } from "yaml";
import { parseFleet } from "../lib/model/parse";
import type { Lab } from "../lab/lab";
import { allocateAddresses, labSpecFromFleet, LabHostSpec } from "../lab/spec";

const ROOT = path.resolve(__dirname, "..", "..");

/** The generated fleet's nodes: name, role, delivery path (BMC and slot for tpi), hardware. */
const NODES: { name: string; role: "server" | "agent"; tpi?: [string, number]; hardware: string }[] = [
  { name: "s1", role: "server", tpi: ["bmc0", 1], hardware: "turing-rk1" },
  { name: "s2", role: "server", tpi: ["bmc0", 2], hardware: "turing-rk1" },
  { name: "s3", role: "server", hardware: "jetson-orin-nano" },
  { name: "a1", role: "agent", tpi: ["bmc0", 3], hardware: "turing-cm4" },
  { name: "a2", role: "agent", hardware: "jetson-orin-nano" },
  { name: "a3", role: "agent", tpi: ["bmc0", 4], hardware: "turing-cm4" },
  { name: "a4", role: "agent", hardware: "jetson-orin-nano" },
  { name: "a5", role: "agent", tpi: ["bmc1", 1], hardware: "turing-rk1" },
  { name: "a6", role: "agent", hardware: "jetson-orin-nano" },
  { name: "a7", role: "agent", tpi: ["bmc1", 2], hardware: "turing-cm4" },
  { name: "a8", role: "agent", hardware: "jetson-orin-nano" },
  { name: "a9", role: "agent", hardware: "jetson-orin-nano" },
];
const BMCS = ["bmc0", "bmc1"];

interface Run {
  code: number;
  out: string;
  ms: number;
}

/** Run pulumi without blocking the event loop (the lab's bmcd and power handling run in this process). */
function pulumi(args: string[], env: NodeJS.ProcessEnv, onSpawn?: (c: ChildProcess) => void): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn("pulumi", [...args, "--non-interactive"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    onSpawn?.(child);
    const chunks: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => chunks.push(d));
    child.stderr.on("data", (d: Buffer) => chunks.push(d));
    child.on("close", (code) => resolve({ code: code ?? -1, out: Buffer.concat(chunks).toString("utf8"), ms: performance.now() - t0 }));
  });
}

function must(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}:\n${r.out.split("\n").slice(-50).join("\n")}`);
  return r;
}

/** The engine's event log (`--event-log`: one JSON event per line). */
function readEvents(file: string): EngineEvent[] {
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as EngineEvent);
}

interface EngineEvent {
  sequence: number;
  /** Unix time, whole seconds (the engine's own clock). */
  timestamp: number;
  resourcePreEvent?: { metadata: { urn: string; op: string } };
  resOutputsEvent?: { metadata: { urn: string; op: string } };
}

interface StepTime {
  start: number;
  end?: number;
  op: string;
}

/** Per-resource (by name) step start and end (ms) from the engine's events. */
function stepTimes(events: EngineEvent[]): Map<string, StepTime> {
  const out = new Map<string, StepTime>();
  for (const e of events) {
    const t = e.timestamp * 1000;
    const pre = e.resourcePreEvent?.metadata;
    const done = e.resOutputsEvent?.metadata;
    if (pre && pre.op !== "same") out.set(pre.urn.split("::").pop()!, { start: t, op: pre.op });
    if (done) {
      const s = out.get(done.urn.split("::").pop()!);
      if (s) s.end = t;
    }
  }
  return out;
}

/** VmRSS and PSS (kB) of one process; undefined when it ended meanwhile. */
function memOf(pid: number): { rss: number; pss: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const pss = Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0);
    return { rss, pss };
  } catch {
    return undefined;
  }
}

/** The component a lab process stands for (the executable's base name; the k3s supervisor is node running lab/k3s). */
function component(cmd: string): string {
  const argv = cmd.split(" ");
  const exe = path.basename(argv[0]);
  if (exe === "node" && /k3s/.test(cmd)) return "k3s (supervisor)";
  if (exe === "sshd" || exe.startsWith("sshd")) return "sshd";
  return exe;
}

const mib = (kb: number) => (kb / 1024).toFixed(0);
const secs = (ms: number | undefined) => (ms === undefined ? "-" : (ms / 1000).toFixed(1));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench rollout needs root (the simulated lab: namespaces, mounts)");
  const stack = `bench-rollout-${process.pid}`;
  const stackFile = path.join(ROOT, `Pulumi.${stack}.yaml`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "isar-k3s-bench-rollout-"));
  const labDir = path.join(ROOT, ".lab", stack);
  const keep = process.env.BENCH_KEEP === "1";
  const binDir = fs.readFileSync(path.join(ROOT, ".pulumi-bin-dir"), "utf8").trim();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${path.join(ROOT, "node_modules", ".bin")}:${binDir}:${process.env.PATH}`,
    PULUMI_BACKEND_URL: `file://${path.join(work, "state")}`,
    PULUMI_HOME: process.env.PULUMI_HOME ?? path.join(ROOT, ".pulumi-home"), // the plugins scripts/setup.sh installed
    PULUMI_CONFIG_PASSPHRASE: "isar-k3s-dev",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_DIY_BACKEND_NO_LEGACY_WARNING: "true",
    PULUMI_DEBUG_COMMANDS: "true", // enables `--event-log`
  };
  fs.mkdirSync(path.join(work, "state"));
  let lab: Lab | undefined;
  try {
    // 0. addresses: a free random block for both BMCs and the 12 nodes
    const hosts: LabHostSpec[] = [...BMCS.map((name) => ({ name, role: "bmc" as const })), ...NODES.map((n) => ({ name: n.name, role: "node" as const }))];
    const alloc = await allocateAddresses({ hosts });
    const addr = Object.fromEntries(alloc.hosts.map((h) => [h.name, h.address!]));

    // keys: the dev lab's deploy and BMC keys (private copies: git keeps no modes), a new host key per SWUpdate node
    const keyDir = path.join(work, "keys");
    fs.mkdirSync(keyDir, { mode: 0o700 });
    const devKeys = path.join(ROOT, "dev", "keys");
    for (const f of ["deploy_ed25519", "bmc_host_ed25519"]) {
      fs.copyFileSync(path.join(devKeys, f), path.join(keyDir, f));
      fs.chmodSync(path.join(keyDir, f), 0o600);
    }
    const hostKeyFiles: Record<string, string> = Object.fromEntries(BMCS.map((b) => [b, path.join(keyDir, "bmc_host_ed25519")]));
    const pins: Record<string, string> = {};
    for (const n of NODES.filter((x) => !x.tpi)) {
      const f = path.join(keyDir, `${n.name}_host_ed25519`);
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `${n.name}.bench-rollout (simulated lab only)`, "-f", f]);
      hostKeyFiles[n.name] = f;
      pins[n.name] = fs.readFileSync(`${f}.pub`, "utf8").trim();
    }

    // the stack: the dev stack's config (artifacts, secrets, settings) with the generated fleet
    const dev = parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown>; encryptionsalt: string };
    const c = { ...dev.config };
    const devBmc = (c["isar-k3s:bmcs"] as Record<string, unknown>[])[0];
    c["isar-k3s:clusterName"] = "bench";
    c["isar-k3s:bmcs"] = BMCS.map((name) => ({ ...devBmc, name, address: addr[name] }));
    c["isar-k3s:nodes"] = NODES.map((n) => ({
      name: n.name,
      role: n.role,
      hardware: n.hardware,
      address: addr[n.name],
      ...(n.tpi
        ? { delivery: { method: "tpi", bmc: n.tpi[0], slot: n.tpi[1] } }
        : { delivery: { method: "swupdate" }, hwRevision: "1.0", ssh: { hostKey: pins[n.name] } }),
    }));
    if (process.env.BENCH_IN_FLIGHT) {
      c["isar-k3s:delivery"] = { ...(c["isar-k3s:delivery"] as object), maxAgentsInFlight: Number(process.env.BENCH_IN_FLIGHT) };
    }
    delete c["isar-k3s:workloads"];
    fs.writeFileSync(stackFile, stringify({ config: c, encryptionsalt: dev.encryptionsalt }));
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) if (k.startsWith("isar-k3s:") && !(typeof v === "object" && v !== null && "secure" in v)) raw[k.slice(9)] = v;
    const fleet = parseFleet(raw);
    const inFlight = fleet.delivery.maxAgentsInFlight;
    must(await pulumi(["stack", "init", stack, "--secrets-provider", "passphrase"], env), "pulumi stack init");

    // 1. untimed: artifacts, images and bundles (every delivery and what follows it excluded)
    console.log(`[bench] ${stack}: lab block ${addr.s1.replace(/\.\d+$/, ".0/24")}; building images (untimed)...`);
    const build = must(
      await pulumi(["up", "--yes", "--stack", stack, "--exclude", "**-flash", "--exclude", "**-swupdate", "--exclude-dependents"], env),
      "pulumi up (images only)",
    );
    const built = /\+ (\d+) created/.exec(build.out)?.[1] ?? "?";
    console.log(`[bench] images built: ${built} resources created in ${secs(build.ms)} s (not counted)`);

    // 2. the lab, with k3s on every node
    const { startLab } = await import("../lab/lab");
    const spec = labSpecFromFleet(fleet, { hostKeyFiles, deployKeyFile: path.join(keyDir, "deploy_ed25519"), k3s: {} });
    lab = await startLab(spec, labDir, { ownerPid: process.pid });

    // 3. timed: delivery and join of every node
    const eventLog = path.join(work, "events.jsonl");
    const up = must(await pulumi(["up", "--yes", "--stack", stack, "--event-log", eventLog], env), "pulumi up");
    const steps = stepTimes(readEvents(eventLog));
    const t0 = Math.min(...[...steps.values()].map((s) => s.start));
    let t1 = t0;

    console.log(`\nrollout of ${NODES.length} nodes (3 servers, 9 agents; maxAgentsInFlight ${inFlight}), images prebuilt`);
    console.log("node  role    path                delivery_s  join_s  total_s  start_s  end_s");
    let sum = 0;
    for (const n of fleet.nodes) {
      const d = steps.get(`bench-${n.name}-${n.delivery.method === "tpi" ? "flash" : "swupdate"}`);
      const j = steps.get(`bench-k3s-${n.name}`);
      if (!d?.end || !j?.end) throw new Error(`no complete create step for ${n.name}'s delivery or join in the event log`);
      const dMs = d.end - d.start;
      const jMs = j.end - j.start;
      sum += dMs + jMs;
      t1 = Math.max(t1, j.end);
      const where = n.delivery.method === "tpi" ? `tpi ${n.delivery.bmc} slot ${n.delivery.slot}` : "swupdate";
      console.log(
        `${n.name.padEnd(5)} ${n.role.padEnd(7)} ${where.padEnd(19)} ${secs(dMs).padStart(10)} ${secs(jMs).padStart(7)} ${secs(dMs + jMs).padStart(8)} ${secs(d.start - t0).padStart(8)} ${secs(j.end - t0).padStart(6)}`,
      );
    }
    const span = t1 - t0;
    console.log(`wall time of pulumi up (process)        ${secs(up.ms).padStart(6)} s`);
    console.log(`rollout span (first delivery→last join) ${secs(span).padStart(6)} s`);
    console.log(`sum of delivery+join per node           ${secs(sum).padStart(6)} s`);
    console.log(`parallelism: sum / wall ${(sum / up.ms).toFixed(2)}, sum / span ${(sum / span).toFixed(2)}`);

    // 4. memory per host, the cluster up (every Node Ready: the up waited for it)
    await new Promise((r) => setTimeout(r, 5000));
    console.log("\nlab memory per host (whole process tree), cluster up");
    console.log("host  role    procs  RSS_MiB  PSS_MiB  largest (PSS MiB)");
    const perComponent = new Map<string, { rss: number; pss: number; n: number }>();
    let totRss = 0;
    let totPss = 0;
    for (const h of spec.hosts) {
      const procs = lab.processes(h.name);
      const byComp = new Map<string, { rss: number; pss: number }>();
      let rss = 0;
      let pss = 0;
      for (const p of procs) {
        const m = memOf(p.pid);
        if (!m) continue;
        rss += m.rss;
        pss += m.pss;
        const k = component(p.cmd);
        const b = byComp.get(k) ?? { rss: 0, pss: 0 };
        byComp.set(k, { rss: b.rss + m.rss, pss: b.pss + m.pss });
        const g = perComponent.get(k) ?? { rss: 0, pss: 0, n: 0 };
        perComponent.set(k, { rss: g.rss + m.rss, pss: g.pss + m.pss, n: g.n + 1 });
      }
      totRss += rss;
      totPss += pss;
      const node = fleet.nodes.find((n) => n.name === h.name);
      const top = [...byComp.entries()]
        .sort((a, b) => b[1].pss - a[1].pss)
        .slice(0, 4)
        .map(([k, v]) => `${k} ${mib(v.pss)}`)
        .join(", ");
      console.log(
        `${h.name.padEnd(5)} ${(node?.role ?? "bmc").padEnd(7)} ${String(procs.length).padStart(5)} ${mib(rss).padStart(8)} ${mib(pss).padStart(8)}  ${top}`,
      );
    }
    console.log(`all   ${"".padEnd(13)} ${mib(totRss).padStart(8)} ${mib(totPss).padStart(8)}`);
    const harness = memOf(process.pid);
    if (harness) console.log(`(the lab harness, this process: RSS ${mib(harness.rss)} MiB, PSS ${mib(harness.pss)} MiB)`);
    console.log("\nper component, all hosts");
    console.log("component                 procs  RSS_MiB  PSS_MiB");
    for (const [k, v] of [...perComponent.entries()].sort((a, b) => b[1].pss - a[1].pss))
      console.log(`${k.padEnd(25)} ${String(v.n).padStart(5)} ${mib(v.rss).padStart(8)} ${mib(v.pss).padStart(8)}`);
  } finally {
    await lab?.stop();
    if (keep) console.log(`[bench] kept: stack ${stack} (Pulumi.${stack}.yaml, backend ${env.PULUMI_BACKEND_URL}), event log in ${work}`);
    else {
      fs.rmSync(labDir, { recursive: true, force: true });
      fs.rmSync(stackFile, { force: true });
      fs.rmSync(path.join(ROOT, ".cache", stack), { recursive: true, force: true });
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
}

if (require.main === module)
  main().then(
    () => process.exit(0),
    (e: Error) => {
      console.error(`bench rollout: ${e.message}`);
      process.exit(1);
    },
  );
