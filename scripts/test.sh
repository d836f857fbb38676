#!/usr/bin/env bash
# Set up (if needed) and run the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
# the example code location loads (what `dagster dev -w workspace.yaml` loads)
.venv/bin/dagster definitions validate -w workspace.yaml
exec .venv/bin/python -m pytest "$@"
