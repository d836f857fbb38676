"""Materialization metadata in Dagster's conventions, with record text escaped wherever it is shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import dagster as dg
import polars as pl

__all__ = ["md_cell", "md_table", "column_schema", "file_metadata"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md_cell(value: object, max_chars: int = 120) -> str:
    """Untrusted text made inert inside a markdown table cell: HTML entities, markdown escapes, one line."""
    text = "" if value is None else str(value)
    text = " ".join(text.split())
    if len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]], max_chars: int = 120) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(md_cell(v, max_chars) for v in row) + " |")
    return "\n".join(lines)


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=n, type=str(t)) for n, t in frame.schema.items()])


def file_metadata(path: Path, frame: pl.DataFrame | None = None) -> dict[str, object]:
    """``dagster/uri`` of a written file, plus row count and column schema when it is a table."""
    meta: dict[str, object] = {
        "dagster/uri": dg.MetadataValue.text(path.resolve().as_uri()),
        "path": dg.MetadataValue.path(str(path.resolve())),
        "size_bytes": path.stat().st_size,
    }
    if frame is not None:
        meta["dagster/row_count"] = frame.height
        meta["dagster/column_schema"] = column_schema(frame)
    return meta
