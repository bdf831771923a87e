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
# The resource plugins (kubernetes, random, command) are installed from the toolchain's builds
# (scripts/pulumi-plugins.sh): never let the engine try to download one.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
bash scripts/pulumi-plugins.sh --check

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

# The hint uses this stack's own addresses and host keys: the API server from the kubeconfig output, the
# first server's SSH login from the stack config, its host key from the knownHosts output (pinned in
# config, or learned when the node was flashed), checked strictly.
umask 077
pulumi stack output kubeconfig --show-secrets --stack dev > .lab/dev/kubeconfig
pulumi stack output knownHosts --stack dev > .lab/dev/known_hosts
server=$(sed -n 's/^ *server: *//p' .lab/dev/kubeconfig | head -n 1)
api_host=$(printf '%s' "$server" | sed -E 's#^https://([^:/]+).*#\1#')
ssh_login=$(node -e '
  const y = require("yaml").parse(require("fs").readFileSync("Pulumi.dev.yaml", "utf8"));
  const n = (y.config["isar-k3s:nodes"] || []).find((x) => x.address === process.argv[1]) || {};
  const s = n.ssh || {};
  // nodes log in as the deploy user (deployUser, default "deploy"): root logins are refused
  process.stdout.write(`${s.user || y.config["isar-k3s:deployUser"] || "deploy"} ${s.port || 22}`);
' "$api_host")
read -r ssh_user ssh_port <<<"$ssh_login"
# every server runs a kube-apiserver on its address:6443 (the kubeconfig names the first one)
servers=$(node -e '
  const y = require("yaml").parse(require("fs").readFileSync("Pulumi.dev.yaml", "utf8"));
  process.stdout.write((y.config["isar-k3s:nodes"] || []).filter((n) => n.role === "server").map((n) => n.address).join(" "));
')
kubectl="$(cat .k8s-components-dir)/bin/kubectl"
readyz=""
for a in $servers; do
  readyz+="  $kubectl --kubeconfig .lab/dev/kubeconfig --server https://$a:6443 get --raw /readyz"$'\n'
done
cat <<MSG

[dev] done. The cluster's admin kubeconfig (a secret stack output) is in .lab/dev/kubeconfig (mode 0600);
its API server is $server. The nodes' SSH host keys are in .lab/dev/known_hosts.
  source scripts/pulumi-env.sh
  pulumi stack output kubeconfig --show-secrets --stack dev > .lab/dev/kubeconfig   # refresh it
The API servers are the servers' real kube-apiservers (one etcd cluster of all the servers); kubectl
comes with the lab's Kubernetes components (scripts/k8s-components.sh):
  $kubectl --kubeconfig .lab/dev/kubeconfig get nodes
${readyz}k3s's own CLI on the first server:
  ssh -i dev/keys/deploy_ed25519 -p $ssh_port -o UserKnownHostsFile=.lab/dev/known_hosts -o StrictHostKeyChecking=yes $ssh_user@$api_host sudo -n k3s kubectl get nodes
Lab status: node bin/lab/cli.js status --dir .lab/dev
MSG
