"""Materialization metadata in Dagster's conventions, with record text escaped wherever it is shown."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

import dagster as dg
import polars as pl

__all__ = ["md_cell", "md_table", "column_schema", "file_metadata", "topic_tree_markdown"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
# control characters and the bidi controls that can reorder how the rest of a line reads
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def md_cell(value: object, max_chars: int = 120) -> str:
    """Untrusted text made inert inside a markdown table cell: HTML entities, markdown escapes, no control
    or bidi characters, one line."""
    text = "" if value is None else str(value)
    text = " ".join(_INVISIBLE.sub(" ", text).split())
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


def topic_tree_markdown(table: pl.DataFrame, max_children: int = 25, max_keywords: int = 8) -> str:
    """The topic tree as a nested markdown list, broad topics first, biggest first at every level.

    ``table`` is the topics step's table (``level``, ``topic_id``, ``parent_id``, ``size``, ``label``,
    ``keywords``). Labels and keywords are record-derived text, so every one goes through :func:`md_cell`.
    """
    if table.height == 0:
        return "_no topics yet_"
    rows = table.sort(["level", "size", "topic_id"], descending=[False, True, False]).to_dicts()
    depth = max(r["level"] for r in rows) + 1
    children: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        if r["level"] > 0 and r["parent_id"] is not None:
            children.setdefault((r["level"] - 1, r["parent_id"]), []).append(r)
    lines: list[str] = []

    def emit(r: dict, indent: int) -> None:
        words = ", ".join(md_cell(w, 40) for w in (r["keywords"] or [])[:max_keywords])
        name = md_cell(r["label"])
        head = f"**{name}**" if r["level"] < depth - 1 else name
        lent = " (named from the nearest texts: its records are images)" if r.get("labelled_from") == "nearest texts" \
            else ""
        lines.append(f"{'  ' * indent}- {head}{lent} ({r['size']:,}; id {r['topic_id']})" + (f": {words}" if words else ""))
        kids = children.get((r["level"], r["topic_id"]), [])
        for kid in kids[:max_children]:
            emit(kid, indent + 1)
        if len(kids) > max_children:
            lines.append(f"{'  ' * (indent + 1)}- … {len(kids) - max_children} more")

    for r in rows:
        if r["level"] == 0:
            emit(r, 0)
    return "\n".join(lines)
