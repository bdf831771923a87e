/**
 * Benchmark: upload a file (default 1 GiB) to a lab host with our SSH transport and with OpenSSH scp
 * in the same run, then the unchanged re-upload (must skip).
 *
 *   npx tsc -p . && node bin/bench/upload.js [--size-mib 1024] [--method exec|sftp|both] [--rounds 3]
 *
 * Prints MB/s for each, the ratio ours/scp (target >= 0.8), the skip time and peak RSS. Timings of our
 * upload include its sha256 work (local hash, remote verify); the transfer alone is printed too.
 * Starts and stops its own lab in a temp dir; the test file is random data, removed at the end.
 */
import { execFile } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { promisify } from "util";
import { startLab } from "../lab/lab";
import { connectSsh } from "../lib/transport/ssh";

const exec = promisify(execFile);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const sizeMiB = Number(arg("--size-mib", "1024"));
  const methods = arg("--method", "exec") === "both" ? (["exec", "sftp"] as const) : ([arg("--method", "exec")] as ("sftp" | "exec")[]);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-upload-"));
  const file = path.join(tmp, "payload.bin");
  const size = sizeMiB << 20;
  {
    const fd = fs.openSync(file, "w");
    const chunk = crypto.randomBytes(8 << 20);
    for (let off = 0; off < size; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, size - off));
    fs.closeSync(fd);
  }
  const sha = crypto.createHash("sha256");
  for await (const c of fs.createReadStream(file, { highWaterMark: 1 << 20 })) sha.update(c as Buffer);
  const sha256 = sha.digest("hex");
  const lab = await startLab({ hosts: [{ name: "target", role: "node", swupdate: { devices: {} } }] }, path.join(tmp, "lab"), { ownerPid: process.pid });
  const h = lab.hosts.target;
  const mbps = (ms: number) => (size / 1e6 / (ms / 1000)).toFixed(1);
  try {
    console.log(`file: ${sizeMiB} MiB, host ${h.address}:${h.port}, cpus ${os.cpus().length}`);
    // OpenSSH scp (SFTP protocol by default in OpenSSH 9), same key, host key pinned via known_hosts.
    // Runs are interleaved (scp, ours per method, repeated `--rounds` times) so that load from other
    // processes on the machine hits both alike; medians are compared.
    const kh = path.join(tmp, "known_hosts");
    fs.writeFileSync(kh, `${h.address} ${h.hostKey}\n`);
    const scpArgs = [
      "-q",
      "-i",
      lab.deployKey.path,
      "-o",
      `UserKnownHostsFile=${kh}`,
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      "BatchMode=yes",
      file,
      `root@${h.address}:/var/tmp/scp.bin`,
    ];
    const rounds = Number(arg("--rounds", "3"));
    const times: Record<string, number[]> = { scp: [] };
    const host = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey });
    let t = 0;
    for (let round = 1; round <= rounds; round++) {
      await host.run(["rm", "-f", "/var/tmp/scp.bin"]);
      t = Date.now();
      await exec("scp", scpArgs);
      const scpMs = Date.now() - t;
      times.scp.push(scpMs);
      console.log(`round ${round} scp:          ${scpMs} ms  ${mbps(scpMs)} MB/s`);
      for (const m of methods) {
        const hm = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, uploadMethod: m });
        const dst = `/var/tmp/ours-${m}.bin`;
        await hm.run(["rm", "-f", dst]);
        let firstByte = 0;
        let lastByte = 0;
        t = Date.now();
        const r = await hm.upload(file, dst, {
          sha256,
          onProgress: (sent, total) => {
            if (!firstByte && sent > 0) firstByte = Date.now();
            if (sent === total) lastByte = Date.now();
          },
        });
        const ms = Date.now() - t;
        (times[m] ??= []).push(ms);
        console.log(
          `round ${round} ours (${m}):  ${ms} ms  ${mbps(ms)} MB/s incl. verify (transfer alone ${lastByte - firstByte} ms, ${mbps(lastByte - firstByte)} MB/s); skipped=${r.skipped}`,
        );
        await hm.close();
      }
    }
    // median (with an even number of rounds: the lower middle value, for both alike)
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
    console.log(`median scp: ${median(times.scp)} ms (${mbps(median(times.scp))} MB/s)`);
    for (const m of methods)
      console.log(
        `median ours(${m}): ${median(times[m])} ms (${mbps(median(times[m]))} MB/s); ratio ours/scp throughput: ${(median(times.scp) / median(times[m])).toFixed(2)} (target >= 0.80)`,
      );
    t = Date.now();
    const again = await host.upload(file, `/var/tmp/ours-${methods[0]}.bin`, { sha256 });
    console.log(`re-upload unchanged: skipped=${again.skipped} bytes=${again.bytes} in ${Date.now() - t} ms`);
    t = Date.now();
    const again2 = await host.upload(file, `/var/tmp/ours-${methods[0]}.bin`);
    console.log(`re-upload unchanged (no sha256 given, hashed locally): skipped=${again2.skipped} in ${Date.now() - t} ms`);
    const remote = await host.sha256(`/var/tmp/ours-${methods[0]}.bin`);
    console.log(`remote sha256 matches: ${remote === sha256}`);
    await host.close();
    console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);
    if (!again.skipped || remote !== sha256) process.exitCode = 1;
  } finally {
    await lab.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
