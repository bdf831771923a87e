#!/usr/bin/env bash
# Build the Pulumi toolchain this project needs from the Go module proxy, into a
# version-keyed cache, so `pulumi` runs without downloading any release.
#
#   bash scripts/pulumi-toolchain.sh                  # build (or reuse) and print an export hint
#   PATH="$(bash scripts/pulumi-toolchain.sh --print-bin-dir):$PATH"
#   bash scripts/pulumi-toolchain.sh --rebuild        # ignore the stamp, rebuild everything
#
# What ends up in <cache>/pulumi/v<@pulumi/pulumi version>/bin:
#   pulumi                          CLI built from github.com/pulumi/pulumi/pkg/v3 (./cmd/pulumi)
#   pulumi-language-nodejs          Node.js language host (upstream if served, else a minimal one; see step 2)
#   pulumi-resource-pulumi-nodejs   shim for pulumi.dynamic providers
#   pulumi-resource-<name>          providers, when the proxy serves their module
#                                   (built under <cache>/pulumi/providers/<name>/v<ver>)
#
# Environment:
#   ISAR_K3S_CACHE          cache root (default $HOME/.cache/isar-k3s)
#   PULUMI_CLI_GO_VERSION   pkg/v3 version to build instead of the one from package-lock.json
#   GO                      go binary (default: go on PATH, else /usr/local/go/bin/go)
#
# All build output goes to stderr with --print-bin-dir, so stdout is only the path.
set -euo pipefail

# Bump when the way things are built changes; it is part of the stamp.
RECIPE=2
# Newest github.com/pulumi/pulumi/pkg/v3 whose zip the Go module proxy serves
# here (checked 2026-11: v3.260.0 and later answer 403 "not available").
PULUMI_CLI_FALLBACK_VERSION=v3.259.0

mode=build
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) mode=print ;;
    --rebuild) rebuild=1 ;;
    -h | --help)
      sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "pulumi-toolchain: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

# Keep the real stdout for the final answer; everything else is progress.
exec 3>&1
if [[ $mode == print ]]; then exec 1>&2; fi

say() { printf '%s\n' "$*"; }
die() {
  printf 'pulumi-toolchain: error: %s\n' "$*" >&2
  exit 1
}

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lockfile="$repo_root/package-lock.json"
[[ -f $lockfile ]] || die "missing $lockfile (run npm install first)"

if [[ -x $repo_root/node_modules/.bin/node ]]; then
  node_bin="$repo_root/node_modules/.bin/node"
else
  node_bin=$(command -v node) || die "node not found"
fi

GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[[ -x $GO ]] || die "go not found (set GO=/path/to/go)"
go_version=$("$GO" env GOVERSION)

# --- versions from package-lock.json -------------------------------------------------
lock_version() {
  "$node_bin" -e '
    const lock = require(process.argv[1]);
    const p = (lock.packages || {})["node_modules/" + process.argv[2]];
    const d = (lock.dependencies || {})[process.argv[2]];
    const v = (p && p.version) || (d && d.version) || "";
    process.stdout.write(v.replace(/^v/, ""));
  ' "$lockfile" "$1"
}
v_pulumi=$(lock_version @pulumi/pulumi)
v_command=$(lock_version @pulumi/command)
v_random=$(lock_version @pulumi/random)
v_kubernetes=$(lock_version @pulumi/kubernetes)
[[ -n $v_pulumi ]] || die "@pulumi/pulumi not found in $lockfile"

cli_requested="v$v_pulumi"
cache_root="${ISAR_K3S_CACHE:-$HOME/.cache/isar-k3s}/pulumi"
dir="$cache_root/$cli_requested"
bin="$dir/bin"
stamp="$dir/stamp"
mkdir -p "$dir"

# name|npm version|go module|package to build|ldflags -X variable for the version
providers=(
  "command|$v_command|github.com/pulumi/pulumi-command/provider|cmd/pulumi-resource-command|pkg/version.Version"
  "random|$v_random|github.com/pulumi/pulumi-random/provider/v4|cmd/pulumi-resource-random|pkg/version.Version"
  "kubernetes|$v_kubernetes|github.com/pulumi/pulumi-kubernetes/provider/v4|cmd/pulumi-resource-kubernetes|pkg/version.Version"
)

