#!/usr/bin/env bash
# The Dagster UI on the example dg project (the demo map `wiki` and the landing-folder map), started with
# `dg dev`, its run history in the repository's .embedmap/dagster (where `scripts/demo.sh` recorded its runs).
# Extra arguments go to `dg dev` (e.g. --port 3001).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/dg ] || bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.embedmap/dagster}"
mkdir -p "$DAGSTER_HOME"
[ -e "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
cd examples/embedmap_example
exec ../../.venv/bin/dg dev "$@"
