"""Custom classifiers through real Dagster materializations (given vectors, a real embedded Qdrant): a
labels file -> classifier -> every point tagged in Qdrant; a new partition tagged without training
again; a changed labels file trains again and marks every partition's classes stale."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest
from support.automation import drive_automation
from support.classified import KINDS, partition_frame

from dagster_embedmap import (
    ClassifierSpec, EmbedderResource, FileSource, MapKeys, QdrantResource, build_embedmap_defs, materialize_map,
)
from dagster_embedmap.core.store import StoreLocation, open_store

NAME = "tickets"


def _defs(root, labels, **spec):
    home = root / "home"
    return dg.Definitions.merge(
        build_embedmap_defs(NAME, FileSource(str(root / "landing" / "*.parquet")), vector_column="emb", home=home,
                            classifiers=[ClassifierSpec("kind", examples=str(labels), **spec)]),
        dg.Definitions(resources={"embedder": EmbedderResource(model=str(root / "no-such-model")),  # never loaded
                                  "qdrant": QdrantResource(path=str(home / "qdrant"))}),
    )


def _payloads(root, partition=None):
    with open_store(StoreLocation(path=str(root / "home" / "qdrant")), NAME, read_only=True) as store:
        return [r.payload for r in store.scroll(partition=partition)]


@pytest.fixture()
def landed(tmp_path):
    (tmp_path / "landing").mkdir()
    for part in (1, 2):
        partition_frame(part).write_parquet(tmp_path / "landing" / f"p{part}.parquet")
    labels = tmp_path / "labels.csv"
    pl.DataFrame({"id": [f"p1-{i}" for i in range(12)], "label": [KINDS[i % 3] for i in range(12)]}).write_csv(labels)
    return tmp_path, labels


def test_a_labels_file_trains_a_classifier_whose_classes_reach_every_point_and_new_partitions(landed):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    root, labels = landed
    defs = _defs(root, labels, min_macro_f1=0.8)
    keys = MapKeys.for_map(NAME)
    train, classes = dg.AssetKey([NAME, "classifier_kind"]), dg.AssetKey([NAME, "classes_kind"])
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        run = dg.materialize(list(defs.assets), selection=[train], instance=instance, resources=defs.resources)
        assert run.success
        meta = run.asset_materializations_for_node(train.to_python_identifier())[0].metadata
        assert meta["examples"].value == 12 and meta["cv_macro_f1"].value > 0.9 and meta["mode"].text == "examples"
        assert "| id | partition | best guess |" in meta["label_next"].value
        checks = run.get_asset_check_evaluations()
        assert [(c.check_name, c.passed) for c in checks] == [("cross_validated_macro_f1", True)]
        version = meta["version"].text
        for part in ("p1", "p2"):
            tagged = dg.materialize(list(defs.assets), selection=[classes], partition_key=part, instance=instance,
                                    resources=defs.resources)
            assert tagged.success
        rows = _payloads(root)
        assert len(rows) == 90 and all(r["class_kind_version"] == version for r in rows)
        assert sum(r["class_kind"] == r["text"].split()[0] for r in rows) >= 86

        # a new partition lands: it is placed and tagged; the classifier is not trained again
        partition_frame(3).write_parquet(root / "landing" / "p3.parquet")
        defs = _defs(root, labels, min_macro_f1=0.8)
        assert materialize_map(defs, keys, instance=instance, partition_keys=["p3"]).success
        assert dg.materialize(list(defs.assets), selection=[classes], partition_key="p3", instance=instance,
                              resources=defs.resources).success
        trainings = instance.fetch_materializations(train, limit=10).records
        assert len(trainings) == 1
        rows = _payloads(root, "p3")
        assert len(rows) == 45 and all(r["class_kind_version"] == version for r in rows)

        # the labels change: the classifier trains again and every partition's classes are stale
        pl.DataFrame({"id": [f"p2-{i}" for i in range(15)], "label": [KINDS[i % 3] for i in range(15)]}).write_csv(labels)
        assert dg.materialize(list(defs.assets), selection=[train], instance=instance, resources=defs.resources).success
        status = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert all(status.get_status(classes, p) == StaleStatus.STALE for p in ("p1", "p2", "p3"))


def _page_classes(root) -> dict[str, str | None]:
    import json

    page = (root / "home" / NAME / "map.html").read_text("utf-8")
    data = json.loads(page.split('id="embedmap-data">', 1)[1].split("</script>", 1)[0])
    kind = next((c for c in data["meta"] if c["name"] == "class_kind"), None)
    return {} if kind is None else {i: kind["values"][c] for i, c in zip(data["id"], kind["codes"])}


def test_automation_tags_partitions_after_training_and_draws_the_map_again_with_the_classes(landed):
    root, labels = landed
    defs = _defs(root, labels)
    keys = MapKeys.for_map(NAME)
    train, classes = dg.AssetKey([NAME, "classifier_kind"]), dg.AssetKey([NAME, "classes_kind"])
    assert classes in defs.resolve_asset_graph().get(keys.map).parent_keys
    daemon: dict = {}
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        assert _page_classes(root) == {}
        assert drive_automation(defs, instance, daemon) == []
        # a classifier nobody trained yet holds nothing back: new topics are drawn, the classes stay missing
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=keys.topics))
        assert drive_automation(defs, instance, daemon) == [{keys.map.to_user_string()}]

        # trained by hand: automation tags every partition, then draws the map again with their classes
        assert dg.materialize(list(defs.assets), selection=[train], instance=instance, resources=defs.resources).success
        rounds = drive_automation(defs, instance, daemon)
        requested = set().union(*rounds)
        assert {f"{classes.to_user_string()}[p1]", f"{classes.to_user_string()}[p2]", keys.map.to_user_string()} \
            <= requested, rounds
        assert train.to_user_string() not in requested
        shown = _page_classes(root)
        assert len(shown) == 90 and sum(shown[i] == KINDS[int(i.split("-")[1]) % 3] for i in shown) >= 86


def test_labels_from_a_user_asset_train_the_classifier_below_it_in_the_lineage(landed):
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    root, labels = landed

    @dg.asset(key=["support", "ticket_labels"])
    def ticket_labels() -> pl.DataFrame:  # what a user's own labelling tool might land
        return pl.read_csv(labels)

    home = root / "home"
    defs = dg.Definitions.merge(
        build_embedmap_defs(NAME, FileSource(str(root / "landing" / "*.parquet")), vector_column="emb", home=home,
                            classifiers=[ClassifierSpec("kind", examples_asset="support/ticket_labels")]),
        dg.Definitions(assets=[ticket_labels], resources={"qdrant": QdrantResource(path=str(home / "qdrant")),
                                                          "embedder": EmbedderResource(model=str(root / "no-model"))}),
    )
    keys = MapKeys.for_map(NAME)
    train = dg.AssetKey([NAME, "classifier_kind"])
    assert ticket_labels.key in defs.resolve_asset_graph().get(train).parent_keys
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        run = dg.materialize(list(defs.assets), selection=[ticket_labels.key, train], instance=instance,
                             resources=defs.resources)
        meta = run.asset_materializations_for_node(train.to_python_identifier())[0].metadata
        assert meta["examples"].value == 12 and meta["cv_accuracy"].value > 0.9
        assert "the labels of asset support/ticket_labels" in defs.resolve_asset_graph().get(train).description

        # new labels land: the classifier is stale until it trains again on them
        pl.DataFrame({"id": [f"p2-{i}" for i in range(15)], "label": [KINDS[i % 3] for i in range(15)]}).write_csv(labels)
        assert dg.materialize([ticket_labels], instance=instance).success
        status = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
        assert status.get_status(train) == StaleStatus.STALE
        model = (home / NAME / "classifiers" / "kind.npz").read_bytes()

        # a labels table without its label column: named, and the saved classifier is left as it was
        pl.DataFrame({"id": ["p2-0"], "kind": ["login"]}).write_csv(labels)
        run = dg.materialize(list(defs.assets), selection=[ticket_labels.key, train], instance=instance,
                             resources=defs.resources, raise_on_error=False)
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        text = failure.step_failure_data.error.to_string()
        assert "asset support/ticket_labels has no column ['label']" in text, text
        assert (home / NAME / "classifiers" / "kind.npz").read_bytes() == model


def test_a_classifier_under_its_floor_fails_its_check_and_unknown_ids_are_counted(landed):
    root, labels = landed
    pl.DataFrame({"id": ["p1-0", "p1-1", "p1-3", "p1-4", "nope"], "label": ["a", "b", "b", "a", "a"]}).write_csv(labels)
    defs = _defs(root, labels, min_macro_f1=0.99)  # labels at random: no classifier reaches it
    keys = MapKeys.for_map(NAME)
    train = dg.AssetKey([NAME, "classifier_kind"])
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        run = dg.materialize(list(defs.assets), selection=[train], instance=instance, resources=defs.resources,
                             raise_on_error=False)
        assert run.success  # the materialization is kept; its check says what is wrong
        meta = run.asset_materializations_for_node(train.to_python_identifier())[0].metadata
        assert meta["unknown_ids"].value == 1 and meta["examples"].value == 4
        (check,) = run.get_asset_check_evaluations()
        assert not check.passed and "under the floor 0.99" in check.description


def test_zero_shot_class_names_and_a_label_column_through_the_bundled_model(tmp_path, wiki_small):
    from dagster_embedmap import embedmap_resources

    wiki_small.write_parquet(tmp_path / "wiki.parquet")
    categories = sorted(set(wiki_small["category"]))
    home = tmp_path / "home"
    defs = dg.Definitions.merge(
        build_embedmap_defs("wiki", FileSource(str(tmp_path / "wiki.parquet"), partition_column="batch"), home=home,
                            metadata_columns=["category"],
                            classifiers=[ClassifierSpec("named", descriptions={c: c for c in categories}),
                                         ClassifierSpec("labelled", label_column="category")]),
        dg.Definitions(resources=embedmap_resources(home)),
    )
    keys = MapKeys.for_map("wiki")
    named, labelled = dg.AssetKey(["wiki", "classifier_named"]), dg.AssetKey(["wiki", "classifier_labelled"])
    with dg.instance_for_test() as instance:
        assert materialize_map(defs, keys, instance=instance).success
        run = dg.materialize(list(defs.assets), selection=[named, labelled], instance=instance, resources=defs.resources)
        assert run.success
        zero = run.asset_materializations_for_node(named.to_python_identifier())[0].metadata
        assert zero["mode"].text == "descriptions" and zero["examples"].value == 0
        learnt = run.asset_materializations_for_node(labelled.to_python_identifier())[0].metadata
        assert learnt["examples"].value == 120 and learnt["cv_accuracy"].value > 0.5
        for part in ("batch-000", "batch-001"):
            assert dg.materialize(list(defs.assets), selection=[dg.AssetKey(["wiki", "classes_named"])],
                                  partition_key=part, instance=instance, resources=defs.resources).success
    with open_store(StoreLocation(path=str(home / "qdrant")), "wiki", read_only=True) as store:
        rows = [r.payload for r in store.scroll()]
    assert len(rows) == 120 and all("class_named_version" in r for r in rows)
    tagged = [r for r in rows if r.get("class_named") is not None]  # the rest scored under the threshold
    right = sum(r["class_named"] == r["category"] for r in tagged) / max(len(tagged), 1)
    print(f"zero-shot: {len(tagged)} of {len(rows)} tagged, {right:.3f} of them right")
    assert len(tagged) >= 20 and right > 3 / len(categories), (len(tagged), right)  # chance: 1/11


def test_the_readme_classifier_example_builds_as_written(landed, monkeypatch):
    from pathlib import Path

    root, _ = landed
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = text.split("### Custom classifiers", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    for part in (1, 2):  # its landing folder, with the text column it names
        partition_frame(part).rename({"text": "body"}).write_parquet(root / "landing" / f"p{part}.parquet")
    scope: dict = {}
    exec(block, scope)
    keys = {k.to_user_string() for a in scope["defs"].assets for k in a.keys}
    for name in ("kind", "topic_guess", "team"):
        assert {f"tickets/classifier_{name}", f"tickets/classes_{name}"} <= keys
