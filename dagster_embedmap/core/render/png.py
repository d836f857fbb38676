"""The PNG preview: a topic-coloured scatter drawn with matplotlib (Agg canvas, no pyplot state)."""

from __future__ import annotations

import base64
import io
import math
import os
import pathlib
import warnings
from typing import Any

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

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    # the +0.01 px keeps int(figsize * dpi) from rounding down to width_px - 1
    fig = Figure(figsize=((width_px + 0.01) / dpi, (height_px + 0.01) / dpi), dpi=dpi)
    fig.patch.set_facecolor("white")
    FigureCanvasAgg(fig)
    title_frac = min(0.12, 40 / height_px) if title else 0.0
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 - title_frac))
    ax.set_axis_off()
    if title:
        fig.text(
            0.5, 1 - title_frac / 2, title, ha="center", va="center",
            fontsize=14, fontweight="bold", color="#222222",
        )  # fmt: skip

    n = df.height
    if n == 0:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.text(0.5, 0.5, "no points", ha="center", va="center", fontsize=18, color="#888888")
    else:
        size = float(np.clip(12000.0 / n, 1.2, 20.0))
        alpha = float(np.clip(0.85 * (2000.0 / n) ** 0.35, 0.3, 0.85))
        rank = {t["id"]: i for i, t in enumerate(topics)}
        color = {t["id"]: t["color"] for t in topics}
        noise = df.filter(pl.col("topic_id") < 0)
        if noise.height:
            ax.scatter(
                noise["x"].to_numpy(), noise["y"].to_numpy(), s=size, c=_NOISE_COLOR,
                alpha=alpha, linewidths=0, edgecolors="none",
            )  # fmt: skip
        rest = df.filter(pl.col("topic_id") >= 0)
        if rest.height:
            # biggest topics first so small ones end up on top
            rest = rest.with_columns(
                pl.col("topic_id").replace_strict(rank, return_dtype=pl.Int64).alias("_rank")
            ).sort("_rank", maintain_order=True)
            colors = [color[t] for t in rest["topic_id"].to_list()]
            ax.scatter(
                rest["x"].to_numpy(), rest["y"].to_numpy(), s=size, c=colors,
                alpha=alpha, linewidths=0, edgecolors="none",
            )  # fmt: skip
        xs, ys = df["x"].to_numpy(), df["y"].to_numpy()
        if n == 1 or (np.ptp(xs) == 0 and np.ptp(ys) == 0):
            x0, y0 = float(xs[0]), float(ys[0])
            pad = max(1.0, abs(x0) * 0.1, abs(y0) * 0.1)
            ax.set_xlim(x0 - pad, x0 + pad)
            ax.set_ylim(y0 - pad, y0 + pad)
        else:
            ax.set_xlim(*_padded(xs, 0.12))  # room for labels centred near the edge
            ax.set_ylim(*_padded(ys, 0.05))
        _draw_labels(fig, ax, topics, max_labels)

    with warnings.catch_warnings():
        # labels in scripts or symbols the installed fonts lack are drawn as boxes in the PNG (the HTML
        # map uses the browser's fonts); one warning per missing glyph would flood the step's log
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.canvas.draw()
    return _write_atomic(path, _encode_rgb(np.asarray(fig.canvas.buffer_rgba())))


def _draw_labels(fig, ax, topics: list[dict], max_labels: int) -> None:
    """Label the ``max_labels`` biggest topics at their median point, biggest first and larger; a label
    that would overlap one already placed is left out."""
    from matplotlib import patheffects

    halo = [patheffects.withStroke(linewidth=3, foreground="white")]
    labelled = [t for t in topics if t["id"] >= 0][: max(0, max_labels)]
    biggest = labelled[0]["count"] if labelled else 1
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for t in labelled:
        fontsize = 7.5 + 3.5 * math.sqrt(t["count"] / biggest)
        text = ax.text(
            t["cx"], t["cy"], "\n".join(_wrap(t["label"])), ha="center", va="center",
            fontsize=fontsize, color="#1a1a1a", fontweight="bold",
            path_effects=halo, clip_on=True, zorder=5,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            box = text.get_window_extent(renderer).expanded(1.04, 1.1)
        if any(box.overlaps(other) for other in placed):
            text.remove()
        else:
            placed.append(box)


def _padded(values: np.ndarray, frac: float = 0.03) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = (hi - lo) * frac or max(1.0, abs(lo) * 0.1)
    return lo - pad, hi + pad


def _encode_rgb(rgba: np.ndarray) -> bytes:
    """The drawn canvas as an RGB PNG (the canvas is always opaque: its alpha channel would only add
    bytes), encoded once, at zlib's default level."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[:, :, :3])).save(out, format="PNG")
    return out.getvalue()


def png_markdown(path: str | os.PathLike, alt: str = "map preview") -> str:
    """The PNG at ``path`` as an inline markdown image (``![alt](data:image/png;base64,...)``)."""
    encoded = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    safe_alt = " ".join(alt.split())
    for ch in ("\\", "[", "]"):
        safe_alt = safe_alt.replace(ch, "\\" + ch)
    return f"![{safe_alt}](data:image/png;base64,{encoded})"


