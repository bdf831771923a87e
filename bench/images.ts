/**
 * Benchmark: compose images for 10 nodes from one ISAR-like base with the real `nix build` (host-pkgs),
 * then again with no change (Nix cache hits: must be near-instant), then with one node's label changed
 * (only that node rebuilds). Prints the times, per-node figures, peak RSS and store usage.
 *
 *   npx tsc -p . && node bin/bench/images.js
 *
 * Environment:
 *   BENCH_NODES      number of nodes (default 10)
 *   BENCH_TREE       host directories copied into the base rootfs (default: a slice of /usr/share and
 *                    /usr/lib/python3; note mke2fs -d with metadata_csum is quadratic in huge
 *                    directories: this host's 18k-entry man1 alone costs ~40 s)
 *   BENCH_WIC        "0" to skip the .wic / disk.img part (default: with a GPT .wic)
 *   BENCH_PARALLEL   builds at once (default: number of CPUs)
 *   BENCH_KEEP       "1" keeps the built images in the store (default: deleted at the end)
 * Every run uses a fresh base (a nonce in the rootfs), so the first run really builds.
 */
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { addFixed } from "../lib/artifacts/nixstore";
import { ArtifactRef, composeNodeImage, ComposeResult, findProjectDir, ImageEntry, NodeImageRequest } from "../lib/image/compose";

function run(argv: string[], input?: string): string {
  return execFileSync(argv[0], argv.slice(1), { input, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 64 << 20 }).toString("utf8");
}

function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  const buf = Buffer.alloc(8 << 20);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return h.digest("hex");
}

async function add(file: string): Promise<ArtifactRef> {
  const sha256 = sha256File(file);
  return { storePath: await addFixed(file, sha256), sha256 };
}

function secs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

async function pool<T, R>(items: T[], width: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }),
  );
  return out;
}

function files(name: string, i: number, zone: string): ImageEntry[] {
  const f = (p: string, content: string, mode = 0o644): ImageEntry => ({ path: p, content, mode, uid: 0, gid: 0 });
  const role = i === 0 ? "server" : "agent";
  return [
    f(
      "/etc/rancher/k3s/config.yaml",
      `node-name: ${name}\nnode-ip: 10.0.0.${10 + i}\ntoken-file: /var/lib/rancher/k3s/join-token\nnode-label:\n  - "zone=${zone}"\n`,
      0o600,
    ),
    f("/etc/k3s-role", `${role}\n`),
    f("/etc/hostname", `${name}\n`),
    f("/etc/hwrevision", "turing-rk1 1.0\n"),
    f("/etc/systemd/network/10-eth0.network", `[Match]\nName=eth0\n\n[Network]\nAddress=10.0.0.${10 + i}/24\nGateway=10.0.0.1\n`),
    f("/home/deploy/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJlbmNobWFyayBrZXkgZm9yIGltYWdlcyBvbmx5IGJlbmNo bench@ci\n", 0o600),
  ];
}

