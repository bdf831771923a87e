/**
 * The flake path for users with nixpkgs, checked without nixpkgs: a copy of flake.nix + nix/ is locked
 * with its `nixpkgs` input overridden by a local stand-in flake (nix/testing/host-pkgs.nix behind
 * legacyPackages and default.nix), then an image is built through `lib.<system>.mkNodeImage` and the
 * locked `lib.nixpkgsPath` is fed to compose's { nixpkgs } mode. Real `nix flake lock`, real builds.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { composeNodeImage } from "../../lib/image/compose";
import { addArtifact, debugfs, makeRootTree, nodeFiles, sh } from "./fixtures";

jest.setTimeout(120_000);

const ROOT = path.resolve(__dirname, "../..");
const NIX = ["nix", "--extra-experimental-features", "nix-command flakes", "--option", "substituters", ""];
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "image-flake-"));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test("flake.nix: lock with a nixpkgs override, build via lib.<system>.mkNodeImage, compose with lib.nixpkgsPath", async () => {
  const system = sh(["nix", "eval", "--extra-experimental-features", "nix-command", "--impure", "--raw", "--expr", "builtins.currentSystem"]).trim();
  const fake = path.join(tmp, "fake-nixpkgs");
  fs.mkdirSync(fake);
  fs.copyFileSync(path.join(ROOT, "nix/testing/host-pkgs.nix"), path.join(fake, "host-pkgs.nix"));
  fs.writeFileSync(path.join(fake, "flake.nix"), `{ outputs = { self }: { legacyPackages.${system} = import ./host-pkgs.nix { system = "${system}"; }; }; }\n`);
  fs.writeFileSync(path.join(fake, "default.nix"), `{ system ? builtins.currentSystem, ... }: import ./host-pkgs.nix { inherit system; }\n`);

  const flake = path.join(tmp, "flake");
  fs.mkdirSync(flake);
  fs.copyFileSync(path.join(ROOT, "flake.nix"), path.join(flake, "flake.nix"));
  sh(["cp", "-r", path.join(ROOT, "nix"), path.join(flake, "nix")]);
  sh([...NIX, "flake", "lock", "--override-input", "nixpkgs", `path:${fake}`, `path:${flake}`]);
  const lock = JSON.parse(fs.readFileSync(path.join(flake, "flake.lock"), "utf8"));
  expect(lock.nodes.nixpkgs.locked.type).toBe("path");

  const nixpkgsPath = sh([...NIX, "eval", "--raw", `path:${flake}#lib.nixpkgsPath`]).trim();
  expect(nixpkgsPath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
  expect(fs.existsSync(path.join(nixpkgsPath, "host-pkgs.nix"))).toBe(true);

  // small artifacts
  const root = path.join(tmp, "root");
  makeRootTree(root, `f${process.pid}`);
  const tarball = path.join(tmp, `rootfs-f${process.pid}.tar.gz`);
  sh(["tar", "--xattrs", "--xattrs-include=*", "--sort=name", "--numeric-owner", "--mtime=@1", "-czf", tarball, "-C", root, "."]);
  const kernelFile = path.join(tmp, `vmlinuz-f${process.pid}`);
  fs.writeFileSync(kernelFile, "kernel\n".repeat(1000));
  const rootfs = await addArtifact(tarball);
  const kernel = await addArtifact(kernelFile);

  // through the flake's mkNodeImage (the function other flakes call)
  const expr =
    `let f = builtins.getFlake "path:${flake}"; in f.lib.${system}.mkNodeImage { ` +
    `name = "flk"; arch = "x86_64"; role = "server"; ` +
    `rootfs = builtins.storePath "${rootfs.storePath}"; kernel = builtins.storePath "${kernel.storePath}"; ` +
    `files = { "/etc/hostname" = "flk\\n"; }; }`;
  const out = JSON.parse(sh([...NIX, "build", "--json", "--no-link", "--impure", "--expr", expr]))[0].outputs.out as string;
  expect(debugfs(path.join(out, "rootfs.ext4"), "cat /etc/hostname")).toBe("flk\n");
  expect(debugfs(path.join(out, "rootfs.ext4"), "cat /etc/k3s-role")).toBe("server\n");
  expect(fs.existsSync(path.join(out, "boot/bzImage"))).toBe(true);

  // compose in { nixpkgs } mode with the locked path (what NodeImage does with pkgsSource "nixpkgs")
  const r = await composeNodeImage(
    { name: "flk2", hardware: "qemu-amd64", arch: "x86_64", role: "agent", artifacts: { rootfs, kernel }, files: nodeFiles("flk2", { role: "agent" }) },
    { projectDir: ROOT, cacheDir: path.join(tmp, "cache"), pkgs: { nixpkgs: nixpkgsPath } },
  );
  expect(debugfs(path.join(r.storePath, "rootfs.ext4"), "cat /etc/hostname")).toBe("flk2\n");
  expect(debugfs(path.join(r.storePath, "rootfs.ext4"), "ea_list /bin/ping")).toContain("security.capability");
});
