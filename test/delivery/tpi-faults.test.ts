/**
 * Turing Pi faults against the simulated lab: tpi flash failing with exit 0 is detected (and the lab's
 * tpi really exits 0 there); BMC unreachable and a node that never boots give clear errors naming node,
 * phase, BMC and slot; a pinned node key the image lacks is named as such; a BMC without room for the image is refused before the upload; a re-run after
 * each fault is cleared converges.
 */
import * as fs from "fs";
import { flashNode, parseFlashOutcome, tpiFlashArgv } from "../../lib/delivery/tpi";
import { makeNodeImage, sha256File } from "./labutil";
import { IMAGE_DIR, TpiLab, failure } from "./tpilab";

jest.setTimeout(120_000);

const t = new TpiLab();
beforeAll(() => t.start("delivery-tpi-faults-"));
afterAll(() => t.stop());

describe("faults", () => {
  afterEach(async () => {
    await t.lab.clearFaults();
  });

  test("tpi flash failing with exit 0 is detected; a re-run after the fault is cleared converges", async () => {
    await t.lab.setFault({ kind: "flash-error", slot: 2 });
    const err = await failure(flashNode(t.spec("n2", t.imgA), t.creds));
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(
      /^n2: flash failed on BMC bmc slot 2 \(root@[0-9.]+:22\): Error occured during flashing: Failed to write image to the eMMC: I\/O error/,
    );
    expect(err.message).toMatch(/--- last output \(flash\) ---[\s\S]*Writing: \d+%/);
    expect(t.lab.status().hosts.n2.powered).toBe(false);
    // the lab's tpi, like the real one, exits 0 on this failure (checked directly on the BMC, with the image uploaded above)
    const direct = await t.on("bmc", tpiFlashArgv(2, `${IMAGE_DIR}/isar-k3s-n2-${t.imgA.imageId}.img`));
    expect(direct.code).toBe(0);
    expect(direct.stderr).toMatch(/^Error occured during flashing: /m);
    expect(parseFlashOutcome({ code: direct.code, stdout: direct.stdout, stderr: direct.stderr }).ok).toBe(false);
    await t.lab.clearFaults();
    const r = await flashNode(t.spec("n2", t.imgA), t.creds);
    expect(r.uploadSkipped).toBe(true); // the BMC kept the verified copy
    expect(r.runningImageId).toBe(t.imgA.imageId);
  });

  test("not enough room on the BMC: refused before any byte is sent, saying how much is missing", async () => {
    const big = await makeNodeImage(t.dir, { name: "big", hostname: "rk1-srv1", authorizedKey: t.lab.deployKey.publicKey, sizeMiB: 80 });
    const s = t.spec("n1", big);
    // the BMC's /dev/shm is a 64 MiB tmpfs: a stand-in for an unmounted SD card
    const err = await failure(flashNode({ ...s, bmc: { ...s.bmc, imageDir: "/dev/shm/images" } }, t.creds));
    expect(err.message).toMatch(
      /^n1: upload failed on BMC bmc slot 1 \(root@[0-9.]+:22\): \/dev\/shm\/images on the BMC has [0-9.]+ MiB free, the image needs 80\.0 MiB more/,
    );
    expect(err.message).toMatch(/How to fix: mount the SD card .* or remove old images there/);
    expect((await t.on("bmc", ["ls", "-A", "/dev/shm/images"])).stdout).toBe("");
    expect(t.flashes(1)).toBe(0);
  });

  test("a pinned node key the flashed image does not have: the node is up but refused, and the error says so", async () => {
    const s = t.spec("n2", t.imgB);
    const wrongKey = t.lab.hosts.bmc.hostKey!; // a valid key, but not the node's
    const err = await failure(flashNode({ ...s, node: { ...s.node, hostKey: wrongKey } }, t.creds));
    expect(err.message).toMatch(/^n2: boot failed on root@[0-9.]+:22 \(bmc slot 2\): the node answers SSH but the connection was refused: host key mismatch/);
    expect(err.message).toMatch(/How to fix: nodes\[n2\]\.ssh\.hostKey pins a key the flashed image does not have/);
  });

  test("BMC unreachable: a clear error naming the BMC; nothing changes on the slot; a re-run converges", async () => {
    const slotState = async () => (fs.existsSync(t.emmc(1)) ? sha256File(t.emmc(1)) : "empty");
    const before = await slotState();
    await t.lab.setFault({ kind: "bmc-unreachable" });
    const t0 = Date.now();
    const err = await failure(flashNode(t.spec("n1", t.imgB, { connectTimeoutSeconds: 3 }), t.creds));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(err.message).toMatch(/^n1: connect-bmc failed on BMC bmc slot 1 \(root@[0-9.]+:22\): cannot connect/);
    expect(err.message).toMatch(/How to fix: check that BMC bmc is powered and reachable at [0-9.]+:22 .*nothing was changed on slot 1/);
    expect(await slotState()).toBe(before);
    expect(t.flashes(1)).toBe(0);
    await t.lab.clearFaults();
    const r = await flashNode(t.spec("n1", t.imgB), t.creds);
    expect(r.runningImageId).toBe(t.imgB.imageId);
  });

  test("a node that never boots: a clear error with the serial console; a re-run after the fault is cleared converges", async () => {
    await t.lab.setFault({ kind: "never-boot", node: "n1" });
    const err = await failure(flashNode(t.spec("n1", t.imgA, { bootTimeoutSeconds: 4 }), t.creds));
    expect(err.message).toMatch(
      /^n1: boot failed on root@[0-9.]+:22 \(bmc slot 1\): the node did not answer SSH within delivery\.bootTimeoutSeconds \(4 s\) after power-on/,
    );
    expect(err.message).toMatch(/tpi uart get -n 1/);
    expect(err.message).toMatch(/U-Boot SPL/);
    await t.lab.clearFaults();
    const r = await flashNode(t.spec("n1", t.imgA), t.creds);
    expect(r.runningImageId).toBe(t.imgA.imageId);
    expect((await t.on("n1", ["hostname"], r.nodeHostKey)).stdout.trim()).toBe("rk1-srv1");
  });
});
