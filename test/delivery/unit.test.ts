/**
 * Pure parts of lib/delivery: tpi argv and output parsing (exit 0 with a BMC error is a failure),
 * swupdate argv and outcome (Debian 2022.12's exit race), progress rate limiting, rollout order and its
 * executor (stop at the first failure, bounded parallelism), diff / describe decisions and input checks.
 */
import { deploymentPlan } from "../../lib/plan/plan";
import type { Fleet, NodeSpec } from "../../lib/model/types";
import { KeyedMutex, ProgressEvent, ProgressReporter, DeliveryError, formatDuration, formatProgress } from "../../lib/delivery/common";
import {
  FlashWatcher,
  outputTails,
  parseFlashOutcome,
  parseFlashStatus,
  parsePowerStatus,
  remoteImagePath,
  tpiFlashArgv,
  tpiPowerArgv,
} from "../../lib/delivery/tpi";
import { SPACE_SCRIPT, parseSpaceReport } from "../../lib/delivery/common";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseInstallOutcome, swupdateArgv } from "../../lib/delivery/swupdate";
import { deliveryDependencies, runRollout, RolloutError } from "../../lib/delivery/rollout";
import {
  checkDelivery,
  describeDeliveryChange,
  diffDelivery,
  DeliveryInputs,
  DeliveryOutputs,
  TpiInputs,
  SwupdateInputs,
} from "../../lib/delivery/delivery-provider";

const SHA_A = "a1b2".repeat(16);
const SHA_B = "c3d4".repeat(16);
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z host";

describe("tpi argv", () => {
  test("flash: --local, slot, image path; no --sha256 (tpi drops it with --local)", () => {
    expect(tpiFlashArgv(2, "/mnt/sdcard/x.img")).toEqual(["tpi", "flash", "--local", "-n", "2", "-i", "/mnt/sdcard/x.img"]);
    expect(tpiFlashArgv(1, "/a b'c")).toEqual(["tpi", "flash", "--local", "-n", "1", "-i", "/a b'c"]);
    expect(() => tpiFlashArgv(5, "/x")).toThrow(/slot 5 is not a Turing Pi 2 slot/);
  });
  test("power", () => {
    expect(tpiPowerArgv("on", 3)).toEqual(["tpi", "power", "on", "-n", "3"]);
    expect(tpiPowerArgv("status")).toEqual(["tpi", "power", "status"]);
  });
  test("remote image path is per node and image id, and refuses unsafe names", () => {
    const bmc = { name: "bmc", address: "a", port: 22, user: "root", imageDir: "/mnt/sdcard/images/" };
    expect(remoteImagePath({ nodeName: "srv1", bmc, image: { path: "/x", sha256: SHA_A, imageId: "0f3c" } })).toBe("/mnt/sdcard/images/isar-k3s-srv1-0f3c.img");
    expect(() => remoteImagePath({ nodeName: "srv1", bmc, image: { path: "/x", sha256: SHA_A, imageId: "../../etc" } })).toThrow(/image id/);
    expect(() => remoteImagePath({ nodeName: "Srv_1", bmc, image: { path: "/x", sha256: SHA_A, imageId: "a" } })).toThrow(/RFC 1123/);
    expect(() => remoteImagePath({ nodeName: "srv1", bmc: { ...bmc, imageDir: "images" }, image: { path: "/x", sha256: SHA_A, imageId: "a" } })).toThrow(
      /absolute/,
    );
  });
});

