"""The PNG preview: a topic-coloured scatter with its topics' labels, drawn with Pillow by the HTML
map's rules (``static/map.js`` at its overview): the same colours (sub-topics as tones of their broad
topic's hue), the broad topics as large, light region titles, the next level's labels biggest first,
each on its topic's centre or beside it with a leader line, none overlapping another or leaving the
plotting area.

Drawn directly with Pillow (matplotlib's figure machinery cost a fresh process 0.3-0.5 s of imports,
most of a small map's preview), in matplotlib's default font (DejaVu Sans, read from matplotlib's
package data without importing it)."""

from __future__ import annotations

import base64
import functools
import io
import math
import os
import pathlib

import numpy as np
import polars as pl

from ..errors import EmbedMapInputError
from .shared import (
    _NOISE_COLOR, _WRAP, _as_frame, _base_points, _level_columns, _level_tables, _require, _topic_levels,
    _with_level_columns, _wrap, _write_atomic,
)


def render_preview_png(
    points: pl.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
    max_labels: int | None = None,
    width_px: int = 1000,
    height_px: int = 750,
) -> pathlib.Path:
    """Draw a topic-coloured scatter of ``points`` into a PNG of ``width_px`` x ``height_px``.

    ``points`` needs ``x`` and ``y``; ``topic_id`` (-1 = no topic) and ``topic_label`` colour and
    label it, and the levels ``topic_0_id`` / ``topic_0_label``, ... (broad first), when present, give
    the colours and the region titles the HTML map shows. Up to ``max_labels`` labels of the level
    below the broad one (default: one per 12,000 square pixels, as the HTML map) are placed as there
    (see the module docstring). An empty frame gives a PNG saying "no points". The file is written
    atomically (parent folders created); the path is returned.
    """
    return _write_atomic(path, draw_preview(points, title=title, max_labels=max_labels, width_px=width_px,
                                            height_px=height_px)[0])


def draw_preview(points: pl.DataFrame, *, title: str = "", max_labels: int | None = None, width_px: int = 1000,
                 height_px: int = 750) -> tuple[bytes, list[tuple[int, str]]]:
    """The preview's PNG bytes (see :func:`render_preview_png`) and the labels drawn: ``(level, label)``,
    the region titles (level 0) first."""
    if width_px < 16 or height_px < 16:
        raise EmbedMapInputError(f"PNG size must be at least 16x16 px, got {width_px}x{height_px}")
    points = _as_frame(points)
    _require(points, ["x", "y"], "render_preview_png")
    levels = _topic_levels(points)
    df = _base_points(_with_level_columns(points, levels))
    tables = _level_tables(df, *_level_columns(df, len(levels)))
    topics = tables[-1] if tables else []  # the finest level, coloured as on the HTML map
    thumbs = df.select("x", "y", "topic_id", "thumbnail").drop_nulls("thumbnail") if "thumbnail" in df.columns else None
    df = df.select("x", "y", "topic_id")
    drawn: list[tuple[int, str]] = []

    from PIL import Image, ImageDraw

    scale = _SUPERSAMPLE
    width, height = width_px * scale, height_px * scale
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image, "RGBA")  # fills with alpha are blended onto the image
    px_per_pt = _DPI / 72.0 * scale
    title_frac = min(0.12, 40 / height_px) if title else 0.0
    # the plotting area: 1% margins, below the title band
    box = (0.01 * width, (0.01 + title_frac) * height, 0.99 * width, 0.99 * height)
    if title:
        _text(draw, (width / 2, title_frac / 2 * height), title, 14 * px_per_pt, "#222222", halo=0)

    n = df.height
    if n == 0:
        _text(draw, (width / 2, height / 2), "no points", 18 * px_per_pt, "#888888", bold=False, halo=0)
    else:
        size = float(np.clip(12000.0 / n, 1.2, 20.0))  # marker area in points^2, as a scatter's ``s``
        alpha = float(np.clip(0.85 * (2000.0 / n) ** 0.35, 0.3, 0.85))
        xs, ys = df["x"].to_numpy(), df["y"].to_numpy()
        if n == 1 or (np.ptp(xs) == 0 and np.ptp(ys) == 0):
            x0, y0 = float(xs[0]), float(ys[0])
            pad = max(1.0, abs(x0) * 0.1, abs(y0) * 0.1)
            xlim, ylim = (x0 - pad, x0 + pad), (y0 - pad, y0 + pad)
        else:
            xlim, ylim = _padded(xs, 0.12), _padded(ys, 0.05)  # room for labels centred near the edge

        def to_px(x, y):
            px = box[0] + (np.asarray(x, dtype=np.float64) - xlim[0]) / (xlim[1] - xlim[0]) * (box[2] - box[0])
            py = box[3] - (np.asarray(y, dtype=np.float64) - ylim[0]) / (ylim[1] - ylim[0]) * (box[3] - box[1])
            return px, py

        radius = max(0.5, np.sqrt(size) * px_per_pt / 2)
        rank = {t["id"]: i for i, t in enumerate(topics)}
        # no topic first, then the biggest topics first, so that small ones end up on top
        order = df.with_columns(
            pl.when(pl.col("topic_id") < 0).then(-1)
            .otherwise(pl.col("topic_id").replace_strict(rank, default=len(rank), return_dtype=pl.Int64))
            .alias("_rank")
        ).sort("_rank", maintain_order=True)
        colour = {t["id"]: _rgba(t["color"], alpha) for t in topics}
        noise = _rgba(_NOISE_COLOR, alpha)
        px, py = to_px(order["x"].to_numpy(), order["y"].to_numpy())
        inside = np.isfinite(px) & np.isfinite(py)
        ellipse = draw.ellipse
        for x, y, tid, ok in zip(px.tolist(), py.tolist(), order["topic_id"].to_list(), inside.tolist()):
            if ok:
                ellipse((x - radius, y - radius, x + radius, y + radius),
                        fill=noise if tid is None or tid < 0 else colour.get(tid, noise))
        if thumbs is not None and thumbs.height:
            _draw_thumbnails(image, thumbs, topics, to_px, scale)
        cap = max(8, round(width_px * height_px / 12000)) if max_labels is None else max_labels
        drawn = _draw_labels(draw, tables, cap, to_px, box, scale)

    small = image.resize((width_px, height_px), Image.Resampling.LANCZOS) if scale > 1 else image
    return _encode(small), drawn


