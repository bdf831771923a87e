# TEST-ONLY package set: the slice of nixpkgs that nix/image.nix uses, made from the build host's own
# tools with plain `builtins.derivation` (no nixpkgs is reachable on the test machines).
#
# Contract:
#   - runCommand name env script: a derivation run by the host's /bin/sh with PATH = the `bin` dirs
#     of env.nativeBuildInputs; every other env attribute is passed as in nixpkgs (passAsFile included,
#     since that is a Nix feature, not a nixpkgs one).
#   - requireFile { name, sha256 | hash, hashMode ? "flat" }: a fixed-output derivation; its store path is
#     the one `nix-store --add-fixed sha256 FILE` gives for a file called `name`, so artifacts added that
#     way are used as they are and a missing one fails with the message.
#   - coreutils, gnutar, e2fsprogs, ...: derivations whose bin/ holds symlinks to host binaries.
#
# These derivations reach outside the store (/bin/sh, /usr/bin/...): build them with the sandbox OFF
# (`--option sandbox false`; Debian's nix-bin ships `sandbox = false`). Their store paths do not change
# when the host tools are upgraded: an upgrade does not trigger rebuilds. Never use this for real images.
{ system ? builtins.currentSystem }:

let
  hostPath = "/usr/sbin:/usr/bin:/sbin:/bin";

  # A package whose bin/ links the named host programs (first match in /usr/sbin /usr/bin /sbin /bin).
  hostTool = name: programs: builtins.derivation {
    inherit system;
    name = "host-${name}";
    builder = "/bin/sh";
    PATH = hostPath;
    inherit programs;
    args = [
      "-eu"
      "-c"
      ''
        mkdir -p "$out/bin"
        for p in $programs; do
          found=
          for d in /usr/sbin /usr/bin /sbin /bin; do
            if [ -x "$d/$p" ]; then ln -s "$d/$p" "$out/bin/$p"; found=1; break; fi
          done
          [ -n "$found" ] || { echo "host-pkgs: $p is not installed on this host" >&2; exit 1; }
        done
      ''
    ];
  };

  # fakeroot finds faked and its library relative to its own path: call the host script via a wrapper.
  fakeroot = builtins.derivation {
    inherit system;
    name = "host-fakeroot";
    builder = "/bin/sh";
    PATH = hostPath;
    args = [
      "-eu"
      "-c"
      ''
        [ -x /usr/bin/fakeroot ] || { echo "host-pkgs: fakeroot is not installed on this host" >&2; exit 1; }
        mkdir -p "$out/bin"
        printf '#!/bin/sh\nPATH="$PATH:/usr/bin:/bin" exec /usr/bin/fakeroot "$@"\n' > "$out/bin/fakeroot"
        chmod 0555 "$out/bin/fakeroot"
      ''
    ];
  };

  runCommand = name: env: script:
    let
      inputs = (env.nativeBuildInputs or [ ]) ++ (env.buildInputs or [ ]);
      rest = removeAttrs env [ "nativeBuildInputs" "buildInputs" ];
    in
    builtins.derivation (rest // {
      inherit name system;
      builder = "/bin/sh";
      args = [ "-eu" (builtins.toFile "${name}-builder.sh" script) ];
      PATH = builtins.concatStringsSep ":" (map (p: "${p}/bin") inputs);
    });

  requireFile = { name, sha256 ? null, hash ? null, hashMode ? "flat", message ? null, ... }:
    builtins.derivation ({
      inherit name system;
      builder = "/bin/sh";
      PATH = hostPath;
      outputHashMode = hashMode;
      outputHash = if hash != null then hash else sha256;
      msg = if message != null then message else
        "${name} is not in the Nix store. Add it with: nix-store --add-fixed sha256 <path>/${name}";
      args = [ "-c" "echo \"$msg\" >&2; exit 1" ];
    } // (if hash != null then { } else { outputHashAlgo = "sha256"; }));
in
{
  inherit system runCommand requireFile fakeroot;
  runtimeShell = "/bin/sh";
  coreutils = hostTool "coreutils" "basename cat chmod cp cut date dd head id ln ls mkdir mv printf rm sha256sum sort stat tail tr truncate wc od";
  findutils = hostTool "findutils" "find xargs";
  gnugrep = hostTool "gnugrep" "grep";
  gnused = hostTool "gnused" "sed";
  gawk = hostTool "gawk" "awk";
  gnutar = hostTool "gnutar" "tar";
  gzip = hostTool "gzip" "gzip";
  xz = hostTool "xz" "xz";
  zstd = hostTool "zstd" "zstd";
  e2fsprogs = hostTool "e2fsprogs" "mkfs.ext4 mke2fs debugfs dumpe2fs e2fsck";
  util-linux = hostTool "util-linux" "partx getopt";
  python3 = hostTool "python3" "python3";
}