stamp_inputs() {
  printf 'in recipe=%s\n' "$RECIPE"
  printf 'in go=%s\n' "$go_version"
  printf 'in pulumi=%s override=%s\n' "$cli_requested" "${PULUMI_CLI_GO_VERSION:-}"
  local p
  for p in "${providers[@]}"; do
    IFS='|' read -r name ver _ <<<"$p"
    printf 'in provider %s=%s\n' "$name" "$ver"
  done
}

finish() {
  if [[ $mode == print ]]; then
    printf '%s\n' "$bin" >&3
  else
    say "export PATH=$bin:\$PATH"
  fi
}

# --- cached? -------------------------------------------------------------------------
cached_ok() {
  [[ $rebuild == 0 && -f $stamp ]] || return 1
  [[ "$(grep '^in ' "$stamp")" == "$(stamp_inputs)" ]] || return 1
  local f
  for f in pulumi pulumi-language-nodejs pulumi-resource-pulumi-nodejs; do
    [[ -x $bin/$f ]] || return 1
  done
  # Every provider recorded as built must still be there.
  while read -r _ _ name _; do
    [[ -x $bin/pulumi-resource-$name ]] || return 1
  done < <(grep '^out provider .* built' "$stamp" || true)
}

# Serialise concurrent runs (CI jobs, a dev shell) on the same cache entry.
exec 9>"$dir/.lock"
flock 9

if cached_ok; then
  while read -r _ what rest; do
    say "pulumi-toolchain: $what $rest (cached, 0s)"
  done < <(grep '^out ' "$stamp")
  finish
  exit 0
fi

# --- Go environment ------------------------------------------------------------------
# Default GOMODCACHE/GOCACHE on purpose: later runs on this machine reuse them.
export GOFLAGS="-mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local # never try to download another Go toolchain
export GOWORK=off

logdir="$dir/logs"
mkdir -p "$bin" "$logdir"
results=()

# go mod download -json output for module@version, or fail.
mod_json() { "$GO" mod download -json "$1" 2>/dev/null; }
json_field() { "$node_bin" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);let v=j;for(const k of process.argv[1].split("."))v=v==null?v:v[k];process.stdout.write(v==null?"":String(v))})' "$1"; }

# Is module@version downloadable from the proxy? Prints the reason when not.
mod_available() {
  local out err
  out=$(mod_json "$1") || true
  [[ -n $out ]] || {
    echo "go mod download failed"
    return 1
  }
  err=$(json_field Error <<<"$out")
  if [[ -n $err ]]; then
    sed -n 1p <<<"$err" | sed 's/.*: //'
    return 1
  fi
}

# Copy the replace directives of a dependency's go.mod that can work outside
# its repository (module => module@version); path replaces are dropped and the
# replaced module is required at the matching version instead.
copy_replaces() { # wrapper_dir gomod_file
  local wrapper=$1 gomod=$2
  # shellcheck disable=SC2016 # JavaScript template literal, not shell
  "$GO" mod edit -json "$gomod" | "$node_bin" -e '
    let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{
      for (const r of JSON.parse(s).Replace || []) {
        if (r.New.Version) console.log(`${r.Old.Path}${r.Old.Version ? "@" + r.Old.Version : ""}=${r.New.Path}@${r.New.Version}`);
      }
    })' | while read -r rep; do
    (cd "$wrapper" && "$GO" mod edit -replace "$rep")
  done
}

# Run a command with its output in a log file; sets $elapsed (seconds).
timed() { # logfile cmd...
  local log=$1 start rc
  shift
  start=$(date +%s)
  set +e
  "$@" >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(($(date +%s) - start))
  return $rc
}