test("BMC space report: the script under sh (and busybox sh) and its parser", () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "delivery-space-"));
  try {
    const img = path.join(d, "images", "x.img");
    for (const shell of [["sh"], ["busybox", "sh"]]) {
      fs.rmSync(path.join(d, "images"), { recursive: true, force: true });
      const run = () =>
        parseSpaceReport(execFileSync(shell[0], [...shell.slice(1), "-c", SPACE_SCRIPT, "sh", path.join(d, "images"), img], { encoding: "utf8" }));
      const empty = run()!;
      expect(fs.existsSync(path.join(d, "images"))).toBe(true);
      expect(empty.finalSize).toBe(-1);
      expect(empty.partialSize).toBe(0);
      expect(empty.availableBytes).toBeGreaterThan(1 << 20);
      fs.writeFileSync(img + ".partial", Buffer.alloc(1234));
      fs.writeFileSync(img, Buffer.alloc(99));
      expect(run()).toMatchObject({ finalSize: 99, partialSize: 1234 });
    }
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
  expect(parseSpaceReport("avail 10\nfinal -1\npartial 0\n")).toEqual({ availableBytes: 10240, finalSize: -1, partialSize: 0 });
  expect(parseSpaceReport("df: /x: No such file\n")).toBeUndefined();
});

describe("tpi flash outcome (texts of the real tpi 1.0.7)", () => {
  test("exit 0 with the BMC's error on stderr is a failure, with the BMC's text", () => {
    const o = parseFlashOutcome({
      code: 0,
      stdout: "Flashing from image file /mnt/sdcard/x.img...\n",
      stderr: 'Error occured during flashing: "Input/output error (os error 5)"\n',
    });
    expect(o).toEqual({ ok: false, kind: "bmc-error", message: "the BMC reported a flash error: Input/output error (os error 5)" });
    const u = parseFlashOutcome({ code: 0, stdout: "Flashing from image file /x...\n", stderr: 'Unexpected response: String("Ready")\n' });
    expect(!u.ok && u.kind).toBe("bmc-error");
  });
  test("exit 0 ending with Done is success; without Done it is not", () => {
    expect(parseFlashOutcome({ code: 0, stdout: "Flashing from image file /x...\nDone\n", stderr: "" })).toEqual({ ok: true });
    const o = parseFlashOutcome({ code: 0, stdout: "Flashing from image file /x...\n", stderr: "" });
    expect(o.ok).toBe(false);
    expect(!o.ok && o.kind).toBe("no-done");
  });
  test("non-zero exits fail with the cause, which real tpi prints on stdout; a panic on a foreign handle is a replaced flash", () => {
    const o = parseFlashOutcome({
      code: 1,
      stdout: 'Error: [{"result":"Failed to /x: No such file or directory (os error 2)"}]\nFailed to begin flashing: 500 Internal Server Error\n',
      stderr: "",
    });
    expect(!o.ok && o.message).toBe("tpi exited 1: Failed to begin flashing: 500 Internal Server Error");
    const n = parseFlashOutcome({
      code: 1,
      stdout: "error sending request for url (https://127.0.0.1/api/bmc?opt=set&type=flash&local&file=%2Fx&node=0)\n",
      stderr: "",
    });
    expect(!n.ok && n.message).toMatch(/^tpi exited 1: error sending request for url/);
    const p = parseFlashOutcome({
      code: 101,
      stdout: "Flashing from image file /x...\n",
      stderr: "thread 'tokio-runtime-worker' panicked at src/legacy_handler.rs:1:1:\nassertion `left == right` failed: Invalid flashing handle\n",
    });
    expect(!p.ok && p.kind).toBe("replaced");
  });
  test("both output tails reach the error text", () => {
    expect(outputTails({ stdout: "a\nb\n", stderr: "c\n" })).toBe("tpi stdout (last lines):\na\nb\ntpi stderr (last lines):\nc");
    expect(outputTails({ stdout: "", stderr: "" })).toBe("");
  });
  test("power status and API status parsing", () => {
    expect(parsePowerStatus("node1: On\nnode2: off\nnode3: On\nnode4: off\n")).toEqual({ 1: true, 2: false, 3: true, 4: false });
    expect(parseFlashStatus('"Ready"')).toEqual({ state: "Ready" });
    expect(parseFlashStatus('{"Transferring":{"id":7,"process_name":"Node1 os install service","size":100,"cancelled":false,"bytes_written":40}}')).toEqual({
      state: "Transferring",
      id: 7,
      size: 100,
      bytesWritten: 40,
    });
    expect(parseFlashStatus('{"Done":[{"secs":6,"nanos":500000000},100]}')).toEqual({ state: "Done", seconds: 6.5, size: 100 });
    expect(parseFlashStatus('{"Error":"crc error. expected 1, calculated 2"}')).toEqual({ state: "Error", message: "crc error. expected 1, calculated 2" });
    expect(parseFlashStatus("<html>")).toBeUndefined();
  });
  test("the watcher follows writing, then the read-back, and notices a foreign transfer", () => {
    const w = new FlashWatcher();
    const t = (id: number, b: number) => ({ state: "Transferring" as const, id, size: 100, bytesWritten: b });
    expect(w.observe(t(7, 40))).toEqual({ stage: "writing", percent: 40 });
    expect(w.observe(t(7, 90))).toEqual({ stage: "writing", percent: 90 });
    expect(w.observe(t(7, 20))).toEqual({ stage: "read-back", percent: 20 }); // the end of writing was not seen: the drop tells
    expect(w.observe(t(7, 60))).toEqual({ stage: "read-back", percent: 60 });
    expect(w.observe({ state: "Done", seconds: 1, size: 100 })).toBeUndefined();
    expect(w.observe(t(9, 5))).toBeUndefined();
    expect([w.handle, w.foreignHandle]).toEqual([7, 9]);
  });
});

