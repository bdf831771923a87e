#!/usr/bin/env bash
# Build the Pulumi toolchain this project runs under, each part cached by version, so that
# `pulumi up` needs no release download:
#
#   bash scripts/pulumi-toolchain.sh                  # build (or reuse) everything, print an export hint
#   PATH="$(bash scripts/pulumi-toolchain.sh --print-bin-dir):$PATH"
#   bash scripts/pulumi-toolchain.sh --only kubernetes  # one part (cli, langhost, kubernetes, random, command)
#   bash scripts/pulumi-toolchain.sh --rebuild        # ignore the stamps
#   bash scripts/pulumi-toolchain.sh --print-plugins  # "<name> <version> <binary or ->" per resource plugin
#
# Parts, their sources and where they are cached (<cache> = ${ISAR_K3S_CACHE:-~/.cache/isar-k3s}/pulumi):
#   pulumi CLI v3.274.1          Go module proxy, wrapper module scripts/toolchain/cli   <cache>/cli/<v>/
#   pulumi-language-nodejs       upstream sources in ../shared/upstream (v3.259.0) built against the
#                                CLI's sdk/v3, plus scripts/toolchain/langhost/*.go       <cache>/language-nodejs/<v>/
#   pulumi-resource-kubernetes   Go module proxy, wrapper module scripts/toolchain/kubernetes
#   pulumi-resource-random       upstream sources in ../shared/upstream
#   pulumi-resource-command      upstream sources in ../shared/upstream           <cache>/providers/<name>/v<ver>/
#   pulumi-resource-pulumi-nodejs  scripts/toolchain/pulumi-resource-pulumi-nodejs (dynamic providers)
# The provider versions are the ones package.json pins for @pulumi/<name>. The bin directory
# printed has pulumi, the language host and the dynamic-provider shim; the resource plugins are
# installed into PULUMI_HOME by scripts/pulumi-plugins.sh (so `pulumi plugin ls` lists them).
#
# Environment:
#   ISAR_K3S_CACHE            cache root (default $HOME/.cache/isar-k3s)
#   ISAR_K3S_PULUMI_UPSTREAM  upstream sources (default <repo>/../shared/upstream)
#   GO                        go binary (default: go on PATH)
#
# Progress goes to stderr with --print-bin-dir, so stdout is only the path. Exit status 3: the
# CLI was built but a part whose sources are missing was not (the message says what to do).
set -euo pipefail

# Bump when the way things are built changes; it is part of every stamp.
RECIPE=3
# Keep equal to the require in scripts/toolchain/cli/go.mod.
PULUMI_CLI_VERSION=v3.274.1
# Upstream language host sources (folder pulumi-language-nodejs-<this> of the upstream tree).
LANGHOST_UPSTREAM_VERSION=v3.259.0
# The kubernetes provider version scripts/toolchain/kubernetes/go.mod builds.
KUBERNETES_WRAPPER_VERSION=4.25.0

mode=build
rebuild=0
only=""
while (($#)); do
  case "$1" in
    --print-bin-dir) mode=print ;;
    --rebuild) rebuild=1 ;;
    --print-plugins) mode=plugins ;;
    --only)
      only=${2:?--only needs a part name}
      shift
      ;;
    -h | --help)
      sed -n '2,30p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "pulumi-toolchain: unknown argument: $1" >&2
      exit 2
      ;;
  esac
  shift
done
case "$only" in "" | cli | langhost | kubernetes | random | command) ;; *)
  echo "pulumi-toolchain: --only: unknown part '$only' (cli, langhost, kubernetes, random, command)" >&2
  exit 2
  ;;
esac

# Keep the real stdout for the final answer; everything else is progress.
exec 3>&1
if [[ $mode == print ]]; then exec 1>&2; fi