# --- 1. pulumi CLI -------------------------------------------------------------------
cli_version=${PULUMI_CLI_GO_VERSION:-$cli_requested}
if ! why=$(mod_available "github.com/pulumi/pulumi/pkg/v3@$cli_version"); then
  [[ -z ${PULUMI_CLI_GO_VERSION:-} ]] || die "pkg/v3@$cli_version: $why"
  say "pulumi-toolchain: WARNING: github.com/pulumi/pulumi/pkg/v3@$cli_version is not served by the Go proxy ($why);"
  say "pulumi-toolchain:          building the CLI at $PULUMI_CLI_FALLBACK_VERSION instead (engine is backward compatible with the v$v_pulumi Node SDK)."
  cli_version=$PULUMI_CLI_FALLBACK_VERSION
  mod_available "github.com/pulumi/pulumi/pkg/v3@$cli_version" >/dev/null ||
    die "fallback pkg/v3@$cli_version is not downloadable either"
fi

src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cli_mod_json=$(mod_json "github.com/pulumi/pulumi/pkg/v3@$cli_version")
cli_gomod=$(json_field GoMod <<<"$cli_mod_json")
cli_commit=$(json_field Origin.Hash <<<"$cli_mod_json")
cli_gover=$("$GO" mod edit -json "$cli_gomod" | json_field Go)
cat >"$src/go.mod" <<EOF
// Generated by scripts/pulumi-toolchain.sh: builds the Pulumi CLI outside its repository.
module isar-k3s.local/pulumi-toolchain

go ${cli_gover:-1.25}

require (
	github.com/pulumi/pulumi/pkg/v3 $cli_version
	github.com/pulumi/pulumi/sdk/v3 $cli_version
)
EOF
copy_replaces "$src" "$cli_gomod"

ver_x="github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$cli_version"
if ! timed "$logdir/pulumi.log" "$GO" build -C "$src" -ldflags "-s -w -X $ver_x" \
  -o "$bin/pulumi.new" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi; then
  tail -n 30 "$logdir/pulumi.log" >&2
  die "building pulumi $cli_version failed (log: $logdir/pulumi.log)"
fi
mv -f "$bin/pulumi.new" "$bin/pulumi"
say "pulumi-toolchain: pulumi CLI $cli_version (requested $cli_requested): built in ${elapsed}s"
results+=("out pulumi-cli $cli_version requested=$cli_requested")

# --- 2. Node.js language host --------------------------------------------------------
# Upstream's host is the module .../sdk/nodejs/cmd/pulumi-language-nodejs/v3, which has
# no tags of its own: ask for the commit of the CLI tag. If the proxy does not serve it
# (the case here), build the small host below, which uses only sdk/v3 (already in the
# build above) and does what `pulumi up/preview/destroy/refresh` need from a language host.
langmod=github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3
langhost_kind=""
if [[ -n $cli_commit ]] && lang_json=$(mod_json "$langmod@$cli_commit") &&
  [[ -z "$(json_field Error <<<"$lang_json")" ]]; then
  lang_version=$(json_field Version <<<"$lang_json")
  (cd "$src" && "$GO" mod edit -require "$langmod@$lang_version")
  if timed "$logdir/pulumi-language-nodejs.log" "$GO" build -C "$src" \
    -ldflags "-s -w -X $ver_x" -o "$bin/pulumi-language-nodejs.new" "$langmod"; then
    langhost_kind="upstream $lang_version"
  else
    say "pulumi-toolchain: WARNING: upstream language host $lang_version did not build (log: $logdir/pulumi-language-nodejs.log); using the minimal one"
    (cd "$src" && "$GO" mod edit -droprequire "$langmod")
  fi
fi
if [[ -z $langhost_kind ]]; then
  mkdir -p "$src/langhost"
  cat >"$src/langhost/main.go" <<'GO_SOURCE'
// Minimal Node.js language host for the Pulumi engine, generated by
// isar-k3s scripts/pulumi-toolchain.sh because the upstream
// pulumi-language-nodejs module is not served by the Go module proxy.
//
// It implements the LanguageRuntime calls that preview/up/destroy/refresh
// use: it lists provider packages found in node_modules and runs the program
// with `node <@pulumi/pulumi/cmd/run> --monitor=... <entry point>`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// Set with -ldflags "-X main.version=...".
var version = "0.0.0-dev"

// The Node.js runtime exits with this code after it printed an actionable
// error itself; the engine should then not add another message.
const exitAfterReportedError = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	mu         sync.Mutex
	engine     string
	typescript bool
	tracing    string
}

