#!/usr/bin/env bash
# The real Turing Pi 2 CLI for the lab's simulated BMC: crate `tpi` from crates.io, built with
# `--features localhost` (the variant the BMC firmware ships: it talks to its own bmcd at 127.0.0.1 and
# needs no login), into a version-keyed cache.
#
#   bash scripts/tpi.sh                  # build (or reuse) and print the binary's path on stdout
#   bash scripts/tpi.sh --rebuild        # ignore the stamp and build again
#
# Where the binary comes from, in this order:
#   1. the cache <cache>/tpi/<version>/bin/tpi when its stamp matches this recipe (seconds);
#   2. `cargo install --locked` (the crate's own Cargo.lock) with the cargo named by $CARGO or found on
#      PATH or in ~/.cargo/bin, if it is new enough for that lock file (format 4: cargo >= 1.78);
#   3. otherwise: an error naming what is missing.
# Debian 12's own cargo (0.66 / rustc 1.63) cannot build it: the crate's lock file is format 4 and its
# dependencies need a newer rustc (clap 4.5: 1.74), and that cargo reads crates.io only through the git
# index, which this network does not serve. So a clean Debian root relies on the cache (bind-mounted in
# CI) or on a rustup-style cargo on PATH.
#
# Environment:
#   ISAR_K3S_CACHE   cache root (default $HOME/.cache/isar-k3s)
#   CARGO            cargo binary to use (default: cargo on PATH, else ~/.cargo/bin/cargo)
#   CARGO_HOME       cargo's registry cache (default ~/.cargo; its registry/ is shared, keep it)
# Build output goes to stderr; stdout is only the path.
set -euo pipefail

TPI_VERSION=1.0.7
TPI_FEATURES=localhost
# Bump when the way it is built changes; it is part of the stamp.
RECIPE=1
MIN_CARGO_MINOR=78

rebuild=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tpi.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
die() { printf 'tpi.sh: error: %s\n' "$*" >&2; exit 1; }

cache="${ISAR_K3S_CACHE:-$HOME/.cache/isar-k3s}/tpi/$TPI_VERSION"
bin="$cache/bin/tpi"
stamp="$cache/.stamp"
want="tpi $TPI_VERSION features=$TPI_FEATURES recipe=$RECIPE"

if [[ $rebuild == 0 && -x $bin && -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
  printf '%s\n' "$bin"
  exit 0
fi

cargo="${CARGO:-}"
if [[ -z $cargo ]]; then
  if command -v cargo >/dev/null 2>&1; then cargo=$(command -v cargo)
  elif [[ -x $HOME/.cargo/bin/cargo ]]; then cargo=$HOME/.cargo/bin/cargo
  fi
fi
if [[ -z $cargo ]]; then
  die "no tpi $TPI_VERSION in $cache and no cargo to build it: put cargo >= 1.$MIN_CARGO_MINOR on PATH (or set CARGO), or provide the cache dir (CI bind-mounts ~/.cache/isar-k3s). Debian 12's cargo package is too old for this crate."
fi
ver=$("$cargo" --version 2>/dev/null || true)
minor=$(sed -n 's/^cargo 1\.\([0-9]*\)\..*/\1/p' <<<"$ver")
if [[ -z $minor || $minor -lt $MIN_CARGO_MINOR ]]; then
  die "$cargo is '${ver:-not runnable}': tpi $TPI_VERSION (lock file format 4, clap 4.5) needs cargo >= 1.$MIN_CARGO_MINOR; no cached build in $cache either. Use a rustup toolchain (CARGO=/path/to/cargo) or provide the cache dir."
fi

echo "tpi.sh: building tpi $TPI_VERSION (--features $TPI_FEATURES) with $ver" >&2
tmp="$cache.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
CARGO_TARGET_DIR="$tmp/target" "$cargo" install "tpi@$TPI_VERSION" --locked --features "$TPI_FEATURES" --root "$tmp/root" --no-track 1>&2 \
  || die "cargo install tpi@$TPI_VERSION failed (output above)"
"$tmp/root/bin/tpi" --version >/dev/null || die "the built tpi does not run"
mkdir -p "$cache/bin"
mv -f "$tmp/root/bin/tpi" "$bin.new"
mv -f "$bin.new" "$bin"
printf '%s\n' "$want" >"$stamp"
printf '%s\n' "$bin"
