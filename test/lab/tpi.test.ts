/**
 * The simulated Turing Pi BMC with the real `tpi` CLI (crate tpi 1.0.7, --features localhost, built by
 * scripts/tpi.sh) against the lab's bmcd API: grammar and exit codes, flashing (local and streamed, .xz,
 * sha256 on the streamed path, status polling, time proportional to size), slot nodes booting the
 * flashed image (hostname, k3s config, hwrevision, image id, authorized_keys, host keys), and the
 * firmware's failure modes (eMMC write error, crc mismatch, sha256 mismatch, a second flash cancelling
 * the first, no SD card, BMC unreachable, node never boots).
 */
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeDiskImage, findRootFilesystem, findExtFilesystems } from "../../lab/image";
import { Lab, startLab } from "../../lab/lab";
import { HostError, RunResult } from "../../lib/transport/host";
import { SshHost, connectSsh } from "../../lib/transport/ssh";

jest.setTimeout(120_000);

let lab: Lab;
let tmp: string;
let bmc: SshHost;
const opened: SshHost[] = [];

async function tpi(...args: string[]): Promise<RunResult & { out: string; err: string }> {
  const r = await bmc.run(["tpi", ...args], { timeoutMs: 60_000 });
  return { ...r, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** The BMC's flash status, asked over its API from the BMC itself (curl, as the firmware ships it). */
async function flashStatus(): Promise<unknown> {
  const r = await bmc.run(["sh", "-c", 'curl -sSk "https://$TPI_HOSTNAME${TPI_PORT:+:$TPI_PORT}/api/bmc?opt=get&type=flash"'], { timeoutMs: 20_000 });
  return JSON.parse(r.stdout.toString());
}

async function connectNode(name: string, extra: Partial<Parameters<typeof connectSsh>[0]> = {}): Promise<SshHost> {
  const h = lab.hosts[name];
  const s = await connectSsh({
    host: h.address,
    port: h.port,
    user: h.user,
    privateKey: lab.deployKey.privateKey,
    retryForMs: 15_000,
    retryInitialDelayMs: 100,
    ...extra,
  });
  opened.push(s);
  return s;
}

interface ImageOpts {
  hostname: string;
  imageId: string;
  layout: "bare" | "mbr" | "gpt";
  hostKeyFile?: string;
  sizeMiB?: number;
}

function buildImage(name: string, o: ImageOpts): Promise<string> {
  const root = path.join(tmp, `root-${name}`);
  fs.mkdirSync(path.join(root, "etc/rancher/k3s"), { recursive: true });
  fs.mkdirSync(path.join(root, "etc/isar-k3s"), { recursive: true });
  fs.mkdirSync(path.join(root, "root/.ssh"), { recursive: true });
  fs.mkdirSync(path.join(root, "etc/ssh"), { recursive: true });
  fs.writeFileSync(path.join(root, "etc/hostname"), o.hostname + "\n");
  fs.writeFileSync(path.join(root, "etc/hwrevision"), "turing-rk1 1.0\n");
  fs.writeFileSync(path.join(root, "etc/isar-k3s/image-id"), o.imageId + "\n");
  fs.writeFileSync(path.join(root, "etc/rancher/k3s/config.yaml"), `node-name: ${o.hostname}\ncluster-init: true\n`);
  fs.writeFileSync(path.join(root, "root/.ssh/authorized_keys"), lab.deployKey.publicKey + "\n");
  if (o.hostKeyFile) {
    fs.copyFileSync(o.hostKeyFile, path.join(root, "etc/ssh/ssh_host_ed25519_key"));
    fs.copyFileSync(o.hostKeyFile + ".pub", path.join(root, "etc/ssh/ssh_host_ed25519_key.pub"));
  }
  const out = path.join(tmp, `${name}.img`);
  return makeDiskImage({ rootDir: root, out, layout: o.layout, sizeMiB: o.sizeMiB ?? 16 }).then(() => out);
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "tpi-test-"));
  lab = await startLab(
    {
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "rk1", role: "node", tpi: { bmc: "bmc", slot: 1 } },
        { name: "cm4", role: "node", tpi: { bmc: "bmc", slot: 3 } },
      ],
      flashRateMBps: 40,
      bootDelayMs: 100,
    },
    path.join(tmp, "lab"),
    { ownerPid: process.pid },
  );
  bmc = await connectSsh({ host: lab.hosts.bmc.address, port: lab.hosts.bmc.port, hostKey: lab.hosts.bmc.hostKey, privateKey: lab.deployKey.privateKey });
});

