# Sourced by scripts/dev.sh and the end-to-end tests: the environment `pulumi` runs in here.
# - Node 22 first on PATH (the language host runs the first `node`), then the Go-built toolchain
#   (or a system `pulumi` with ISAR_K3S_USE_SYSTEM_PULUMI=1).
# - A local file backend in .pulumi-state/ and the passphrase secrets provider. The dev stack's
#   committed secrets (keys of the simulated lab only) are encrypted with the documented dev
#   passphrase "isar-k3s-dev"; set PULUMI_CONFIG_PASSPHRASE yourself for any real stack.
_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_repo/node_modules/.bin:$PATH"
if [ "${ISAR_K3S_USE_SYSTEM_PULUMI:-0}" != 1 ] && [ -f "$_repo/.pulumi-bin-dir" ]; then
  PATH="$(cat "$_repo/.pulumi-bin-dir"):$PATH"
fi
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$_repo/.pulumi-state}"
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-isar-k3s-dev}"
export PULUMI_HOME="${PULUMI_HOME:-$_repo/.pulumi-home}"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK=true PULUMI_DIY_BACKEND_NO_LEGACY_WARNING=true
mkdir -p "$_repo/.pulumi-state" "$PULUMI_HOME"
unset _repo
