"""A map's custom classifiers as assets: per classifier, a global ``<prefix>/classifier_<name>`` that
trains on the labelled records' stored vectors (and/or the class descriptions, embedded by the map's
model), and a per-partition ``<prefix>/classes_<name>`` that tags the partition's points in Qdrant.

The classifier's data version is its version (a hash of what it learned), so a changed labels file
that changes the classifier marks every partition's classes stale, while a new partition is tagged by
the classifier as it is. The classifier trains when asked (materialize it after changing the labels);
the classes follow their partition's collection step and the classifier by declarative automation,
and the map (which depends on them) is drawn again once they change.
"""


from typing import Sequence

import dagster as dg

from ..core.classify import ClassifierSpec
from ..steps.classify import (
    classify_partition, examples_frame, examples_from_column, read_examples, train_classifier, uncertain_records,
)
from .bodies import MapContext, each_partition
from .keys import MAP_TAG, STEP_TAG, TRAINED_BY_TAG
from .metadata import md_table

__all__ = ["classifier_keys", "classifier_assets", "classes_keys", "classes_of"]

#: how many of the least sure records the classifier's metadata lists for the next labelling round
LABEL_NEXT = 20


def classifier_keys(ctx: MapContext, name: str) -> tuple[dg.AssetKey, dg.AssetKey]:
    """The keys of classifier ``name``: its training asset and its per-partition classes, beside the map's."""
    prefix = ctx.keys.map.path[:-1]
    return dg.AssetKey([*prefix, f"classifier_{name}"]), dg.AssetKey([*prefix, f"classes_{name}"])


def classes_of(ctx: MapContext, specs: Sequence[ClassifierSpec]) -> list[dg.AssetKey]:
    """The per-partition classes keys of the classifiers ``specs`` (what the map depends on)."""
    return [classifier_keys(ctx, spec.name)[1] for spec in specs]


def classifier_assets(ctx: MapContext, specs: Sequence[ClassifierSpec], group: str) -> list[dg.AssetsDefinition]:
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"map {ctx.name!r} declares classifier(s) {twice} more than once: give each its own name")
    out: list[dg.AssetsDefinition] = []
    for spec in specs:
        out += _assets_of(ctx, spec, group)
    return out


def classes_keys(assets, map_key: dg.AssetKey) -> dict[dg.AssetKey, dg.AssetKey]:
    """Of ``assets``, the classes assets of the map whose map asset is ``map_key``: {classes key: the key
    of the classifier asset that trains it}."""
    name = None
    for asset in assets:
        if isinstance(asset, dg.AssetsDefinition) and map_key in asset.keys:
            name = (asset.specs_by_key[map_key].metadata or {}).get(MAP_TAG)
    found: dict[dg.AssetKey, dg.AssetKey] = {}
    for asset in assets:
        if not isinstance(asset, dg.AssetsDefinition):
            continue
        for key, spec in asset.specs_by_key.items():
            meta = spec.metadata or {}
            if name is not None and meta.get(MAP_TAG) == name and meta.get(STEP_TAG) == "classes":
                found[key] = dg.AssetKey.from_user_string(meta[TRAINED_BY_TAG])
    return found


