# Builder for nix/image.nix: composes one node image from ISAR artifacts and the node's files.
#
# Contract (POSIX sh, run with `sh -eu`; every input comes from the environment set by image.nix,
# never spliced into this text):
#   $out/rootfs.ext4     ext4 made with `mke2fs -d` from the unpacked rootfs tarball, then the node files
#                        written into it with debugfs (owners/modes from the manifest), sized from content
#                        plus $headroomPercent %; byte-for-byte reproducible: fixed UUID and hash seed,
#                        E2FSPROGS_FAKE_TIME, debugfs set_current_time, and every inode's atime/ctime reset
#                        to $SOURCE_DATE_EPOCH (mke2fs 1.47.0 copies them from the unpacked tree).
#   $out/boot/           kernel as $kernelName, initrd.img, dtbs/<name>.
#   $out/disk.img        only when $wic is set: the .wic with the same files injected into its root
#                        partition (the one ext2/3/4 partition holding /etc, or $wicRootPartition).
#   $out/metadata.json   no build time; imageId = $imageId (a hash of all inputs, computed by image.nix).
#   $out/SHA256SUMS      sha256 of every other file of $out (sha256sum format, paths relative to $out).
# The image id is also written to /etc/isar-k3s/image-id in both file systems.
#
# Manifest ($manifestPath), one entry per line, fields separated by single spaces, validated by image.nix
# (paths match [A-Za-z0-9._@+,=:/-], no "." or ".." components):
#   file <full octal mode> <uid> <gid> <source store path> <destination>
#   dir  <full octal mode> <uid> <gid> - <destination>
# Writes go through debugfs, which resolves paths inside the image: a symlink in the rootfs can never
# redirect a write to the build host.

set -eu

die() { echo "compose-image: $*" >&2; exit 1; }
t0=$(date +%s.%N)
step() { echo "compose-image: $* (at $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)" >&2; }

work=$(pwd)/compose-work
mkdir -p "$work"
epoch=${SOURCE_DATE_EPOCH:-1}
export E2FSPROGS_FAKE_TIME="$epoch"
export MKE2FS_CONFIG="$mke2fsConf"
mkdir -p "$out/boot"

# ---- the full manifest: the node's entries plus the image id ---------------------------------------
printf '%s\n' "$imageId" > "$work/image-id"
manifest="$work/manifest"
cat "$manifestPath" > "$manifest"
if ! grep -q ' /etc/isar-k3s$' "$manifest"; then
  printf 'dir 040755 0 0 - /etc/isar-k3s\n' >> "$manifest"
fi
printf 'file 0100644 0 0 %s /etc/isar-k3s/image-id\n' "$work/image-id" >> "$manifest"
cp "$manifest" "$manifest.source"

# debugfs script that writes the manifest into a file system. Missing ancestors are made by `mkdir`
# (debugfs: 0755, root, times = set_current_time); existing ones keep their mode and owner.
# `rm` first so an existing file (or a symlink in the base image) is replaced, not written through.
make_debugfs_script() {
  while read -r kind mode uid gid src dest; do
    parent=
    rest=${dest#/}
    while :; do
      case "$rest" in */*) ;; *) break ;; esac
      parent="$parent/${rest%%/*}"
      rest=${rest#*/}
      printf 'mkdir %s\n' "$parent" >> "$work/ancestors"
    done
    if [ "$kind" = dir ]; then
      printf 'mkdir %s\n' "$dest"
    else
      printf 'rm %s\nwrite %s %s\n' "$dest" "$src" "$dest"
    fi
    printf 'sif %s mode %s\nsif %s uid %s\nsif %s gid %s\n' "$dest" "$mode" "$dest" "$uid" "$dest" "$gid"
    for f in atime ctime mtime crtime; do printf 'sif %s %s @%s\n' "$dest" "$f" "$epoch"; done
  done < "$manifest"
}

# Check every manifest entry inside the file system: type, mode, owner and content.
verify_fs() {
  fs=$1
  while read -r kind mode uid gid src dest; do
    st=$(debugfs -R "stat $dest" "$fs" 2>&1) || die "debugfs stat $dest failed on $fs"
    perm=$(printf '%s' "$mode" | sed 's/^0*10*\(....\)$/\1/; s/^0*40*\(....\)$/\1/')
    if [ "$kind" = dir ]; then want="Type: directory"; else want="Type: regular"; fi
    printf '%s\n' "$st" | grep -q "$want" || die "$dest is not a $kind in $fs after writing it: $(printf '%s' "$st" | head -3)"
    printf '%s\n' "$st" | grep -q "Mode: *0*$perm " || die "$dest has the wrong mode in $fs (want $perm)"
    printf '%s\n' "$st" | grep -q "User: *$uid *Group: *$gid " || die "$dest has the wrong owner in $fs (want $uid:$gid)"
    if [ "$kind" = file ]; then
      a=$(debugfs -R "cat $dest" "$fs" 2>/dev/null | sha256sum | cut -d' ' -f1)
      b=$(sha256sum < "$src" | cut -d' ' -f1)
      [ "$a" = "$b" ] || die "$dest content differs from its source in $fs (file system full?)"
    fi
  done < "$manifest"
  e2fsck -fn "$fs" > "$work/fsck.log" 2>&1 || { tail -n 20 "$work/fsck.log" >&2; die "e2fsck found errors in $fs"; }
}

