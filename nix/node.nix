# Entry point used by lib/image/compose.ts: one node image from a JSON input file.
#
#   nix build --json --no-link -f nix/node.nix --argstr inputFile /abs/node.json \
#     [--argstr pkgsSource host | --argstr nixpkgs /nix/store/...-source]
#
# Contract: the JSON (written by compose.ts, never holding secrets) is
#   { name, arch, role, hardware, wicRootPartition?, headroomPercent?,
#     artifacts: { rootfs, kernel, initramfs?, dtbs: [..], wic? }   each { name, sha256 (hex), storePath? },
#     files: { "/abs/path": { content, mode?, uid?, gid? } | { directory: true, mode?, uid?, gid? } } }
# Artifacts are referenced as fixed-output `requireFile`s: their store paths are exactly those of
# `nix-store --add-fixed sha256 <file named name>`, so nothing is copied or rebuilt; an artifact missing
# from the store fails the build naming it; a `storePath` that disagrees with (name, sha256) is an error.
# pkgsSource "nixpkgs" (default) imports `nixpkgs` (a path, e.g. the flake's locked input, see README.md)
# or <nixpkgs>; "host" uses the test-only nix/testing/host-pkgs.nix (sandbox off).
{ inputFile
, pkgsSource ? "nixpkgs"
, nixpkgs ? null
, system ? builtins.currentSystem
}:

let
  input = builtins.fromJSON (builtins.readFile inputFile);

  pkgs =
    if pkgsSource == "host" then import ./testing/host-pkgs.nix { inherit system; }
    else if pkgsSource == "nixpkgs" then import (if nixpkgs == null then <nixpkgs> else nixpkgs) { inherit system; }
    else throw "nix/node.nix: pkgsSource must be \"nixpkgs\" or \"host\", got \"${pkgsSource}\"";

  artifact = role: a:
    if a == null then null else
    let
      drv = pkgs.requireFile {
        inherit (a) name sha256;
        message = ''
          ISAR artifact ${role} '${a.name}' (sha256 ${a.sha256}) is not in the Nix store.
          Add it with: nix-store --add-fixed sha256 <dir>/${a.name}
        '';
      };
    in
    if (a.storePath or null) != null && a.storePath != drv.outPath
    then throw "nix/node.nix: artifact ${role} '${a.name}': store path ${a.storePath} does not match name+sha256 (expected ${drv.outPath}); re-add the file with nix-store --add-fixed sha256"
    else drv;

  arts = input.artifacts;
in
import ./image.nix {
  inherit pkgs;
  inherit (input) name arch role files;
  hardware = input.hardware or "unknown";
  rootfs = artifact "rootfs" arts.rootfs;
  kernel = artifact "kernel" arts.kernel;
  initramfs = artifact "initramfs" (arts.initramfs or null);
  dtbs = map (artifact "dtb") (arts.dtbs or [ ]);
  wic = artifact "wic" (arts.wic or null);
  wicRootPartition = input.wicRootPartition or null;
  headroomPercent = input.headroomPercent or 30;
}
