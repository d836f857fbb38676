"""`embedmap build` again: only new or changed partitions run, and nothing at all when nothing changed."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBEDMAP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=600)


def records(start: int, n: int, seed: int) -> pl.DataFrame:
    """``n`` records with given 16-d vectors in 3 groups, and a group column."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(3, 16)) * 4
    group = rng.integers(0, 3, size=n)
    vectors = (centres[group] + rng.normal(size=(n, 16))).astype(np.float32)
    words = [["orbit", "rocket", "launch"], ["violin", "sonata", "chord"], ["wheat", "harvest", "soil"]]
    return pl.DataFrame({"id": [f"r{start + i}" for i in range(n)],
                         "text": [" ".join(rng.choice(words[g], size=5)) for g in group],
                         "group": [f"g{g}" for g in group],
                         "emb": pl.Series(vectors.tolist(), dtype=pl.List(pl.Float32))})


def partitions_run(out: str) -> list[str]:
    return re.findall(r"^\[\d+/\d+\] partition (\S+): documents", out, flags=re.M)


def point_ids(home: Path, name: str) -> list[str]:
    from dagster_embedmap.core.store import StoreLocation, open_store
    from dagster_embedmap.core.store.payload import points_frame

    with open_store(StoreLocation(path=str(home / "qdrant")), name, read_only=True) as store:
        return sorted(points_frame(store)["id"].to_list())


def test_a_rebuild_runs_only_new_or_changed_files_and_nothing_when_unchanged(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    for p in range(3):
        records(p * 80, 80, seed=p).write_parquet(landing / f"day-{p}.parquet")
    build = ("build", str(landing / "*.parquet"), "--text-column", "text", "--vector-column", "emb",
             "--home", "maps", "--name", "days")

    first = run(*build, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert partitions_run(first.stdout) == ["day-0", "day-1", "day-2"]
    assert "3 of 3 partition(s) new or changed" in first.stdout
    html = tmp_path / "maps" / "days" / "map.html"
    built_at = html.stat().st_mtime_ns

    again = run(*build, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert partitions_run(again.stdout) == [] and "topics -> map" not in again.stdout
    assert "map 'days' is up to date: its 3 partition(s) are unchanged since the last build" in again.stdout
    assert html.stat().st_mtime_ns == built_at  # not even the map was written again

    records(240, 12, seed=7).write_parquet(landing / "day-3.parquet")  # a new file lands
    records(80, 80, seed=1).head(70).write_parquet(landing / "day-1.parquet")  # and one loses 10 records
    more = run(*build, cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    assert partitions_run(more.stdout) == ["day-1", "day-3"]
    assert "2 of 4 partition(s) new or changed; 2 unchanged since the last build, not run again" in more.stdout
    assert "layout model" not in more.stdout  # the layout is kept: new points are placed on it
    assert "topics -> map" in more.stdout and "(242 points)" in more.stdout, more.stdout
    expected = [f"r{i}" for i in [*range(0, 150), *range(160, 252)]]
    assert point_ids(tmp_path / "maps", "days") == sorted(expected)
    assert run(*build, cwd=tmp_path).stdout.startswith("map 'days' is up to date: its 4 partition(s)")

    # other build settings write other records: every partition runs again
    texts = run(*build[:-2], "--name", "days", "--id-column", "id", "--empty-text", "fail", cwd=tmp_path)
    assert texts.returncode == 0, texts.stderr[-3000:]
    assert "the build settings changed since the last build: all 4 partition(s) run again" in texts.stdout
    assert partitions_run(texts.stdout) == ["day-0", "day-1", "day-2", "day-3"]


def test_a_lost_store_or_an_unfinished_build_is_not_taken_for_up_to_date(tmp_path):
    records(0, 150, seed=3).write_parquet(tmp_path / "all.parquet")
    build = ("build", "all.parquet", "--text-column", "text", "--vector-column", "emb", "--home", "maps",
             "--partition-column", "group")
    assert run(*build, cwd=tmp_path).returncode == 0

    # one partition's rows change inside the one file: only that partition runs
    frame = pl.read_parquet(tmp_path / "all.parquet")
    frame.with_columns(pl.when(pl.col("id") == frame.filter(pl.col("group") == "g2")["id"][0])
                       .then(pl.lit("harvest soil wheat harvest")).otherwise(pl.col("text")).alias("text")) \
        .write_parquet(tmp_path / "all.parquet")
    edited = run(*build, cwd=tmp_path)
    assert edited.returncode == 0, edited.stderr[-3000:]
    assert partitions_run(edited.stdout) == ["g2"]

    manifest = tmp_path / "maps" / "embedmap.json"
    state = json.loads(manifest.read_text())
    state["maps"]["all"]["complete"] = False  # as a build that stopped after its partitions
    manifest.write_text(json.dumps(state))
    unfinished = run(*build, cwd=tmp_path)
    assert unfinished.returncode == 0, unfinished.stderr[-3000:]
    assert partitions_run(unfinished.stdout) == [] and "topics -> map" in unfinished.stdout

    import shutil

    shutil.rmtree(tmp_path / "maps" / "qdrant")  # the store is gone: its points are written again
    rebuilt = run(*build, cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert "up to date" not in rebuilt.stdout and "(150 points)" in rebuilt.stdout
