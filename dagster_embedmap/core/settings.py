"""Settings fields declared once: a default and its description, read by every layer that exposes them.

The core's settings dataclasses (:class:`~.embedding.EncoderSettings`, :class:`~.layout.project.ProjectionSettings`,
:class:`~.topics.cluster.ClusterSettings`, :class:`~.topics.labels.LabelSettings`) declare each field with
:func:`setting`. The Dagster resources, the YAML component's schema and the CLI read the defaults and
descriptions from there (:func:`described`), so neither is ever written twice and none is parsed out
of source code.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["setting", "described", "AutomationSettings"]

_DOC = "description"


def setting(default: Any, doc: str, *, secret: bool = False, **bounds: Any) -> Any:
    """A dataclass field with ``default`` and its description (and optional pydantic-style ``bounds``,
    e.g. ``ge=1``, which the resources and the component enforce). ``secret``: never in a ``repr``."""
    return dataclasses.field(default=default, repr=not secret,
                             metadata={_DOC: " ".join(doc.split()), "bounds": bounds})


def described(cls: type) -> dict[str, dataclasses.Field]:
    """The fields of settings dataclass ``cls`` by name, each with its description in its metadata."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    missing = [name for name, f in fields.items() if not f.metadata.get(_DOC)]
    if missing:
        raise TypeError(f"{cls.__name__}: field(s) {missing} have no description; declare them with setting()")
    return fields


@dataclasses.dataclass(frozen=True)
class AutomationSettings:
    """How a map keeps itself fresh and shares GPUs: read by ``build_embedmap_defs``'s defaults, the
    landing sensor and the YAML component's ``schedule`` and ``gpu`` groups."""

    refit_cron: str | None = setting(
        "0 3 * * 0",
        """Cron of the layout refit schedule; null: no schedule.""")
    refit_drift_share: float | None = setting(
        0.5,
        """Refit once more than this share of the records is newer than the layout; null: no drift sensor.""")
    sensor_interval_s: int = setting(
        30,
        """Seconds between two looks at the landing folder.""", ge=1)
    max_runs_per_tick: int = setting(
        10,
        """Partition runs the landing sensor requests at most per look.""", ge=1)
    running: bool = setting(
        False,
        """Create the schedule and sensors running.""")
    pool: str = setting(
        "gpu",
        """Dagster concurrency pool of the embeddings step; limit it to the number of GPUs (dagster.yaml:
        concurrency.pools, or `dagster instance concurrency set`).""")