describe("swupdate", () => {
  test("argv", () => {
    expect(swupdateArgv({ certPath: "/c.pem", hardware: "jetson-orin-nano", hwRevision: "1.0", bundlePath: "/var/tmp/b.swu" })).toEqual([
      "swupdate",
      "-v",
      "-k",
      "/c.pem",
      "-H",
      "jetson-orin-nano:1.0",
      "-i",
      "/var/tmp/b.swu",
    ]);
    expect(
      swupdateArgv({ certPath: "/c", hardware: "h", hwRevision: "2", selection: "stable,alt", aesKeyPath: "/k", certPurpose: "codeSigning", bundlePath: "/b" }),
    ).toEqual(["swupdate", "-v", "-k", "/c", "--cert-purpose", "codeSigning", "-H", "h:2", "-e", "stable,alt", "-K", "/k", "-i", "/b"]);
    expect(() => swupdateArgv({ certPath: "/c", hardware: "h w", hwRevision: "1", bundlePath: "/b" })).toThrow(/hardware/);
    expect(() => swupdateArgv({ certPath: "/c", hardware: "h", hwRevision: "1", selection: "stable main", bundlePath: "/b" })).toThrow(/selection/);
  });
  test("outcome: exit 0 ok; the 2022.12 exit race after 'SWUPDATE successful' ok; an [ERROR] line fails", () => {
    expect(parseInstallOutcome({ code: 0, output: "[INFO ] : SWUPDATE successful !" })).toEqual({ ok: true, raced: false });
    expect(parseInstallOutcome({ code: 1, output: "[INFO ] : SWUPDATE successful !\n" })).toEqual({ ok: true, raced: true });
    const bad = parseInstallOutcome({
      code: 1,
      output: "[ERROR] : SWUPDATE failed [0] ERROR core/stream_interface.c : extract_files : 163 : Signature verification failed\n[INFO ] : SWUPDATE failed",
    });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.message).toBe("swupdate refused the bundle: core/stream_interface.c : extract_files : 163 : Signature verification failed");
    const many = parseInstallOutcome({
      code: 1,
      output:
        "[ERROR] : SWUPDATE failed [0] ERROR : Authentication of all signatures failed\n[ERROR] : SWUPDATE failed [0] ERROR : Compatible SW not found\n[ERROR] : SWUPDATE failed [1] Image invalid or corrupted. Not installing ...\n[ERROR] : SWUPDATE failed [0] ERROR : SWUpdate *failed* !\n",
    });
    expect(!many.ok && many.message).toBe(
      "swupdate refused the bundle: Authentication of all signatures failed; Compatible SW not found; Image invalid or corrupted. Not installing ...",
    );
    expect(parseInstallOutcome({ code: 0, output: "[ERROR] : something" }).ok).toBe(false);
  });
});

