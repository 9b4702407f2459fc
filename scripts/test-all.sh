#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh machine of our kind
# (Debian, Node 20, root) and runs lint, typecheck and every package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false npm_config_nodedir=${npm_config_nodedir:-/usr}
bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
bash scripts/setup-python.sh
npm run lint
npm run build
npx vitest run "$@"
