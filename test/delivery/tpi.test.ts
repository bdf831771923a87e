/**
 * Turing Pi flashing against the simulated lab (real sshd on the BMC and the nodes, the BMC's `tpi`
 * with the real grammar and failure modes, per-slot eMMC files, slot nodes booting what was flashed):
 * - a flash of slot N writes exactly slot N's eMMC and the node boots with its own hostname and config;
 *   the host key seen right after our flash is recorded; progress is reported per phase;
 * - through the provider: unchanged image → no upload, no flash (BMC log); refresh sees no drift;
 *   a changed image replaces (delete powers off and removes the BMC copy; create flashes the new one);
 *   a node reflashed behind our back is drift;
 * - tpi flash failing with exit 0 is detected; BMC unreachable and a node that never boots give clear
 *   errors; a re-run after each fault is cleared converges.
 */
import * as fs from "fs";
import * as path from "path";
import type { Lab } from "../../lab/lab";
import { connectSsh } from "../../lib/transport/ssh";
import { ProgressEvent } from "../../lib/delivery/common";
import { flashNode, parseFlashOutcome, tpiFlashArgv, TpiFlashSpec } from "../../lib/delivery/tpi";
import { DeliveryOutputs, TpiInputs } from "../../lib/delivery/resource";
import { deliveryProvider } from "../../providers/delivery";
import { TestImage, imageFromWic, labLogCount, makeNodeImage, sha256File, tempDir, startLabRetry } from "./labutil";

jest.setTimeout(120_000);

let lab: Lab;
let dir: string;
let imgA: TestImage;
let imgA2: TestImage;
let imgB: TestImage;
const IMAGE_DIR = "/mnt/sdcard/images";

beforeAll(async () => {
  dir = await tempDir("delivery-tpi-");
  lab = await startLabRetry(
    {
      hosts: [
        { name: "bmc", role: "bmc" },
        { name: "n1", role: "node", tpi: { bmc: "bmc", slot: 1 } },
        { name: "n2", role: "node", tpi: { bmc: "bmc", slot: 2 } },
      ],
      flashRateMBps: 10, // 16 MiB ≈ 1.7 s: long enough to see flash progress
      bootDelayMs: 100,
      bmcdPort: 8080,
    },
    path.join(dir, "lab"),
  );
  const key = lab.deployKey.publicKey;
  imgA = await makeNodeImage(dir, { name: "a", hostname: "rk1-srv1", authorizedKey: key });
  imgA2 = await makeNodeImage(dir, { name: "a2", hostname: "rk1-srv1", authorizedKey: key, extra: "node-label:\n  - zone=b\n" });
  imgB = await makeNodeImage(dir, { name: "b", hostname: "rk1-agent2", authorizedKey: key });
});

afterAll(async () => {
  await lab?.stop();
  if (dir) await fs.promises.rm(dir, { recursive: true, force: true });
});

function emmc(slot: number): string {
  return path.join(lab.dir, "bmc-bmc", `slot${slot}.img`);
}

function spec(node: "n1" | "n2", img: TestImage, over: Partial<TpiFlashSpec> = {}): TpiFlashSpec {
  const b = lab.hosts.bmc;
  const n = lab.hosts[node];
  return {
    nodeName: node,
    hostname: img.hostname,
    slot: n.tpi!.slot,
    bmc: { name: "bmc", address: b.address, port: b.port, user: b.user, hostKey: b.hostKey, imageDir: IMAGE_DIR },
    node: { address: n.address, port: n.port, user: n.user },
    image: { path: img.path, sha256: img.sha256, imageId: img.imageId },
    flashTimeoutSeconds: 60,
    bootTimeoutSeconds: 30,
    connectTimeoutSeconds: 10,
    pollIntervalMs: 200,
    ...over,
  };
}

