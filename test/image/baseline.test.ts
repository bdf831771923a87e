/**
 * The seed-003 baseline inside a real node image: renderNodeFiles of a parsed fleet node composed by the
 * real `nix build` (host pkgs), then read back with debugfs: the deploy user's files, sshd drop-in,
 * sudoers, firewall (read back and loaded by the real `nft -c -f`), and data-disk units whose names carry
 * systemd's \xNN escapes.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { composeNodeImage, ImageFile } from "../../lib/image/compose";
import { parseFleet } from "../../lib/model/parse";
import { deploymentPlan } from "../../lib/plan/plan";
import { renderNodeFiles } from "../../lib/render/node-files";
import { validRaw } from "../model/fixtures";
import { BaseArtifacts, debugfs, makeBaseArtifacts } from "./fixtures";

jest.setTimeout(180_000);

const ROOT = path.resolve(__dirname, "../..");
let tmp: string;
let base: BaseArtifacts;
const marker = `b${process.pid}`;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "image-baseline-"));
  base = await makeBaseArtifacts(tmp, marker);
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("every baseline file lands in rootfs.ext4 with its mode and owner; the firewall read back passes nft -c", async () => {
  const raw = validRaw();
  raw.nodes[0].name = `srv-${marker}`;
  raw.nodes[0].dataDisks = [
    { device: "/dev/disk/by-id/ata-SSD_870-part1", mountPoint: "/var/lib/longhorn" },
    { device: "/dev/sdb1", filesystem: "xfs", mountPoint: "/srv/data-1" },
  ];
  const fleet = parseFleet(raw);
  const node = fleet.nodes[0];
  const files: ImageFile[] = renderNodeFiles(fleet, deploymentPlan(fleet), node);
  const out = await composeNodeImage(
    { name: node.name, hardware: node.hardware, arch: node.arch, role: node.role, artifacts: { rootfs: base.rootfs, kernel: base.kernel }, files },
    { projectDir: ROOT, cacheDir: path.join(tmp, "cache"), pkgs: "host" },
  );
  const img = path.join(out.storePath, "rootfs.ext4");
  for (const f of files) {
    expect([f.path, debugfs(img, `cat ${f.path}`)]).toEqual([f.path, f.content]);
    const st = debugfs(img, `stat ${f.path}`);
    expect([f.path, /Mode: +(0[0-7]{3}) /.exec(st)?.[1], /User: +(\d+) +Group: +(\d+) /.exec(st)?.slice(1)]).toEqual([
      f.path,
      `0${f.mode.toString(8)}`,
      ["0", "0"],
    ]);
  }
  const names = files.map((f) => f.path);
  expect(names).toEqual(
    expect.arrayContaining([
      "/etc/ssh/isar-k3s/authorized_keys/deploy",
      "/etc/ssh/sshd_config.d/00-isar-k3s.conf",
      "/etc/sudoers.d/isar-k3s-deploy",
      "/etc/nftables.conf",
      "/etc/systemd/system/var-lib-longhorn.mount",
      "/etc/systemd/system/srv-data\\x2d1.mount",
      "/etc/systemd/system/dev-disk-by\\x2did-ata\\x2dSSD_870\\x2dpart1.device.d/isar-k3s-timeout.conf",
    ]),
  );
  expect(debugfs(img, "cat /etc/sudoers.d/isar-k3s-deploy")).toBe(
    "# isar-k3s: the deploy user runs every remote step as root with `sudo -n` (never a password prompt).\ndeploy ALL=(root) NOPASSWD: ALL\n",
  );
  const nft = path.join(tmp, "from-image.nft");
  fs.writeFileSync(nft, debugfs(img, "cat /etc/nftables.conf"));
  const argv = process.getuid?.() === 0 ? ["nft", "-c", "-f", nft] : ["unshare", "-rn", "nft", "-c", "-f", nft];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: "" });
});
