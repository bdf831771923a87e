/**
 * Turing Pi flashing against the simulated lab (real sshd on the BMC and the nodes, the real `tpi` CLI
 * on the BMC against the lab's bmcd API, per-slot eMMC files, slot nodes booting what was flashed):
 * - a flash of slot N writes exactly slot N's eMMC and the node boots with its own hostname and config;
 *   the host key seen right after our flash is recorded; progress is reported per phase; the dev stack's
 *   ISAR .wic layout boots; two flashes through one BMC never overlap;
 * - through the provider: unchanged image → no upload, no flash (BMC log); refresh sees no drift;
 *   a changed image replaces (delete powers off and removes the BMC copy; create flashes the new one);
 *   a node reflashed behind our back is drift.
 * Faults are in tpi-faults.test.ts.
 */
import * as fs from "fs";
import * as path from "path";
import { ProgressEvent } from "../../lib/delivery/common";
import { flashNode } from "../../lib/delivery/tpi";
import { DeliveryOutputs } from "../../lib/delivery/delivery-provider";
import { deliveryProvider } from "../../providers/delivery";
import { imageFromWic, sha256File } from "./labutil";
import { IMAGE_DIR, TpiLab } from "./tpilab";

jest.setTimeout(120_000);

const t = new TpiLab();
beforeAll(() => t.start("delivery-tpi-"));
afterAll(() => t.stop());

test("flashing slot 1 writes exactly slot 1's eMMC; the node boots with its own hostname and config; its key is recorded", async () => {
  const events: ProgressEvent[] = [];
  const before2 = fs.existsSync(t.emmc(2)) ? await sha256File(t.emmc(2)) : undefined;
  const r = await flashNode(t.spec("n1", t.imgA), t.creds, { progress: (e) => events.push(e) });
  expect(r.runningImageId).toBe(t.imgA.imageId);
  expect(r.uploadSkipped).toBe(false);
  expect(r.sha256Checked).toBe(true);
  expect(r.remoteImagePath).toBe(`${IMAGE_DIR}/isar-k3s-n1-${t.imgA.imageId}.img`);
  // slot 1's eMMC holds the image byte for byte; slot 2's is untouched
  expect(await sha256File(t.emmc(1))).toBe(t.imgA.sha256);
  expect(fs.existsSync(t.emmc(2)) ? await sha256File(t.emmc(2)) : undefined).toBe(before2);
  expect(t.flashes(2)).toBe(0);
  // the node booted what we flashed, and presents the key we recorded
  expect(r.nodeHostKey).toBe(t.lab.hosts.n1.hostKey);
  expect((await t.on("n1", ["hostname"], r.nodeHostKey)).stdout.trim()).toBe("rk1-srv1");
  expect((await t.on("n1", ["cat", "/etc/rancher/k3s/config.yaml"], r.nodeHostKey)).stdout).toBe(t.imgA.k3sConfig);
  // progress: every phase in order, percentages bounded, elapsed time on every line
  const phases = [...new Set(events.map((e) => e.phase))];
  expect(phases).toEqual(["connect-bmc", "upload", "check-image", "flash", "flash-check", "power-on", "boot", "verify", "done"]);
  expect(events.every((e) => typeof e.elapsedMs === "number")).toBe(true);
  expect(events.filter((e) => e.phase === "upload").length).toBeLessThanOrEqual(13);
  expect(events.find((e) => e.phase === "check-image" && /matches the pin/.test(e.detail ?? ""))).toBeDefined();
  expect(events.find((e) => e.phase === "flash" && e.percent === 100)).toBeDefined();
  const mid = events.filter((e) => e.phase === "flash" && e.percent! > 0 && e.percent! < 100).map((e) => e.percent!);
  expect(mid.length).toBeGreaterThan(0); // polled from the BMC API's status while tpi runs
  expect(mid).toEqual([...mid].sort((a, b) => a - b));
  expect(events.filter((e) => e.phase === "flash-check").length).toBeGreaterThan(0); // the BMC's crc read-back
});

test("the dev stack's ISAR .wic (MBR, boot partition, ext4 root on p2) with the node's files injected boots on its slot", async () => {
  const wic = path.resolve(__dirname, "../../dev/isar/build/tmp/deploy/images/turing-rk1/isar-image-base-debian-trixie-turing-rk1.wic");
  const imageId = "wic0123456789abcdef";
  const config = "node-name: rk1-wic\nserver: https://10.0.0.11:6443\n";
  const img = await imageFromWic(wic, path.join(t.dir, "wic.img"), {
    "/etc/hostname": ["rk1-wic\n", 0o644],
    "/etc/isar-k3s/image-id": [imageId + "\n", 0o644],
    "/etc/rancher/k3s/config.yaml": [config, 0o600],
    "/root/.ssh/authorized_keys": [t.lab.deployKey.publicKey + "\n", 0o600],
  });
  expect(img.offset).toBeGreaterThan(0);
  const r = await flashNode(t.spec("n2", { path: img.path, sha256: img.sha256, imageId, hostname: "rk1-wic", k3sConfig: config }), t.creds);
  expect(r.runningImageId).toBe(imageId);
  expect(await sha256File(t.emmc(2))).toBe(img.sha256);
  expect((await t.on("n2", ["hostname"], r.nodeHostKey)).stdout.trim()).toBe("rk1-wic");
  expect((await t.on("n2", ["cat", "/etc/rancher/k3s/config.yaml"], r.nodeHostKey)).stdout).toBe(config);
});

