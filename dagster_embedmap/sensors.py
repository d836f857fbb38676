"""A sensor that turns files landing in a folder into dynamic partitions and runs.

    partitions = dg.DynamicPartitionsDefinition(name="articles_files")
    source = FileSource("landing/*.jsonl")
    defs = build_embedmap_defs("articles", source, partitions_def=partitions)
    sensor = build_landing_sensor("articles_landing", source, partitions, "articles_partitions",
                                  cleanup_job="articles_map")

One partition per file, keyed by the file's stem (as :meth:`FileSource.partition_keys` names it).
Each tick hashes the files: a new file adds its partition and requests a run of ``job`` for it, a
changed file requests another run, an unchanged one nothing; a file that is gone deletes its
partition and, with ``cleanup_job``, requests one unpartitioned run of that job (which removes
the partition's points: the sensor touches nothing but partitions and runs).

The cursor is JSON: ``{"files": {stem: sha256 of the bytes}, "runs": {stem: {sha[:16]: n}}}``.
``files`` holds the files acted on; ``runs`` counts the runs requested per content, so that the
run key of a content seen before (a file removed then landed again, or reverted to an earlier
content) gets a ``:<n>`` suffix instead of colliding with the earlier run's key, which Dagster
would silently skip. Run keys are otherwise ``<stem>:<sha[:16]>``: a tick replayed on the same
cursor (a daemon restart after submitting) never runs the same content twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Union

import dagster as dg

from .core.records.sources import FileSource, file_sha256
from .core.settings import AutomationSettings

if TYPE_CHECKING:  # not exported at dagster's top level
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

__all__ = ["build_landing_sensor", "file_sha256", "partition_key_problem"]

Job = Union["UnresolvedAssetJobDefinition", dg.JobDefinition, str]

# Dagster's own forbidden substrings ("..." separates ranges in the UI, control characters do not
# display) and "|", the multi-partition key delimiter.
_BAD_SUBSTRINGS = ("...", "|")
FILE_TAG = "dagster-embedmap/landed_file"
SHA_TAG = "dagster-embedmap/content_sha256"


def partition_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a dynamic partition key, or ``None`` when it can."""
    if not key:
        return "it is empty"
    bad = [s for s in _BAD_SUBSTRINGS if s in key]
    bad += sorted({repr(ch) for ch in key if ord(ch) < 32 or ord(ch) == 127})
    if bad:
        return f"it contains {', '.join(bad)}, not allowed in a Dagster partition key"
    return None


def _job_name(job: Job) -> str:
    if isinstance(job, str):
        return job
    if isinstance(job, dg.JobDefinition) or type(job).__name__ == "UnresolvedAssetJobDefinition":
        return job.name
    raise TypeError(f"job must be a job definition or a job name, got {type(job).__name__}")