async function main(): Promise<void> {
  const nodes = Number(process.env.BENCH_NODES ?? 10);
  const parallel = Number(process.env.BENCH_PARALLEL ?? os.cpus().length);
  const withWic = process.env.BENCH_WIC !== "0";
  const tree = (
    process.env.BENCH_TREE ?? "/usr/share/doc /usr/share/locale /usr/share/perl /usr/share/vim /usr/share/i18n /usr/share/zoneinfo /usr/lib/python3"
  )
    .split(/\s+/)
    .filter((d) => d && fs.existsSync(d));
  const projectDir = findProjectDir(__dirname);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "bench-images-"));
  const nonce = `${Date.now()}-${process.pid}`;
  const built: string[] = [];
  const inputs: string[] = [];
  try {
    // ---- base artifacts (setup, not part of the measured runs) ----
    let t = Date.now();
    const root = path.join(tmp, "root");
    for (const d of ["bin", "etc", "home/deploy", "root", "usr/lib", "var/lib", "tmp"]) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.copyFileSync("/bin/busybox", path.join(root, "bin/busybox"));
    fs.chmodSync(path.join(root, "bin/busybox"), 0o755);
    fs.writeFileSync(path.join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ndeploy:x:1000:1000::/home/deploy:/bin/sh\n");
    fs.writeFileSync(path.join(root, "etc/group"), "root:x:0:\ndeploy:x:1000:\n");
    fs.writeFileSync(path.join(root, "usr/lib/os-release"), `ID=debian\nBENCH=${nonce}\n`);
    fs.symlinkSync("../usr/lib/os-release", path.join(root, "etc/os-release"));
    for (const d of tree) {
      const dest = path.join(root, d);
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      run(["cp", "-a", "--no-preserve=ownership", d, dest]);
    }
    const rootfs = path.join(tmp, "isar-image-base-debian-trixie-turing-rk1.tar.gz");
    run(["tar", "--sort=name", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@1700000000", "-I", "gzip -1 -n", "-cf", rootfs, "-C", root, "."]);
    const treeBytes = Number(run(["du", "-sb", root]).split("\t")[0]);
    const treeFiles = Number(run(["sh", "-c", 'find "$1" | wc -l', "sh", root]).trim());
    const kernel = path.join(tmp, "isar-image-base-debian-trixie-turing-rk1-vmlinux");
    fs.writeFileSync(kernel, Buffer.alloc(24 << 20, 7));
    const artifacts: NodeImageRequest["artifacts"] = { rootfs: await add(rootfs), kernel: await add(kernel) };
    inputs.push(artifacts.rootfs.storePath, artifacts.kernel.storePath);
    let wicBytes = 0;
    if (withWic) {
      const wic = path.join(tmp, "isar-image-base-debian-trixie-turing-rk1.wic");
      const rootSectors = Math.ceil((treeBytes * 1.4 + (64 << 20)) / 512 / 2048) * 2048;
      wicBytes = (18432 + rootSectors + 2048) * 512;
      fs.writeFileSync(wic, "");
      fs.truncateSync(wic, wicBytes);
      run(
        ["sfdisk", "-q", wic],
        `label: gpt\nstart=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\nstart=18432, size=${rootSectors}, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=root\n`,
      );
      run(["mkfs.ext4", "-q", "-F", "-N", String(treeFiles * 2 + 1024), "-E", `offset=${18432 * 512}`, "-d", root, wic, `${(rootSectors * 512) >> 10}k`]);
      artifacts.wic = await add(wic);
      inputs.push(artifacts.wic.storePath);
    }
    const setupMs = Date.now() - t;
    console.log(
      `base: ${tree.length} host dirs, ${treeFiles} files, ${(treeBytes / 1e6).toFixed(0)} MB unpacked; rootfs.tar.gz ${(fs.statSync(rootfs).size / 1e6).toFixed(0)} MB` +
        (withWic ? `; .wic ${(wicBytes / 1e6).toFixed(0)} MB` : "; no .wic") +
        `; setup ${secs(setupMs)} (not measured below)`,
    );

    const names = Array.from({ length: nodes }, (_, i) => `bench-${i}`);
    const request = (name: string, i: number, zone = "a"): NodeImageRequest => ({
      name,
      hardware: "turing-rk1",
      arch: "arm64",
      role: i === 0 ? "server" : "agent",
      artifacts,
      files: files(name, i, zone),
    });
    const opts = { projectDir, cacheDir: path.join(tmp, "cache"), pkgs: "host" as const };
    const compose = (zoneOf: (i: number) => string) =>
      pool(
        names.map((n, i) => ({ n, i })),
        parallel,
        async ({ n, i }) => {
          const s = Date.now();
          const r = await composeNodeImage(request(n, i, zoneOf(i)), opts);
          return { r, ms: Date.now() - s };
        },
      );

    t = Date.now();
    const first = await compose(() => "a");
    const firstMs = Date.now() - t;
    built.push(...first.map((x) => x.r.storePath));

    t = Date.now();
    const second = await compose(() => "a");
    const secondMs = Date.now() - t;

    t = Date.now();
    const pick = Math.min(3, nodes - 1);
    const third = await compose((i) => (i === pick ? "b" : "a"));
    const thirdMs = Date.now() - t;
    built.push(third[pick].r.storePath);

    const same = second.every((x, i) => x.r.storePath === first[i].r.storePath);
    const changed = third.map((x, i) => x.r.storePath !== first[i].r.storePath);
    const imgBytes = (r: ComposeResult) => r.files.reduce((a, f) => a + f.size, 0);
    const perNode = (xs: { ms: number }[]) => xs.map((x) => x.ms).sort((a, b) => a - b);
    const p = perNode(first);
    const q = perNode(second);
    console.log(
      `nodes: ${nodes}, parallel builds: ${parallel}, image size per node: ${(imgBytes(first[0].r) / 1e6).toFixed(0)} MB (${first[0].r.files.map((f) => f.path).join(", ")})`,
    );
    console.log(`run 1 (build):        ${secs(firstMs)}   per node min/median/max ${secs(p[0])} / ${secs(p[p.length >> 1])} / ${secs(p[p.length - 1])}`);
    console.log(
      `run 2 (no change):    ${secs(secondMs)}   per node min/median/max ${secs(q[0])} / ${secs(q[q.length >> 1])} / ${secs(q[q.length - 1])}   same store paths: ${same}`,
    );
    console.log(
      `run 3 (1 label diff): ${secs(thirdMs)}   nodes with a new store path: ${changed.filter(Boolean).length} (${names.filter((_, i) => changed[i]).join(", ")})`,
    );
    console.log(
      `ratio run1/run2: ${(firstMs / Math.max(secondMs, 1)).toFixed(0)}x; peak RSS of this process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
    );
    if (!same || changed.filter(Boolean).length !== 1 || !changed[pick]) {
      console.error("UNEXPECTED: cache behaviour wrong");
      process.exitCode = 1;
    }
  } finally {
    if (process.env.BENCH_KEEP !== "1") {
      // one by one: an input still used by an image kept from an earlier run stays
      for (const p of new Set([...built, ...inputs])) {
        try {
          run(["nix-store", "--delete", p]);
        } catch {
          console.error(`kept ${p} (still referenced)`);
        }
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
