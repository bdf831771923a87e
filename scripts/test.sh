#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: set up (scripts/setup.sh), compile, lint, then jest with the
# real tools (nix, swupdate, sshd, kas-container, the Go-built Pulumi engine). Extra arguments go to jest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# npm itself (for `npm run lint`): the machine's, or the one setup bootstrapped into the cache.
source scripts/lib/bootstrap.sh
ensure_npm
export PATH="$PWD/node_modules/.bin:$PATH"
if [ -f .pulumi-bin-dir ]; then export PATH="$(cat .pulumi-bin-dir):$PATH"; fi
tsc -p tsconfig.json
# lint and format check (eslint.config.js, .prettierrc.json): an error fails the test command
npm run --silent lint
results=$(mktemp)
set +e
jest --ci --json --outputFile="$results" "$@"
rc=$?
set -e
# The closing line CI reads: "N passed, N failed, N skipped" (the results file has no .json suffix, so
# it is parsed, not required).
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests} skipped`)' "$results" || true
rm -f "$results"
exit $rc
