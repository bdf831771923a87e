/**
 * providers/delivery.ts: the provider serializes to a closure that requires lib/ at run time (no lib code
 * inlined into the state), check reports input failures by property, and the resource classes wrap
 * the secrets (SSH private key, AES key) and register their outputs under Pulumi mocks.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";

const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
pulumi.runtime.setMocks(
  {
    newResource: (a) => {
      registered.push({ type: a.type, name: a.name, inputs: a.inputs });
      return { id: `${a.name}-id`, state: { ...a.inputs, runningImageId: "img-1" } };
    },
    call: (a) => a.inputs,
  },
  "delivery",
  "test",
  true,
);

const { deliveryProvider, deliveryProps, TuringPiFlash, SwupdateDelivery } = require("../../providers/delivery") as typeof import("../../providers/delivery");

const SHA = "ab".repeat(32);

test("the provider serializes to a closure that requires lib/delivery at run time", async () => {
  const sc = require("@pulumi/pulumi/runtime/closure/serializeClosure");
  const sf = await sc.serializeFunction(() => deliveryProvider, { allowSecrets: true });
  expect(sf.text).toContain(`ROOT: ${JSON.stringify(path.resolve(__dirname, "../.."))}`);
  expect(sf.text).toContain('require(ROOT + "/lib/delivery/delivery-provider")');
  expect(sf.text).not.toMatch(/function (flashNode|installBundle|diffDelivery|parseFlashOutcome)\b/);
});

test("check names the failing inputs", async () => {
  const r = await deliveryProvider.check!(
    {},
    {
      kind: "tpi",
      nodeName: "srv1",
      slot: 7,
      bmc: { name: "bmc", address: "10.0.0.2", imageDir: "/mnt/sdcard" },
      node: { address: "10.0.0.11" },
      image: { path: "/p/disk.img", sha256: SHA, imageId: "x1" },
    },
  );
  expect(r.failures).toEqual([{ property: "slot", reason: "7 is not a Turing Pi 2 slot (1–4)" }]);
});

test("resource classes: secrets wrapped, kind set, outputs registered", async () => {
  const flash = new TuringPiFlash("srv1-flash", {
    nodeName: "srv1",
    slot: 1,
    bmc: { name: "bmc", address: "10.0.0.2", imageDir: "/mnt/sdcard/images" },
    node: { address: "10.0.0.11" },
    image: { path: "/nix/store/x/disk.img", sha256: SHA, imageId: "img-1" },
    sshPrivateKey: "PRIVATE",
  });
  const swu = new SwupdateDelivery("jetson1-swu", {
    nodeName: "jetson1",
    node: { address: "10.0.0.20", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z" },
    hardware: "jetson-orin-nano",
    hwRevision: "1.0",
    bundle: { path: "/b/x.swu", sha256: SHA },
    imageId: "img-1",
    aesKey: "AESSECRET",
  });
  const v = <T>(o: pulumi.Output<T>) => new Promise<T>((r) => o.apply((x) => r(x)));
  expect(await v(flash.runningImageId)).toBe("img-1");
  expect(await v(swu.runningImageId)).toBe("img-1");
  const f = registered.find((r) => r.name === "srv1-flash")!;
  const s = registered.find((r) => r.name === "jetson1-swu")!;
  expect(f.inputs.kind).toBe("tpi");
  expect(s.inputs.kind).toBe("swupdate");
  expect(f.type).toBe("pulumi-nodejs:dynamic:Resource");
  const props = deliveryProps("swupdate", {
    nodeName: "j",
    node: { address: "a" },
    hardware: "h",
    hwRevision: "1",
    bundle: { path: "/b", sha256: SHA },
    imageId: "i",
    sshPrivateKey: "PRIVATE",
    aesKey: "AESSECRET",
  });
  expect(await pulumi.isSecret(props.sshPrivateKey as pulumi.Output<string>)).toBe(true);
  expect(await pulumi.isSecret(props.aesKey as pulumi.Output<string>)).toBe(true);
  expect(props.kind).toBe("swupdate");
  expect("runningImageId" in props && props.runningImageId === undefined).toBe(true);
});

test("refresh of an unreachable node records it and keeps the state: no drift, the next diff changes nothing", async () => {
  const net = await import("net");
  // a loopback port with nothing listening
  const port = await new Promise<number>((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
  });
  const inputs = (
    await deliveryProvider.check!(
      {},
      {
        kind: "tpi",
        nodeName: "srv1",
        slot: 1,
        bmc: { name: "bmc", address: "127.0.0.1", port, imageDir: "/mnt/sdcard/images" },
        node: { address: "127.0.0.1", port },
        image: { path: "/p/disk.img", sha256: SHA, imageId: "img-1" },
        connectTimeoutSeconds: 2,
        sshPrivateKey: await throwawayKey(),
      },
    )
  ).inputs;
  const state = {
    ...inputs,
    runningImageId: "img-1",
    nodeHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICwCb3XL2Q+yQ7VTG4berB4u/Vts/nxGxaoo27HqPE3Z",
    lastCheck: "ok",
  };
  const t0 = Date.now();
  const read = await deliveryProvider.read!("srv1@bmc/slot1", state);
  expect(Date.now() - t0).toBeLessThan(10_000);
  expect(read.id).toBe("srv1@bmc/slot1");
  expect(read.props.runningImageId).toBe("img-1");
  expect(read.props.lastCheck).toMatch(/^unreachable: cannot connect to root@127\.0\.0\.1:\d+/);
  const d = await deliveryProvider.diff!("srv1@bmc/slot1", read.props, inputs);
  expect(d.changes).toBe(false);
});

async function throwawayKey(): Promise<string> {
  const fs = await import("fs");
  const os = await import("os");
  const { execFileSync } = await import("child_process");
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "delivery-key-"));
  try {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(d, "k")]);
    return fs.readFileSync(path.join(d, "k"), "utf8");
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}
