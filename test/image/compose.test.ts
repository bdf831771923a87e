/**
 * Real `nix build` of nix/node.nix (host-pkgs: host tools, sandbox off) on small real artifacts, then the
 * result inspected with debugfs, partx, e2fsck and grep.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { composeNodeImage, ComposeOptions, ImageBuildError, ImageInputError, NodeImageRequest, nixBuildArgv } from "../../lib/image/compose";
import { fixedOutputStorePath } from "../../lib/artifacts/nixstore";
import { BaseArtifacts, debugfs, escapeTarget, makeBaseArtifacts, nodeFiles, sh, sha256Of } from "./fixtures";

jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, "../..");
// A cluster token as the fleet would hold it: it exists in this process, is handed to the "join" side
// (a 0600 file here) and to compose as a forbidden value, and must never reach the store.
const SENTINEL_TOKEN = `K10sentinel${process.pid}${Date.now()}::server:deadbeefcafef00d`;

let tmp: string;
let base: BaseArtifacts;
let opts: ComposeOptions;
const marker = `c${process.pid}`;

function request(name: string, extra: Partial<NodeImageRequest> = {}, label = "a"): NodeImageRequest {
  return {
    name,
    hardware: "turing-rk1",
    arch: "arm64",
    role: "server",
    artifacts: { rootfs: base.rootfs, kernel: base.kernel, initramfs: base.initramfs, dtbs: base.dtbs, wic: base.gptWic },
    files: [...nodeFiles(name, { label }), { path: "/etc/motd", content: `welcome to ${name}\n`, mode: 0o644, uid: 0, gid: 0 }],
    ...extra,
  };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "image-compose-"));
  base = await makeBaseArtifacts(tmp, marker);
  fs.writeFileSync(path.join(tmp, "join-token"), SENTINEL_TOKEN, { mode: 0o600 });
  opts = { projectDir: ROOT, cacheDir: path.join(tmp, "cache"), pkgs: "host", forbiddenValues: [SENTINEL_TOKEN] };
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("composeNodeImage (real nix build)", () => {
  let first: Awaited<ReturnType<typeof composeNodeImage>>;

  beforeAll(async () => {
    first = await composeNodeImage(request(`rk1-${marker}`), opts);
  });

  test("rootfs.ext4 holds the node files with their modes and owners", () => {
    const img = path.join(first.storePath, "rootfs.ext4");
    const name = `rk1-${marker}`;
    expect(debugfs(img, "cat /etc/rancher/k3s/config.yaml")).toContain(`node-name: ${name}\n`);
    expect(debugfs(img, "cat /etc/k3s-role")).toBe("server\n");
    expect(debugfs(img, "cat /etc/hostname")).toBe(`${name}\n`);
    expect(debugfs(img, "cat /etc/hwrevision")).toBe("turing-rk1 1.0\n");
    expect(debugfs(img, "cat /etc/isar-k3s/image-id")).toBe(`${first.imageId}\n`);
    expect(debugfs(img, "cat /home/deploy/.ssh/authorized_keys")).toMatch(/^ssh-ed25519 AAAA\S+ deploy@ci\n$/);
    const cfg = debugfs(img, "stat /etc/rancher/k3s/config.yaml");
    expect(cfg).toMatch(/Mode: +0600 /);
    expect(cfg).toMatch(/User: +0 +Group: +0 /);
    const keys = debugfs(img, "stat /home/deploy/.ssh/authorized_keys");
    expect(keys).toMatch(/Mode: +0600 /);
    expect(keys).toMatch(/User: +1000 +Group: +1000 /); // "deploy" resolved in the image's /etc/passwd
    const sshDir = debugfs(img, "stat /home/deploy/.ssh");
    expect(sshDir).toMatch(/Type: directory +Mode: +0700 /);
    expect(sshDir).toMatch(/User: +1000 +Group: +1000 /);
    // base image content survives with its owners and modes; /root keeps its 0700
    expect(debugfs(img, "stat /home/deploy")).toMatch(/Mode: +0750 /);
    expect(debugfs(img, "stat /home/deploy")).toMatch(/User: +1000 +Group: +1000 /);
    expect(debugfs(img, "stat /home/deploy/.profile")).toMatch(/User: +1000 +Group: +1000 /);
    expect(debugfs(img, "cat /usr/lib/os-release")).toContain(`BUILD=${marker}`);
    expect(debugfs(img, "stat /root")).toMatch(/Mode: +0700 /);
    // /etc/motd was an absolute symlink in the base: replaced by a regular file, nothing written on the host
    expect(debugfs(img, "stat /etc/motd")).toMatch(/Type: regular/);
    expect(debugfs(img, "cat /etc/motd")).toBe(`welcome to ${name}\n`);
    expect(fs.existsSync(escapeTarget(marker))).toBe(false);
    // xattrs from the tarball survive (file capabilities)
    expect(debugfs(img, "ea_list /bin/ping")).toContain("security.capability (20) = 01 00 00 02 00 20 00 00");
    // a consistent file system
    sh(["e2fsck", "-fn", img]);
  });

  test("rootfs.ext4 is sized from its content with headroom", () => {
    const info = sh(["dumpe2fs", "-h", path.join(first.storePath, "rootfs.ext4")]);
    const blocks = Number(/Block count: +(\d+)/.exec(info)![1]);
    const free = Number(/Free blocks: +(\d+)/.exec(info)![1]);
    const used = blocks - free;
    expect(free).toBeGreaterThanOrEqual(Math.floor(used * 0.25)); // >= ~30 % headroom over what is used
    expect(blocks * 4096).toBeLessThan(64 << 20); // and not absurdly large for a ~2 MiB rootfs
    // features from nix/builder/mke2fs.conf, not the host's /etc/mke2fs.conf
    expect(info).toMatch(
      /Filesystem features: +has_journal ext_attr resize_inode dir_index filetype extent 64bit flex_bg sparse_super large_file huge_file dir_nlink extra_isize metadata_csum\n/,
    );
    expect(info).toMatch(/Filesystem UUID: +[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}\n/);
  });

  test("boot/, metadata.json and the file list", () => {
    const out = first.storePath;
    expect(sha256Of(path.join(out, "boot/Image"))).toBe(base.kernel.sha256);
    expect(sha256Of(path.join(out, "boot/initrd.img"))).toBe(base.initramfs.sha256);
    expect(sha256Of(path.join(out, "boot/dtbs/rk3588-turing-rk1.dtb"))).toBe(base.dtbs[0].sha256);
    const meta = JSON.parse(fs.readFileSync(path.join(out, "metadata.json"), "utf8"));
    expect(meta).toMatchObject({ name: `rk1-${marker}`, arch: "arm64", role: "server", hardware: "turing-rk1", imageId: first.imageId });
    expect(meta.imageId).toMatch(/^[0-9a-f]{32}$/);
    expect(JSON.stringify(meta)).not.toMatch(/time|date|20\d\d-\d\d-\d\d/i);
    expect(meta.artifacts.rootfs.storePath).toBe(base.rootfs.storePath);
    const cfgEntry = meta.files.find((f: { path: string }) => f.path === "/etc/rancher/k3s/config.yaml");
    expect(cfgEntry.mode).toBe("0600");
    const listed = first.files.map((f) => f.path);
    expect(listed).toEqual(["SHA256SUMS", "boot/Image", "boot/dtbs/rk3588-turing-rk1.dtb", "boot/initrd.img", "disk.img", "metadata.json", "rootfs.ext4"]);
    for (const f of first.files) {
      expect(f.sha256).toBe(sha256Of(path.join(out, f.path)));
      expect(f.size).toBe(fs.statSync(path.join(out, f.path)).size);
    }
  });

  test("disk.img: node files injected into the GPT root partition, boot partition untouched", () => {
    const disk = path.join(first.storePath, "disk.img");
    expect(fs.statSync(disk).size).toBe(48 << 20);
    const parts = sh(["partx", "-g", "-b", "-o", "NR,START,SECTORS,NAME", disk]);
    expect(parts).toMatch(/2 +18432 +75776 root/);
    const root = `${disk}?offset=${base.gptRootOffset}`;
    expect(debugfs(root, "cat /etc/rancher/k3s/config.yaml")).toContain(`node-name: rk1-${marker}\n`);
    expect(debugfs(root, "cat /etc/k3s-role")).toBe("server\n");
    expect(debugfs(root, "cat /etc/hostname")).toBe(`rk1-${marker}\n`);
    expect(debugfs(root, "cat /etc/hwrevision")).toBe("turing-rk1 1.0\n");
    expect(debugfs(root, "cat /etc/isar-k3s/image-id")).toBe(`${first.imageId}\n`);
    expect(debugfs(root, "stat /home/deploy/.ssh/authorized_keys")).toMatch(/Mode: +0600 /);
    sh(["e2fsck", "-fn", root]);
    const fd = fs.openSync(disk, "r");
    const boot = Buffer.alloc(16384 * 512);
    fs.readSync(fd, boot, 0, boot.length, 2048 * 512);
    fs.closeSync(fd);
    expect(require("crypto").createHash("sha256").update(boot).digest("hex")).toBe(base.gptBootSha256);
    expect(JSON.parse(fs.readFileSync(path.join(first.storePath, "metadata.json"), "utf8")).wicRootPartition).toBe(2);
  });

  test("the cluster token is nowhere: output bytes, files inside the ext4s, the input, the closure", () => {
    // positive control: the same search does find a value that is in the image
    const probe = `node-name: rk1-${marker}`;
    const grepAll = (needle: string, paths: string[]) => {
      try {
        return sh(["grep", "-r", "-l", "-a", "-F", "--", needle, ...paths]);
      } catch (e) {
        if ((e as { status?: number }).status === 1) return ""; // no match
        throw e;
      }
    };
    expect(grepAll(probe, [first.storePath])).toContain("rootfs.ext4");
    const dump = path.join(tmp, "rdump");
    fs.mkdirSync(dump);
    sh(["debugfs", "-R", `rdump / ${dump}`, path.join(first.storePath, "rootfs.ext4")]);
    expect(grepAll(probe, [dump])).toContain("config.yaml");
    // the token
    const closure = sh(["nix-store", "-qR", first.storePath]).trim().split("\n");
    const drvClosure = sh(["nix-store", "-qR", first.drvPath]).trim().split("\n");
    expect(grepAll(SENTINEL_TOKEN, [...closure, ...drvClosure, dump, first.inputFile, opts.cacheDir!])).toBe("");
    expect(sh(["strings", "-a", path.join(first.storePath, "rootfs.ext4")])).not.toContain(SENTINEL_TOKEN);
    // and the join side does hold it (the sentinel is real)
    expect(fs.readFileSync(path.join(tmp, "join-token"), "utf8")).toBe(SENTINEL_TOKEN);
  });

  test("same inputs → same store path; one label changed → a new path for that node only", async () => {
    const again = await composeNodeImage(request(`rk1-${marker}`), opts);
    expect(again.storePath).toBe(first.storePath);
    expect(again.imageId).toBe(first.imageId);
    const other = await composeNodeImage(request(`rk1b-${marker}`, { artifacts: { rootfs: base.rootfs, kernel: base.kernel } }), opts);
    const otherChanged = await composeNodeImage(request(`rk1b-${marker}`, { artifacts: { rootfs: base.rootfs, kernel: base.kernel } }, "b"), opts);
    expect(otherChanged.storePath).not.toBe(other.storePath);
    expect(otherChanged.imageId).not.toBe(other.imageId);
    expect(debugfs(path.join(otherChanged.storePath, "rootfs.ext4"), "cat /etc/rancher/k3s/config.yaml")).toContain('"zone=b"');
    expect(fs.existsSync(path.join(other.storePath, "disk.img"))).toBe(false);
    // node 1 untouched by node 2's change
    expect((await composeNodeImage(request(`rk1-${marker}`), opts)).storePath).toBe(first.storePath);
  });

  test("byte-for-byte reproducible: nix build --rebuild finds identical output", () => {
    const argv = nixBuildArgv(first.inputFile, { ...opts, projectDir: ROOT });
    argv.push("--rebuild");
    const out = JSON.parse(sh(argv));
    expect(out[0].outputs.out).toBe(first.storePath);
  });

  test("as root and as Nix's build user (fakeroot) the bytes are the same", () => {
    // the first build ran as Nix's build user (nixbld, through fakeroot); rebuild as root and compare
    expect(sh(["id", "-u"]).trim()).toBe("0"); // single-user Nix as root, as on the CI machines
    const log = sh(["nix", "--extra-experimental-features", "nix-command", "log", "--option", "substituters", "", first.drvPath]);
    expect(log).toMatch(/builder uid [1-9]\d*\b/);
    const argv = nixBuildArgv(first.inputFile, { ...opts, projectDir: ROOT, buildAsRoot: true });
    expect(argv).toContain("build-users-group");
    argv.push("--rebuild", "--print-build-logs");
    const res = require("child_process").spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
    expect(res.stderr).toMatch(/builder uid 0\b/);
    expect(res.status).toBe(0);
    expect(JSON.parse(res.stdout)[0].outputs.out).toBe(first.storePath);
  });
});

describe("MBR .wic and failures", () => {
  test("MBR .wic with an explicit root partition", async () => {
    const r = await composeNodeImage(
      request(`cm4-${marker}`, {
        hardware: "turing-cm4",
        role: "agent",
        artifacts: { rootfs: base.rootfs, kernel: base.kernel, wic: base.mbrWic },
        wicRootPartition: 2,
      }),
      { ...opts },
    ).catch((e) => e);
    // role is agent but nodeFiles wrote "server": the expression refuses a disagreeing role marker
    expect(r).toBeInstanceOf(ImageBuildError);
    expect((r as Error).message).toMatch(/disagrees with role 'agent'/);
    const req = request(`cm4-${marker}`, {
      hardware: "turing-cm4",
      role: "agent",
      artifacts: { rootfs: base.rootfs, kernel: base.kernel, wic: base.mbrWic },
      wicRootPartition: 2,
    });
    req.files = req.files.filter((f) => f.path !== "/etc/k3s-role");
    const ok = await composeNodeImage(req, opts);
    const root = `${path.join(ok.storePath, "disk.img")}?offset=${base.mbrRootOffset}`;
    expect(debugfs(root, "cat /etc/k3s-role")).toBe("agent\n");
    expect(debugfs(path.join(ok.storePath, "rootfs.ext4"), "cat /etc/k3s-role")).toBe("agent\n");
  });

  test("a .wic without a root file system fails with the derivation and the log tail", async () => {
    const req = request(`bad-${marker}`, { artifacts: { rootfs: base.rootfs, kernel: base.kernel, wic: base.gptWic }, wicRootPartition: 1 });
    // partition 1 is ext4 but has no /etc; with an explicit number it is accepted, so use a number that is not ext4
    req.wicRootPartition = 3;
    const err = await composeNodeImage(req, opts).catch((e) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect((err as ImageBuildError).drvPath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-node-image-bad-.*\.drv$/);
    expect((err as ImageBuildError).message).toContain("derivation /nix/store/");
    expect((err as ImageBuildError).logTail).toMatch(/found 0 ext2\/3\/4 partitions|partition 3 .* is not an ext2\/3\/4/);
  });

  test("an artifact missing from the store names itself and how to add it", async () => {
    const sha256 = require("crypto").createHash("sha256").update(`never added ${marker}`).digest("hex");
    const missing = { storePath: fixedOutputStorePath(sha256, `never-added-${marker}.tar.gz`), sha256 };
    const err = await composeNodeImage(request(`miss-${marker}`, { artifacts: { rootfs: missing, kernel: base.kernel } }), opts).catch((e) => e);
    expect(err).toBeInstanceOf(ImageBuildError);
    expect((err as ImageBuildError).logTail).toContain(`ISAR artifact rootfs 'never-added-${marker}.tar.gz'`);
    expect((err as ImageBuildError).logTail).toContain("nix-store --add-fixed sha256");
    // a store path that does not belong to (name, sha256) is caught at evaluation
    const wrong = { storePath: base.kernel.storePath, sha256 };
    const err2 = await composeNodeImage(request(`miss-${marker}`, { artifacts: { rootfs: wrong, kernel: base.kernel } }), opts).catch((e) => e);
    expect((err2 as Error).message).toMatch(/does not match name\+sha256/);
  });

  test("inputs carrying the token are refused before anything is written or built", async () => {
    const withKey = request(`tok-${marker}`);
    withKey.files = withKey.files.map((f) =>
      f.path === "/etc/rancher/k3s/config.yaml" && "content" in f ? { ...f, content: `${f.content}token: ${SENTINEL_TOKEN}\n` } : f,
    );
    const err = await composeNodeImage(withKey, opts).catch((e) => e);
    expect(err).toBeInstanceOf(ImageInputError);
    expect((err as Error).message).toMatch(/sets "token"/);
    expect((err as Error).message).toMatch(/contains a secret value/);
    expect((err as Error).message).not.toContain(SENTINEL_TOKEN);
    const inputs = fs.existsSync(path.join(opts.cacheDir!, "inputs")) ? fs.readdirSync(path.join(opts.cacheDir!, "inputs")) : [];
    expect(inputs.filter((f) => f.startsWith(`tok-${marker}`))).toEqual([]);
    const badPath = request(`tok-${marker}`);
    badPath.files.push({ path: "/etc/../shadow", content: "x", mode: 0o644, uid: 0, gid: 0 });
    await expect(composeNodeImage(badPath, opts)).rejects.toThrow(/no \. or \.\. components/);
  });
});
