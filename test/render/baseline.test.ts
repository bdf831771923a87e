/**
 * Seed 003 baseline renderers against the real tools: every rendered nftables ruleset is loaded by
 * `nft -c -f`, the sshd drop-in by `sshd -T`, sudoers by `visudo -c`, the deploy user by
 * `systemd-sysusers --root` and `systemd-tmpfiles --root`, the units by `systemd-analyze verify`, unit
 * names by `systemd-escape --path`, disk status from this machine's `findmnt`. Goldens pin the bytes
 * (UPDATE_GOLDEN=1 rewrites them).
 */
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { parseFleet } from "../../lib/model/parse";
import { Fleet, NodeSpec } from "../../lib/model/types";
import { deploymentPlan } from "../../lib/plan/plan";
import { FIREWALL_PATH, renderFirewall } from "../../lib/render/firewall";
import {
  FINDMNT_ARGV,
  SSHD_DROPIN_PATH,
  dataDiskStatus,
  mountUnitName,
  renderDataDiskFiles,
  renderDeployUserUnit,
  renderSshdDropIn,
  renderSudoers,
  renderSysusers,
  renderTmpfiles,
  systemdEscapePath,
} from "../../lib/render/baseline";
import { renderNodeFiles } from "../../lib/render/node-files";
import { k3sConfigObject } from "../../lib/render/k3s-config";
import { validRaw } from "../model/fixtures";

const GOLDEN = path.join(__dirname, "golden");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "h18-render-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function stack(name: string): Fleet {
  const doc = parse(fs.readFileSync(path.join(__dirname, "..", "..", `Pulumi.${name}.yaml`), "utf8"));
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(doc.config)) raw[k.replace(/^isar-k3s:/, "")] = v;
  return parseFleet(raw);
}

function golden(name: string, actual: string): void {
  const f = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === "1" || !fs.existsSync(f)) fs.writeFileSync(f, actual);
  expect(actual).toBe(fs.readFileSync(f, "utf8"));
}

/** `nft -c -f FILE`: as root directly; otherwise inside a user+network namespace (nothing is committed either way). */
function nftCheck(file: string): { status: number | null; stderr: string } {
  const argv = process.getuid?.() === 0 ? ["nft", "-c", "-f", file] : ["unshare", "-rn", "nft", "-c", "-f", file];
  const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8" });
  return { status: r.status, stderr: r.stderr + (r.error ? String(r.error) : "") };
}

function withBackend(backend: string): Fleet {
  const raw = validRaw();
  raw.k3s = { flannelBackend: backend };
  return parseFleet(raw);
}

const FLEETS: [string, Fleet][] = [
  ["dev", stack("dev")],
  ["lab", stack("lab")],
  ["vxlan", withBackend("vxlan")],
  ["wireguard", withBackend("wireguard-native")],
  ["hostgw", withBackend("host-gw")],
];
const RULESETS: [string, Fleet, NodeSpec][] = FLEETS.flatMap(([fname, f]) => f.nodes.map((n) => [`${fname}/${n.name}`, f, n] as [string, Fleet, NodeSpec]));

