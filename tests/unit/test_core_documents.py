"""Tests for dagster_embedmap.core.records.documents: validating a frame of records into the document shape."""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest

from dagster_embedmap.core.records.documents import (
    RESERVED_COLUMNS,
    RecordSchema,
    content_hash,
    prepare_documents,
)
from dagster_embedmap.core.errors import EmbedMapInputError


def frame(**columns) -> pl.DataFrame:
    return pl.DataFrame(columns)


# -- ids ------------------------------------------------------------------------------------------


def test_integer_ids_are_cast_to_strings_and_order_is_kept():
    df = frame(id=[10, 2, 33], text=["ten", "two", "thirty-three"])
    prepared = prepare_documents(df, RecordSchema(), "p1")
    out = prepared.frame
    assert out.schema["id"] == pl.String
    assert out.get_column("id").to_list() == ["10", "2", "33"]
    assert out.get_column("text").to_list() == ["ten", "two", "thirty-three"]
    assert out.columns[:3] == ["id", "text", "content_hash"]
    assert prepared.skipped_empty_text == 0
    assert prepared.skipped_ids == []


def test_custom_id_and_text_columns_are_renamed_to_id_and_text():
    df = frame(doc=["a", "b"], body=["alpha", "beta"], lang=["en", "fr"])
    out = prepare_documents(df, RecordSchema(id_column="doc", text_column="body"), "p1").frame
    assert out.columns == ["id", "text", "content_hash", "lang"]
    assert out.get_column("id").to_list() == ["a", "b"]
    assert out.get_column("text").to_list() == ["alpha", "beta"]


def test_duplicate_ids_are_rejected_and_listed():
    df = frame(id=["a", "b", "a", "c", "c", "d"], text=list("uvwxyz"))
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(), "2024-01-01")
    msg = str(err.value)
    assert "'2024-01-01'" in msg
    assert "'id'" in msg
    assert "'a'" in msg and "'c'" in msg
    assert "'b'" not in msg and "'d'" not in msg
    assert "2 id(s)" in msg


def test_duplicate_ids_after_int_cast_are_rejected():
    df = frame(id=[7, 7], text=["x", "y"])
    with pytest.raises(EmbedMapInputError, match=r"'7'"):
        prepare_documents(df, RecordSchema(), "p")


def test_many_duplicate_ids_are_previewed_with_a_count_of_the_rest():
    ids = [f"r{i}" for i in range(8)] * 2
    df = frame(id=ids, text=["t"] * len(ids))
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(), "p")
    msg = str(err.value)
    assert "8 id(s)" in msg
    assert "and 3 more" in msg
    assert "'r0'" in msg and "'r4'" in msg


def test_null_id_is_rejected_naming_the_row():
    df = frame(id=["a", None, "c"], text=["x", "y", "z"])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(), "part-7")
    msg = str(err.value)
    assert "'part-7'" in msg
    assert "'id'" in msg
    assert "null" in msg
    assert "row(s) 1" in msg


def test_float_ids_are_rejected():
    df = frame(id=[1.0, 2.0], text=["x", "y"])
    with pytest.raises(EmbedMapInputError, match="floats"):
        prepare_documents(df, RecordSchema(), "p")


# -- columns --------------------------------------------------------------------------------------


def test_missing_columns_are_named_with_the_columns_found():
    df = frame(key=["a"], body=["x"], extra=[1])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(metadata_columns=["lang"]), "p9")
    msg = str(err.value)
    assert "'p9'" in msg
    for missing in ("'id'", "'text'", "'lang'"):
        assert missing in msg
    for found in ("'key'", "'body'", "'extra'"):
        assert found in msg


def test_missing_vector_column_is_named():
    df = frame(id=["a"], text=["x"])
    with pytest.raises(EmbedMapInputError, match=r"'emb'"):
        prepare_documents(df, RecordSchema(vector_column="emb"), "p")


def test_non_string_text_column_is_rejected():
    df = frame(id=["a", "b"], text=[1, 2])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(), "p3")
    msg = str(err.value)
    assert "'p3'" in msg and "'text'" in msg and "Int64" in msg


def test_non_dataframe_input_is_rejected():
    with pytest.raises(EmbedMapInputError, match="polars DataFrame"):
        prepare_documents({"id": ["a"], "text": ["x"]}, RecordSchema(), "p")  # type: ignore[arg-type]


# -- empty texts ----------------------------------------------------------------------------------


def blanky() -> pl.DataFrame:
    return frame(id=["a", "b", "c", "d", "e"], text=["keep me", "", "   \t\n", None, "me too"])