def _load_cursor(raw: str | None, log) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    if not raw:
        return {}, {}
    try:
        data = json.loads(raw)
        files = data["files"]
        runs = data.get("runs", {})
        if not (
            isinstance(files, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            and isinstance(runs, dict)
            and all(
                isinstance(per, dict) and all(isinstance(n, int) for n in per.values()) for per in runs.values()
            )
        ):
            raise ValueError("unexpected shape")
    except (ValueError, TypeError, KeyError) as exc:
        log.warning(
            f"ignoring an unreadable sensor cursor ({type(exc).__name__}: {exc}); every file counts as new, "
            "and run keys already used keep Dagster from rerunning the same content"
        )
        return {}, {}
    return dict(files), {stem: dict(per) for stem, per in runs.items()}


def _dump_cursor(files: Mapping[str, str], runs: Mapping[str, Mapping[str, int]]) -> str:
    return json.dumps({"files": dict(files), "runs": {s: dict(r) for s, r in runs.items()}}, sort_keys=True,
                      separators=(",", ":"))


def _run_key(stem: str, sha: str, runs: dict[str, dict[str, int]]) -> str:
    """``<stem>:<sha[:16]>``, with ``:<n>`` for the n-th run of a content already run; counts it."""
    short = sha[:16]
    seen = runs.setdefault(stem, {})
    n = seen.get(short, 0) + 1
    seen[short] = n
    return f"{stem}:{short}" if n == 1 else f"{stem}:{short}:{n}"


def build_landing_sensor(
    name: str,
    source: FileSource,
    partitions_def: dg.DynamicPartitionsDefinition,
    job: Job,
    *,
    cleanup_job: Job | None = None,
    max_runs_per_tick: int = AutomationSettings.max_runs_per_tick,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor adding a partition and requesting a run of ``job`` for each file landing in ``source``.

    Args:
        name: the sensor's name.
        source: a :class:`FileSource` whose ``path`` is a glob (one partition per file).
        partitions_def: the named dynamic partitions of ``job``; the sensor adds and deletes its keys.
        job: the per-partition job (definition or name) run for each new or changed file.
        cleanup_job: a job (definition or name) run once, without a partition, on a tick that
            deleted partitions because their files are gone; it removes their points.
        max_runs_per_tick: partition runs requested per tick at most; the oldest files (by
            modification time, then name) go first and the others wait for the next ticks.
        minimum_interval_seconds / default_status: as for any Dagster sensor.
    """
    job_name, cleanup_name = _check_landing_args(source, partitions_def, job, cleanup_job, max_runs_per_tick)
    pattern = source.path

    description = (
        f"Watches {pattern} for files: each new file becomes a partition of {partitions_def.name!r} "
        f"(keyed by its name without suffix) and each new or changed file a run of {job_name!r}; "
        + (
            f"a removed file's partition is deleted and {cleanup_name!r} runs to remove its points."
            if cleanup_name
            else "a removed file's partition is deleted."
        )
    )

    def evaluate(context: dg.SensorEvaluationContext):
        log = context.log
        known, runs = _load_cursor(context.cursor, log)

        present, held = _scan(source, log)

        pending = sorted(
            (mtime, file, stem, sha) for stem, (mtime, file, sha) in present.items() if known.get(stem) != sha
        )
        todo, deferred = pending[:max_runs_per_tick], pending[max_runs_per_tick:]
        removed = sorted(stem for stem in known if stem not in present and stem not in held)

        files = dict(known)
        run_requests: list[dg.RunRequest] = []
        for _, file, stem, sha in todo:
            was = known.get(stem)
            files[stem] = sha
            run_key = _run_key(stem, sha, runs)
            run_requests.append(
                dg.RunRequest(run_key=run_key, partition_key=stem, job_name=job_name,
                              tags={FILE_TAG: file, SHA_TAG: sha})
            )
            log.info(f"{'changed' if was else 'new'} file {file!r}: run {job_name!r} for partition {stem!r} ({run_key})")
        if deferred:
            log.info(
                f"{len(deferred)} more new or changed file(s) wait for the next tick "
                f"(max_runs_per_tick={max_runs_per_tick}): {', '.join(repr(f) for _, f, _, _ in deferred[:5])}"
                + (" ..." if len(deferred) > 5 else "")
            )

        dynamic_requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        if todo:  # a changed file's partition already exists: adding it again is a no-op for the daemon
            dynamic_requests.append(partitions_def.build_add_request([stem for _, _, stem, _ in todo]))
        if removed:
            dynamic_requests.append(partitions_def.build_delete_request(removed))
            gone = [(stem, known[stem], runs.get(stem, {}).get(known[stem][:16], 0)) for stem in removed]
            log.info(f"file(s) gone from {pattern}: deleting partition(s) {removed}")
            for stem in removed:
                del files[stem]
            if cleanup_name:
                tick = hashlib.sha256(json.dumps(gone).encode("utf-8")).hexdigest()[:16]
                run_requests.append(
                    dg.RunRequest(run_key=f"removed:{','.join(removed)}:{tick}", job_name=cleanup_name)
                )

        cursor = _dump_cursor(files, runs)
        if run_requests or dynamic_requests:
            return dg.SensorResult(
                run_requests=run_requests,
                dynamic_partitions_requests=dynamic_requests,
                cursor=cursor,
                skip_reason=None if run_requests else f"deleted partition(s) {removed}; no cleanup job configured",
            )
        reason = f"no new or changed files in {pattern}" + (
            f" ({len(held)} file name(s) skipped, see the tick's log)" if held else ""
        )
        if cursor != (context.cursor or _dump_cursor({}, {})):
            return dg.SensorResult(skip_reason=reason, cursor=cursor)
        return dg.SkipReason(reason)

    return _sensor(name, evaluate, job, cleanup_job, minimum_interval_seconds, description, default_status)


def _check_landing_args(source, partitions_def, job, cleanup_job, max_runs_per_tick: int) -> tuple[str, str | None]:
    """The names of ``job`` and ``cleanup_job`` (None without one), after checking every argument of
    :func:`build_landing_sensor`; a bad one raises, saying what to pass instead."""
    if not isinstance(source, FileSource):
        raise TypeError(f"source must be a FileSource, got {type(source).__name__}")
    if not source.per_file:
        raise ValueError(
            f"source {source.path!r} is not one partition per file: the landing sensor needs a glob path "
            "(e.g. 'landing/*.jsonl') and no partition_column"
        )
    if not isinstance(partitions_def, dg.DynamicPartitionsDefinition) or not partitions_def.name:
        raise TypeError(
            "partitions_def must be a named DynamicPartitionsDefinition: the sensor adds and deletes its keys"
        )
    if max_runs_per_tick < 1:
        raise ValueError(f"max_runs_per_tick must be at least 1, got {max_runs_per_tick}")
    job_name = _job_name(job)
    cleanup_name = _job_name(cleanup_job) if cleanup_job is not None else None
    if cleanup_name == job_name:
        raise ValueError(f"cleanup_job must differ from job ({job_name!r}): it runs without a partition")
    return job_name, cleanup_name


def _scan(source: FileSource, log) -> tuple[dict[str, tuple[float, str, str]], set[str]]:
    """The landing files now: ``stem -> (mtime, file, sha256)`` of each usable one, and the stems seen but
    not usable this tick (several files for one key, an invalid key, unreadable or just gone), each said
    in the log; their cursor entries stay."""
    by_stem: dict[str, list[Path]] = {}
    for path in source.files():
        by_stem.setdefault(path.stem, []).append(path)

    present: dict[str, tuple[float, str, str]] = {}  # stem -> (mtime, file, sha256)
    held: set[str] = set()  # stems seen but not acted on this tick: their cursor entries stay
    for stem, paths in sorted(by_stem.items()):
        if len(paths) > 1:
            log.warning(
                f"skipping {', '.join(repr(str(p)) for p in paths)}: several files share the partition key "
                f"{stem!r}; rename all but one"
            )
            held.add(stem)
            continue
        path = paths[0]
        problem = partition_key_problem(stem)
        if problem:
            log.warning(f"skipping {path}: its partition key {stem!r} is invalid ({problem}); rename the file")
            held.add(stem)
            continue
        try:
            mtime = path.stat().st_mtime
            sha = file_sha256(path)
        except FileNotFoundError:  # gone between the listing and the read: the next tick sees it
            held.add(stem)
            continue
        except OSError as exc:
            log.warning(f"skipping {str(path)!r}: could not be read ({type(exc).__name__}: {exc})")
            held.add(stem)
            continue
        present[stem] = (mtime, str(path), sha)
    return present, held


def _sensor(name: str, evaluate, job: Job, cleanup_job: Job | None, minimum_interval_seconds: int, description: str,
            default_status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    """The sensor definition targeting ``job`` (a definition or a name) and, when given, ``cleanup_job``."""
    targets = [job] if cleanup_job is None else [job, cleanup_job]
    common = dict(
        name=name,
        evaluation_fn=evaluate,
        minimum_interval_seconds=minimum_interval_seconds,
        description=description,
        default_status=default_status,
    )
    if len(targets) == 1:
        if isinstance(job, str):
            return dg.SensorDefinition(job_name=job, **common)
        return dg.SensorDefinition(job=job, **common)
    if any(isinstance(t, str) for t in targets):
        raise TypeError("with a cleanup_job, pass both jobs as definitions (a name works for a single job only)")
    return dg.SensorDefinition(jobs=targets, **common)
