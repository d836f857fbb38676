"""Pictures of a data map: a small PNG preview and a standalone, interactive HTML map.

Both take the frame of placed points (``x``, ``y``, ``topic_id``, ``topic_label`` and, for the HTML
map, ``id``, ``text``, ``partition`` and any extra metadata columns) and colour points by topic
with the same qualitative palette; points without a topic (``topic_id == -1``) are light grey and
drawn underneath the rest.

- :func:`render_preview_png` draws a static scatter with matplotlib (imported lazily, Agg canvas,
  no pyplot global state), labelled at the median position of the largest topics.
- :func:`png_markdown` turns that PNG into an inline markdown image for Dagster UI metadata.
- :func:`render_html_map` writes ONE self-contained HTML file (inline CSS/JS/data, no network
  requests) with a canvas scatter that pans, zooms, labels topics, shows a tooltip on hover and
  highlights topics from a legend. It stays usable with 100k points: points are drawn from typed
  arrays onto a canvas and hover uses a uniform grid index.

Record texts, ids, metadata and topic labels are untrusted. In the HTML file they only travel
inside a JSON ``<script type="application/json">`` block with ``<``, ``>``, ``&``, U+2028 and
U+2029 escaped as ``\\uXXXX``, and the page's JS puts them into the document only through
``textContent`` or canvas ``fillText``. The title is ``html.escape``-d where it appears.

Both writers are atomic (temporary file in the target folder, then ``os.replace``) and create the
target's parent folders. Rows whose ``x`` or ``y`` is null or not finite are left out.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import pathlib
import re
import textwrap
from typing import Any, Sequence

import numpy as np
import polars as pl

from .errors import EmbedMapInputError
from .paths import atomic_path

__all__ = ["render_preview_png", "png_markdown", "render_html_map"]

#: qualitative palette shared by the PNG and the HTML map; topics cycle through it by topic id.
#: (tab10 without its grey, then the darker tab20b tones, so no topic looks like "no topic")
_PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79",
    "#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3",
    "#8ca252", "#bd9e39", "#ad494a", "#a55194", "#6b6ecf",
)  # fmt: skip
_NOISE_COLOR = "#cfcfcf"
_NOISE_LABEL = "no topic"
_TEXT_LIMIT = 400
_WRAP = 25


# --------------------------------------------------------------------------------------------
# shared helpers


def _as_frame(points: Any) -> pl.DataFrame:
    if isinstance(points, pl.LazyFrame):
        points = points.collect()
    if not isinstance(points, pl.DataFrame):
        raise EmbedMapInputError(
            f"points must be a polars DataFrame, got {type(points).__name__}"
        )
    return points


def _require(points: pl.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in points.columns]
    if missing:
        raise EmbedMapInputError(
            f"{what}: points frame lacks column(s) {missing}; it has {points.columns}"
        )


def _base_points(points: pl.DataFrame) -> pl.DataFrame:
    """``x``/``y`` as finite Float64, ``topic_id`` as Int64 (null -> -1), ``topic_label`` as str.

    Missing ``topic_id``/``topic_label`` columns mean "no topics": every point gets -1 / "".
    Other columns are kept unchanged.
    """
    exprs = [pl.col("x").cast(pl.Float64), pl.col("y").cast(pl.Float64)]
    if "topic_id" in points.columns:
        exprs.append(pl.col("topic_id").cast(pl.Int64).fill_null(-1))
    else:
        exprs.append(pl.lit(-1, dtype=pl.Int64).alias("topic_id"))
    if "topic_label" in points.columns:
        exprs.append(_stringify(points, "topic_label").alias("topic_label"))
    else:
        exprs.append(pl.lit("", dtype=pl.String).alias("topic_label"))
    df = points.with_columns(exprs)
    return df.filter(
        pl.col("x").is_not_null()
        & pl.col("y").is_not_null()
        & pl.col("x").is_finite()
        & pl.col("y").is_finite()
    )


def _stringify(points: pl.DataFrame, column: str) -> pl.Expr:
    """An expression giving ``column`` as strings, null -> ``""`` (nested types via ``str()``)."""
    dtype = points.schema[column]
    if dtype == pl.String:
        expr = pl.col(column)
    elif dtype.is_nested() or dtype == pl.Object or dtype == pl.Binary:
        expr = pl.col(column).map_elements(
            lambda v: "" if v is None else str(v), return_dtype=pl.String
        )
    else:
        expr = pl.col(column).cast(pl.String)
    return expr.fill_null("")


def _topic_table(df: pl.DataFrame) -> list[dict[str, Any]]:
    """One entry per topic, biggest first: id, label, count, colour, median x/y.

    Colours go by the rank of the topic id among all non-negative ids (stable across runs and
    shared by PNG and HTML); topic -1 is grey and labelled "no topic" when it has no label.
    """
    if df.height == 0:
        return []
    agg = (
        df.group_by("topic_id")
        .agg(
            count=pl.len(),
            label=pl.col("topic_label").filter(pl.col("topic_label") != "").first(),
            cx=pl.col("x").median(),
            cy=pl.col("y").median(),
        )
        .sort(["count", "topic_id"], descending=[True, False])
    )
    ids = sorted(t for t in agg["topic_id"].to_list() if t >= 0)
    color_of = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(ids)}
    topics = []
    for row in agg.iter_rows(named=True):
        tid = int(row["topic_id"])
        label = row["label"] or (_NOISE_LABEL if tid < 0 else f"topic {tid}")
        topics.append(
            {
                "id": tid,
                "label": label,
                "count": int(row["count"]),
                "color": _NOISE_COLOR if tid < 0 else color_of[tid],
                "cx": float(row["cx"]),
                "cy": float(row["cy"]),
            }
        )
    return topics


def _write_atomic(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    """Write ``data`` via a temporary file beside ``path`` and ``os.replace``."""
    target = pathlib.Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def _wrap(label: str, width: int = _WRAP, max_lines: int = 3) -> list[str]:
    lines = textwrap.wrap(" ".join(label.split()), width, max_lines=max_lines, placeholder=" …")
    return lines or [label[:width]]


# --------------------------------------------------------------------------------------------
# PNG preview


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

    from matplotlib import patheffects
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
        # biggest topics first; a label that would overlap one already placed is left out
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
            box = text.get_window_extent(renderer).expanded(1.04, 1.1)
            if any(box.overlaps(other) for other in placed):
                text.remove()
            else:
                placed.append(box)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", pil_kwargs={"optimize": True})
    data = _shrink_png(buf.getvalue())
    return _write_atomic(path, data)


def _padded(values: np.ndarray, frac: float = 0.03) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = (hi - lo) * frac or max(1.0, abs(lo) * 0.1)
    return lo - pad, hi + pad


def _shrink_png(data: bytes) -> bytes:
    """Drop the (always opaque) alpha channel to make the PNG smaller; unchanged if Pillow fails."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            rgb = im.convert("RGB")
        out = io.BytesIO()
        rgb.save(out, format="PNG", optimize=True)
        smaller = out.getvalue()
        return smaller if len(smaller) < len(data) else data
    except Exception:  # pragma: no cover - Pillow ships with matplotlib
        return data


