#!/usr/bin/env bash
# Set up (if needed) and build the demo map: 2,000 Wikipedia summaries on the embedded Qdrant.
# Extra arguments go to `embedmap demo` (e.g. --full, --size 500, --home DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"  # setup.sh compiles the layout kernels into it
bash scripts/setup.sh
exec .venv/bin/embedmap demo "$@"
