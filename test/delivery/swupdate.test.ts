/**
 * SWUpdate delivery against the simulated lab with the real Debian swupdate (2022.12) running on the
 * node (its block devices are the node's own files) and a simulated reboot that boots the most recently
 * written root device:
 * - a signed bundle installs: the node's target device holds the new root filesystem and, after the
 *   reboot, the node reports the new image id; an A/B selection writes the other partition;
 * - a bundle signed by another key is refused: the node keeps its old image, the other partition is not
 *   written, no reboot happens, and the provider's update throws (Pulumi keeps the old state);
 * - no room for the bundle on the node: refused before the upload;
 * - provider: unchanged → no change; refresh reads the running image id;
 * - a node that boots another image than expected after the update is an error;
 * - rollout: an injected failure on the first agent leaves the other agents untouched.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { Lab } from "../../lab/lab";
import { buildBundle } from "../../lib/swupdate/bundle";
import { connectSsh } from "../../lib/transport/ssh";
import { bootMarker, readImageId, ProgressEvent } from "../../lib/delivery/common";
import { installBundle, SwupdateSpec } from "../../lib/delivery/swupdate";
import { deliveryDependencies, runRollout, RolloutError } from "../../lib/delivery/rollout";
import { deploymentPlan } from "../../lib/plan/plan";
import type { Fleet, NodeSpec } from "../../lib/model/types";
import { DeliveryOutputs, SwupdateInputs } from "../../lib/delivery/delivery-provider";
import { deliveryProvider } from "../../providers/delivery";
import { Signer, TestImage, makeNodeImage, makeSigner, tempDir, startLabRetry } from "./labutil";

jest.setTimeout(180_000);

const HW = "jetson-orin-nano";
const PART = 24 << 20;
let lab: Lab;
let dir: string;
let signer: Signer;
let other: Signer;

interface Bundle {
  path: string;
  sha256: string;
  image: TestImage;
}
const bundles: Record<string, Bundle> = {};

async function makeBundle(name: string, hostname: string, by: Signer, selection = true, sizeMiB = 8): Promise<Bundle> {
  const image = await makeNodeImage(dir, { name, hostname, authorizedKey: lab.deployKey.publicKey, hwRevision: `${HW} 1.0`, layout: "bare", sizeMiB });
  const r = await buildBundle({
    hardware: HW,
    hwRevisions: ["1.0"],
    version: `1.0.${name}`,
    images: [{ path: image.path, kind: "rootfs", name: "rootfs.ext4", sha256: image.sha256, ...(selection ? {} : { device: "/dev/mmcblk0p1" }) }],
    ...(selection ? { selection: { set: "stable", rootDevices: { main: "/dev/mmcblk0p1", alt: "/dev/mmcblk0p2" } } } : {}),
    signing: "cms",
    key: by.key,
    cert: by.cert,
    postUpdate: false,
    outPath: path.join(dir, "bundles", `${name}.swu`),
  });
  return { path: r.path, sha256: r.sha256, image };
}

const NODES = ["j1", "s1", "a1", "a2", "a3"];

beforeAll(async () => {
  dir = await tempDir("delivery-swu-");
  lab = await startLabRetry(
    {
      // seed 003: the nodes are reached as the deploy user; every step runs through sudo -n ("pw": its sudo asks for a password)
      hosts: [...NODES, "pw"].map((name) => ({
        name,
        role: "node" as const,
        user: "deploy",
        sudoPassword: name === "pw",
        swupdate: { devices: { mmcblk0p1: PART, mmcblk0p2: PART } },
        hwRevision: `${HW} 1.0`,
      })),
      bootDelayMs: 100,
    },
    path.join(dir, "lab"),
  );
  signer = await makeSigner(dir, "fleet-signer");
  other = await makeSigner(dir, "someone-else");
  bundles.v1 = await makeBundle("v1", "jetson-1", signer);
  bundles.v2 = await makeBundle("v2", "jetson-1", signer);
  bundles.evil = await makeBundle("evil", "jetson-1", other);
  bundles.srv = await makeBundle("srv", "server-1", signer, false);
});

afterAll(async () => {
  await lab?.stop();
  if (dir) await fs.promises.rm(dir, { recursive: true, force: true });
});

function spec(node: string, b: Bundle, over: Partial<SwupdateSpec> = {}): SwupdateSpec {
  const h = lab.hosts[node];
  return {
    nodeName: node,
    node: { address: h.address, port: h.port, user: h.user, hostKey: h.hostKey },
    hardware: HW,
    hwRevision: "1.0",
    selection: "stable,main",
    bundle: { path: b.path, sha256: b.sha256 },
    imageId: b.image.imageId,
    certificate: signer.cert,
    bootTimeoutSeconds: 30,
    connectTimeoutSeconds: 10,
    installTimeoutSeconds: 120,
    ...over,
  };
}

const creds = () => ({ privateKey: lab.deployKey.privateKey });

async function withNode<T>(node: string, fn: (h: Awaited<ReturnType<typeof connectSsh>>) => Promise<T>): Promise<T> {
  const h = lab.hosts[node];
  const c = await connectSsh({ host: h.address, port: h.port, user: h.user, hostKey: h.hostKey, privateKey: lab.deployKey.privateKey, retryForMs: 10_000 });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

async function devicePrefix(node: string, dev: string, len: number): Promise<string> {
  const f = path.join(lab.hosts[node].rootDir, "dev", dev);
  const fh = await fs.promises.open(f, "r");
  try {
    const b = Buffer.alloc(len);
    await fh.read(b, 0, len, 0);
    return crypto.createHash("sha256").update(b).digest("hex");
  } finally {
    await fh.close();
  }
}

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a failure, but it succeeded");
}

describe("one node", () => {
  test("a node whose sudo asks for a password: refused before anything is changed, naming the node and the fix", async () => {
    const err = await failure(installBundle(spec("pw", bundles.v1), creds()));
    expect(err.message).toMatch(
      /^pw: connect failed on deploy@[0-9.]+:22: .*sudo asks deploy for a password, and every remote step runs as root through `sudo -n`, which never prompts/,
    );
    expect(err.message).toMatch(/NOPASSWD: ALL.*visudo -f \/etc\/sudoers.d\/isar-k3s-deploy/);
    expect(await devicePrefix("pw", "mmcblk0p1", 1 << 20)).toBe(
      crypto
        .createHash("sha256")
        .update(Buffer.alloc(1 << 20))
        .digest("hex"),
    );
  });

  test("a signed bundle installs with the real swupdate: the target device holds the new root fs; after the reboot the node reports the new image id", async () => {
    expect(await withNode("j1", (h) => readImageId(h))).toBeUndefined();
    const events: ProgressEvent[] = [];
    const r = await installBundle(spec("j1", bundles.v1), creds(), { progress: (e) => events.push(e) });
    expect(r.alreadyCurrent).toBe(false);
    expect(r.runningImageId).toBe(bundles.v1.image.imageId);
    expect(r.logTail).toMatch(/SWUPDATE successful/);
    const size = (await fs.promises.stat(bundles.v1.image.path)).size;
    expect(await devicePrefix("j1", "mmcblk0p1", size)).toBe(bundles.v1.image.sha256);
    expect(await withNode("j1", async (h) => (await h.run(["cat", "/etc/hostname"])).stdout.toString().trim())).toBe("jetson-1");
    expect([...new Set(events.map((e) => e.phase))]).toEqual(["connect", "upload", "install", "reboot", "boot", "verify", "done"]);
    // the bundle is not left on the node
    expect(await withNode("j1", async (h) => (await h.run(["ls", "-A", "/var/tmp/isar-k3s"])).stdout.toString().trim())).toBe("swupdate-cert.pem");
  });

  test("a bundle signed by another key is refused: the node keeps its old image, nothing is written, no reboot", async () => {
    const marker = await withNode("j1", (h) => bootMarker(h));
    const p2 = await devicePrefix("j1", "mmcblk0p2", 1 << 20);
    const err = await failure(installBundle(spec("j1", bundles.evil, { selection: "stable,alt" }), creds()));
    expect(err.message).toMatch(
      /^j1: install failed on deploy@[0-9.]+:22: swupdate refused the bundle: Authentication of all signatures failed; .*; the node keeps its current image /,
    );
    expect(err.message).toMatch(/How to fix: check that the bundle is signed with the key matching swupdate.certificate/);
    expect(err.message).toMatch(/--- last output \(install\) ---\n[\s\S]*\[ERROR\]/);
    expect(await withNode("j1", (h) => readImageId(h))).toBe(bundles.v1.image.imageId);
    expect(await withNode("j1", (h) => bootMarker(h))).toBe(marker);
    expect(await devicePrefix("j1", "mmcblk0p2", 1 << 20)).toBe(p2);
  });

  test("no room for the bundle on the node: refused before the upload, nothing changed", async () => {
    const big = await makeBundle("big", "jetson-1", signer, true, 70);
    const marker = await withNode("j1", (h) => bootMarker(h));
    const err = await failure(installBundle(spec("j1", big, { remoteDir: "/dev/shm/isar-k3s" }), creds()));
    expect(err.message).toMatch(
      /^j1: upload failed on deploy@[0-9.]+:22: \/dev\/shm\/isar-k3s on the node has [0-9.]+ MiB free, the bundle needs [0-9.]+ MiB more; nothing was changed on the node/,
    );
    expect(await withNode("j1", async (h) => (await h.run(["ls", "-A", "/dev/shm/isar-k3s"])).stdout.toString())).toBe("");
    expect(await withNode("j1", (h) => readImageId(h))).toBe(bundles.v1.image.imageId);
    expect(await withNode("j1", (h) => bootMarker(h))).toBe(marker);
  });

  test("through the provider: a refused update throws (state stays old); a good one installs to the other slot; unchanged is no change", async () => {
    const base = { ...spec("j1", bundles.v1), kind: "swupdate", sshPrivateKey: lab.deployKey.privateKey, sources: { "bundle sha256": bundles.v1.sha256 } };
    const olds: DeliveryOutputs = {
      ...((await deliveryProvider.check!({}, base)).inputs as SwupdateInputs),
      runningImageId: bundles.v1.image.imageId,
      lastCheck: "ok",
    };
    const evil = (
      await deliveryProvider.check!(olds, {
        ...base,
        selection: "stable,alt",
        bundle: { path: bundles.evil.path, sha256: bundles.evil.sha256 },
        imageId: bundles.evil.image.imageId,
        sources: { "bundle sha256": bundles.evil.sha256 },
      })
    ).inputs;
    const d = await deliveryProvider.diff!("j1@swupdate", olds, evil);
    expect(d.changes).toBe(true);
    expect(d.replaces).toEqual([]);
    await expect(deliveryProvider.update!("j1@swupdate", olds, evil)).rejects.toThrow(
      /^j1: install failed on .*: swupdate refused the bundle: Authentication of all signatures failed/,
    );
    expect(await withNode("j1", (h) => readImageId(h))).toBe(bundles.v1.image.imageId);

    const good = (
      await deliveryProvider.check!(olds, {
        ...base,
        selection: "stable,alt",
        bundle: { path: bundles.v2.path, sha256: bundles.v2.sha256 },
        imageId: bundles.v2.image.imageId,
        sources: { "bundle sha256": bundles.v2.sha256 },
      })
    ).inputs;
    const up = await deliveryProvider.update!("j1@swupdate", olds, good);
    expect(up.outs.runningImageId).toBe(bundles.v2.image.imageId);
    const size = (await fs.promises.stat(bundles.v2.image.path)).size;
    expect(await devicePrefix("j1", "mmcblk0p2", size)).toBe(bundles.v2.image.sha256);
    expect(await devicePrefix("j1", "mmcblk0p1", (await fs.promises.stat(bundles.v1.image.path)).size)).toBe(bundles.v1.image.sha256);

    const read = await deliveryProvider.read!("j1@swupdate", up.outs);
    expect(read.props.runningImageId).toBe(bundles.v2.image.imageId);
    const same = await deliveryProvider.diff!("j1@swupdate", read.props, (await deliveryProvider.check!(up.outs, good)).inputs);
    expect(same.changes).toBe(false);
    // a create for a node already running the image installs nothing (idempotent re-run after lost state)
    const again = await installBundle(spec("j1", bundles.v2, { selection: "stable,alt" }), creds());
    expect(again.alreadyCurrent).toBe(true);
  });

  test("an install after which the node boots another image than expected is an error (bootloader fallback)", async () => {
    const err = await failure(installBundle(spec("j1", bundles.v1, { imageId: "expected-but-not-booted" }), creds()));
    expect(err.message).toMatch(
      /^j1: verify failed on deploy@[0-9.]+:22: after the update and reboot the node reports image id [0-9a-f]{32}, not expected-but-not-booted: it booted its old image/,
    );
  });
});

test("rollout: an injected failure on the first agent leaves the other agents untouched", async () => {
  const fleet = {
    nodes: [
      ["s1", "server"],
      ["a1", "agent"],
      ["a2", "agent"],
      ["a3", "agent"],
    ].map(([name, role]) => ({ name, role }) as NodeSpec),
  } as Fleet;
  const deps = deliveryDependencies(deploymentPlan(fleet), 2);
  const markers: Record<string, string> = {};
  for (const n of ["a2", "a3"]) markers[n] = await withNode(n, (h) => bootMarker(h));
  const err = await failure(
    runRollout(deps, async (node) => {
      if (node === "s1") await installBundle(spec("s1", bundles.srv, { selection: undefined }), creds());
      else if (node === "a1")
        await installBundle(spec("a1", bundles.evil), creds()); // the injected failure
      else await installBundle(spec(node, bundles.v1), creds());
    }),
  );
  expect(err).toBeInstanceOf(RolloutError);
  expect(err.message).toMatch(
    /^rollout stopped: a1 failed in phase install\. Delivered: s1\. Not attempted \(left as they were\): a2, a3\.\na1: install failed on deploy@/,
  );
  expect(err.message).toMatch(/\[ERROR\]/);
  expect(await withNode("s1", (h) => readImageId(h))).toBe(bundles.srv.image.imageId);
  expect(await withNode("a1", (h) => readImageId(h))).toBeUndefined();
  for (const n of ["a2", "a3"]) {
    expect(await withNode(n, (h) => readImageId(h))).toBeUndefined();
    expect(await withNode(n, (h) => bootMarker(h))).toBe(markers[n]);
    expect(await withNode(n, async (h) => (await h.run(["test", "-e", "/var/tmp/isar-k3s"])).code)).toBe(1);
    expect(await devicePrefix(n, "mmcblk0p1", 1 << 20)).toBe(
      crypto
        .createHash("sha256")
        .update(Buffer.alloc(1 << 20))
        .digest("hex"),
    );
  }
});
