#!/usr/bin/env bash
# Set up everything isar-k3s needs on a fresh Debian machine (idempotent, fast when already done):
#   - Debian packages: the real tools the program drives and the tests run (nix, swupdate, kas,
#     OpenSSH, cpio, e2fsprogs, ...),
#   - npm dependencies (npm ci; brings Node 22 as node_modules/.bin/node),
#   - the real Turing Pi `tpi` CLI for the lab's BMC, from crates.io (scripts/tpi.sh, cached),
#   - the Pulumi CLI, Node.js language host and resource plugins, built from the Go module proxy and
#     ../shared/upstream (scripts/pulumi-toolchain.sh) and installed into .pulumi-home
#     (scripts/pulumi-plugins.sh), unless ISAR_K3S_SKIP_TOOLCHAIN=1; with ISAR_K3S_USE_SYSTEM_PULUMI=1
#     an official Pulumi on PATH is used and only missing plugins are installed.
#   - the Kubernetes components the lab runs (kube-apiserver, controller-manager, scheduler, kubectl,
#     kwok, etcd; scripts/k8s-components.sh, cached), unless ISAR_K3S_SKIP_K8S=1.
# Prints one line per step with its time.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every tool the program, the lab and the tests run (checked in a clean Debian root by .ci/run).
# nix-setup-systemd: Debian's way to create the nixbld group and build users and /etc/nix/nix.conf
# (sandbox = false); without it `nix build` fails with "the group 'nixbld' ... does not exist".
# nftables, sudo, systemd: the seed-003 baseline's files are checked with the real nft -c, visudo -c,
# sshd -T, systemd-sysusers/-tmpfiles/-analyze/-escape, and lab hosts run sudo for the deploy user.
APT_PACKAGES=(
  ca-certificates curl unzip git openssl python3 time fakeroot binutils
  nix-bin nix-setup-systemd swupdate kas
  openssh-server openssh-client
  cpio busybox-static e2fsprogs fdisk gdisk iproute2 util-linux xz-utils zstd procps psmisc
  nftables sudo systemd
)

step() { printf '[setup] %-40s' "$1"; }
took() { printf ' %ss\n' "$(( $(date +%s) - $1 ))"; }

t=$(date +%s); step "Debian packages"
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  printf ' installed: %s' "${missing[*]}"
fi
took "$t"

source scripts/lib/bootstrap.sh

# Nix as Debian sets it up (nix-setup-systemd): build users, and no sandbox, since the images are
# composed from the host's tools (nix/README.md). Checked, not assumed: a machine configured otherwise
# gets told what to change.
t=$(date +%s); step "Nix build users and nix.conf"
getent group nixbld >/dev/null || { echo; echo "setup: no 'nixbld' group: install nix-setup-systemd (it creates the Nix build users)" >&2; exit 1; }
if ! nix --extra-experimental-features nix-command show-config 2>/dev/null | grep -qx 'sandbox = false'; then
  echo; echo "setup: Nix sandboxing is on; the image builds use host tools and need 'sandbox = false' in /etc/nix/nix.conf (nix-setup-systemd writes it)" >&2; exit 1
fi
took "$t"

# The simulated lab's committed keys: git checks them out 0644, which ssh refuses for private keys.
chmod 0600 dev/keys/*_ed25519 dev/keys/*.key

t=$(date +%s); step "npm dependencies"
ensure_npm
stamp=node_modules/.isar-k3s-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  echo "$want" > "$stamp"
fi
took "$t"

NODE22="$PWD/node_modules/.bin"
"$NODE22/node" -e 'if (+process.versions.node.split(".")[0] < 22) { console.error("node_modules/.bin/node is not Node 22"); process.exit(1) }'

t=$(date +%s); step "tpi CLI (crates.io, cached)"
bash scripts/tpi.sh > .tpi-bin 2> .tpi-build.log || { echo; tail -n 40 .tpi-build.log; exit 1; }
took "$t"

if [ "${ISAR_K3S_SKIP_TOOLCHAIN:-0}" != 1 ] && [ "${ISAR_K3S_USE_SYSTEM_PULUMI:-0}" != 1 ]; then
  t=$(date +%s); step "Pulumi toolchain (Go-built, cached)"
  ensure_go
  rc=0
  bash scripts/pulumi-toolchain.sh --print-bin-dir > .pulumi-bin-dir 2> .pulumi-toolchain.log || rc=$?
  if [ "$rc" = 3 ]; then
    # Built what it could; a part's sources (../shared/upstream) are missing: say what to do.
    echo; sed -n '/NOT BUILT/,$p' .pulumi-toolchain.log
  elif [ "$rc" != 0 ]; then
    echo; tail -n 40 .pulumi-toolchain.log; exit 1
  fi
  took "$t"
fi
if [ "${ISAR_K3S_SKIP_TOOLCHAIN:-0}" != 1 ]; then
  # The resource plugins package.json pins, into this clone's PULUMI_HOME (.pulumi-home).
  t=$(date +%s); step "Pulumi resource plugins (PULUMI_HOME)"
  out=$(bash scripts/pulumi-plugins.sh 2>&1) || { echo; echo "$out"; }
  took "$t"
fi

if [ "${ISAR_K3S_SKIP_K8S:-0}" != 1 ]; then
  t=$(date +%s); step "Kubernetes components (Go-built, cached)"
  ensure_go
  bash scripts/k8s-components.sh --print-dir > .k8s-components-dir 2> .k8s-components.log || { echo; tail -n 40 .k8s-components.log; exit 1; }
  took "$t"
  grep -h 'built in' .k8s-components.log || true
fi
