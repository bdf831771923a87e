# Composes one node image from ISAR artifacts and the node's rendered files.
#
# Contract: a pure function of its arguments. Same arguments (and the same `pkgs`) give the same
# derivation, hence the same store path; the builder (builder/compose-image.sh) makes the output bytes
# reproducible too (no build time anywhere, fixed UUID/hash seed, fixed inode times).
#
#   pkgs        package set providing runCommand, runtimeShell, coreutils, findutils, gnugrep, gnused,
#               gawk, gnutar, gzip, xz, zstd, e2fsprogs, util-linux, fakeroot, python3
#               (nixpkgs, or nix/testing/host-pkgs.nix)
#   name        node name (RFC 1123 label); arch "arm64" | "x86_64"; role "server" | "agent"
#   hardware    hardware kind, recorded in metadata.json
#   rootfs      ISAR rootfs tarball (derivation or store path; .tar, .tar.gz, .tar.xz, .tar.zst)
#   kernel      kernel image, copied to boot/Image (arm64) or boot/bzImage (x86_64)
#   initramfs   optional, copied to boot/initrd.img
#   dtbs        list of device trees, copied to boot/dtbs/<name without store hash>
#   wic         optional disk image (.wic, .wic.xz, .wic.zst, .wic.gz): disk.img gets the files injected
#   wicRootPartition  partition number of the root file system in the .wic (default: the only ext2/3/4
#               partition holding /etc)
#   files       attrset: absolute path -> content string (mode 0644, root), or
#               { content; mode ? "0644"; uid ? 0; gid ? 0; } or { directory = true; mode ? "0755"; uid; gid; }
#               uid/gid: numbers, or names resolved in the image's /etc/passwd and /etc/group
#               Contents are text and MUST NOT hold secrets: they end up in the world-readable store.
#               /etc/k3s-role (from `role`; a given one must agree) and /etc/isar-k3s/image-id are added here.
#   headroomPercent   free space added to rootfs.ext4 over its content (default 30)
#   sourceDateEpoch   every timestamp the builder writes (default 1)
{ pkgs
, name
, arch
, role
, hardware ? "unknown"
, rootfs
, kernel
, initramfs ? null
, dtbs ? [ ]
, wic ? null
, wicRootPartition ? null
, files
, headroomPercent ? 30
, sourceDateEpoch ? 1
}:

