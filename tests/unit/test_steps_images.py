"""Image records through the documents and embeddings steps, with a tiny CLIP model the test builds
(its text and image towers, one space) and images drawn with Pillow: each image is read once, embedded
from its image, re-embedded only when its file changes; bad images are named per record."""

from __future__ import annotations

import os

import numpy as np
import polars as pl
import pytest
from support.tiny_clip import DIMENSION, build_tiny_clip, draw_shape

from dagster_embedmap.core.embedding import Encoder, EncoderSettings
from dagster_embedmap.core.errors import EmbedMapInputError
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.records.documents import RecordSchema
from dagster_embedmap.core.records.images import ImageSettings
from dagster_embedmap.steps import NullLog, embed_partition, write_documents

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Said(NullLog):
    def __init__(self):
        self.warnings = []

    def warning(self, msg):
        self.warnings.append(msg)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Encoder:
    return Encoder(EncoderSettings(model=str(build_tiny_clip(tmp_path_factory.mktemp("model")))))


def _records(root):
    (root / "pics").mkdir(exist_ok=True)
    rows = []
    for i, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "circle")]):
        draw_shape(root / "pics" / f"{i}.png", colour, shape)
        rows.append({"id": f"img{i}", "path": f"pics/{i}.png", "caption": f"a {colour} {shape}" if i else None})
    rows.append({"id": "txt0", "path": None, "caption": "an article about bicycles"})
    return pl.DataFrame(rows)


def test_image_records_are_embedded_from_their_images_and_only_again_when_the_file_changes(tmp_path, clip):
    layout = MapLayout(str(tmp_path / "home"), "pics")
    schema = RecordSchema(id_column="id", text_column="caption", image_column="path",
                          images=ImageSettings(root=str(tmp_path)))
    docs = write_documents(layout, "p", _records(tmp_path), schema, NullLog()).frame
    assert docs["id"].to_list() == ["img0", "img1", "img2", "txt0"]  # an image needs no caption
    assert docs["image"].null_count() == 1 and docs["thumbnail"].null_count() == 1 and docs["text"][0] == ""
    assert docs["path"].to_list()[:2] == ["pics/0.png", "pics/1.png"]  # the path travels as metadata
    first = embed_partition(layout, "p", lambda: clip, NullLog())
    assert (first.embedded, first.reused, first.dimension) == (4, 0, DIMENSION)
    vectors = np.stack(first.frame["vector"].to_list())
    from_image = clip.encode_images([docs["image"][1]])[0]
    assert np.allclose(vectors[1], from_image, atol=1e-5)  # the image tower, not the caption's text
    assert not np.allclose(vectors[1], clip.encode(["a blue square"])[0], atol=1e-3)
    assert np.allclose(vectors[3], clip.encode(["an article about bicycles"])[0], atol=1e-5)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)

    again = embed_partition(layout, "p", lambda: clip, NullLog())
    assert (again.embedded, again.reused) == (0, 4)
    # one image file changes, under the same path and caption: only that record is embedded again
    records = _records(tmp_path)
    draw_shape(tmp_path / "pics" / "2.png", "red", "square")
    write_documents(layout, "p", records, schema, NullLog())
    changed = embed_partition(layout, "p", lambda: clip, NullLog())
    assert (changed.embedded, changed.reused) == (1, 3)


