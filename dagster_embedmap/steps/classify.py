"""A map's custom classifiers: train one (global) from labelled records and/or class descriptions, tag
each partition's points with it, and list the records worth labelling next.

- :func:`read_examples`       a labels file (parquet, CSV or JSONL with ``id`` and ``label``)
- :func:`train_classifier`    the labelled records' stored vectors (read from the collection by id),
  cross-validated and fitted; saved under ``<map>/classifiers/<name>.npz`` with a JSON of what it was
  trained on (``version``: a hash of the labels, the descriptions, the settings and the vectors)
- :func:`classify_partition`  one partition's points scored and tagged in the payload:
  ``class_<name>`` (the class, None when unsure; a list with ``multi_label``), ``class_<name>_score``
  and ``class_<name>_version`` (the classifier that tagged it); cost in proportion to the partition
- :func:`uncertain_records`   the least sure records, spread over the map (:func:`least_certain`)
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import polars as pl

from ..core.classify import (
    ClassifierSettings, CrossValidation, SemanticClassifier, check_classifier_name, least_certain, margins,
)
from ..core.errors import EmbedMapInputError
from ..core.paths import Log, MapLayout, atomic_path, write_json
from ..core.store.location import point_id
from ..core.store.payload import class_fields
from .common import StoreOpener

__all__ = ["ClassifierTrained", "PartitionClassified", "read_examples", "examples_frame", "examples_from_column",
           "train_classifier", "classify_partition", "load_classifier", "uncertain_records", "class_fields"]


def read_examples(path: str | Path, *, multi_label: bool = False) -> pl.DataFrame:
    """``id`` and ``label`` (both strings) from a parquet, CSV or JSONL file; one row per id. With
    ``multi_label`` a record may have several rows, one per class it belongs to: ``label`` is then the
    sorted list of its classes."""
    path = Path(path)
    readers = {".parquet": pl.read_parquet, ".csv": pl.read_csv, ".jsonl": pl.read_ndjson, ".ndjson": pl.read_ndjson}
    read = readers.get(path.suffix.lower())
    if read is None:
        raise EmbedMapInputError(f"labels file {path}: give a .parquet, .csv or .jsonl file with columns 'id' and 'label'")
    if not path.exists():
        raise EmbedMapInputError(f"labels file {path} does not exist")
    try:
        frame = read(path)
    except Exception as exc:  # polars' many read errors: say which file, and why
        raise EmbedMapInputError(f"labels file {path} cannot be read: {exc}") from None
    return examples_frame(frame, f"labels file {path}", multi_label=multi_label)


def _as_polars(table, where: str) -> pl.DataFrame:
    if isinstance(table, pl.DataFrame):
        return table
    if isinstance(table, dict) and table and all(not isinstance(v, (list, tuple)) for v in table.values()):
        return pl.concat([_as_polars(t, where) for t in table.values()], how="diagonal_relaxed")  # {partition: table}
    module = type(table).__module__.split(".")[0]
    try:
        return pl.from_pandas(table) if module == "pandas" else pl.from_arrow(table) if module == "pyarrow" \
            else pl.DataFrame(table)  # a dict of columns, or a list of rows
    except (TypeError, ValueError) as exc:
        raise EmbedMapInputError(f"{where}: a table with columns 'id' and 'label' is needed, got "
                                 f"{type(table).__name__} ({exc})") from None


def examples_frame(table, where: str, *, multi_label: bool = False) -> pl.DataFrame:
    """``id`` and ``label`` of a labels table (a polars or pandas DataFrame, an Arrow table, or a
    ``{partition: table}`` dict of them, as a partitioned asset loads), checked as :func:`read_examples`
    checks a file; ``where`` names the table in errors."""
    frame = _as_polars(table, where)
    missing = [c for c in ("id", "label") if c not in frame.columns]
    if missing:
        raise EmbedMapInputError(f"{where} has no column {missing} (it has {frame.columns}): give one row "
                                 f"per labelled record with columns 'id' (the record id) and 'label' (its class)")
    frame = frame.select(pl.col("id").cast(pl.String), pl.col("label").cast(pl.String)).drop_nulls()
    frame = frame.filter(pl.col("label").str.strip_chars() != "").unique(maintain_order=True)
    if multi_label:
        return frame.group_by("id", maintain_order=True).agg(pl.col("label").unique().sort())
    clash = frame.group_by("id").agg(pl.col("label").n_unique().alias("n")).filter(pl.col("n") > 1)["id"].to_list()
    if clash:
        raise EmbedMapInputError(f"{where}: {len(clash)} record(s) have two different labels "
                                 f"(ids {sorted(clash)[:5]}): keep one label per record, or make the classifier "
                                 f"multi-label (one row per record and class)")
    return frame


def examples_from_column(layout: MapLayout, partitions: list[str], column: str, *,
                         multi_label: bool = False) -> pl.DataFrame:
    """``id`` and ``label`` from a metadata column of the records (their non-empty values), read from the
    partitions' documents files; a column no partition has is named with the columns there are. With
    ``multi_label`` a list column gives each record its classes (a plain column, one class each)."""
    frames, seen = [], set()
    for partition in partitions:
        path = layout.documents(partition)
        if not path.exists():
            continue
        names = pl.read_parquet_schema(path)
        seen.update(names)
        if column in names:
            frames.append(pl.read_parquet(path, columns=["id", column]))
    if not frames:
        raise EmbedMapInputError(f"label column {column!r} is in no partition's records (their columns: "
                                 f"{sorted(seen - {'content_hash'})}): name a metadata column that holds the labels")
    frame = pl.concat(frames, how="vertical_relaxed")
    if isinstance(frame.schema[column], pl.List):
        if not multi_label:
            raise EmbedMapInputError(f"label column {column!r} holds lists: one class per record, or make the "
                                     f"classifier multi-label")
        frame = frame.explode(column)
    return examples_frame(frame.select("id", pl.col(column).alias("label")), f"label column {column!r}",
                          multi_label=multi_label)


@dataclass
class ClassifierTrained:
    name: str
    version: str
    classes: list[str]
    mode: str
    examples: int
    """Labelled records found in the collection and trained on."""
    unknown_ids: list[str] = field(default_factory=list)
    """Ids of the labels file with no point in the collection (a typo, or a removed partition's record)."""
    validation: CrossValidation | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PartitionClassified:
    partition: str
    points: int
    counts: dict[str, int]
    """Points per class; ``""`` counts the unsure ones (no class)."""
    mean_score: float


def _models(layout: MapLayout, partitions: list[str] | None = None) -> set[str]:
    """The model fingerprints the map's vectors come from (the embeddings files' ``model`` column), of
    ``partitions`` or of all; files that cannot be read are the embeddings step's to report."""
    files = ([layout.embeddings(p) for p in partitions] if partitions is not None
             else sorted((layout.root / "embeddings").glob("*.parquet")))
    found: set[str] = set()
    for path in files:
        try:
            found.update(str(v) for v in pl.read_parquet(path, columns=["model"])["model"].unique().to_list())
        except Exception:  # missing or unreadable
            continue
    return found


def _version(parts: list[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:16]


def train_classifier(open_store: StoreOpener, layout: MapLayout, map_name: str, name: str, *,
                     examples: pl.DataFrame | None = None, descriptions: Mapping[str, np.ndarray] | None = None,
                     settings: ClassifierSettings | None = None, log: Log) -> ClassifierTrained:
    """Train classifier ``name`` of map ``map_name`` from ``examples`` (``id``, ``label``: record ids of
    the map) and/or ``descriptions`` ({class: its description's vector, embedded by the map's model}),
    cross-validate it on its examples, and save it. Ids without a point are named in a warning (an
    error when none match); nothing is written unless training succeeds."""
    check_classifier_name(name)
    settings = settings or ClassifierSettings()
    started = time.perf_counter()
    warnings: list[str] = []
    vectors, labels, unknown = None, None, []
    with open_store() as store:
        dimension = store.dimension()
        if examples is not None and examples.height:
            ids = examples["id"].to_list()
            pids = [point_id(map_name, i) for i in ids]
            found = store.vectors_of(pids)
            keep = [k for k, pid in enumerate(pids) if pid in found]
            unknown = [i for i, pid in zip(ids, pids) if pid not in found]
            if not keep:
                raise EmbedMapInputError(
                    f"classifier {name!r} of map {map_name!r}: none of the {len(ids)} labelled ids is a record of the "
                    f"map (ids {unknown[:5]}): the labels file's 'id' column must hold the records' ids")
            if unknown:
                warnings.append(f"classifier {name!r}: {len(unknown)} of {len(ids)} labelled ids are not records of "
                                f"map {map_name!r} (ids {unknown[:5]}): left out; {len(keep)} matched")
            vectors = np.stack([found[pids[k]] for k in keep])
            given = examples["label"].to_list()  # a class, or with multi_label a list of them
            labels = [given[k] for k in keep]
    if vectors is None and not descriptions:
        raise EmbedMapInputError(f"classifier {name!r} of map {map_name!r}: give labelled examples, class "
                                 f"descriptions, or both")
    want = dimension if dimension is not None else (vectors.shape[1] if vectors is not None else None)
    for cls, vec in (descriptions or {}).items():
        if want is not None and np.asarray(vec).size != want:
            raise EmbedMapInputError(f"classifier {name!r}: the description of {cls!r} has {np.asarray(vec).size} "
                                     f"dimensions and the map's vectors {want}: embed it with the map's model")
    try:
        model = SemanticClassifier(settings).fit(vectors, labels, descriptions)
    except ValueError as exc:
        raise EmbedMapInputError(f"classifier {name!r} of map {map_name!r}: {exc}") from None
    validation = None
    if labels is not None:
        thin = [] if settings.multi_label else sorted(c for c, n in Counter(labels).items() if n < 2)
        if thin or settings.multi_label:
            why = ("a multi-label classifier is not cross-validated" if settings.multi_label else
                   f"class(es) {thin} have one example: not cross-validated; label more records of them")
            warnings.append(f"classifier {name!r}: {why}")
        else:
            validation = model.cross_validate(vectors, labels, descriptions)
    state = model.to_state()
    models = sorted(_models(layout))
    version = _version([np.ascontiguousarray(state[k]).tobytes() for k in ("classes", "coef", "intercept")]
                       + [str(state["meta"]).encode(), "\n".join(models).encode()])
    info = {"name": name, "version": version, "classes": model.classes_, "mode": model.mode_,
            "multi_label": settings.multi_label,
            "examples": 0 if labels is None else len(labels), "unknown_ids": unknown[:100],
            "descriptions": sorted(descriptions or {}), "dimension": model.dimension_, "models": models,
            "validation": None if validation is None else {**validation.to_metadata(), "per_class": validation.per_class},
            "trained_at": time.time()}
    target = layout.classifier(name)
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **state, version=np.array(version), models=np.array(models, dtype=str))
    write_json(layout.classifier_info(name), info)
    for w in warnings:
        log.warning(w)
    return ClassifierTrained(name=name, version=version, classes=model.classes_, mode=model.mode_,
                             examples=info["examples"], unknown_ids=unknown, validation=validation, warnings=warnings,
                             seconds=time.perf_counter() - started)


def load_classifier(layout: MapLayout, name: str, *, train_step: str) -> tuple[SemanticClassifier, str]:
    """The saved classifier ``name`` and its version; a clear error when it was never trained. The
    model fingerprints of the vectors it was trained on are ``classifier.models_``."""
    check_classifier_name(name)
    path = layout.classifier(name)
    if not path.exists():
        raise EmbedMapInputError(f"classifier {name!r} is not trained yet ({path} does not exist)",
                                 fix=f"materialize {train_step} first",
                                 cli_fix=f"train it first: `embedmap classify --classifier {name} --examples FILE` "
                                         f"(or --label-column COLUMN, or --describe LABEL=TEXT)")
    with np.load(path, allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    model = SemanticClassifier.from_state(state)
    model.models_ = {str(m) for m in state["models"]} if "models" in state else set()
    return model, str(state["version"])


def classify_partition(open_store: StoreOpener, layout: MapLayout, name: str, partition: str, *,
                       train_step: str) -> PartitionClassified:
    """Tag every point of ``partition`` with classifier ``name`` (payload ``class_<name>``,
    ``class_<name>_score``, ``class_<name>_version``). Rerunning rewrites the same values."""
    model, version = load_classifier(layout, name, train_step=train_step)
    field_class, field_score, field_version = class_fields(name)
    with open_store() as store:
        dimension = store.dimension()
        if dimension is not None and dimension != model.dimension_:
            raise EmbedMapInputError(
                f"classifier {name!r} was trained on {model.dimension_}-d vectors and the map's are {dimension}-d: "
                f"the map's model changed since; materialize {train_step} again")
        changed = _models(layout, [partition]) - model.models_ if model.models_ else set()
        if changed:
            raise EmbedMapInputError(
                f"partition {partition!r}: its vectors come from {sorted(changed)}, and classifier {name!r} was trained "
                f"on vectors of {sorted(model.models_)}: the map's model changed since",
                fix=f"materialize {train_step} again",
                cli_fix=f"run `embedmap classify --classifier {name}` again with its labels, to train it on these vectors")
        ids, vectors, _ = store.read_vectors(partition, with_payload=False)
        if not ids:
            return PartitionClassified(partition, 0, {}, 0.0)
        proba = model.predict_proba(vectors)
        labels, score = model.decide(proba)
        if model.settings.multi_label:
            values = [list(v) for v in labels]
        else:
            values = labels
        store.set_payloads({pid: {field_class: value, field_score: round(float(s), 4), field_version: version}
                            for pid, value, s in zip(ids, values, score)})
    counts: dict[str, int] = {}
    for value in labels:
        for c in (value if model.settings.multi_label else [value]) or [None]:
            counts[c or ""] = counts.get(c or "", 0) + 1
    return PartitionClassified(partition, len(ids), dict(sorted(counts.items())), float(np.mean(score)))


def uncertain_records(open_store: StoreOpener, layout: MapLayout, map_name: str, name: str, k: int, *,
                      train_step: str, labelled: set[str] | None = None, sample: int = 50_000) -> pl.DataFrame:
    """The ``k`` records classifier ``name`` is least sure about, spread over the map, least sure first
    (records already ``labelled`` left out): ``id``, ``partition``, ``class`` (its best guess), ``score``,
    ``margin``, ``x``, ``y``, ``text``. Points not yet placed are left out; on a map of more than
    ``sample`` placed points, a seeded sample of that many is scored (the vectors read are bounded)."""
    model, _ = load_classifier(layout, name, train_step=train_step)
    schema = {"id": pl.String, "partition": pl.String, "class": pl.String, "score": pl.Float64,
              "margin": pl.Float64, "x": pl.Float64, "y": pl.Float64, "text": pl.String}
    with open_store() as store:
        points = [(r.id, r.payload) for r in store.scroll(with_payload=["record_id", "x", "y"])]
        points = [(pid, p) for pid, p in points if p.get("x") is not None and p.get("y") is not None
                  and str(p.get("record_id")) not in (labelled or set())]
        if len(points) > sample:
            keep = np.sort(np.random.default_rng(0).choice(len(points), sample, replace=False))
            points = [points[i] for i in keep]
        found = store.vectors_of([pid for pid, _ in points])
        points = [(pid, p) for pid, p in points if pid in found]
        if not points:
            return pl.DataFrame(schema=schema)
        proba = model.predict_proba(np.stack([found[pid] for pid, _ in points]))
        payloads = [p for _, p in points]
        xy = np.array([[p["x"], p["y"]] for p in payloads], dtype=np.float64)
        picked = least_certain(proba, xy, k, multi_label=model.settings.multi_label)
        shown = store.payloads_of([points[i][0] for i in picked], ["partition", "text"])  # only the k listed
    for i in picked:
        payloads[i] = {**payloads[i], **shown.get(points[i][0], {})}
    m = margins(proba, model.settings.multi_label)
    best = proba.argmax(axis=1)
    return pl.DataFrame({
        "id": [str(payloads[i].get("record_id")) for i in picked],
        "partition": [str(payloads[i].get("partition")) for i in picked],
        "class": [model.classes_[best[i]] for i in picked],
        "score": [float(proba[i].max()) for i in picked],
        "margin": [float(m[i]) for i in picked],
        "x": [float(xy[i, 0]) for i in picked], "y": [float(xy[i, 1]) for i in picked],
        "text": [str(payloads[i].get("text") or "") for i in picked],
    }, schema=schema)
