#!/usr/bin/env bash
# A venv at .venv with what the Python-side tests use (safetensors readers, PyTorch CPU, and
# transformers for the vLLM extension's tiny Llama).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# --retries 0: an index we cannot reach must fail fast, not stall the install for minutes.
.venv/bin/pip install --quiet --retries 0 --timeout 5 -r scripts/python-requirements.txt