def _assets_of(ctx: MapContext, spec: ClassifierSpec, group: str) -> list[dg.AssetsDefinition]:
    train_key, classes_key = classifier_keys(ctx, spec.name)
    resources = {ctx.qdrant_key} | ({ctx.embedder_key} if spec.descriptions else set())
    checks = ([dg.AssetCheckSpec("cross_validated_macro_f1", asset=train_key,
                                 description=f"The cross-validated macro-F1 is at least {spec.min_macro_f1}.")]
              if spec.min_macro_f1 is not None else [])
    signal = (f"the labels in {spec.examples}" if spec.examples else
              f"the labels of the records' {spec.label_column!r} column" if spec.label_column else
              f"the labels of asset {spec.examples_asset}" if spec.examples_asset else "")
    if spec.descriptions:
        signal += (" and " if signal else "") + f"descriptions of {len(spec.descriptions)} classes"
    tags = {MAP_TAG: ctx.name}

    trains = dict(key=train_key, group_name=group, deps=[ctx.keys.collection], kinds={"scikit-learn"},
                  required_resource_keys=resources, check_specs=checks, metadata={**tags, STEP_TAG: "classifier"},
                  description=f"Classifier {spec.name!r} of map {ctx.name!r}, trained on {signal}: logistic "
                              "regression on the records' stored vectors, cross-validated. Materialize it again after "
                              "the labels change; its classes then follow.")
    if spec.examples_asset:  # the labels are a user asset: loaded through its IO manager, upstream in the lineage

        @dg.asset(ins={"labels": dg.AssetIn(key=dg.AssetKey.from_user_string(spec.examples_asset))}, **trains)
        def train(context: dg.AssetExecutionContext, labels) -> dg.MaterializeResult:
            return _train(ctx, context, spec, labels)

    else:

        @dg.asset(**trains)
        def train(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            return _train(ctx, context, spec)

    @dg.asset(key=classes_key, group_name=group, deps=[train_key, ctx.keys.collection], kinds={"qdrant"},
              partitions_def=ctx.pdef, required_resource_keys={ctx.qdrant_key},
              metadata={**tags, STEP_TAG: "classes", TRAINED_BY_TAG: train_key.to_user_string()},
              automation_condition=dg.AutomationCondition.eager(),
              description=f"The partition's points tagged by classifier {spec.name!r}: payload class_{spec.name} "
                          f"(none when unsure), class_{spec.name}_score. Cost in proportion to the partition.")
    def classes(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return each_partition(context, lambda p: _classes(ctx, context, spec, p, train_key))

    return [train, classes]


def _train(ctx: MapContext, context: dg.AssetExecutionContext, spec: ClassifierSpec,
           labels=None) -> dg.MaterializeResult:
    examples = None
    multi = spec.settings.multi_label
    if spec.examples_asset:
        examples = examples_frame(labels, f"asset {spec.examples_asset}", multi_label=multi)
    elif spec.examples:
        examples = read_examples(spec.examples, multi_label=multi)
    elif spec.label_column:
        examples = examples_from_column(ctx.layout, ctx.partition_keys(context), spec.label_column, multi_label=multi)
    descriptions = None
    if spec.descriptions:
        classes = sorted(spec.descriptions)
        encoder = ctx.embedder(context).get_encoder()
        descriptions = dict(zip(classes, encoder.encode([spec.descriptions[c] for c in classes])))
    trained = train_classifier(ctx.store(context), ctx.layout, ctx.name, spec.name, examples=examples,
                               descriptions=descriptions, settings=spec.settings, log=context.log)
    train_key = classifier_keys(ctx, spec.name)[0].to_user_string()
    nxt = uncertain_records(ctx.store(context, read_only=True), ctx.layout, ctx.name, spec.name, LABEL_NEXT,
                            train_step=train_key, labelled=set(examples["id"]) if examples is not None else None)
    meta: dict[str, object] = {
        "version": trained.version, "mode": trained.mode, "classes": dg.MetadataValue.json(trained.classes),
        "examples": trained.examples, "unknown_ids": len(trained.unknown_ids), "seconds": round(trained.seconds, 2),
        "label_next": dg.MetadataValue.md(md_table(
            ["id", "partition", "best guess", "score", "text"],
            zip(nxt["id"], nxt["partition"], nxt["class"], [f"{v:.2f}" for v in nxt["score"]], nxt["text"]),
            max_chars=80)),
    }
    if trained.unknown_ids:
        meta["unknown_ids_sample"] = dg.MetadataValue.json(trained.unknown_ids[:20])
    v = trained.validation
    if v is not None:
        meta.update({"cv_accuracy": round(v.accuracy, 4), "cv_macro_f1": round(v.macro_f1, 4), "cv_folds": v.folds,
                     "cv_covered": round(v.covered, 4),
                     "per_class": dg.MetadataValue.md(md_table(
                         ["class", "precision", "recall", "f1", "support"],
                         [(r["class"], r["precision"], r["recall"], r["f1"], r["support"]) for r in v.per_class]))})
    checks = []
    if spec.min_macro_f1 is not None:
        passed = v is not None and v.macro_f1 >= spec.min_macro_f1
        checks.append(dg.AssetCheckResult(
            check_name="cross_validated_macro_f1", passed=passed,
            metadata={"macro_f1": round(v.macro_f1, 4) if v else -1.0, "floor": spec.min_macro_f1},
            description=None if passed else (
                f"cross-validated macro-F1 {v.macro_f1:.3f} is under the floor {spec.min_macro_f1}: label more "
                f"records (see label_next)" if v else "the classifier could not be cross-validated "
                "(a class with one example, or multi-label): label more records")))
    return dg.MaterializeResult(metadata=meta, data_version=dg.DataVersion(trained.version), check_results=checks)


def _classes(ctx: MapContext, context: dg.AssetExecutionContext, spec: ClassifierSpec, partition: str,
             train_key: dg.AssetKey) -> dg.MaterializeResult:
    done = classify_partition(ctx.store(context), ctx.layout, spec.name, partition,
                              train_step=train_key.to_user_string())
    counts = {("(unsure)" if k == "" else k): v for k, v in done.counts.items()}
    return dg.MaterializeResult(metadata={
        "dagster/row_count": done.points, "mean_score": round(done.mean_score, 4),
        "unsure": done.counts.get("", 0),
        "per_class": dg.MetadataValue.md(md_table(["class", "points"], sorted(counts.items()))),
    })