def png_markdown(path: str | os.PathLike, alt: str = "map preview") -> str:
    """The PNG at ``path`` as an inline markdown image (``![alt](data:image/png;base64,...)``)."""
    encoded = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    safe_alt = " ".join(alt.split())
    for ch in ("\\", "[", "]"):
        safe_alt = safe_alt.replace(ch, "\\" + ch)
    return f"![{safe_alt}](data:image/png;base64,{encoded})"


# --------------------------------------------------------------------------------------------
# HTML map


def _coord_decimals(values: np.ndarray) -> int:
    """Decimals keeping 4 significant digits of the map's extent (resolution <= 1e-4 of span)."""
    if values.size == 0:
        return 4
    span = float(np.ptp(values))
    if span <= 0 or not math.isfinite(span):
        return 4
    return int(np.clip(4 - math.floor(math.log10(span)), 0, 12))


def _rounded(values: np.ndarray, decimals: int) -> list[float]:
    out = np.round(values.astype(np.float64), decimals)
    if decimals == 0:
        return [float(v) for v in out]
    return out.tolist()


_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _script_safe_json(obj: Any) -> str:
    """JSON that cannot end or confuse the ``<script>`` element it is embedded in."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for raw, escaped in _JSON_ESCAPES.items():
        text = text.replace(raw, escaped)
    return text


def render_html_map(
    points: pl.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "Data map",
    extra_columns: Sequence[str] = (),
) -> pathlib.Path:
    """Write a self-contained interactive HTML map of ``points`` and return its path.

    ``points`` needs ``id``, ``x`` and ``y``; ``topic_id``, ``topic_label``, ``text`` (cut to 400
    characters) and ``partition`` are used when present, and every name in ``extra_columns`` must
    be a column (shown in the hover tooltip, stringified, null -> empty). The page loads nothing
    from the network; the data is embedded as script-safe columnar JSON in
    ``<script type="application/json" id="embedmap-data">``.
    """
    points = _as_frame(points)
    extra_columns = list(extra_columns)
    _require(points, ["id", "x", "y", *extra_columns], "render_html_map")
    df = _base_points(points)
    topics = _topic_table(df)
    index_of = {t["id"]: i for i, t in enumerate(topics)}

    xs = df["x"].to_numpy()
    ys = df["y"].to_numpy()
    decimals = _coord_decimals(np.concatenate([xs, ys])) if df.height else 4

    text_expr = _stringify(df, "text") if "text" in df.columns else pl.lit("", dtype=pl.String)
    text_expr = (
        pl.when(text_expr.str.len_chars() > _TEXT_LIMIT)
        .then(text_expr.str.slice(0, _TEXT_LIMIT - 1) + "…")
        .otherwise(text_expr)
    )
    part_expr = (
        _stringify(df, "partition") if "partition" in df.columns else pl.lit("", dtype=pl.String)
    )
    cols = df.select(
        _stringify(df, "id").alias("id"),
        text_expr.alias("text"),
        part_expr.alias("partition"),
        *[_stringify(df, c).alias(f"_extra_{i}") for i, c in enumerate(extra_columns)],
    )
    partitions = cols["partition"].to_list()
    part_names = sorted(set(partitions))
    part_index = {p: i for i, p in enumerate(part_names)}

    payload = {
        "x": _rounded(xs, decimals),
        "y": _rounded(ys, decimals),
        "t": [index_of[t] for t in df["topic_id"].to_list()],
        "id": cols["id"].to_list(),
        "text": cols["text"].to_list(),
        "parts": part_names,
        "p": [part_index[p] for p in partitions],
        "extra_names": [str(c) for c in extra_columns],
        "extra": [cols[f"_extra_{i}"].to_list() for i in range(len(extra_columns))],
        "topics": [
            {
                "id": t["id"],
                "label": t["label"],
                "lines": _wrap(t["label"]),
                "count": t["count"],
                "color": t["color"],
                "cx": round(t["cx"], decimals),
                "cy": round(t["cy"], decimals),
            }
            for t in topics
        ],
    }
    n_topics = sum(1 for t in topics if t["id"] >= 0)
    parts = {
        "TITLE": html.escape(title),
        "COUNT": (
            f"{df.height:,} point{'s' if df.height != 1 else ''} · "
            f"{n_topics:,} topic{'s' if n_topics != 1 else ''}"
        ),
        "CSS": _CSS,
        "JS": _JS,
        "DATA": _script_safe_json(payload),
    }
    # one pass over the template only, so nothing inserted can be taken for a placeholder
    page = re.sub(r"%%([A-Z]+)%%", lambda m: parts[m.group(1)], _HTML_TEMPLATE)
    return _write_atomic(path, page.encode("utf-8", errors="replace"))


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>%%TITLE%%</title>
<style>%%CSS%%</style>
</head>
<body>
<canvas id="map"></canvas>
<header id="head"><h1>%%TITLE%%</h1><div id="count">%%COUNT%%</div>
<div id="hint">drag to pan · wheel to zoom · double-click to reset</div></header>
<aside id="legend"><div id="legend-head"><span id="legend-title">Topics</span>
<button id="clear" type="button" title="show all topics">clear</button></div>
<input id="filter" type="search" placeholder="filter topics" autocomplete="off">
<div id="legend-list"></div></aside>
<div id="tip" role="tooltip"></div>
<script type="application/json" id="embedmap-data">%%DATA%%</script>
<script>%%JS%%</script>
</body>
</html>
"""