def test_empty_texts_are_skipped_and_counted():
    prepared = prepare_documents(blanky(), RecordSchema(empty_text="skip"), "p")
    assert prepared.frame.get_column("id").to_list() == ["a", "e"]
    assert prepared.skipped_empty_text == 3
    assert prepared.skipped_ids == ["b", "c", "d"]


def test_empty_texts_fail_under_fail_policy_naming_ids():
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(blanky(), RecordSchema(empty_text="fail"), "p4")
    msg = str(err.value)
    assert "'p4'" in msg and "'text'" in msg
    assert "'b'" in msg and "'c'" in msg and "'d'" in msg
    assert "'a'" not in msg and "'e'" not in msg


def test_fail_policy_passes_when_no_text_is_blank():
    df = frame(id=["a", "b"], text=["x", " y "])
    prepared = prepare_documents(df, RecordSchema(empty_text="fail"), "p")
    assert prepared.frame.height == 2
    assert prepared.frame.get_column("text").to_list() == ["x", " y "]  # text kept verbatim


# -- metadata -------------------------------------------------------------------------------------


def test_all_other_columns_are_metadata_by_default():
    df = frame(id=["a"], text=["x"], lang=["en"], score=[0.5], n=[3])
    prepared = prepare_documents(df, RecordSchema(), "p")
    assert prepared.metadata_columns == ["lang", "score", "n"]
    assert prepared.frame.columns == ["id", "text", "content_hash", "lang", "score", "n"]
    assert prepared.frame.row(0, named=True)["score"] == 0.5


def test_explicit_metadata_list_keeps_only_those_columns_in_that_order():
    df = frame(id=["a"], text=["x"], lang=["en"], score=[0.5], secret=["s3cr3t"])
    prepared = prepare_documents(df, RecordSchema(metadata_columns=["score", "lang"]), "p")
    assert prepared.metadata_columns == ["score", "lang"]
    assert prepared.frame.columns == ["id", "text", "content_hash", "score", "lang"]
    assert "secret" not in prepared.frame.columns


def test_empty_metadata_list_keeps_no_metadata():
    df = frame(id=["a"], text=["x"], lang=["en"])
    prepared = prepare_documents(df, RecordSchema(metadata_columns=[]), "p")
    assert prepared.metadata_columns == []
    assert prepared.frame.columns == ["id", "text", "content_hash"]


def test_reserved_metadata_names_are_prefixed():
    df = frame(
        doc_id=["a"], body=["x"], partition=["p-meta"], x=[1.5], topic_id=[9], id=["other"], lang=["en"]
    )
    prepared = prepare_documents(df, RecordSchema(id_column="doc_id", text_column="body"), "p")
    assert prepared.metadata_columns == ["meta_partition", "meta_x", "meta_topic_id", "meta_id", "lang"]
    row = prepared.frame.row(0, named=True)
    assert row["id"] == "a"
    assert row["meta_partition"] == "p-meta"
    assert row["meta_x"] == 1.5
    assert row["meta_topic_id"] == 9
    assert row["meta_id"] == "other"
    for name in prepared.metadata_columns:
        assert name not in RESERVED_COLUMNS


def test_temporal_metadata_is_cast_to_string():
    df = frame(
        id=["a", "b"],
        text=["x", "y"],
        day=[dt.date(2020, 1, 2), None],
        at=[dt.datetime(2021, 3, 4, 5, 6, 7), dt.datetime(2022, 1, 1)],
    )
    out = prepare_documents(df, RecordSchema(), "p").frame
    assert out.schema["day"] == pl.String
    assert out.schema["at"] == pl.String
    assert out.get_column("day").to_list() == ["2020-01-02", None]
    assert out.get_column("at")[0].startswith("2021-03-04 05:06:07")


# -- content hash ---------------------------------------------------------------------------------


def test_content_hash_is_stable_and_sensitive_to_text():
    h = content_hash("The quick brown fox")
    assert h == content_hash("The quick brown fox")
    assert len(h) == 32 and all(c in "0123456789abcdef" for c in h)
    assert content_hash("The quick brown fox.") != h
    assert content_hash("the quick brown fox") != h


def test_content_hash_column_matches_function_and_ignores_id_and_metadata():
    a = prepare_documents(frame(id=["1"], text=["hello"], m=["x"]), RecordSchema(), "p").frame
    b = prepare_documents(frame(id=["2"], text=["hello"], m=["y"]), RecordSchema(), "q").frame
    c = prepare_documents(frame(id=["1"], text=["hello!"], m=["x"]), RecordSchema(), "p").frame
    assert a["content_hash"][0] == content_hash("hello")
    assert a["content_hash"][0] == b["content_hash"][0]
    assert a["content_hash"][0] != c["content_hash"][0]


