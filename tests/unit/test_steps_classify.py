"""The classifier steps on a small map in a real embedded Qdrant (given vectors, no model): train from a
labels file, tag each partition, list the least sure records, and refuse bad input writing nothing."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from dagster_embedmap.core.classify import ClassifierSettings
from dagster_embedmap.core.errors import EmbedMapInputError
from dagster_embedmap.core.store import open_store
from dagster_embedmap.steps import NullLog
from dagster_embedmap.steps.classify import (
    class_fields, classify_partition, read_examples, train_classifier, uncertain_records,
)
from support.classified import CENTRES, KINDS, NAME, add_partition, build, partition_frame, render


class Said(NullLog):
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


@pytest.fixture()
def mapped(tmp_path):
    return build(tmp_path)


def _payloads(mapped, partition=None):
    with open_store(mapped["location"], NAME, read_only=True) as store:
        return [r.payload for r in store.scroll(partition=partition)]


def test_a_labels_file_trains_a_classifier_that_tags_every_partition(mapped):
    layout, store = mapped["layout"], mapped["store"]
    trained = train_classifier(store, layout, NAME, "kind", examples=read_examples(mapped["labels"]), log=NullLog())
    assert trained.classes == KINDS and trained.mode == "examples" and trained.examples == 12 and not trained.unknown_ids
    assert trained.validation is not None and trained.validation.folds == 4 and trained.validation.accuracy > 0.9
    info = json.loads(layout.classifier_info("kind").read_text())
    assert info["version"] == trained.version and info["validation"]["per_class"][0]["class"] == "billing"
    for part in ("p1", "p2"):
        done = classify_partition(store, layout, "kind", part, train_step="tickets/classifier_kind")
        assert done.points == 45 and sum(done.counts.values()) == 45
    cls, score, version = class_fields("kind")
    rows = _payloads(mapped)
    assert len(rows) == 90 and all(r[version] == trained.version for r in rows)
    right = np.mean([r[cls] == r["text"].split()[0] for r in rows])
    assert right > 0.95 and all(0 < r[score] <= 1 for r in rows)
    # the next records to label: the least sure first, none of the labelled ones
    nxt = uncertain_records(store, layout, NAME, "kind", 5, train_step="t", labelled=set(read_examples(mapped["labels"])["id"]))
    assert nxt.height == 5 and not set(nxt["id"]) & {f"p1-{i}" for i in range(12)}
    assert nxt["margin"][0] == min(nxt["margin"]) and nxt["x"].is_not_null().all()
    few = uncertain_records(store, layout, NAME, "kind", 5, train_step="t", sample=20)  # a bounded sample scored
    assert few.height == 5 and set(few["id"]) <= {r["record_id"] for r in rows}


def test_a_new_partition_is_tagged_without_training_again(mapped):
    layout, store = mapped["layout"], mapped["store"]
    trained = train_classifier(store, layout, NAME, "kind", examples=read_examples(mapped["labels"]), log=NullLog())
    model_bytes = layout.classifier("kind").read_bytes()
    add_partition(store, layout, "p3")
    done = classify_partition(store, layout, "kind", "p3", train_step="t")
    assert done.points == 45 and layout.classifier("kind").read_bytes() == model_bytes
    cls, _, version = class_fields("kind")
    rows = _payloads(mapped, "p3")
    assert all(r[version] == trained.version for r in rows) and np.mean([r[cls] == r["text"].split()[0] for r in rows]) > 0.95
    assert all(class_fields("kind")[0] not in r for r in _payloads(mapped, "p1"))  # p1 was not tagged here


def test_descriptions_alone_tag_zero_shot_and_a_changed_labels_file_changes_the_version(mapped):
    layout, store = mapped["layout"], mapped["store"]
    zero = train_classifier(store, layout, NAME, "kind", descriptions=dict(zip(KINDS, CENTRES)), log=NullLog())
    assert zero.mode == "descriptions" and zero.validation is None
    classify_partition(store, layout, "kind", "p2", train_step="t")
    rows = _payloads(mapped, "p2")
    assert np.mean([r["class_kind"] == r["text"].split()[0] for r in rows]) > 0.95
    first = train_classifier(store, layout, NAME, "kind", examples=read_examples(mapped["labels"]), log=NullLog())
    more = mapped["tmp"] / "more.jsonl"
    pl.DataFrame({"id": [f"p2-{i}" for i in range(15)], "label": [KINDS[i % 3] for i in range(15)]}).write_ndjson(more)
    again = train_classifier(store, layout, NAME, "kind", examples=read_examples(more), log=NullLog())
    assert len({zero.version, first.version, again.version}) == 3
    same = train_classifier(store, layout, NAME, "kind", examples=read_examples(more), log=NullLog())
    assert same.version == again.version  # same labels, same classifier


def test_an_unsure_record_gets_no_class(mapped):
    layout, store = mapped["layout"], mapped["store"]
    train_classifier(store, layout, NAME, "strict", examples=read_examples(mapped["labels"]),
                     settings=ClassifierSettings(threshold=0.999, calibrate=False), log=NullLog())
    done = classify_partition(store, layout, "strict", "p2", train_step="t")
    assert done.counts.get("", 0) > 0
    rows = _payloads(mapped, "p2")
    assert all(r["class_strict_version"] for r in rows)  # every point tagged, the unsure ones with no class
    assert sum(r.get("class_strict") is None for r in rows) == done.counts[""]


def test_bad_labels_and_bad_names_are_named_and_write_nothing(mapped):
    layout, store, tmp = mapped["layout"], mapped["store"], mapped["tmp"]
    said = Said()
    typo = tmp / "typo.csv"
    pl.DataFrame({"id": ["p1-0", "p1-1", "p1-2", "p1-3", "p1-4", "p1-5", "nope-1", "nope-2"],
                  "label": ["billing", "login", "shipping"] * 2 + ["login", "login"]}).write_csv(typo)
    trained = train_classifier(store, layout, NAME, "kind", examples=read_examples(typo), log=said)
    assert trained.unknown_ids == ["nope-1", "nope-2"] and trained.examples == 6
    assert any("2 of 8 labelled ids are not records of map 'tickets'" in w and "6 matched" in w for w in said.warnings)
    layout.classifier("kind").unlink()
    none = tmp / "none.csv"
    pl.DataFrame({"id": ["x", "y"], "label": ["a", "b"]}).write_csv(none)
    with pytest.raises(EmbedMapInputError, match="none of the 2 labelled ids is a record of the map"):
        train_classifier(store, layout, NAME, "kind", examples=read_examples(none), log=NullLog())
    assert not layout.classifier("kind").exists()
    one = tmp / "one.csv"
    pl.DataFrame({"id": ["p1-0", "p1-3", "p1-1"], "label": ["billing", "billing", "login"]}).write_csv(one)
    said = Said()
    trained = train_classifier(store, layout, NAME, "kind", examples=read_examples(one), log=said)
    assert trained.validation is None and any("['login'] have one example" in w for w in said.warnings)
    bad = tmp / "bad.csv"
    pl.DataFrame({"record": ["p1-0"], "label": ["billing"]}).write_csv(bad)
    with pytest.raises(EmbedMapInputError, match=r"has no column \['id'\]"):
        read_examples(bad)
    twice = tmp / "twice.csv"
    pl.DataFrame({"id": ["p1-0", "p1-0"], "label": ["billing", "login"]}).write_csv(twice)
    with pytest.raises(EmbedMapInputError, match="1 record\\(s\\) have two different labels"):
        read_examples(twice)
    with pytest.raises(EmbedMapInputError, match="give a .parquet, .csv or .jsonl"):
        read_examples(tmp / "labels.txt")
    with pytest.raises(EmbedMapInputError, match="classifier name 'Bad Name'"):
        train_classifier(store, layout, NAME, "Bad Name", examples=read_examples(mapped["labels"]), log=NullLog())
    with pytest.raises(EmbedMapInputError, match="is not trained yet"):
        classify_partition(store, layout, "never", "p1", train_step="tickets/classifier_never")
    with pytest.raises(EmbedMapInputError, match="has 3 dimensions and the map's vectors 16"):
        train_classifier(store, layout, NAME, "kind", descriptions={"a": np.ones(3), "b": np.ones(3)}, log=NullLog())


def test_a_classifier_of_another_model_is_refused_before_tagging(mapped):
    layout, store = mapped["layout"], mapped["store"]
    from dagster_embedmap.core.classify import SemanticClassifier

    other = SemanticClassifier().fit(descriptions={"a": np.ones(8), "b": -np.ones(8)})
    layout.classifier("old").parent.mkdir(parents=True)
    np.savez(layout.classifier("old"), **other.to_state(), version=np.array("v0"))
    with pytest.raises(EmbedMapInputError, match="trained on 8-d vectors and the map's are 16-d"):
        classify_partition(store, layout, "old", "p1", train_step="tickets/classifier_old")
    assert all("class_old" not in r for r in _payloads(mapped))


def test_an_unchanged_record_keeps_its_class_and_a_changed_one_loses_it(mapped):
    layout, store = mapped["layout"], mapped["store"]
    train_classifier(store, layout, NAME, "kind", examples=read_examples(mapped["labels"]), log=NullLog())
    classify_partition(store, layout, "kind", "p1", train_step="t")
    before = {r["record_id"]: r for r in _payloads(mapped, "p1")}
    frame = partition_frame(1)
    frame = frame.with_columns(pl.when(pl.col("id") == "p1-7").then(pl.lit("login ticket changed"))
                               .otherwise(pl.col("text")).alias("text"),
                               pl.when(pl.col("id") == "p1-7").then(pl.lit((-CENTRES[1]).astype(np.float32).tolist()))
                               .otherwise(pl.col("emb")).alias("emb"))
    add_partition(store, layout, "p1", frame)
    after = {r["record_id"]: r for r in _payloads(mapped, "p1")}
    fields = class_fields("kind")
    assert all(after[i][f] == before[i][f] for i in after if i != "p1-7" for f in fields)
    assert not any(f in after["p1-7"] for f in fields)  # its vector changed: tagged again by the next run
    classify_partition(store, layout, "kind", "p1", train_step="t")
    assert all(f in r for r in _payloads(mapped, "p1") for f in fields)


def test_the_map_shows_a_classifier_in_hover_and_colour_by_and_not_its_version(mapped):
    from dagster_embedmap.core.store.payload import is_pipeline_field

    page = render(mapped).read_text("utf-8")
    data = json.loads(page.split('id="embedmap-data">', 1)[1].split("</script>", 1)[0])
    options = [c["name"] for c in data["colorby"]]
    assert "class_kind" in options and "class_kind_score" in options and "class_kind_version" not in options
    assert is_pipeline_field("class_kind_version") and not is_pipeline_field("class_kind")


def test_a_partition_embedded_by_another_model_than_the_classifier_saw_is_refused(mapped):
    layout, store = mapped["layout"], mapped["store"]
    train_classifier(store, layout, NAME, "kind", examples=read_examples(mapped["labels"]), log=NullLog())
    assert json.loads(layout.classifier_info("kind").read_text())["models"] == ["column:emb"]
    path = layout.embeddings("p2")
    pl.read_parquet(path).with_columns(model=pl.lit("another-model|384")).write_parquet(path)  # same dimension
    with pytest.raises(EmbedMapInputError, match=r"partition 'p2': its vectors come from \['another-model\|384'\].*"
                                                 r"materialize tickets/classifier_kind again"):
        classify_partition(store, layout, "kind", "p2", train_step="tickets/classifier_kind")
    assert all("class_kind" not in r for r in _payloads(mapped, "p2"))
    assert classify_partition(store, layout, "kind", "p1", train_step="t").points == 45  # p1 is as it was


def test_a_multi_label_classifier_learns_label_sets_from_repeated_rows_and_tags_every_class(mapped):
    from dagster_embedmap.steps import render_map

    layout, store, tmp = mapped["layout"], mapped["store"], mapped["tmp"]
    # every record has its kind; billing and login tickets are also "account" (a class over two blobs)
    rows = [(f"p1-{i}", KINDS[i % 3]) for i in range(18)] + [(f"p1-{i}", "account") for i in range(18) if i % 3 < 2]
    labels = tmp / "multi.csv"
    pl.DataFrame({"id": [r[0] for r in rows], "label": [r[1] for r in rows]}).write_csv(labels)
    with pytest.raises(EmbedMapInputError, match="two different labels.*multi-label"):
        read_examples(labels)
    examples = read_examples(labels, multi_label=True)
    assert examples.height == 18 and examples.filter(pl.col("id") == "p1-0")["label"].to_list() == [["account", "billing"]]
    settings = ClassifierSettings(multi_label=True)
    said = Said()
    trained = train_classifier(store, layout, NAME, "tags", examples=examples, settings=settings, log=said)
    assert trained.classes == ["account", "billing", "login", "shipping"] and trained.examples == 18
    assert any("multi-label classifier is not cross-validated" in w for w in said.warnings)
    for part in ("p1", "p2"):
        classify_partition(store, layout, "tags", part, train_step="t")
    rows = _payloads(mapped, "p2")
    want = {0: ["account", "billing"], 1: ["account", "login"], 2: ["shipping"]}
    right = sum(sorted(r["class_tags"]) == want[int(r["record_id"].split("-")[1]) % 3] for r in rows)
    assert len(rows) == 45 and right >= 42, right
    # the page shows each record's classes as one value ("account, billing") to colour by and hover
    render_map(lambda: store(read_only=True), layout, NAME, ["p1", "p2"], log=NullLog(), collection_step="c",
               topics_step="t")
    page = layout.html.read_text("utf-8")
    data = json.loads(page.split('id="embedmap-data">', 1)[1].split("</script>", 1)[0])
    tags = next(c for c in data["meta"] if c["name"] == "class_tags")
    assert {"account, billing", "account, login", "shipping"} <= set(tags["values"]), tags["values"]


def test_labels_on_records_of_a_removed_partition_are_named_and_left_out(mapped):
    layout, store, tmp = mapped["layout"], mapped["store"], mapped["tmp"]
    labels = tmp / "both.csv"
    ids = [f"p1-{i}" for i in range(9)] + [f"p2-{i}" for i in range(6)]
    pl.DataFrame({"id": ids, "label": [KINDS[int(i.split("-")[1]) % 3] for i in ids]}).write_csv(labels)
    with store() as s:
        assert s.delete_partition("p2") == 45  # what the topics step does once p2 leaves the source
    said = Said()
    trained = train_classifier(store, layout, NAME, "kind", examples=read_examples(labels), log=said)
    assert trained.examples == 9 and sorted(trained.unknown_ids) == sorted(ids[9:])
    assert any("6 of 15 labelled ids are not records of map 'tickets'" in w and "9 matched" in w for w in said.warnings)
    only_removed = tmp / "removed.csv"
    pl.DataFrame({"id": ids[9:], "label": ["billing"] * 6}).write_csv(only_removed)
    before = layout.classifier("kind").read_bytes()
    with pytest.raises(EmbedMapInputError, match=r"none of the 6 labelled ids is a record of the map"):
        train_classifier(store, layout, NAME, "kind", examples=read_examples(only_removed), log=NullLog())
    assert layout.classifier("kind").read_bytes() == before  # the saved classifier is left as it was
