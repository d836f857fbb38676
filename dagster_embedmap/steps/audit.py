"""Does every point agree with its record? Text, vector, place and topics, point by point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import polars as pl

from ..core.paths import MapLayout
from .common import Check

__all__ = ["PointAudit", "audit_points"]


@dataclass
class PointAudit:
    """Record ids, per way a point can disagree with the current input (empty lists: all current)."""

    points: int
    records: int
    text_changed: list[str] = field(default_factory=list)
    """The stored content hash differs from the record's: the collection step has not seen the edit."""
    without_record: list[str] = field(default_factory=list)
    """Points whose record is no longer in its partition's documents."""
    without_point: list[str] = field(default_factory=list)
    """Records of the documents with no point."""
    stale_place: list[str] = field(default_factory=list)
    """Not placed, or placed from another vector than the stored one (``xy_hash`` != ``vector_hash``)."""
    stale_topic: list[str] = field(default_factory=list)
    """No topic, or a topic assigned for another place (``topic_hash`` != ``xy_hash``)."""
    legacy: list[str] = field(default_factory=list)
    """Points written before vector hashes were recorded: rematerialize their partition's collection step."""
    unreadable: list[str] = field(default_factory=list)
    """Partitions whose documents file could not be read."""

    @property
    def current(self) -> bool:
        return not (self.text_changed or self.without_record or self.without_point or self.stale_place
                    or self.stale_topic or self.legacy or self.unreadable)

    def check(self, name: str = "every_point_current") -> Check:
        kinds = {"text_changed": self.text_changed, "without_record": self.without_record,
                 "without_point": self.without_point, "stale_place": self.stale_place,
                 "stale_topic": self.stale_topic, "legacy_points": self.legacy}
        metadata: dict[str, object] = {"points": self.points, "records": self.records}
        metadata.update({k: len(v) for k, v in kinds.items()})
        metadata["unreadable_documents"] = sorted(self.unreadable)
        wrong = {k: sorted(v)[:5] for k, v in kinds.items() if v}
        if wrong:
            metadata["examples"] = wrong
        description = None
        if not self.current:
            description = "; ".join(f"{len(v)} {k.replace('_', ' ')} (e.g. {', '.join(map(repr, sorted(v)[:3]))})"
                                    for k, v in kinds.items() if v)
            if self.unreadable:
                description = "; ".join(filter(None, [description, f"unreadable documents: {sorted(self.unreadable)}"]))
        return Check(name, self.current, metadata, description)


def audit_points(points: pl.DataFrame, layout: MapLayout, partitions: Iterable[str]) -> PointAudit:
    """Compare each point (``points_frame``, of ``partitions`` only) with its partition's documents, and its
    place and topics with its vector."""
    frames, unreadable = [], []
    for partition in sorted(set(partitions)):
        path = layout.documents(partition)
        if not path.exists():
            continue
        try:
            docs = pl.read_parquet(path, columns=["id", "content_hash"])
        except Exception:
            unreadable.append(partition)
            continue
        frames.append(docs.with_columns(pl.lit(partition, dtype=pl.String).alias("partition")))
    docs = pl.concat(frames) if frames else pl.DataFrame(schema={"id": pl.String, "content_hash": pl.String,
                                                                 "partition": pl.String})
    wanted = set(partitions) - set(unreadable)
    points = points.filter(pl.col("partition").is_in(list(wanted)))

    def column(name: str) -> pl.Expr:
        return pl.col(name) if name in points.columns else pl.lit(None, dtype=pl.String).alias(name)

    mine = points.select("id", "partition", "x", "topic_id", column("content_hash"), column("vector_hash"),
                         column("xy_hash"), column("topic_hash"), pl.lit(True).alias("_point"))
    joined = mine.join(docs.rename({"content_hash": "record_hash"}), on=["partition", "id"], how="full",
                       coalesce=True)
    has_point = pl.col("_point").fill_null(False)

    def ids(condition: pl.Expr) -> list[str]:
        return joined.filter(condition)["id"].cast(pl.String).to_list()

    in_both = has_point & pl.col("record_hash").is_not_null()
    return PointAudit(
        points=points.height,
        records=docs.filter(pl.col("partition").is_in(list(wanted))).height,
        text_changed=ids(in_both & (pl.col("content_hash") != pl.col("record_hash")).fill_null(True)),
        without_record=ids(has_point & pl.col("record_hash").is_null()),
        without_point=ids(~has_point & pl.col("record_hash").is_not_null()),
        stale_place=ids(has_point & (pl.col("x").is_null() | ~pl.col("xy_hash").eq_missing(pl.col("vector_hash")))),
        stale_topic=ids(has_point & (pl.col("topic_id").is_null() | (pl.col("topic_id") < 0)
                                     | ~pl.col("topic_hash").eq_missing(pl.col("xy_hash")))),
        legacy=ids(has_point & pl.col("vector_hash").is_null()),
        unreadable=unreadable,
    )
