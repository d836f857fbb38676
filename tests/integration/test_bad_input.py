"""Bad input through real materializations: each case fails with a message that names the partition,
the column and the record, and leaves the collection and the earlier partitions exactly as they were.

Three maps share one Dagster instance: ``inputs`` (texts embedded by the bundled model, blank texts
refused), ``vectors`` (16-d vectors brought in a column) and ``keys`` (an asset source whose partition
keys are hostile to file systems).
"""

import hashlib
import math

import dagster as dg
import numpy as np
import polars as pl
import pytest

from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = pytest.mark.e2e


# -- helpers ----------------------------------------------------------------------------------------


def _jsonl(rows: pl.DataFrame):
    return lambda path: rows.write_ndjson(path)


def _raw(data: bytes):
    return lambda path: path.write_bytes(data)


def _store_snapshot(home, collection: str) -> dict[str, tuple]:
    """Every point of the collection: id -> (partition, record id, content hash, text, vector digest)."""
    with open_store(StoreLocation(path=str(home / "qdrant")), collection) as store:
        return {
            r.id: (r.payload.get("partition"), r.payload.get("record_id"), r.payload.get("content_hash"),
                   r.payload.get("text"), hashlib.sha256(np.asarray(r.vector, np.float32).tobytes()).hexdigest())
            for r in store.scroll(with_vectors=True)
        }


def _files_snapshot(root, skip=()) -> dict[str, str]:
    """Every file of a map's folder (but the ones in ``skip``) and a digest of its bytes."""
    skip = {str(p) for p in skip}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*")) if p.is_file() and str(p) not in skip
    }


def _meta(result, key) -> dict:
    """The metadata values of ``key``'s materialization in ``result``."""
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    assert events, f"{key.to_user_string()} was not materialized"
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def _failure_message(result) -> str:
    failures = result.get_step_failure_events()
    assert failures, "the run was expected to fail"
    return failures[0].event_specific_data.error.to_string()


class _Map:
    """One map over a landing folder with dynamic partitions (one per file), in its own home."""

    def __init__(self, tmp_path_factory, instance, name, **kwargs):
        self.name, self.instance = name, instance
        self.landing = tmp_path_factory.mktemp(f"{name}_landing")
        self.home = tmp_path_factory.mktemp(f"{name}_home")
        self.pdef = dg.DynamicPartitionsDefinition(name=f"{name}_files")
        self.defs = dg.Definitions.merge(
            build_embedmap_defs(name, FileSource(str(self.landing / "*")), partitions_def=self.pdef,
                                home=self.home, **kwargs),
            dg.Definitions(resources=embedmap_resources(self.home)),
        )
        self.keys = MapKeys.for_map(name)
        self.layout = MapLayout(self.home, name)

    def ingest(self, partition: str):
        self.instance.add_dynamic_partitions(self.pdef.name, [partition])
        return dg.materialize(list(self.defs.assets), selection=dg.AssetSelection.assets(*self.keys.ingest),
                              partition_key=partition, instance=self.instance, resources=self.defs.resources,
                              raise_on_error=False)

    def own_files(self, partition: str):
        return [self.layout.documents(partition), self.layout.embeddings(partition), self.layout.pending(partition)]

    def refused(self, partition: str, writer, suffix: str, collection: str | None = None) -> str:
        """Write ``partition``'s file, materialize it, check it failed and changed nothing: the message."""
        collection = collection or self.name
        points_before = _store_snapshot(self.home, collection)
        files_before = _files_snapshot(self.layout.root, skip=self.own_files(partition))
        writer(self.landing / f"{partition}.{suffix}")
        result = self.ingest(partition)
        assert not result.success
        message = _failure_message(result)
        assert _store_snapshot(self.home, collection) == points_before
        assert _files_snapshot(self.layout.root, skip=self.own_files(partition)) == files_before
        assert not self.layout.pending(partition).exists()  # nothing was half written
        (self.landing / f"{partition}.{suffix}").unlink()
        return message


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster"))) as inst:
        yield inst


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, instance, wiki_small):
    """Two good partitions, ``a`` and ``b``, of 8 records each; blank texts are refused."""
    m = _Map(tmp_path_factory, instance, "inputs", empty_text="fail")
    records = wiki_small.select("id", "text", "category")
    m.rows = records.slice(16, 8)  # a template for bad files: records of neither partition
    for key, part in (("a", records.head(8)), ("b", records.slice(8, 8))):
        part.write_ndjson(m.landing / f"{key}.jsonl")
        assert m.ingest(key).success
    m.a_ids = records.head(8)["id"].to_list()
    with open_store(StoreLocation(path=str(m.home / "qdrant")), "inputs") as store:
        assert store.count() == 16
    return m


