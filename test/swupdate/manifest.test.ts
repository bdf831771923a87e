/**
 * Fleet manifest: seed 000's fields (version, per node address/arch/bundle/updateOrder with servers
 * first), deterministic JSON, errors for nodes without a bundle, and checksums.txt that the real
 * `sha256sum -c` accepts against the bundle files.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { FleetManifestInput, ManifestError, canonicalJson, renderFleetManifest, writeFleetUpdate } from "../../lib/swupdate/manifest";
import { run } from "../../lib/swupdate/run";
import { tempDir } from "./helpers";

let dir: string;
beforeAll(async () => {
  dir = await tempDir("swu-manifest-");
});
afterAll(async () => {
  await fs.promises.rm(dir, { recursive: true, force: true });
});

const sha = (s: string) => crypto.createHash("sha256").update(s).digest("hex");

function input(): FleetManifestInput {
  return {
    version: "1.4.0",
    nodes: [
      { name: "jetson-2", address: "192.168.1.21", arch: "arm64", hardware: "jetson-orin-nano", role: "agent", selection: "stable,alt" },
      { name: "ctrl-1", address: "192.168.1.10", arch: "x86_64", hardware: "x86-controller", role: "server" },
      { name: "jetson-1", address: "192.168.1.20", arch: "arm64", hardware: "jetson-orin-nano", role: "agent" },
    ],
    bundles: [
      { hardware: "x86-controller", file: "/out/x86-controller-1.4.0.swu", sha256: sha("x"), size: 10 },
      { hardware: "jetson-orin-nano", file: "/out/jetson-orin-nano-1.4.0.swu", sha256: sha("j"), size: 20 },
    ],
  };
}

test("seed 000 fields; servers update first; sorted; no clock", () => {
  const m = JSON.parse(renderFleetManifest(input()));
  expect(m.version).toBe("1.4.0");
  expect(m.timestamp).toBeUndefined();
  expect(Object.keys(m.nodes)).toEqual(["ctrl-1", "jetson-1", "jetson-2"]);
  expect(m.nodes["ctrl-1"]).toEqual({
    address: "192.168.1.10",
    arch: "x86_64",
    bundle: "x86-controller-1.4.0.swu",
    hardware: "x86-controller",
    role: "server",
    sha256: sha("x"),
    updateOrder: 1,
  });
  expect(m.nodes["jetson-1"].updateOrder).toBe(2);
  expect(m.nodes["jetson-2"]).toMatchObject({ bundle: "jetson-orin-nano-1.4.0.swu", selection: "stable,alt", updateOrder: 2 });
  expect(m.bundles.map((b: { hardware: string }) => b.hardware)).toEqual(["jetson-orin-nano", "x86-controller"]);
});

test("deterministic: input order does not matter; timestamp only when given", () => {
  const a = renderFleetManifest(input());
  const rev = input();
  rev.nodes.reverse();
  rev.bundles.reverse();
  expect(renderFleetManifest(rev)).toBe(a);
  expect(a.endsWith("}\n")).toBe(true);
  expect(JSON.parse(renderFleetManifest({ ...input(), timestamp: "2026-11-22T00:00:00Z" })).timestamp).toBe("2026-11-22T00:00:00Z");
  expect(canonicalJson({ b: 1, a: { d: 1, c: [{ f: 1, e: 2 }] } })).toBe(
    '{\n  "a": {\n    "c": [\n      {\n        "e": 2,\n        "f": 1\n      }\n    ],\n    "d": 1\n  },\n  "b": 1\n}\n',
  );
});

test("errors: node without a bundle, two bundles for one hardware, duplicate node, bad sha256", () => {
  const noBundle = input();
  noBundle.bundles = noBundle.bundles.filter((b) => b.hardware !== "x86-controller");
  expect(() => renderFleetManifest(noBundle)).toThrow(/node ctrl-1 \(x86-controller\) has no bundle/);
  const twice = input();
  twice.bundles.push({ ...twice.bundles[0], file: "other.swu" });
  expect(() => renderFleetManifest(twice)).toThrow(ManifestError);
  const dup = input();
  dup.nodes.push({ ...dup.nodes[0] });
  expect(() => renderFleetManifest(dup)).toThrow(/listed twice/);
  const bad = input();
  bad.bundles[0].sha256 = "XYZ";
  expect(() => renderFleetManifest(bad)).toThrow(/64 lowercase hex/);
});

test("writeFleetUpdate: manifest.json + checksums.txt that sha256sum -c accepts (and rejects after tampering)", async () => {
  const out = path.join(dir, "fleet");
  await fs.promises.mkdir(out, { recursive: true });
  const files = { "a-1.swu": crypto.randomBytes(1000), "b-1.swu": crypto.randomBytes(2000) };
  for (const [n, d] of Object.entries(files)) await fs.promises.writeFile(path.join(out, n), d);
  const res = await writeFleetUpdate(out, {
    version: "1",
    nodes: [
      { name: "s", address: "10.0.0.1", arch: "arm64", hardware: "turing-rk1", role: "server" },
      { name: "a", address: "10.0.0.2", arch: "arm64", hardware: "turing-cm4", role: "agent" },
    ],
    bundles: [
      { hardware: "turing-rk1", file: path.join(out, "a-1.swu"), sha256: crypto.createHash("sha256").update(files["a-1.swu"]).digest("hex"), size: 1000 },
      { hardware: "turing-cm4", file: path.join(out, "b-1.swu"), sha256: crypto.createHash("sha256").update(files["b-1.swu"]).digest("hex"), size: 2000 },
    ],
  });
  expect(await fs.promises.readFile(res.manifestPath, "utf8")).toBe(res.manifest);
  expect(res.manifestSha256).toBe(sha(res.manifest));
  const ok = await run(["sha256sum", "-c", "checksums.txt"], { cwd: out });
  expect(ok.stdout.toString()).toBe("a-1.swu: OK\nb-1.swu: OK\n");
  expect(ok.code).toBe(0);
  await fs.promises.appendFile(path.join(out, "b-1.swu"), "x");
  const bad = await run(["sha256sum", "-c", "checksums.txt"], { cwd: out });
  expect(bad.code).not.toBe(0);
  expect((await fs.promises.readdir(out)).sort()).toEqual(["a-1.swu", "b-1.swu", "checksums.txt", "manifest.json"]);
});

describe("per-node bundles", () => {
  const { fleetManifest } = require("../../lib/swupdate/manifest") as typeof import("../../lib/swupdate/manifest");
  const sha = (c: string) => c.repeat(64);
  const nodes = [
    { name: "j1", address: "10.0.0.1", arch: "arm64", hardware: "jetson-orin-nano", role: "agent" as const },
    { name: "j2", address: "10.0.0.2", arch: "arm64", hardware: "jetson-orin-nano", role: "agent" as const },
  ];
  test("each node gets the bundle built for it, even with two nodes of one hardware", () => {
    const m = fleetManifest({
      version: "1",
      nodes,
      bundles: [
        { hardware: "jetson-orin-nano", node: "j1", file: "/o/j1.swu", sha256: sha("a"), size: 1 },
        { hardware: "jetson-orin-nano", node: "j2", file: "/o/j2.swu", sha256: sha("b"), size: 2 },
      ],
    }) as { nodes: Record<string, { bundle: string; sha256: string }> };
    expect(m.nodes.j1).toMatchObject({ bundle: "j1.swu", sha256: sha("a") });
    expect(m.nodes.j2).toMatchObject({ bundle: "j2.swu", sha256: sha("b") });
  });
  test("a node bundle for another hardware, and two bundles for one node, are refused", () => {
    expect(() =>
      fleetManifest({ version: "1", nodes: [nodes[0]], bundles: [{ hardware: "x86-controller", node: "j1", file: "j1.swu", sha256: sha("a"), size: 1 }] }),
    ).toThrow(/j1 is jetson-orin-nano but its bundle j1.swu is for x86-controller/);
    expect(() =>
      fleetManifest({
        version: "1",
        nodes: [nodes[0]],
        bundles: [
          { hardware: "jetson-orin-nano", node: "j1", file: "a.swu", sha256: sha("a"), size: 1 },
          { hardware: "jetson-orin-nano", node: "j1", file: "b.swu", sha256: sha("b"), size: 1 },
        ],
      }),
    ).toThrow(/two bundles for node j1/);
  });
});
