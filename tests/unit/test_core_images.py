"""Reading image records: paths (relative to the source, or absolute) or bytes, checked, hashed, resized
for the model and thumbnailed; every bad image named with its reason. Images drawn here with Pillow."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageDraw

from dagster_embedmap.core.records.images import (
    ImageSettings, contact_sheet, decode_image, image_root_of, load_images,
)


def drawn(path, size=(320, 240), colour=(200, 30, 30), mode="RGB", fmt=None):
    img = Image.new(mode, size, (255, 255, 255, 0) if mode == "RGBA" else (255, 255, 255))
    ImageDraw.Draw(img).ellipse([size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4], fill=colour)
    img.save(path, format=fmt)
    return path


def test_images_are_hashed_resized_for_the_model_and_thumbnailed(tmp_path):
    (tmp_path / "pics").mkdir()
    drawn(tmp_path / "pics" / "big.jpg", size=(1200, 800))
    drawn(tmp_path / "pics" / "clear.png", size=(100, 80), mode="RGBA", colour=(0, 0, 255, 255))
    raw = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(raw, format="PNG")
    loaded = load_images(["pics/big.jpg", str(tmp_path / "pics" / "clear.png"), raw.getvalue(), None, ""],
                         ["a", "b", "c", "d", "e"], root=tmp_path)
    assert loaded.bad == [] and loaded.hashes[3] is None and loaded.images[4] is None
    big = decode_image(loaded.images[0])
    assert min(big.size) == 256 and big.size == (384, 256)  # shortest side at most model_px, the shape kept
    assert Image.open(io.BytesIO(loaded.thumbnails[0])).size == (64, 43)
    assert all(len(t) < 4000 for t in loaded.thumbnails[:3])
    clear = decode_image(loaded.images[1])
    assert clear.size == (100, 80) and clear.getpixel((2, 2))[0] > 240  # transparent: on white, not black
    assert decode_image(loaded.images[2]).getpixel((5, 5))[1] > 150
    again = load_images(["pics/big.jpg"], ["a"], root=tmp_path)
    assert again.hashes == loaded.hashes[:1]  # the hash is the file's: the same file, the same hash
    drawn(tmp_path / "pics" / "big.jpg", size=(1200, 800), colour=(10, 10, 10))
    assert load_images(["pics/big.jpg"], ["a"], root=tmp_path).hashes != loaded.hashes[:1]


def test_each_bad_image_is_named_with_its_reason(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg at all")
    (tmp_path / "notes.png").write_text("plain text", encoding="utf-8")
    drawn(tmp_path / "ok.png", size=(50, 50))
    drawn(tmp_path / "huge.png", size=(400, 400))
    loaded = load_images(["broken.jpg", "missing.png", "notes.png", "ok.png", "huge.png"], ["r1", "r2", "r3", "r4", "r5"],
                         root=tmp_path, settings=ImageSettings(max_pixels=100_000))
    reasons = dict(loaded.bad)
    assert sorted(reasons) == ["r1", "r2", "r3", "r5"] and loaded.hashes[3] is not None
    assert "broken.jpg is not an image Pillow can read" in reasons["r1"]
    assert reasons["r2"] == f"no file at {tmp_path / 'missing.png'}"
    assert "notes.png is not an image Pillow can read" in reasons["r3"]
    assert "is 400 x 400, over max_pixels (100,000)" in reasons["r5"]


def test_relative_paths_are_read_from_the_sources_folder():
    assert str(image_root_of("/data/landing/*.csv")) == "/data/landing"
    assert str(image_root_of("/data/landing/images.csv")) == "/data/landing"
    assert str(image_root_of("/data/*/part-*.parquet")) == "/data"
    with pytest.raises(ValueError, match="thumbnail_px must be at least 8"):
        ImageSettings(thumbnail_px=4)


def test_a_contact_sheet_lays_thumbnails_out_in_a_grid(tmp_path):
    for i in range(10):
        drawn(tmp_path / f"{i}.png", size=(80 + 10 * i, 60))
    loaded = load_images([f"{i}.png" for i in range(10)], [str(i) for i in range(10)], root=tmp_path)
    sheet = Image.open(io.BytesIO(contact_sheet(loaded.thumbnails, columns=4)))
    assert sheet.size == (4 * 68 + 4, 3 * 68 + 4)
    assert contact_sheet([None, None]) is None


def test_the_png_preview_shows_a_few_images_of_each_big_topic():
    import numpy as np
    import polars as pl

    from dagster_embedmap.core.render import draw_preview

    rng = np.random.default_rng(0)
    magenta = io.BytesIO()
    Image.new("RGB", (64, 48), (255, 0, 255)).save(magenta, format="JPEG", quality=90)
    n = 200
    points = pl.DataFrame({"id": [str(i) for i in range(n)], "x": np.r_[rng.normal(0, 1, n // 2), rng.normal(8, 1, n // 2)],
                           "y": rng.normal(0, 1, n), "topic_id": [0] * (n // 2) + [1] * (n // 2),
                           "topic_label": ["left"] * (n // 2) + ["right"] * (n // 2),
                           "thumbnail": pl.Series([magenta.getvalue() if i % 5 == 0 else None for i in range(n)],
                                                  dtype=pl.Binary)})

    def magenta_pixels(frame) -> int:
        png, _ = draw_preview(frame, title="t")
        rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] > 200)).sum())

    assert magenta_pixels(points) > 2 * 3 * 20 * 20  # 3 images of 36 px in each of the 2 topics, partly under labels
    assert magenta_pixels(points.drop("thumbnail")) == 0