@pytest.fixture(scope="module")
def vectors(tmp_path_factory, instance):
    """One good partition ``v1`` of 12 records with 16-d vectors of their own."""
    m = _Map(tmp_path_factory, instance, "vectors", vector_column="emb")
    rng = np.random.default_rng(3)
    m.frame = pl.DataFrame({"id": [f"r{i}" for i in range(12)], "text": [f"record number {i}" for i in range(12)],
                            "emb": rng.normal(size=(12, 16)).astype(np.float32).tolist()})
    m.frame.write_parquet(m.landing / "v1.parquet")
    assert m.ingest("v1").success
    return m


def _with_vector(frame: pl.DataFrame, row: int, vector) -> pl.DataFrame:
    emb = frame["emb"].to_list()
    emb[row] = vector
    return frame.with_columns(pl.Series("emb", emb, dtype=pl.List(pl.Float64), strict=False))


# -- records that the documents step refuses ----------------------------------------------------------

CSV_LATIN1 = b"id,text\nx1,a fine line\nx2,caf\xe9 au lait\nx3,another\n"


def _cases():
    """(partition, file suffix, how to write the file from 8 good rows, fragments the message must hold)."""
    def edit(fn):
        return lambda rows: _jsonl(fn(rows))

    first = lambda rows: rows["id"][0]  # noqa: E731
    return [
        ("missing_id", "jsonl", edit(lambda r: r.drop("id")), ["partition 'missing_id'", "['id'] not found",
                                                              "'text', 'category'"]),
        ("missing_text", "jsonl", edit(lambda r: r.rename({"text": "body"})),
         ["partition 'missing_text'", "['text'] not found", "'body'"]),
        ("null_text", "jsonl", edit(lambda r: r.with_columns(pl.when(pl.int_range(pl.len()) == 2).then(None)
                                                             .otherwise(pl.col("text")).alias("text"))),
         ["partition 'null_text'", "text column 'text' is null, empty or blank", "{2}"]),
        ("empty_text", "jsonl", edit(lambda r: r.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(""))
                                                              .otherwise(pl.col("text")).alias("text"))),
         ["partition 'empty_text'", "null, empty or blank", "{0}"]),
        ("blank_text", "jsonl", edit(lambda r: r.with_columns(pl.when(pl.int_range(pl.len()) == 5)
                                                              .then(pl.lit(" \n\t  ")).otherwise(pl.col("text"))
                                                              .alias("text"))),
         ["partition 'blank_text'", "null, empty or blank", "{5}"]),
        ("dup_inside", "jsonl", edit(lambda r: pl.concat([r, r.head(1)])),
         ["partition 'dup_inside'", "appear more than once in column 'id'", "{0}"]),
        ("float_ids", "jsonl", edit(lambda r: r.with_columns(pl.int_range(pl.len()).cast(pl.Float64).alias("id")
                                                             + 0.5)),
         ["partition 'float_ids'", "id column 'id' holds floats"]),
        ("int_and_string_ids", "jsonl", _mixed_int_and_string_ids, ["partition 'int_and_string_ids'",
                                                                     "appear more than once", "'7'"]),
        ("bool_and_int_ids", "jsonl", lambda rows: _raw(b'{"id": true, "text": "a"}\n{"id": 1, "text": "b"}\n'),
         ["bool_and_int_ids.jsonl", "could not be read as jsonl", "bool"]),
        ("blank_id", "jsonl", edit(lambda r: r.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("  "))
                                                            .otherwise(pl.col("id")).alias("id"))),
         ["partition 'blank_id'", "empty or blank in row(s) 3"]),
        ("latin1", "csv", lambda rows: _raw(CSV_LATIN1), ["latin1.csv", "line 3 is not valid UTF-8", "iconv"]),
        ("utf16", "csv", lambda rows: _raw("id,text\nx1,hello\n".encode("utf-16")), ["utf16.csv", "UTF-16"]),
        ("parquet_named_csv", "csv", lambda rows: (lambda p: rows.write_parquet(p)),
         ["parquet_named_csv.csv", "could not be read as csv", "a parquet file"]),
        ("csv_named_parquet", "parquet", lambda rows: (lambda p: rows.write_csv(p)),
         ["csv_named_parquet.parquet", "could not be read as parquet", "PAR1", "looks like text"]),
        ("zip_named_jsonl", "jsonl", lambda rows: _raw(b"PK\x03\x04" + bytes(60)),
         ["zip_named_jsonl.jsonl", "a zip file"]),
        ("zero_bytes", "jsonl", lambda rows: _raw(b""), ["zero_bytes.jsonl", "empty (0 bytes)"]),
        ("cut_json", "jsonl", lambda rows: _raw(b'{"id": "x1", "text": "a"}\n{"id": "x2", "te'),
         ["cut_json.jsonl", "could not be read as jsonl"]),
    ], first


