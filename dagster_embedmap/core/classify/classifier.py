"""A semantic classifier over a map's own vectors, trained on a few labelled records, on class
descriptions in words, or on both.

- Examples only: multinomial logistic regression (scikit-learn) on the L2-normalised vectors.
- Descriptions only (zero-shot): each class is its description's vector; a record's scores are the
  softmax of its cosine similarities to them, sharpened by ``temperature``.
- Both: each description joins the training rows as an example of its class weighing
  ``prior_weight`` records, so a class with few or no examples still has its prior, and examples refine it.

A record whose best score is under ``threshold`` is predicted as no class (``None``: uncertain).
With ``multi_label`` each class is its own one-vs-rest logistic regression and a record takes every
class whose score reaches the threshold (examples are then sets of labels; descriptions are priors).

numpy in and out; the vectors are whatever the map's model made (any dimension, normalised here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import EmbedMapInputError

__all__ = ["ClassifierSettings", "ClassifierSpec", "CrossValidation", "SemanticClassifier", "check_classifier_name"]


@dataclass(frozen=True)
class ClassifierSettings:
    """How a classifier trains and when it abstains."""

    threshold: float = 0.5
    """A record whose best class scores under this is predicted as no class (uncertain)."""
    C: float = 2.0
    """Inverse regularisation of the logistic regression (the vectors are unit length). 2 was within 0.4
    points of scikit-learn's default (1) at 5 labelled records per class and above it at 10 and 20, on
    the demo corpus (``benchmarks/classify.py``); 10 was 1.3 points under at 5 per class."""
    prior_weight: float = 3.0
    """With examples, a class description counts as this many labelled records of its class."""
    temperature: float = 0.05
    """Zero-shot: the softmax over cosine similarities is taken of ``cos / temperature``."""
    multi_label: bool = False
    """One-vs-rest: a record takes every class scoring at least ``threshold`` (examples are label sets)."""
    folds: int = 5
    """Cross-validation folds (fewer when the rarest class has fewer examples)."""
    calibrate: bool = True
    """Scale the scores (one temperature, fitted on held-out folds of the examples) so a score of 0.8 is
    right about 80% of the time; logistic regression on a few examples is far less sure than it is
    right (mean best score 0.18 at 62% accuracy, 5 labelled per class, demo corpus), which would leave
    every record under the threshold. Single-label, every class with two examples or more."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"ClassifierSettings: threshold must be within [0, 1], not {self.threshold}")
        for name in ("C", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ClassifierSettings: {name} must be above 0, not {getattr(self, name)}")
        if self.prior_weight < 0:
            raise ValueError(f"ClassifierSettings: prior_weight must be 0 or more, not {self.prior_weight}")
        if self.folds < 2:
            raise ValueError(f"ClassifierSettings: folds must be 2 or more, not {self.folds}")


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_classifier_name(name: str) -> None:
    """A classifier's name names its assets and payload fields: refuse any other than 1-40 lower-case
    letters, digits and '_', starting with a letter."""
    if not _NAME.match(name or ""):
        raise EmbedMapInputError(f"classifier name {name!r}: use 1-40 lower-case letters, digits and '_', starting "
                                 f"with a letter (it names the assets classifier_<name> and classes_<name> and the "
                                 f"payload fields class_<name> and class_<name>_score)")


@dataclass(frozen=True)
class ClassifierSpec:
    """One classifier of a map: its name and its training signal, any of labelled examples (a labels
    file of ``id, label``, or a metadata column of the records themselves) and class descriptions in
    words (zero-shot; with examples, priors). ``min_macro_f1``: a check fails when the cross-validated
    macro-F1 falls under it."""

    name: str
    examples: str | None = None
    """A parquet, CSV or JSONL file with columns ``id`` (record ids of the map) and ``label``."""
    label_column: str | None = None
    """A metadata column of the records whose non-empty values are labels (instead of ``examples``)."""
    examples_asset: str | None = None
    """The key (``"a/b"``) of a user asset whose value is a table of ``id`` and ``label`` (instead of
    ``examples``): the classifier loads it through the asset's IO manager and sits below it in the lineage."""
    descriptions: Mapping[str, str] = field(default_factory=dict)
    """``{class: a description in words}``, embedded by the map's model."""
    settings: ClassifierSettings = field(default_factory=ClassifierSettings)
    min_macro_f1: float | None = None

    def __post_init__(self) -> None:
        check_classifier_name(self.name)
        given = [n for n in ("examples", "label_column", "examples_asset") if getattr(self, n)]
        if len(given) > 1:
            raise ValueError(f"classifier {self.name!r}: give one of examples (a labels file), label_column and "
                             f"examples_asset, not {' and '.join(given)}")
        if not (given or self.descriptions):
            raise ValueError(f"classifier {self.name!r}: give examples (a labels file of id, label), a label_column "
                             f"of the records, descriptions {{class: words}}, or descriptions with either")
        if self.min_macro_f1 is not None and not 0 <= self.min_macro_f1 <= 1:
            raise ValueError(f"classifier {self.name!r}: min_macro_f1 must be within [0, 1], not {self.min_macro_f1}")


@dataclass
class CrossValidation:
    """Scores of a classifier on held-out folds of its own examples (every example predicted once, by
    a classifier that did not see it). ``per_class`` rows: class, precision, recall, f1, support."""

    accuracy: float
    macro_f1: float
    folds: int
    covered: float
    """The share of held-out records given a class (best score at least the threshold)."""
    accuracy_covered: float
    """Accuracy on those records alone."""
    per_class: list[dict] = field(default_factory=list)

    def to_metadata(self) -> dict:
        return {"accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4), "folds": self.folds,
                "covered": round(self.covered, 4), "accuracy_covered": round(self.accuracy_covered, 4)}


def _unit(vectors) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"the vectors must be a 2-D array (records x dimensions), not of shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


#: below this many labelled rows a fit runs on one BLAS thread: its matrices are tiny, and OpenBLAS's
#: threads cost more than they do (220 x 384, 11 classes: 8 ms a fit on one thread, 169 ms on two)
_ONE_THREAD_BELOW = 20_000


def _logistic(X: np.ndarray, y, w: np.ndarray, *, C: float, seed: int):
    """scikit-learn's logistic regression fitted on ``X``, ``y`` with sample weights ``w``."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    model = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    if len(X) >= _ONE_THREAD_BELOW:
        return model.fit(X, y, sample_weight=w)
    with threadpool_limits(limits=1, user_api="blas"):
        return model.fit(X, y, sample_weight=w)


class SemanticClassifier:
    """``fit`` on labelled vectors and/or class descriptions' vectors, then ``predict_proba`` /
    ``predict`` any records' vectors. Fitted attributes: ``classes_`` (sorted), ``mode_``
    (``"examples"``, ``"descriptions"`` or ``"both"``), ``dimension_``, and the linear model every mode
    comes down to, ``coef_`` (classes x dimension) and ``intercept_``."""

    def __init__(self, settings: ClassifierSettings | None = None) -> None:
        self.settings = settings or ClassifierSettings()

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, vectors=None, labels: Sequence | None = None,
            descriptions: Mapping[str, np.ndarray] | None = None) -> "SemanticClassifier":
        """``vectors`` (n x d) with ``labels`` (n class names; with ``multi_label``, n sets of them) and/or
        ``descriptions`` ({class name: its description's d-vector})."""
        s = self.settings
        descriptions = {str(k): np.asarray(v, dtype=np.float32).ravel() for k, v in (descriptions or {}).items()}
        has_examples = vectors is not None and labels is not None and len(labels) > 0
        if not has_examples and not descriptions:
            raise ValueError("a classifier needs labelled examples, class descriptions, or both")
        if has_examples:
            x = _unit(vectors)
            if len(x) != len(labels):
                raise ValueError(f"{len(x)} vectors but {len(labels)} labels: give one label per labelled record")
            sets = [self._label_set(v) for v in labels]
            classes = sorted({c for ls in sets for c in ls} | set(descriptions))
            self.dimension_ = x.shape[1]
        else:
            classes = sorted(descriptions)
            self.dimension_ = len(next(iter(descriptions.values())))
        if len(classes) < 2:
            raise ValueError(f"a classifier needs at least two classes; it has {classes}")
        bad = [c for c, v in descriptions.items() if len(v) != self.dimension_]
        if bad:
            raise ValueError(f"the descriptions of {bad} have another dimension than the vectors "
                             f"({self.dimension_}); embed them with the map's own model")
        self.classes_ = classes
        self.mode_ = "both" if has_examples and descriptions else "examples" if has_examples else "descriptions"
        if self.mode_ == "descriptions":
            if s.multi_label:
                raise ValueError("a multi-label classifier needs labelled examples; descriptions alone are "
                                 "one class per record (set multi_label=False)")
            # softmax of cos / temperature: a linear model whose rows are the unit descriptions
            self.coef_ = _unit(np.stack([descriptions[c] for c in classes])) / s.temperature
            self.intercept_ = np.zeros(len(classes), dtype=np.float32)
            return self
        rows, weights = [x], [np.ones(len(x), dtype=np.float64)]
        targets = list(sets)
        if descriptions:
            names = sorted(descriptions)
            rows.append(_unit(np.stack([descriptions[c] for c in names])))
            weights.append(np.full(len(names), s.prior_weight if s.prior_weight > 0 else 1e-9))
            targets += [(c,) for c in names]
        X, w = np.concatenate(rows), np.concatenate(weights)
        if s.multi_label:  # one binary model per class: sigmoid(x . coef_[c] + intercept_[c])
            pairs = [self._binary(X, np.array([c in t for t in targets]), w) for c in classes]
            self.coef_ = np.stack([p[0] for p in pairs]).astype(np.float32)
            self.intercept_ = np.array([p[1] for p in pairs], dtype=np.float32)
            return self
        model = _logistic(X, [t[0] for t in targets], w, C=s.C, seed=s.seed)
        coef, intercept = model.coef_, model.intercept_
        if len(model.classes_) == 2:  # sklearn's binary form, sigmoid(z), is the softmax of (0, z)
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        order = [list(model.classes_).index(c) for c in classes]
        self.temperature_ = self._temperature(x, [t[0] for t in sets], descriptions) if s.calibrate else 1.0
        self.coef_ = (coef[order] / self.temperature_).astype(np.float32)
        self.intercept_ = (intercept[order] / self.temperature_).astype(np.float32)
        return self

    def _temperature(self, x: np.ndarray, labels: list[str], descriptions: Mapping[str, np.ndarray]) -> float:
        """The temperature that makes held-out scores honest: the scalar ``T`` minimising the log loss of
        ``softmax(z / T)`` over out-of-fold logits ``z``; 1 when a class has fewer than two examples."""
        from collections import Counter
        from dataclasses import replace

        from sklearn.model_selection import StratifiedKFold

        counts = Counter(labels)
        if len(counts) < 2 or min(counts.values()) < 2:
            return 1.0
        y = np.array(labels)
        plain = replace(self.settings, calibrate=False)
        logits, truth = [], []
        split = StratifiedKFold(n_splits=int(min(self.settings.folds, min(counts.values()))), shuffle=True,
                                random_state=self.settings.seed)
        for train, test in split.split(x, y):
            fold = SemanticClassifier(plain).fit(x[train], list(y[train]), descriptions)
            logits.append(x[test].astype(np.float64) @ fold.coef_.T.astype(np.float64) + fold.intercept_)
            truth.append([fold.classes_.index(c) for c in y[test]])
        z, t = np.concatenate(logits), np.concatenate(truth)

        def loss(temperature: float) -> float:
            a = z / temperature
            a = a - a.max(axis=1, keepdims=True)
            return float((np.log(np.exp(a).sum(axis=1)) - a[np.arange(len(t)), t]).mean())

        grid = np.geomspace(0.02, 50.0, 241)
        return float(grid[int(np.argmin([loss(g) for g in grid]))])

    def _label_set(self, value) -> tuple[str, ...]:
        if self.settings.multi_label:
            if isinstance(value, str) or not isinstance(value, Iterable):
                return (str(value),)
            return tuple(sorted({str(v) for v in value}))
        if not isinstance(value, str) and isinstance(value, Iterable):
            raise ValueError(f"label {value!r} is a collection: one class per record, or set multi_label=True")
        return (str(value),)

    def _binary(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
        if y.all() or not y.any():  # a class every (or no) example has: a constant score
            return np.zeros(X.shape[1]), 30.0 if y.all() else -30.0
        model = _logistic(X, y, w, C=self.settings.C, seed=self.settings.seed)
        return model.coef_[0], float(model.intercept_[0])

    # -- predicting ------------------------------------------------------------------------------
    def predict_proba(self, vectors) -> np.ndarray:
        """Scores (n x classes, in ``classes_`` order): probabilities summing to 1, or with
        ``multi_label`` each class's own probability."""
        x = _unit(vectors)
        if x.shape[1] != self.dimension_:
            raise ValueError(f"the vectors have {x.shape[1]} dimensions; the classifier was trained on "
                             f"{self.dimension_}: the map's model changed since, so train it again")
        z = x.astype(np.float64) @ self.coef_.T.astype(np.float64) + self.intercept_
        if self.settings.multi_label:
            return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    # -- saving ----------------------------------------------------------------------------------
    def to_state(self) -> dict[str, np.ndarray]:
        """The fitted classifier as plain arrays (for ``np.savez``; no pickle): every mode is a
        linear model, softmax (one class per record) or sigmoid (multi-label) of ``x . coef_ + intercept_``."""
        import json
        from dataclasses import asdict

        return {"classes": np.array(self.classes_, dtype=str), "coef": self.coef_, "intercept": self.intercept_,
                "meta": np.array(json.dumps({"mode": self.mode_, "dimension": int(self.dimension_),
                                             "settings": asdict(self.settings)}))}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> "SemanticClassifier":
        """The classifier :meth:`to_state` saved."""
        import json

        meta = json.loads(str(state["meta"]))
        clf = cls(ClassifierSettings(**meta["settings"]))
        clf.classes_ = [str(c) for c in state["classes"]]
        clf.coef_ = np.asarray(state["coef"], dtype=np.float32)
        clf.intercept_ = np.asarray(state["intercept"], dtype=np.float32)
        clf.mode_, clf.dimension_ = meta["mode"], int(meta["dimension"])
        if clf.coef_.shape != (len(clf.classes_), clf.dimension_) or clf.intercept_.shape != (len(clf.classes_),):
            raise ValueError("the saved classifier's arrays do not agree with its classes and dimension")
        return clf

    def predict(self, vectors) -> tuple[list, np.ndarray]:
        """Each record's class (``None`` when its best score is under the threshold; with
        ``multi_label``, the tuple of classes reaching it) and its score (the best class's)."""
        p = self.predict_proba(vectors)
        return self.decide(p)

    def decide(self, proba: np.ndarray) -> tuple[list, np.ndarray]:
        """:meth:`predict` from scores already computed."""
        t = self.settings.threshold
        best = proba.max(axis=1) if len(proba) else np.zeros(0, dtype=np.float32)
        if self.settings.multi_label:
            return [tuple(c for c, v in zip(self.classes_, row) if v >= t) for row in proba], best
        top = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=int)
        return [self.classes_[i] if b >= t else None for i, b in zip(top, best)], best

    # -- judging ---------------------------------------------------------------------------------
    def cross_validate(self, vectors, labels: Sequence,
                       descriptions: Mapping[str, np.ndarray] | None = None) -> CrossValidation:
        """Stratified k-fold scores of this classifier's settings on its own examples (the descriptions,
        if any, in every fold's training). Needs two examples of every class; single-label only."""
        from sklearn.metrics import f1_score, precision_recall_fscore_support
        from sklearn.model_selection import StratifiedKFold

        if self.settings.multi_label:
            raise ValueError("cross_validate scores single-label classifiers")
        y = np.array([str(v) for v in labels])
        names, counts = np.unique(y, return_counts=True)
        thin = [f"{str(c)!r} ({k})" for c, k in zip(names, counts) if k < 2]
        if thin:
            raise ValueError(f"every class needs at least two examples to be cross-validated; "
                             f"{', '.join(thin)} has fewer: label more records of it")
        folds = int(min(self.settings.folds, counts.min()))
        x = _unit(vectors)
        predicted = np.empty(len(y), dtype=object)
        best = np.zeros(len(y), dtype=np.float32)
        split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.settings.seed)
        for train, test in split.split(x, y):
            fold = SemanticClassifier(self.settings).fit(x[train], list(y[train]), descriptions)
            p = fold.predict_proba(x[test])
            predicted[test] = [fold.classes_[i] for i in p.argmax(axis=1)]
            best[test] = p.max(axis=1)
        predicted = predicted.astype(str)
        covered = best >= self.settings.threshold
        classes = sorted(set(names))
        prec, rec, f1, sup = precision_recall_fscore_support(y, predicted, labels=classes, zero_division=0)
        return CrossValidation(
            accuracy=float((predicted == y).mean()),
            macro_f1=float(f1_score(y, predicted, labels=classes, average="macro", zero_division=0)),
            folds=folds, covered=float(covered.mean()),
            accuracy_covered=float((predicted[covered] == y[covered]).mean()) if covered.any() else 0.0,
            per_class=[{"class": c, "precision": round(float(a), 4), "recall": round(float(b), 4),
                        "f1": round(float(f), 4), "support": int(n)}
                       for c, a, b, f, n in zip(classes, prec, rec, f1, sup)],
        )