_CSS = """
html,body{margin:0;padding:0;height:100%;overflow:hidden;background:#fff;
  font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222}
#map{position:fixed;left:0;top:0;width:100vw;height:100vh;display:block;cursor:grab;
  touch-action:none}
#map.dragging{cursor:grabbing}
#head{position:fixed;left:10px;top:8px;padding:6px 10px;background:rgba(255,255,255,.88);
  border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.15);max-width:50vw;pointer-events:none}
#head h1{font-size:16px;margin:0 0 2px 0;overflow-wrap:anywhere}
#count{color:#555}#hint{color:#888;font-size:11px}
#legend{position:fixed;right:10px;top:8px;width:260px;max-height:calc(100vh - 24px);display:flex;
  flex-direction:column;background:rgba(255,255,255,.93);border-radius:6px;
  box-shadow:0 1px 4px rgba(0,0,0,.2)}
#legend-head{display:flex;justify-content:space-between;align-items:center;padding:6px 8px 2px}
#legend-title{font-weight:700}
#clear{font:inherit;font-size:11px;padding:1px 6px;cursor:pointer}
#filter{margin:4px 8px;font:inherit;padding:2px 4px}
#legend-list{overflow-y:auto;padding:0 4px 6px}
.item{display:flex;align-items:center;gap:6px;padding:2px 4px;border-radius:4px;cursor:pointer;
  user-select:none}
.item:hover{background:#eef2f7}.item.on{background:#dde7f5;font-weight:600}
#legend.sel .item:not(.on){opacity:.45}
.sw{flex:0 0 11px;height:11px;border-radius:50%}
.lab{flex:1 1 auto;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cnt{flex:0 0 auto;color:#777;font-variant-numeric:tabular-nums}
#tip{position:fixed;display:none;pointer-events:none;max-width:380px;padding:7px 9px;
  background:rgba(255,255,255,.97);border:1px solid #ccc;border-radius:6px;
  box-shadow:0 2px 8px rgba(0,0,0,.2);font-size:12px;z-index:10;overflow-wrap:anywhere}
#tip .row{color:#444}#tip .k{color:#888;margin-right:4px}
#tip .txt{margin-top:5px;color:#222;white-space:pre-wrap}
"""

