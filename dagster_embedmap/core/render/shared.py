"""What the PNG preview and the HTML map share: the palette, the input checks, the points frame."""

from __future__ import annotations

import colorsys
import os
import pathlib
import re
import textwrap
from typing import Any, Sequence

import polars as pl

from ..errors import EmbedMapInputError
from ..paths import atomic_path

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
_LEVEL_RE = re.compile(r"^topic_(\d+)_id$")


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
    """An expression giving ``column`` as strings, null -> ``""`` (a list's items joined by ", ", other
    nested types via ``str()``)."""
    dtype = points.schema[column]
    if dtype == pl.String:
        expr = pl.col(column)
    elif isinstance(dtype, pl.List) and not dtype.inner.is_nested():
        expr = pl.col(column).list.eval(pl.element().cast(pl.String)).list.join(", ")
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
# topic levels: what the HTML map and the PNG colour and label by


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


def _level_columns(df: pl.DataFrame, n_levels: int) -> tuple[list[str], list[str]]:
    """The id and label columns of each level of ``df`` (with :func:`_with_level_columns`' columns),
    broad first, the finest last (``topic_id``): a last level column repeating it is not a level of its own."""
    coarse = list(range(n_levels))
    if coarse and (df[f"_lv{coarse[-1]}_id"] == df["topic_id"]).all():
        coarse.pop()
    return [f"_lv{i}_id" for i in coarse] + ["topic_id"], [f"_lv{i}_label" for i in coarse] + ["topic_label"]
