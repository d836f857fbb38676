"""Shared test set-up: offline model hub, a warm numba cache, and a small real corpus."""

import os
from pathlib import Path

# Before anything imports transformers / numba.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "numba"))

import polars as pl
import pytest

from dagster_embedmap.core.records.datasets import load_wiki_summaries


def pytest_collection_modifyitems(session, config, items):
    """Modules marked ``slow`` first: scripts/test.sh runs the suite on parallel workers, one module
    at a time each (``--dist loadfile --no-loadscope-reorder``), so the longest start first and the
    short ones fill in around them. In a serial run the order is left alone (the fast tier first).
    The workers collect (``workerinput`` marks one; their ``-n`` option reads None), the controller
    hands out their modules in that order."""
    if hasattr(config, "workerinput"):
        items[:] = sorted(items, key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def wiki_small() -> pl.DataFrame:
    """120 real Wikipedia summaries in 2 batches (ids are titles; category and description as metadata)."""
    return load_wiki_summaries(n=120, batches=2, seed=1)
