/**
 * Component wiring under Pulumi mocks: the program reads stack config, validates it before registering
 * anything, builds the Fleet component and exports its outputs.
 */
import * as pulumi from "@pulumi/pulumi";
import { validRaw } from "../model/fixtures";

const registered: { type: string; name: string; parent?: string; inputs: Record<string, unknown> }[] = [];
/** How a secret value looks on the wire (pulumi/sdk/nodejs runtime/rpc.ts specialSigKey / specialSecretSig). */
const SIG = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

function setConfig(raw: Record<string, unknown>) {
  const all: Record<string, string> = { "isar-k3s:swupdateSigningKey": "-----BEGIN PRIVATE KEY-----\nMOCK\n-----END PRIVATE KEY-----\n" };
  for (const [k, v] of Object.entries(raw)) all[`isar-k3s:${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  pulumi.runtime.setAllConfig(all);
}

async function value<T>(o: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => o.apply((v) => resolve(v)));
}

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, parent: args.inputs?.__parent, inputs: args.inputs });
        const state: Record<string, unknown> = { ...args.inputs };
        if (args.type.endsWith(":NodeImage")) {
          state.storePath = `/nix/store/${"0".repeat(32)}-${args.inputs.nodeName}`;
          state.outputFiles = [
            { path: "rootfs.ext4", size: 1, sha256: "1".repeat(64) },
            { path: "boot/Image", size: 1, sha256: "2".repeat(64) },
            { path: "boot/bzImage", size: 1, sha256: "3".repeat(64) },
            { path: "disk.img", size: 1, sha256: "5".repeat(64) },
          ];
          state.imageId = `id-${args.inputs.nodeName}`;
        }
        if (args.type.endsWith(":IsarArtifact")) state.storePath = `/nix/store/${"1".repeat(32)}-${args.name}`;
        if (args.type.endsWith(":SwuBundle")) Object.assign(state, { path: `/tmp/${args.name}.swu`, sha256: "4".repeat(64), size: 10 });
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    "isar-k3s",
    "test",
  );
});

beforeEach(() => {
  registered.length = 0;
  jest.resetModules();
});

test("a valid config builds the Fleet and exports phases and per-node summaries", async () => {
  setConfig(validRaw());
  const program = await import("../../index");
  const phases = await value(program.phases as pulumi.Output<{ name: string; nodes: string[] }[]>);
  expect(phases).toEqual([
    { name: "first-server", nodes: ["srv1"] },
    { name: "server-2", nodes: ["srv2"] },
    { name: "server-3", nodes: ["srv3"] },
    { name: "agents", nodes: ["jetson1"] },
  ]);
  const nodes = await value(program.nodes as pulumi.Output<{ name: string; delivery: string; filesDigest: string }[]>);
  expect(nodes.map((n) => n.delivery)).toEqual(["tpi bmc slot 1", "tpi bmc slot 2", "swupdate", "swupdate"]);
  expect(nodes.every((n) => /^[0-9a-f]{64}$/.test(n.filesDigest))).toBe(true);
  // the manifest depends on every bundle, each bundle on its image, each image on its artifacts
  await value(program.updateManifest as pulumi.Output<string | undefined>);
  await value(program.delivered as pulumi.Output<Record<string, string>>);
  await value(program.kubeconfig as pulumi.Output<string>);
  const images = await value(program.images as pulumi.Output<Record<string, string>>);
  expect(Object.keys(images).sort()).toEqual(["jetson1", "srv1", "srv2", "srv3"]);
  expect(registered.find((r) => r.type === "isar-k3s:fleet:Fleet")?.name).toBe("test");
  // one artifacts component per hardware in use, one IsarArtifact per pin
  expect(
    registered
      .filter((r) => r.type === "isar-k3s:artifacts:Machine")
      .map((r) => r.name)
      .sort(),
  ).toEqual(["test-jetson-orin-nano", "test-turing-rk1", "test-x86-controller"]);
  const artifacts = registered
    .filter((r) => r.type.endsWith(":IsarArtifact"))
    .map((r) => r.name)
    .sort();
  expect(artifacts).toEqual([
    "test-jetson-orin-nano-dtb0",
    "test-jetson-orin-nano-kernel",
    "test-jetson-orin-nano-rootfs",
    "test-turing-rk1-kernel",
    "test-turing-rk1-rootfs",
    "test-turing-rk1-wic",
    "test-x86-controller-kernel",
    "test-x86-controller-rootfs",
  ]);
  // every node gets an image; only SWUpdate nodes get a bundle; one manifest
  expect(
    registered
      .filter((r) => r.type.endsWith(":NodeImage"))
      .map((r) => r.name)
      .sort(),
  ).toEqual(["test-jetson1-image", "test-srv1-image", "test-srv2-image", "test-srv3-image"]);
  expect(
    registered
      .filter((r) => r.type.endsWith(":SwuBundle"))
      .map((r) => r.name)
      .sort(),
  ).toEqual(["test-jetson1-bundle", "test-srv3-bundle"]);
  expect(registered.filter((r) => r.type.endsWith(":FleetUpdate"))).toHaveLength(1);
  // the k3s join: a token, one join resource per node, the kubeconfig; no Kubernetes provider without workloads
  expect(registered.filter((r) => r.type === "random:index/randomPassword:RandomPassword")).toHaveLength(1);
  expect(
    registered
      .filter((r) => /K3s(Server|Agent)$/.test(r.type))
      .map((r) => r.name)
      .sort(),
  ).toEqual(["test-k3s-jetson1", "test-k3s-srv1", "test-k3s-srv2", "test-k3s-srv3"]);
  expect(registered.filter((r) => r.type.endsWith("K3sKubeconfig"))).toHaveLength(1);
  expect(registered.filter((r) => r.type.startsWith("pulumi:providers:kubernetes"))).toHaveLength(0);
  // every node is delivered the way its config says
  expect(
    registered
      .filter((r) => r.type.endsWith(":TuringPiFlash") || r.type.endsWith("dynamic:Resource"))
      .map((r) => r.name)
      .sort(),
  ).toEqual(["test-jetson1-swupdate", "test-srv1-flash", "test-srv2-flash", "test-srv3-swupdate"]);
});

test("a clusterToken secret adopts an existing cluster's token: no RandomPassword, the token stays a secret", async () => {
  setConfig({ ...validRaw(), clusterToken: "K10existing-cluster-token" });
  const program = await import("../../index");
  await value(program.kubeconfig as pulumi.Output<string>);
  expect(registered.filter((r) => r.type === "random:index/randomPassword:RandomPassword")).toHaveLength(0);
  await new Promise((r) => setTimeout(r, 200));
  const joins = registered.filter((r) => /K3s(Server|Agent)$/.test(r.type));
  expect(joins.map((r) => r.name).sort()).toEqual(["test-k3s-jetson1", "test-k3s-srv1", "test-k3s-srv2", "test-k3s-srv3"]);
  for (const j of joins) expect(j.inputs.token).toEqual({ [SIG]: SECRET_SIG, value: "K10existing-cluster-token" });
});

test("a bad config fails before any resource is registered", async () => {
  const raw = validRaw();
  raw.nodes[0].address = "300.1.1.1";
  setConfig(raw);
  await expect(import("../../index")).rejects.toThrow(/nodes\[0\]\.address: "300\.1\.1\.1" is not an IPv4 address/);
  expect(registered).toEqual([]);
});

test("a workloads path that does not exist fails before any resource is registered", async () => {
  setConfig({
    ...validRaw(),
    workloads: { manifests: ["dev/workloads/platform.yaml"], helmCharts: [{ name: "info", chart: "./dev/workloads/no-such-chart", namespace: "default" }] },
  });
  await expect(import("../../index")).rejects.toThrow(/workloads\.helmCharts\[0\]\.chart: .*no-such-chart is not a Helm chart directory/);
  expect(registered).toEqual([]);
});