let
  inherit (builtins) attrNames concatStringsSep hashString length match stringLength substring toJSON throw;

  kernelNames = { arm64 = "Image"; x86_64 = "bzImage"; };

  check = cond: msg: if cond then true else throw "nix/image.nix (node ${name}): ${msg}";

  # A store path's name without the "<32-char hash>-" prefix.
  storeName = p:
    let s = baseNameOf (toString p);
    in if match "[0-9a-df-np-sv-z]{32}-.+" s != null then substring 33 (stringLength s) s else s;

  # \xNN is how systemd spells other characters in unit names (var-lib-data\x2d1.mount).
  safePathRe = "(/([A-Za-z0-9._@+,=:-]|\\\\x[0-9a-f][0-9a-f])+)+";
  pathOk = p:
    match safePathRe p != null
    && match "(.*/)?\\.\\.?(/.*)?" p == null;

  modeOk = m: match "0?[0-7]{3,4}" m != null;
  perm4 = m: let t = if stringLength m == 3 then "0${m}" else if stringLength m == 5 then substring 1 4 m else m; in t;
  # Owners: a number 0..65535, or a user/group name looked up in the image's own /etc/passwd, /etc/group.
  idOk = n: (builtins.isInt n && n >= 0 && n < 65536) || (builtins.isString n && match "[a-z_][a-z0-9_-]{0,31}" n != null);

  normalize = path: spec:
    let
      e = if builtins.isString spec then { content = spec; } else spec;
      isDir = e.directory or false;
      mode = e.mode or (if isDir then "0755" else "0644");
      uid = e.uid or 0;
      gid = e.gid or 0;
    in
    assert check (pathOk path) "file path '${path}' must be absolute and use only A-Z a-z 0-9 . _ @ + , = : - / and systemd's \\xNN escapes (no '.' or '..' components)";
    assert check (path != "/etc/isar-k3s/image-id") "/etc/isar-k3s/image-id is written by the builder; remove it from files";
    assert check (builtins.isString mode && modeOk mode) "mode of '${path}' must be an octal string like \"0600\"";
    assert check (idOk uid && idOk gid) "uid/gid of '${path}' must be integers 0..65535 or user/group names";
    assert check (isDir || builtins.isString (e.content or null)) "'${path}' needs a string `content` (or directory = true)";
    {
      inherit path uid gid isDir;
      perm = perm4 mode;
      fullMode = (if isDir then "04" else "010") + perm4 mode;
      content = if isDir then null else e.content;
    };

  # The role marker comes from `role`, so it can never disagree with it.
  roleMarker = "${role}\n";
  givenMarker = files."/etc/k3s-role" or roleMarker;
  allFiles = files // { "/etc/k3s-role" = { content = roleMarker; mode = "0644"; }; };
  entries = map (p: normalize p allFiles.${p}) (attrNames allFiles); # attrNames is sorted: parents first

  # Each file's content becomes its own store file; the builder reads it from there (never from shell text).
  sourceOf = e: builtins.toFile "node-file" e.content;

  manifest = concatStringsSep "" (map
    (e:
      if e.isDir then "dir ${e.fullMode} ${toString e.uid} ${toString e.gid} - ${e.path}\n"
      else "file ${e.fullMode} ${toString e.uid} ${toString e.gid} ${sourceOf e} ${e.path}\n")
    entries);

  extraBytes = builtins.foldl' (acc: e: acc + 4096 + (if e.isDir then 0 else stringLength e.content)) 0 entries;

  dtbList = concatStringsSep "" (map (d: "${d} ${storeName d}\n") dtbs);

  artifactInfo = a: if a == null then null else { name = storeName a; storePath = toString a; };

  metadataBody = toJSON {
    inherit name arch role hardware imageId;
    boot = {
      kernel = kernelNames.${arch};
      initramfs = if initramfs == null then null else "initrd.img";
      dtbs = map storeName dtbs;
    };
    artifacts = {
      rootfs = artifactInfo rootfs;
      kernel = artifactInfo kernel;
      initramfs = artifactInfo initramfs;
      dtbs = map artifactInfo dtbs;
      wic = artifactInfo wic;
    };
    files = map
      (e: {
        inherit (e) path uid gid;
        mode = e.perm;
        type = if e.isDir then "directory" else "file";
        sha256 = if e.isDir then null else hashString "sha256" e.content;
      })
      entries;
  };

  # Fixed file system UUID / htree hash seed derived from the node name: stable across rebuilds,
  # different between nodes.
  h = hashString "sha256" "isar-k3s-rootfs:${name}";
  fsUuid = "${substring 0 8 h}-${substring 8 4 h}-4${substring 13 3 h}-8${substring 17 3 h}-${substring 20 12 h}";

  # Stable image id: a hash of everything the output depends on (inputs, expressions, tools). Not the
  # output path's own hash: Nix may build at a scratch path and rewrite it afterwards (--check, CA).
  tools = with pkgs; [ coreutils findutils gnugrep gnused gawk gnutar gzip xz zstd e2fsprogs util-linux fakeroot python3 ];
  imageId = substring 0 32 (hashString "sha256" (builtins.unsafeDiscardStringContext (toJSON {
    inherit name arch role hardware manifest dtbList headroomPercent sourceDateEpoch wicRootPartition;
    contents = map (e: e.content) entries;
    artifacts = map (a: if a == null then null else toString a) [ rootfs kernel initramfs wic ];
    expressions = map (f: builtins.hashFile "sha256" f) [ ./image.nix ./builder/compose-image.sh ./builder/ext4-fix-times.awk ./builder/tar-xattrs.py ./builder/mke2fs.conf ];
    tools = map toString tools;
    shell = toString pkgs.runtimeShell;
  })));

  dtbNames = map storeName dtbs;
  uniq = l: builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ] l;
in
assert check (match "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?" name != null) "name must be an RFC 1123 label";
assert check (kernelNames ? ${arch}) "arch must be arm64 or x86_64, got '${arch}'";
assert check (role == "server" || role == "agent") "role must be server or agent, got '${role}'";
assert check ((if builtins.isString givenMarker then givenMarker else givenMarker.content or "") == roleMarker) "files./etc/k3s-role disagrees with role '${role}'";
assert check (length (uniq dtbNames) == length dtbNames) "two dtbs share a file name";
assert check (wicRootPartition == null || builtins.isInt wicRootPartition) "wicRootPartition must be an integer";
assert check (builtins.isInt headroomPercent && headroomPercent >= 0) "headroomPercent must be a non-negative integer";
pkgs.runCommand "node-image-${name}"
{
  nativeBuildInputs = tools;
  inherit rootfs kernel manifest metadataBody dtbList fsUuid imageId;
  nodeName = name;
  kernelName = kernelNames.${arch};
  initramfs = if initramfs == null then "" else initramfs;
  wic = if wic == null then "" else wic;
  wicRootPartition = if wicRootPartition == null then "" else toString wicRootPartition;
  extraBytes = toString extraBytes;
  headroomPercent = toString headroomPercent;
  SOURCE_DATE_EPOCH = toString sourceDateEpoch;
  shell = pkgs.runtimeShell;
  fixTimesAwk = ./builder/ext4-fix-times.awk;
  tarXattrsPy = ./builder/tar-xattrs.py;
  mke2fsConf = ./builder/mke2fs.conf;
  passAsFile = [ "manifest" "metadataBody" "dtbList" ];
}
''
  ${pkgs.runtimeShell} -eu ${./builder/compose-image.sh}
''