_JS = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("embedmap-data").textContent);
var N = D.x.length, TOP = D.topics, M = TOP.length;
var X = new Float64Array(D.x), Y = new Float64Array(D.y), T = new Int32Array(D.t);
var canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
var tip = document.getElementById("tip");
var W = 0, H = 0, dpr = 1;
var k = 1, k0 = 1, ox = 0, oy = 0;          // screen = (ox + x*k, oy - y*k)
var sel = new Set(), hover = -1, queued = false;

// ---- bounds
var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity, i, j;
for (i = 0; i < N; i++) {
  if (X[i] < minX) minX = X[i]; if (X[i] > maxX) maxX = X[i];
  if (Y[i] < minY) minY = Y[i]; if (Y[i] > maxY) maxY = Y[i];
}
if (!N) { minX = minY = 0; maxX = maxY = 1; }
var spanX = maxX - minX, spanY = maxY - minY;
if (spanX <= 0) { spanX = spanY > 0 ? spanY : 1; minX -= spanX / 2; maxX = minX + spanX; }
if (spanY <= 0) { spanY = spanX; minY -= spanY / 2; maxY = minY + spanY; }

// ---- points grouped by topic (counting sort), drawn noise first, then biggest to smallest
var gStart = new Int32Array(M + 1), order = new Int32Array(N), fill = new Int32Array(M);
for (i = 0; i < N; i++) gStart[T[i] + 1]++;
for (j = 0; j < M; j++) gStart[j + 1] += gStart[j];
for (i = 0; i < N; i++) { var g = T[i]; order[gStart[g] + fill[g]++] = i; }
var drawSeq = [];
for (j = 0; j < M; j++) if (TOP[j].id < 0) drawSeq.push(j);
for (j = 0; j < M; j++) if (TOP[j].id >= 0) drawSeq.push(j);

