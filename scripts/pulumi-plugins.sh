#!/usr/bin/env bash
# Install the resource plugins package.json asks for (@pulumi/kubernetes, @pulumi/random,
# @pulumi/command, at their exact versions) into PULUMI_HOME, from the binaries
# scripts/pulumi-toolchain.sh built, so that `pulumi plugin ls` lists them and the engine runs
# them with PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true.
#
#   bash scripts/pulumi-plugins.sh           # install what is missing (idempotent; ~0.1 s when done)
#   bash scripts/pulumi-plugins.sh --check   # only say what is missing (exit 1 if anything is)
#
# PULUMI_HOME defaults to the repository's .pulumi-home (scripts/pulumi-env.sh). A plugin that
# was not built here (its sources are missing) but is already installed, e.g. by an official
# Pulumi's `pulumi plugin install`, counts as installed; with ISAR_K3S_USE_SYSTEM_PULUMI=1 (an official
# Pulumi on PATH) a missing one is downloaded with `pulumi plugin install resource <name> <version>`.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *)
    echo "pulumi-plugins: unknown argument: $1" >&2
    exit 2
    ;;
esac
# shellcheck source=scripts/pulumi-env.sh
source "$repo_root/scripts/pulumi-env.sh"

# Where we record which binary an installed plugin came from (kept outside plugins/, which the
# engine scans).
marks="$PULUMI_HOME/isar-k3s-plugins"
mkdir -p "$marks"
missing=0
list=$(bash "$repo_root/scripts/pulumi-toolchain.sh" --print-plugins)
while read -r name ver exe; do
  [[ -n $name ]] || continue
  dest="$PULUMI_HOME/plugins/resource-$name-v$ver/pulumi-resource-$name"
  mark="$marks/$name-v$ver"
  if [[ $exe != - ]]; then
    id="$(stat -c '%s %Y' "$exe") $exe"
    if [[ -x $dest && -f $mark && "$(cat "$mark")" == "$id" ]]; then continue; fi
    if ((check)); then
      echo "pulumi-plugins: resource plugin $name $ver is built but not installed in $PULUMI_HOME: run bash scripts/pulumi-plugins.sh" >&2
      missing=1
      continue
    fi
    command -v pulumi >/dev/null || {
      echo "pulumi-plugins: no pulumi on PATH: run bash scripts/setup.sh first" >&2
      exit 1
    }
    pulumi plugin install resource "$name" "$ver" -f "$exe" >/dev/null
    printf '%s' "$id" >"$mark"
    echo "pulumi-plugins: installed resource plugin $name $ver into $PULUMI_HOME"
  elif [[ ! -x $dest && $check == 0 && ${ISAR_K3S_USE_SYSTEM_PULUMI:-0} == 1 ]] && command -v pulumi >/dev/null; then
    # An official Pulumi: let it download the plugin release.
    pulumi plugin install resource "$name" "$ver" >/dev/null || missing=1
    [[ -x $dest ]] && echo "pulumi-plugins: installed resource plugin $name $ver into $PULUMI_HOME (downloaded)"
  elif [[ ! -x $dest ]]; then
    cat >&2 <<MSG
pulumi-plugins: resource plugin $name $ver (asked for by @pulumi/$name $ver in package.json) is not
  installed in $PULUMI_HOME and no build of it is in the cache (run bash scripts/pulumi-toolchain.sh; the
  random and command plugins need their sources in ../shared/upstream). Or install it with one of:
    pulumi plugin install resource $name $ver                         # official Pulumi, downloads it
    pulumi plugin install resource $name $ver -f /path/to/pulumi-resource-$name   # a binary you built
  (with PULUMI_HOME=$PULUMI_HOME)
MSG
    missing=1
  fi
done <<<"$list"
exit $missing
