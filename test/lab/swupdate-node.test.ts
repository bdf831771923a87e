/**
 * A SWUpdate lab node runs the real Debian swupdate: a signed bundle installs into the node's own
 * block-device files, and `reboot` on the node restarts it from the freshly written root device.
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Lab, startLab } from "../../lab/lab";
import { SshHost, connectSsh } from "../../lib/transport/ssh";

jest.setTimeout(120_000);

let lab: Lab;
let tmp: string;
const opened: SshHost[] = [];

async function connect(name: string, hostKey = lab.hosts[name].hostKey): Promise<SshHost> {
  const h = lab.hosts[name];
  const s = await connectSsh({ host: h.address, port: h.port, hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 15_000, retryInitialDelayMs: 100 });
  opened.push(s);
  return s;
}

/** A signed bundle (CMS) with one raw rootfs image for `device`, built with openssl and GNU cpio. */
function buildBundle(dir: string, device: string, hostname: string, imageId: string): { swu: string; cert: string; rootfs: string } {
  fs.mkdirSync(path.join(dir, "root/etc/isar-k3s"), { recursive: true });
  fs.mkdirSync(path.join(dir, "root/etc/rancher/k3s"), { recursive: true });
  fs.writeFileSync(path.join(dir, "root/etc/hostname"), hostname + "\n");
  fs.writeFileSync(path.join(dir, "root/etc/isar-k3s/image-id"), imageId + "\n");
  fs.writeFileSync(path.join(dir, "root/etc/rancher/k3s/config.yaml"), "server: https://127.0.0.1:6443\n");
  const rootfs = path.join(dir, "rootfs.ext4");
  execFileSync("mkfs.ext4", ["-q", "-F", "-d", path.join(dir, "root"), rootfs, "4M"]);
  const sha = crypto.createHash("sha256").update(fs.readFileSync(rootfs)).digest("hex");
  fs.writeFileSync(
    path.join(dir, "sw-description"),
    `software = {\n  version = "1.0.0";\n  hardware-compatibility = [ "1.0" ];\n  images: ( { filename = "rootfs.ext4"; type = "raw"; device = "${device}"; sha256 = "${sha}"; } );\n};\n`,
  );
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      path.join(dir, "key.pem"),
      "-out",
      path.join(dir, "cert.pem"),
      "-days",
      "2",
      "-subj",
      "/CN=isar-k3s-lab",
      "-addext",
      "keyUsage=digitalSignature",
      "-addext",
      "extendedKeyUsage=emailProtection",
    ],
    { stdio: "ignore" },
  );
  execFileSync("openssl", [
    "cms",
    "-sign",
    "-in",
    path.join(dir, "sw-description"),
    "-out",
    path.join(dir, "sw-description.sig"),
    "-signer",
    path.join(dir, "cert.pem"),
    "-inkey",
    path.join(dir, "key.pem"),
    "-outform",
    "DER",
    "-nosmimecap",
    "-binary",
  ]);
  const swu = path.join(dir, "bundle.swu");
  execFileSync("cpio", ["-o", "-H", "crc", "--quiet", "-O", swu], { cwd: dir, input: "sw-description\nsw-description.sig\nrootfs.ext4\n" });
  return { swu, cert: path.join(dir, "cert.pem"), rootfs };
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "swu-node-"));
  lab = await startLab(
    {
      hosts: [
        {
          name: "jet",
          role: "node",
          swupdate: { devices: { mmcblk0p1: 8 << 20, mmcblk0p2: 8 << 20 } },
          hwRevision: "jetson-orin-nano 1.0",
          hostname: "jet-old",
        },
        { name: "other", role: "node", swupdate: { devices: { mmcblk0p1: 8 << 20 } } },
      ],
      bootDelayMs: 200,
    },
    path.join(tmp, "lab"),
    { ownerPid: process.pid },
  );
});

afterAll(async () => {
  for (const h of opened) await h.close().catch(() => undefined);
  await lab?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("the node has its own block devices and hwrevision", async () => {
  const j = await connect("jet");
  expect((await j.run(["cat", "/etc/hwrevision"])).stdout.toString()).toBe("jetson-orin-nano 1.0\n");
  expect((await j.run(["stat", "-c", "%s", "/dev/mmcblk0p2"])).stdout.toString().trim()).toBe(String(8 << 20));
  const o = await connect("other");
  expect((await o.run(["test", "-e", "/dev/mmcblk0p2"])).code).toBe(1);
});

test("swupdate installs a signed bundle into the node's device; reboot boots it", async () => {
  const b = buildBundle(path.join(tmp, "b1"), "/dev/mmcblk0p2", "jet-new", "img-J-3");
  const j = await connect("jet");
  await j.upload(b.swu, "/var/tmp/bundle.swu");
  await j.upload(b.cert, "/etc/swupdate/cert.pem");
  const r = await j.run(["swupdate", "-v", "-k", "/etc/swupdate/cert.pem", "-i", "/var/tmp/bundle.swu"], { timeoutMs: 60_000 });
  expect(r.code).toBe(0);
  expect(r.stdout.toString() + r.stderr.toString()).toMatch(/SWUPDATE successful/);
  // the bytes landed in this node's device file, nowhere else
  const dev = fs.readFileSync(lab.backingPath("jet", "/dev/mmcblk0p2"));
  expect(dev.subarray(0, 4 << 20).equals(fs.readFileSync(b.rootfs))).toBe(true);
  expect(fs.readFileSync(lab.backingPath("jet", "/dev/mmcblk0p1")).every((x) => x === 0)).toBe(true);
  expect(fs.existsSync("/dev/mmcblk0p2")).toBe(false);

  const before = Date.now();
  const rb = await j.run(["reboot"]);
  expect(rb.code).toBe(0);
  const deadline = Date.now() + 10_000;
  while (lab.status().hosts.jet.up && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  expect(Date.now() - before).toBeLessThan(10_000);
  const after = await connect("jet");
  expect((await after.run(["hostname"])).stdout.toString().trim()).toBe("jet-new");
  expect((await after.readFile("/etc/isar-k3s/image-id")).toString()).toBe("img-J-3\n");
  expect((await after.readFile("/etc/rancher/k3s/config.yaml")).toString()).toBe("server: https://127.0.0.1:6443\n");
});

test("swupdate refuses a bundle for another hardware revision", async () => {
  const j = await connect("jet");
  await j.run(["sh", "-c", "echo 'jetson-orin-nano 2.0' > /etc/hwrevision"]);
  try {
    const b = buildBundle(path.join(tmp, "b2"), "/dev/mmcblk0p1", "x", "x");
    await j.upload(b.swu, "/var/tmp/b2.swu");
    await j.upload(b.cert, "/var/tmp/cert2.pem");
    const r = await j.run(["swupdate", "-k", "/var/tmp/cert2.pem", "-i", "/var/tmp/b2.swu"], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(fs.readFileSync(lab.backingPath("jet", "/dev/mmcblk0p1")).every((x) => x === 0)).toBe(true);
  } finally {
    await j.run(["sh", "-c", "echo 'jetson-orin-nano 1.0' > /etc/hwrevision"]);
  }
});