// ---- uniform grid index for hover
var G = Math.max(1, Math.min(1024, Math.ceil(Math.sqrt(N / 3))));
var cellW = spanX / G, cellH = spanY / G;
var cStart = new Int32Array(G * G + 1), cItems = new Int32Array(N), cell = new Int32Array(N);
function cx_(x) { var c = Math.floor((x - minX) / cellW); return c < 0 ? 0 : c >= G ? G - 1 : c; }
function cy_(y) { var c = Math.floor((y - minY) / cellH); return c < 0 ? 0 : c >= G ? G - 1 : c; }
for (i = 0; i < N; i++) { cell[i] = cx_(X[i]) + cy_(Y[i]) * G; cStart[cell[i] + 1]++; }
for (j = 0; j < G * G; j++) cStart[j + 1] += cStart[j];
var cFill = new Int32Array(G * G);
for (i = 0; i < N; i++) { var c = cell[i]; cItems[cStart[c] + cFill[c]++] = i; }
cell = null; cFill = null;

var baseR = N > 50000 ? 1.1 : N > 10000 ? 1.6 : N > 2000 ? 2.2 : 3.2;
var baseA = Math.max(0.25, Math.min(0.85, 0.85 * Math.pow(2000 / Math.max(N, 1), 0.3)));
function zoom() { return k / k0; }
function radius() { return baseR * Math.min(4, Math.max(0.7, Math.sqrt(zoom()))); }

function fit() {
  var pad = 40, legendW = W > 800 ? 280 : 0;  // keep the points clear of the legend panel
  var w = W - legendW;
  k0 = k = Math.max(1e-12, Math.min((w - 2 * pad) / spanX, (H - 2 * pad) / spanY));
  ox = w / 2 - (minX + spanX / 2) * k;
  oy = H / 2 + (minY + spanY / 2) * k;
}
function resize(first) {
  dpr = window.devicePixelRatio || 1;
  var oldW = W, oldH = H;
  W = window.innerWidth; H = window.innerHeight;
  canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
  if (first) fit(); else { ox += (W - oldW) / 2; oy += (H - oldH) / 2; }
  request();
}
function request() { if (!queued) { queued = true; requestAnimationFrame(draw); } }

function drawGroup(g, r, dim) {
  var d = 2 * r, s = gStart[g], e = gStart[g + 1], n = 0, round = r >= 2.5;
  ctx.fillStyle = dim ? "#9a9a9a" : TOP[g].color;
  ctx.beginPath();
  for (var q = s; q < e; q++) {
    var p = order[q], sx = ox + X[p] * k, sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    if (round) { ctx.moveTo(sx + r, sy); ctx.arc(sx, sy, r, 0, 6.283185307179586); }
    else ctx.rect(sx - r, sy - r, d, d);
    if (++n === 4000) { ctx.fill(); ctx.beginPath(); n = 0; }
  }
  ctx.fill();
}

