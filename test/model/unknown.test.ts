import { containsUnknown, UNKNOWN } from "../../lib/unknown";
import { checkNodeImage } from "../../lib/image/node-image-provider";

test("containsUnknown finds the sentinel at any depth", () => {
  expect(containsUnknown(UNKNOWN)).toBe(true);
  expect(containsUnknown({ a: [{ b: UNKNOWN }] })).toBe(true);
  expect(containsUnknown({ a: ["x", { b: "y" }] })).toBe(false);
  expect(containsUnknown(null)).toBe(false);
});

test("NodeImage check accepts unknown artifact store paths at preview and validates them when known", () => {
  const base = {
    nodeName: "n1",
    hardware: "turing-rk1",
    arch: "arm64",
    role: "agent",
    pkgsSource: "host",
    expressionHash: "x",
    files: [{ path: "/etc/hostname", content: "n1\n", mode: 0o644, uid: 0, gid: 0 }],
  };
  const unknown = checkNodeImage({ ...base, artifacts: { rootfs: { storePath: UNKNOWN, sha256: UNKNOWN }, kernel: { storePath: UNKNOWN, sha256: UNKNOWN } } });
  expect(unknown.failures).toEqual([]);
  const bad = checkNodeImage({
    ...base,
    artifacts: { rootfs: { storePath: "/tmp/x", sha256: "a".repeat(64) }, kernel: { storePath: "/tmp/y", sha256: "b".repeat(64) } },
  });
  expect(bad.failures.map((f) => f.reason).join("\n")).toMatch(/artifact rootfs store path "\/tmp\/x" is not a \/nix\/store path/);
});

test("delivery check accepts an image path and sha256 unknown at preview, and still judges known values", () => {
  const { checkDelivery } = require("../../lib/delivery/delivery-provider") as typeof import("../../lib/delivery/delivery-provider");
  const base = {
    kind: "tpi",
    nodeName: "srv1",
    slot: 1,
    node: { address: "127.0.0.9" },
    bmc: { name: "bmc", address: "127.0.0.2", imageDir: "/mnt/sdcard/x" },
  };
  expect(checkDelivery({ ...base, image: { path: UNKNOWN, sha256: UNKNOWN, imageId: UNKNOWN } }).failures).toEqual([]);
  const known = checkDelivery({ ...base, image: { path: "relative.img", sha256: "nope", imageId: "abc" } }).failures.map((f) => f.property);
  expect(known).toEqual(expect.arrayContaining(["image.path", "image.sha256"]));
});

test("k3s node check accepts an SSH endpoint that is unknown at preview (host key of a re-flash)", () => {
  const { checkNode } = require("../../lib/k3s/k3s-provider") as typeof import("../../lib/k3s/k3s-provider");
  const base = {
    resourceType: "K3sAgent",
    role: "agent",
    node: "a1",
    hostname: "a1",
    token: UNKNOWN,
    config: "x",
    joinTimeoutSeconds: 60,
    drainTimeoutSeconds: 60,
  };
  const unknownSsh = checkNode({ ...base, ssh: UNKNOWN, apiSsh: { address: "127.0.0.1", port: 22, user: "root", hostKey: "k" } });
  expect(unknownSsh.failures.filter((f) => f.property.startsWith("ssh"))).toEqual([]);
  const missing = checkNode({ ...base, ssh: undefined, apiSsh: { address: "127.0.0.1", port: 22, user: "root" } });
  expect(missing.failures.map((f) => f.property)).toContain("ssh");
});
