"""The semantic classifier core alone (no model, no Qdrant): synthetic vectors with planted classes."""

from __future__ import annotations

import numpy as np
import pytest

from dagster_embedmap.core.classify import ClassifierSettings, SemanticClassifier, least_certain, margins

DIM = 24
CLASSES = ["billing", "login", "shipping"]


def planted(n_per: int = 40, seed: int = 0, spread: float = 0.6):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(len(CLASSES), DIM))
    labels = np.repeat(CLASSES, n_per)
    vectors = centres[np.repeat(np.arange(len(CLASSES)), n_per)] + rng.normal(scale=spread, size=(len(labels), DIM))
    return vectors.astype(np.float32), list(labels), dict(zip(CLASSES, centres.astype(np.float32)))


def test_a_few_examples_classify_the_rest():
    x, y, _ = planted()
    test_x, test_y, _ = planted(seed=1)
    clf = SemanticClassifier().fit(x[::8], y[::8])  # 5 examples per class
    assert clf.classes_ == CLASSES and clf.mode_ == "examples" and clf.dimension_ == DIM
    labels, score = clf.predict(test_x)
    assert np.mean([a == b for a, b in zip(labels, test_y)]) > 0.95
    assert score.shape == (len(test_y),) and np.all((score > 0) & (score <= 1))
    p = clf.predict_proba(test_x)
    assert p.shape == (len(test_y), 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)


def test_below_the_threshold_a_record_gets_no_class():
    x, y, centres = planted()
    clf = SemanticClassifier(ClassifierSettings(threshold=0.9, calibrate=False)).fit(x, y)
    between = (centres["billing"] + centres["login"]) / 2  # as near one class as the other
    labels, score = clf.predict(np.stack([between, centres["shipping"]]))
    assert labels[0] is None and score[0] < 0.9
    assert labels[1] == "shipping" and score[1] >= 0.9


def test_calibrated_scores_are_as_sure_as_they_are_right():
    x, y, _ = planted(n_per=300, spread=2.0)  # classes that overlap: about 1 in 4 wrong
    train = np.arange(len(y)) % 60 == 0  # 5 labelled per class
    rest = ~train
    calibrated = SemanticClassifier().fit(x[train], [y[i] for i in np.flatnonzero(train)])
    raw = SemanticClassifier(ClassifierSettings(calibrate=False)).fit(x[train], [y[i] for i in np.flatnonzero(train)])
    truth = np.array(y)[rest]
    for clf in (calibrated, raw):
        p = clf.predict_proba(x[rest])
        clf.accuracy = float((np.array(clf.classes_)[p.argmax(axis=1)] == truth).mean())
        clf.confidence = float(p.max(axis=1).mean())
    assert 0.5 < calibrated.accuracy < 0.95 and abs(calibrated.confidence - calibrated.accuracy) < 0.12
    assert raw.confidence < raw.accuracy - 0.15  # a few examples alone: far less sure than right
    assert calibrated.accuracy == raw.accuracy and calibrated.temperature_ < 1  # one temperature: same ranking


def test_descriptions_alone_classify_zero_shot():
    x, y, centres = planted()
    clf = SemanticClassifier().fit(descriptions=centres)
    assert clf.mode_ == "descriptions"
    labels, _ = clf.predict(x)
    assert np.mean([a == b for a, b in zip(labels, y)]) > 0.95


def test_a_class_with_a_description_and_no_example_is_still_predicted():
    x, y, centres = planted()
    keep = [i for i, label in enumerate(y) if label != "shipping"]
    clf = SemanticClassifier().fit(x[keep], [y[i] for i in keep], {"shipping": centres["shipping"]})
    assert clf.mode_ == "both" and clf.classes_ == CLASSES
    labels, _ = clf.predict(x[[i for i, label in enumerate(y) if label == "shipping"]])
    assert np.mean([a == "shipping" for a in labels]) > 0.7  # 0.80 at C=2 (0.9+ at C=10): the prior weighs 3 records


def test_multi_label_gives_every_class_that_reaches_the_threshold():
    x, y, centres = planted()
    sets = [{label, "urgent"} if i % 2 else {label} for i, label in enumerate(y)]
    # "urgent" records lean one way: shift them so the class is learnable
    x = x.copy()
    x[1::2] += 2.5 * np.eye(DIM, dtype=np.float32)[0]
    clf = SemanticClassifier(ClassifierSettings(multi_label=True)).fit(x, sets)
    assert clf.classes_ == sorted(CLASSES + ["urgent"])
    labels, _ = clf.predict(x)
    right = np.mean([set(a) == s for a, s in zip(labels, sets)])
    assert right > 0.9, right
    p = clf.predict_proba(x)
    assert p.shape == (len(y), 4) and not np.allclose(p.sum(axis=1), 1)  # one-vs-rest scores
    with pytest.raises(ValueError, match="multi-label classifier needs labelled examples"):
        SemanticClassifier(ClassifierSettings(multi_label=True)).fit(descriptions=centres)