# Owner names in the manifest are looked up in the target file system's /etc/passwd and /etc/group.
resolve_owners() {
  fs=$1
  debugfs -R "cat /etc/passwd" "$fs" > "$work/passwd" 2>/dev/null || :
  debugfs -R "cat /etc/group" "$fs" > "$work/group" 2>/dev/null || :
  : > "$manifest.resolved"
  while read -r kind mode uid gid src dest; do
    case "$uid" in *[!0-9]*)
      name=$uid
      uid=$(awk -F: -v n="$name" '$1 == n { print $3; exit }' "$work/passwd")
      [ -n "$uid" ] || die "owner '$name' of $dest is not a user in /etc/passwd of $fs" ;;
    esac
    case "$gid" in *[!0-9]*)
      name=$gid
      gid=$(awk -F: -v n="$name" '$1 == n { print $3; exit }' "$work/group")
      [ -n "$gid" ] || die "group '$name' of $dest is not a group in /etc/group of $fs" ;;
    esac
    printf '%s %s %s %s %s %s\n' "$kind" "$mode" "$uid" "$gid" "$src" "$dest" >> "$manifest.resolved"
  done < "$manifest.source"
  cp "$manifest.resolved" "$manifest"
}

inject() {
  fs=$1
  resolve_owners "$fs"
  : > "$work/ancestors"
  make_debugfs_script > "$work/body.cmds"
  { printf 'set_current_time @%s\n' "$epoch"; awk '!seen[$0]++' "$work/ancestors"; cat "$work/body.cmds"; } > "$work/inject.cmds"
  debugfs -w -f "$work/inject.cmds" "$fs" > "$work/debugfs.log" 2>&1 || { tail -n 40 "$work/debugfs.log" >&2; die "debugfs failed on $fs"; }
  verify_fs "$fs"
}

# ---- rootfs.ext4 ----------------------------------------------------------------------------------
# Unpack and mke2fs: directly when the builder is root, else in one fakeroot session so owners, modes
# and device nodes from the tarball survive. Extended attributes (file capabilities, ACLs) are not
# unpacked: Nix's seccomp filter refuses setxattr in builds and mke2fs 1.47.0 cannot read fakeroot's
# fake ones. tar-xattrs.py reads them from the archive and debugfs sets them in the image instead, so
# both ways give the same bytes.
cat > "$work/mkfs.sh" <<'EOF'
set -eu
work=$1
mkdir "$work/root"
tar --no-xattrs -xf "$rootfs" -C "$work/root" --numeric-owner --same-permissions
# Size: every file rounded up to 4 KiB blocks + 256-byte inodes + the node files, then the headroom,
# then room for the journal mke2fs picks for that size, at least 8 MiB.
find "$work/root" -xdev -printf '%s\n' | awk -v extra="$extraBytes" -v pct="$headroomPercent" '
  { n++; b += int(($1 + 4095) / 4096) * 4096 + 256 }
  END {
    data = (b + extra + 65536) * (100 + pct) / 100
    j = data < 128 * 1048576 ? 4 * 1048576 : (data < 1024 * 1048576 ? 16 * 1048576 : (data < 2048 * 1048576 ? 32 * 1048576 : 64 * 1048576))
    total = data + j + 4 * 1048576
    if (total < 8 * 1048576) total = 8 * 1048576
    printf "%d %d\n", int(total / 4096), int(n * (100 + pct) / 100) + 256
  }' > "$work/size"
read -r blocks inodes < "$work/size"
mkfs.ext4 -q -F -b 4096 -N "$inodes" -T default -U "$fsUuid" \
  -E "hash_seed=$fsUuid,root_owner=0:0,lazy_itable_init=0,nodiscard" \
  -d "$work/root" "$out/rootfs.ext4" "$blocks" > "$work/mkfs.log" 2>&1 || { cat "$work/mkfs.log" >&2; exit 1; }
EOF
if [ "$(id -u)" = 0 ]; then
  "$shell" -eu "$work/mkfs.sh" "$work" || die "unpacking $rootfs or mkfs.ext4 failed"
else
  fakeroot -- "$shell" -eu "$work/mkfs.sh" "$work" || die "unpacking $rootfs or mkfs.ext4 failed"
fi
rm -rf "$work/root"

