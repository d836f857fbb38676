"""`embedmap classify`, run as a user runs it: train from a labels file, every record tagged (export),
the next records to label, a new partition tagged by the next `embedmap build` without training again,
and bad input told in one paragraph."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
from support.classified import KINDS, partition_frame

EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBEDMAP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=600)


def _build(tmp_path: Path) -> subprocess.CompletedProcess:
    return run("build", str(tmp_path / "landing" / "*.parquet"), "--text-column", "text", "--vector-column", "emb",
               "--home", str(tmp_path / "home"), "--name", "tickets", cwd=tmp_path)


def _export(tmp_path: Path) -> pl.DataFrame:
    out = tmp_path / "points.parquet"
    done = run("export", "--home", str(tmp_path / "home"), "--out", str(out), "--with-text", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return pl.read_parquet(out)


def test_classify_tags_every_record_lists_the_next_ones_and_the_next_build_tags_a_new_partition(tmp_path):
    (tmp_path / "landing").mkdir()
    for part in (1, 2):
        partition_frame(part).write_parquet(tmp_path / "landing" / f"p{part}.parquet")
    assert _build(tmp_path).returncode == 0
    labels = tmp_path / "labels.csv"
    pl.DataFrame({"id": [f"p1-{i}" for i in range(12)] + ["nope"],
                  "label": [KINDS[i % 3] for i in range(12)] + ["login"]}).write_csv(labels)
    done = run("classify", "--home", str(tmp_path / "home"), "--classifier", "kind", "--examples", str(labels),
               "--min-macro-f1", "0.8", "--uncertain", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "classifier 'kind': examples, 3 classes, 12 labelled records (1 ids not in the map, left out)" in out
    assert "cross-validated (4 folds): accuracy 1.000" in out and "check cross_validated_macro_f1: passed" in out
    assert "the 5 records classifier 'kind' is least sure about" in out and "Traceback" not in out
    points = _export(tmp_path)
    assert points.height == 90 and points["class_kind"].null_count() < 5
    assert (points["class_kind"] == points["text"].str.split(" ").list.first()).sum() >= 85
    model = (tmp_path / "home" / "tickets" / "classifiers" / "kind.npz").read_bytes()

    # a new partition lands: the next build places it and tags it with the classifier as it is
    partition_frame(3).write_parquet(tmp_path / "landing" / "p3.parquet")
    done = _build(tmp_path)
    assert done.returncode == 0, done.stderr
    # tagged in its own partition's run, before topics and the map: one run, the map drawn once
    assert "[1/1] partition p3: documents -> embeddings -> collection -> projection -> classes_kind -> topics -> map" \
        in done.stdout + done.stderr
    points = _export(tmp_path)
    p3 = points.filter(pl.col("partition") == "p3")
    assert p3.height == 45 and (p3["class_kind"] == p3["text"].str.split(" ").list.first()).sum() >= 43
    page = (tmp_path / "home" / "tickets" / "map.html").read_text("utf-8")
    data = json.loads(page.split('id="embedmap-data">', 1)[1].split("</script>", 1)[0])
    kind = next(c for c in data["meta"] if c["name"] == "class_kind")
    shown = [kind["values"][code] for pid, code in zip(data["id"], kind["codes"]) if pid.startswith("p3-")]
    assert len(shown) == 45 and sum(v in KINDS for v in shown) >= 43  # the page shows the new partition's classes
    assert (tmp_path / "home" / "tickets" / "classifiers" / "kind.npz").read_bytes() == model

    # the next records to label, of the classifier already trained, as JSON lines
    done = run("classify", "--home", str(tmp_path / "home"), "--classifier", "kind", "--uncertain", "3", "--json",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 3 and all('"margin"' in r for r in rows)
    assert not any(f'"id": "p1-{i}"' in done.stdout for i in range(12))  # the labelled ones are not listed

    # a second classifier, multi-label: a record may have several rows; both classifiers stay with the map
    multi = tmp_path / "tags.csv"
    rows = [(f"p1-{i}", KINDS[i % 3]) for i in range(18)] + [(f"p1-{i}", "account") for i in range(18) if i % 3 < 2]
    pl.DataFrame({"id": [r[0] for r in rows], "label": [r[1] for r in rows]}).write_csv(multi)
    done = run("classify", "--home", str(tmp_path / "home"), "--classifier", "tags", "--examples", str(multi),
               "--multi-label", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "classifier 'tags': examples, multi-label, 4 classes, 18 labelled records" in done.stdout + done.stderr
    points = _export(tmp_path)
    want = {0: ["account", "billing"], 1: ["account", "login"], 2: ["shipping"]}
    right = sum(sorted(t) == want[int(i.split("-")[1]) % 3] for i, t in zip(points["id"], points["class_tags"]))
    assert points.height == 135 and right >= 128 and points["class_kind"].null_count() < 8


def test_bad_classify_input_is_one_paragraph(tmp_path):
    (tmp_path / "landing").mkdir()
    partition_frame(1).write_parquet(tmp_path / "landing" / "p1.parquet")
    partition_frame(2).write_parquet(tmp_path / "landing" / "p2.parquet")
    assert _build(tmp_path).returncode == 0
    home = str(tmp_path / "home")
    cases = {
        ("--classifier", "kind", "--examples", str(tmp_path / "missing.csv")): "does not exist",
        ("--classifier", "Bad Name", "--describe", "a=b"): "classifier name 'Bad Name'",
        ("--classifier", "kind", "--uncertain", "5"): "is not trained yet",
        ("--classifier", "kind"): "give --examples FILE, --label-column COLUMN or --describe LABEL=TEXT",
        ("--classifier", "kind", "--describe", "nolabel"): "give LABEL=",
        ("--classifier", "kind", "--label-column", "team"): "label column 'team' is in no partition's records",
    }
    for args, said in cases.items():
        done = run("classify", "--home", home, *args, cwd=tmp_path)
        text = done.stdout + done.stderr
        assert done.returncode != 0 and said in text and "Traceback" not in text, (args, text)
    assert not (tmp_path / "home" / "tickets" / "classifiers" / "kind.npz").exists()
