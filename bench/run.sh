#!/usr/bin/env bash
# Run the benchmarks (after `npm run build`); each prints its own figures. Heavy: several GiB of I/O.
#   bash bench/run.sh [hash|swu|upload|images|preview|rollout]...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/pulumi-env.sh
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
for b in "${@:-hash swu upload images preview rollout}"; do
  for one in $b; do
    case "$one" in
      hash) node bin/bench/hash.js ;;
      swu) node bin/bench/swu-bundle.js ;;
      upload) node bin/bench/upload.js ;;
      images) node bin/bench/images.js ;;
      preview) node bin/bench/preview.js 10 50 200 ;;
      rollout) node bin/bench/rollout.js ;;
      *) echo "unknown benchmark $one" >&2; exit 2 ;;
    esac
  done
done