def test_cross_validation_scores_held_out_folds_and_names_each_class():
    x, y, centres = planted(spread=1.4)
    clf = SemanticClassifier()
    report = clf.cross_validate(x, y)
    assert report.folds == 5 and 0.8 < report.accuracy <= 1.0 and 0.8 < report.macro_f1 <= 1.0
    assert [r["class"] for r in report.per_class] == CLASSES and sum(r["support"] for r in report.per_class) == len(y)
    assert 0 < report.covered <= 1 and 0 < report.accuracy_covered <= 1
    assert set(report.to_metadata()) == {"accuracy", "macro_f1", "folds", "covered", "accuracy_covered"}
    # held out means held out: a classifier scored on its own training rows would be perfect here
    noisy = planted(spread=4.0)
    assert SemanticClassifier().cross_validate(noisy[0], noisy[1]).accuracy < 0.95
    # the rarest class sets the number of folds
    assert clf.cross_validate(x[:83], y[:83]).folds == 3


def test_bad_input_is_named():
    x, y, centres = planted()
    with pytest.raises(ValueError, match="needs labelled examples, class descriptions, or both"):
        SemanticClassifier().fit()
    with pytest.raises(ValueError, match="at least two classes"):
        SemanticClassifier().fit(x[:5], ["billing"] * 5)
    with pytest.raises(ValueError, match="10 vectors but 9 labels"):
        SemanticClassifier().fit(x[:10], y[:9])
    with pytest.raises(ValueError, match="another dimension than the vectors"):
        SemanticClassifier().fit(x, y, {"billing": np.ones(DIM + 1)})
    with pytest.raises(ValueError, match="is a collection"):
        SemanticClassifier().fit(x[:2], [("billing", "login"), "login"])
    clf = SemanticClassifier().fit(x, y)
    with pytest.raises(ValueError, match="model changed since, so train it again"):
        clf.predict(np.ones((2, DIM + 4)))
    with pytest.raises(ValueError, match=r"'shipping' \(1\) has fewer: label more records of it"):
        clf.cross_validate(x[:81], y[:81])
    with pytest.raises(ValueError, match="threshold must be within"):
        ClassifierSettings(threshold=1.5)
    with pytest.raises(ValueError, match="folds must be 2 or more"):
        ClassifierSettings(folds=1)


def test_the_least_certain_records_come_first_and_spread_over_the_map():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10, size=(400, 2))
    proba = np.full((400, 2), 0.0)
    proba[:, 0] = 0.99
    # a fuzzy border in one corner: 50 near-coin-tosses crowded together, and 4 elsewhere a little less unsure
    crowd = np.arange(50)
    xy[crowd] = 0.5 + rng.uniform(0, 0.3, size=(50, 2))
    proba[crowd, 0] = 0.5 + 0.001 * np.arange(50)
    far = np.array([100, 200, 300, 399])
    xy[far] = [[9, 9], [9, 1], [1, 9], [5, 5]]
    proba[far, 0] = 0.6
    proba[:, 1] = 1 - proba[:, 0]
    assert np.allclose(margins(proba)[crowd[:3]], [0.0, 0.002, 0.004])
    picked = least_certain(proba, xy, 5)
    assert picked[0] == 0  # the least sure of all
    assert set(far) <= set(picked.tolist())  # one from the crowd, then the rest of the map
    # labelled records are left out; with fewer cells than k, the least sure of the rest fill up
    again = least_certain(proba, xy, 5, exclude=np.isin(np.arange(400), [0]))
    assert 0 not in again and again[0] == 1
    assert len(least_certain(proba[:50], xy[:50], 10)) == 10
    assert len(least_certain(proba, xy, 0)) == 0
    with pytest.raises(ValueError, match="one \\(x, y\\) per record"):
        least_certain(proba, xy[:10], 3)


@pytest.mark.parametrize("mode", ["examples", "descriptions", "both", "multi-label", "two classes"])
def test_a_saved_classifier_predicts_as_the_fitted_one(tmp_path, mode):
    x, y, centres = planted()
    settings = ClassifierSettings(multi_label=mode == "multi-label", threshold=0.6, calibrate=mode != "two classes")
    if mode == "examples":
        clf = SemanticClassifier(settings).fit(x, y)
    elif mode == "descriptions":
        clf = SemanticClassifier(settings).fit(descriptions=centres)
    elif mode == "both":
        clf = SemanticClassifier(settings).fit(x[::10], y[::10], centres)
    elif mode == "multi-label":
        clf = SemanticClassifier(settings).fit(x, [{label, "any"} for label in y])  # "any": a constant class
    else:
        two = [i for i, label in enumerate(y) if label != "shipping"]
        clf = SemanticClassifier(settings).fit(x[two], [y[i] for i in two])
    np.savez(tmp_path / "c.npz", **clf.to_state())
    with np.load(tmp_path / "c.npz", allow_pickle=False) as state:
        again = SemanticClassifier.from_state(dict(state))
    test_x = planted(seed=5)[0]
    assert again.classes_ == clf.classes_ and again.mode_ == clf.mode_ and again.settings == clf.settings
    assert np.allclose(again.predict_proba(test_x), clf.predict_proba(test_x), atol=1e-6)
    assert again.predict(test_x)[0] == clf.predict(test_x)[0]
    if mode == "two classes":  # sklearn's binary model gives the same probabilities as the saved softmax
        from sklearn.linear_model import LogisticRegression

        xs = x[two] / np.linalg.norm(x[two], axis=1, keepdims=True)
        ref = LogisticRegression(C=settings.C, max_iter=2000, random_state=0).fit(xs, [y[i] for i in two])
        unit = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
        assert np.allclose(clf.predict_proba(test_x), ref.predict_proba(unit), atol=1e-5)
    if mode == "multi-label":
        assert np.all(clf.predict_proba(test_x)[:, clf.classes_.index("any")] > 0.99)