describe("progress", () => {
  test("one line per phase change and per 10 %, with the final 100 %", () => {
    const got: ProgressEvent[] = [];
    const p = new ProgressReporter("srv1", (e) => got.push(e));
    p.report("upload", 0);
    for (let i = 1; i <= 1000; i++) p.report("upload", i / 10);
    p.report("flash", 0, "slot 1");
    p.report("flash", 5);
    p.report("flash", 100);
    p.report("boot");
    p.report("boot");
    expect(got.filter((e) => e.phase === "upload").map((e) => Math.floor(e.percent!))).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(got.filter((e) => e.phase === "flash").map((e) => e.percent)).toEqual([0, 100]);
    expect(got.filter((e) => e.phase === "boot")).toHaveLength(1);
    expect(formatProgress(got[got.length - 1])).toMatch(/^\[srv1\] boot \(\+\d+(ms|\.\ds)\)$/);
    expect(got.every((e, i) => i === 0 || e.elapsedMs! >= got[i - 1].elapsedMs!)).toBe(true);
    expect([850, 12_345, 125_000, 3_725_000].map(formatDuration)).toEqual(["850ms", "12.3s", "2m05s", "1h02m"]);
    expect(formatProgress({ node: "srv1", phase: "flash", percent: 42.7, detail: "slot 1" })).toBe("[srv1] flash 42% slot 1");
  });
  test("DeliveryError names node, phase, place, hint and keeps the last 40 lines", () => {
    const out = Array.from({ length: 100 }, (_, i) => `line ${i}`).join("\n");
    const e = new DeliveryError("srv1", "flash", "BMC bmc slot 1 (root@10.0.0.2:22)", "tpi said no", out, "retry");
    expect(e.message).toMatch(
      /^srv1: flash failed on BMC bmc slot 1 \(root@10\.0\.0\.2:22\): tpi said no\nHow to fix: retry\n--- last output \(flash\) ---\nline 60\n/,
    );
    expect(e.message).not.toMatch(/line 59\n/);
    expect(e.message).toMatch(/line 99$/);
  });
});

test("KeyedMutex serializes per key, runs different keys in parallel, releases after failures", async () => {
  const m = new KeyedMutex();
  const trace: string[] = [];
  const job = (k: string, id: string, ms: number, fail = false) =>
    m.run(k, async () => {
      trace.push(`+${id}`);
      await new Promise((r) => setTimeout(r, ms));
      trace.push(`-${id}`);
      if (fail) throw new Error(id);
      return id;
    });
  const all = await Promise.allSettled([job("a", "a1", 30, true), job("a", "a2", 5), job("b", "b1", 10)]);
  expect(all.map((r) => r.status)).toEqual(["rejected", "fulfilled", "fulfilled"]);
  expect(trace.indexOf("-a1")).toBeLessThan(trace.indexOf("+a2"));
  expect(trace.indexOf("+b1")).toBeLessThan(trace.indexOf("-a1"));
  expect(m.busy("a")).toBe(false);
});

function fleet(roles: [string, "server" | "agent"][]): Fleet {
  return { nodes: roles.map(([name, role]) => ({ name, role }) as NodeSpec) } as Fleet;
}

