#!/usr/bin/env bash
# The main job on a fresh machine: set up, start the simulated lab (lab/README.md), and run
# `pulumi up --stack dev --yes` against it with a local file backend (.pulumi-state/) and the
# passphrase secrets provider (dev passphrase "isar-k3s-dev", documented in the README: the dev
# stack's secrets are keys of the simulated lab only). Re-running converges; nothing is rebuilt,
# reflashed or rejoined when nothing changed.
#   bash scripts/dev.sh            # up
#   bash scripts/dev.sh destroy    # tear the dev stack down (the lab keeps running; `node bin/lab/cli.js stop --dir .lab/dev`)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/pulumi-env.sh
# No provider plugin beyond our dynamic ones is installed by the offline toolchain: never try to download one.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

echo "[dev] compiling (tsc -> bin/)"
tsc -p tsconfig.json

if node bin/lab/cli.js status --dir .lab/dev >/dev/null 2>&1 && [ -S .lab/dev/ctl.sock ]; then
  echo "[dev] simulated lab already running"
else
  echo "[dev] starting the simulated lab (.lab/dev)"
  node bin/lab/cli.js start --stack dev --dir .lab/dev
fi

pulumi stack select dev --non-interactive 2>/dev/null || pulumi stack init dev --secrets-provider passphrase --non-interactive
if [ "${1:-up}" = destroy ]; then
  exec pulumi destroy --stack dev --yes --non-interactive
fi
pulumi up --stack dev --yes --non-interactive

cat <<'MSG'

[dev] done. The cluster's kubeconfig is a secret stack output:
  source scripts/pulumi-env.sh
  pulumi stack output kubeconfig --show-secrets --stack dev > .lab/dev/kubeconfig && chmod 600 .lab/dev/kubeconfig
It points at the first server (https://127.77.0.11:6443, context "dev"). The simulated lab has no real
API server: use the k3s stand-in on the first server to look at the cluster:
  ssh -i dev/keys/deploy_ed25519 -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no root@127.77.0.11 k3s kubectl get nodes
Lab status: node bin/lab/cli.js status --dir .lab/dev
MSG
