/**
 * Small real inputs for the image tests: a busybox rootfs tarball, a kernel/initramfs/dtb, and .wic disk
 * images (GPT and MBR, made with sfdisk + mkfs.ext4 at an offset), all added to the Nix store with
 * `nix-store --add-fixed sha256` like lib/artifacts does. Needs: busybox-static, tar, cpio, e2fsprogs,
 * fdisk (sfdisk), nix-bin.
 */
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { addFixed } from "../../lib/artifacts/nixstore";
import { ArtifactRef, ImageEntry } from "../../lib/image/compose";

export function sh(argv: string[], opts: { cwd?: string; input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): string {
  return execFileSync(argv[0], argv.slice(1), {
    cwd: opts.cwd,
    input: opts.input,
    env: opts.env,
    maxBuffer: 256 << 20,
    stdio: ["pipe", "pipe", "pipe"],
  }).toString("utf8");
}

export function sha256Of(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export async function addArtifact(file: string): Promise<ArtifactRef> {
  const sha256 = sha256Of(file);
  return { storePath: await addFixed(file, sha256), sha256 };
}

/** VFS_CAP_REVISION_2, effective, permitted = CAP_NET_RAW (bit 13). */
export const CAP_NET_RAW_XATTR = "0100000200200000000000000000000000000000";

export function escapeTarget(marker: string): string {
  return `/tmp/isar-k3s-image-escape-${marker}`;
}

/** A tiny Debian-shaped root tree: busybox, passwd with a deploy user (1000), os-release, /etc/hostname. */
export function makeRootTree(dir: string, marker: string): void {
  for (const d of ["bin", "etc", "usr/lib", "home/deploy", "root", "proc", "sys", "dev", "tmp", "var/lib"])
    fs.mkdirSync(path.join(dir, d), { recursive: true });
  fs.copyFileSync("/bin/busybox", path.join(dir, "bin/busybox"));
  fs.chmodSync(path.join(dir, "bin/busybox"), 0o755);
  fs.symlinkSync("busybox", path.join(dir, "bin/sh"));
  fs.writeFileSync(path.join(dir, "usr/lib/os-release"), `ID=debian\nVERSION_CODENAME=trixie\nBUILD=${marker}\n`);
  fs.symlinkSync("../usr/lib/os-release", path.join(dir, "etc/os-release"));
  fs.writeFileSync(path.join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\ndeploy:x:1000:1000::/home/deploy:/bin/sh\n");
  fs.writeFileSync(path.join(dir, "etc/group"), "root:x:0:\ndeploy:x:1000:\n");
  fs.writeFileSync(path.join(dir, "etc/hostname"), "isar-base\n");
  // In the base image /etc/motd is an absolute symlink: writing /etc/motd must replace the link, never
  // follow it (least of all to the build host's /tmp).
  fs.symlinkSync(escapeTarget(marker), path.join(dir, "etc/motd"));
  // A file capability (xattr security.capability = cap_net_raw+ep), as Debian gives /bin/ping.
  fs.copyFileSync("/bin/busybox", path.join(dir, "bin/ping"));
  sh([
    "python3",
    "-c",
    "import os, sys; os.setxattr(sys.argv[1], 'security.capability', bytes.fromhex(sys.argv[2]))",
    path.join(dir, "bin/ping"),
    CAP_NET_RAW_XATTR,
  ]);
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
  // owners other than root must survive the unpack (numeric, from the tarball)
  fs.writeFileSync(path.join(dir, "home/deploy/.profile"), "export PATH=/bin\n");
  for (const p of ["home/deploy", "home/deploy/.profile"]) fs.chownSync(path.join(dir, p), 1000, 1000);
  fs.chmodSync(path.join(dir, "home/deploy"), 0o750);
  fs.chmodSync(path.join(dir, "root"), 0o700);
}

export interface BaseArtifacts {
  rootfs: ArtifactRef;
  kernel: ArtifactRef;
  initramfs: ArtifactRef;
  dtbs: ArtifactRef[];
  gptWic: ArtifactRef;
  mbrWic: ArtifactRef;
  /** sha256 of the GPT wic's boot partition bytes (must stay untouched). */
  gptBootSha256: string;
  gptRootOffset: number;
  mbrRootOffset: number;
}

function makeWic(dir: string, name: string, label: "gpt" | "dos", rootTree: string, bootTree: string): { file: string; bootSha: string; rootOffset: number } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, "");
  fs.truncateSync(file, 48 << 20);
  const table =
    label === "gpt"
      ? "label: gpt\nstart=2048, size=16384, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=boot\nstart=18432, size=75776, type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE, name=root\n"
      : "label: dos\nstart=2048, size=16384, type=c, bootable\nstart=18432, size=75776, type=83\n";
  sh(["sfdisk", "-q", file], { input: table });
  // boot partition: ext4 without /etc (must not be taken for the root); root: the rootfs tree.
  sh(["mkfs.ext4", "-q", "-F", "-E", `offset=${2048 * 512}`, "-d", bootTree, file, "8M"]);
  sh(["mkfs.ext4", "-q", "-F", "-E", `offset=${18432 * 512}`, "-d", rootTree, file, `${(75776 * 512) >> 10}k`]);
  const boot = Buffer.alloc(16384 * 512);
  const fd = fs.openSync(file, "r");
  fs.readSync(fd, boot, 0, boot.length, 2048 * 512);
  fs.closeSync(fd);
  return { file, bootSha: createHash("sha256").update(boot).digest("hex"), rootOffset: 18432 * 512 };
}

/** Make every artifact under `dir` (unique per test file) and add it to the store. */
export async function makeBaseArtifacts(dir: string, marker: string): Promise<BaseArtifacts> {
  const root = path.join(dir, "root");
  makeRootTree(root, marker);
  const rootfs = path.join(dir, `isar-image-base-debian-trixie-${marker}.tar.gz`);
  sh(["tar", "--xattrs", "--xattrs-include=*", "--sort=name", "--numeric-owner", "--mtime=@1700000000", "-czf", rootfs, "-C", root, "."]);
  const kernel = path.join(dir, `isar-image-base-debian-trixie-${marker}-vmlinux`);
  fs.writeFileSync(kernel, createHash("sha512").update(`kernel ${marker}`).digest().toString("hex").repeat(500));
  const initramfs = path.join(dir, `isar-image-base-debian-trixie-${marker}-initrd.img`);
  sh(["sh", "-c", 'cd "$1" && find bin etc | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -n > "$2"', "sh", root, initramfs]);
  const dtb = path.join(dir, "rk3588-turing-rk1.dtb");
  fs.writeFileSync(dtb, Buffer.concat([Buffer.from([0xd0, 0x0d, 0xfe, 0xed]), Buffer.from(`dtb ${marker}`.repeat(64))]));
  const bootTree = path.join(dir, "boottree");
  fs.mkdirSync(bootTree);
  fs.writeFileSync(path.join(bootTree, "extlinux.conf"), `LABEL ${marker}\n`);
  const gpt = makeWic(dir, `isar-image-base-debian-trixie-${marker}.wic`, "gpt", root, bootTree);
  const mbr = makeWic(dir, `isar-image-base-debian-trixie-${marker}-mbr.wic`, "dos", root, bootTree);
  return {
    rootfs: await addArtifact(rootfs),
    kernel: await addArtifact(kernel),
    initramfs: await addArtifact(initramfs),
    dtbs: [await addArtifact(dtb)],
    gptWic: await addArtifact(gpt.file),
    mbrWic: await addArtifact(mbr.file),
    gptBootSha256: gpt.bootSha,
    gptRootOffset: gpt.rootOffset,
    mbrRootOffset: mbr.rootOffset,
  };
}

/** What lib/render would give a node (no token: k3s reads it from token-file at join time). */
export function nodeFiles(name: string, opts: { role?: "server" | "agent"; label?: string } = {}): ImageEntry[] {
  const role = opts.role ?? "server";
  const f = (p: string, content: string, mode = 0o644): ImageEntry => ({ path: p, content, mode, uid: 0, gid: 0 });
  return [
    f("/etc/rancher/k3s/config.yaml", `node-name: ${name}\ntoken-file: /var/lib/rancher/k3s/join-token\nnode-label:\n  - "zone=${opts.label ?? "a"}"\n`, 0o600),
    f("/etc/k3s-role", `${role}\n`),
    f("/etc/hostname", `${name}\n`),
    f("/etc/hwrevision", "turing-rk1 1.0\n"),
    f("/etc/systemd/network/10-eth0.network", `[Match]\nName=eth0\n\n[Network]\nAddress=10.0.0.${name.length}/24\n`),
    f("/home/deploy/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGl0ZXN0a2V5IGZvciBpc2FyLWszcyB0ZXN0cyBvbmx5 deploy@ci\n", 0o600),
  ];
}

/** `debugfs -R <request> <fs>` stdout (fs may carry ?offset=N). */
export function debugfs(fsPath: string, request: string): string {
  return sh(["debugfs", "-R", request, fsPath]);
}
