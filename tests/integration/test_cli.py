"""The `embedmap` command, run as a user runs it: build from a file, export the points, bad input."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBEDMAP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=600)


def test_build_then_export(tmp_path, wiki_small):
    sample = wiki_small.slice(30, 60)  # 30 records of each batch
    sample.write_ndjson(tmp_path / "articles.jsonl")
    built = run("build", "articles.jsonl", "--text-column", "text", "--id-column", "id",
                "--partition-column", "batch", "--home", "maps", cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    out = built.stdout
    html = tmp_path / "maps" / "articles" / "map.html"
    assert f"map        {html}" in out and html.stat().st_size > 5_000
    assert "collection 'articles' in embedded:" in out and "(60 points)" in out
    assert "checks     all passed" in out and "top topics" in out and "top broad topics" in out
    assert "[1/2] partition batch-000" in out and "[2/2] partition batch-001" in out

    exported = run("export", "--home", "maps", "--out", "points.parquet", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    points = pl.read_parquet(tmp_path / "points.parquet")
    assert points.columns[:6] == ["id", "partition", "x", "y", "topic_id", "topic_label"]
    assert "text" not in points.columns and "category" in points.columns
    assert points.height == 60 and sorted(points["id"]) == sorted(sample["id"])
    assert points["x"].null_count() == 0 and (points["topic_id"] >= 0).all()
    assert points["topic_label"].str.len_chars().min() > 0
    # every level of the topic tree, broadest first; the finest is topic_id; no bookkeeping fields
    assert {"topic_0_id", "topic_0_label", "topic_1_id", "topic_1_label"} <= set(points.columns)
    assert (points["topic_1_id"] == points["topic_id"]).all() and (points["topic_0_id"] >= 0).all()
    assert points.group_by("topic_1_id").agg(pl.col("topic_0_id").n_unique())["topic_0_id"].max() == 1
    assert not {"content_hash", "layout_version"} & set(points.columns)

    # --with-text: the whole text (the payload keeps a snippet), as viewers like Embedding Atlas want it
    assert run("export", "--home", "maps", "--out", "full.parquet", "--with-text", cwd=tmp_path).returncode == 0
    full = pl.read_parquet(tmp_path / "full.parquet").join(sample.select("id", pl.col("text").alias("orig")), on="id")
    assert full.height == 60 and (full["text"] == full["orig"]).all()

    found = run("search", "--home", "maps", "a disease of the human body", "-k", "3", cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-3000:]
    ranked = [line for line in found.stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert [line.split(".")[0].strip() for line in ranked] == ["1", "2", "3"]
    assert "[topic " in ranked[0] and " > " in ranked[0]  # broad > fine topic
    broad = points.row(0, named=True)["topic_0_label"]
    within = run("search", "--home", "maps", "history", "--topic", broad, "--level", "0", "--json", cwd=tmp_path)
    assert within.returncode == 0, within.stderr[-3000:]
    import json

    hits = [json.loads(line) for line in within.stdout.splitlines()]
    assert hits and all(h["topic_path"][0] == broad for h in hits)


def test_search_output_cannot_carry_terminal_escapes():
    from dagster_embedmap.cli.output import _one_line

    hostile = "name\x1b]0;owned\x07 \x1b[2J<script>\nnext line"
    shown = _one_line(hostile, 200)
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert shown == "name ]0;owned [2J<script> next line"


def test_build_names_a_missing_column_and_exits_2(tmp_path, wiki_small):
    wiki_small.head(5).write_csv(tmp_path / "few.csv")
    failed = run("build", "few.csv", "--text-column", "body", "--home", "maps", cwd=tmp_path)
    assert failed.returncode == 2
    assert "column(s) ['body'] not found" in failed.stderr and "'text'" in failed.stderr
    assert "partition 'all'" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_export_without_a_map_says_what_to_do(tmp_path):
    result = run("export", "--home", "empty", "--out", "p.parquet", cwd=tmp_path)
    assert result.returncode != 0 and "run `embedmap build` or `embedmap demo` first" in result.stderr
