"""Cold start of the example code location: how long it takes to load, and which heavy modules it pulls in.

    .venv/bin/python benchmarks/cold_start.py            # median of 3 fresh processes each
    .venv/bin/python benchmarks/cold_start.py --runs 5

Two figures, each in fresh processes:

- ``dagster definitions validate -w workspace.yaml``: wall time of the whole command (what a deploy or
  ``dagster dev`` pays before the code location is up);
- ``import dagster_embedmap.examples.wiki`` (building the ``Definitions``): wall time of the process
  and the time of the import itself, plus which of the heavy modules (torch, sentence-transformers,
  umap, hdbscan, qdrant-client, scikit-learn, matplotlib, numba, pandas) ended up in ``sys.modules`` and
  which module imported each first. Target: under 3 s, and none of them loaded (they belong inside steps).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ["torch", "sentence_transformers", "transformers", "umap", "pynndescent", "hdbscan", "qdrant_client",
         "qdrant_edge", "sklearn", "matplotlib", "numba", "pandas", "scipy"]
TARGET_S = 3.0

PROBE = r"""
import builtins, json, sys, time
heavy = set(json.loads(sys.argv[1]))
first = {}
real_import = builtins.__import__
def spy(name, globals=None, locals=None, fromlist=(), level=0):
    top = name.split(".")[0] if level == 0 else None
    if top in heavy and top not in first and top not in sys.modules:
        first[top] = (globals or {}).get("__name__", "?")
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = spy
t = time.perf_counter()
import dagster_embedmap.examples.wiki as wiki
spent = time.perf_counter() - t
builtins.__import__ = real_import
loaded = sorted(m for m in heavy if m in sys.modules)
print(json.dumps({"import_s": spent, "loaded": loaded, "by": {m: first.get(m, "?") for m in loaded},
                  "defs": type(wiki.defs).__name__}))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    spent = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return spent, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", NUMBA_CACHE_DIR=str(ROOT / ".cache" / "numba"))
    bin_dir = Path(sys.executable).parent
    dagster = str(bin_dir / "dagster") if (bin_dir / "dagster").exists() else "dagster"

    timed([sys.executable, "-c", "import dagster_embedmap.examples.wiki"], env)  # warm the .pyc files once
    validate, process, imports, probe = [], [], [], None
    for _ in range(args.runs):
        validate.append(timed([dagster, "definitions", "validate", "-w", "workspace.yaml"], env)[0])
        wall, out = timed([sys.executable, "-c", PROBE, json.dumps(HEAVY)], env)
        probe = json.loads(out.strip().splitlines()[-1])
        process.append(wall)
        imports.append(probe["import_s"])

    def row(name, values):
        med = statistics.median(values)
        ok = "yes" if med < TARGET_S else "**no**"
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(f"| {name} | {med:.2f} | {spread} | {ok} |")

    print(f"{args.runs} fresh processes each; {os.cpu_count()} CPU cores\n")
    print(f"| figure | median (s) | range (s) | under {TARGET_S:.0f} s |")
    print("|---|---|---|---|")
    row("`dagster definitions validate -w workspace.yaml` (whole command)", validate)
    row("`python -c 'import dagster_embedmap.examples.wiki'` (whole process)", process)
    row("the import itself (Definitions built)", imports)
    loaded = probe["loaded"]
    print(f"\nheavy modules loaded by the import: {', '.join(loaded) if loaded else 'none'}")
    for mod, by in probe["by"].items():
        print(f"  {mod}: first imported by {by}")
    return 0 if not loaded and statistics.median(validate) < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
