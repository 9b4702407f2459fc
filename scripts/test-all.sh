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
# The vLLM worker extension's tests (Python). pytest exits 5 when it collects nothing: a moved
# or renamed test folder must fail here, not pass unnoticed.
status=0
.venv/bin/python -m pytest -q packages/adapter-vllm/python || status=$?
if [ "$status" -eq 5 ]; then
  echo "test-all: pytest collected no tests in packages/adapter-vllm/python" >&2
  exit 1
fi
exit "$status"
