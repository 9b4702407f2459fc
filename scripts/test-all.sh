#!/usr/bin/env bash
# The README's test command: installs everything the tests need on a fresh machine of our kind
# (Debian, Node 20, root) and runs lint, build and every package's tests, all through nx.
set -euo pipefail
cd "$(dirname "$0")/.."
export NX_DAEMON=false
# node-gyp builds the addons against the system Node's headers when it has them (no download);
# this is the repository's own choice for machines of our kind, never part of a published script.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
bash scripts/install-system-deps.sh
npm ci --no-audit --no-fund
bash scripts/setup-python.sh
npm run lint
npm run build
# nx builds what each project needs and runs every project's tests (vitest; the vLLM extension's
# pytest inside adapter-vllm's test target); the last line is the totals over all projects. This
# command always runs them afresh (a cached replay proves nothing about this machine); `npm test`
# is the cached form for day-to-day work.
node scripts/run-tests.mjs --skip-nx-cache "$@"
