"""What a careful user does to a map through the CLI: edits records, fills the disk, breaks files in the
home, runs two builds at once, copies a home, presses Ctrl-C, feeds odd input. Each case runs the real
`embedmap` command in its own process (bundled model, embedded Qdrant) and checks what it printed and
what the map holds afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources
from dagster_embedmap.core.store import StoreLocation, open_store, point_id

from support.corpora import TOPICS, records, sentence

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*EMBEDMAP, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=os.environ.copy(), timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*EMBEDMAP, *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())


def build(folder: Path, home: str = "H", pattern: str = "p3/*.jsonl", *extra: str) -> subprocess.CompletedProcess:
    return run("build", pattern, "--text-column", "text", "--home", home, "--name", "m", *extra, cwd=folder)


def export(folder: Path, home: str = "H") -> pl.DataFrame:
    done = run("export", "--home", home, "--out", "points.parquet", cwd=folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return pl.read_parquet(folder / "points.parquet")


def write_p3(folder: Path) -> dict[str, list[dict]]:
    """p3/a.jsonl, b.jsonl, c.jsonl: 80 short records each, four topics in turn."""
    (folder / "p3").mkdir(parents=True, exist_ok=True)
    parts = {name: records(name, 80, seed=i) for i, name in enumerate("abc")}
    for name, rows in parts.items():
        write_jsonl(folder / "p3" / f"{name}.jsonl", rows)
    return parts


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A folder with p3/ and the map 'm' built from it in H/ (copied by each test)."""
    folder = tmp_path_factory.mktemp("cli_base")
    write_p3(folder)
    built = build(folder)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "checks     all passed" in built.stdout and "(240 points)" in built.stdout
    return folder


@pytest.fixture
def work(base, tmp_path) -> Path:
    folder = tmp_path / "work"
    shutil.copytree(base, folder, symlinks=True)
    return folder


def _neighbours(points: pl.DataFrame, rid: str, k: int = 5) -> pl.DataFrame:
    xy = points.select("x", "y").to_numpy()
    i = points["id"].to_list().index(rid)
    order = np.argsort(np.linalg.norm(xy - xy[i], axis=1))
    return points[[int(j) for j in order[1 : k + 1]]]


# -- 1. an edited record is placed and given a topic again ----------------------------------------


def test_an_edited_record_lands_among_its_new_neighbours_in_their_topic(work, tmp_path):
    path = work / "p3" / "a.jsonl"
    rows = read_jsonl(path)
    rows[0]["text"], rows[1]["text"] = rows[1]["text"], rows[0]["text"]  # a0 (space) <-> a1 (cooking)
    rows[0]["topic"], rows[1]["topic"] = rows[1]["topic"], rows[0]["topic"]
    rng = __import__("random").Random(7)
    edited = ["a0", "a1"]
    for row in rows[10:30]:  # 20 more records now talk about another topic
        row["topic"] = rng.choice([t for t in TOPICS if t != row["topic"]])
        row["text"] = sentence(row["topic"], rng)
        edited.append(row["id"])
    write_jsonl(path, rows)
    before = export(work)

    rebuilt = build(work)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    said = rebuilt.stdout + rebuilt.stderr
    assert "22 records embedded" in said and "58 unchanged reused" in said
    assert "checks     all passed" in rebuilt.stdout
    # no refit happened: the same layout version placed the edited records
    assert json.loads((work / "H" / "m" / "projection_model.json").read_text())["version"] == 1
    after = export(work)

    # a fresh build of the edited data, to compare with
    fresh_run = build(work, "FRESH")
    assert fresh_run.returncode == 0, fresh_run.stderr[-3000:]
    fresh = export(work, "FRESH")

    topic_of = {r["id"]: r["topic"] for name in "abc" for r in read_jsonl(work / "p3" / f"{name}.jsonl")}
    moved = 0
    for points in (after, fresh):
        updated = points is after
        points = points.with_columns(pl.col("id").replace_strict(topic_of).alias("class"))
        for rid in edited:
            mine = points.filter(pl.col("id") == rid).row(0, named=True)
            near = _neighbours(points, rid)
            assert (near["class"] == mine["class"]).sum() >= 4, (rid, mine["class"], near["class"].to_list())
            if updated:  # the update gives it its new neighbours' topic on the map
                assert mine["topic_id"] == near["topic_id"].mode().to_list()[0], (rid, near["topic_id"].to_list())
            else:  # a fresh build clusters the cluster space: one of its map neighbourhood's topics
                assert mine["topic_id"] in near["topic_id"].to_list(), (rid, near["topic_id"].to_list())
        # the topic of every edited record is a topic of its new class, in both maps
        fine = points.group_by("topic_id").agg(pl.col("class").mode().first().alias("major"))
        major = dict(zip(fine["topic_id"].to_list(), fine["major"].to_list()))
        assert all(major[points.filter(pl.col("id") == rid)["topic_id"][0]] == topic_of[rid] for rid in edited)
    for rid in edited:  # and the edited records really moved
        old = before.filter(pl.col("id") == rid).select("x", "y").to_numpy()[0]
        new = after.filter(pl.col("id") == rid).select("x", "y").to_numpy()[0]
        moved += int(np.linalg.norm(old - new) > 1.0)
    assert moved == len(edited)
    assert "22 record(s) changed their vector; they are placed and given a topic again" in said


