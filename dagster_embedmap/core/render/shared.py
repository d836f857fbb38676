"""What the PNG preview and the HTML map share: the palette, the input checks, the points frame."""

from __future__ import annotations

import os
import pathlib
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