def _mixed_int_and_string_ids(rows):
    # 7 as a number in one line and "7" as a string in another: the same id once read
    return _raw(b'{"id": 7, "text": "seven as a number"}\n{"id": "7", "text": "seven as a string"}\n'
                b'{"id": "8", "text": "eight"}\n')


CASES, _first = _cases()


@pytest.mark.parametrize("partition, suffix, make, fragments", CASES, ids=[c[0] for c in CASES])
def test_a_bad_file_fails_its_partition_naming_it_and_changes_nothing(inputs, partition, suffix, make, fragments):
    rows = inputs.rows
    message = inputs.refused(partition, make(rows), suffix)
    ids = rows["id"].to_list()
    for fragment in fragments:
        if fragment.startswith("{") and fragment.endswith("}"):  # the id of that row
            fragment = repr(ids[int(fragment[1:-1])])
        assert fragment in message, f"{fragment!r} not in {message[:600]!r}"


def test_an_id_already_in_another_partition_is_refused_before_any_write(inputs):
    rows = pl.concat([inputs.rows.head(3), _a_row(inputs)])
    message = inputs.refused("dup_across", _jsonl(rows), "jsonl")
    taken = inputs.a_ids[0]
    assert "partition 'dup_across'" in message and "already belong to another partition" in message
    assert f"{taken!r} (in partition 'a')" in message


def _a_row(inputs):
    return pl.DataFrame({"id": [inputs.a_ids[0]], "text": ["the same id, another text"], "category": ["x"]})


def test_a_good_partition_whose_file_turns_bad_keeps_its_points_and_files(inputs):
    path = inputs.landing / "b.jsonl"
    good = path.read_bytes()
    points = _store_snapshot(inputs.home, "inputs")
    files = _files_snapshot(inputs.layout.root)
    try:
        pl.read_ndjson(path).drop("text").write_ndjson(path)
        result = inputs.ingest("b")
        assert not result.success and "['text'] not found" in _failure_message(result)
        assert _store_snapshot(inputs.home, "inputs") == points and _files_snapshot(inputs.layout.root) == files
        assert sum(1 for p in points.values() if p[0] == "b") == 8
    finally:
        path.write_bytes(good)


