"""Tests for dagster_embedmap.core.records.sources: reading records from parquet / CSV / JSON lines files."""

from __future__ import annotations

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dagster_embedmap.core.errors import EmbedMapInputError
from dagster_embedmap.core.records.sources import SINGLE_PARTITION, FileSource, detect_format, read_records

RECORDS = pl.DataFrame(
    {
        "id": [1, 2, 3, 4],
        "text": ["apples are red", "the sky is blue", "grass, green", 'quote "here"'],
        "group": ["fruit", "sky", "plant", "fruit"],
        "score": [0.5, 1.5, 2.5, 3.5],
    }
)


def write(df: pl.DataFrame, path, fmt: str) -> None:
    if fmt == "parquet":
        df.write_parquet(path)
    elif fmt == "csv":
        df.write_csv(path)
    elif fmt == "jsonl":
        df.write_ndjson(path)
    else:
        raise AssertionError(fmt)


@pytest.mark.parametrize("fmt, suffix", [("parquet", ".parquet"), ("csv", ".csv"), ("jsonl", ".jsonl"), ("parquet", ".pq"), ("jsonl", ".ndjson")])
def test_read_records_round_trips_each_format(tmp_path, fmt, suffix):
    path = tmp_path / f"records{suffix}"
    write(RECORDS, path, fmt)
    assert detect_format(path) == fmt
    assert_frame_equal(read_records(path), RECORDS)


def test_detect_format_ignores_case_and_rejects_unknown(tmp_path):
    assert detect_format("DATA.CSV") == "csv"
    with pytest.raises(EmbedMapInputError) as err:
        detect_format(tmp_path / "notes.txt")
    assert "notes.txt" in str(err.value) and "'.txt'" in str(err.value)


def test_explicit_format_overrides_the_suffix(tmp_path):
    path = tmp_path / "records.txt"
    write(RECORDS, path, "csv")
    assert_frame_equal(read_records(path, format="csv"), RECORDS)


def test_read_json_array(tmp_path):
    path = tmp_path / "records.json"
    path.write_text(json.dumps([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}]))
    df = read_records(path)
    assert df.get_column("id").to_list() == ["a", "b"]
    assert df.get_column("text").to_list() == ["x", "y"]


@pytest.mark.parametrize(
    "name, writer",
    [
        ("parquet_inside.csv", lambda p: RECORDS.write_parquet(p)),
        ("csv_inside.parquet", lambda p: RECORDS.write_csv(p)),
        ("csv_inside.jsonl", lambda p: RECORDS.write_csv(p)),
        ("truncated.jsonl", lambda p: p.write_text('{"id": 1, "text": "a"\n')),
    ],
)
def test_content_that_is_not_what_the_suffix_says_fails_naming_the_file(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    with pytest.raises(EmbedMapInputError) as err:
        read_records(path)
    assert name in str(err.value)
    assert "could not be read as" in str(err.value)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(tmp_path / "nope.csv")


# -- FileSource -----------------------------------------------------------------------------------


def test_glob_gives_one_partition_per_file_stem(tmp_path):
    folder = tmp_path / "batches"
    folder.mkdir()
    write(RECORDS[:2], folder / "b-002.csv", "csv")
    write(RECORDS[2:], folder / "b-001.csv", "csv")
    (folder / "ignored.txt").write_text("not matched by the glob")
    (folder / "dir.csv").mkdir()  # a folder matching the glob is not a file
    source = FileSource(str(folder / "*.csv"))
    assert source.per_file
    assert source.partition_keys() == ["b-001", "b-002"]
    assert_frame_equal(source.read_partition("b-002"), RECORDS[:2])
    assert_frame_equal(source.read_partition("b-001"), RECORDS[2:])


def test_glob_unknown_partition_key_fails_naming_it(tmp_path):
    write(RECORDS, tmp_path / "one.parquet", "parquet")
    source = FileSource(str(tmp_path / "*.parquet"))
    with pytest.raises(EmbedMapInputError) as err:
        source.read_partition("two")
    assert "'two'" in str(err.value)


def test_glob_matching_nothing_has_no_partitions_and_reading_fails(tmp_path):
    source = FileSource(str(tmp_path / "*.parquet"))
    assert source.partition_keys() == []
    with pytest.raises(EmbedMapInputError):
        source.read_partition("anything")


def test_partition_column_keys_are_distinct_values_and_read_filters(tmp_path):
    write(RECORDS[:2], tmp_path / "part1.jsonl", "jsonl")
    write(RECORDS[2:], tmp_path / "part2.jsonl", "jsonl")
    source = FileSource(str(tmp_path / "*.jsonl"), partition_column="group")
    assert not source.per_file
    assert source.partition_keys() == ["fruit", "plant", "sky"]
    fruit = source.read_partition("fruit")
    assert sorted(fruit.get_column("id").to_list()) == [1, 4]
    assert set(fruit.get_column("group").to_list()) == {"fruit"}
    assert source.read_partition("sky").get_column("text").to_list() == ["the sky is blue"]


def test_numeric_partition_column_keys_are_strings(tmp_path):
    path = tmp_path / "records.parquet"
    write(RECORDS.with_columns(year=pl.Series([2020, 2021, 2020, 2022])), path, "parquet")
    source = FileSource(str(path), partition_column="year")
    assert source.partition_keys() == ["2020", "2021", "2022"]
    assert source.read_partition("2020").get_column("id").to_list() == [1, 3]


def test_missing_partition_column_fails_listing_columns(tmp_path):
    path = tmp_path / "records.csv"
    write(RECORDS, path, "csv")
    with pytest.raises(EmbedMapInputError) as err:
        FileSource(str(path), partition_column="nope").partition_keys()
    msg = str(err.value)
    assert "'nope'" in msg and "text" in msg and "group" in msg


def test_null_partition_values_fail(tmp_path):
    path = tmp_path / "records.parquet"
    write(RECORDS.with_columns(group=pl.Series(["a", None, "b", None])), path, "parquet")
    with pytest.raises(EmbedMapInputError, match="null in 2 row"):
        FileSource(str(path), partition_column="group").partition_keys()


def test_single_file_is_one_partition_all(tmp_path):
    path = tmp_path / "records.parquet"
    write(RECORDS, path, "parquet")
    source = FileSource(str(path))
    assert not source.per_file
    assert source.partition_keys() == [SINGLE_PARTITION] == ["all"]
    assert_frame_equal(source.read_partition("all"), RECORDS)


def test_single_file_with_wrong_content_fails_naming_the_file(tmp_path):
    path = tmp_path / "records.parquet"
    path.write_text("id,text\n1,hello\n")
    with pytest.raises(EmbedMapInputError, match="records.parquet"):
        FileSource(str(path)).read_partition("all")


def test_two_files_with_one_stem_are_refused(tmp_path):
    pl.DataFrame({"id": [1], "text": ["a"]}).write_csv(tmp_path / "day.csv")
    pl.DataFrame({"id": [2], "text": ["b"]}).write_ndjson(tmp_path / "day.jsonl")
    with pytest.raises(EmbedMapInputError, match=r"\['day'\]"):
        FileSource(str(tmp_path / "day.*")).partition_keys()


def test_a_partition_value_with_no_rows_is_refused(tmp_path):
    pl.DataFrame({"id": [1], "text": ["a"], "day": ["mon"]}).write_parquet(tmp_path / "r.parquet")
    source = FileSource(str(tmp_path / "r.parquet"), partition_column="day")
    assert source.read_partition("mon").height == 1
    with pytest.raises(EmbedMapInputError, match=r"partition 'tue'.*day"):
        source.read_partition("tue")