def _draw_thumbnails(image, thumbs: pl.DataFrame, topics: list[dict], to_px, scale: int, per_topic: int = 3,
                     n_topics: int = 8, side: int = 36) -> None:
    """Of the ``n_topics`` biggest topics with image records, the ``per_topic`` images nearest the topic's
    centre, ``side`` px each, in a row on the centre (the labels are drawn over them afterwards)."""
    import io

    from PIL import Image

    shown = 0
    for topic in topics:
        if shown >= n_topics or topic["id"] < 0:
            continue
        mine = thumbs.filter(pl.col("topic_id") == topic["id"])
        if mine.height == 0:
            continue
        near = mine.with_columns(((pl.col("x") - topic["cx"]) ** 2 + (pl.col("y") - topic["cy"]) ** 2).alias("_d")) \
            .sort("_d").head(per_topic)["thumbnail"].to_list()
        cx, cy = (float(v) for v in to_px(topic["cx"], topic["cy"]))
        cell = side * scale
        x0 = cx - (len(near) * (cell + 2 * scale)) / 2
        for i, data in enumerate(near):
            with Image.open(io.BytesIO(data)) as img:
                img = img.convert("RGB")
                img.thumbnail((cell, cell))
                at = (int(x0 + i * (cell + 2 * scale)), int(cy - img.height / 2))
                image.paste(Image.new("RGB", (img.width + 2 * scale, img.height + 2 * scale), topic["color"]),
                            (at[0] - scale, at[1] - scale))
                image.paste(img, at)
        shown += 1


_DPI = 100
_SUPERSAMPLE = 2
"""The preview is drawn at twice its size and reduced: smooth discs and text."""
_HALO = "white"