describe("nftables ruleset per role", () => {
  test.each(RULESETS)("%s passes the real `nft -c -f`", (name, fleet, node) => {
    const file = path.join(tmp, name.replace("/", "-") + ".nft");
    fs.writeFileSync(file, renderFirewall(fleet, node));
    const r = nftCheck(file);
    if (r.status !== 0) throw new Error(`nft -c rejected ${name}:\n${r.stderr}`);
  });

  test("the check can fail: nft -c rejects a broken ruleset and an unknown set", () => {
    const fleet = stack("dev");
    const good = renderFirewall(fleet, fleet.nodes[0]);
    for (const [what, bad] of [
      ["port out of range", good.replace("tcp dport 6443", "tcp dport 65536")],
      ["undefined set", good.replace("@servers", "@etcd_peers")],
    ]) {
      const file = path.join(tmp, "bad.nft");
      fs.writeFileSync(file, bad);
      const r = nftCheck(file);
      expect([what, r.status]).toEqual([what, 1]);
      expect(r.stderr).toMatch(/Error/);
    }
  });

  test("goldens: a server and an agent of the dev stack, a server with WireGuard", () => {
    const dev = stack("dev");
    golden(
      "dev-srv1.nft",
      renderFirewall(
        dev,
        dev.nodes.find((n) => n.name === "srv1")!,
      ),
    );
    golden(
      "dev-agent1.nft",
      renderFirewall(
        dev,
        dev.nodes.find((n) => n.name === "agent1")!,
      ),
    );
    const wg = withBackend("wireguard-native");
    golden("wireguard-srv1.nft", renderFirewall(wg, wg.nodes[0]));
  });

  test("ports follow role and backend: API and etcd on servers only, etcd from servers only, overlay port per backend", () => {
    const lab = stack("lab");
    const server = renderFirewall(
      lab,
      lab.nodes.find((n) => n.name === "tp-node1")!,
    );
    const agent = renderFirewall(
      lab,
      lab.nodes.find((n) => n.name === "tp-node3")!,
    );
    expect(server).toMatch(/tcp dport 6443 accept/);
    expect(server).toMatch(/ip saddr @servers tcp dport 2379-2380 accept/);
    expect(server).toMatch(/set servers \{\n\t\ttype ipv4_addr\n\t\telements = \{ 192\.168\.1\.10, 192\.168\.1\.11, 192\.168\.1\.12 \}/);
    expect(server).toMatch(/elements = \{ 192\.168\.1\.10, 192\.168\.1\.11, 192\.168\.1\.12, 192\.168\.1\.13, 192\.168\.1\.20, 192\.168\.1\.21 \}/);
    for (const f of [server, agent]) {
      expect(f).toMatch(/policy drop;/);
      expect(f).toMatch(/tcp dport 22 accept/);
      expect(f).toMatch(/ip saddr @cluster_nodes tcp dport 10250 accept/);
      expect(f).toMatch(/ip saddr 10\.42\.0\.0\/16 tcp dport 10250 accept/);
      expect(f).toMatch(/ip saddr @cluster_nodes udp dport 8472 accept/);
      expect(f).not.toMatch(/flush ruleset/);
      expect(f).not.toMatch(/hook forward|hook output/);
    }
    expect(agent).not.toMatch(/6443|2379/);
    const wg = withBackend("wireguard-native");
    const w = renderFirewall(wg, wg.nodes[0]);
    expect(w).toMatch(/udp dport 51820 accept/);
    expect(w).not.toMatch(/8472/);
    const hg = withBackend("host-gw");
    expect(renderFirewall(hg, hg.nodes[0])).not.toMatch(/udp dport/);
    // the SSH port is the node's own
    const raw = validRaw();
    raw.nodes[0].ssh = { port: 2222 };
    const f2 = parseFleet(raw);
    expect(renderFirewall(f2, f2.nodes[0])).toMatch(/tcp dport 2222 accept comment "SSH"/);
  });

  test("k3s is told the backend when it is not its default", () => {
    const wg = withBackend("wireguard-native");
    expect(k3sConfigObject(wg, deploymentPlan(wg), wg.nodes[0])["flannel-backend"]).toBe("wireguard-native");
    const vx = withBackend("vxlan");
    expect(k3sConfigObject(vx, deploymentPlan(vx), vx.nodes[0])["flannel-backend"]).toBeUndefined();
  });
});

describe("sshd, sudo and the deploy user", () => {
  test("golden sshd drop-in; the real sshd -T keeps it over a looser main config", () => {
    golden("sshd-00-isar-k3s.conf", renderSshdDropIn());
    const dir = path.join(tmp, "sshd");
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, "00-isar-k3s.conf"), renderSshdDropIn());
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "hk")]);
    // Debian's layout: the Include comes first, then the main file's own (here: loose) settings.
    fs.writeFileSync(path.join(dir, "sshd_config"), `Include ${dir}/*.conf\nPermitRootLogin yes\nPasswordAuthentication yes\nHostKey ${dir}/hk\n`);
    const out = execFileSync(
      "unshare",
      // a private /run for sshd's privilege separation directory: as root a mount namespace is enough (and
      // works in a chroot, where user namespaces are refused); otherwise a user namespace too
      [
        process.getuid?.() === 0 ? "-m" : "-rm",
        "sh",
        "-c",
        'mount -t tmpfs none /run && mkdir /run/sshd && exec /usr/sbin/sshd -T -f "$1"',
        "sh",
        path.join(dir, "sshd_config"),
      ],
      { encoding: "utf8" },
    );
    expect(out).toMatch(/^permitrootlogin no$/m);
    expect(out).toMatch(/^passwordauthentication no$/m);
    expect(out).toMatch(/^kbdinteractiveauthentication no$/m);
    expect(out).toMatch(/^authorizedkeysfile \/etc\/ssh\/isar-k3s\/authorized_keys\/%u$/m);
  });

  test("sudoers passes the real visudo -c (and visudo catches a typo)", () => {
    golden("sudoers-deploy", renderSudoers("deploy"));
    const f = path.join(tmp, "sudoers");
    fs.writeFileSync(f, renderSudoers("deploy"));
    expect(spawnSync("visudo", ["-c", "-f", f], { encoding: "utf8" }).status).toBe(0);
    fs.writeFileSync(f, renderSudoers("deploy").replace("NOPASSWD", "NOPASWD"));
    expect(spawnSync("visudo", ["-c", "-f", f], { encoding: "utf8" }).status).toBe(1);
  });

  test("the real systemd-sysusers and systemd-tmpfiles create the user and its home in an image root", () => {
    const root = path.join(tmp, "root");
    fs.mkdirSync(path.join(root, "etc"), { recursive: true });
    fs.writeFileSync(path.join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    fs.writeFileSync(path.join(root, "etc/group"), "root:x:0:\n");
    const su = path.join(tmp, "isar-k3s-ops.conf");
    fs.writeFileSync(su, renderSysusers("ops"));
    execFileSync("systemd-sysusers", [`--root=${root}`, su], { stdio: "pipe" });
    const line = fs
      .readFileSync(path.join(root, "etc/passwd"), "utf8")
      .split("\n")
      .find((l) => l.startsWith("ops:"));
    expect(line).toMatch(/^ops:x:(\d+):(\d+):isar-k3s deploy user:\/home\/ops:\/bin\/sh$/);
    const uid = Number(line!.split(":")[2]);
    const tf = path.join(tmp, "tmpfiles-ops.conf");
    fs.writeFileSync(tf, renderTmpfiles("ops"));
    execFileSync("systemd-tmpfiles", [`--root=${root}`, "--create", tf], { stdio: "pipe" });
    const st = fs.statSync(path.join(root, "home/ops"));
    expect([st.uid, st.mode & 0o777]).toEqual([uid, 0o750]);
  });

  test("the deploy user's unit passes systemd-analyze verify without a warning", () => {
    const dir = path.join(tmp, "units");
    fs.mkdirSync(dir, { recursive: true });
    const f = path.join(dir, "isar-k3s-deploy-user.service");
    fs.writeFileSync(f, renderDeployUserUnit("deploy"));
    const r = spawnSync("systemd-analyze", ["verify", "--man=no", f], { encoding: "utf8" });
    expect({
      status: r.status,
      stderr: r.stderr
        .split("\n")
        .filter((l) => l.includes(f))
        .join("\n"),
    }).toEqual({ status: 0, stderr: "" });
  });

  test("every node image gets the baseline files, keys root-owned under /etc/ssh", () => {
    const dev = stack("dev");
    const files = renderNodeFiles(dev, deploymentPlan(dev), dev.nodes[0]);
    const get = (p: string) => files.find((f) => f.path === p);
    expect(get("/etc/ssh/isar-k3s/authorized_keys/deploy")).toMatchObject({
      mode: 0o644,
      uid: 0,
      content: expect.stringMatching(/^ssh-ed25519 \S+ deploy@dev-lab/),
    });
    expect(get(SSHD_DROPIN_PATH)?.content).toBe(renderSshdDropIn());
    expect(get("/etc/sudoers.d/isar-k3s-deploy")).toMatchObject({ mode: 0o440, content: renderSudoers("deploy") });
    expect(get("/etc/sysusers.d/isar-k3s-deploy.conf")).toBeDefined();
    expect(get("/etc/tmpfiles.d/isar-k3s-deploy.conf")).toBeDefined();
    expect(get("/etc/systemd/system/ssh.service.d/isar-k3s.conf")?.content).toMatch(/Wants=isar-k3s-deploy-user.service/);
    expect(get(FIREWALL_PATH)?.content).toBe(renderFirewall(dev, dev.nodes[0]));
    expect(get("/etc/systemd/system/sysinit.target.d/isar-k3s-firewall.conf")?.content).toMatch(/Wants=nftables.service/);
    expect(files.some((f) => f.path.startsWith("/root/") || f.path.startsWith("/home/"))).toBe(false);
  });
});

