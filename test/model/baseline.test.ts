/** The seed-003 baseline in the fleet model: deploy user, node logins, data disks, flannel backend. */
import { parseFleet } from "../../lib/model/parse";
import { isDevicePath, isMountPointPath } from "../../lib/model/baseline";
import { expectProblemAt, problemsOf, validRaw } from "./fixtures";

type Raw = ReturnType<typeof validRaw>;

const problems = problemsOf;

const SSD = { device: "/dev/sda1", filesystem: "ext4", mountPoint: "/var/lib/longhorn" };

describe("defaults", () => {
  test("deploy user 'deploy' is every node's login; BMCs keep theirs; no data disks; vxlan", () => {
    const f = parseFleet(validRaw());
    expect(f.deployUser).toBe("deploy");
    expect(f.nodes.map((n) => n.ssh.user)).toEqual(["deploy", "deploy", "deploy", "deploy"]);
    expect(f.bmcs[0].ssh.user).toBe("root");
    expect(f.nodes.every((n) => n.dataDisks.length === 0)).toBe(true);
    expect(f.k3s.flannelBackend).toBe("vxlan");
  });

  test("deployUser renames the login of every node; ssh.user equal to it is accepted", () => {
    const raw = validRaw();
    raw.deployUser = "ops";
    raw.nodes[2].ssh.user = "ops";
    const f = parseFleet(raw);
    expect(f.nodes.map((n) => n.ssh.user)).toEqual(["ops", "ops", "ops", "ops"]);
    expect(f.nodes[2].ssh.hostKey).toMatch(/^ssh-ed25519 /);
  });

  test("data disks are read with filesystem ext4 by default", () => {
    const raw = validRaw();
    raw.nodes[0].dataDisks = [
      { device: "/dev/nvme0n1p1", mountPoint: "/var/lib/longhorn" },
      { device: "/dev/disk/by-id/ata-X_SSD_123-part1", filesystem: "xfs", mountPoint: "/srv/data" },
    ];
    expect(parseFleet(raw).nodes[0].dataDisks).toEqual([
      { device: "/dev/nvme0n1p1", filesystem: "ext4", mountPoint: "/var/lib/longhorn" },
      { device: "/dev/disk/by-id/ata-X_SSD_123-part1", filesystem: "xfs", mountPoint: "/srv/data" },
    ]);
  });
});

