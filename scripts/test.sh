#!/usr/bin/env bash
# The test command: builds/refreshes the environment (idempotent), then runs the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k conversions -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${FLM_VENV:-$ROOT/.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
