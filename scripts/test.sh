#!/usr/bin/env bash
# Set up (if needed) and run the test suite: tests/unit (core and steps: no model, no browser, no
# Dagster run; under a minute) and tests/integration (the real model, Qdrant, Chromium, whole graphs).
#   bash scripts/test.sh            # both tiers (what CI runs)
#   bash scripts/test.sh --fast     # the unit tier only
# Extra arguments go to pytest. The tests run on EMBEDMAP_TEST_WORKERS parallel workers (default 2,
# one module at a time each, the slow modules first; 1: one process, in file order).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"  # setup.sh compiles the layout kernels into it
bash scripts/setup.sh
workers="${EMBEDMAP_TEST_WORKERS:-2}"
parallel=()
if [ "$workers" != 1 ]; then
  parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
fi
if [ "${1:-}" = "--fast" ]; then
  shift
  exec .venv/bin/python -m pytest tests/unit "${parallel[@]}" "$@"
fi
# the example code location loads (what `bash scripts/ui.sh` and `dagster dev -w workspace.yaml` load), and the example dg
# project: each defs.yaml against its component's schema (one folder at a time: dg checks only one
# file per component type when given none), then its definitions. Their output goes to a log, shown
# only when a check fails.
checklog=".venv/check.log"
if ! { .venv/bin/dagster definitions validate -w workspace.yaml \
  && (cd examples/embedmap_example && for d in src/embedmap_example/defs/*/; do
    [ -f "$d/defs.yaml" ] && ../../.venv/bin/dg check yaml "$d"
  done && ../../.venv/bin/dg check defs); } >"$checklog" 2>&1; then
  cat "$checklog" >&2
  echo "test: FAILED: the example definitions do not load (log: $checklog)" >&2
  exit 1
fi
echo "test: workspace.yaml and the example dg project load (log: $checklog)"
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