type Case = [string, (r: Raw) => void, string, RegExp];
const BAD: Case[] = [
  ["root as a node's login", (r) => (r.nodes[2].ssh.user = "root"), "nodes[2].ssh.user", /root logins are refused.*remove ssh.user/],
  ["another user as a node's login", (r) => (r.nodes[0].ssh = { user: "pi" }), "nodes[0].ssh.user", /only the deploy user "deploy"/],
  ["root as deploy user", (r) => (r.deployUser = "root"), "deployUser", /PermitRootLogin no/],
  ["bad deploy user name", (r) => (r.deployUser = "Deploy User"), "deployUser", /not a valid user name/],
  ["deploy user not a string", (r) => (r.deployUser = 7), "deployUser", /number 7/],
  ["dataDisks not a list", (r) => (r.nodes[0].dataDisks = SSD), "nodes[0].dataDisks", /must be a list/],
  ["data disk not an object", (r) => (r.nodes[0].dataDisks = ["/dev/sda1"]), "nodes[0].dataDisks[0]", /must be an object/],
  ["device missing", (r) => (r.nodes[0].dataDisks = [{ mountPoint: "/data" }]), "nodes[0].dataDisks[0].device", /is required/],
  ["device outside /dev", (r) => (r.nodes[0].dataDisks = [{ ...SSD, device: "sda1" }]), "nodes[0].dataDisks[0].device", /\/dev\/<name>/],
  ["device with ..", (r) => (r.nodes[0].dataDisks = [{ ...SSD, device: "/dev/../etc/passwd" }]), "nodes[0].dataDisks[0].device", /not a block device path/],
  ["device with a space", (r) => (r.nodes[0].dataDisks = [{ ...SSD, device: "/dev/sda1 /" }]), "nodes[0].dataDisks[0].device", /not a block device path/],
  ["device is the tpi node's root", (r) => (r.nodes[0].dataDisks = [{ ...SSD, device: "/dev/mmcblk0p2" }]), "nodes[0].dataDisks[0].device", /root file system/],
  [
    "device is the swupdate alt root",
    (r) => {
      r.nodes[3].delivery.altRootDevice = "/dev/mmcblk0p3";
      r.nodes[3].dataDisks = [{ ...SSD, device: "/dev/mmcblk0p3" }];
    },
    "nodes[3].dataDisks[0].device",
    /root file system/,
  ],
  ["unknown filesystem", (r) => (r.nodes[0].dataDisks = [{ ...SSD, filesystem: "ntfs" }]), "nodes[0].dataDisks[0].filesystem", /ext4 \| xfs \| btrfs/],
  [
    "relative mount point",
    (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "var/lib/longhorn" }]),
    "nodes[0].dataDisks[0].mountPoint",
    /absolute directory path/,
  ],
  ["mount point with ..", (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "/srv/../etc" }]), "nodes[0].dataDisks[0].mountPoint", /without "\.\."/],
  [
    "mount point with trailing slash",
    (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "/srv/data/" }]),
    "nodes[0].dataDisks[0].mountPoint",
    /trailing slash/,
  ],
  ["mount point /", (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "/" }]), "nodes[0].dataDisks[0].mountPoint", /system directory/],
  ["mount point /var", (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "/var" }]), "nodes[0].dataDisks[0].mountPoint", /system directory/],
  ["mount point under /etc", (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountPoint: "/etc/rancher" }]), "nodes[0].dataDisks[0].mountPoint", /system directory/],
  ["unknown data disk key", (r) => (r.nodes[0].dataDisks = [{ ...SSD, mountpoint: "/x" }]), "nodes[0].dataDisks[0].mountpoint", /unknown key/],
  [
    "duplicate device",
    (r) => (r.nodes[0].dataDisks = [SSD, { ...SSD, mountPoint: "/srv/b" }]),
    "nodes[0].dataDisks[1].device",
    /duplicate device "\/dev\/sda1" \(also used by nodes\[0\]\.dataDisks\[0\]\)/,
  ],
  ["duplicate mount point", (r) => (r.nodes[0].dataDisks = [SSD, { ...SSD, device: "/dev/sdb1" }]), "nodes[0].dataDisks[1].mountPoint", /duplicate mountPoint/],
  ["unknown flannel backend", (r) => (r.k3s = { flannelBackend: "ipsec" }), "k3s.flannelBackend", /vxlan \| wireguard-native/],
];

describe("bad baseline configs name their path and the fix", () => {
  test.each(BAD)("%s", (_name, mutate, path, fix) => expectProblemAt(mutate, path, fix));

  test("a duplicate is reported once, on the second disk only", () => {
    const ps = problems((r) => (r.nodes[0].dataDisks = [SSD, SSD]));
    expect(ps.map((p) => p.path).sort()).toEqual(["nodes[0].dataDisks[1].device", "nodes[0].dataDisks[1].mountPoint"]);
  });

  test("the same device on two different nodes is fine (each node has its own disks)", () => {
    expect(
      problems((r) => {
        r.nodes[0].dataDisks = [SSD];
        r.nodes[1].dataDisks = [SSD];
      }),
    ).toEqual([]);
  });
});

test("path predicates", () => {
  for (const ok of [
    "/dev/sda1",
    "/dev/nvme0n1p1",
    "/dev/disk/by-id/wwn-0x5002538e40a1b2c3-part1",
    "/dev/disk/by-path/platform-fe340000.mmc-part1",
    "/dev/mapper/vg-data",
  ])
    expect(isDevicePath(ok)).toBe(true);
  for (const bad of ["/dev/", "/dev//sda", "/dev/sda/", "/dev/./sda", "/devices/sda", "/dev/sd a", "/dev/sda\n"]) expect(isDevicePath(bad)).toBe(false);
  for (const ok of ["/", "/var/lib/longhorn", "/srv/data-1"]) expect(isMountPointPath(ok)).toBe(true);
  for (const bad of ["", "data", "//srv", "/srv//x", "/srv/", "/srv/.", "/a b", "/x\ty"]) expect(isMountPointPath(bad)).toBe(false);
});