function inputs(node: "n1" | "n2", img: TestImage, over: Partial<TpiInputs> = {}): TpiInputs {
  const s = spec(node, img);
  return {
    kind: "tpi",
    nodeName: s.nodeName,
    hostname: s.hostname,
    slot: s.slot,
    bmc: s.bmc,
    node: s.node,
    image: s.image,
    sources: { "rootfs sha256": img.sha256 },
    flashTimeoutSeconds: 60,
    bootTimeoutSeconds: 30,
    connectTimeoutSeconds: 10,
    tpiSha256: true,
    sshPrivateKey: lab.deployKey.privateKey,
    ...over,
  };
}

async function onNode(node: string, hostKey: string, argv: string[]): Promise<string> {
  const h = lab.hosts[node];
  const c = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 5000 });
  try {
    const r = await c.run(argv);
    return r.stdout.toString("utf8");
  } finally {
    await c.close();
  }
}

/** The error a promise rejects with (fails the test when it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure, but it succeeded");
}

const flashes = (slot: number) => labLogCount(lab.dir, new RegExp(`bmcd bmc: flashing .* to node ${slot}\\b`));

test("flashing slot 1 writes exactly slot 1's eMMC; the node boots with its own hostname and config; its key is recorded", async () => {
  const events: ProgressEvent[] = [];
  const before2 = fs.existsSync(emmc(2)) ? await sha256File(emmc(2)) : undefined;
  const r = await flashNode(spec("n1", imgA), { privateKey: lab.deployKey.privateKey }, { progress: (e) => events.push(e) });
  expect(r.runningImageId).toBe(imgA.imageId);
  expect(r.uploadSkipped).toBe(false);
  expect(r.sha256Checked).toBe(true);
  expect(r.remoteImagePath).toBe(`${IMAGE_DIR}/isar-k3s-n1-${imgA.imageId}.img`);
  // slot 1's eMMC holds the image byte for byte; slot 2's is untouched
  expect(await sha256File(emmc(1))).toBe(imgA.sha256);
  expect(fs.existsSync(emmc(2)) ? await sha256File(emmc(2)) : undefined).toBe(before2);
  expect(flashes(2)).toBe(0);
  // the node booted what we flashed, and presents the key we recorded
  expect(r.nodeHostKey).toBe(lab.hosts.n1.hostKey);
  expect((await onNode("n1", r.nodeHostKey, ["hostname"])).trim()).toBe("rk1-srv1");
  expect(await onNode("n1", r.nodeHostKey, ["cat", "/etc/rancher/k3s/config.yaml"])).toBe(imgA.k3sConfig);
  // progress: every phase once, percentages bounded
  const phases = [...new Set(events.map((e) => e.phase))];
  expect(phases).toEqual(["connect-bmc", "upload", "flash", "power-on", "boot", "verify", "done"]);
  expect(events.filter((e) => e.phase === "upload").length).toBeLessThanOrEqual(13);
  expect(events.find((e) => e.phase === "flash" && e.percent === 100)).toBeDefined();
  const mid = events.filter((e) => e.phase === "flash" && e.percent! > 0 && e.percent! < 100).map((e) => e.percent!);
  expect(mid.length).toBeGreaterThan(0); // polled from tpi's output while it runs
  expect(mid).toEqual([...mid].sort((a, b) => a - b));
});

test("the dev stack's ISAR .wic (MBR, boot partition, ext4 root on p2) with the node's files injected boots on its slot", async () => {
  const wic = path.resolve(__dirname, "../../dev/isar/build/tmp/deploy/images/turing-rk1/isar-image-base-debian-trixie-turing-rk1.wic");
  const imageId = "wic0123456789abcdef";
  const config = "node-name: rk1-wic\nserver: https://10.0.0.11:6443\n";
  const img = await imageFromWic(wic, path.join(dir, "wic.img"), {
    "/etc/hostname": ["rk1-wic\n", 0o644],
    "/etc/isar-k3s/image-id": [imageId + "\n", 0o644],
    "/etc/rancher/k3s/config.yaml": [config, 0o600],
    "/root/.ssh/authorized_keys": [lab.deployKey.publicKey + "\n", 0o600],
  });
  expect(img.offset).toBeGreaterThan(0);
  const r = await flashNode(spec("n2", { path: img.path, sha256: img.sha256, imageId, hostname: "rk1-wic", k3sConfig: config }), { privateKey: lab.deployKey.privateKey });
  expect(r.runningImageId).toBe(imageId);
  expect(await sha256File(emmc(2))).toBe(img.sha256);
  expect((await onNode("n2", r.nodeHostKey, ["hostname"])).trim()).toBe("rk1-wic");
  expect(await onNode("n2", r.nodeHostKey, ["cat", "/etc/rancher/k3s/config.yaml"])).toBe(config);
});

describe("through the provider", () => {
  let outs: DeliveryOutputs;
  test("create, then an unchanged image: diff says no change, refresh finds no drift, no upload and no flash", async () => {
    const chk = await deliveryProvider.check!({}, { ...inputs("n2", imgB), runningImageId: undefined });
    expect(chk.failures).toEqual([]);
    const created = await deliveryProvider.create!(chk.inputs);
    expect(created.id).toBe("n2@bmc/slot2");
    outs = created.outs;
    expect(outs.runningImageId).toBe(imgB.imageId);
    expect(outs.nodeHostKey).toBe(lab.hosts.n2.hostKey);
    const flashed = flashes(2);
    const uploads = await onNodeBmcLs();
    const read = await deliveryProvider.read!(created.id, outs);
    expect(read.props.runningImageId).toBe(imgB.imageId);
    expect(read.props.lastCheck).toBe("ok");
    const again = await deliveryProvider.check!(outs, inputs("n2", imgB));
    const d = await deliveryProvider.diff!(created.id, read.props, again.inputs);
    expect(d.changes).toBe(false);
    expect(d.replaces).toEqual([]);
    expect(flashes(2)).toBe(flashed);
    expect(await onNodeBmcLs()).toEqual(uploads);
    outs = read.props;
  });

  test("a changed image replaces: delete powers the slot off and removes the BMC copy, create flashes the new image", async () => {
    const news = (await deliveryProvider.check!(outs, inputs("n2", imgA2, { hostname: "rk1-srv1" }))).inputs;
    const d = await deliveryProvider.diff!("n2@bmc/slot2", outs, news);
    expect(d.replaces).toEqual(["image"]);
    expect(d.deleteBeforeReplace).toBe(true);
    await deliveryProvider.delete!("n2@bmc/slot2", outs);
    expect(lab.status().hosts.n2.powered).toBe(false);
    expect(await onNodeBmcLs()).not.toContain(`isar-k3s-n2-${imgB.imageId}.img`);
    const created = await deliveryProvider.create!(news);
    expect(created.outs.runningImageId).toBe(imgA2.imageId);
    expect(await sha256File(emmc(2))).toBe(imgA2.sha256);
    outs = created.outs;
  });

  test("a node reflashed behind our back is drift: refresh notices, diff reflashes", async () => {
    await flashNode(spec("n2", imgB), { privateKey: lab.deployKey.privateKey });
    const read = await deliveryProvider.read!("n2@bmc/slot2", outs);
    expect(read.props.hostKeyChanged).toBe(true);
    const d = await deliveryProvider.diff!("n2@bmc/slot2", read.props, (await deliveryProvider.check!(outs, inputs("n2", imgA2, { hostname: "rk1-srv1" }))).inputs);
    expect(d.replaces).toEqual(["nodeHostKey"]);
  });
});

async function onBmc(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const b = lab.hosts.bmc;
  const c = await connectSsh({ host: b.address, port: b.port, user: b.user, hostKey: b.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 5000 });
  try {
    const r = await c.run(argv);
    return { code: r.code, stdout: r.stdout.toString("utf8"), stderr: r.stderr.toString("utf8") };
  } finally {
    await c.close();
  }
}

async function onNodeBmcLs(): Promise<string[]> {
  const b = lab.hosts.bmc;
  const c = await connectSsh({ host: b.address, port: b.port, user: b.user, hostKey: b.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 5000 });
  try {
    const r = await c.run(["ls", "-1", IMAGE_DIR]);
    return r.stdout.toString("utf8").split("\n").filter((l) => l).sort();
  } finally {
    await c.close();
  }
}

describe("faults", () => {
  afterEach(async () => {
    await lab.clearFaults();
  });

  test("tpi flash failing with exit 0 is detected; a re-run after the fault is cleared converges", async () => {
    await lab.setFault({ kind: "flash-error", slot: 2 });
    // the lab's tpi, like the real one, exits 0 on this failure (checked directly on the BMC)
    const direct = await onBmc(tpiFlashArgv(2, `${IMAGE_DIR}/isar-k3s-n1-${imgA.imageId}.img`));
    expect(direct.code).toBe(0);
    expect(direct.stderr).toMatch(/^Error occured during flashing: /m);
    expect(parseFlashOutcome({ code: direct.code, stdout: direct.stdout, stderr: direct.stderr }).ok).toBe(false);
    const err = await failure(flashNode(spec("n2", imgA), { privateKey: lab.deployKey.privateKey }));
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/^n2: flash failed on BMC bmc slot 2 \(root@[0-9.]+:22\): Error occured during flashing: Failed to write image to the eMMC: I\/O error/);
    expect(err.message).toMatch(/--- last output \(flash\) ---[\s\S]*Writing: \d+%/);
    expect(lab.status().hosts.n2.powered).toBe(false);
    await lab.clearFaults();
    const r = await flashNode(spec("n2", imgA), { privateKey: lab.deployKey.privateKey });
    expect(r.uploadSkipped).toBe(true); // the BMC kept the verified copy
    expect(r.runningImageId).toBe(imgA.imageId);
  });

  test("BMC unreachable: a clear error naming the BMC; nothing changes on the slot; a re-run converges", async () => {
    const before = await sha256File(emmc(1));
    await lab.setFault({ kind: "bmc-unreachable" });
    const t0 = Date.now();
    const err = await failure(flashNode(spec("n1", imgB, { connectTimeoutSeconds: 3 }), { privateKey: lab.deployKey.privateKey }));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(err.message).toMatch(/^n1: connect-bmc failed on BMC bmc slot 1 \(root@[0-9.]+:22\): cannot connect/);
    expect(err.message).toMatch(/How to fix: check that BMC bmc is powered and reachable at [0-9.]+:22 .*nothing was changed on slot 1/);
    expect(await sha256File(emmc(1))).toBe(before);
    await lab.clearFaults();
    const r = await flashNode(spec("n1", imgB), { privateKey: lab.deployKey.privateKey });
    expect(r.runningImageId).toBe(imgB.imageId);
  });

  test("a node that never boots: a clear error with the serial console; a re-run after the fault is cleared converges", async () => {
    await lab.setFault({ kind: "never-boot", node: "n1" });
    const err = await failure(flashNode(spec("n1", imgA, { bootTimeoutSeconds: 4 }), { privateKey: lab.deployKey.privateKey }));
    expect(err.message).toMatch(/^n1: boot failed on root@[0-9.]+:22 \(bmc slot 1\): the node did not answer SSH within delivery\.bootTimeoutSeconds \(4 s\) after power-on/);
    expect(err.message).toMatch(/tpi uart get -n 1/);
    expect(err.message).toMatch(/U-Boot SPL/);
    await lab.clearFaults();
    const r = await flashNode(spec("n1", imgA), { privateKey: lab.deployKey.privateKey });
    expect(r.runningImageId).toBe(imgA.imageId);
    expect((await onNode("n1", r.nodeHostKey, ["hostname"])).trim()).toBe("rk1-srv1");
  });
});