# -- input that is accepted, with what was done to it recorded ------------------------------------------


def test_over_long_texts_are_embedded_from_their_beginning_and_counted(inputs):
    texts = inputs.rows.head(3)["text"].to_list()
    texts[1] = " ".join([texts[1]] * 40)  # thousands of tokens, far over the window of 256
    rows = inputs.rows.head(3).with_columns(pl.Series("text", texts))
    rows.write_ndjson(inputs.landing / "long.jsonl")
    result = inputs.ingest("long")
    assert result.success
    assert _meta(result, inputs.keys.embeddings)["truncated_texts"] == 1
    flags = pl.read_parquet(inputs.layout.embeddings("long")).select("id", "truncated")
    assert flags.filter(pl.col("truncated"))["id"].to_list() == [rows["id"][1]]
    warnings = [e.message for e in result.all_events if e.event_type_value == "ENGINE_EVENT"] + [
        r.user_message for r in inputs.instance.all_logs(result.run_id) if r.level >= 30]
    assert any("longer than the model's window of 256 tokens" in w and rows["id"][1] in w for w in warnings)


def test_control_characters_become_spaces_and_are_counted(inputs):
    hostile = ["\x1b[2J\x1b[31mred alert\x1b[0m in the terminal", "nul\x00byte and bell\x07 inside", "fine text"]
    rows = pl.DataFrame({"id": ["c1", "c2", "c3"], "text": hostile, "category": ["x"] * 3})
    rows.write_ndjson(inputs.landing / "controls.jsonl")
    result = inputs.ingest("controls")
    assert result.success
    assert _meta(result, inputs.keys.documents)["control_characters_replaced"] == 2
    texts = {p[1]: p[3] for p in _store_snapshot(inputs.home, "inputs").values() if p[0] == "controls"}
    assert texts["c1"] == " [2J [31mred alert [0m in the terminal"
    assert texts["c2"] == "nul byte and bell  inside" and texts["c3"] == "fine text"


@pytest.mark.parametrize("name, data", [("header_only", b"id,text,category\n"), ("empty_array", b"[]")],
                         ids=["csv with a header and no rows", "json holding []"])
def test_an_empty_partition_materializes_with_no_points_and_changes_nothing_else(inputs, name, data):
    suffix = "csv" if name == "header_only" else "json"
    points = _store_snapshot(inputs.home, "inputs")
    (inputs.landing / f"{name}.{suffix}").write_bytes(data)
    result = inputs.ingest(name)
    assert result.success
    assert _meta(result, inputs.keys.collection)["dagster/row_count"] == 0
    assert _store_snapshot(inputs.home, "inputs") == points


# -- vectors brought in a column ------------------------------------------------------------------------

VECTOR_CASES = [
    ("wrong_length", lambda f: _with_vector(f, 4, [0.5] * 15), ["vector column 'emb' must have one length",
                                                                 "most vectors have 16 values", "'r4'"]),
    ("nan", lambda f: _with_vector(f, 2, [0.1] * 15 + [math.nan]), ["NaN or infinite", "'r2'"]),
    ("inf", lambda f: _with_vector(f, 7, [math.inf] + [0.1] * 15), ["NaN or infinite", "'r7'"]),
    ("null_vector", lambda f: _with_vector(f, 0, None), ["vector column 'emb' is null for id(s) 'r0'"]),
]


@pytest.mark.parametrize("partition, make, fragments", VECTOR_CASES, ids=[c[0] for c in VECTOR_CASES])
def test_bad_vectors_fail_their_partition_naming_the_record(vectors, partition, make, fragments):
    frame = make(vectors.frame)  # the ids of v1: refused before they could clash
    message = vectors.refused(partition, lambda p: frame.write_parquet(p), "parquet")
    assert f"partition {partition!r}" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message[:600]!r}"