describe("rollout order", () => {
  const f = fleet([
    ["s1", "server"],
    ["a1", "agent"],
    ["s2", "server"],
    ["a2", "agent"],
    ["s3", "server"],
    ["a3", "agent"],
    ["a4", "agent"],
    ["a5", "agent"],
  ]);
  test("servers one at a time, a canary agent, then at most maxAgentsInFlight", () => {
    const deps = deliveryDependencies(deploymentPlan(f), 2);
    expect(deps).toEqual([
      { node: "s1", dependsOn: [], stage: "server" },
      { node: "s2", dependsOn: ["s1"], stage: "server" },
      { node: "s3", dependsOn: ["s2"], stage: "server" },
      { node: "a1", dependsOn: ["s3"], stage: "canary" },
      { node: "a2", dependsOn: ["a1"], stage: "agents" },
      { node: "a3", dependsOn: ["a1"], stage: "agents" },
      { node: "a4", dependsOn: ["a1", "a2"], stage: "agents" },
      { node: "a5", dependsOn: ["a1", "a3"], stage: "agents" },
    ]);
    const noCanary = deliveryDependencies(deploymentPlan(f), 3, { canary: false });
    expect(noCanary.filter((d) => d.stage === "agents").map((d) => d.dependsOn)).toEqual([["s3"], ["s3"], ["s3"], ["s3", "a1"], ["s3", "a2"]]);
    expect(() => deliveryDependencies(deploymentPlan(f), 0)).toThrow(/maxAgentsInFlight/);
  });

  test("Turing Pi nodes behind one BMC are chained (one flash at a time per BMC); others keep their parallelism", () => {
    const tpi = (bmc: string) => ({ method: "tpi", bmc, slot: 1 });
    const nodes = [
      { name: "s1", role: "server", delivery: tpi("b1") },
      { name: "a1", role: "agent", delivery: { method: "swupdate" } },
      { name: "a2", role: "agent", delivery: tpi("b1") },
      { name: "a3", role: "agent", delivery: tpi("b1") },
      { name: "a4", role: "agent", delivery: tpi("b2") },
      { name: "a5", role: "agent", delivery: { method: "swupdate" } },
    ] as unknown as NodeSpec[];
    const deps = deliveryDependencies(deploymentPlan({ nodes } as Fleet), 4);
    expect(Object.fromEntries(deps.map((d) => [d.node, d.dependsOn]))).toEqual({
      s1: [],
      a1: ["s1"],
      a2: ["a1", "s1"],
      a3: ["a1", "a2"],
      a4: ["a1"],
      a5: ["a1"],
    });
  });

  test("runRollout: order respected, never more than maxAgentsInFlight agents at once", async () => {
    const deps = deliveryDependencies(deploymentPlan(f), 2);
    const done: string[] = [];
    let agentsRunning = 0;
    let maxAgents = 0;
    const res = await runRollout(deps, async (n) => {
      const d = deps.find((x) => x.node === n)!;
      for (const p of d.dependsOn) expect(done).toContain(p);
      if (n.startsWith("a")) maxAgents = Math.max(maxAgents, ++agentsRunning);
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      if (n.startsWith("a")) agentsRunning--;
      done.push(n);
    });
    expect(res.succeeded.sort()).toEqual(["a1", "a2", "a3", "a4", "a5", "s1", "s2", "s3"]);
    expect(res.started.slice(0, 4)).toEqual(["s1", "s2", "s3", "a1"]);
    expect(maxAgents).toBe(2);
  });

  test("runRollout: a failure of the first agent leaves every other agent untouched and names node and phase", async () => {
    const deps = deliveryDependencies(deploymentPlan(f), 3);
    const touched: string[] = [];
    const err = await runRollout(deps, async (n) => {
      touched.push(n);
      if (n === "a1") throw new DeliveryError("a1", "install", "root@x:22", "swupdate refused the bundle", "[ERROR] : Signature verification failed");
    }).catch((e) => e);
    expect(err).toBeInstanceOf(RolloutError);
    expect(touched).toEqual(["s1", "s2", "s3", "a1"]);
    expect((err as RolloutError).result.notAttempted).toEqual(["a2", "a3", "a4", "a5"]);
    expect((err as Error).message).toMatch(
      /^rollout stopped: a1 failed in phase install\. Delivered: s1, s2, s3\. Not attempted \(left as they were\): a2, a3, a4, a5\.\n/,
    );
    expect((err as Error).message).toMatch(/Signature verification failed/);
  });

  test("runRollout: deliveries already running when the first fails finish, and their failures are reported too", async () => {
    const deps = deliveryDependencies(deploymentPlan(f), 3);
    const err = (await runRollout(deps, async (n) => {
      if (n === "a2") throw new Error("a2 broke");
      if (n === "a3") {
        await new Promise((r) => setTimeout(r, 30));
        throw new Error("a3 broke too");
      }
      if (n === "a4") await new Promise((r) => setTimeout(r, 60));
    }).catch((e) => e)) as RolloutError;
    expect(err.result.failed!.node).toBe("a2");
    expect(err.result.alsoFailed.map((x) => x.node)).toEqual(["a3"]);
    expect(err.result.succeeded).toContain("a4");
    expect(err.result.notAttempted).toEqual(["a5"]);
    expect(err.message).toMatch(/Also failed while running: a3\.\na2 broke\n\na3 broke too$/);
  });

  test("runRollout: a failing server stops everything behind it", async () => {
    const deps = deliveryDependencies(deploymentPlan(f), 3);
    const touched: string[] = [];
    await expect(
      runRollout(deps, async (n) => {
        touched.push(n);
        if (n === "s2") throw new Error("boom");
      }),
    ).rejects.toThrow(/s2 failed/);
    expect(touched).toEqual(["s1", "s2"]);
  });
});