say() { printf 'pulumi-toolchain: %s\n' "$*"; }
die() {
  printf 'pulumi-toolchain: error: %s\n' "$*" >&2
  exit 1
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
recipes="$repo_root/scripts/toolchain"
upstream=${ISAR_K3S_PULUMI_UPSTREAM:-$repo_root/../shared/upstream}
[[ -d $upstream ]] && upstream=$(cd "$upstream" && pwd)

if [[ -x $repo_root/node_modules/.bin/node ]]; then
  node_bin="$repo_root/node_modules/.bin/node"
else
  node_bin=$(command -v node) || die "node not found (run npm ci)"
fi


# Exact version package.json pins for a dependency ("" when it has none).
pkg_version() {
  "$node_bin" -e '
    const p = require(process.argv[1]);
    const v = (p.dependencies || {})[process.argv[2]] || "";
    if (v && !/^\d+\.\d+\.\d+$/.test(v)) { console.error(`package.json: ${process.argv[2]} must be an exact version (npm install --save-exact), not "${v}"`); process.exit(1); }
    process.stdout.write(v);
  ' "$repo_root/package.json" "$1"
}

cache_root="${ISAR_K3S_CACHE:-$HOME/.cache/isar-k3s}/pulumi"
mkdir -p "$cache_root"
plugin_names=(kubernetes random command)
provider_dir() { printf '%s' "$cache_root/providers/$1/v$2"; }

if [[ $mode == plugins ]]; then
  for name in "${plugin_names[@]}"; do
    ver=$(pkg_version "@pulumi/$name") || exit 1
    [[ -n $ver ]] || continue
    exe="$(provider_dir "$name" "$ver")/bin/pulumi-resource-$name"
    [[ -x $exe ]] || exe=-
    printf '%s %s %s\n' "$name" "$ver" "$exe"
  done
  exit 0
fi

GO="${GO:-go}"
# "none" without Go: cached parts are still used; building one fails with how to get Go.
go_version=$("$GO" env GOVERSION 2>/dev/null || echo none)

# --- Go environment ------------------------------------------------------------------
# Default GOMODCACHE/GOCACHE on purpose: later runs (and CI, which mounts them) reuse them.
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local # never try to download another Go toolchain
export GOWORK=off

# sha256 over files (names relative to their folder, and contents): part of a stamp.
files_sha() { # dir
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}

# Run a command with its output in a log file; sets $elapsed (seconds).
timed() { # logfile cmd...
  local log=$1 start rc
  shift
  start=$(date +%s)
  set +e
  "$@" >>"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))
  return $rc
}

missing=() # lines saying what could not be built and how to get it instead
status=0

# build_part <label> <dir> <stamp text> <function> [args]: run <function> <dir> [args] unless
# <dir>/stamp holds <stamp text> and <dir>/bin/<label> exists. One builder per part (flock).
build_part() {
  local label=$1 dir=$2 want=$3 fn=$4
  shift 4
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9
  if [[ $rebuild == 0 && -x $dir/bin/$label && -f $dir/stamp && "$(cat "$dir/stamp")" == "$want" ]]; then
    say "$label: cached ($dir)"
    exec 9>&-
    return 0
  fi
  if [[ $go_version == none ]]; then
    if [[ $rebuild == 0 && -x $dir/bin/$label ]]; then
      say "$label: cached ($dir; no Go to check its stamp)"
      exec 9>&-
      return 0
    fi
    die "$label: needs a build, and go was not found: set GO=/path/to/go (Go >= 1.26.6; scripts/setup.sh provides one)"
  fi
  rm -rf "$dir/src" "$dir/bin" "$dir/stamp"
  mkdir -p "$dir/bin"
  : >"$dir/build.log"
  local start
  start=$(date +%s)
  say "$label: building (log: $dir/build.log)"
  if ! "$fn" "$dir" "$@"; then
    tail -n 25 "$dir/build.log" >&2
    exec 9>&-
    die "$label: build failed (log: $dir/build.log)"
  fi
  printf '%s' "$want" >"$dir/stamp"
  say "$label: built in $(($(date +%s) - start))s"
  exec 9>&-
}

want_part() { [[ -z $only || $only == "$1" ]]; }

# --- 1. pulumi CLI -------------------------------------------------------------------
cli_dir="$cache_root/cli/$PULUMI_CLI_VERSION"
build_cli() {
  local dir=$1
  cp -r "$recipes/cli" "$dir/src"
  timed "$dir/build.log" "$GO" build -C "$dir/src" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_CLI_VERSION" \
    -o "$dir/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}
if want_part cli; then
  build_part pulumi "$cli_dir" "recipe=$RECIPE go=$go_version files=$(files_sha "$recipes/cli")" build_cli
fi

# --- 2. Node.js language host ----------------------------------------------------------
# Upstream's go.mod replaces pkg/v3 and sdk/v3 with monorepo folders: drop those and build it
# against the CLI's pkg/sdk version, with our forwarding method for the newer monitor API.
lang_src="$upstream/pulumi-language-nodejs-$LANGHOST_UPSTREAM_VERSION"
lang_dir="$cache_root/language-nodejs/$LANGHOST_UPSTREAM_VERSION-sdk$PULUMI_CLI_VERSION"
build_langhost() {
  local dir=$1
  cp -r "$lang_src" "$dir/src"
  chmod -R u+w "$dir/src"
  cp "$recipes/langhost/"*.go "$dir/src/"
  timed "$dir/build.log" "$GO" mod edit \
    -dropreplace github.com/pulumi/pulumi/pkg/v3 -dropreplace github.com/pulumi/pulumi/sdk/v3 \
    -require "github.com/pulumi/pulumi/pkg/v3@$PULUMI_CLI_VERSION" \
    -require "github.com/pulumi/pulumi/sdk/v3@$PULUMI_CLI_VERSION" "$dir/src/go.mod" &&
    timed "$dir/build.log" "$GO" build -C "$dir/src" \
      -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_CLI_VERSION" \
      -o "$dir/bin/pulumi-language-nodejs" .
}
if want_part langhost; then
  if [[ -d $lang_src ]]; then
    build_part pulumi-language-nodejs "$lang_dir" \
      "recipe=$RECIPE go=$go_version cli=$PULUMI_CLI_VERSION files=$(files_sha "$recipes/langhost")" build_langhost
  elif [[ ! -x $lang_dir/bin/pulumi-language-nodejs ]]; then
    missing+=("pulumi-language-nodejs: its sources are not at $lang_src (the Go module proxy does not serve them).
    Install the official Pulumi CLI (https://www.pulumi.com/docs/iac/download-install/; it brings the
    Node.js language host) and run with ISAR_K3S_USE_SYSTEM_PULUMI=1, or point
    ISAR_K3S_PULUMI_UPSTREAM at a folder holding pulumi-language-nodejs-$LANGHOST_UPSTREAM_VERSION.")
  fi
fi

# --- 3. resource plugins -----------------------------------------------------------------
# kubernetes: from the proxy. The module zip lacks the *-embed.json files `go generate` writes,
# so the command's folder is copied into the wrapper module and generate.go is run there.
build_kubernetes() {
  local dir=$1 ver=$2 cmd_dir
  cp -r "$recipes/kubernetes" "$dir/src"
  cmd_dir=$(cd "$dir/src" && "$GO" list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4 2>>"$dir/build.log") ||
    return 1
  if [[ -z $cmd_dir ]]; then
    (cd "$dir/src" && timed "$dir/build.log" "$GO" mod download github.com/pulumi/pulumi-kubernetes/provider/v4) || return 1
    cmd_dir=$(cd "$dir/src" && "$GO" list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)
  fi
  cp "$cmd_dir/cmd/pulumi-resource-kubernetes/"* "$dir/src/"
  chmod -R u+w "$dir/src"
  (cd "$dir/src" && timed "$dir/build.log" env VERSION="$ver" "$GO" run generate.go) &&
    timed "$dir/build.log" "$GO" build -C "$dir/src" \
      -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=v$ver" \
      -o "$dir/bin/pulumi-resource-kubernetes" .
}
# random: upstream tree; two of its dependencies' pseudo-versions are refused by the proxy and
# are replaced by the upstream folders of the same commits.
build_random() {
  local dir=$1 ver=$2
  cp -r "$upstream/pulumi-random-v$ver/provider" "$dir/src"
  chmod -R u+w "$dir/src"
  timed "$dir/build.log" "$GO" mod edit \
    -replace "github.com/pulumi/pulumi-yaml=$upstream/pulumi-yaml-294c561f47f4" \
    -replace "github.com/pulumi/pulumi-dotnet/pulumi-language-dotnet/v3=$upstream/pulumi-dotnet-6a2eb2585b50/pulumi-language-dotnet" \
    "$dir/src/go.mod" &&
    (cd "$dir/src/cmd/pulumi-resource-random" && timed "$dir/build.log" env VERSION="$ver" "$GO" run generate.go) &&
    timed "$dir/build.log" "$GO" build -C "$dir/src" \
      -ldflags "-s -w -X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$ver" \
      -o "$dir/bin/pulumi-resource-random" ./cmd/pulumi-resource-random
}
build_command() {
  local dir=$1 ver=$2
  cp -r "$upstream/pulumi-command-v$ver/provider" "$dir/src"
  chmod -R u+w "$dir/src"
  timed "$dir/build.log" "$GO" build -C "$dir/src" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$ver" \
    -o "$dir/bin/pulumi-resource-command" ./cmd/pulumi-resource-command
}

for name in "${plugin_names[@]}"; do
  want_part "$name" || continue
  ver=$(pkg_version "@pulumi/$name") || exit 1
  [[ -n $ver ]] || continue # not a dependency: nothing to build
  exe="pulumi-resource-$name"
  pdir=$(provider_dir "$name" "$ver")
  case $name in
    kubernetes)
      [[ $ver == "$KUBERNETES_WRAPPER_VERSION" ]] ||
        die "package.json pins @pulumi/kubernetes $ver, but scripts/toolchain/kubernetes/go.mod builds $KUBERNETES_WRAPPER_VERSION: change both (and KUBERNETES_WRAPPER_VERSION here) together"
      inputs="files=$(files_sha "$recipes/kubernetes")"
      ;;
    random)
      inputs="src=pulumi-random-v$ver,pulumi-yaml-294c561f47f4,pulumi-dotnet-6a2eb2585b50"
      ;;
    command)
      inputs="src=pulumi-command-v$ver"
      ;;
  esac
  if [[ $name != kubernetes && ! -d $upstream/pulumi-$name-v$ver ]]; then
    if [[ ! -x $pdir/bin/$exe ]]; then
      missing+=("$exe $ver: its sources are not at $upstream/pulumi-$name-v$ver (the Go module proxy does not serve them).
    With an official Pulumi install: pulumi plugin install resource $name $ver
    With a binary you built:        pulumi plugin install resource $name $ver -f /path/to/$exe")
    fi
    continue
  fi
  build_part "$exe" "$pdir" "recipe=$RECIPE go=$go_version version=$ver $inputs" "build_$name" "$ver"
done

# --- 4. the bin directory: CLI, language host, dynamic-provider shim --------------------
bin="$cache_root/bin/$PULUMI_CLI_VERSION-nodejs$LANGHOST_UPSTREAM_VERSION"
mkdir -p "$bin"
# A hard link (a copy across file systems), not a symlink: the engine looks for the language host
# next to its own resolved path, and warns when it has to take it from $PATH instead.
if [[ -x $cli_dir/bin/pulumi ]]; then
  ln -f "$cli_dir/bin/pulumi" "$bin/pulumi" 2>/dev/null || cp -f "$cli_dir/bin/pulumi" "$bin/pulumi"
fi
ln -sfn "$lang_dir/bin/pulumi-language-nodejs" "$bin/pulumi-language-nodejs"
cp -f "$recipes/pulumi-resource-pulumi-nodejs" "$bin/pulumi-resource-pulumi-nodejs.new"
mv -f "$bin/pulumi-resource-pulumi-nodejs.new" "$bin/pulumi-resource-pulumi-nodejs"

if [[ -z $only && ! -x $cli_dir/bin/pulumi ]]; then die "no pulumi CLI in $cli_dir/bin"; fi
if ((${#missing[@]})); then
  say "NOT BUILT (sources missing; the rest is in $bin):"
  for m in "${missing[@]}"; do printf '  - %s\n' "$m"; done
  status=3
fi
if [[ $mode == print ]]; then
  printf '%s\n' "$bin" >&3
else
  say "export PATH=$bin:\$PATH"
  say "then: bash scripts/pulumi-plugins.sh   # installs the resource plugins into PULUMI_HOME"
fi
exit $status
