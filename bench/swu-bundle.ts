/**
 * Benchmark: bundle a 2 GiB image with our writer (lib/swupdate/bundle.ts) and with seed 000's shell
 * approach (`sha256sum` for sw-description, `openssl cms -sign`, `cpio -o -H crc`, `sha256sum` of the
 * bundle) in the same run, on the same files. Prints both times, the ratio and our peak RSS (measured in a
 * child process that only builds the bundle).
 *
 *   npx tsc -p . && node bin/bench/swu-bundle.js [--size-mib 2048] [--rounds 2] [--dir /tmp] [--verify]
 *
 * --verify additionally runs `swupdate -c` on both bundles (extracts 2 GiB into a temp dir each).
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildBundle } from "../lib/swupdate/bundle";
import { renderPostUpdateScript } from "../lib/swupdate/postupdate";

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
}

function sh(script: string, cwd: string): void {
  // Fixed script text with paths we created ourselves: the seed's approach is a shell pipeline.
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], { cwd, stdio: ["ignore", "ignore", "pipe"] });
  if (r.status !== 0) throw new Error(`shell pipeline failed: ${r.stderr.toString().split("\n").slice(-20).join("\n")}`);
}

async function childOurs(): Promise<void> {
  // argv: --child <work> <out>
  const work = process.argv[3];
  const out = process.argv[4];
  const t0 = process.hrtime.bigint();
  const r = await buildBundle({
    hardware: "jetson-orin-nano",
    hwRevisions: ["1.0"],
    version: "1.0.0",
    images: [{ path: path.join(work, "bundle", "rootfs.ext4"), kind: "rootfs", device: "/dev/mmcblk0p1" }],
    signing: "cms",
    key: fs.readFileSync(path.join(work, "key.pem"), "utf8"),
    cert: fs.readFileSync(path.join(work, "cert.pem"), "utf8"),
    outPath: out,
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({ seconds, maxRssKiB: process.resourceUsage().maxRSS, size: r.size, sha256: r.sha256 }) + "\n");
}

function runOurs(work: string, out: string): { seconds: number; wall: number; maxRssKiB: number; size: number; sha256: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [__filename, "--child", work, out], { stdio: ["ignore", "pipe", "inherit"] });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error("our bundle build failed");
  return { ...JSON.parse(r.stdout.toString()), wall };
}

function runShell(work: string, out: string): number {
  const t0 = process.hrtime.bigint();
  // seed 000, nix/swupdate/bundle.nix buildPhase + installPhase, minus the copies of the artifacts.
  sh(
    `cd bundle
h_rootfs=$(sha256sum rootfs.ext4 | cut -d' ' -f1)
h_post=$(sha256sum post-update.sh | cut -d' ' -f1)
cat > sw-description <<EOF
software = {
  version = "1.0.0";
  jetson-orin-nano = {
    hardware-compatibility = [ "1.0" ];
    images: ( { filename = "rootfs.ext4"; type = "raw"; device = "/dev/mmcblk0p1"; sha256 = "$h_rootfs"; } );
    scripts: ( { filename = "post-update.sh"; type = "shellscript"; sha256 = "$h_post"; } );
  };
};
EOF
openssl cms -sign -in sw-description -out sw-description.sig -signer ../cert.pem -inkey ../key.pem -outform DER -nosmimecap -binary
printf 'sw-description\\nsw-description.sig\\nrootfs.ext4\\npost-update.sh\\n' | cpio -o -H crc --quiet > ${JSON.stringify(out)}
sha256sum ${JSON.stringify(out)} > ${JSON.stringify(out + ".sha256")}`,
    work,
  );
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function swupdateCheck(bundle: string, cert: string): string {
  for (let attempt = 0; attempt < 6; attempt++) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "swu-bench-check-"));
    try {
      const r = spawnSync("swupdate", ["-c", "-k", cert, "-H", "jetson-orin-nano:1.0", "-i", bundle], { env: { ...process.env, TMPDIR: tmp } });
      if (r.status === 0) return "accepted";
      const log = r.stdout.toString() + r.stderr.toString();
      if (!/SWUPDATE successful/.test(log) || /\[ERROR\]/.test(log)) return "REJECTED";
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  return "REJECTED";
}

async function main(): Promise<void> {
  if (process.argv[2] === "--child") return childOurs();
  const sizeMiB = Number(arg("--size-mib", "2048"));
  const rounds = Number(arg("--rounds", "2"));
  const base = arg("--dir", os.tmpdir());
  const work = fs.mkdtempSync(path.join(base, "swu-bench-"));
  try {
    fs.mkdirSync(path.join(work, "bundle"));
    const cnf = path.join(work, "req.cnf");
    fs.writeFileSync(cnf, "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=bench\n[v3]\nkeyUsage=digitalSignature\nextendedKeyUsage=emailProtection\n");
    const req = spawnSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      path.join(work, "key.pem"),
      "-out",
      path.join(work, "cert.pem"),
      "-days",
      "1",
      "-config",
      cnf,
      "-extensions",
      "v3",
    ]);
    if (req.status !== 0) throw new Error("openssl req failed");
    // Image: random data, written in 64 MiB chunks.
    const img = path.join(work, "bundle", "rootfs.ext4");
    const fd = fs.openSync(img, "w");
    const chunk = Buffer.alloc(64 * 1024 * 1024);
    for (let done = 0; done < sizeMiB; done += 64) {
      crypto.randomFillSync(chunk);
      fs.writeSync(fd, chunk, 0, Math.min(64, sizeMiB - done) * 1024 * 1024);
    }
    fs.closeSync(fd);
    fs.writeFileSync(path.join(work, "bundle", "post-update.sh"), renderPostUpdateScript());
    spawnSync("cat", [img], { stdio: ["ignore", "ignore", "ignore"] }); // warm the page cache for both

    console.log(`image: ${sizeMiB} MiB random data, ${os.cpus().length} CPUs, node ${process.version}`);
    const shellTimes: number[] = [];
    const ours: ReturnType<typeof runOurs>[] = [];
    for (let r = 0; r < rounds; r++) {
      const so = path.join(work, `shell-${r}.swu`);
      const oo = path.join(work, `ours-${r}.swu`);
      shellTimes.push(runShell(work, so));
      console.log(`round ${r + 1}: shell (sha256sum + openssl cms + cpio -o -H crc + sha256sum): ${shellTimes[r].toFixed(2)} s`);
      ours.push(runOurs(work, oo));
      console.log(
        `round ${r + 1}: ours (buildBundle): ${ours[r].seconds.toFixed(2)} s in-process, ${ours[r].wall.toFixed(2)} s incl. node start; peak RSS ${(ours[r].maxRssKiB / 1024).toFixed(1)} MiB`,
      );
      const sizes = `${fs.statSync(so).size} vs ${ours[r].size}`;
      console.log(`          bundle sizes shell vs ours: ${sizes}`);
      if (process.argv.includes("--verify")) {
        console.log(`          swupdate -c: shell ${swupdateCheck(so, path.join(work, "cert.pem"))}, ours ${swupdateCheck(oo, path.join(work, "cert.pem"))}`);
      }
      if (r < rounds - 1) {
        fs.rmSync(so);
        fs.rmSync(oo);
      }
    }
    const bestShell = Math.min(...shellTimes);
    const bestOurs = Math.min(...ours.map((o) => o.wall));
    const peak = Math.max(...ours.map((o) => o.maxRssKiB)) / 1024;
    console.log(
      `best shell ${bestShell.toFixed(2)} s, best ours ${bestOurs.toFixed(2)} s (incl. node start): ratio shell/ours = ${(bestShell / bestOurs).toFixed(2)}x`,
    );
    console.log(`our peak RSS: ${peak.toFixed(1)} MiB (goal < 100 MB): ${peak * 1.048576 < 100 ? "OK" : "OVER"}`);
    console.log(`speed goal (ours at least as fast): ${bestOurs <= bestShell ? "OK" : "MISSED"}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
