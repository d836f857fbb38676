"""What a rebuild has to run: the partitions whose input changed since the last build.

``embedmap build`` keeps, per map, the digest of its build settings and of each partition's input as it
was when that partition was last written and placed (:meth:`FileSource.fingerprints
<dagster_embedmap.core.records.sources.FileSource.fingerprints>`). :func:`plan_rebuild` compares them
with the input now: only new or changed partitions run again, and the global steps (layout, topics,
map) only when something below them changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping

__all__ = ["RebuildPlan", "plan_rebuild", "settings_digest"]


def settings_digest(settings: Mapping[str, object]) -> str:
    """A digest of everything besides the input that decides what a build writes (columns, model,
    backend, empty-text policy, the package's version): when it changes, every partition runs again."""
    from ... import __version__

    text = json.dumps({**settings, "dagster_embedmap": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class RebuildPlan:
    changed: list[str]
    """Partitions to run: new, changed, or not finished by the last build."""
    unchanged: list[str]
    removed: list[str] = field(default_factory=list)
    """Partitions the last build had that the input no longer holds."""
    settings_changed: bool = False

    def run_again(self, keys: list[str]) -> "RebuildPlan":
        """This plan with the unchanged partitions among ``keys`` moved to those that run."""
        from dataclasses import replace

        again = set(keys) & set(self.unchanged)
        return replace(self, changed=sorted({*self.changed, *again}),
                       unchanged=[k for k in self.unchanged if k not in again])

    @property
    def anything(self) -> bool:
        return bool(self.changed or self.removed)

    def describe(self) -> str:
        """One line for the build log."""
        if self.settings_changed:
            return f"the build settings changed since the last build: all {len(self.changed)} partition(s) run again"
        parts = [f"{len(self.changed)} of {len(self.changed) + len(self.unchanged)} partition(s) new or changed"]
        if self.unchanged:
            parts.append(f"{len(self.unchanged)} unchanged since the last build, not run again")
        if self.removed:
            parts.append(f"{len(self.removed)} no longer in the input ({', '.join(self.removed[:5])})")
        return "; ".join(parts)


def plan_rebuild(previous: Mapping[str, object] | None, fingerprints: Mapping[str, str], digest: str) -> RebuildPlan:
    """``previous``: what the last build recorded (``{"settings": digest, "partitions": {key: fingerprint}}``,
    or None for a first build). Partitions keep their input's key order."""
    keys = list(fingerprints)
    done = previous.get("partitions") if isinstance(previous, Mapping) else None
    if not isinstance(done, Mapping) or previous.get("settings") != digest:
        return RebuildPlan(changed=keys, unchanged=[], settings_changed=isinstance(done, Mapping) and bool(done))
    changed = [k for k in keys if done.get(k) != fingerprints[k]]
    unchanged = [k for k in keys if done.get(k) == fingerprints[k]]
    removed = sorted(k for k in done if k not in fingerprints)
    return RebuildPlan(changed=changed, unchanged=unchanged, removed=removed)