def test_a_broken_image_and_a_missing_path_are_named_and_fail_or_skip_by_policy(tmp_path, clip):
    layout = MapLayout(str(tmp_path / "home"), "pics")
    records = _records(tmp_path)
    (tmp_path / "pics" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    records = pl.concat([records, pl.DataFrame({"id": ["bad", "gone"], "path": ["pics/bad.png", "pics/nope.png"],
                                                "caption": ["broken", "missing"]})])
    strict = RecordSchema(text_column="caption", image_column="path", images=ImageSettings(root=str(tmp_path), bad="fail"))
    write_documents(layout, "p", records.head(4), strict, NullLog())
    before = layout.documents("p").read_bytes()
    with pytest.raises(EmbedMapInputError) as err:
        write_documents(layout, "p", records, strict, NullLog())
    text = str(err.value)
    assert "partition 'p': 2 image(s) of column 'path' cannot be read" in text
    assert "id 'bad': " in text and "bad.png is not an image Pillow can read" in text
    assert f"id 'gone': no file at {tmp_path / 'pics' / 'nope.png'}" in text and "ImageSettings(bad='skip')" in text
    assert layout.documents("p").read_bytes() == before  # nothing half-written
    said = Said()
    lenient = RecordSchema(text_column="caption", image_column="path", images=ImageSettings(root=str(tmp_path)))
    kept = write_documents(layout, "p", records, lenient, said).frame
    assert kept.height == 4 and not {"bad", "gone"} & set(kept["id"])
    assert any("skipped 2 record(s) whose image in column 'path' cannot be read" in w and "id 'gone'" in w
               for w in said.warnings)


def test_a_text_model_refuses_images_with_a_clear_message(tmp_path):
    layout = MapLayout(str(tmp_path / "home"), "pics")
    schema = RecordSchema(text_column="caption", image_column="path", images=ImageSettings(root=str(tmp_path)))
    write_documents(layout, "p", _records(tmp_path), schema, NullLog())
    with pytest.raises(EmbedMapInputError, match="embeds no images.*CLIP-family"):
        embed_partition(layout, "p", lambda: Encoder(), NullLog())


def test_a_topic_of_images_named_from_borrowed_texts_is_marked_as_such():
    from dagster_embedmap.assets.metadata import topic_tree_markdown
    from dagster_embedmap.steps.topics import LABELLED_FROM, mark_borrowed

    table = pl.DataFrame({"level": [0, 0, 1, 1, 1], "topic_id": [0, 1, 0, 1, 2], "parent_id": [None, None, 0, 0, 1],
                          "size": [6, 4, 3, 3, 4], "x": [0.0] * 5, "y": [0.0] * 5,
                          "label": ["cats", "bikes", "tabby", "kitten", "wheels"], "keywords": [["w"]] * 5})
    broad = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    fine = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    borrowed = np.array([False, False, False, True, True, True, True, True, True, False])
    marked = mark_borrowed(table, [broad, fine], borrowed, None)
    by = {(r["level"], r["topic_id"]): r[LABELLED_FROM] for r in marked.iter_rows(named=True)}
    assert by == {(0, 0): "texts", (0, 1): "nearest texts", (1, 0): "texts", (1, 1): "nearest texts",
                  (1, 2): "nearest texts"}
    assert "kitten** (named from the nearest texts" not in topic_tree_markdown(marked)
    assert "kitten (named from the nearest texts: its records are images)" in topic_tree_markdown(marked)
    assert mark_borrowed(table, [broad, fine], np.zeros(10, dtype=bool), None).columns == table.columns  # texts only
    kept = mark_borrowed(table, [broad, fine], None, marked)  # no new names: the marks stay
    assert kept[LABELLED_FROM].to_list() == marked[LABELLED_FROM].to_list()


def test_an_image_column_named_image_keeps_its_paths_beside_the_kept_image_and_a_text_map_keeps_the_name(tmp_path):
    from dagster_embedmap.core.records.documents import attach_images, prepare_documents

    draw_shape(tmp_path / "a.png", "red", "circle")
    frame = pl.DataFrame({"id": ["a"], "text": ["a red circle"], "image": ["a.png"]})
    schema = RecordSchema(image_column="image", images=ImageSettings(root=str(tmp_path)))
    docs = attach_images(prepare_documents(frame, schema, "p"), schema, "p")
    assert docs.frame["meta_image"].to_list() == ["a.png"] and docs.frame["image"].dtype == pl.Binary
    assert docs.renamed_columns == {"image": "meta_image"}
    texts = prepare_documents(frame, RecordSchema(), "p")  # no image column: "image" is plain metadata
    assert texts.frame["image"].to_list() == ["a.png"] and texts.renamed_columns == {}