def test_content_hash_handles_non_ascii_text():
    assert content_hash("café ☕") != content_hash("cafe ☕")
    assert content_hash("café ☕") == content_hash("café ☕")


# -- vectors --------------------------------------------------------------------------------------


def test_good_vectors_are_kept_as_float32_lists():
    df = frame(id=["a", "b"], text=["x", "y"], emb=[[1, 2, 3], [4, 5, 6]])
    prepared = prepare_documents(df, RecordSchema(vector_column="emb"), "p")
    out = prepared.frame
    assert out.columns == ["id", "text", "content_hash", "vector"]
    assert out.schema["vector"] == pl.List(pl.Float32)
    assert out.get_column("vector").to_list() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert "emb" not in prepared.metadata_columns


def test_array_typed_vectors_are_accepted():
    df = pl.DataFrame(
        {"id": ["a", "b"], "text": ["x", "y"], "v": [[0.5, 0.25], [1.0, 2.0]]},
        schema={"id": pl.String, "text": pl.String, "v": pl.Array(pl.Float64, 2)},
    )
    out = prepare_documents(df, RecordSchema(vector_column="v"), "p").frame
    assert out.schema["vector"] == pl.List(pl.Float32)
    assert out.get_column("vector").to_list() == [[0.5, 0.25], [1.0, 2.0]]


def test_vectors_of_skipped_texts_are_dropped_with_their_rows():
    df = frame(id=["a", "b"], text=["x", ""], v=[[1.0, 2.0], [3.0, 4.0]])
    prepared = prepare_documents(df, RecordSchema(vector_column="v"), "p")
    assert prepared.frame.get_column("vector").to_list() == [[1.0, 2.0]]
    assert prepared.skipped_ids == ["b"]


def test_wrong_length_vectors_are_rejected_naming_ids():
    df = frame(id=["a", "b", "c", "d"], text=list("wxyz"), v=[[1.0, 2.0], [1.0, 2.0], [1.0], [1.0, 2.0, 3.0]])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(vector_column="v"), "p5")
    msg = str(err.value)
    assert "'p5'" in msg and "'v'" in msg
    assert "'c'" in msg and "'d'" in msg
    assert "'a'" not in msg and "'b'" not in msg
    assert "2 values" in msg


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_vectors_are_rejected_naming_ids(bad):
    df = frame(id=["a", "b", "c"], text=list("xyz"), v=[[1.0, 2.0], [bad, 2.0], [0.0, 1.0]])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(vector_column="v"), "p6")
    msg = str(err.value)
    assert "'p6'" in msg and "'v'" in msg and "NaN or infinite" in msg
    assert "'b'" in msg
    assert "'a'" not in msg and "'c'" not in msg


def test_null_vector_is_rejected_naming_id():
    df = frame(id=["a", "b"], text=["x", "y"], v=[[1.0, 2.0], None])
    with pytest.raises(EmbedMapInputError) as err:
        prepare_documents(df, RecordSchema(vector_column="v"), "p7")
    msg = str(err.value)
    assert "'p7'" in msg and "'v'" in msg and "null" in msg and "'b'" in msg
    assert "'a'" not in msg


def test_non_numeric_vector_column_is_rejected():
    df = frame(id=["a"], text=["x"], v=["1,2,3"])
    with pytest.raises(EmbedMapInputError, match="lists of numbers"):
        prepare_documents(df, RecordSchema(vector_column="v"), "p")


def test_a_null_inside_a_vector_is_refused_naming_the_id():
    df = frame(id=["a", "b"], text=["x", "y"], emb=[[1.0, 2.0], [1.0, None]])
    with pytest.raises(EmbedMapInputError, match=r"partition 'p'.*'emb'.*'b'"):
        prepare_documents(df, RecordSchema(vector_column="emb"), "p")


def test_a_reserved_column_renamed_onto_an_existing_column_is_refused():
    df = frame(id=["a"], text=["x"], x=[1], meta_x=[2])
    with pytest.raises(EmbedMapInputError, match=r"partition 'p'.*'x'.*'meta_x'"):
        prepare_documents(df, RecordSchema(), "p")


def test_an_all_null_text_column_is_skipped_under_the_skip_policy():
    df = pl.DataFrame({"id": ["a", "b"], "text": [None, None]})
    prepared = prepare_documents(df, RecordSchema(), "p")
    assert prepared.frame.height == 0 and prepared.skipped_empty_text == 2
