#!/usr/bin/env bash
# Make the dev stack's ISAR-like deploy outputs: small, synthetic, deterministic stand-ins for what an
# ISAR build writes to build/tmp/deploy/images/<MACHINE>/ (names per ISAR's image.bbclass:
# <image>-<distro>-<machine>.<type>, kernel -vmlinux/-vmlinuz, initrd -initrd.img, DTBs by basename).
# The outputs are committed (dev/isar/...), so Pulumi.dev.yaml's pins stay valid; after changing this
# script, run it and then `npm run pin -- --stack dev` (ADR 001's flow) to update the pins.
#
# Reproducible ext4: fixed UUID and hash seed, E2FSPROGS_FAKE_TIME, all mtimes 0, and 128-byte inodes
# (256-byte inodes carry a creation time that mke2fs -d takes from the clock), ctime zeroed by debugfs.
# .wic layout: MBR, p1 = 4 MiB ext4 "boot" (kernel, dtbs), p2 = ext4 "root" (the rootfs).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=dev/isar/build/tmp/deploy/images
IMAGE=isar-image-base
DISTRO=debian-trixie
export E2FSPROGS_FAKE_TIME=1 SOURCE_DATE_EPOCH=0

work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

det_tar() { # dir out.tar.gz
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu -C "$1" -cf - . | gzip -n -9 > "$2"
}
blob() { # label size -> deterministic bytes on stdout
  head -c "$2" < <(openssl enc -aes-256-ctr -nosalt -pass "pass:isar-k3s-dev-$1" -md sha256 -in /dev/zero 2>/dev/null)
}
mkext4() { # dir img size_kib label uuid
  rm -f "$2"
  find "$1" -exec touch -h -d @0 {} +
  mkfs.ext4 -q -F -b 1024 -I 128 -L "$4" -U "$5" -E root_owner=0:0,hash_seed=6f1b3a5e-0000-4000-8000-000000000001,lazy_itable_init=0,nodiscard -O ^has_journal,^metadata_csum -T small -d "$1" "$2" "$3" 2>/dev/null
  # mke2fs -d copies each source file's ctime, which no tool can set: zero it in every inode.
  local n; n=$(dumpe2fs -h "$2" 2>/dev/null | awk -F: '/^Inode count/ {gsub(/ /, "", $2); print $2}')
  seq 1 "$n" | sed 's/.*/sif <&> ctime 0/' | E2FSPROGS_FAKE_TIME=1 debugfs -w -f - "$2" >/dev/null 2>&1
}

for machine in turing-rk1 rpi-arm64-v8 jetson-orin-nano; do
  case $machine in
    turing-rk1) arch=arm64; kernel=vmlinux; dtb=rk3588-turing-rk1.dtb; wic=1 ;;
    rpi-arm64-v8) arch=arm64; kernel=vmlinux; dtb=bcm2711-rpi-cm4.dtb; wic=1 ;;
    jetson-orin-nano) arch=arm64; kernel=vmlinux; dtb=tegra234-p3768-0000+p3767-0005-nv.dtb; wic=0 ;;
  esac
  base="$IMAGE-$DISTRO-$machine"
  d="$OUT/$machine"; mkdir -p "$d"
  r="$work/$machine-rootfs"; mkdir -p "$r"/{etc,root,home,tmp,var/lib,usr/lib,usr/local/bin,boot,etc/rancher/k3s,etc/systemd/network}
  chmod 700 "$r/root"; chmod 1777 "$r/tmp"
  printf 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nNAME="Debian GNU/Linux"\nVERSION_ID="13"\nVERSION_CODENAME=trixie\nID=debian\n' > "$r/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$r/etc/os-release"
  printf '%s dev-1 (%s, %s)\n' "$IMAGE" "$machine" "$arch" > "$r/etc/isar-version"
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
  printf 'root:x:0:\n' > "$r/etc/group"
  printf 'isar\n' > "$r/etc/hostname"
  det_tar "$r" "$d/$base.tar.gz"
  blob "$machine-kernel" 262144 > "$d/$base-$kernel"
  blob "$machine-initrd" 131072 | gzip -n > "$d/$base-initrd.img"
  blob "$machine-dtb" 4096 > "$d/$dtb"
  if [ "$wic" = 1 ]; then
    b="$work/$machine-boot"; mkdir -p "$b"; cp "$d/$base-$kernel" "$b/Image"; cp "$d/$dtb" "$b/"
    mkext4 "$b" "$work/boot.img" 4096 boot 0b0e0000-0000-4000-8000-000000000001
    mkext4 "$r" "$work/root.img" 12288 root 0b0e0000-0000-4000-8000-000000000002
    img="$d/$base.wic"
    rm -f "$img"; truncate -s $(( (1 + 4 + 12) * 1024 * 1024 + 512 * 34 )) "$img"
    printf 'label: dos\nlabel-id: 0x15a4c3e0\nstart=2048, size=8192, type=83, bootable\nstart=10240, size=24576, type=83\n' | sfdisk -q "$img"
    dd if="$work/boot.img" of="$img" bs=512 seek=2048 conv=notrunc status=none
    dd if="$work/root.img" of="$img" bs=512 seek=10240 conv=notrunc status=none
  fi
  (cd "$d" && rm -f "$base.sha256sums" && sha256sum -- * > "$base.sha256sums.tmp" && mv "$base.sha256sums.tmp" "$base.sha256sums")
done
find "$OUT" -type f | sort | xargs ls -l | awk '{print $5, $9}'
