/**
 * The lab follows seed 003's baseline: nodes with a deploy user refuse root logins, and the deploy user
 * reaches root through the real sudo (this machine's setuid /usr/bin/sudo and its sudoers with the
 * host's /etc/sudoers.d). A flashed node takes sshd's drop-in, the deploy user's keys and its sudoers
 * from the image, as rendered by lib/render/baseline.ts.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Lab, startLab } from "../../lab/lab";
import { makeDiskImage } from "../../lab/image";
import {
  DEPLOY_KEYS_DIR,
  FINDMNT_ARGV,
  dataDiskStatus,
  renderDataDiskFiles,
  renderSshdDropIn,
  renderSudoers,
  SSHD_DROPIN_PATH,
  sudoersPath,
} from "../../lib/render/baseline";
import { NodeSpec } from "../../lib/model/types";
import { connectSsh, SshHost } from "../../lib/transport/ssh";

jest.setTimeout(120_000);

let tmp: string;
// The parts of the fleet's node the renderers read for data disks.
const rk1Node = { name: "rk1", dataDisks: [{ device: "/dev/sda1", filesystem: "ext4", mountPoint: "/var/lib/longhorn" }] } as unknown as NodeSpec;
let lab: Lab;
let bmc: SshHost;
const opened: SshHost[] = [];

/** A login that runs commands as the user itself: these tests call sudo explicitly, to check the lab's own. */
async function login(name: string, user: string, extra: Partial<Parameters<typeof connectSsh>[0]> = {}): Promise<SshHost> {
  const h = lab.hosts[name];
  const s = await connectSsh({
    host: h.address,
    port: h.port,
    user,
    hostKey: h.hostKey,
    privateKey: lab.deployKey.privateKey,
    retryForMs: 3000,
    retryInitialDelayMs: 100,
    sudo: false,
    ...extra,
  });
  opened.push(s);
  return s;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "deploy-user-test-"));
  lab = await startLab(
    {
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "rk1", role: "node", user: "deploy", tpi: { bmc: "bmc", slot: 1 }, disks: { sda1: { sizeBytes: 64 << 20, filesystem: "ext4" } } },
        { name: "jet", role: "node", user: "deploy", swupdate: { devices: {} } },
        { name: "jetpw", role: "node", user: "deploy", swupdate: { devices: {} }, sudoPassword: true },
      ],
      bootDelayMs: 100,
    },
    path.join(tmp, "lab"),
    { ownerPid: process.pid },
  );
  bmc = await login("bmc", "root");
});

afterAll(async () => {
  for (const h of opened) await h.close().catch(() => undefined);
  await lab?.stop();
  if (!process.env.KEEP_LAB) fs.rmSync(tmp, { recursive: true, force: true });
});

test("an always-on node: the deploy user logs in and gets root with sudo -n; root itself is refused", async () => {
  const n = await login("jet", "deploy");
  expect((await n.run(["id", "-un"])).stdout.toString()).toBe("deploy\n");
  const r = await n.run(["sudo", "-n", "id", "-u"]);
  expect({ code: r.code, out: r.stdout.toString() }).toEqual({ code: 0, out: "0\n" });
  await expect(login("jet", "root")).rejects.toThrow(/^authentication to [0-9.]+:22 failed/);
  // the BMC keeps root
  expect((await bmc.run(["id", "-u"])).stdout.toString()).toBe("0\n");
});

test("a node whose sudo asks for a password: sudo -n fails at once, it never prompts", async () => {
  const n = await login("jetpw", "deploy");
  const r = await n.run(["sudo", "-n", "true"], { timeoutMs: 20_000 });
  expect(r.code).toBe(1);
  expect(r.stderr.toString()).toMatch(/sudo: a password is required/);
});

test("a flashed node takes sshd's drop-in, the deploy user's keys and sudoers from its image", async () => {
  const root = path.join(tmp, "root");
  const put = (p: string, content: string, mode = 0o644) => {
    fs.mkdirSync(path.join(root, path.dirname(p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), content, { mode });
  };
  put("/etc/hostname", "rk1\n");
  put("/etc/isar-k3s/image-id", "img-deploy-1\n");
  put(SSHD_DROPIN_PATH, renderSshdDropIn());
  put(`${DEPLOY_KEYS_DIR}/deploy`, lab.deployKey.publicKey + "\n");
  put(sudoersPath("deploy"), renderSudoers("deploy"), 0o440);
  for (const [p, content] of Object.entries(renderDataDiskFiles(rk1Node))) put(p, content);
  // a root key in the image must not open a root login: the drop-in says PermitRootLogin no
  put("/root/.ssh/authorized_keys", lab.deployKey.publicKey + "\n", 0o600);
  const img = path.join(tmp, "rk1.img");
  await makeDiskImage({ rootDir: root, out: img, layout: "gpt", sizeMiB: 16 });
  await bmc.upload(img, "/mnt/sdcard/isar-k3s/rk1.img");
  expect((await bmc.run(["tpi", "flash", "-n", "1", "-i", "/mnt/sdcard/isar-k3s/rk1.img", "-l"], { timeoutMs: 60_000 })).code).toBe(0);
  expect((await bmc.run(["tpi", "power", "on", "-n", "1"])).code).toBe(0);
  const n = await login("rk1", "deploy", { hostKey: undefined, acceptNewHostKey: true, retryForMs: 15_000 });
  // the only key file sshd reads is the image's (the lab wrote none in /home/deploy/.ssh)
  expect(fs.existsSync(lab.hostPath("rk1", "/home/deploy/.ssh/authorized_keys"))).toBe(false);
  const r = await n.run(["sudo", "-n", "sh", "-c", "id -u; cat /etc/isar-k3s/image-id"]);
  expect({ code: r.code, out: r.stdout.toString() }).toEqual({ code: 0, out: "0\nimg-deploy-1\n" });
  await expect(login("rk1", "root", { hostKey: lab.hosts.rk1.hostKey })).rejects.toThrow(/^authentication to [0-9.]+:22 failed/);
});

test("the data disk is mounted where the image's unit says; without it the node still boots and its status says MISSING", async () => {
  let n = await login("rk1", "deploy", { retryForMs: 15_000 });
  let st = dataDiskStatus(rk1Node, (await n.run(FINDMNT_ARGV)).stdout.toString());
  expect(st.map((x) => x.ok)).toEqual([true]);
  expect(st[0].line).toMatch(/^data disk \/dev\/sda1 on \/var\/lib\/longhorn: mounted \(\/dev\/loop\d+, ext4\)$/);
  // it is a file system of its own: what is written there lands on the disk, not on the root
  expect((await n.run(["sudo", "-n", "sh", "-c", "echo replica > /var/lib/longhorn/r && stat -f -c %T /var/lib/longhorn"])).stdout.toString()).toBe(
    "ext2/ext3\n",
  );
  await n.close();
  await lab.setDiskAttached("rk1", "sda1", false);
  await lab.reboot("rk1");
  n = await login("rk1", "deploy", { retryForMs: 15_000 });
  st = dataDiskStatus(rk1Node, (await n.run(FINDMNT_ARGV)).stdout.toString());
  expect(st.map((x) => x.ok)).toEqual([false]);
  expect(st[0].line).toMatch(/^data disk \/dev\/sda1 on \/var\/lib\/longhorn: MISSING, nothing is mounted there \(the node booted without it: nofail\)/);
  expect(fs.readFileSync(path.join(lab.dir, "hosts", "rk1", "log"), "utf8")).toMatch(
    /data disk \/dev\/sda1 for \/var\/lib\/longhorn is missing \(nofail: booting without it\)/,
  );
});
