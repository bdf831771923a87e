/**
 * providers/swupdate.ts called directly (no engine): check failures and defaults, create → a bundle the
 * real swupdate accepts, diff (no change / pin change / key change / file gone), read after tampering
 * and after removal, delete only removing the file this resource wrote; FleetUpdate create / diff /
 * update / read / delete. Secrets never appear in check failures.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { swupdateProvider as p } from "../../providers/swupdate";
import { UNKNOWN } from "../../lib/swupdate/bundle-provider";
import { TestSigner, makeSigner, swupdateCheck, tempDir } from "./helpers";

jest.setTimeout(120_000);

let dir: string;
let signer: TestSigner;
let other: TestSigner;
let rootfs: string;
let rootfsSha: string;
let kernel: string;
let kernelSha: string;

beforeAll(async () => {
  dir = await tempDir("swu-provider-");
  signer = await makeSigner(dir, "signer");
  other = await makeSigner(dir, "other");
  rootfs = path.join(dir, "rootfs.ext4");
  const r = crypto.randomBytes(50_000);
  await fs.promises.writeFile(rootfs, r);
  rootfsSha = crypto.createHash("sha256").update(r).digest("hex");
  kernel = path.join(dir, "Image");
  const k = crypto.randomBytes(5000);
  await fs.promises.writeFile(kernel, k);
  kernelSha = crypto.createHash("sha256").update(k).digest("hex");
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

function bundleArgs(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: "SwuBundle",
    hardware: "jetson-orin-nano",
    hwRevisions: ["1.0"],
    version: "1.0.0",
    images: [
      { path: rootfs, sha256: rootfsSha, kind: "rootfs", device: "/dev/mmcblk0p1" },
      { path: kernel, sha256: "sha256-" + Buffer.from(kernelSha, "hex").toString("base64"), kind: "kernel" },
    ],
    certificate: signer.cert,
    signingKey: signer.key,
    outputDir: path.join(dir, "out"),
    ...over,
  };
}

async function checked(over: Record<string, unknown> = {}) {
  const r = await p.check!({}, bundleArgs(over));
  expect(r.failures).toEqual([]);
  return r.inputs;
}

test("check: defaults, SRI pins normalised, failures name the input and never echo the key", async () => {
  const inputs = await checked();
  expect(inputs.signing).toBe("cms");
  expect(inputs.fileName).toBe("jetson-orin-nano-1.0.0.swu");
  expect(inputs.postUpdate).toBe(true);
  expect(inputs.images[1]).toMatchObject({ sha256: kernelSha, name: "Image" });
  const bad = await p.check!(
    {},
    bundleArgs({
      hardware: "pi5",
      hwRevisions: [],
      images: [{ path: rootfs, sha256: "xyz", kind: "boot" }],
      certificate: undefined,
      signingKey: "not a key SECRETSECRET",
    }),
  );
  const props = bad.failures!.map((f) => f.property).sort();
  expect(props).toEqual(["certificate", "hardware", "hwRevisions", "images[0].kind", "images[0].sha256", "signingKey"]);
  expect(JSON.stringify(bad.failures)).not.toContain("SECRETSECRET");
  // Preview: unknown values are not validated yet.
  const prev = await p.check!({}, bundleArgs({ images: [{ path: rootfs, sha256: UNKNOWN, kind: "rootfs" }] }));
  expect(prev.failures).toEqual([]);
});

describe("SwuBundle lifecycle", () => {
  let inputs: Record<string, any>;
  let outs: Record<string, any>;

  beforeAll(async () => {
    inputs = await checked();
    const c = await p.create!(inputs);
    outs = c.outs;
    expect(c.id).toBe(path.join(dir, "out", "jetson-orin-nano-1.0.0.swu"));
  });

  test("create: outputs describe the file, which swupdate accepts", async () => {
    const bytes = await fs.promises.readFile(outs.path);
    expect(outs.size).toBe(bytes.length);
    expect(outs.sha256).toBe(crypto.createHash("sha256").update(bytes).digest("hex"));
    expect(outs.signingKey).toBe(signer.key); // inputs are returned in outs (kept secret by the class)
    expect((await swupdateCheck(outs.path, signer.certPath, "jetson-orin-nano", "1.0")).accepted).toBe(true);
  });

  test("diff: nothing changed → no changes; pins, key, revisions → replace naming them", async () => {
    expect(await p.diff!(outs.path, outs, await checked())).toEqual({ changes: false });
    const pin = await p.diff!(
      outs.path,
      outs,
      await checked({
        images: [
          { path: rootfs, sha256: "0".repeat(64), kind: "rootfs", device: "/dev/mmcblk0p1" },
          { path: kernel, sha256: kernelSha, kind: "kernel" },
        ],
      }),
    );
    expect(pin).toMatchObject({ changes: true, replaces: ["images"], deleteBeforeReplace: true });
    const key = await p.diff!(outs.path, outs, await checked({ signingKey: other.key, certificate: other.cert }));
    expect(key.replaces!.sort()).toEqual(["certificate", "signingKey"]);
    const ver = await p.diff!(outs.path, outs, await checked({ version: "1.0.1" }));
    expect(ver).toMatchObject({ changes: true, replaces: ["version", "fileName"], deleteBeforeReplace: false });
  });

  test("read: an altered file → outputValid false → diff replaces; a removed file → dropped from state", async () => {
    const backup = await fs.promises.readFile(outs.path);
    const bytes = Buffer.from(backup);
    bytes[bytes.length - 600] ^= 1; // same size, different content
    await fs.promises.writeFile(outs.path, bytes);
    const r = await p.read!(outs.path, outs);
    expect(r.props!.outputValid).toBe(false);
    expect((await p.diff!(outs.path, r.props, await checked())).replaces).toEqual(["path"]);
    await fs.promises.writeFile(outs.path, backup);
    expect((await p.read!(outs.path, outs)).props!.outputValid).toBe(true);
    await fs.promises.rename(outs.path, outs.path + ".away");
    expect((await p.diff!(outs.path, outs, await checked())).replaces).toEqual(["path"]);
    expect((await p.read!(outs.path, outs)).id).toBe("");
    await fs.promises.rename(outs.path + ".away", outs.path);
  });

  test("delete removes the file it wrote, but not a newer file at the same path", async () => {
    const again = await p.create!(inputs); // a replacement writing the same path (new inode)
    await p.delete!(outs.path, outs);
    expect(fs.existsSync(again.outs.path)).toBe(true);
    await p.delete!(again.id, again.outs);
    expect(fs.existsSync(again.outs.path)).toBe(false);
  });

  test("create fails with the file named when the pinned sha256 does not match", async () => {
    const bad = await checked({ images: [{ path: rootfs, sha256: "1".repeat(64), kind: "rootfs", device: "/dev/sda" }], fileName: "bad.swu" });
    await expect(p.create!(bad)).rejects.toThrow(/rootfs\.ext4 has sha256 [0-9a-f]{64}, but 1{64} is pinned/);
    expect(fs.existsSync(path.join(dir, "out", "bad.swu"))).toBe(false);
  });
});

describe("FleetUpdate lifecycle", () => {
  const fleetArgs = (over: Record<string, unknown> = {}) => ({
    resourceType: "FleetUpdate",
    version: "1.0.0",
    nodes: [
      { name: "jetson-1", address: "192.168.1.20", arch: "arm64", hardware: "jetson-orin-nano", role: "agent" },
      { name: "ctrl-1", address: "192.168.1.10", arch: "x86_64", hardware: "x86-controller", role: "server" },
    ],
    bundles: [
      { hardware: "jetson-orin-nano", path: "/b/jetson-orin-nano-1.0.0.swu", sha256: "a".repeat(64), size: 1 },
      { hardware: "x86-controller", path: "/b/x86-controller-1.0.0.swu", sha256: "b".repeat(64), size: 2 },
    ],
    outputDir: path.join(dir, "fleet"),
    ...over,
  });

  test("check refuses a node without a bundle", async () => {
    const r = await p.check!({}, fleetArgs({ bundles: [fleetArgs().bundles[0]] }));
    expect(r.failures![0].reason).toMatch(/node ctrl-1 \(x86-controller\) has no bundle/);
  });

  test("create, diff, update in place, read, delete", async () => {
    const inputs = (await p.check!({}, fleetArgs())).inputs;
    const c = await p.create!(inputs);
    const m = JSON.parse(await fs.promises.readFile(c.outs.manifestPath, "utf8"));
    expect(m.nodes["ctrl-1"].updateOrder).toBe(1);
    expect(m.nodes["jetson-1"]).toMatchObject({ bundle: "jetson-orin-nano-1.0.0.swu", updateOrder: 2 });
    expect(await p.diff!(c.id, c.outs, inputs)).toEqual({ changes: false });
    const news = (await p.check!({}, fleetArgs({ version: "1.0.1" }))).inputs;
    const d = await p.diff!(c.id, c.outs, news);
    expect(d).toEqual({ changes: true });
    const u = await p.update!(c.id, c.outs, news);
    expect(JSON.parse(await fs.promises.readFile(u.outs!.manifestPath, "utf8")).version).toBe("1.0.1");
    expect((await p.diff!(c.id, c.outs, (await p.check!({}, fleetArgs({ outputDir: path.join(dir, "f2") }))).inputs)).replaces).toEqual(["outputDir"]);
    await fs.promises.appendFile(u.outs!.manifestPath, " ");
    expect((await p.read!(c.id, u.outs!)).props!.outputValid).toBe(false);
    await p.delete!(c.id, u.outs!);
    expect(fs.existsSync(u.outs!.manifestPath)).toBe(false);
    expect(fs.existsSync(u.outs!.checksumsPath)).toBe(false);
    expect((await p.read!(c.id, u.outs!)).id).toBe("");
  });
});

test("a changed post-update script generator is an input change (digest set by check)", () => {
  const { checkSwuBundle: checkBundle } = require("../../lib/swupdate/bundle-provider") as typeof import("../../lib/swupdate/bundle-provider");
  const base = {
    hardware: "jetson-orin-nano",
    hwRevisions: ["1.0"],
    version: "1",
    signingKey: "k",
    certificate: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----",
    images: [{ path: "/tmp/r.ext4", sha256: "a".repeat(64), kind: "rootfs", device: "/dev/mmcblk0p1" }],
    outputDir: "/tmp/o",
  };
  const a = checkBundle(base).inputs as { postUpdateDigest?: string };
  const b = checkBundle({ ...base, postUpdateTimeoutSeconds: 301 }).inputs as { postUpdateDigest?: string };
  expect(a.postUpdateDigest).toMatch(/^[0-9a-f]{64}$/);
  expect(b.postUpdateDigest).not.toBe(a.postUpdateDigest);
  expect((checkBundle({ ...base, postUpdate: false }).inputs as { postUpdateDigest?: string }).postUpdateDigest).toBeUndefined();
});
