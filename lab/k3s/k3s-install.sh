#!/bin/sh
# k3s-install.sh: stand-in for k3s's install.sh in the simulated lab (airgap only:
# INSTALL_K3S_SKIP_DOWNLOAD=true, INSTALL_K3S_EXEC=server|agent or K3S_URL). See lab/k3s/README.md.
# Runs lib/service.js install with the node on PATH (or $K3S_SIM_NODE).
set -e
here=$(dirname "$(readlink -f "$0")")
node=${K3S_SIM_NODE:-$(command -v node || echo "$here/../../node_modules/.bin/node")}
exec "$node" "$here/k3s" k3s-sim-install "$@"
