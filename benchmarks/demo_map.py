"""The demo map the quality benchmarks score: built fresh in a temp folder, or reused with --reuse."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="map home (default: a fresh temp folder)")
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--reuse", action="store_true", help="score the map already in --home, do not rebuild")


def demo_home(args: argparse.Namespace, prefix: str) -> Path | None:
    """The home of the demo map ``args`` asks for, built first unless ``--reuse``; None if the build failed."""
    home = Path(args.home or tempfile.mkdtemp(prefix=prefix)).resolve()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))
    if not args.reuse:
        from dagster_embedmap.cli import main as cli

        started = time.perf_counter()
        if cli(["demo", "--home", str(home), "--size", str(args.size)]) != 0:
            return None
        print(f"\nbuilt the map in {time.perf_counter() - started:.1f} s")
    return home
