"""Image records through real Dagster materializations and a real embedded Qdrant: a folder of images
drawn with Pillow plus a CSV of paths and captions becomes a map, embedded by a tiny CLIP model the test
builds (saved as a sentence-transformers folder, loaded as any CLIP model is). Its weights are random:
these tests check the path (every image a point, both towers in one space, bad images named), not the
quality a real CLIP model gives."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl
import pytest
from support.tiny_clip import COLOURS, build_tiny_clip, draw_shape

from dagster_embedmap import FileSource, ImageSettings, MapKeys, build_embedmap_defs, embedmap_resources, materialize_map
from dagster_embedmap.core.embedding import Encoder, EncoderSettings
from dagster_embedmap.core.store import StoreLocation, open_store
from dagster_embedmap.core.store.search import search_map

os.environ.setdefault("HF_HUB_OFFLINE", "1")
NAME = "pics"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(build_tiny_clip(tmp_path_factory.mktemp("model")))


def _landing(root, n=24, texts=8):
    landing = root / "landing"
    (landing / "img").mkdir(parents=True)
    rows = []
    for i in range(n):
        colour, shape = list(COLOURS)[i % 3], ("circle", "square")[i % 2]
        draw_shape(landing / "img" / f"{i}.png", colour, shape, size=(64 + i, 48 + i))
        rows.append({"id": f"img{i}", "path": f"img/{i}.png", "caption": f"a {colour} {shape}" if i % 4 else None})
    for i in range(texts):
        rows.append({"id": f"txt{i}", "path": None, "caption": f"an article about {list(COLOURS)[i % 3]} paint"})
    pl.DataFrame(rows).write_csv(landing / "images.csv")
    return landing


def _defs(root, model, **kwargs):
    home = root / "home"
    return dg.Definitions.merge(
        build_embedmap_defs(NAME, FileSource(str(root / "landing" / "images.csv")), text_column="caption",
                            image_column="path", home=home, **kwargs),
        dg.Definitions(resources=embedmap_resources(home, model=model)),
    )


def _points(root):
    with open_store(StoreLocation(path=str(root / "home" / "qdrant")), NAME, read_only=True) as store:
        return {r.payload["record_id"]: r.payload for r in store.scroll()}


def test_a_folder_of_images_and_a_csv_of_captions_becomes_a_map_a_text_query_finds_images(tmp_path, model):
    _landing(tmp_path)
    defs = _defs(tmp_path, model)
    keys = MapKeys.for_map(NAME)
    with dg.instance_for_test() as instance:
        result = materialize_map(defs, keys, instance=instance)
        assert result.success
        embedded = result.metadata(keys.embeddings)
        assert embedded["embedded"] == 32 and embedded["dagster/row_count"] == 32
        assert embedded["image_sample"].startswith("![a sample of the partition's images](data:image/jpeg;base64,")
    points = _points(tmp_path)
    assert len(points) == 32 and all(p.get("x") is not None and p.get("topic_id") is not None for p in points.values())
    assert points["img3"]["path"] == "img/3.png" and points["img0"]["text"] == ""
    encoder = Encoder(EncoderSettings(model=model))
    with open_store(StoreLocation(path=str(tmp_path / "home" / "qdrant")), NAME, read_only=True) as store:
        hits = [h.id for h in search_map(store, encoder, "a red circle", k=32)]
    assert len(hits) == 32 and any(h.startswith("img") for h in hits[:10])  # one space: a text query ranks images
    html = (tmp_path / "home" / NAME / "map.html").read_text("utf-8")
    assert "img3" in html

    # images without a caption lend their nearest texts to the topics' names, and the table says which
    from dagster_embedmap.core.paths import MapLayout
    from dagster_embedmap.core.store.payload import points_frame
    from dagster_embedmap.steps.topics import label_texts

    layout = MapLayout(str(tmp_path / "home"), NAME)
    opener = lambda: open_store(StoreLocation(path=str(tmp_path / "home" / "qdrant")), NAME, read_only=True)  # noqa: E731
    with opener() as store:
        frame = points_frame(store)
    texts, borrowed = label_texts(frame, layout, opener, NAME)
    captions = set(pl.read_csv(tmp_path / "landing" / "images.csv")["caption"].drop_nulls())
    uncaptioned = [i for i, rid in enumerate(frame["id"]) if rid.startswith("img") and int(rid[3:]) % 4 == 0]
    assert len(uncaptioned) == 6 and all(borrowed[i] for i in uncaptioned) and borrowed.sum() == 6
    assert all(set(texts[i].split("\n")) <= captions for i in uncaptioned)
    table = pl.read_parquet(layout.topics)
    assert set(table["labelled_from"]) <= {"texts", "nearest texts"}


def test_a_broken_image_and_a_missing_path_are_named_and_leave_the_collection_unchanged(tmp_path, model):
    landing = _landing(tmp_path, n=12, texts=4)
    keys = MapKeys.for_map(NAME)
    with dg.instance_for_test() as instance:
        assert materialize_map(_defs(tmp_path, model), keys, instance=instance).success
        before = _points(tmp_path)
        (landing / "img" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
        rows = pl.read_csv(landing / "images.csv")
        pl.concat([rows, pl.DataFrame({"id": ["bad", "gone"], "path": ["img/bad.png", "img/none.png"],
                                       "caption": ["broken", "missing"]})]).write_csv(landing / "images.csv")
        strict = _defs(tmp_path, model, images=ImageSettings(bad="fail"))
        run = dg.materialize(list(strict.assets), selection=[keys.documents, keys.embeddings, keys.collection],
                             partition_key="all", instance=instance, resources=strict.resources, raise_on_error=False)
        assert not run.success
        failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
        text = failure.step_failure_data.error.to_string()
        assert "2 image(s) of column 'path' cannot be read" in text and "id 'bad'" in text
        assert f"id 'gone': no file at {landing / 'img' / 'none.png'}" in text
        assert _points(tmp_path) == before  # nothing half-written
        lenient = _defs(tmp_path, model)
        run = dg.materialize(list(lenient.assets), selection=[keys.documents, keys.embeddings, keys.collection],
                             partition_key="all", instance=instance, resources=lenient.resources)
        assert run.success and set(_points(tmp_path)) == set(before)
        meta = run.asset_materializations_for_node(keys.documents.to_python_identifier())[0].metadata
        assert meta["images"].value == 12 and meta["skipped_bad_images"].value == 2
        assert "| gone | no file at" in meta["bad_images"].value and meta["thumbnail_bytes"].value > 1000


def test_the_readme_images_example_builds_as_written(tmp_path, monkeypatch):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = text.split("### Images on the same map", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    _landing(tmp_path, n=3, texts=1)
    scope: dict = {}
    exec(block, scope)
    documents = scope["defs"].get_assets_def(dg.AssetKey(["photos", "documents"]))
    assert documents.partitions_def.get_partition_keys() == ["all"]
    assert scope["resources"]["embedder"].model == "/models/clip-ViT-B-32"