afterAll(async () => {
  for (const h of opened) await h.close().catch(() => undefined);
  await bmc?.close();
  await lab?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe("disk images", () => {
  test.each(["bare", "mbr", "gpt"] as const)("the root filesystem of a %s image is found", async (layout) => {
    const img = await buildImage(`layout-${layout}`, { hostname: "x", imageId: "x", layout, sizeMiB: 8 });
    const off = await findRootFilesystem(img);
    expect(off).toBe(layout === "bare" ? 0 : 1 << 20);
    if (layout === "gpt") expect(execFileSync("sgdisk", ["-v", img], { stdio: ["ignore", "pipe", "pipe"] }).toString()).toMatch(/No problems found/);
  });

  test("an image without a filesystem has none", async () => {
    const f = path.join(tmp, "junk.img");
    fs.writeFileSync(f, crypto.randomBytes(1 << 20));
    expect(await findExtFilesystems(f)).toEqual([]);
  });
});

describe("tpi grammar (the real CLI)", () => {
  test("usage errors exit 2 (clap), runtime errors exit 1 with the cause on stdout", async () => {
    // (a bare `tpi` exits 2 with its help on a real BMC; here the BMC's TPI_HOSTNAME counts as an argument for clap)
    const bogus = await tpi("power", "bogus");
    expect(bogus.code).toBe(2);
    expect(bogus.err).toMatch(/invalid value 'bogus'/);
    expect((await tpi("flash", "-n", "5", "-i", "/x")).code).toBe(2);
    const noImage = await tpi("flash", "-n", "1");
    expect(noImage.code).toBe(2);
    expect(noImage.err).toMatch(/--image-path/);
    expect((await tpi("frobnicate")).code).toBe(2);
    const p = await tpi("-p", "443", "info");
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/unexpected argument '-p'/);
    const missing = await tpi("flash", "-n", "1", "-i", "/mnt/sdcard/missing.img", "-l");
    expect(missing.code).toBe(1);
    expect(missing.out).toBe(
      'Error: [{"result":"Failed to /mnt/sdcard/missing.img: No such file or directory (os error 2)"}]\nFailed to begin flashing: 500 Internal Server Error\n',
    );
    const unreachable = await tpi("--host", "127.0.0.1", "--port", "9", "info");
    expect(unreachable.code).toBe(1);
    expect(unreachable.out).toMatch(/^error sending request for url \(https:\/\/127\.0\.0\.1:9\/api\/bmc\?opt=get&type=other\)/);
  });

  test("power status, --json, options before or after the action, usb, info", async () => {
    const st = await tpi("power", "status");
    expect(st.code).toBe(0);
    expect(st.out).toBe("node1: off\nnode2: off\nnode3: off\nnode4: off\n");
    const js = await tpi("--json", "power", "status");
    expect(JSON.parse(js.out)).toEqual({ response: [{ result: [{ node1: "0", node2: "0", node3: "0", node4: "0" }] }] });
    expect((await tpi("power", "-n", "2", "on")).out).toBe("ok\n");
    expect((await tpi("power", "status")).out).toMatch(/node2: On/);
    expect((await tpi("power", "off", "--node", "2")).code).toBe(0);
    expect((await tpi("power", "status")).out).toMatch(/node2: off/);
    expect((await tpi("usb", "device", "-n", "3")).out).toBe("ok\n");
    expect(JSON.parse((await tpi("--json", "usb", "status")).out).response[0].result[0]).toMatchObject({ mode: "Device", node: "Node3" });
    const info = await tpi("info");
    expect(info.out).toMatch(new RegExp(` ip {8}: ${lab.hosts.bmc.address.replace(/\./g, "\\.")}\n`));
    expect(info.out).toMatch(/ api {7}: 1\.1\n/);
    expect(await flashStatus()).toBe("Ready");
  });
});

describe("flash and boot", () => {
  test("flash --local then power on: the slot node boots the flashed image", async () => {
    const img = await buildImage("rk1-a", { hostname: "rk1-alpha", imageId: "img-A-1", layout: "gpt" });
    await bmc.upload(img, "/mnt/sdcard/isar-k3s/rk1-a.img");
    const sha = crypto.createHash("sha256").update(fs.readFileSync(img)).digest("hex");
    const r = await tpi("flash", "-n", "1", "-i", "/mnt/sdcard/isar-k3s/rk1-a.img", "-l");
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toBe("Flashing from image file /mnt/sdcard/isar-k3s/rk1-a.img...\nDone\n");
    expect(await flashStatus()).toEqual({ Done: [{ secs: expect.any(Number), nanos: expect.any(Number) }, 16 << 20] });
    expect((await tpi("power", "status")).out).toMatch(/node1: off/); // left off after a flash
    // the eMMC of slot 1 now holds exactly the image
    expect(
      crypto
        .createHash("sha256")
        .update(fs.readFileSync(path.join(lab.dir, "bmc-bmc", "slot1.img")))
        .digest("hex"),
    ).toBe(sha);

    expect((await tpi("power", "on", "-n", "1")).code).toBe(0);
    // no pin: the image carried no host key, the node generated one at first boot
    const err = await connectNode("rk1", { retryForMs: 15_000 }).catch((e) => e);
    expect(err.name).toBe("UnknownHostKeyError");
    const n = await connectNode("rk1", { acceptNewHostKey: true });
    expect(n.hostKeySeen).toBe(lab.hosts.rk1.hostKey);
    const out = (await n.run(["sh", "-c", "hostname; cat /etc/isar-k3s/image-id /etc/hwrevision /etc/rancher/k3s/config.yaml"])).stdout.toString();
    expect(out).toBe("rk1-alpha\nimg-A-1\nturing-rk1 1.0\nnode-name: rk1-alpha\ncluster-init: true\n");
    expect((await tpi("power", "status")).out).toMatch(/node1: On/);
    // the serial console
    expect((await tpi("uart", "get", "-n", "1")).out).toMatch(/rk1-alpha login:/);
    expect((await tpi("uart", "set", "-n", "1", "-c", "cat /etc/isar-k3s/image-id")).out).toBe("ok\n");
    expect((await tpi("uart", "get", "-n", "1")).out).toMatch(/img-A-1/);
  });

  test("streamed (upload) .xz flash with the right --sha256 and a baked host key; the right image reaches the right slot", async () => {
    const key = path.join(tmp, "cm4_host_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    const img = await buildImage("cm4-b", { hostname: "cm4-bravo", imageId: "img-B-7", layout: "mbr", hostKeyFile: key });
    execFileSync("xz", ["-T1", "-0", "-k", img]);
    await bmc.upload(img + ".xz", "/root/cm4-b.img.xz");
    const sha = crypto
      .createHash("sha256")
      .update(fs.readFileSync(img + ".xz"))
      .digest("hex");
    const r = await tpi("flash", "--node", "3", "--image-path", "/root/cm4-b.img.xz", "--sha256", sha);
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(r.out).toMatch(/^request flashing of cm4-b\.img\.xz to node 3\nstarted transfer of [\d.]+ [KM]iB\.\.\nDone\n$/);
    await tpi("power", "on", "-n", "3");
    const pinned = fs
      .readFileSync(key + ".pub", "utf8")
      .trim()
      .split(" ")
      .slice(0, 2)
      .join(" ");
    const n = await connectNode("cm4", { hostKey: pinned }); // pinned: the key came with the image
    expect((await n.run(["hostname"])).stdout.toString().trim()).toBe("cm4-bravo");
    expect((await n.readFile("/etc/isar-k3s/image-id")).toString().trim()).toBe("img-B-7");
    // slot 1 still runs image A
    const a = await connectNode("rk1", { hostKey: lab.hosts.rk1.hostKey });
    expect((await a.readFile("/etc/isar-k3s/image-id")).toString().trim()).toBe("img-A-1");
    // a file written on one node is not on the other, nor on this machine
    await a.run(["sh", "-c", "echo only-on-rk1 > /etc/marker"]);
    expect((await n.run(["test", "-e", "/etc/marker"])).code).toBe(1);
    expect(fs.existsSync("/etc/marker")).toBe(false);
  });

  test("re-flash replaces the node's state and, without a baked key, its host key", async () => {
    const oldKey = lab.hosts.rk1.hostKey;
    const img = await buildImage("rk1-c", { hostname: "rk1-charlie", imageId: "img-C-2", layout: "bare" });
    await bmc.upload(img, "/mnt/sdcard/rk1-c.img");
    const r = await tpi("flash", "-n", "1", "-i", "/mnt/sdcard/rk1-c.img", "--local");
    expect(r.out.trim().split("\n").pop()).toBe("Done");
    expect(lab.status().hosts.rk1.up).toBe(false); // flashing powered it off
    await tpi("power", "on", "-n", "1");
    const n = await connectNode("rk1", { acceptNewHostKey: true });
    expect(n.hostKeySeen).not.toBe(oldKey);
    expect((await n.run(["hostname"])).stdout.toString().trim()).toBe("rk1-charlie");
    expect((await n.run(["test", "-e", "/etc/marker"])).code).toBe(1); // state of the old image is gone
    // power cycle keeps the same eMMC and state
    await n.run(["sh", "-c", "echo kept > /var/lib/state"]);
    await tpi("power", "off", "-n", "1");
    await tpi("power", "on", "-n", "1");
    const again = await connectNode("rk1", { hostKey: n.hostKeySeen });
    expect((await again.readFile("/var/lib/state")).toString()).toBe("kept\n");
  });

  test("flashing time is proportional to image size; the API's status counts the bytes written, then the read-back", async () => {
    const small = await buildImage("t-small", { hostname: "s", imageId: "s", layout: "bare", sizeMiB: 20 });
    const big = await buildImage("t-big", { hostname: "b", imageId: "b", layout: "bare", sizeMiB: 60 });
    await bmc.upload(small, "/mnt/sdcard/small.img");
    await bmc.upload(big, "/mnt/sdcard/big.img");
    const doneSeconds = async () => {
      const st = (await flashStatus()) as { Done: [{ secs: number; nanos: number }, number] };
      return st.Done[0].secs + st.Done[0].nanos / 1e9;
    };
    await tpi("flash", "-n", "2", "-i", "/mnt/sdcard/small.img", "-l");
    const ts = await doneSeconds();
    const t = Date.now();
    const running = tpi("flash", "-n", "2", "-i", "/mnt/sdcard/big.img", "-l");
    const seen: number[] = [];
    let handle: number | undefined;
    for (let started = false, tries = 0; ;) {
      const st = (await flashStatus()) as { Transferring?: { id: number; size: number; bytes_written: number; process_name: string } };
      if (!st.Transferring && (started || ++tries > 50)) break;
      if (!st.Transferring) {
        await new Promise((r) => setTimeout(r, 50)); // the small flash's Done until tpi's request lands
        continue;
      }
      started = true;
      handle ??= st.Transferring.id;
      expect(st.Transferring).toMatchObject({ id: handle, size: 60 << 20, process_name: "Node2 os install service", cancelled: false });
      seen.push(st.Transferring.bytes_written);
      await new Promise((r) => setTimeout(r, 150));
    }
    const r = await running;
    const tb = Date.now() - t;
    expect(r.out).toBe("Flashing from image file /mnt/sdcard/big.img...\nDone\n");
    expect(seen.length).toBeGreaterThan(3);
    // bytes_written grows while writing, then counts again from 0 for the read-back (crc) pass
    const drop = seen.findIndex((v, i) => i > 0 && v < seen[i - 1]);
    const writing = drop < 0 ? seen : seen.slice(0, drop);
    expect([...writing].sort((a, b) => a - b)).toEqual(writing);
    expect(writing.length).toBeGreaterThan(2);
    // 40 MB/s: 63 MB ≈ 1.6 s of writing plus 0.8 s of read-back, 21 MB a third of it (the Done status
    // carries the BMC's duration; tpi itself polls first after 3 s)
    const tbBmc = await doneSeconds();
    expect(tb).toBeGreaterThanOrEqual(3000);
    expect(tbBmc).toBeGreaterThanOrEqual(2.3);
    expect(ts).toBeGreaterThanOrEqual(0.75);
    expect(tbBmc / ts).toBeGreaterThan(2);
  });
});

describe("failure modes", () => {
  test("eMMC write error: printed on stderr, tpi exits 0, node does not boot", async () => {
    const img = await buildImage("f", { hostname: "broken", imageId: "f", layout: "bare" });
    await bmc.upload(img, "/mnt/sdcard/f.img");
    await lab.setFault({ kind: "flash-error", slot: 3 });
    try {
      const r = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "-l");
      expect(r.code).toBe(0);
      expect(r.err).toBe('Error occured during flashing: "Input/output error (os error 5)"\n');
      expect(r.out).toBe("Flashing from image file /mnt/sdcard/f.img...\n");
      expect(await flashStatus()).toEqual({ Error: "Input/output error (os error 5)" });
    } finally {
      await lab.clearFaults("flash-error");
    }
    await tpi("uart", "get", "-n", "3"); // drain (a read empties the buffer): what follows is this boot's console
    await tpi("power", "on", "-n", "3");
    expect((await tpi("power", "status")).out).toMatch(/node3: On/);
    // the boot attempt ends on the UART with "No bootable device": only then is "not up" a verdict
    let uart = "";
    expect(await waitFor(async () => /No bootable device/.test((uart += (await tpi("uart", "get", "-n", "3")).out)), 15_000)).toBe(true);
    expect(lab.status().hosts.cm4.up).toBe(false);
    await tpi("power", "off", "-n", "3");
  });

  test("crc mismatch on read-back: an error; tpi drops --skip-crc with --local, only the streamed path skips it", async () => {
    await lab.setFault({ kind: "crc-mismatch", slot: 3 });
    try {
      const r = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "-l");
      expect(r.code).toBe(0);
      expect(r.err).toMatch(/^Error occured during flashing: "crc error\. expected \d+, calculated \d+"\n$/);
      const l = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "-l", "--skip-crc");
      expect(l.err).toMatch(/crc error/);
      const s = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "--skip-crc");
      expect(s.out.trim().split("\n").pop()).toBe("Done");
    } finally {
      await lab.clearFaults("crc-mismatch");
    }
  });

  test("a wrong --sha256 on the streamed path is a flash error (stderr, exit 0); --local takes no checksum at all", async () => {
    const r = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "--sha256", "ab".repeat(32));
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^Error occured during flashing: "sha256 checksum failed\. Expected: (ab){32}, got: [0-9a-f]{64}"/);
    // the firmware ignores a checksum with a local file: the same wrong sha256 flashes fine
    const l = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "--local", "--sha256", "ab".repeat(32));
    expect(l.out.trim().split("\n").pop()).toBe("Done");
  });

  test("a second flash cancels the first: the first tpi dies on the foreign handle, the second completes", async () => {
    const big = "/mnt/sdcard/big.img";
    const first = tpi("flash", "-n", "2", "-i", big, "-l");
    await new Promise((r) => setTimeout(r, 1000));
    const second = await tpi("flash", "-n", "4", "-i", big, "-l"); // still transferring when the first polls (3 s)
    const f = await first;
    expect(second.out).toBe(`Flashing from image file ${big}...\nDone\n`);
    expect(f.code).toBe(101); // a panic in tpi's progress thread
    expect(f.err).toMatch(/Invalid flashing handle/);
    expect(f.out).not.toMatch(/Done/);
  });

  test("a second flash that ends before the first tpi polls makes the first print Done (its slot was never written)", async () => {
    const first = tpi("flash", "-n", "1", "-i", "/mnt/sdcard/rk1-c.img", "-l");
    await new Promise((r) => setTimeout(r, 300));
    const second = await tpi("flash", "-n", "4", "-i", "/mnt/sdcard/f.img", "-l");
    const f = await first;
    expect(second.out.trim().split("\n").pop()).toBe("Done");
    expect(f.code).toBe(0);
    expect(f.out.trim().split("\n").pop()).toBe("Done"); // tpi does not check the handle of a Done status
    // slot 1 was cancelled mid-write: it does not boot
    await tpi("power", "on", "-n", "1");
    await new Promise((r) => setTimeout(r, 1000));
    expect(lab.status().hosts.rk1.up).toBe(false);
    expect((await tpi("uart", "get", "-n", "1")).out).toMatch(/No bootable device/);
    await tpi("power", "off", "-n", "1");
  });

  test("no SD card: /mnt/sdcard is an empty, small directory; a local flash of a file that was there fails", async () => {
    await lab.setFault({ kind: "no-sdcard" });
    try {
      expect((await bmc.run(["ls", "-A", "/mnt/sdcard"])).stdout.toString()).toBe("");
      const df = (await bmc.run(["df", "-Pk", "/mnt/sdcard"])).stdout.toString().trim().split("\n").pop()!.split(/\s+/);
      expect(Number(df[1])).toBeLessThanOrEqual(8192);
      const r = await tpi("flash", "-n", "3", "-i", "/mnt/sdcard/f.img", "-l");
      expect(r.code).toBe(1);
      expect(r.out).toMatch(/No such file or directory/);
    } finally {
      await lab.clearFaults("no-sdcard");
    }
    expect((await bmc.run(["test", "-f", "/mnt/sdcard/f.img"])).code).toBe(0);
  });

  test("never-boot: powered on but no sshd until the fault is cleared", async () => {
    await lab.setFault({ kind: "never-boot", node: "cm4" });
    await tpi("power", "on", "-n", "3");
    expect((await tpi("power", "status")).out).toMatch(/node3: On/);
    const err = await connectNode("cm4", { acceptNewHostKey: true, retryForMs: 1500 }).catch((e) => e);
    expect(err).toBeInstanceOf(HostError);
    await lab.clearFaults("never-boot");
    await tpi("power", "reset", "-n", "3");
    const n = await connectNode("cm4", { acceptNewHostKey: true });
    expect((await n.run(["hostname"])).stdout.toString().trim()).toBe("broken");
  });

  test("BMC unreachable: its sshd and API are down until cleared", async () => {
    await lab.setFault({ kind: "bmc-unreachable" });
    const h = lab.hosts.bmc;
    const err = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 1000 }).catch((e) => e);
    expect(err).toBeInstanceOf(HostError);
    await lab.clearFaults();
    const again = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 10_000 });
    opened.push(again);
    // the SD card survived
    expect((await again.run(["test", "-f", "/mnt/sdcard/f.img"])).code).toBe(0);
    bmc = again;
  });

  test("tpi reboot restarts the BMC", async () => {
    expect((await tpi("reboot")).out).toBe("ok\n");
    expect(await waitFor(() => !lab.status().hosts.bmc.up, 5000)).toBe(true);
    expect(await waitFor(() => lab.status().hosts.bmc.up, 10_000)).toBe(true);
    const h = lab.hosts.bmc;
    bmc = await connectSsh({ host: h.address, port: h.port, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 10_000 });
    opened.push(bmc);
    expect((await tpi("power", "status")).code).toBe(0);
  });
});