# Extended attributes from the archive, set by debugfs.
magic=$(od -A n -t x1 -N 6 "$rootfs" | tr -d ' \n')
case "$magic" in
  1f8b*) unpack="gzip -dc" ;;
  fd377a585a00) unpack="xz -dc" ;;
  28b52ffd*) unpack="zstd -q -dc" ;;
  *) unpack="cat" ;;
esac
$unpack "$rootfs" | python3 "$tarXattrsPy" "$work/xattrs" > "$work/xattrs.cmds" 2> "$work/xattrs.log" \
  || { cat "$work/xattrs.log" >&2; die "could not read extended attributes from $rootfs"; }
if [ -s "$work/xattrs.cmds" ]; then
  debugfs -w -f "$work/xattrs.cmds" "$out/rootfs.ext4" > "$work/ea.log" 2>&1 || { tail -n 40 "$work/ea.log" >&2; die "debugfs could not set extended attributes"; }
  if grep -q -i -E 'error|not found|invalid' "$work/ea.log"; then tail -n 40 "$work/ea.log" >&2; die "debugfs could not set some extended attributes"; fi
fi
step "rootfs unpacked, rootfs.ext4 made (builder uid $(id -u)), $(wc -l < "$work/xattrs.cmds") xattrs set"

# mke2fs copies atime/ctime from the unpacked tree (extraction time): reset them on every used inode.
dumpe2fs "$out/rootfs.ext4" 2>/dev/null | awk -v epoch="$epoch" -f "$fixTimesAwk" > "$work/times.cmds"
debugfs -w -f "$work/times.cmds" "$out/rootfs.ext4" > "$work/times.log" 2>&1 || { tail -n 40 "$work/times.log" >&2; die "debugfs could not reset inode times"; }
step "inode times reset"
inject "$out/rootfs.ext4"
step "node files written to rootfs.ext4 and verified"
rootfsBytes=$(stat -c %s "$out/rootfs.ext4")

# ---- boot/ ----------------------------------------------------------------------------------------
cp "$kernel" "$out/boot/$kernelName"
if [ -n "$initramfs" ]; then cp "$initramfs" "$out/boot/initrd.img"; fi
if [ -s "$dtbListPath" ]; then
  mkdir -p "$out/boot/dtbs"
  while read -r src base; do cp "$src" "$out/boot/dtbs/$base"; done < "$dtbListPath"
fi

# ---- disk.img from the .wic ----------------------------------------------------------------------
if [ -n "$wic" ]; then
  case "$wic" in
    *.xz) xz -dc "$wic" > "$out/disk.img" ;;
    *.zst) zstd -q -dc "$wic" > "$out/disk.img" ;;
    *.gz) gzip -dc "$wic" > "$out/disk.img" ;;
    *) cp "$wic" "$out/disk.img" ;;
  esac
  chmod 0644 "$out/disk.img"
  step "disk.img copied from $(basename "$wic")"
  partx -g -b -o NR,START,SECTORS "$out/disk.img" > "$work/parts" 2>"$work/partx.err" \
    || die "no partition table in $wic: $(cat "$work/partx.err")"
  : > "$work/roots"
  while read -r nr start sectors; do
    off=$((start * 512))
    magic=$(od -A n -t x1 -j $((off + 1080)) -N 2 "$out/disk.img" | tr -d ' \n')
    [ "$magic" = 53ef ] || continue
    if [ -n "$wicRootPartition" ]; then
      [ "$nr" = "$wicRootPartition" ] && echo "$nr $off" >> "$work/roots"
    elif debugfs -R "stat /etc" "$out/disk.img?offset=$off" 2>/dev/null | grep -q 'Type: directory'; then
      echo "$nr $off" >> "$work/roots"
    fi
  done < "$work/parts"
  count=$(wc -l < "$work/roots")
  if [ "$count" -ne 1 ]; then
    echo "partitions of $wic (number start sectors):" >&2; cat "$work/parts" >&2
    if [ -n "$wicRootPartition" ]; then die "partition $wicRootPartition of $wic is not an ext2/3/4 file system"; fi
    die "found $count ext2/3/4 partitions holding /etc in $wic; set wicRootPartition to the root partition number"
  fi
  read -r rootNr rootOff < "$work/roots"
  inject "$out/disk.img?offset=$rootOff"
  step "node files written to disk.img partition $rootNr and verified"
fi

# ---- metadata.json and SHA256SUMS -----------------------------------------------------------------
# metadataBody is a JSON object made by image.nix; prepend the fields only known here.
{
  printf '{"rootfsBytes":%s,' "$rootfsBytes"
  if [ -n "$wic" ]; then printf '"wicRootPartition":%s,' "$rootNr"; fi
  tail -c +2 "$metadataBodyPath"
  printf '\n'
} > "$out/metadata.json"

(cd "$out" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | while read -r f; do sha256sum "$f"; done) > "$work/sums"
mv "$work/sums" "$out/SHA256SUMS"
step "done"
