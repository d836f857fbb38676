"""Pictures of a data map: a small PNG preview and a standalone, interactive HTML map.

Both take the frame of placed points (``x``, ``y``, ``topic_id``, ``topic_label`` and, for the HTML
map, ``id``, ``text``, ``partition``, any extra metadata columns and optional topic levels
``topic_{L}_id`` / ``topic_{L}_label``) and colour points by topic with the same qualitative
palette; points without a topic (``topic_id == -1``) are light grey and drawn underneath the rest.

- :func:`render_preview_png` draws a static scatter with matplotlib (imported lazily, Agg canvas,
  no pyplot global state), labelled at the median position of the largest topics.
- :func:`png_markdown` turns that PNG into an inline markdown image for Dagster UI metadata.
- :func:`render_html_map` writes ONE self-contained HTML file (inline CSS/JS/data, no network
  requests) with a canvas scatter that pans, zooms, labels topics, shows a tooltip on hover, and
  has a legend (the topic tree, or the current colour-by's values) that highlights what is
  clicked, a colour-by choice (topic, broad topic, partition, each extra column) and a search box.

HTML map details:

- Topic levels: level 0 is the broadest, the finest is ``topic_id``. Labels follow the zoom
  (``zoom`` = 1 when the whole map fits): level ``L`` is labelled from zoom ``2**L`` on, so the
  broad labels (larger type) show up to 2x, the next level from 2x, the next from 4x, and so on;
  labels that would overlap a placed label or the floating panels are skipped. With levels, the
  sub-topics of a broad topic take tones of its colour (so the HTML colours of fine topics then
  differ from the PNG's, which keeps one palette colour per topic).
- Colour by: categorical values get the palette for their 19 most frequent values and grey
  "other"; numeric columns with more than 19 distinct values get a sequential ramp by quantile.
- Search: case-insensitive; every word must occur in the record's id, its title-like extra columns
  (named like title/name/headline/heading/subject), its text snippet or one of its topic labels.
  Matches are highlighted on the map and the first 50 listed; a result click (or Enter) centres
  and zooms on the record and shows its tooltip. ``#q=words`` in the URL runs a search on load.
- 100k points: the data is columnar JSON (coordinates rounded to 1e-4 of the map's extent,
  repeated strings dictionary-coded), texts are cut to 400 characters up to 20,000 points and to
  fewer above (120 from 66,667 points; about 19 MB for 100k points), points are drawn from typed
  arrays in batched canvas paths, hover uses a uniform grid index and search haystacks are built
  once, on the first search, with the input debounced.
- ``window.embedmap`` is a frozen, read-only hook for tests and automation (``level()``,
  ``labelsShown()``, ``zoom()``, ``colorBy()``, ``legend()``, ``results()``, ``matchCount()``,
  ``screenOf(id)``, ``timings()``); it only reads what the page already shows.

Record texts, ids, metadata (names and values), partition names and topic labels are untrusted.
In the HTML file they only travel inside a JSON ``<script type="application/json">`` block with
``<``, ``>``, ``&``, U+2028 and U+2029 escaped as ``\\uXXXX``, and the page's JS puts them into
the document only through ``textContent`` or canvas ``fillText`` (never ``innerHTML``). The title
is ``html.escape``-d where it appears.

Both writers are atomic (temporary file in the target folder, then ``os.replace``) and create the
target's parent folders. Rows whose ``x`` or ``y`` is null or not finite are left out.
"""

from __future__ import annotations

import base64
import colorsys
import html
import io
import json
import math
import os
import pathlib
import re
import textwrap
import warnings
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


def _topic_table(
    df: pl.DataFrame, id_col: str = "topic_id", label_col: str = "topic_label"
) -> list[dict[str, Any]]:
    """One entry per topic, biggest first: id, label, count, colour, median x/y.

    Colours go by the rank of the topic id among all non-negative ids (stable across runs and
    shared by PNG and HTML); topic -1 is grey and labelled "no topic" when it has no label.
    """
    if df.height == 0:
        return []
    agg = (
        df.group_by(id_col)
        .agg(
            count=pl.len(),
            label=pl.col(label_col).filter(pl.col(label_col) != "").first(),
            cx=pl.col("x").median(),
            cy=pl.col("y").median(),
        )
        .sort(["count", id_col], descending=[True, False])
    )
    ids = sorted(t for t in agg[id_col].to_list() if t >= 0)
    color_of = {t: _PALETTE[i % len(_PALETTE)] for i, t in enumerate(ids)}
    topics = []
    for row in agg.iter_rows(named=True):
        tid = int(row[id_col])
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
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Glyph .* missing from font")
                box = text.get_window_extent(renderer).expanded(1.04, 1.1)
            if any(box.overlaps(other) for other in placed):
                text.remove()
            else:
                placed.append(box)

    buf = io.BytesIO()
    with warnings.catch_warnings():
        # labels in scripts or symbols the installed fonts lack are drawn as boxes in the PNG (the HTML
        # map uses the browser's fonts); one warning per missing glyph would flood the step's log
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
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

_LEVEL_RE = re.compile(r"^topic_(\d+)_id$")
#: extra columns searched besides id, text and topic labels: those named like a title
_TITLEISH_RE = re.compile(r"title|name|headline|heading|subject", re.IGNORECASE)
_OTHER_COLOR = "#b0b0b0"
_OTHER_LABEL = "other"
_EMPTY_LABEL = "(empty)"
#: categorical colour-by: the most frequent values get palette colours, the rest is "other"
_MAX_CATEGORIES = 19
#: characters of record text in one page, spread over its points (400 each up to 20,000 points)
_SNIPPET_BUDGET = 8_000_000
_MIN_SNIPPET = 120
_JS_SAFE_INT = 2**53
#: numeric colour-by: the ramp is cut into this many quantile bins
_RAMP_BINS = 32


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


