/**
 * Benchmark: `pulumi preview` wall time for the dev stack and for generated fleets of 10, 50 and 200
 * nodes (preview only, nothing is created), to watch how cost grows with fleet size.
 *
 * Run: bash scripts/setup.sh && npx tsc -p . && (source scripts/pulumi-env.sh; node bin/bench/preview.js [N...])
 * (default sizes: 10 50 200)
 * Each fleet gets a throwaway stack (bench-<n>) in the local backend, removed afterwards. Prints one
 * line per fleet: nodes, resources in the plan, wall time, and time per node.
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { parse, stringify } from "yaml";

const ROOT = path.resolve(__dirname, "..", "..");

function devConfig(): Record<string, unknown> {
  return parse(fs.readFileSync(path.join(ROOT, "Pulumi.dev.yaml"), "utf8"));
}

/** A fleet of n nodes shaped like the dev one: 3 servers on Turing Pi slots, then agents (tpi and SWUpdate). */
export function generatedFleet(n: number): Record<string, unknown> {
  const dev = devConfig() as { config: Record<string, unknown>; encryptionsalt?: string };
  const c = { ...dev.config };
  const bmcTemplate = (c["isar-k3s:bmcs"] as Record<string, unknown>[])[0];
  // SWUpdate nodes are reached while running, so validation wants their host key pinned: the dev
  // lab's SWUpdate node's pin stands in for each (preview connects to nothing).
  const swupdatePin = (c["isar-k3s:nodes"] as { delivery: { method: string }; ssh?: { hostKey?: string } }[]).find(
    (x) => x.delivery.method === "swupdate" && x.ssh?.hostKey,
  )?.ssh;
  if (!swupdatePin) throw new Error("Pulumi.dev.yaml has no SWUpdate node with ssh.hostKey to copy into the generated fleet");
  const nodes: Record<string, unknown>[] = [];
  const bmcs: Record<string, unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const tpi = i % 2 === 0 || i < 3;
    const role = i < 3 ? "server" : "agent";
    const address = `127.78.${Math.floor(i / 200)}.${10 + (i % 200)}`;
    if (tpi) {
      const slotIndex = nodes.filter((x) => (x.delivery as { method: string }).method === "tpi").length;
      const bmc = `bmc${Math.floor(slotIndex / 4)}`;
      if (!bmcs.some((b) => b.name === bmc)) bmcs.push({ ...bmcTemplate, name: bmc, address: `127.79.0.${2 + bmcs.length}` });
      nodes.push({
        name: `n${i}`,
        role,
        hardware: i % 4 === 0 ? "turing-rk1" : "turing-cm4",
        address,
        delivery: { method: "tpi", bmc, slot: (slotIndex % 4) + 1 },
      });
    } else {
      nodes.push({
        name: `n${i}`,
        role,
        hardware: "jetson-orin-nano",
        address,
        delivery: { method: "swupdate" },
        ssh: { ...swupdatePin },
        labels: { "example.com/line": `line-${i % 5}` },
      });
    }
  }
  c["isar-k3s:nodes"] = nodes;
  c["isar-k3s:bmcs"] = bmcs;
  c["isar-k3s:clusterName"] = `bench-${n}`;
  return { config: c, encryptionsalt: dev.encryptionsalt };
}

function previewOnce(stack: string, config: Record<string, unknown>): { ms: number; resources: number } {
  const file = path.join(ROOT, `Pulumi.${stack}.yaml`);
  fs.writeFileSync(file, stringify(config));
  try {
    spawnSync("pulumi", ["stack", "init", stack, "--secrets-provider", "passphrase", "--non-interactive"], { cwd: ROOT, stdio: "ignore" });
    const t0 = process.hrtime.bigint();
    const out = execFileSync("pulumi", ["preview", "--stack", stack, "--non-interactive", "--json"], { cwd: ROOT, maxBuffer: 256 << 20 }).toString();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const plan = JSON.parse(out) as { steps?: unknown[] };
    return { ms, resources: plan.steps?.length ?? 0 };
  } finally {
    spawnSync("pulumi", ["stack", "rm", stack, "--yes", "--force", "--non-interactive"], { cwd: ROOT, stdio: "ignore" });
    fs.rmSync(file, { force: true });
  }
}

function main(): void {
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((x) => x > 0);
  const fleets: [string, number, Record<string, unknown>][] = [
    ["dev", (devConfig().config as { "isar-k3s:nodes": unknown[] })["isar-k3s:nodes"].length, devConfig()],
  ];
  for (const n of sizes.length ? sizes : [10, 50, 200]) fleets.push([`generated`, n, generatedFleet(n)]);
  console.log("fleet       nodes  resources  preview_s  ms_per_node");
  for (const [label, n, config] of fleets) {
    const r = previewOnce(`bench-${label}-${n}`, config);
    console.log(
      `${label.padEnd(10)} ${String(n).padStart(6)} ${String(r.resources).padStart(10)} ${(r.ms / 1000).toFixed(2).padStart(10)} ${(r.ms / n).toFixed(0).padStart(12)}`,
    );
  }
}

if (require.main === module) main();