function boxesHit(b, placed) {
  for (var q = 0; q < placed.length; q++) {
    var o = placed[q];
    if (b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1]) return true;
  }
  return false;
}
function drawLabels() {
  var z = zoom(), maxL = Math.max(6, Math.round(16 * Math.pow(z, 1.5))), placed = [], shown = 0;
  var biggest = 1;
  for (j = 0; j < M; j++) if (TOP[j].id >= 0) { biggest = TOP[j].count; break; }
  ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round";
  ctx.globalAlpha = 1;
  for (var g = 0; g < M && shown < maxL; g++) {
    var tp = TOP[g];
    if (tp.id < 0 || (sel.size && !sel.has(g))) continue;
    var sx = ox + tp.cx * k, sy = oy - tp.cy * k;
    if (sx < -50 || sy < -20 || sx > W + 50 || sy > H + 20) continue;
    var fs = Math.round(11 + 5 * Math.sqrt(tp.count / biggest)), lh = fs + 2;
    ctx.font = "600 " + fs + "px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif";
    var w = 0;
    for (var l = 0; l < tp.lines.length; l++) w = Math.max(w, ctx.measureText(tp.lines[l]).width);
    var h = lh * tp.lines.length;
    var b = [sx - w / 2 - 3, sy - h / 2 - 2, sx + w / 2 + 3, sy + h / 2 + 2];
    if (boxesHit(b, placed)) continue;
    placed.push(b); shown++;
    for (l = 0; l < tp.lines.length; l++) {
      var ly = sy - h / 2 + lh * (l + 0.5);
      ctx.strokeStyle = "rgba(255,255,255,0.92)"; ctx.lineWidth = 4;
      ctx.strokeText(tp.lines[l], sx, ly);
      ctx.fillStyle = "#1a1a1a"; ctx.fillText(tp.lines[l], sx, ly);
    }
  }
}

function draw() {
  queued = false;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.globalAlpha = 1; ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  if (!N) {
    ctx.fillStyle = "#888"; ctx.font = "20px system-ui,sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillText("no points", W / 2, H / 2);
    return;
  }
  var r = radius(), a = Math.min(0.95, baseA * Math.max(1, Math.pow(zoom(), 0.25)));
  var q, g;
  if (sel.size) {
    ctx.globalAlpha = 0.08;
    for (q = 0; q < drawSeq.length; q++) { g = drawSeq[q]; if (!sel.has(g)) drawGroup(g, r, true); }
    ctx.globalAlpha = Math.max(a, 0.7);
    for (q = 0; q < drawSeq.length; q++) { g = drawSeq[q]; if (sel.has(g)) drawGroup(g, r, false); }
  } else {
    ctx.globalAlpha = a;
    for (q = 0; q < drawSeq.length; q++) drawGroup(drawSeq[q], r, false);
  }
  drawLabels();
  if (hover >= 0) {
    ctx.globalAlpha = 1; ctx.lineWidth = 2; ctx.strokeStyle = "#111";
    ctx.beginPath(); ctx.arc(ox + X[hover] * k, oy - Y[hover] * k, r + 3, 0, 6.283185307179586);
    ctx.stroke();
  }
}

// ---- hover
function pick(mx, my) {
  if (!N) return -1;
  var px = (mx - ox) / k, py = (oy - my) / k, rad = (radius() + 4) / k;
  var c0 = cx_(px - rad), c1 = cx_(px + rad), r0 = cy_(py - rad), r1 = cy_(py + rad);
  if ((c1 - c0 + 1) * (r1 - r0 + 1) > 4096) return -1;   // zoomed far out: skip the lookup
  var best = -1, bestD = rad * rad;
  for (var cy = r0; cy <= r1; cy++) for (var cx = c0; cx <= c1; cx++) {
    var c = cx + cy * G;
    for (var q = cStart[c]; q < cStart[c + 1]; q++) {
      var p = cItems[q];
      if (sel.size && !sel.has(T[p])) continue;
      var dx = X[p] - px, dy = Y[p] - py, d2 = dx * dx + dy * dy;
      if (d2 <= bestD) { bestD = d2; best = p; }
    }
  }
  return best;
}
function row(key, value) {
  var d = document.createElement("div"); d.className = "row";
  var s = document.createElement("span"); s.className = "k"; s.textContent = key + ":";
  d.appendChild(s); d.appendChild(document.createTextNode(value));
  tip.appendChild(d);
}
function showTip(p, mx, my) {
  tip.textContent = "";
  row("id", D.id[p]);
  row("topic", TOP[T[p]].label);
  var part = D.parts[D.p[p]];
  if (part) row("partition", part);
  for (var e = 0; e < D.extra_names.length; e++) row(D.extra_names[e], D.extra[e][p]);
  if (D.text[p]) {
    var t = document.createElement("div"); t.className = "txt"; t.textContent = D.text[p];
    tip.appendChild(t);
  }
  tip.style.display = "block";
  var tw = tip.offsetWidth, th = tip.offsetHeight;
  var left = mx + 14, top = my + 14;
  if (left + tw > W - 4) left = Math.max(4, mx - tw - 14);
  if (top + th > H - 4) top = Math.max(4, my - th - 14);
  tip.style.left = left + "px"; tip.style.top = top + "px";
}
function hideTip() { tip.style.display = "none"; }