def _snippet_limit(n: int) -> int:
    """Characters of text kept per record: 400 up to 20,000 points, then fewer (120 at 66,000+)."""
    if n <= 0:
        return _TEXT_LIMIT
    return int(max(_MIN_SNIPPET, min(_TEXT_LIMIT, _SNIPPET_BUDGET // n)))


def _topic_levels(points: pl.DataFrame) -> list[tuple[str, str | None]]:
    """``(id column, label column or None)`` of the ``topic_{L}_id`` levels, broad (L=0) first."""
    found = sorted(
        (int(m.group(1)), c) for c in points.columns if (m := _LEVEL_RE.match(c)) is not None
    )
    return [
        (c, f"topic_{lv}_label" if f"topic_{lv}_label" in points.columns else None)
        for lv, c in found
    ]


def _with_level_columns(
    points: pl.DataFrame, levels: list[tuple[str, str | None]]
) -> pl.DataFrame:
    """Add ``_lv{i}_id`` (Int64, null -> -1) and ``_lv{i}_label`` (str) for each level.

    Without ``topic_id`` the finest level stands in for ``topic_id``/``topic_label``.
    """
    exprs: list[pl.Expr] = []
    for i, (id_col, label_col) in enumerate(levels):
        exprs.append(pl.col(id_col).cast(pl.Int64).fill_null(-1).alias(f"_lv{i}_id"))
        label = _stringify(points, label_col) if label_col else pl.lit("", dtype=pl.String)
        exprs.append(label.alias(f"_lv{i}_label"))
    if levels and "topic_id" not in points.columns:
        id_col, label_col = levels[-1]
        exprs.append(pl.col(id_col).alias("topic_id"))
        if label_col and "topic_label" not in points.columns:
            exprs.append(pl.col(label_col).alias("topic_label"))
    return points.with_columns(exprs) if exprs else points


def _parents(df: pl.DataFrame, child_col: str, parent_col: str) -> dict[int, int]:
    """For each topic id of ``child_col``: the ``parent_col`` topic id with most of its points."""
    pairs = df.group_by(child_col, parent_col).len().sort(
        ["len", child_col, parent_col], descending=[True, False, False]
    )
    out: dict[int, int] = {}
    for child, parent, _ in pairs.iter_rows():
        out.setdefault(int(child), int(parent))
    return out


def _shade(color: str, rank: int, siblings: int) -> str:
    """A tone of ``color`` for the ``rank``-th of ``siblings`` sub-topics: the biggest keeps the
    colour, the others alternate lighter/darker with a slight hue turn, so a broad topic's
    sub-topics read as one family yet stay apart."""
    if siblings <= 1 or rank == 0:
        return color
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, light, sat = colorsys.rgb_to_hls(r, g, b)
    step = (rank + 1) // 2 * (1 if rank % 2 else -1)
    # narrow: the map draws dense areas translucent, so very light tones would wash out
    spread = min(0.1, 0.24 / max(1, siblings // 2))
    light = min(0.7, max(0.2, light + step * spread))
    hue = (hue + step * 0.03) % 1.0
    rgb = colorsys.hls_to_rgb(hue, light, sat)
    return "#" + "".join(f"{round(c * 255):02x}" for c in rgb)


def _level_tables(df: pl.DataFrame, id_cols: list[str], label_cols: list[str]) -> list[list[dict]]:
    """Topic tables of every level, broad first, each topic with ``parent`` (index one level up,
    -1 on level 0). With several levels, sub-topics take tones of their parent's colour."""
    tables = [_topic_table(df, i, lab) for i, lab in zip(id_cols, label_cols)]
    for level, table in enumerate(tables):
        if level == 0:
            for t in table:
                t["parent"] = -1
            continue
        up = tables[level - 1]
        up_index = {t["id"]: g for g, t in enumerate(up)}
        parent_of = _parents(df, id_cols[level], id_cols[level - 1])
        rank_in: dict[int, int] = {}
        siblings: dict[int, int] = {}
        for t in table:
            t["parent"] = up_index[parent_of[t["id"]]]
            siblings[t["parent"]] = siblings.get(t["parent"], 0) + (t["id"] >= 0)
        for t in table:  # tables are biggest first, so rank 0 is the biggest sub-topic
            parent = up[t["parent"]]
            if t["id"] < 0 or parent["id"] < 0:
                continue
            rank = rank_in.get(t["parent"], 0)
            rank_in[t["parent"]] = rank + 1
            t["color"] = _shade(parent["color"], rank, siblings[t["parent"]])
    return tables


def _topic_payload(table: list[dict], decimals: int, broad: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": t["id"],
            "label": t["label"],
            "lines": _wrap(t["label"], 20 if broad else _WRAP),
            "count": t["count"],
            "color": t["color"],
            "cx": round(t["cx"], decimals),
            "cy": round(t["cy"], decimals),
            "parent": t["parent"],
        }
        for t in table
    ]


def _categories(values: pl.Series) -> tuple[list[str], list[int], pl.Series]:
    """Distinct strings, most frequent first (ties by value), their counts, each row's index."""
    counts = values.rename("v").value_counts(name="n").sort(["n", "v"], descending=[True, False])
    distinct = counts["v"].to_list()
    codes = values.replace_strict(distinct, list(range(len(distinct))), return_dtype=pl.Int32)
    return distinct, counts["n"].to_list(), codes


def _color_groups(values: list[str], counts: list[int]) -> tuple[list[dict[str, Any]], list[int]]:
    """Legend groups of a categorical colour-by and each value's group index.

    The 19 most frequent non-empty values get palette colours, biggest first; the rest fall into
    "other" and empty values into "(empty)", both grey, listed last and drawn beneath the rest.
    """
    order = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))
    coloured = [i for i in order if values[i] != ""][:_MAX_CATEGORIES]
    groups: list[dict[str, Any]] = [
        {"label": values[i], "color": _PALETTE[rank], "count": counts[i]}
        for rank, i in enumerate(coloured)
    ]
    group_of = [-1] * len(values)
    for g, i in enumerate(coloured):
        group_of[i] = g
    rest = [i for i in order if group_of[i] < 0 and values[i] != ""]
    empty = [i for i in order if values[i] == ""]
    for label, color, members in ((_OTHER_LABEL, _OTHER_COLOR, rest),
                                  (_EMPTY_LABEL, _NOISE_COLOR, empty)):  # fmt: skip
        if members:
            for i in members:
                group_of[i] = len(groups)
            groups.append({"label": label, "color": color, "back": 1,
                           "count": sum(counts[i] for i in members)})  # fmt: skip
    return groups, group_of


def _ramp_values(series: pl.Series) -> list[Any] | None:
    """The column as JSON numbers for a colour ramp, or None when it is better shown as categories
    (not numeric, few distinct values, no finite value, or integers JS cannot hold exactly)."""
    dtype = series.dtype
    if not dtype.is_numeric():
        return None
    finite = series.cast(pl.Float64).drop_nulls()
    finite = finite.filter(finite.is_finite())
    if finite.len() == 0 or finite.n_unique() <= _MAX_CATEGORIES:
        return None
    if dtype.is_integer():
        if float(finite.abs().max()) > _JS_SAFE_INT:  # type: ignore[arg-type]
            return None
        return series.to_list()
    as_float = series.cast(pl.Float64)
    return as_float.set(~as_float.is_finite().fill_null(False), None).to_list()


def _plain_number(value: float) -> float | int:
    """``value`` with 6 significant digits, as an int when it is whole (for the ramp legend)."""
    rounded = float(f"{value:.6g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < _JS_SAFE_INT else rounded


def _meta_payload(
    df: pl.DataFrame, column: str, name: str, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One extra column for the page (tooltip and search text) and its colour-by option.

    Numbers with many distinct values travel as numbers and get a colour ramp; other columns are
    strings, dictionary-coded when values repeat, else sent as is with each row's colour group.
    """
    numbers = _ramp_values(df[column])
    if numbers is not None:
        finite = np.asarray([v for v in numbers if v is not None], dtype=np.float64)
        meta = {"name": name, "kind": "num", "v": numbers}
        option = {
            "name": name, "kind": "num", "src": index,
            "min": _plain_number(finite.min()), "max": _plain_number(finite.max()),
            "median": _plain_number(np.median(finite)),
            # colours go by rank, so a skewed column still uses the whole ramp
            "q": [
                float(f"{v:.6g}")
                for v in np.quantile(finite, np.linspace(0, 1, _RAMP_BINS + 1))
            ],
        }  # fmt: skip
        return meta, option
    strings = df.select(_stringify(df, column).alias("v"))["v"]
    distinct, counts, codes = _categories(strings)
    groups, group_of = _color_groups(distinct, counts)
    option: dict[str, Any] = {"name": name, "kind": "cat", "groups": groups}
    if len(distinct) <= max(64, df.height // 4):
        meta = {"name": name, "kind": "cat", "values": distinct, "codes": codes.to_list()}
        option.update(src=index, map=group_of)
    else:
        meta = {"name": name, "kind": "str", "s": strings.to_list()}
        lookup = np.asarray(group_of, dtype=np.int32)
        option["g"] = lookup[codes.to_numpy()].tolist()
    return meta, option


def render_html_map(
    points: pl.DataFrame,
    path: str | os.PathLike,
    *,
    title: str = "Data map",
    extra_columns: Sequence[str] = (),
    text_limit: int | None = None,
) -> pathlib.Path:
    """Write a self-contained interactive HTML map of ``points`` and return its path.

    ``points`` needs ``id``, ``x`` and ``y``; ``topic_id``, ``topic_label``, ``text`` and
    ``partition`` are used when present, and every name in ``extra_columns`` must be a column
    (shown in the tooltip, offered as a colour-by, searched when named like a title).
    Hierarchical topics come as ``topic_{L}_id`` / ``topic_{L}_label`` columns, level 0 the
    broadest and the last one equal to ``topic_id`` (the finest); without them the map has one
    level. ``text`` is cut to ``text_limit`` characters (default: 400, fewer above 20,000 points
    so that 100k points stay under 20 MB). The page loads nothing from the network; the data is
    embedded as script-safe columnar JSON in
    ``<script type="application/json" id="embedmap-data">``.
    """
    points = _as_frame(points)
    extra_columns = list(extra_columns)
    _require(points, ["id", "x", "y", *extra_columns], "render_html_map")
    levels = _topic_levels(points)
    df = _base_points(_with_level_columns(points, levels))
    n = df.height

    # the finest level is topic_id; a last level column repeating it is not a level of its own
    coarse = list(range(len(levels)))
    if coarse and (df[f"_lv{coarse[-1]}_id"] == df["topic_id"]).all():
        coarse.pop()
    id_cols = [f"_lv{i}_id" for i in coarse] + ["topic_id"]
    label_cols = [f"_lv{i}_label" for i in coarse] + ["topic_label"]
    tables = _level_tables(df, id_cols, label_cols)
    level_t = [_topic_indices(df, col, table) for col, table in zip(id_cols, tables)]

    xs = df["x"].to_numpy()
    ys = df["y"].to_numpy()
    decimals = _coord_decimals(np.concatenate([xs, ys])) if n else 4
    limit = max(2, text_limit if text_limit is not None else _snippet_limit(n))

    text_expr = _stringify(df, "text") if "text" in df.columns else pl.lit("", dtype=pl.String)
    text_expr = (
        pl.when(text_expr.str.len_chars() > limit)
        .then(text_expr.str.slice(0, limit - 1) + "…")
        .otherwise(text_expr)
    )
    part_expr = (
        _stringify(df, "partition") if "partition" in df.columns else pl.lit("", dtype=pl.String)
    )
    cols = df.select(
        _stringify(df, "id").alias("id"), text_expr.alias("text"), part_expr.alias("partition")
    )
    part_names, part_counts, part_codes = _categories(cols["partition"])
    by_name = sorted(range(len(part_names)), key=lambda i: part_names[i])
    new_code = np.empty(len(part_names), dtype=np.int32)
    new_code[by_name] = np.arange(len(part_names), dtype=np.int32)
    part_names = [part_names[i] for i in by_name]
    part_counts = [part_counts[i] for i in by_name]

    colorby: list[dict[str, Any]] = [{"name": "topic", "kind": "topic", "level": len(tables) - 1}]
    if len(tables) > 1:
        colorby.append({"name": "broad topic", "kind": "topic", "level": 0})
    if "partition" in df.columns:
        groups, group_of = _color_groups(part_names, part_counts)
        colorby.append({"name": "partition", "kind": "cat", "src": "p", "map": group_of,
                        "groups": groups})  # fmt: skip
    meta = []
    for i, column in enumerate(extra_columns):
        column_meta, option = _meta_payload(df, column, str(column), i)
        meta.append(column_meta)
        colorby.append(option)

    payload = {
        "x": _rounded(xs, decimals),
        "y": _rounded(ys, decimals),
        "t": level_t[-1],
        "topics": _topic_payload(tables[-1], decimals, broad=len(tables) == 1),
        "levels": [
            {
                "name": "broad topic" if i == 0 else f"topic level {i}",
                "topics": _topic_payload(tables[i], decimals, broad=i == 0),
                "t": level_t[i],
            }
            for i in range(len(tables) - 1)
        ],
        "id": cols["id"].to_list(),
        "text": cols["text"].to_list(),
        "parts": part_names,
        "p": new_code[part_codes.to_numpy()].tolist() if n else [],
        "meta": meta,
        "search_meta": [i for i, c in enumerate(extra_columns) if _TITLEISH_RE.search(str(c))],
        "colorby": colorby,
    }
    n_topics = sum(1 for t in tables[-1] if t["id"] >= 0)
    parts = {
        "TITLE": html.escape(title),
        "COUNT": (
            f"{n:,} point{'s' if n != 1 else ''} · "
            f"{n_topics:,} topic{'s' if n_topics != 1 else ''}"
        ),
        "CSS": _CSS,
        "JS": _JS,
        "DATA": _script_safe_json(payload),
    }
    # one pass over the template only, so nothing inserted can be taken for a placeholder
    page = re.sub(r"%%([A-Z]+)%%", lambda m: parts[m.group(1)], _HTML_TEMPLATE)
    return _write_atomic(path, page.encode("utf-8", errors="replace"))


def _topic_indices(df: pl.DataFrame, id_col: str, table: list[dict]) -> list[int]:
    """Each point's index into ``table`` (the topic table of ``id_col``)."""
    if df.height == 0:
        return []
    ids = [t["id"] for t in table]
    return (
        df[id_col].replace_strict(ids, list(range(len(ids))), return_dtype=pl.Int32).to_list()
    )


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
<div id="hint">drag to pan · wheel to zoom · double-click to reset</div>
<input id="search" type="search" placeholder="search records (id, title, text, topic)"
 autocomplete="off" spellcheck="false">
<div id="search-info"></div>
<div id="results"></div></header>
<aside id="legend"><div id="legend-head"><span id="legend-title">Colour by</span>
<select id="colorby" title="colour the points by"></select>
<button id="clear" type="button" title="clear the highlight">clear</button></div>
<input id="filter" type="search" placeholder="filter legend" autocomplete="off">
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
#head{position:fixed;left:10px;top:8px;width:300px;max-width:calc(100vw - 40px);padding:6px 10px;
  background:rgba(255,255,255,.9);border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.15)}
#head h1{font-size:16px;margin:0 0 2px 0;overflow-wrap:anywhere}
#count{color:#555}#hint{color:#888;font-size:11px}
#search{box-sizing:border-box;width:100%;margin-top:6px;font:inherit;padding:3px 6px}
#search-info{color:#666;font-size:11px;margin-top:2px}
#search-info:empty{display:none}
#results{max-height:42vh;overflow-y:auto;margin-top:2px}
.res{padding:3px 4px;border-radius:4px;cursor:pointer;overflow:hidden;white-space:nowrap;
  text-overflow:ellipsis}
.res:hover{background:#eef2f7}
.rid{font-weight:600;margin-right:6px}.rtx{color:#666}
#legend{position:fixed;right:10px;top:8px;width:260px;max-height:calc(100vh - 24px);display:flex;
  flex-direction:column;background:rgba(255,255,255,.93);border-radius:6px;
  box-shadow:0 1px 4px rgba(0,0,0,.2)}
#legend-head{display:flex;gap:6px;align-items:center;padding:6px 8px 2px}
#legend-title{font-weight:700;white-space:nowrap}
#colorby{flex:1 1 auto;min-width:0;font:inherit;font-size:12px}
#clear{font:inherit;font-size:11px;padding:1px 6px;cursor:pointer}
#filter{margin:4px 8px;font:inherit;padding:2px 4px}
#legend-list{overflow-y:auto;padding:0 4px 6px}
.item{display:flex;align-items:center;gap:5px;padding:2px 4px;border-radius:4px;cursor:pointer;
  user-select:none}
.item:hover{background:#eef2f7}.item.on{background:#dde7f5;font-weight:600}
#legend.sel .item:not(.on){opacity:.45}
.car{flex:0 0 10px;color:#777;font-size:10px;text-align:center}
.sw{flex:0 0 11px;height:11px;border-radius:50%}
.lab{flex:1 1 auto;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.cnt{flex:0 0 auto;color:#777;font-variant-numeric:tabular-nums}
.ramp{height:12px;margin:6px 8px 2px;border-radius:3px}
.rampl{display:flex;justify-content:space-between;margin:0 8px 2px;color:#555;font-size:11px}
.rampn{margin:0 8px 4px;color:#888;font-size:11px}
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
var N = D.x.length;
var X = new Float64Array(D.x), Y = new Float64Array(D.y);
// topic levels, broad first; the last one is the finest (D.topics / D.t)
var LV = D.levels.map(function (l) {
  return { name: l.name, topics: l.topics, t: new Int32Array(l.t) };
});
LV.push({ name: "topic", topics: D.topics, t: new Int32Array(D.t) });
var NL = LV.length, FINE = NL - 1;
var canvas = document.getElementById("map"), ctx = canvas.getContext("2d");
var tip = document.getElementById("tip");
var W = 0, H = 0, dpr = 1;
var k = 1, k0 = 1, ox = 0, oy = 0;          // screen = (ox + x*k, oy - y*k)
var hover = -1, queued = false, i, j, L;
var stats = { draws: 0, firstDraw: -1, lastDraw: 0, lastSearch: 0, level: 0, labels: [] };

// ---- bounds
var minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
for (i = 0; i < N; i++) {
  if (X[i] < minX) minX = X[i]; if (X[i] > maxX) maxX = X[i];
  if (Y[i] < minY) minY = Y[i]; if (Y[i] > maxY) maxY = Y[i];
}
if (!N) { minX = minY = 0; maxX = maxY = 1; }
var spanX = maxX - minX, spanY = maxY - minY;
if (spanX <= 0) { spanX = spanY > 0 ? spanY : 1; minX -= spanX / 2; maxX = minX + spanX; }
if (spanY <= 0) { spanY = spanX; minY -= spanY / 2; maxY = minY + spanY; }

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
// labels of level L are drawn from zoom 2^L on (level 0 below 2x, level 1 from 2x, ...)
function labelLevel() {
  var z = zoom();
  return z < 2 ? 0 : Math.min(FINE, Math.floor(Math.log(z) / Math.LN2 + 1e-9));
}
function plotW() { return W > 800 ? W - 280 : W; }   // keep the points clear of the legend panel

function fit() {
  // on wide screens keep the points below the header panel too (it holds the search box)
  var pad = 40, w = plotW(), head = document.getElementById("head");
  var top = W > 800 ? Math.max(pad, head.offsetTop + head.offsetHeight + 12) : pad;
  k0 = k = Math.max(1e-12, Math.min((w - 2 * pad) / spanX, (H - top - pad) / spanY));
  ox = w / 2 - (minX + spanX / 2) * k;
  oy = (top + H - pad) / 2 + (minY + spanY / 2) * k;
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

// ---- colour-by: each mode gives every point a group (GI) with a colour and a legend entry
var RAMP = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
            "#6ece58", "#b5de2b", "#fde725"];
var mode = null, GI = null, GROUPS = [], gStart = new Int32Array(1), order = new Int32Array(N);
var drawSeq = [];
function rampColor(f) {
  var pos = Math.max(0, Math.min(1, f)) * (RAMP.length - 1), a = Math.floor(pos);
  var b = Math.min(RAMP.length - 1, a + 1), t = pos - a, out = [];
  for (var q = 1; q < 7; q += 2) {
    var ca = parseInt(RAMP[a].substr(q, 2), 16), cb = parseInt(RAMP[b].substr(q, 2), 16);
    out.push(Math.round(ca + (cb - ca) * t));
  }
  return "rgb(" + out.join(",") + ")";
}
function metaText(m, p) {
  var c = D.meta[m];
  if (c.kind === "cat") return c.values[c.codes[p]];
  if (c.kind === "str") return c.s[p];
  return c.v[p] === null ? "" : String(c.v[p]);
}
function modeGroups(md) {
  var gi = new Int32Array(N), groups, q;
  if (md.kind === "topic") {
    gi = LV[md.level].t;
    groups = LV[md.level].topics.map(function (tp) {
      return { label: tp.label, color: tp.color, count: tp.count, back: tp.id < 0 };
    });
  } else if (md.kind === "cat") {
    groups = md.groups.map(function (g) {
      return { label: g.label, color: g.color, count: g.count, back: !!g.back };
    });
    if (md.g) gi.set(md.g);
    else {
      var codes = md.src === "p" ? D.p : D.meta[md.src].codes;
      for (q = 0; q < N; q++) gi[q] = md.map[codes[q]];
    }
  } else {
    // quantile bins: bin b holds values in [q[b], q[b+1]); the last bin includes the maximum
    var v = D.meta[md.src].v, edges = md.q, nb = edges.length - 1;
    groups = [];
    for (q = 0; q < nb; q++) groups.push({ label: "", color: rampColor(q / Math.max(1, nb - 1)),
                                           count: 0, back: false });
    groups.push({ label: "no value", color: "#cfcfcf", count: 0, back: true });
    for (q = 0; q < N; q++) {
      var b = nb;
      if (v[q] !== null) {
        var lo = 0, hi = nb - 1;          // last edge index e with edges[e] <= v, within bins
        while (lo < hi) {
          var mid = (lo + hi + 1) >> 1;
          if (edges[mid] <= v[q]) lo = mid; else hi = mid - 1;
        }
        b = lo;
      }
      gi[q] = b; groups[b].count++;
    }
  }
  return { gi: gi, groups: groups };
}
function setMode(index) {
  mode = D.colorby[index];
  var mg = modeGroups(mode), M = mg.groups.length;
  GI = mg.gi; GROUPS = mg.groups;
  // points grouped by colour (counting sort): grey groups first, then biggest to smallest
  gStart = new Int32Array(M + 1);
  var fill = new Int32Array(M);
  for (i = 0; i < N; i++) gStart[GI[i] + 1]++;
  for (j = 0; j < M; j++) gStart[j + 1] += gStart[j];
  for (i = 0; i < N; i++) { var g = GI[i]; order[gStart[g] + fill[g]++] = i; }
  var front = [];
  for (j = 0; j < M; j++) front.push(j);
  if (mode.kind !== "num")
    front.sort(function (a, b) { return GROUPS[b].count - GROUPS[a].count; });
  drawSeq = front.filter(function (g) { return GROUPS[g].back; })
    .concat(front.filter(function (g) { return !GROUPS[g].back; }));
  sel.clear(); recompute(); buildLegend(); hover = -1; hideTip(); request();
}

// ---- highlight: legend selection and search matches; hl marks the points drawn in colour
var sel = new Set();           // "L:g" for a topic of level L, "c:g" for a colour group
var matches = null, matchCount = 0, hl = null;
var hits = LV.map(function (l) { return new Int32Array(l.topics.length); });
function recompute() {
  if (!sel.size && !matches) { hl = null; return; }
  var byL = LV.map(function () { return null; }), byC = null;
  sel.forEach(function (key) {
    var a = key.split(":"), g = +a[1];
    if (a[0] === "c") { byC = byC || new Uint8Array(GROUPS.length); byC[g] = 1; }
    else { var l = +a[0]; byL[l] = byL[l] || new Uint8Array(LV[l].topics.length); byL[l][g] = 1; }
  });
  hl = new Uint8Array(N);
  hits.forEach(function (h) { h.fill(0); });
  for (i = 0; i < N; i++) {
    if (matches && !matches[i]) continue;
    if (sel.size) {
      var ok = byC !== null && byC[GI[i]] === 1;
      for (L = 0; L < NL && !ok; L++) if (byL[L] && byL[L][LV[L].t[i]]) ok = true;
      if (!ok) continue;
    }
    hl[i] = 1;
    for (L = 0; L < NL; L++) hits[L][LV[L].t[i]]++;
  }
}

// ---- drawing
function drawGroup(g, r, only) {
  var d = 2 * r, s = gStart[g], e = gStart[g + 1], n = 0, round = r >= 2.5;
  ctx.fillStyle = GROUPS[g].color;
  ctx.beginPath();
  for (var q = s; q < e; q++) {
    var p = order[q];
    if (only && !only[p]) continue;
    var sx = ox + X[p] * k, sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    if (round) { ctx.moveTo(sx + r, sy); ctx.arc(sx, sy, r, 0, 6.283185307179586); }
    else ctx.rect(sx - r, sy - r, d, d);
    if (++n === 4000) { ctx.fill(); ctx.beginPath(); n = 0; }
  }
  ctx.fill();
}
function drawDimmed(r) {
  var d = 2 * r, n = 0;
  ctx.fillStyle = "#9a9a9a";
  ctx.beginPath();
  for (var p = 0; p < N; p++) {
    if (hl[p]) continue;
    var sx = ox + X[p] * k, sy = oy - Y[p] * k;
    if (sx < -d || sy < -d || sx > W + d || sy > H + d) continue;
    ctx.rect(sx - r, sy - r, d, d);
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
// the header and legend panels float over the map: labels are not placed beneath them
function panelBoxes() {
  var out = [];
  ["head", "legend"].forEach(function (id) {
    var el = document.getElementById(id);
    if (!el || !el.getBoundingClientRect) return;
    var r = el.getBoundingClientRect();
    if (r.width && r.height) out.push([r.left, r.top, r.right, r.bottom]);
  });
  return out;
}
function drawLabels() {
  var z = zoom(), lv = labelLevel(), TOP = LV[lv].topics, M = TOP.length;
  var broad = NL > 1 && lv === 0;
  var maxL = Math.max(broad ? 12 : 6, Math.round(16 * Math.pow(z / Math.pow(2, lv), 1.5)));
  var placed = panelBoxes(), shown = [], biggest = 1, g, l;
  for (g = 0; g < M; g++) if (TOP[g].id >= 0) { biggest = TOP[g].count; break; }
  ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.lineJoin = "round";
  ctx.globalAlpha = 1;
  for (g = 0; g < M && shown.length < maxL; g++) {
    var tp = TOP[g];
    if (tp.id < 0 || (hl && !hits[lv][g])) continue;
    var sx = ox + tp.cx * k, sy = oy - tp.cy * k;
    if (sx < -50 || sy < -20 || sx > W + 50 || sy > H + 20) continue;
    var fs = Math.round(broad ? 14 + 8 * Math.sqrt(tp.count / biggest)
                              : 11 + 5 * Math.sqrt(tp.count / biggest)), lh = fs + 2;
    ctx.font = (broad ? "700 " : "600 ") + fs +
      "px system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif";
    var w = 0;
    for (l = 0; l < tp.lines.length; l++) w = Math.max(w, ctx.measureText(tp.lines[l]).width);
    var h = lh * tp.lines.length;
    var b = [sx - w / 2 - 3, sy - h / 2 - 2, sx + w / 2 + 3, sy + h / 2 + 2];
    if (boxesHit(b, placed)) continue;
    placed.push(b); shown.push(tp.label);
    for (l = 0; l < tp.lines.length; l++) {
      var ly = sy - h / 2 + lh * (l + 0.5);
      ctx.strokeStyle = "rgba(255,255,255,0.92)"; ctx.lineWidth = broad ? 5 : 4;
      ctx.strokeText(tp.lines[l], sx, ly);
      ctx.fillStyle = broad ? "#111" : "#1a1a1a"; ctx.fillText(tp.lines[l], sx, ly);
    }
  }
  stats.level = lv; stats.labels = shown;
}

function draw() {
  var t0 = performance.now();
  queued = false;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.globalAlpha = 1; ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  if (!N) {
    ctx.fillStyle = "#888"; ctx.font = "20px system-ui,sans-serif";
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillText("no points", W / 2, H / 2);
  } else {
    var r = radius(), a = Math.min(0.95, baseA * Math.max(1, Math.pow(zoom(), 0.25))), q;
    if (hl) {
      ctx.globalAlpha = 0.08; drawDimmed(r);
      ctx.globalAlpha = Math.max(a, 0.7);
      for (q = 0; q < drawSeq.length; q++) drawGroup(drawSeq[q], r, hl);
    } else {
      ctx.globalAlpha = a;
      for (q = 0; q < drawSeq.length; q++) drawGroup(drawSeq[q], r, null);
    }
    drawLabels();
    if (hover >= 0) {
      ctx.globalAlpha = 1; ctx.lineWidth = 2; ctx.strokeStyle = "#111";
      ctx.beginPath(); ctx.arc(ox + X[hover] * k, oy - Y[hover] * k, r + 3, 0, 6.283185307179586);
      ctx.stroke();
    }
  }
  var t1 = performance.now();
  stats.draws++; stats.lastDraw = t1 - t0;
  if (stats.firstDraw < 0) stats.firstDraw = t1;
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
      if (hl && !hl[p]) continue;
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
  for (L = 0; L < NL; L++) row(LV[L].name, LV[L].topics[LV[L].t[p]].label);
  var part = D.parts[D.p[p]];
  if (part) row("partition", part);
  for (var e = 0; e < D.meta.length; e++) row(D.meta[e].name, metaText(e, p));
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
function zoomTo(nk, cx, cy) {
  nk = Math.max(k0 * 0.2, Math.min(k0 * 20000, nk));
  var f = nk / k;
  ox = cx - (cx - ox) * f;   // keep the point under (cx, cy) fixed
  oy = cy - (cy - oy) * f;
  k = nk;
}
canvas.addEventListener("wheel", function (ev) {
  ev.preventDefault();
  var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaMode === 2 ? ev.deltaY * H : ev.deltaY;
  zoomTo(k * Math.exp(-dy * 0.0015), ev.clientX, ev.clientY);
  hover = -1; hideTip(); request();
}, { passive: false });
canvas.addEventListener("dblclick", function () { fit(); request(); });
window.addEventListener("resize", function () { resize(false); });

// ---- legend: the topic tree (colour by topic), a flat list, or a ramp for numbers
var legend = document.getElementById("legend"), list = document.getElementById("legend-list");
var filterEl = document.getElementById("filter"), modeEl = document.getElementById("colorby");
var nodes = [];
function syncLegend() {
  legend.classList.toggle("sel", sel.size > 0);
  for (var q = 0; q < nodes.length; q++) nodes[q].el.classList.toggle("on", sel.has(nodes[q].key));
}
function toggleSel(key) {
  if (sel.has(key)) sel.delete(key); else sel.add(key);
  recompute(); hover = -1; hideTip(); syncLegend(); request();
}
function addItem(label, color, count, key, depth, parent) {
  var it = document.createElement("div"); it.className = "item";
  it.style.paddingLeft = (4 + 14 * depth) + "px";
  var car = document.createElement("span"); car.className = "car";
  var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = color;
  var lab = document.createElement("span"); lab.className = "lab"; lab.textContent = label;
  lab.title = label;
  var cnt = document.createElement("span"); cnt.className = "cnt";
  cnt.textContent = count.toLocaleString();
  it.appendChild(car); it.appendChild(sw); it.appendChild(lab); it.appendChild(cnt);
  var node = { el: it, car: car, key: key, label: label, parent: parent, kids: [], open: true };
  it.addEventListener("click", function (ev) {
    if (ev && ev.target === car && node.kids.length) { node.open = !node.open; refreshTree(); }
    else toggleSel(key);
  });
  list.appendChild(it); nodes.push(node);
  if (parent) parent.kids.push(node);
  return node;
}
function refreshTree() {
  var q = filterEl.value.toLowerCase(), n, a;
  for (n = 0; n < nodes.length; n++) nodes[n].vis = !q;
  if (q) {
    for (n = 0; n < nodes.length; n++)
      if (nodes[n].label.toLowerCase().indexOf(q) >= 0)
        for (a = nodes[n]; a && !a.vis; a = a.parent) a.vis = true;
  } else {
    for (n = 0; n < nodes.length; n++)
      for (a = nodes[n].parent; a; a = a.parent) if (!a.open) nodes[n].vis = false;
  }
  for (n = 0; n < nodes.length; n++) {
    var nd = nodes[n];
    nd.el.style.display = nd.vis ? "" : "none";
    nd.car.textContent = nd.kids.length ? (nd.open || q ? "\u25be" : "\u25b8") : "";
  }
}
var kids = LV.map(function (l) { return l.topics.map(function () { return []; }); });
for (L = 1; L < NL; L++)
  LV[L].topics.forEach(function (tp, g) { if (tp.parent >= 0) kids[L - 1][tp.parent].push(g); });
var nTopics = LV.reduce(function (s, l) { return s + l.topics.length; }, 0);
function addTopic(l, g, depth, parent) {
  var tp = LV[l].topics[g];
  var node = addItem(tp.label, tp.color, tp.count, l + ":" + g, depth, parent);
  node.open = nTopics <= 60;   // big trees start folded to their broad topics
  if (l < FINE) kids[l][g].forEach(function (c) {
    if (tp.id >= 0 || LV[l + 1].topics[c].id >= 0) addTopic(l + 1, c, depth + 1, node);
  });
}
function addRamp(md) {
  var bar = document.createElement("div"); bar.className = "ramp";
  bar.style.background = "linear-gradient(to right," + RAMP.join(",") + ")";
  var ends = document.createElement("div"); ends.className = "rampl";
  [md.min, "median " + md.median, md.max].forEach(function (v) {
    var s = document.createElement("span"); s.textContent = String(v); ends.appendChild(s);
  });
  var note = document.createElement("div"); note.className = "rampn";
  note.textContent = "colour by rank (quantiles)";
  list.appendChild(bar); list.appendChild(ends); list.appendChild(note);
}
function buildLegend() {
  list.textContent = ""; nodes = [];
  if (mode.kind === "topic" && mode.level === FINE && NL > 1) {
    for (var g = 0; g < LV[0].topics.length; g++) addTopic(0, g, 0, null);
  } else if (mode.kind === "topic") {
    LV[mode.level].topics.forEach(function (tp, q) {
      addItem(tp.label, tp.color, tp.count, mode.level + ":" + q, 0, null);
    });
  } else {
    if (mode.kind === "num") addRamp(mode);
    GROUPS.forEach(function (gr, q) {
      if (gr.label && gr.count) addItem(gr.label, gr.color, gr.count, "c:" + q, 0, null);
    });
  }
  refreshTree(); syncLegend();
}
D.colorby.forEach(function (md, q) {
  var o = document.createElement("option"); o.value = String(q); o.textContent = md.name;
  modeEl.appendChild(o);
});
modeEl.addEventListener("change", function () { setMode(+modeEl.value || 0); });
document.getElementById("clear").addEventListener("click", function () {
  sel.clear(); recompute(); syncLegend(); request();
});
filterEl.addEventListener("input", refreshTree);

// ---- search: every word (lower case) must occur in the record's id, title-like fields, text
// or one of its topic labels; haystacks are built once, on the first search
var searchEl = document.getElementById("search"), resultsEl = document.getElementById("results");
var infoEl = document.getElementById("search-info");
var MAX_RESULTS = 50, HAY = null, results = [], timer = 0, lastQuery = null;
function buildHay() {
  HAY = new Array(N);
  for (var p = 0; p < N; p++) {
    var s = D.id[p];
    for (var m = 0; m < D.search_meta.length; m++) s += "\n" + metaText(D.search_meta[m], p);
    HAY[p] = (s + "\n" + D.text[p]).toLowerCase();
  }
}
function labelHits(w) {
  return LV.map(function (l) {
    var any = false, a = new Uint8Array(l.topics.length);
    l.topics.forEach(function (tp, g) {
      if (tp.label.toLowerCase().indexOf(w) >= 0) { a[g] = 1; any = true; }
    });
    return any ? a : null;
  });
}
function runSearch(q) {
  var t0 = performance.now();
  q = String(q); lastQuery = q;
  var words = q.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
  results = [];
  if (!words.length) { matches = null; matchCount = 0; }
  else {
    if (!HAY) buildHay();
    var lab = words.map(labelHits), m = new Uint8Array(N), count = 0, nw = words.length;
    for (var p = 0; p < N; p++) {
      var h = HAY[p], ok = true;
      for (var w = 0; w < nw && ok; w++) {
        if (h.indexOf(words[w]) >= 0) continue;
        ok = false;
        for (L = 0; L < NL; L++) if (lab[w][L] && lab[w][L][LV[L].t[p]]) { ok = true; break; }
      }
      if (ok) { m[p] = 1; count++; if (results.length < MAX_RESULTS) results.push(p); }
    }
    matches = m; matchCount = count;
  }
  recompute(); showResults(words.length > 0); hover = -1; hideTip(); request();
  stats.lastSearch = performance.now() - t0;
}
function showResults(active) {
  resultsEl.textContent = "";
  infoEl.textContent = !active ? "" : matchCount === 0 ? "no matching records"
    : matchCount.toLocaleString() + " matching record" + (matchCount === 1 ? "" : "s") +
      (matchCount > results.length ? " · first " + results.length + " listed" : "");
  results.forEach(function (p) {
    var r = document.createElement("div"); r.className = "res";
    var id = document.createElement("span"); id.className = "rid"; id.textContent = D.id[p];
    var first = D.search_meta.length ? metaText(D.search_meta[0], p) : "";
    var tx = document.createElement("span"); tx.className = "rtx";
    tx.textContent = (first || D.text[p]).slice(0, 90);
    r.appendChild(id); r.appendChild(tx);
    r.title = D.id[p];
    r.addEventListener("click", function () { focusRecord(p); });
    resultsEl.appendChild(r);
  });
}
// centre the record, zoomed in far enough for the finest labels, and show its tooltip
function focusRecord(p) {
  var w = plotW();
  zoomTo(k0 * Math.max(zoom(), Math.pow(2, FINE) * 2, 4), w / 2, H / 2);
  ox = w / 2 - X[p] * k; oy = H / 2 + Y[p] * k;
  hover = p; request(); showTip(p, w / 2, H / 2);
}
function searchSoon() {
  clearTimeout(timer);
  timer = setTimeout(function () { runSearch(searchEl.value); }, N > 20000 ? 200 : 80);
}
searchEl.addEventListener("input", searchSoon);
searchEl.addEventListener("keydown", function (ev) {
  if (ev.key === "Enter") {
    clearTimeout(timer);
    if (searchEl.value !== lastQuery) runSearch(searchEl.value);
    if (results.length) focusRecord(results[0]);
  } else if (ev.key === "Escape") {
    clearTimeout(timer); searchEl.value = ""; runSearch("");
  }
});
function fromHash() {
  var h = window.location.hash || "";
  if (h.indexOf("#q=") !== 0) return;
  var q = h.slice(3).replace(/\+/g, " ");
  try { q = decodeURIComponent(q); } catch (e) { /* keep the raw text */ }
  searchEl.value = q; runSearch(q);
}
window.addEventListener("hashchange", fromHash);

// ---- read-only hook for tests and automation; it only reads state the page already has
function indexOfId(id) { return D.id.indexOf(String(id)); }
window.embedmap = Object.freeze({
  level: function () { return stats.level; },
  labelsShown: function () { return stats.labels.slice(); },
  zoom: function () { return zoom(); },
  colorBy: function () { return mode ? mode.name : ""; },
  legend: function () {
    return nodes.filter(function (n) { return n.el.style.display !== "none"; })
      .map(function (n) { return n.label; });
  },
  results: function () { return results.map(function (p) { return D.id[p]; }); },
  matchCount: function () { return matchCount; },
  screenOf: function (id) {
    var p = indexOfId(id);
    return p < 0 ? null : { x: ox + X[p] * k, y: oy - Y[p] * k };
  },
  timings: function () {
    return { draws: stats.draws, firstDraw: stats.firstDraw, lastDraw: stats.lastDraw,
             lastSearch: stats.lastSearch };
  }
});

setMode(0);
resize(true);
fromHash();
})();
"""
