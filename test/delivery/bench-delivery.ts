/**
 * Benchmark: a Turing Pi delivery of a large node image through the simulated lab, phase by phase.
 *
 *   npx tsc -p . && node bin/test/delivery/bench-delivery.js [--size-mib 512] [--flash-mbps 2000]
 *
 * Runs: (1) fresh delivery (upload over SSH to the BMC, tpi flash, power on, boot, verify); (2) the same
 * image again (the BMC already holds it: the upload is a remote sha256 check); (3) the provider's diff for
 * an unchanged image (what `pulumi preview` / `up` costs per node when nothing changed). Prints the time
 * of every phase, the upload throughput, and this process's peak RSS (the image is streamed, never held
 * in memory). The lab's flash rate is set high so the figures show our overhead, not the simulated eMMC.
 */
import * as fs from "fs";
import * as path from "path";
import { ProgressEvent } from "../../lib/delivery/common";
import { flashNode } from "../../lib/delivery/tpi";
import { checkDelivery, diffDelivery } from "../../lib/delivery/delivery-provider";
import { makeNodeImage, startLabRetry, tempDir } from "./labutil";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

async function main(): Promise<void> {
  const sizeMiB = arg("--size-mib", 512);
  const flashMBps = arg("--flash-mbps", 2000);
  const dir = await tempDir("bench-delivery-");
  const lab = await startLabRetry(
    {
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "n1", role: "node", tpi: { bmc: "bmc", slot: 1 } },
      ],
      flashRateMBps: flashMBps,
      bootDelayMs: 100,
      bmcdPort: 8080,
    },
    path.join(dir, "lab"),
  );
  try {
    const t0 = Date.now();
    const img = await makeNodeImage(dir, { name: "big", hostname: "rk1-bench", authorizedKey: lab.deployKey.publicKey, sizeMiB });
    console.log(`image: ${sizeMiB} MiB (${img.path}), built + hashed in ${Date.now() - t0} ms`);
    const b = lab.hosts.bmc;
    const n = lab.hosts.n1;
    const spec = {
      nodeName: "n1",
      hostname: "rk1-bench",
      slot: 1,
      bmc: { name: "bmc", address: b.address, port: b.port, user: b.user, hostKey: b.hostKey, imageDir: "/mnt/sdcard/images" },
      node: { address: n.address, port: n.port, user: n.user },
      image: { path: img.path, sha256: img.sha256, imageId: img.imageId },
      flashTimeoutSeconds: 600,
      bootTimeoutSeconds: 60,
      connectTimeoutSeconds: 10,
      pollIntervalMs: 500,
    };
    for (const run of ["fresh", "unchanged image (BMC holds it)"]) {
      const marks: { phase: string; at: number }[] = [];
      const start = Date.now();
      const r = await flashNode(
        spec,
        { privateKey: lab.deployKey.privateKey },
        {
          progress: (e: ProgressEvent) => {
            if (marks.length === 0 || marks[marks.length - 1].phase !== e.phase) marks.push({ phase: e.phase, at: Date.now() });
          },
        },
      );
      const total = Date.now() - start;
      const phases = marks.map((m, i) => `${m.phase} ${((marks[i + 1]?.at ?? start + total) - m.at).toString()} ms`);
      const up = marks.find((m) => m.phase === "upload");
      const upMs = up ? marks[marks.indexOf(up) + 1].at - up.at : 0;
      console.log(`${run}: total ${total} ms; ${phases.join(", ")}`);
      console.log(
        `  upload: ${r.uploadSkipped ? "skipped (remote sha256 matched)" : `${r.uploadBytes} bytes, ${(r.uploadBytes / (1 << 20) / (upMs / 1000)).toFixed(1)} MiB/s`}`,
      );
    }
    const inputs = checkDelivery({ kind: "tpi", ...spec, sshPrivateKey: lab.deployKey.privateKey }).inputs;
    const olds = { ...inputs, runningImageId: img.imageId };
    const N = 10_000;
    const d0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) diffDelivery(olds, inputs);
    const perDiffUs = Number(process.hrtime.bigint() - d0) / 1000 / N;
    console.log(`provider diff, unchanged image: ${perDiffUs.toFixed(1)} µs per node (no I/O)`);
    console.log(`peak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
  } finally {
    await lab.stop();
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
