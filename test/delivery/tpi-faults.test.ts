/**
 * Turing Pi faults against the simulated lab, with the real tpi CLI on its BMC: a flash error that tpi
 * reports with exit 0 is detected; the BMC's crc read-back failing; an image whose copy on the BMC does
 * not match the pin is refused before the flash; another client's flash replacing ours; BMC unreachable
 * and a node that never boots give clear errors naming node, phase, BMC and slot; a pinned node key the
 * image lacks is named as such; a BMC without an SD card (no room) is refused before the upload; a re-run
 * after each fault is cleared converges. And every argv the project runs on the BMC goes through the
 * real tpi without a usage error.
 */
import * as fs from "fs";
import { flashNode, flashStatusArgv, parseFlashOutcome, tpiFlashArgv, tpiPowerArgv, tpiUartGetArgv, unflashNode } from "../../lib/delivery/tpi";

import { connectSsh, SshConnectOptions, SshHost } from "../../lib/transport/ssh";
import { RunOptions, RunResult } from "../../lib/transport/host";
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
    expect(err.message).toMatch(/^n2: flash failed on BMC bmc slot 2 \(root@[0-9.]+:22\): the BMC reported a flash error: Input\/output error \(os error 5\)/);
    // both of tpi's streams, labelled
    expect(err.message).toMatch(
      /--- last output \(flash\) ---\ntpi stdout \(last lines\):\nFlashing from image file \/mnt\/sdcard\/images\/isar-k3s-n2-\S+\.img\.\.\.\ntpi stderr \(last lines\):\nError occured during flashing: "Input\/output error \(os error 5\)"/,
    );
    expect(t.lab.status().hosts.n2.powered).toBe(false);
    // the real tpi exits 0 on this failure (checked directly on the BMC, with the image uploaded above)
    const direct = await t.on("bmc", tpiFlashArgv(2, `${IMAGE_DIR}/isar-k3s-n2-${t.imgA.imageId}.img`));
    expect(direct.code).toBe(0);
    expect(direct.stderr).toMatch(/^Error occured during flashing: /m);
    expect(parseFlashOutcome({ code: direct.code, stdout: direct.stdout, stderr: direct.stderr }).ok).toBe(false);
    await t.lab.clearFaults();
    const r = await flashNode(t.spec("n2", t.imgA), t.creds);
    expect(r.uploadSkipped).toBe(true); // the BMC kept the verified copy
    expect(r.runningImageId).toBe(t.imgA.imageId);
  });

  test("no SD card in the BMC (no room on its root file system): refused before any byte is sent, saying how much is missing", async () => {
    const flashed = t.flashes(1);
    await t.lab.setFault({ kind: "no-sdcard" });
    const err = await failure(flashNode(t.spec("n1", t.imgB), t.creds));
    expect(err.message).toMatch(
      /^n1: upload failed on BMC bmc slot 1 \(root@[0-9.]+:22\): \/mnt\/sdcard\/images on the BMC has [0-9.]+ MiB free, the image needs 16\.0 MiB more/,
    );
    expect(err.message).toMatch(/How to fix: mount the SD card at \/mnt\/sdcard or remove old images there/);
    expect((await t.on("bmc", ["ls", "-A", "/mnt/sdcard/images"])).stdout).toBe("");
    expect(t.flashes(1)).toBe(flashed);
  });

  test("the image's copy on the BMC does not match the pin (SD card damage after the upload): refused before the flash, copy removed", async () => {
    const flashed = t.flashes(2);
    // the SD card flips a byte of the file once it is written (the transport's stream hash saw good bytes)
    const damaging = async (o: SshConnectOptions): Promise<SshHost> => {
      const h = await connectSsh(o);
      if (o.host !== t.lab.hosts.bmc.address) return h;
      const upload = h.upload.bind(h);
      h.upload = async (local, remote, opts) => {
        const r = await upload(local, remote, opts);
        await h.runChecked(["sh", "-c", 'printf X | dd of="$1" bs=1 seek=4096 conv=notrunc 2>/dev/null', "sh", remote]);
        return r;
      };
      return h;
    };
    const img = await makeNodeImage(t.dir, { name: "c", hostname: "rk1-agent2", authorizedKey: t.lab.deployKey.publicKey });
    const err = await failure(flashNode(t.spec("n2", img), t.creds, { connect: damaging }));
    expect(err.message).toMatch(
      new RegExp(
        `^n2: check-image failed on BMC bmc slot 2 \\(root@[0-9.]+:22\\): the image on the BMC \\(${IMAGE_DIR}/isar-k3s-n2-${img.imageId}\\.img\\) has sha256 [0-9a-f]{64}, not the pinned ${img.sha256}`,
      ),
    );
    expect(err.message).toMatch(/it was removed and slot 2 was not touched/);
    expect(t.flashes(2)).toBe(flashed);
    expect(await t.bmcImages()).not.toContain(`isar-k3s-n2-${img.imageId}.img`);
    const r = await flashNode(t.spec("n2", img), t.creds);
    expect(r.uploadSkipped).toBe(false);
    expect(r.sha256Checked).toBe(true);
    expect(r.runningImageId).toBe(img.imageId);
  });

  test("the BMC's crc read-back fails: a flash error (tpi exits 0), named with the BMC's text", async () => {
    await t.lab.setFault({ kind: "crc-mismatch", slot: 1 });
    const err = await failure(flashNode(t.spec("n1", t.imgA), t.creds));
    expect(err.message).toMatch(
      /^n1: flash failed on BMC bmc slot 1 \(root@[0-9.]+:22\): the BMC reported a flash error: crc error\. expected \d+, calculated \d+/,
    );
    expect(err.message).toMatch(/How to fix: the slot's eMMC holds a partial image now/);
  });

  test("another client's flash through the same BMC replaces ours: the flash fails, naming it", async () => {
    const other = `${IMAGE_DIR}/isar-k3s-n2-${t.imgA.imageId}.img`; // uploaded by an earlier test
    expect((await t.on("bmc", ["test", "-f", other])).code).toBe(0);
    const p = failure(flashNode(t.spec("n1", t.imgB, { pollIntervalMs: 50 }), t.creds));
    // wait until our transfer runs, then flash slot 2 by hand (as someone at the BMC would)
    for (let i = 0; i < 200 && !/Transferring/.test(JSON.stringify(t.lab.flashStatus("bmc"))); i++) await new Promise((r) => setTimeout(r, 25));
    const theirs = await t.on("bmc", tpiFlashArgv(2, other));
    expect(theirs.stdout.trim().split("\n").pop()).toBe("Done");
    const err = await p;
    expect(err.message).toMatch(/^n1: flash failed on BMC bmc slot 1 \(root@[0-9.]+:22\): another flash .*replaced ours/);
    expect(err.message).toMatch(/something else flashed through bmc at the same time/);
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
    const flashed = t.flashes(1);
    await t.lab.setFault({ kind: "bmc-unreachable" });
    const t0 = Date.now();
    const err = await failure(flashNode(t.spec("n1", t.imgB, { connectTimeoutSeconds: 3 }), t.creds));
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(err.message).toMatch(/^n1: connect-bmc failed on BMC bmc slot 1 \(root@[0-9.]+:22\): cannot connect/);
    expect(err.message).toMatch(/How to fix: check that BMC bmc is powered and reachable at [0-9.]+:22 .*nothing was changed on slot 1/);
    expect(await slotState()).toBe(before);
    expect(t.flashes(1)).toBe(flashed);
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

describe("every argv the project runs on the BMC goes through the real tpi without a usage error", () => {
  test("recorded during a flash and a delete, plus every builder's variants", async () => {
    const ran: { argv: string[]; r: RunResult }[] = [];
    const recording = async (o: SshConnectOptions): Promise<SshHost> => {
      const h = await connectSsh(o);
      if (o.host !== t.lab.hosts.bmc.address) return h;
      const run = h.run.bind(h);
      h.run = async (argv: string[], opts?: RunOptions) => {
        const r = await run(argv, opts);
        ran.push({ argv, r });
        return r;
      };
      return h;
    };
    await flashNode(t.spec("n1", t.imgA2), t.creds, { connect: recording });
    await unflashNode(t.spec("n1", t.imgA2), t.creds, { connect: recording });
    const bmc = await recording({
      host: t.lab.hosts.bmc.address,
      port: t.lab.hosts.bmc.port,
      hostKey: t.lab.hosts.bmc.hostKey,
      privateKey: t.lab.deployKey.privateKey,
    });
    try {
      const variants = [
        ...(["on", "off", "reset", "status"] as const).map((a) => tpiPowerArgv(a, 2)),
        tpiPowerArgv("status"),
        tpiUartGetArgv(2),
        flashStatusArgv(),
      ];
      for (const argv of variants) await bmc.run(argv, { timeoutMs: 30_000 });
    } finally {
      await bmc.close();
    }
    const tpiRuns = ran.filter((x) => x.argv[0] === "tpi");
    expect(tpiRuns.map((x) => x.argv.slice(0, 3).join(" "))).toEqual(
      expect.arrayContaining(["tpi flash --local", "tpi power on", "tpi power off", "tpi power reset", "tpi power status", "tpi uart get"]),
    );
    for (const { argv, r } of tpiRuns) {
      const err = r.stderr.toString();
      // clap's usage errors: exit 2 and "error: ..." with a Usage line
      expect({ argv, code: r.code, usage: /^error: |\nUsage: /m.test(err) }).toEqual({ argv, code: 0, usage: false });
    }
    const polls = ran.filter((x) => x.argv.join(" ") === flashStatusArgv().join(" "));
    expect(polls.length).toBeGreaterThan(1);
    for (const { r } of polls) expect(r.code).toBe(0);
  });
});
