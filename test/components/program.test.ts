/**
 * Component wiring under Pulumi mocks: the program reads stack config, validates it before registering
 * anything, builds the Fleet component and exports its outputs.
 */
import * as pulumi from "@pulumi/pulumi";
import { validRaw } from "../model/fixtures";

const registered: { type: string; name: string; parent?: string }[] = [];

function setConfig(raw: Record<string, unknown>) {
  const all: Record<string, string> = {};
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
        registered.push({ type: args.type, name: args.name });
        return { id: `${args.name}-id`, state: args.inputs };
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
  expect(registered.find((r) => r.type === "isar-k3s:fleet:Fleet")?.name).toBe("test");
});

test("a bad config fails before any resource is registered", async () => {
  const raw = validRaw();
  raw.nodes[0].address = "300.1.1.1";
  setConfig(raw);
  await expect(import("../../index")).rejects.toThrow(/nodes\[0\]\.address: "300\.1\.1\.1" is not an IPv4 address/);
  expect(registered).toEqual([]);
});