// ---- pan / zoom
var drag = null, lastMove = null, moveQueued = false;
canvas.addEventListener("pointerdown", function (ev) {
  drag = { x: ev.clientX, y: ev.clientY, ox: ox, oy: oy };
  canvas.setPointerCapture(ev.pointerId); canvas.classList.add("dragging");
  hover = -1; hideTip();
});
canvas.addEventListener("pointerup", function (ev) {
  drag = null; canvas.classList.remove("dragging");
  try { canvas.releasePointerCapture(ev.pointerId); } catch (e) {}
});
canvas.addEventListener("pointercancel", function () {
  drag = null; canvas.classList.remove("dragging");
});
canvas.addEventListener("pointerleave", function () {
  if (!drag) { hover = -1; hideTip(); request(); }
});
canvas.addEventListener("pointermove", function (ev) {
  if (drag) {
    ox = drag.ox + ev.clientX - drag.x; oy = drag.oy + ev.clientY - drag.y; request(); return;
  }
  lastMove = ev;
  if (!moveQueued) {
    moveQueued = true;
    requestAnimationFrame(function () {
      moveQueued = false;
      var p = pick(lastMove.clientX, lastMove.clientY);
      if (p !== hover) { hover = p; request(); }
      if (p >= 0) showTip(p, lastMove.clientX, lastMove.clientY); else hideTip();
    });
  }
});
canvas.addEventListener("wheel", function (ev) {
  ev.preventDefault();
  var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaMode === 2 ? ev.deltaY * H : ev.deltaY;
  var f = Math.exp(-dy * 0.0015);
  var nk = Math.max(k0 * 0.2, Math.min(k0 * 20000, k * f));
  f = nk / k;
  ox = ev.clientX - (ev.clientX - ox) * f;   // keep the point under the cursor fixed
  oy = ev.clientY - (ev.clientY - oy) * f;
  k = nk; hover = -1; hideTip(); request();
}, { passive: false });
canvas.addEventListener("dblclick", function () { fit(); request(); });
window.addEventListener("resize", function () { resize(false); });

// ---- legend
var legend = document.getElementById("legend"), list = document.getElementById("legend-list");
var items = [];
function syncLegend() {
  legend.classList.toggle("sel", sel.size > 0);
  for (var q = 0; q < items.length; q++) items[q].classList.toggle("on", sel.has(q));
}
TOP.forEach(function (tp, g) {
  var it = document.createElement("div"); it.className = "item";
  var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = tp.color;
  var lab = document.createElement("span"); lab.className = "lab"; lab.textContent = tp.label;
  lab.title = tp.label;
  var cnt = document.createElement("span"); cnt.className = "cnt";
  cnt.textContent = tp.count.toLocaleString();
  it.appendChild(sw); it.appendChild(lab); it.appendChild(cnt);
  it.addEventListener("click", function () {
    if (sel.has(g)) sel.delete(g); else sel.add(g);
    hover = -1; hideTip(); syncLegend(); request();
  });
  list.appendChild(it); items.push(it);
});
document.getElementById("clear").addEventListener("click", function () {
  sel.clear(); syncLegend(); request();
});
document.getElementById("filter").addEventListener("input", function (ev) {
  var q = ev.target.value.toLowerCase();
  for (var g = 0; g < items.length; g++)
    items[g].style.display = !q || TOP[g].label.toLowerCase().indexOf(q) >= 0 ? "" : "none";
});

resize(true);
})();
"""