function tpiInputs(over: Partial<TpiInputs> = {}): TpiInputs {
  const { inputs, failures } = checkDelivery({
    kind: "tpi",
    nodeName: "srv1",
    slot: 1,
    bmc: { name: "bmc", address: "10.0.0.2", hostKey: KEY, imageDir: "/mnt/sdcard/images" },
    node: { address: "10.0.0.11" },
    image: { path: "/nix/store/x-srv1/disk.img", sha256: SHA_A, imageId: "0f3c9a" },
    sources: { "rootfs sha256": SHA_A, "files digest": "f00d" },
    sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETSECRET\n-----END OPENSSH PRIVATE KEY-----",
    ...over,
  });
  expect(failures).toEqual([]);
  return inputs as TpiInputs;
}

function swInputs(over: Record<string, unknown> = {}): SwupdateInputs {
  const { inputs, failures } = checkDelivery({
    kind: "swupdate",
    nodeName: "jetson1",
    node: { address: "10.0.0.20", hostKey: KEY },
    hardware: "jetson-orin-nano",
    hwRevision: "1.0",
    bundle: { path: "/b/jetson-orin-nano-1.0.swu", sha256: SHA_A },
    imageId: "1111",
    sources: { "bundle sha256": SHA_A },
    aesKey: `${"ab".repeat(32)} ${"cd".repeat(16)}`,
    ...over,
  });
  expect(failures).toEqual([]);
  return inputs as SwupdateInputs;
}

