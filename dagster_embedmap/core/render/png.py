"""The PNG preview: a topic-coloured scatter with the biggest topics' labels, drawn with Pillow.

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
from .shared import _NOISE_COLOR, _as_frame, _base_points, _require, _topic_table, _wrap, _write_atomic


def render_preview_png(
    points: pl.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "",
    max_labels: int = 25,
    width_px: int = 1000,
    height_px: int = 750,
) -> pathlib.Path:
    """Draw a topic-coloured scatter of ``points`` into a PNG of ``width_px`` x ``height_px``.

    ``points`` needs ``x`` and ``y``; ``topic_id`` (-1 = no topic) and ``topic_label`` colour and
    label it. The ``max_labels`` largest topics get their label (wrapped at ~25 characters, white
    halo) at the median position of their points. An empty frame gives a PNG saying "no points".
    The file is written atomically (parent folders created); the path is returned.
    """
    if width_px < 16 or height_px < 16:
        raise EmbedMapInputError(f"PNG size must be at least 16x16 px, got {width_px}x{height_px}")
    points = _as_frame(points)
    _require(points, ["x", "y"], "render_preview_png")
    df = _base_points(points).select("x", "y", "topic_id", "topic_label")
    topics = _topic_table(df)

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
        _draw_labels(draw, topics, max_labels, to_px, box, px_per_pt)

    small = image.resize((width_px, height_px), Image.Resampling.LANCZOS) if scale > 1 else image
    return _write_atomic(path, _encode(small))


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


def _draw_labels(draw, topics: list[dict], max_labels: int, to_px, box, px_per_pt: float) -> None:
    """Label the ``max_labels`` biggest topics at their median point, biggest first and larger, with a
    white halo; a label that would overlap one already placed, or leave the plotting area, is left out."""
    labelled = [t for t in topics if t["id"] >= 0][: max(0, max_labels)]
    biggest = labelled[0]["count"] if labelled else 1
    placed: list[tuple[float, float, float, float]] = []
    for t in labelled:
        x, y = to_px(t["cx"], t["cy"])
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        fontsize = (7.5 + 3.5 * math.sqrt(t["count"] / biggest)) * px_per_pt
        text = "\n".join(_wrap(t["label"]))
        left, top, right, bottom = _text(draw, (float(x), float(y)), text, fontsize, "#1a1a1a",
                                         halo=1.5 * px_per_pt, measure_only=True)
        pad_x, pad_y = (right - left) * 0.02, (bottom - top) * 0.05
        area = (left - pad_x, top - pad_y, right + pad_x, bottom + pad_y)
        if area[0] < box[0] or area[2] > box[2] or area[1] < box[1] or area[3] > box[3]:
            continue
        if any(area[0] < o[2] and o[0] < area[2] and area[1] < o[3] and o[1] < area[3] for o in placed):
            continue
        placed.append(area)
        _text(draw, (float(x), float(y)), text, fontsize, "#1a1a1a", halo=1.5 * px_per_pt)


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


