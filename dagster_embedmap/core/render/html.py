"""The interactive HTML map: its data, as script-safe columnar JSON, put into the page of ``static/``.

- Topic levels: level 0 is the broadest, the finest is ``topic_id``. The broad topics are labelled
  at every zoom as large, light region titles; with them one finer level (``zoom`` = 1 when the whole
  map fits): level 1 below 2x, level ``L`` from ``2**(L-1)``, its biggest topics first, each on its
  centre or moved beside it with a leader line; a label that finds no place inside the window,
  clear of the floating panels and of every label placed before it, is not drawn. With levels, the
  sub-topics of a broad topic take tones of its colour (so the HTML colours of fine topics then
  differ from the PNG's, which keeps one palette colour per topic).
- Colour by: categorical values get the palette for their 19 most frequent values and grey
  "other"; numeric columns with more than 19 distinct values get a sequential ramp by quantile.
- Search by meaning (when the page carries a static table and point vectors, ``semantic.js`` and
  :mod:`.semantic`): the query is tokenised as the map's model does, embedded by summing its tokens'
  rows and the 50 nearest records are ringed and listed, nearest first; a "meaning / words" switch
  beside the box picks the other way, and a query of only unknown words falls back to words.
- Search by words: case-insensitive; every word must occur in the record's id, its title-like extra columns
  (named like title/name/headline/heading/subject), its text snippet or one of its topic labels.
  Matches are ringed on the map (up to 5,000 in view), the rest dimmed, and the first 50 listed
  with their topic path; the arrow keys walk the list, and a result click (or Enter) centres and
  zooms on the record and shows its tooltip. ``#q=words`` in the URL runs a search on load.
  Shift-drag draws a lasso: the records inside it are highlighted and listed the same way, and
  "copy ids" copies all their ids. A click on a topic's label (or its legend row) focuses it: the
  rest dimmed, the view framed on its points.
- 100k points: the data is columnar JSON (coordinates rounded to 1e-4 of the map's extent,
  repeated strings dictionary-coded), texts are cut to 400 characters up to 20,000 points and to
  fewer above (120 from 66,667 points; about 19 MB for 100k points), points are drawn from typed
  arrays in batched canvas paths, hover uses a uniform grid index and search haystacks are built
  once, on the first search, with the input debounced.
- ``window.embedmap`` is a frozen, read-only hook for tests and automation (``level()``,
  ``labelsShown()``, ``labelBoxes()``, ``panels()``, ``zoom()``, ``colorBy()``, ``legend()``,
  ``results()``, ``matchCount()``, ``searchMode()``, ``screenOf(id)``, ``timings()``); it only reads what the page
  already shows.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import math
import os
import pathlib
import re
from importlib import resources
from typing import Any, Sequence

import numpy as np
import polars as pl

from .shared import (
    _NOISE_COLOR, _PALETTE, _TEXT_LIMIT, _WRAP, _as_frame, _base_points, _level_columns, _level_tables, _require,
    _stringify, _topic_levels, _with_level_columns, _wrap, _write_atomic,
)

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
#: the most points one frame of the page draws (``render_html_map(point_budget=)``)
POINT_BUDGET = 250_000
THUMBNAIL_BUDGET = 12_000_000
"""Bytes of thumbnail JPEG a page carries at most (16 MB of page as base64): about 6,000 64 px photos;
past it, an evenly spread share of the image records keeps its thumbnail (:func:`cap_thumbnails`)."""


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
    semantic: dict[str, Any] | None = None,
    point_budget: int = POINT_BUDGET,
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
    ``<script type="application/json" id="embedmap-data">``. ``semantic`` (from
    :func:`.semantic.semantic_payload`, its points in the order of ``points``' rows) lets the search
    box rank records by meaning; it goes into ``<script type="application/json" id="embedmap-semantic">``.
    ``point_budget`` is the most points one frame draws: with more in view (the overview of a map of
    millions) a frame draws an evenly spread, fixed share of them (the same points every frame, more as
    you zoom in, all once fewer than the budget are in view) over the density layer, which counts every
    point; search, hover, lasso and the legend always use every point. 0 draws every point in view.
    """
    if point_budget < 0:
        raise ValueError(f"render_html_map: point_budget must be 0 (no limit) or more, not {point_budget}")
    points = _as_frame(points)
    extra_columns = list(extra_columns)
    _require(points, ["id", "x", "y", *extra_columns], "render_html_map")
    levels = _topic_levels(points)
    df = _base_points(_with_level_columns(points, levels))
    payload, n_topics = _payload(df, len(levels), extra_columns, text_limit)
    payload["budget"] = int(point_budget)
    n = df.height
    parts = {
        "TITLE": html.escape(title),
        "COUNT": (
            f"{n:,} point{'s' if n != 1 else ''} · "
            f"{n_topics:,} topic{'s' if n_topics != 1 else ''}"
        ),
        "CSS": static_file("map.css"),
        "JS": static_file("semantic.js") + static_file("map.js"),
        "DATA": _script_safe_json(payload),
        "SEMANTIC": _script_safe_json(_checked_semantic(semantic, n)),
    }
    # one pass over the template only, so nothing inserted can be taken for a placeholder
    page = re.sub(r"%%([A-Z]+)%%", lambda m: parts[m.group(1)], static_file("map.html"))
    return _write_atomic(path, page.encode("utf-8", errors="replace"))