func main() {
	fs := flag.NewFlagSet("pulumi-language-nodejs", flag.ContinueOnError)
	tracing := fs.String("tracing", "", "Zipkin-compatible tracing endpoint")
	typescript := fs.Bool("typescript", true, "run TypeScript programs through ts-node")
	fs.String("root", "", "project root (unused)")
	fs.String("binary", "", "prebuilt program (unsupported)")
	fs.String("nodeargs", "", "extra node arguments (use the runtime option instead)")
	fs.String("packagemanager", "", "package manager (unused)")
	// With --logflow the engine passes its glog flags on to plugins: accept and ignore them.
	fs.Int("v", 0, "log verbosity (accepted, ignored)")
	fs.Bool("logtostderr", false, "log to stderr (accepted, ignored)")
	fs.Bool("alsologtostderr", false, "also log to stderr (accepted, ignored)")
	fs.Bool("logflow", false, "flow log settings to plugins (accepted, ignored)")
	fs.String("log_dir", "", "log directory (accepted, ignored)")
	fs.String("vmodule", "", "per-module verbosity (accepted, ignored)")
	fs.String("stderrthreshold", "", "stderr threshold (accepted, ignored)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	h := &host{typescript: *typescript, tracing: *tracing}
	if fs.NArg() > 0 {
		h.engine = fs.Arg(0) // the engine passes its address as the last argument
	}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: cannot serve gRPC: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("%d\n", handle.Port) // the engine reads the port from the first stdout line
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "pulumi-language-nodejs: gRPC server stopped: %v\n", err)
		os.Exit(1)
	}
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.engine = req.GetEngineAddress()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// programDirs returns the program directory, entry point and project root.
func programDirs(info *pulumirpc.ProgramInfo, pwd, program string) (string, string, string) {
	dir, entry, root := pwd, program, ""
	if info != nil {
		if info.GetProgramDirectory() != "" {
			dir = info.GetProgramDirectory()
		}
		if info.GetEntryPoint() != "" {
			entry = info.GetEntryPoint()
		}
		root = info.GetRootDirectory()
	}
	if dir == "" {
		dir, _ = os.Getwd()
	}
	if entry == "" {
		entry = "."
	}
	if root == "" {
		root = dir
	}
	return dir, entry, root
}

type packageJSON struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	Pulumi  json.RawMessage `json:"pulumi"`
}