def _font_path(bold: bool) -> str | None:
    """DejaVu Sans (bold), the font matplotlib ships, found without importing matplotlib."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = pathlib.Path(folder) / "mpl-data" / "fonts" / "ttf" / f"DejaVuSans{'-Bold' if bold else ''}.ttf"
        if path.exists():
            return str(path)
    return None


def _font(size_px: float, bold: bool = True):
    return _font_of_size(max(1, int(round(size_px))), bold)


@functools.lru_cache(maxsize=64)
def _font_of_size(size: int, bold: bool):
    """The label font, read once per size (each label is measured, then drawn)."""
    from PIL import ImageFont

    path = _font_path(bold)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _rgba(colour: str, alpha: float) -> tuple[int, int, int, int]:
    colour = colour.lstrip("#")
    return int(colour[0:2], 16), int(colour[2:4], 16), int(colour[4:6], 16), int(round(alpha * 255))


def _text(draw, centre, text: str, size_px: float, fill: str, bold: bool = True, halo: float = 0,
          measure_only: bool = False):
    """Draw ``text`` (lines centred) centred at ``centre``; its bounding box (left, top, right, bottom)."""
    font = _font(size_px, bold)
    stroke = int(round(halo))
    bbox = draw.multiline_textbbox(centre, text, font=font, anchor="mm", align="center", stroke_width=stroke)
    if not measure_only:
        draw.multiline_text(centre, text, font=font, anchor="mm", align="center", fill=fill,
                            stroke_width=stroke, stroke_fill=_HALO)
    return bbox


def _draw_labels(draw, tables: list[list[dict]], max_labels: int, to_px, box, scale: float) -> list[tuple[int, str]]:
    """Place and draw the labels as the HTML map does at its overview (``drawLabels`` in ``static/map.js``,
    in the same sizes, as pixels of the preview): first the broad topics' region titles, largest first,
    then up to ``max_labels`` of the next level's, biggest first, leaving out one that repeats its
    region's title. Each goes on its topic's centre or, when that is taken, one or two label sizes
    above, below, beside or diagonally off it (a leader line goes back to the centre); one with no free
    place inside ``box`` is left out. Returns ``(level, label)`` of each label drawn."""
    regions = tables[0] if len(tables) > 1 else []
    level = 1 if len(tables) > 1 else 0
    finer = tables[level] if tables else []
    placed: list[tuple[float, float, float, float]] = []
    drawn: list[tuple[int, str]] = []
    titled: dict[int, str] = {}
    halo = 2 * scale

    def free(t, size_px: float, wrap: int):
        x, y = to_px(t["cx"], t["cy"])
        if not (np.isfinite(x) and np.isfinite(y)):
            return None
        text = "\n".join(_wrap(t["label"], wrap))
        left, top, right, bottom = _text(draw, (float(x), float(y)), text, size_px, "#000", halo=halo,
                                         measure_only=True)
        left, top, right, bottom = left - 3 * scale, top - 2 * scale, right + 3 * scale, bottom + 2 * scale
        w, h = right - left, bottom - top
        for step in (0, 1, 2):
            dx, dy = step * (w / 2 + 8 * scale), step * (h + 4 * scale)
            moves = [(0, 0)] if step == 0 else [(0, -dy), (0, dy), (dx, 0), (-dx, 0), (dx, -dy), (-dx, -dy),
                                                (dx, dy), (-dx, dy)]
            for mx, my in moves:
                area = (left + mx, top + my, right + mx, bottom + my)
                if area[0] < box[0] or area[2] > box[2] or area[1] < box[1] or area[3] > box[3]:
                    continue
                if any(area[0] < o[2] and o[0] < area[2] and area[1] < o[3] and o[1] < area[3] for o in placed):
                    continue
                placed.append(area)
                return text, (float(x), float(y)), area
        return None

    titles = []
    big = max([t["count"] for t in regions if t["id"] >= 0] or [1])
    for g, t in enumerate(regions):
        if t["id"] < 0:
            continue
        size = (17 + 9 * math.sqrt(t["count"] / big)) * scale
        spot = free(t, size, 20)
        if spot is not None:
            titles.append((spot, size))
            titled[g] = t["label"]
            drawn.append((0, t["label"]))
    labels = []
    big = max([t["count"] for t in finer if t["id"] >= 0] or [1])
    for t in finer:
        if len(labels) >= max_labels:
            break
        if t["id"] < 0 or (regions and titled.get(t.get("parent", -1)) == t["label"]):
            continue
        size = (11 + 4 * math.sqrt(t["count"] / big)) * scale
        spot = free(t, size, _WRAP)
        if spot is not None:
            labels.append((spot, size))
            drawn.append((level, t["label"]))
    for (text, _, area), size in titles:
        centre = ((area[0] + area[2]) / 2, (area[1] + area[3]) / 2)
        _text(draw, centre, text, size, (70, 70, 70, 140), halo=halo)
    for (text, (x, y), area), size in labels:
        centre = ((area[0] + area[2]) / 2, (area[1] + area[3]) / 2)
        if abs(centre[0] - x) > scale or abs(centre[1] - y) > scale:  # moved: a leader line back to the centre
            end = (min(max(x, area[0]), area[2]), min(max(y, area[1]), area[3]))
            draw.line([(x, y), end], fill=(60, 60, 60, 140), width=max(1, int(scale)))
            draw.ellipse((x - 2 * scale, y - 2 * scale, x + 2 * scale, y + 2 * scale), fill=(60, 60, 60, 190))
        _text(draw, centre, text, size, "#1a1a1a", halo=halo)
    return drawn


def _padded(values: np.ndarray, frac: float = 0.03) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return -1.0, 1.0
    lo, hi = float(np.min(finite)), float(np.max(finite))
    pad = (hi - lo) * frac or max(1.0, abs(lo) * 0.1)
    return lo - pad, hi + pad


def _encode(image) -> bytes:
    """The image as a PNG, encoded once at zlib's default level."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def png_markdown(path: str | os.PathLike, alt: str = "map preview") -> str:
    """The PNG at ``path`` as an inline markdown image (``![alt](data:image/png;base64,...)``)."""
    encoded = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    safe_alt = " ".join(alt.split())
    for ch in ("\\", "[", "]"):
        safe_alt = safe_alt.replace(ch, "\\" + ch)
    return f"![{safe_alt}](data:image/png;base64,{encoded})"