def test_the_map_check_catches_a_point_placed_for_another_vector(work):
    """Through a real materialization of the map: a point whose stored coordinates were computed for
    another vector than the one it holds fails ``every_point_current``, naming the record."""
    home = work / "H"
    with open_store(StoreLocation(path=str(home / "qdrant")), "m") as store:
        store.set_payloads({point_id("m", "b7"): {"xy_hash": "0123456789abcdef"}})
    defs = dg.Definitions.merge(
        build_embedmap_defs("m", FileSource(str(work / "p3" / "*.jsonl")), home=home),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("m")
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets), selection=[keys.map], instance=instance, resources=defs.resources)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    current = checks["every_point_current"]
    assert not current.passed and checks["every_point_mapped"].passed
    assert current.metadata["stale_place"].value == 1 and "'b7'" in current.description


# -- 2. a full disk ----------------------------------------------------------------------------------


@contextmanager
def small_disk(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at ``folder`` (the tests run as root, as CI does)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"mounting a {size} tmpfs needs root: {mounted.stderr}"
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as fh:
        fh.truncate(0)
    subprocess.run(["fallocate", "-l", str(max(0, free - leave_bytes)), str(folder / "filler")], check=True)


def test_a_full_disk_fails_with_a_message_and_reads_still_work(work, tmp_path):
    with small_disk(tmp_path / "tiny", "3m") as tiny:
        first = build(work, str(tiny / "H"), "p3/a.jsonl")
        assert first.returncode == 2, (first.returncode, first.stderr[-2000:])  # not 135 (SIGBUS)
        message = first.stderr.strip().splitlines()[-1]
        assert f"not enough free space for the embedded Qdrant in {tiny / 'H' / 'qdrant' / 'edge'}" in message
        assert "MiB free, about 160.0 MiB needed to create collection 'm'" in message
        assert "Traceback" not in first.stderr + first.stdout

    with small_disk(tmp_path / "small", "40m") as small:
        subprocess.run(["cp", "-a", "--sparse=always", str(work / "H"), str(small / "H")], check=True)
        _fill(small, 3 << 20)  # 3 MiB left
        points = export(work, str(small / "H"))  # reading needs no space where the map lives
        assert points.height == 240
        found = run("search", "--home", small / "H", "a goal in the stadium", "-k", "3", cwd=work)
        assert found.returncode == 0 and "1. " in found.stdout, found.stderr[-2000:]
        rows = read_jsonl(work / "p3" / "b.jsonl")
        rows[0]["text"] = "An edit that cannot be written."
        write_jsonl(work / "p3" / "b.jsonl", rows)
        refused = build(work, str(small / "H"))
        assert refused.returncode == 2, (refused.returncode, refused.stderr[-2000:])
        assert "not enough free space for the embedded Qdrant" in refused.stderr and "Nothing was written" in refused.stderr
        unchanged = export(work, str(small / "H"))
        assert unchanged.sort("id").equals(points.sort("id"))  # the store is as it was
        assert not list(Path(tempfile_dir()).glob("embedmap-read-*"))  # the private read copies are gone


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


# -- 3 and 4. broken files in the home --------------------------------------------------------------


def test_a_truncated_embeddings_file_is_named_set_aside_and_rebuilt(work):
    path = work / "H" / "m" / "embeddings" / "a.parquet"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    rebuilt = build(work)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    assert f"warning: {path} could not be read" in rebuilt.stderr and "set aside as a.parquet.corrupt-" in rebuilt.stderr
    assert "every record of the partition is embedded again" in rebuilt.stderr
    assert "partition 'a': 80 records embedded" in rebuilt.stdout and "checks     all passed" in rebuilt.stdout
    assert "Traceback" not in rebuilt.stderr
    assert len(list(path.parent.glob("a.parquet.corrupt-*"))) == 1
    assert export(work).height == 240


def test_garbled_state_files_are_named_and_recovered(work):
    home = work / "H"
    garbage = "{garbage"
    (home / "embedmap.json").write_text(garbage)
    exported = run("export", "--home", "H", "--out", "points.parquet", cwd=work)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert f"warning: {home / 'embedmap.json'} could not be read (JSONDecodeError" in exported.stderr
    assert "it holds the list of the maps built in this home" in exported.stderr
    assert "the maps are found from the home's folders instead" in exported.stderr
    assert pl.read_parquet(work / "points.parquet").height == 240
    found = run("search", "--home", "H", "interest rates", "-k", "1", cwd=work)
    assert found.returncode == 0 and "1. " in found.stdout, found.stderr[-3000:]

    for name in ("topics_state.json", "projection_model.json", "projection_model.pkl", "topics.parquet"):
        (home / "m" / name).write_text(garbage)
    (home / "embedmap.json").write_text(garbage)
    rebuilt = build(work)
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    err = rebuilt.stderr
    for name, what in [("projection_model.pkl", "the map's fitted layout model"),
                       ("projection_model.json", None),  # rewritten by the refit the broken model causes
                       ("topics_state.json", "which layout version the topics were clustered on"),
                       ("topics.parquet", "the topic table"), ]:
        if what:
            assert f"{home / 'm' / name} could not be read" in err and what in err, (name, err)
    assert "the layout is fitted again" in err and "the topics are clustered again" in err
    assert "layout model (UMAP" in rebuilt.stdout and "checks     all passed" in rebuilt.stdout
    assert json.loads((home / "embedmap.json").read_text())["maps"]["m"]["input"] == "p3/*.jsonl"
    assert json.loads((home / "m" / "projection_model.json").read_text())["version"] == 2  # after version 1
    assert "Traceback" not in err

    (home / "m" / "projection_model.json").write_text(garbage)  # alone: named, and written again from the model
    again = build(work)
    assert again.returncode == 0 and f"{home / 'm' / 'projection_model.json'} could not be read" in again.stderr
    assert json.loads((home / "m" / "projection_model.json").read_text())["version"] == 2


# -- 5. two builds of one map at once ---------------------------------------------------------------


def test_two_builds_of_one_map_take_turns_and_the_manifest_matches_the_store(tmp_path):
    rows_a, rows_b = records("a", 60, seed=1), records("b", 60, seed=2)
    write_jsonl(tmp_path / "a.jsonl", rows_a)
    write_jsonl(tmp_path / "b.jsonl", rows_b)
    first = start("build", "a.jsonl", "--text-column", "text", "--home", "H", "--name", "m", cwd=tmp_path)
    line = first.stdout.readline()  # printed once it holds the map's build lock
    assert line.startswith("1 of 1 partition(s) new or changed"), line
    second = start("build", "b.jsonl", "--text-column", "text", "--home", "H", "--name", "m", cwd=tmp_path)
    out_a, err_a = first.communicate(timeout=600)
    out_b, err_b = second.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (err_a[-2000:], err_b[-2000:])
    assert out_b.startswith(f"waiting for another build of map 'm' in {tmp_path / 'H'} to finish")
    manifest = json.loads((tmp_path / "H" / "embedmap.json").read_text())["maps"]["m"]
    assert manifest["input"] == "b.jsonl" and manifest["complete"] is True
    points = export(tmp_path)
    assert sorted(points["id"]) == sorted(r["id"] for r in rows_b)


# -- 6. a copied home ------------------------------------------------------------------------------


def test_a_copied_home_reads_its_own_store_only(work):
    manifest = json.loads((work / "H" / "embedmap.json").read_text())["maps"]["m"]
    assert manifest["qdrant_path"] == "qdrant"  # relative to the home
    shutil.copytree(work / "H", work / "H2")
    shutil.rmtree(work / "H2" / "qdrant")
    missing = run("export", "--home", "H2", "--out", "x.parquet", cwd=work)
    assert missing.returncode != 0 and f"has no points in {work / 'H2' / 'qdrant'}" in missing.stderr
    shutil.copytree(work / "H", work / "H3")
    shutil.rmtree(work / "H")
    assert export(work, "H3").height == 240


# -- 7. Ctrl-C and tiny maps ------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["[2/3] partition b", "layout model"])
def test_ctrl_c_prints_one_line_exits_130_and_a_rerun_finishes(tmp_path, when):
    write_p3(tmp_path)
    proc = start("build", "p3/*.jsonl", "--text-column", "text", "--home", "H", "--name", "m", cwd=tmp_path)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(when):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("embedmap: interrupted during"), err[-3000:]
    assert "Run the same command again to finish" in lines[0]
    if when == "layout model":
        assert "partition(s) a, b, c are written to the collection, not yet placed" in lines[0]
    assert "Traceback" not in out + err and "DagsterExecutionInterruptedError" not in out + err
    again = run("build", "p3/*.jsonl", "--text-column", "text", "--home", "H", "--name", "m", cwd=tmp_path)
    assert again.returncode == 0 and "checks     all passed" in again.stdout, again.stderr[-3000:]
    assert "(240 points)" in again.stdout


def test_a_map_of_two_records_says_what_to_do(tmp_path):
    write_jsonl(tmp_path / "two.jsonl", records("t", 2, seed=3))
    done = run("build", "two.jsonl", "--text-column", "text", "--home", "H", cwd=tmp_path)
    assert done.returncode == 2
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("embedmap: map 'two' has 2 record(s); laying a map out in 2-D needs at least 3")
    assert "Add records to its source and build again" in message and "Traceback" not in done.stderr


# -- 8. odd input -----------------------------------------------------------------------------------


def test_a_bad_jsonl_line_is_named(tmp_path):
    rows = records("j", 10, seed=4)
    lines = [json.dumps(r) for r in rows]
    lines[6] = '{"id": "j6", "text": "cut off'
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    done = run("build", "bad.jsonl", "--text-column", "text", "--home", "H", cwd=tmp_path)
    assert done.returncode == 2
    assert "bad.jsonl: could not be read as jsonl: line 7 is not a JSON object" in done.stderr
    assert "cut off" in done.stderr and "Traceback" not in done.stderr


EMOJI = {"food": "🍕🍔🍟🌭🍩🍪🍰🍣", "sport": "⚽🏀🏈🎾🏐⚾🏉🥊", "space": "🚀🛰🌍🌙🪐🌟🔭🌌",
         "animals": "🐶🐱🐭🐹🐰🦊🐻🐼"}
CJK = {"天文": ["望遠鏡で遠い銀河を観測した", "ロケットが惑星の軌道に到達した", "彗星が星の近くを通過した",
              "探査機が火星に着陸した"],
       "料理": ["トマトソースをにんにくと煮込む", "パンをこんがり焼く", "卵と砂糖を泡立ててケーキを作る",
              "玉ねぎをオリーブオイルで炒める"],
       "蹴球": ["ストライカーが終盤にゴールを決めた", "ゴールキーパーがペナルティを止めた", "チームがリーグで優勝した",
              "審判がレッドカードを出した"],
       "金融": ["銀行が金利を引き上げた", "株式市場がインフレ懸念で下落した", "投資家が国債を買った",
              "会社が四半期決算を発表した"]}


def test_emoji_and_cjk_texts_get_topics_named_by_their_characters_and_reserved_columns_are_said(tmp_path):
    import random

    rng = random.Random(5)
    rows = []
    for group, symbols in EMOJI.items():
        for i in range(20):
            rows.append({"id": f"e-{group}-{i}", "text": "".join(rng.sample(symbols, 3)), "group": group})
    for group, phrases in CJK.items():
        for i in range(20):
            first, second = rng.sample(phrases, 2)
            rows.append({"id": f"c-{group}-{i}", "text": f"{rng.choice(['昨日', '今日', '先週'])}、{first}。{second}。",
                         "group": group})
    for row in rows:  # input columns named like the map's own fields
        row.update({"x": 1.5, "partition": "p", "topic_id": 3})
    write_jsonl(tmp_path / "odd.jsonl", rows)
    built = run("build", "odd.jsonl", "--text-column", "text", "--home", "H", cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "'x' -> 'meta_x', 'partition' -> 'meta_partition', 'topic_id' -> 'meta_topic_id'" in built.stderr
    exported = run("export", "--home", "H", "--out", "points.parquet", cwd=tmp_path)
    assert "note: meta_x, meta_partition, meta_topic_id are the input's columns x, partition, topic_id" in exported.stdout
    points = pl.read_parquet(tmp_path / "points.parquet")
    assert {"meta_x", "meta_partition", "meta_topic_id"} <= set(points.columns)
    group_of = {r["id"]: r["group"] for r in rows}
    points = points.with_columns(pl.col("id").replace_strict(group_of).alias("group"))
    labels = points["topic_label"].unique().to_list()
    assert not [label for label in labels if label.startswith("topic ")], labels
    emoji = points.filter(pl.col("id").str.starts_with("e-"))
    # the model is given the emoji's names, so emoji texts do not collapse into one topic
    assert emoji["topic_id"].n_unique() >= 3
    for label in emoji["topic_label"].unique():
        assert any(ch in "".join(EMOJI.values()) for ch in label), label
    for label in points.filter(pl.col("id").str.starts_with("c-"))["topic_label"].unique():
        assert any("\u3040" <= ch <= "\u9fff" for ch in label), label