def test_vectors_of_another_dimension_are_refused_with_how_to_migrate(vectors):
    rng = np.random.default_rng(4)
    frame = pl.DataFrame({"id": ["s0", "s1", "s2"], "text": ["a", "b", "c"],
                          "emb": rng.normal(size=(3, 8)).tolist()})
    message = vectors.refused("eight_d", lambda p: frame.write_parquet(p), "parquet")
    assert "collection 'vectors'" in message and "holds 16-d vectors but these are 8-d" in message
    assert "nothing was written" in message and "collection_name='vectors_8d'" in message
    assert "materialize every partition again" in message


def test_a_model_of_another_dimension_is_refused_with_how_to_migrate(tmp_path_factory, instance, vectors, wiki_small):
    """The bundled 384-d model writing into the 16-d collection: refused at the collection step."""
    m = _Map(tmp_path_factory, instance, "model384", collection_name="vectors")
    m.home = vectors.home  # the same Qdrant folder as the 16-d map
    m.defs = dg.Definitions.merge(
        build_embedmap_defs("model384", FileSource(str(m.landing / "*")), partitions_def=m.pdef, home=m.home,
                            collection_name="vectors"),
        dg.Definitions(resources=embedmap_resources(m.home)),
    )
    m.layout = MapLayout(m.home, "model384")
    message = m.refused("texts", _jsonl(wiki_small.select("id", "text").head(3)), "jsonl", collection="vectors")
    assert "holds 16-d vectors but these are 384-d" in message
    assert "collection_name='vectors_384d'" in message and "rebuild in place" in message


# -- partition keys that would break paths ----------------------------------------------------------------

HOSTILE_KEYS = ["../../escaped", "a/b/c", "..", "/etc/passwd", "C:\\Windows\\win.ini", "CON", " spaced out ",
                "ünïcødé ключ", "new\nline", "~/.ssh/id_rsa", "$(touch pwned)", "%2e%2e%2fencoded"]


def test_partition_keys_that_break_paths_stay_inside_the_map_folder(tmp_path, wiki_small):
    home = tmp_path / "deep" / "home"
    outside_before = sorted(str(p) for p in tmp_path.rglob("*"))
    pdef = dg.DynamicPartitionsDefinition(name="hostile_keys")
    rows = wiki_small.select("id", "text").head(3 * len(HOSTILE_KEYS))

    @dg.asset(partitions_def=pdef, name="hostile_records")
    def records(context: dg.AssetExecutionContext) -> pl.DataFrame:
        i = HOSTILE_KEYS.index(context.partition_key)
        return rows.slice(3 * i, 3)

    defs = dg.Definitions.merge(
        dg.Definitions(assets=[records]),
        build_embedmap_defs("keys", records, home=home),
        # Dagster's own file IO manager has its own trouble with a key of ".."; ours is what is tested here
        dg.Definitions(resources={**embedmap_resources(home), "io_manager": dg.mem_io_manager}),
    )
    keys = MapKeys.for_map("keys")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as inst:
        inst.add_dynamic_partitions("hostile_keys", HOSTILE_KEYS)
        for key in HOSTILE_KEYS:
            result = dg.materialize([records, *defs.assets], selection=dg.AssetSelection.assets(records, *keys.ingest),
                                    partition_key=key, instance=inst, resources=defs.resources)
            assert result.success
    created = sorted(str(p) for p in tmp_path.rglob("*") if str(p) not in outside_before)
    allowed = (str(home), str(tmp_path / "deep"), str(tmp_path / "dagster"))
    assert all(p.startswith(allowed) for p in created), [p for p in created if not p.startswith(allowed)]
    documents = list((home / "keys" / "documents").iterdir())
    assert len(documents) == len(HOSTILE_KEYS) and all(p.parent == home / "keys" / "documents" for p in documents)
    with open_store(StoreLocation(path=str(home / "qdrant")), "keys") as store:
        for key in HOSTILE_KEYS:  # the exact key is kept where it is data, in the payload
            assert store.count(key) == 3