describe("diff and describeDeliveryChange", () => {
  test("new: flash", () => {
    expect(describeDeliveryChange(undefined, tpiInputs())).toBe("srv1: flash slot 1 of bmc (new delivery, image 0f3c9a)");
  });
  test("unchanged image: no change at all, left alone", () => {
    const olds: DeliveryOutputs = { ...tpiInputs(), runningImageId: "0f3c9a", nodeHostKey: KEY, lastCheck: "ok" };
    const d = diffDelivery(olds, tpiInputs());
    expect(d.changes).toBe(false);
    expect(d.replaces).toEqual([]);
    expect(d.reason).toBe("srv1: left alone (image 0f3c9a on slot 1 of bmc)");
  });
  test("the runtime's __provider key (changes with every program upgrade) is not a change", () => {
    const olds = { ...tpiInputs(), runningImageId: "0f3c9a", __provider: "exports.handler = v1" } as DeliveryOutputs;
    const news = { ...tpiInputs(), __provider: "exports.handler = v2" } as TpiInputs;
    expect(diffDelivery(olds, news).changes).toBe(false);
  });
  test("state of earlier versions with the dropped tpiSha256 input is not a change", () => {
    const olds = { ...tpiInputs(), runningImageId: "0f3c9a", tpiSha256: true } as unknown as DeliveryOutputs;
    expect(diffDelivery(olds, tpiInputs()).changes).toBe(false);
    expect(diffDelivery({ ...olds, flashTimeoutSeconds: 1 } as DeliveryOutputs, tpiInputs()).changes).toBe(true);
  });
  test("changed image: replace (delete before replace), naming the source that changed", () => {
    const olds: DeliveryOutputs = { ...tpiInputs(), runningImageId: "0f3c9a", nodeHostKey: KEY };
    const news = tpiInputs({
      image: { path: "/nix/store/y-srv1/disk.img", sha256: SHA_B, imageId: "77aa" },
      sources: { "rootfs sha256": SHA_B, "files digest": "f00d" },
    });
    const d = diffDelivery(olds, news);
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual(["image"]);
    expect(d.deleteBeforeReplace).toBe(true);
    expect(d.detailedDiff.image).toEqual({ kind: "update-replace", inputDiff: true });
    expect(d.detailedDiff.sources).toEqual({ kind: "update", inputDiff: true });
    expect(d.reason).toBe("srv1: reflash slot 1 of bmc (image changed: rootfs sha256 a1b2a1b2a1b2… → c3d4c3d4c3d4…)");
  });
  test("drift found by refresh (another image running, or another host key): reflash", () => {
    const olds: DeliveryOutputs = { ...tpiInputs(), runningImageId: "dead", nodeHostKey: KEY };
    const d = diffDelivery(olds, tpiInputs());
    expect(d.replaces).toEqual(["runningImageId"]);
    expect(d.reason).toBe("srv1: reflash slot 1 of bmc (drift: the node runs image dead, expected 0f3c9a)");
    const k = diffDelivery({ ...tpiInputs(), runningImageId: "0f3c9a", hostKeyChanged: true }, tpiInputs());
    expect(k.replaces).toEqual(["nodeHostKey"]);
  });
  test("settings only (timeouts, key): update in place without touching the node; secrets never shown", () => {
    const olds: DeliveryOutputs = { ...tpiInputs(), runningImageId: "0f3c9a" };
    const d = diffDelivery(olds, tpiInputs({ flashTimeoutSeconds: 7200, sshPrivateKey: "OTHERSECRET" }));
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual([]);
    expect(d.touchesNode).toBe(false);
    expect(d.reason).toBe("srv1: left alone on the node; settings changed: flashTimeoutSeconds, sshPrivateKey (secret)");
    expect(d.reason).not.toMatch(/SECRET/);
    expect(diffDelivery(olds, tpiInputs({ slot: 2 })).replaces).toEqual(["slot"]);
  });
  test("SWUpdate: a new bundle is an update (install), not a replacement", () => {
    const olds: DeliveryOutputs = { ...swInputs(), runningImageId: "1111" };
    expect(diffDelivery(olds, swInputs()).changes).toBe(false);
    const d = diffDelivery(
      olds,
      swInputs({ bundle: { path: "/b/jetson-orin-nano-1.1.swu", sha256: SHA_B }, imageId: "2222", sources: { "bundle sha256": SHA_B } }),
    );
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual([]);
    expect(d.touchesNode).toBe(true);
    expect(d.reason).toBe("jetson1: update via SWUpdate (image changed: bundle sha256 a1b2a1b2a1b2… → c3d4c3d4c3d4…)");
    const drift = diffDelivery({ ...olds, runningImageId: "0000" }, swInputs());
    expect(drift.touchesNode).toBe(true);
    expect(drift.reason).toMatch(/drift: the node runs image 0000, expected 1111/);
  });
});

test("a changed label on one agent: only that agent's delivery changes", () => {
  // sources as the component passes them: the node's own image id and rendered-files digest
  const agent = (name: string, files: string) =>
    checkDelivery({
      kind: "swupdate",
      nodeName: name,
      node: { address: "10.0.0.30", hostKey: KEY },
      hardware: "x86-controller",
      hwRevision: "1.0",
      bundle: { path: `/b/${name}.swu`, sha256: SHA_A },
      imageId: `id-${files}`,
      sources: { "files digest": files },
    }).inputs as SwupdateInputs;
  const before = { a1: agent("a1", "f1"), a2: agent("a2", "f2"), a3: agent("a3", "f3") };
  const after = { a1: agent("a1", "f1"), a2: agent("a2", "f2-zone-b"), a3: agent("a3", "f3") };
  const reasons = (Object.keys(before) as (keyof typeof before)[]).map((n) => diffDelivery({ ...before[n], runningImageId: before[n].imageId }, after[n]));
  expect(reasons.map((d) => d.changes)).toEqual([false, true, false]);
  expect(reasons[1].reason).toBe("a2: update via SWUpdate (image changed: files digest f2 → f2-zone-b)");
});

