#!/usr/bin/env bash
# Build the Kubernetes components the lab runs (real control plane, real node heartbeats) from the Go
# module proxy, into a version-keyed cache, so the lab never downloads a release.
#
#   bash scripts/k8s-components.sh                 # build (or reuse) and print the cache directory
#   bash scripts/k8s-components.sh --print-dir     # same, only the directory on stdout (progress on stderr)
#   bash scripts/k8s-components.sh --rebuild       # ignore the stamp
#
# What ends up in <cache>/k8s/v<KUBE_VERSION>/:
#   bin/kube-apiserver bin/kube-controller-manager bin/kube-scheduler bin/kubectl
#                            from k8s.io/kubernetes (wrapper module scripts/k8s/kubernetes)
#   bin/kwok                 from sigs.k8s.io/kwok (wrapper module scripts/k8s/kwok)
#   bin/etcd bin/etcdctl     from go.etcd.io/etcd v3.6 (wrapper module scripts/k8s/etcd; k3s embeds 3.6, and
#                            Debian's 3.4 lacks the RequestWatchProgress that kwok's client-go watches need)
#   stages/                  kwok's node stages (node-initialize, node-heartbeat-with-lease), taken from the
#                            kwok module itself (kwok exits "no stages found" without them)
#   stamp                    recipe, Go version and go.sum hashes of what was built
#
# Environment:
#   ISAR_K3S_CACHE   cache root (default $HOME/.cache/isar-k3s)
#   GO               go binary (default: go on PATH)
set -euo pipefail

KUBE_VERSION=1.34.4
KWOK_VERSION=v0.8.0
ETCD_VERSION=v3.6.5
# Bump when the way things are built changes; it is part of the stamp.
RECIPE=2

mode=build
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --print-dir) mode=print ;;
    --rebuild) rebuild=1 ;;
    -h | --help)
      sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "k8s-components: unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
exec 3>&1
if [[ $mode == print ]]; then exec 1>&2; fi
die() {
  printf 'k8s-components: error: %s\n' "$*" >&2
  exit 1
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO="${GO:-go}"
command -v "$GO" > /dev/null || die "go not found (set GO=/path/to/go; scripts/setup.sh provides one)"
go_version=$("$GO" env GOVERSION)

cache=${ISAR_K3S_CACHE:-$HOME/.cache/isar-k3s}/k8s/v$KUBE_VERSION
want="recipe=$RECIPE go=$go_version kube=$(sha256sum "$repo_root/scripts/k8s/kubernetes/go.sum" | cut -c1-16) kwok=$KWOK_VERSION/$(sha256sum "$repo_root/scripts/k8s/kwok/go.sum" | cut -c1-16) etcd=$ETCD_VERSION/$(sha256sum "$repo_root/scripts/k8s/etcd/go.sum" | cut -c1-16)"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd etcdctl)
have_all() {
  local b
  for b in "${bins[@]}"; do [[ -x $cache/bin/$b ]] || return 1; done
  [[ -f $cache/stages/node-heartbeat-with-lease.yaml ]]
}
if [[ $rebuild == 0 && -f $cache/stamp && "$(cat "$cache/stamp")" == "$want" ]] && have_all; then
  echo "k8s-components: cached in $cache"
  echo "$cache" >&3
  exit 0
fi

start=$(date +%s)
tmp="$cache.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/stages"
trap 'rm -rf "$tmp"' EXIT

# Version stamps: without them the binaries report v0.0.0-master+$Format:%H$, which kubectl cannot parse.
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=v$KUBE_VERSION -X $p.gitMajor=${KUBE_VERSION%%.*} -X $p.gitMinor=$(cut -d. -f2 <<< "$KUBE_VERSION") -X $p.gitTreeState=clean"
done
echo "k8s-components: building Kubernetes v$KUBE_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl) with $go_version"
(cd "$repo_root/scripts/k8s/kubernetes" && GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl) || die "building Kubernetes failed (see above)"
echo "k8s-components: building kwok $KWOK_VERSION"
(cd "$repo_root/scripts/k8s/kwok" && GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/bin/" sigs.k8s.io/kwok/cmd/kwok) || die "building kwok failed (see above)"
echo "k8s-components: building etcd $ETCD_VERSION"
(cd "$repo_root/scripts/k8s/etcd" && GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcd" go.etcd.io/etcd/server/v3 &&
  GOFLAGS=-mod=readonly "$GO" build -trimpath -ldflags "-s -w" -o "$tmp/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3) || die "building etcd failed (see above)"

kwok_dir=$(cd "$repo_root/scripts/k8s/kwok" && "$GO" list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml; do
  [[ -f $kwok_dir/kustomize/stage/$f ]] || die "kwok $KWOK_VERSION has no stage file kustomize/stage/$f"
  install -m 0644 "$kwok_dir/kustomize/stage/$f" "$tmp/stages/"
done

"$tmp/bin/kubectl" version --client -o json | grep -q "\"gitVersion\": \"v$KUBE_VERSION\"" || die "kubectl does not report v$KUBE_VERSION"
echo "$want" > "$tmp/stamp"
rm -rf "$cache"
mv "$tmp" "$cache"
trap - EXIT
echo "k8s-components: built in $(($(date +%s) - start))s into $cache"
echo "$cache" >&3
