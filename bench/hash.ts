/**
 * Benchmark: sha256 of a large file with the project's hashFile (lib/artifacts/hash.ts) against
 * `sha256sum`, in the same run, on the same file (page cache warmed first, runs interleaved).
 *
 *   npx tsc -p . && node bin/bench/hash.js [--size-mib 2048] [--file F] [--rounds 3] [--keep]
 *
 * Each of our runs happens in a fresh child process so its peak RSS (getrusage maxrss) is the hashing's
 * own, not the benchmark driver's. Both commands run under /usr/bin/time (wall, user+sys CPU, max RSS), the
 * same measurement for both; our figure includes node's start-up. On a loaded machine the wall-clock ratio
 * is noisy, so the CPU-time ratio is printed too. Also measures a few chunk sizes and a plain createReadStream loop for
 * comparison. Prints MiB/s, the ratio ours / sha256sum (goal >= 0.9) and our peak RSS (goal < 100 MB).
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hashFile } from "../lib/artifacts/hash";

interface WorkerResult {
  hex: string;
  ms: number;
  maxRssKiB: number;
}

async function worker(file: string, mode: string, chunkMiB: number): Promise<void> {
  const t0 = process.hrtime.bigint();
  let hex: string;
  if (mode === "stream") {
    const h = crypto.createHash("sha256");
    for await (const chunk of fs.createReadStream(file, { highWaterMark: chunkMiB * 1024 * 1024 })) h.update(chunk as Buffer);
    hex = h.digest("hex");
  } else {
    hex = (await hashFile(file, { chunkSize: chunkMiB * 1024 * 1024 })).hex;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const r: WorkerResult = { hex, ms, maxRssKiB: process.resourceUsage().maxRSS };
  process.stdout.write(JSON.stringify(r));
}

interface Timed {
  hex: string;
  wallMs: number;
  cpuMs: number;
  maxRssKiB: number;
}

/** Run argv under /usr/bin/time; stdout is the command's, the last stderr line the measurement. */
function timed(argv: string[], hexOf: (stdout: string) => string): Timed {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %U %S %M", ...argv], { encoding: "utf8", maxBuffer: 1 << 20 });
  const m = /TIME ([0-9.]+) ([0-9.]+) ([0-9.]+) ([0-9]+)\s*$/.exec(r.stderr);
  if (r.status !== 0 || !m) throw new Error(`${argv.join(" ")} failed (exit ${r.status}): ${r.stderr.slice(-2000)}`);
  return { hex: hexOf(r.stdout), wallMs: Number(m[1]) * 1000, cpuMs: (Number(m[2]) + Number(m[3])) * 1000, maxRssKiB: Number(m[4]) };
}

const ours = (file: string, mode: string, chunkMiB: number) =>
  timed([process.execPath, __filename, "--worker", file, mode, String(chunkMiB)], (out) => (JSON.parse(out) as WorkerResult).hex);
const sha256sum = (file: string) => timed(["sha256sum", file], (out) => out.split(" ")[0]);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--worker") return worker(args[1], args[2], Number(args[3]));
  const opt = (k: string) => {
    const i = args.indexOf(k);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const sizeMiB = Number(opt("--size-mib") ?? 2048);
  const rounds = Number(opt("--rounds") ?? 3);
  let file = opt("--file");
  let tmpDir: string | undefined;
  if (!file) {
    tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), "bench-hash-"));
    file = path.join(tmpDir, "big.bin");
    process.stdout.write(`writing ${sizeMiB} MiB of random data to ${file} ... `);
    const fd = fs.openSync(file, "w");
    const buf = Buffer.allocUnsafe(16 * 1024 * 1024);
    for (let left = sizeMiB * 1024 * 1024; left > 0; left -= buf.length) {
      crypto.randomFillSync(buf);
      fs.writeSync(fd, buf, 0, Math.min(buf.length, left));
    }
    fs.closeSync(fd);
    console.log("done");
  }
  const size = fs.statSync(file).size;
  const mib = size / 1024 / 1024;
  console.log(
    `file: ${file} (${mib.toFixed(0)} MiB); CPU: ${os.cpus()[0]?.model ?? "?"}; sha_ni: ${/\bsha_ni\b/.test(fs.readFileSync("/proc/cpuinfo", "utf8"))}; OpenSSL ${process.versions.openssl}`,
  );
  try {
    sha256sum(file); // warm the page cache
    const theirs: Timed[] = [];
    const mine: Timed[] = [];
    for (let r = 0; r < rounds; r++) {
      const t = sha256sum(file);
      const o = ours(file, "hashFile", 4);
      if (o.hex !== t.hex) throw new Error(`digest differs: ours ${o.hex}, sha256sum ${t.hex}`);
      theirs.push(t);
      mine.push(o);
    }
    const rate = (ms: number) => (mib / (ms / 1000)).toFixed(0);
    const line = (label: string, xs: Timed[]) => {
      const w = median(xs.map((x) => x.wallMs));
      const c = median(xs.map((x) => x.cpuMs));
      console.log(
        `${label} ${rate(w)} MiB/s wall, ${rate(c)} MiB/s per CPU-second (medians of ${rounds}; wall ms ${xs.map((x) => x.wallMs.toFixed(0)).join(", ")})`,
      );
      return { w, c };
    };
    console.log(
      `load average: ${os
        .loadavg()
        .map((x) => x.toFixed(1))
        .join(" ")} on ${os.cpus().length} CPUs`,
    );
    const t = line("sha256sum:           ", theirs);
    const o = line("hashFile (4 MiB x2): ", mine);
    console.log(`ratio ours/sha256sum: ${(t.w / o.w).toFixed(2)} wall-clock, ${(t.c / o.c).toFixed(2)} CPU time (goal >= 0.9)`);
    console.log(
      `our peak RSS:         ${(Math.max(...mine.map((x) => x.maxRssKiB)) / 1024).toFixed(1)} MiB (whole node process; goal < 100 MB); sha256sum ${(Math.max(...theirs.map((x) => x.maxRssKiB)) / 1024).toFixed(1)} MiB`,
    );
    console.log(`digest:               ${theirs[0].hex}`);
    console.log("variants (one run each):");
    for (const [mode, chunk] of [
      ["hashFile", 1],
      ["hashFile", 16],
      ["stream", 1],
      ["stream", 4],
    ] as const) {
      const v = ours(file, mode, chunk);
      console.log(
        `  ${mode.padEnd(8)} ${String(chunk).padStart(2)} MiB: ${rate(v.wallMs)} MiB/s wall, ${rate(v.cpuMs)} MiB/s per CPU-second, peak RSS ${(v.maxRssKiB / 1024).toFixed(1)} MiB`,
      );
    }
  } finally {
    if (tmpDir && !args.includes("--keep")) fs.rmSync(tmpDir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