test("two flashes through one BMC at once run one after the other (the BMC cancels a running transfer on a new request)", async () => {
  const log = () =>
    fs
      .readFileSync(path.join(t.lab.dir, "lab.log"), "utf8")
      .split("\n")
      .filter((l) => l);
  const from = log().length;
  const events: ProgressEvent[] = [];
  const [r1, r2] = await Promise.all([
    flashNode(t.spec("n1", t.imgB), t.creds, { progress: (e) => events.push(e) }),
    flashNode(t.spec("n2", t.imgA), t.creds, { progress: (e) => events.push(e) }),
  ]);
  expect([r1.runningImageId, r2.runningImageId]).toEqual([t.imgB.imageId, t.imgA.imageId]);
  const flashLines = log()
    .slice(from)
    .filter((l) => /bmcd bmc: (#\d+ '.*' .* - started|eMMC of node \d written)/.test(l));
  expect(flashLines).toHaveLength(4);
  // start, end, start, end: never two at once
  expect(flashLines.map((l) => (/- started/.test(l) ? "start" : "end"))).toEqual(["start", "end", "start", "end"]);
  expect(events.some((e) => e.phase === "flash" && /waiting: another flash through bmc is in progress/.test(e.detail ?? ""))).toBe(true);
});

describe("through the provider", () => {
  let outs: DeliveryOutputs;
  test("create, then an unchanged image: diff says no change, refresh finds no drift, no upload and no flash", async () => {
    const chk = await deliveryProvider.check!({}, { ...t.inputs("n2", t.imgB), runningImageId: undefined });
    expect(chk.failures).toEqual([]);
    const created = await deliveryProvider.create!(chk.inputs);
    expect(created.id).toBe("n2@bmc/slot2");
    outs = created.outs;
    expect(outs.runningImageId).toBe(t.imgB.imageId);
    expect(outs.nodeHostKey).toBe(t.lab.hosts.n2.hostKey);
    const flashed = t.flashes(2);
    const uploads = await t.bmcImages();
    const read = await deliveryProvider.read!(created.id, outs);
    expect(read.props.runningImageId).toBe(t.imgB.imageId);
    expect(read.props.lastCheck).toBe("ok");
    const again = await deliveryProvider.check!(outs, t.inputs("n2", t.imgB));
    const d = await deliveryProvider.diff!(created.id, read.props, again.inputs);
    expect(d.changes).toBe(false);
    expect(d.replaces).toEqual([]);
    expect(t.flashes(2)).toBe(flashed);
    expect(await t.bmcImages()).toEqual(uploads);
    outs = read.props;
  });

  test("a changed image replaces: delete powers the slot off and removes the BMC copy, create flashes the new image", async () => {
    const news = (await deliveryProvider.check!(outs, t.inputs("n2", t.imgA2, { hostname: "rk1-srv1" }))).inputs;
    const d = await deliveryProvider.diff!("n2@bmc/slot2", outs, news);
    expect(d.replaces).toEqual(["image"]);
    expect(d.deleteBeforeReplace).toBe(true);
    await deliveryProvider.delete!("n2@bmc/slot2", outs);
    expect(t.lab.status().hosts.n2.powered).toBe(false);
    expect(await t.bmcImages()).not.toContain(`isar-k3s-n2-${t.imgB.imageId}.img`);
    const created = await deliveryProvider.create!(news);
    expect(created.outs.runningImageId).toBe(t.imgA2.imageId);
    expect(await sha256File(t.emmc(2))).toBe(t.imgA2.sha256);
    outs = created.outs;
  });

  test("a node reflashed behind our back is drift: refresh notices, diff reflashes", async () => {
    await flashNode(t.spec("n2", t.imgB), t.creds);
    const read = await deliveryProvider.read!("n2@bmc/slot2", outs);
    expect(read.props.hostKeyChanged).toBe(true);
    const d = await deliveryProvider.diff!(
      "n2@bmc/slot2",
      read.props,
      (await deliveryProvider.check!(outs, t.inputs("n2", t.imgA2, { hostname: "rk1-srv1" }))).inputs,
    );
    expect(d.replaces).toEqual(["nodeHostKey"]);
  });
});
