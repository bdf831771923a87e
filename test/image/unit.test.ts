/** Pure parts of lib/image/compose.ts: input JSON, validation, digests, argv. No Nix here. */
import * as path from "path";
import {
  expressionDigest,
  ImageEntry,
  nixBuildArgv,
  nixInput,
  NodeImageRequest,
  nodeImageDigest,
  validateRequest,
  withSshOwnership,
} from "../../lib/image/compose";

const ROOT = path.resolve(__dirname, "../..");
const art = (name: string) => ({ storePath: `/nix/store/${"a".repeat(32)}-${name}`, sha256: "b".repeat(64) });
const f = (p: string, content: string, mode = 0o644): ImageEntry => ({ path: p, content, mode, uid: 0, gid: 0 });

function req(files: ImageEntry[]): NodeImageRequest {
  return { name: "n1", hardware: "qemu-amd64", arch: "x86_64", role: "agent", artifacts: { rootfs: art("rootfs.tar.gz"), kernel: art("vmlinuz") }, files };
}

test("authorized_keys: owned by the home's user by name, .ssh directories 0700", () => {
  const out = withSshOwnership([f("/home/deploy/.ssh/authorized_keys", "k\n", 0o600), f("/root/.ssh/authorized_keys", "k\n", 0o600)]);
  expect(out).toContainEqual({ path: "/home/deploy/.ssh/authorized_keys", content: "k\n", mode: 0o600, uid: "deploy", gid: "deploy" });
  expect(out).toContainEqual({ path: "/home/deploy/.ssh", directory: true, mode: 0o700, uid: "deploy", gid: "deploy" });
  expect(out).toContainEqual({ path: "/root/.ssh", directory: true, mode: 0o700, uid: 0, gid: 0 });
  // a caller's own directory entry wins
  const own = withSshOwnership([f("/home/x/.ssh/authorized_keys", "k\n"), { path: "/home/x/.ssh", directory: true, mode: 0o750, uid: 5, gid: 5 }]);
  expect(own.filter((e) => e.path === "/home/x/.ssh")).toEqual([{ path: "/home/x/.ssh", directory: true, mode: 0o750, uid: 5, gid: 5 }]);
});

test("nixInput: octal mode strings, artifact names from store paths, files keyed by path", () => {
  const j = nixInput(req([f("/etc/hostname", "n1\n"), f("/etc/rancher/k3s/config.yaml", "a: 1\n", 0o600)])) as Record<string, any>;
  expect(j.files["/etc/rancher/k3s/config.yaml"]).toEqual({ content: "a: 1\n", mode: "0600", uid: 0, gid: 0 });
  expect(j.artifacts.rootfs).toEqual({ name: "rootfs.tar.gz", sha256: "b".repeat(64), storePath: `/nix/store/${"a".repeat(32)}-rootfs.tar.gz` });
  expect(j.artifacts.wic).toBeNull();
  expect(j.headroomPercent).toBe(30);
});

test("validateRequest names each problem", () => {
  const p = validateRequest(
    {
      ...req([f("etc/x", ""), f("/etc/a b", ""), f("/etc/ok", "a\0b"), f("/etc/ok2", "", 0o10000), { ...f("/etc/o", ""), uid: "Bad Name" }]),
      artifacts: { rootfs: { storePath: "/tmp/x", sha256: "XYZ" }, kernel: art("k") },
    },
    [],
  );
  expect(p.join("\n")).toMatch(/artifact rootfs store path "\/tmp\/x" is not a \/nix\/store path/);
  expect(p.join("\n")).toMatch(/artifact rootfs sha256 must be 64 lowercase hex/);
  expect(p.join("\n")).toMatch(/file path "etc\/x" must be absolute/);
  expect(p.join("\n")).toMatch(/file path "\/etc\/a b"/);
  expect(p.join("\n")).toMatch(/\/etc\/ok contains a NUL byte/);
  expect(p.join("\n")).toMatch(/\/etc\/ok2: mode must be/);
  expect(p.join("\n")).toMatch(/uid must be 0\.\.65535 or a user\/group name/);
  expect(validateRequest(req([f("/etc/rancher/k3s/config.yaml", "agent-token: x\n")]))[0]).toMatch(/sets "agent-token"/);
  expect(validateRequest(req([f("/etc/rancher/k3s/config.yaml", "token-file: /run/t\n")]))).toEqual([]);
});

test("digests: file order does not matter, content and expressions do", () => {
  const a = req([f("/etc/a", "1"), f("/etc/b", "2")]);
  const b = req([f("/etc/b", "2"), f("/etc/a", "1")]);
  const e = expressionDigest(ROOT);
  expect(e).toMatch(/^[0-9a-f]{64}$/);
  expect(nodeImageDigest(a, e, "host")).toBe(nodeImageDigest(b, e, "host"));
  expect(nodeImageDigest(a, e, "host")).not.toBe(nodeImageDigest(req([f("/etc/a", "1"), f("/etc/b", "3")]), e, "host"));
  expect(nodeImageDigest(a, e, "host")).not.toBe(nodeImageDigest(a, "0".repeat(64), "host"));
  expect(nodeImageDigest(a, e, "host")).not.toBe(nodeImageDigest(a, e, { nixpkgs: "/nix/store/x-source" }));
});

test("nix build argv: json, no link, offline, host mode flags, nixpkgs path", () => {
  const host = nixBuildArgv("/c/in.json", { projectDir: "/p", pkgs: "host" });
  expect(host).toEqual([
    "nix",
    "build",
    "--extra-experimental-features",
    "nix-command",
    "--json",
    "--no-link",
    "--print-build-logs",
    "--option",
    "substituters",
    "",
    "--option",
    "sandbox",
    "false",
    "-f",
    "/p/nix/node.nix",
    "--argstr",
    "inputFile",
    "/c/in.json",
    "--argstr",
    "pkgsSource",
    "host",
  ]);
  const real = nixBuildArgv("/c/in.json", { projectDir: "/p", pkgs: { nixpkgs: "/nix/store/abc-source" }, offline: false });
  expect(real).not.toContain("substituters");
  expect(real).not.toContain("sandbox");
  expect(real.slice(-2)).toEqual(["nixpkgs", "/nix/store/abc-source"]);
});
