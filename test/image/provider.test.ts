/**
 * NodeImage provider methods called directly: check defaults + expression hash, pure diff decisions,
 * a real create (nix build with host-pkgs), refresh noticing a vanished store path, delete dropping the GC root.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { nodeImageProvider as provider } from "../../providers/image";
import { expressionDigest } from "../../lib/image/compose";
import { BaseArtifacts, debugfs, makeBaseArtifacts, nodeFiles, sh } from "./fixtures";

jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, "../..");
const marker = `p${process.pid}`;
let tmp: string;
let base: BaseArtifacts;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "image-provider-"));
  base = await makeBaseArtifacts(tmp, marker);
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function news(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeName: `w1-${marker}`,
    hardware: "turing-rk1",
    arch: "arm64",
    role: "agent",
    artifacts: { rootfs: base.rootfs, kernel: base.kernel, dtbs: base.dtbs },
    files: nodeFiles(`w1-${marker}`, { role: "agent" }),
    pkgsSource: "host",
    cacheDir: path.join(tmp, "cache"),
    ...extra,
  };
}

async function checked(extra: Record<string, unknown> = {}) {
  const r = await provider.check!({}, news(extra));
  expect(r.failures ?? []).toEqual([]);
  return r.inputs;
}

describe("NodeImage provider", () => {
  test("check fills defaults and the expression hash, and rejects bad inputs", async () => {
    const inputs = await checked();
    expect(inputs).toMatchObject({ headroomPercent: 30, offline: true, timeoutSeconds: 1800, gcRoot: true, pkgsSource: "host" });
    expect(inputs.expressionHash).toBe(expressionDigest(ROOT));
    const bad = await provider.check!({}, news({ role: undefined, files: [{ path: "relative/x", content: "", mode: 0o644, uid: 0, gid: 0 }] }));
    expect(bad.failures!.map((f) => f.property)).toContain("role");
    const bad2 = await provider.check!({}, news({ files: [{ path: "/etc/rancher/k3s/config.yaml", content: "token: abc\n", mode: 0o600, uid: 0, gid: 0 }] }));
    expect(bad2.failures!.map((f) => f.reason).join("\n")).toMatch(/sets "token"/);
  });

  test("create builds, read checks the store path, diff replaces on any image input, delete drops the GC root", async () => {
    const inputs = await checked();
    const created = await provider.create!(inputs);
    const outs = created.outs;
    expect(created.id).toBe(outs.storePath);
    expect(outs.storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-node-image-w1-/);
    expect(outs.imageId).toMatch(/^[0-9a-f]{32}$/);
    expect(debugfs(path.join(outs.storePath, "rootfs.ext4"), "cat /etc/isar-k3s/image-id")).toBe(`${outs.imageId}\n`);
    expect(outs.outputFiles.map((f: { path: string }) => f.path)).toContain("rootfs.ext4");
    expect(outs.storePathValid).toBe(true);
    // GC root registered: the store path survives garbage collection while the resource exists
    const root = path.join(tmp, "cache", "gcroots", `w1-${marker}`);
    expect(fs.readlinkSync(root)).toBe(outs.storePath);
    expect(sh(["nix-store", "--query", "--roots", outs.storePath])).toContain(root);

    // no change
    expect((await provider.diff!(created.id, outs, await checked())).changes).toBe(false);
    // one rendered file changed → replace, naming "files"
    const changedFiles = nodeFiles(`w1-${marker}`, { role: "agent", label: "b" });
    const d1 = await provider.diff!(created.id, outs, await checked({ files: changedFiles }));
    expect(d1).toMatchObject({ changes: true, replaces: ["files"] });
    // artifact hash changed → replace
    const d2 = await provider.diff!(created.id, outs, await checked({ artifacts: { rootfs: base.rootfs, kernel: base.initramfs, dtbs: base.dtbs } }));
    expect(d2.replaces).toEqual(["artifacts"]);
    // expression changed → replace
    const d3 = await provider.diff!(created.id, outs, await checked({ expressionHash: "0".repeat(64) }));
    expect(d3.replaces).toEqual(["expressionHash"]);
    // operational setting only → update in place, no rebuild
    const d4 = await provider.diff!(created.id, outs, await checked({ timeoutSeconds: 60 }));
    expect(d4).toMatchObject({ changes: true, replaces: [] });
    const updated = await provider.update!(created.id, outs, await checked({ timeoutSeconds: 60 }));
    expect(updated.outs!.storePath).toBe(outs.storePath);
    expect(updated.outs!.timeoutSeconds).toBe(60);

    // refresh: present → valid; a vanished store path → invalid → next diff replaces
    const r1 = await provider.read!(created.id, outs);
    expect(r1.props!.storePathValid).toBe(true);
    const gone = { ...outs, storePath: "/nix/store/00000000000000000000000000000000-node-image-gone" };
    const r2 = await provider.read!(gone.storePath, gone);
    expect(r2.props!.storePathValid).toBe(false);
    expect((await provider.diff!(gone.storePath, r2.props, await checked())).replaces).toEqual(["storePath"]);

    await provider.delete!(created.id, outs);
    expect(fs.existsSync(root)).toBe(false);
  });

  test("a second node with the same inputs except one file: only that node's digest changes", async () => {
    const a = await checked();
    const b = await checked({ nodeName: `w2-${marker}`, files: nodeFiles(`w2-${marker}`, { role: "agent" }) });
    const resource = require("../../lib/image/node-image-provider") as typeof import("../../lib/image/node-image-provider");
    const a2 = await checked();
    const b2 = await checked({ nodeName: `w2-${marker}`, files: nodeFiles(`w2-${marker}`, { role: "agent", label: "z" }) });
    expect(resource.digestOf(a2)).toBe(resource.digestOf(a));
    expect(resource.digestOf(b2)).not.toBe(resource.digestOf(b));
  });
});