type pulumiSection struct {
	Resource bool   `json:"resource"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
}

// readProvider returns the plugin a package.json declares with
// "pulumi": {"resource": true}, or nil.
func readProvider(path string) *pulumirpc.PackageDependency {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var pkg packageJSON
	if json.Unmarshal(b, &pkg) != nil || len(pkg.Pulumi) == 0 {
		return nil
	}
	var sec pulumiSection
	if json.Unmarshal(pkg.Pulumi, &sec) != nil || !sec.Resource {
		return nil
	}
	name := sec.Name
	if name == "" {
		name = strings.TrimPrefix(strings.TrimPrefix(pkg.Name, "@pulumi/"), "@")
	}
	ver := sec.Version
	if ver == "" {
		ver = pkg.Version
	}
	if name == "" || ver == "" {
		return nil
	}
	if !strings.HasPrefix(ver, "v") {
		ver = "v" + ver
	}
	return &pulumirpc.PackageDependency{Name: name, Kind: "resource", Version: ver, Server: sec.Server}
}

// providerPackages walks <dir>/node_modules (scopes and nested node_modules too).
func providerPackages(dir string) []*pulumirpc.PackageDependency {
	seen := map[string]*pulumirpc.PackageDependency{}
	var walk func(nm string, depth int)
	walk = func(nm string, depth int) {
		if depth > 8 {
			return
		}
		entries, err := os.ReadDir(nm)
		if err != nil {
			return
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			p := filepath.Join(nm, name)
			if st, err := os.Stat(p); err != nil || !st.IsDir() {
				continue
			}
			if strings.HasPrefix(name, "@") {
				walk(p, depth+1)
				continue
			}
			if dep := readProvider(filepath.Join(p, "package.json")); dep != nil {
				seen[dep.Name+"@"+dep.Version] = dep
			}
			walk(filepath.Join(p, "node_modules"), depth+1)
		}
	}
	walk(filepath.Join(dir, "node_modules"), 0)
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]*pulumirpc.PackageDependency, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out
}

func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	dir, _, root := programDirs(req.GetInfo(), "", "")
	pkgs := providerPackages(dir)
	if len(pkgs) == 0 && root != dir {
		pkgs = providerPackages(root)
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	dir, _, _ := programDirs(req.GetInfo(), req.GetPwd(), req.GetProgram())
	var out []*pulumirpc.PluginDependency
	for _, p := range providerPackages(dir) {
		out = append(out, &pulumirpc.PluginDependency{Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: out}, nil
}

// resolveModule asks node where a module resolves from dir.
func resolveModule(node, dir, mod string) (string, error) {
	cmd := exec.Command(node, "-e", "process.stdout.write(require.resolve(process.argv[1]))", mod)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot resolve %s from %s (is @pulumi/pulumi installed? run npm ci): %w", mod, dir, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func optString(opts map[string]any, key string) string {
	if s, ok := opts[key].(string); ok {
		return s
	}
	return ""
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	dir, entry, root := programDirs(req.GetInfo(), req.GetPwd(), req.GetProgram())
	var opts map[string]any
	if o := req.GetInfo().GetOptions(); o != nil {
		opts = o.AsMap()
	}
	typescript := h.typescript
	if v, ok := opts["typescript"].(bool); ok {
		typescript = v
	}

	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find node on $PATH: %w", err)
	}
	runPath := os.Getenv("PULUMI_LANGUAGE_NODEJS_RUN_PATH")
	if runPath == "" {
		runPath = "@pulumi/pulumi/cmd/run"
	}
	if !filepath.IsAbs(runPath) {
		if runPath, err = resolveModule(node, dir, runPath); err != nil {
			return &pulumirpc.RunResponse{Error: err.Error()}, nil
		}
	}

	h.mu.Lock()
	engine := h.engine
	h.mu.Unlock()

	args := strings.Fields(optString(opts, "nodeargs"))
	args = append(args, runPath,
		"--monitor="+req.GetMonitorAddress(),
		"--project="+req.GetProject(),
		"--stack="+req.GetStack(),
		"--pwd="+dir,
		"--root-directory="+root,
	)
	if engine != "" {
		args = append(args, "--engine="+engine)
	}
	if org := req.GetOrganization(); org != "" {
		args = append(args, "--organization="+org)
	}
	if req.GetParallel() != 0 {
		args = append(args, fmt.Sprintf("--parallel=%d", req.GetParallel()))
	}
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	if h.tracing != "" {
		args = append(args, "--tracing="+h.tracing)
	}
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(),
		"PULUMI_CONFIG="+string(config),
		"PULUMI_CONFIG_SECRET_KEYS="+string(secrets),
		fmt.Sprintf("PULUMI_NODEJS_TYPESCRIPT=%t", typescript),
	)
	if ts := optString(opts, "tsconfig"); ts != "" {
		cmd.Env = append(cmd.Env, "PULUMI_NODEJS_TSCONFIG_PATH="+ts)
	}

	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitAfterReportedError {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) InstallDependencies(_ *pulumirpc.InstallDependenciesRequest,
	srv grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	return srv.Send(&pulumirpc.InstallDependenciesResponse{
		Stdout: []byte("isar-k3s language host: not installing dependencies; run `npm ci` yourself.\n"),
	})
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("could not find node on $PATH: %w", err)
	}
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: node,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
		Metadata:   map[string]string{"languageHost": "isar-k3s minimal pulumi-language-nodejs " + version},
	}, nil
}

func (h *host) GetProgramDependencies(_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	dir, _, _ := programDirs(req.GetInfo(), req.GetPwd(), req.GetProgram())
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return &pulumirpc.GetProgramDependenciesResponse{}, nil
	}
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	_ = json.Unmarshal(b, &manifest)
	names := make([]string, 0, len(manifest.Dependencies))
	for n := range manifest.Dependencies {
		names = append(names, n)
	}
	sort.Strings(names)
	var deps []*pulumirpc.DependencyInfo
	for _, n := range names {
		v := manifest.Dependencies[n]
		if pb, err := os.ReadFile(filepath.Join(dir, "node_modules", n, "package.json")); err == nil {
			var p packageJSON
			if json.Unmarshal(pb, &p) == nil && p.Version != "" {
				v = p.Version
			}
		}
		deps = append(deps, &pulumirpc.DependencyInfo{Name: n, Version: v})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: deps}, nil
}
GO_SOURCE
  if ! timed "$logdir/pulumi-language-nodejs.log" "$GO" build -C "$src" \
    -ldflags "-s -w -X main.version=${cli_version#v}" -o "$bin/pulumi-language-nodejs.new" ./langhost; then
    tail -n 30 "$logdir/pulumi-language-nodejs.log" >&2
    die "building the language host failed (log: $logdir/pulumi-language-nodejs.log)"
  fi
  langhost_kind="minimal ${cli_version} (upstream $langmod not served by the Go proxy)"
fi
mv -f "$bin/pulumi-language-nodejs.new" "$bin/pulumi-language-nodejs"
say "pulumi-toolchain: pulumi-language-nodejs $langhost_kind: built in ${elapsed}s"
results+=("out pulumi-language-nodejs $langhost_kind")

# --- 3. dynamic provider shim --------------------------------------------------------
# Same job as upstream's sdk/nodejs/dist/pulumi-resource-pulumi-nodejs: find the
# dynamic-provider entry of the @pulumi/pulumi that the program (cwd) resolves, and run
# it with node, passing the engine's arguments through.
start=$(date +%s)
cat >"$bin/pulumi-resource-pulumi-nodejs" <<'SHIM'
#!/bin/sh
# Resource plugin for pulumi.dynamic providers (generated by scripts/pulumi-toolchain.sh).
script=$(node -e 'process.stdout.write(require.resolve("@pulumi/pulumi/cmd/dynamic-provider"))') || {
  echo "pulumi-resource-pulumi-nodejs: cannot resolve @pulumi/pulumi/cmd/dynamic-provider from $(pwd)" >&2
  exit 1
}
exec node "$script" "$@"
SHIM
chmod +x "$bin/pulumi-resource-pulumi-nodejs"
say "pulumi-toolchain: pulumi-resource-pulumi-nodejs shim: written in $(($(date +%s) - start))s"
results+=("out pulumi-resource-pulumi-nodejs shim")

# --- 4. resource providers -----------------------------------------------------------
for p in "${providers[@]}"; do
  IFS='|' read -r name ver mod pkg verx <<<"$p"
  [[ -n $ver ]] || continue # not in package-lock.json
  exe="pulumi-resource-$name"
  pdir="$cache_root/providers/$name/v$ver"
  if ! why=$(mod_available "$mod@v$ver"); then
    say "pulumi-toolchain: SKIP $exe v$ver: $mod@v$ver is not served by the Go proxy ($why)"
    results+=("out provider $name v$ver missing: not served by the Go module proxy")
    continue
  fi
  if [[ $rebuild == 1 || ! -x $pdir/bin/$exe ]]; then
    rm -rf "$pdir/src"
    mkdir -p "$pdir/src" "$pdir/bin"
    cat >"$pdir/src/go.mod" <<EOF
// Generated by scripts/pulumi-toolchain.sh: builds $exe outside its repository.
module isar-k3s.local/$exe

go 1.25

require $mod v$ver
EOF
    copy_replaces "$pdir/src" "$(mod_json "$mod@v$ver" | json_field GoMod)"
    if ! timed "$pdir/build.log" "$GO" build -C "$pdir/src" \
      -ldflags "-s -w -X $mod/$verx=v$ver" -o "$pdir/bin/$exe" "$mod/$pkg"; then
      say "pulumi-toolchain: SKIP $exe v$ver: build failed after ${elapsed}s (log: $pdir/build.log)"
      results+=("out provider $name v$ver missing: build failed")
      continue
    fi
    say "pulumi-toolchain: $exe v$ver: built in ${elapsed}s"
  else
    say "pulumi-toolchain: $exe v$ver: cached in $pdir"
  fi
  ln -sf "$pdir/bin/$exe" "$bin/$exe"
  results+=("out provider $name v$ver built")
done

{
  stamp_inputs
  printf '%s\n' "${results[@]}"
} >"$stamp"
finish