describe("data disks", () => {
  const lab = stack("lab");
  const cm4 = lab.nodes.find((n) => n.name === "tp-node3")!;

  test("the lab's CM4 gets a nofail mount unit for its SATA SSD, ordered before k3s (golden)", () => {
    expect(cm4.dataDisks).toEqual([{ device: "/dev/sda1", filesystem: "ext4", mountPoint: "/var/lib/longhorn" }]);
    const files = renderDataDiskFiles(cm4);
    expect(Object.keys(files).sort()).toEqual([
      "/etc/systemd/system/dev-sda1.device.d/isar-k3s-timeout.conf",
      "/etc/systemd/system/local-fs.target.d/isar-k3s-data-disks.conf",
      "/etc/systemd/system/var-lib-longhorn.mount",
    ]);
    golden("var-lib-longhorn.mount", files["/etc/systemd/system/var-lib-longhorn.mount"]);
    expect(files["/etc/systemd/system/local-fs.target.d/isar-k3s-data-disks.conf"]).toMatch(/^Wants=var-lib-longhorn\.mount$/m);
    expect(renderDataDiskFiles(lab.nodes[0])).toEqual({});
    const nf = renderNodeFiles(lab, deploymentPlan(lab), cm4).map((f) => f.path);
    expect(nf).toContain("/etc/systemd/system/var-lib-longhorn.mount");
  });

  test("mount units pass systemd-analyze verify (which refuses a unit whose name does not match Where=)", () => {
    const raw = validRaw();
    raw.nodes[0].dataDisks = [
      { device: "/dev/disk/by-id/ata-Samsung_SSD_870-part1", mountPoint: "/var/lib/longhorn" },
      { device: "/dev/nvme0n1p1", filesystem: "xfs", mountPoint: "/srv/data-1.x" },
    ];
    const node = parseFleet(raw).nodes[0];
    const dir = path.join(tmp, "mounts");
    fs.mkdirSync(dir, { recursive: true });
    for (const d of node.dataDisks) {
      const f = path.join(dir, mountUnitName(d));
      fs.writeFileSync(f, renderDataDiskFiles(node)[`/etc/systemd/system/${mountUnitName(d)}`]);
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", f], { encoding: "utf8" });
      expect({
        unit: mountUnitName(d),
        status: r.status,
        stderr: r.stderr
          .split("\n")
          .filter((l) => l.includes(mountUnitName(d)))
          .join("\n"),
      }).toEqual({ unit: mountUnitName(d), status: 0, stderr: "" });
    }
    const wrong = path.join(dir, "srv-other.mount");
    fs.writeFileSync(wrong, renderDataDiskFiles(node)["/etc/systemd/system/var-lib-longhorn.mount"]);
    expect(spawnSync("systemd-analyze", ["verify", "--man=no", wrong], { encoding: "utf8" }).status).not.toBe(0);
  });

  test("systemdEscapePath matches the real systemd-escape --path", () => {
    const paths = [
      "/var/lib/longhorn",
      "/dev/sda1",
      "/dev/disk/by-id/ata-X_SSD_870+EVO-part1",
      "/srv/data-1.x/.hidden",
      "/dev/disk/by-path/pci-0000:01:00.0-nvme-1",
      "/mnt/a@b",
    ];
    const real = execFileSync("systemd-escape", ["--path", ...paths], { encoding: "utf8" })
      .trim()
      .split(" ");
    expect(paths.map(systemdEscapePath)).toEqual(real);
  });

  test("status lines from this machine's real findmnt: mounted, missing (with the fix), wrong file system", () => {
    const out = execFileSync(FINDMNT_ARGV[0], FINDMNT_ARGV.slice(1), { encoding: "utf8" });
    const rootLine = out.split("\n").find((l) => l.startsWith("/ "))!;
    const rootFs = rootLine.split(" ")[2];
    const other = rootFs === "xfs" ? "btrfs" : "xfs";
    const node = {
      ...cm4,
      dataDisks: [
        { device: "/dev/sda1", filesystem: "ext4" as const, mountPoint: "/var/lib/longhorn-h18-absent" },
        { device: "/dev/root", filesystem: rootFs as "ext4", mountPoint: "/" },
        { device: "/dev/root", filesystem: other as "xfs", mountPoint: "/" },
      ],
    };
    const st = dataDiskStatus(node, out);
    expect(st.map((s) => s.ok)).toEqual([false, true, false]);
    expect(st[0].line).toMatch(
      /^data disk \/dev\/sda1 on \/var\/lib\/longhorn-h18-absent: MISSING.*nofail.*systemctl start var-lib-longhorn\\x2dh18\\x2dabsent\.mount` on tp-node3/,
    );
    expect(st[1].line).toBe(`data disk /dev/root on /: mounted (${rootLine.split(" ")[1]}, ${rootFs})`);
    expect(st[2].line).toMatch(/WRONG/);
  });
});