describe("preview: values only known after up", () => {
  const U = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
  test("check does not fail on them; diff says the node will be reflashed / updated", () => {
    const raw = {
      kind: "tpi",
      nodeName: "srv1",
      slot: 1,
      bmc: { name: "bmc", address: "10.0.0.2", imageDir: "/mnt/sdcard/images" },
      node: { address: "10.0.0.11" },
    };
    const a = checkDelivery({ ...raw, image: { path: U, sha256: U, imageId: U }, sources: { "rootfs sha256": U, "files digest": "f00d" } });
    expect(a.failures).toEqual([]);
    const b = checkDelivery({ ...raw, image: U, sources: U });
    expect(b.failures).toEqual([]);
    const olds: DeliveryOutputs = { ...tpiInputs(), runningImageId: "0f3c9a" };
    const d = diffDelivery(olds, a.inputs);
    expect(d.replaces).toEqual(["image"]);
    expect(d.reason).toBe("srv1: reflash slot 1 of bmc (image changed: rootfs sha256 a1b2a1b2a1b2… → (known after the image is built))");
    // sources unknown as a whole: the image id / sha256 say it
    expect(diffDelivery(olds, b.inputs).reason).toBe(
      "srv1: reflash slot 1 of bmc (image changed: disk image sha256 a1b2a1b2a1b2… → (known after the image is built); image id 0f3c9a → (known after the image is built))",
    );
    expect(describeDeliveryChange(undefined, b.inputs)).toBe("srv1: flash slot 1 of bmc (new delivery, image (known after the image is built))");
    const sw = checkDelivery({
      kind: "swupdate",
      nodeName: "jetson1",
      node: { address: "10.0.0.20", hostKey: KEY },
      hardware: "h",
      hwRevision: "1",
      bundle: U,
      imageId: U,
    });
    expect(sw.failures).toEqual([]);
    const sd = diffDelivery({ ...swInputs(), runningImageId: "1111" }, sw.inputs);
    expect(sd.touchesNode).toBe(true);
    expect(sd.replaces).toEqual([]);
    // a real problem next to an unknown is still reported
    expect(checkDelivery({ ...raw, slot: 9, image: U }).failures.map((f) => f.property)).toEqual(["slot"]);
  });
});

describe("checkDelivery", () => {
  test("names each bad input and never echoes secrets", () => {
    const { failures } = checkDelivery({
      kind: "swupdate",
      nodeName: "Bad_Name",
      node: { address: "10.0.0.20", port: 70000 },
      hardware: "",
      hwRevision: "1.0",
      bundle: { path: "rel.swu", sha256: "nope" },
      imageId: "",
      aesKey: "TOPSECRETVALUE",
      selection: "a b",
    });
    const props = failures.map((f) => f.property).sort();
    expect(props).toEqual(["aesKey", "bundle.path", "bundle.sha256", "hardware", "imageId", "node.hostKey", "node.port", "nodeName", "selection"]);
    expect(JSON.stringify(failures)).not.toMatch(/TOPSECRETVALUE/);
    const t = checkDelivery({
      kind: "tpi",
      nodeName: "n1",
      slot: 9,
      bmc: { address: "x", imageDir: "rel" },
      node: { address: "y" },
      image: { path: "/p", sha256: SHA_A, imageId: "1" },
    });
    expect(t.failures.map((f) => f.property).sort()).toEqual(["bmc.imageDir", "bmc.name", "slot"]);
    expect(checkDelivery({ kind: "ftp" }).failures.map((f) => f.property)).toContain("kind");
  });
  test("defaults", () => {
    const i = tpiInputs() as DeliveryInputs as TpiInputs;
    expect(i.node).toEqual({ address: "10.0.0.11", port: 22, user: "root" });
    expect([i.flashTimeoutSeconds, i.bootTimeoutSeconds, i.connectTimeoutSeconds]).toEqual([3600, 900, 60]);
  });
});