def _checked_semantic(semantic: dict[str, Any] | None, n: int) -> dict[str, Any] | None:
    if semantic is None:
        return None
    width = int(semantic["dims"])
    have = len(semantic["points"]) * 3 // 4 - semantic["points"][-2:].count("=")
    if have != n * width:
        raise ValueError(f"render_html_map: the semantic payload holds {have // max(width, 1):,} points, "
                         f"the map {n:,}; build it from the same records, in the same order")
    return semantic


@functools.cache
def static_file(name: str) -> str:
    """The text of one of the page's static files (``map.html``, ``map.css``, ``map.js``, ``semantic.js``), shipped as
    package data in ``static/`` beside this module; read once per process."""
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")


def _payload(df: pl.DataFrame, n_levels: int, extra_columns: list[str], text_limit: int | None,
             ) -> tuple[dict[str, Any], int]:
    """The page's data (columnar, see the module docstring) and the number of fine topics; ``df`` has the
    ``_lv{i}_id`` / ``_lv{i}_label`` columns of ``n_levels`` topic levels."""
    n = df.height
    id_cols, label_cols = _level_columns(df, n_levels)
    tables = _level_tables(df, id_cols, label_cols)
    level_t = [_topic_indices(df, col, table) for col, table in zip(id_cols, tables)]

    xs = df["x"].to_numpy()
    ys = df["y"].to_numpy()
    decimals = _coord_decimals(np.concatenate([xs, ys])) if n else 4
    limit = max(2, text_limit if text_limit is not None else _snippet_limit(n))
    cols, part_names, part_codes, colorby = _record_columns(df, limit)
    if len(tables) > 1:
        colorby.insert(0, {"name": "broad topic", "kind": "topic", "level": 0})
    colorby.insert(0, {"name": "topic", "kind": "topic", "level": len(tables) - 1})
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
        "p": part_codes,
        "meta": meta,
        "search_meta": [i for i, c in enumerate(extra_columns) if _TITLEISH_RE.search(str(c))],
        "colorby": colorby,
    }
    if "thumbnail" in df.columns and df["thumbnail"].null_count() < n:  # image records: JPEG thumbnails, base64
        payload["thumbs"] = [base64.b64encode(b).decode("ascii") if b else "" for b in df["thumbnail"].to_list()]
    return payload, sum(1 for t in tables[-1] if t["id"] >= 0)


def cap_thumbnails(points: pl.DataFrame, budget: int = THUMBNAIL_BUDGET) -> tuple[pl.DataFrame, int, int]:
    """``points`` with thumbnails (their ``thumbnail`` column) for as many records as ``budget`` bytes of
    JPEG allow, the others' set to null, chosen evenly over the map (by a hash of each record's id, so the
    same records keep theirs from one drawing to the next); with how many are kept and their bytes."""
    if "thumbnail" not in points.columns:
        return points, 0, 0
    sizes = points["thumbnail"].bin.size().fill_null(0)
    total = int(sizes.sum())
    if total <= budget:
        return points, int((sizes > 0).sum()), total
    order = points.select(pl.col("id").cast(pl.String).hash(seed=7).alias("h"), sizes.alias("s")).with_row_index()
    order = order.filter(pl.col("s") > 0).sort("h")
    kept = order.filter(pl.col("s").cum_sum() <= budget)
    mask = pl.Series(np.isin(np.arange(points.height), kept["index"].to_numpy()))
    capped = points.with_columns(pl.when(mask).then(pl.col("thumbnail")).otherwise(None).alias("thumbnail"))
    return capped, kept.height, int(kept["s"].sum())


def _record_columns(df: pl.DataFrame, limit: int) -> tuple[pl.DataFrame, list[str], list[int], list[dict[str, Any]]]:
    """Each record's id and text snippet (cut to ``limit`` characters), the partition names (sorted)
    and each record's index into them, and the partition colour-by option (when there is a partition)."""
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
    colorby: list[dict[str, Any]] = []
    if "partition" in df.columns:
        groups, group_of = _color_groups(part_names, part_counts)
        colorby.append({"name": "partition", "kind": "cat", "src": "p", "map": group_of,
                        "groups": groups})  # fmt: skip
    codes = new_code[part_codes.to_numpy()].tolist() if df.height else []
    return cols, part_names, codes, colorby

def _topic_indices(df: pl.DataFrame, id_col: str, table: list[dict]) -> list[int]:
    """Each point's index into ``table`` (the topic table of ``id_col``)."""
    if df.height == 0:
        return []
    ids = [t["id"] for t in table]
    return (
        df[id_col].replace_strict(ids, list(range(len(ids))), return_dtype=pl.Int32).to_list()
    )

