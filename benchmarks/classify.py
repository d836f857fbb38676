"""Semantic classifiers on the demo corpus: a few labelled records per class, or the class names alone.

    .venv/bin/python benchmarks/classify.py              # the demo's 2,000 articles and all 9,033, 5 draws
    .venv/bin/python benchmarks/classify.py --draws 10

The Wikipedia vital-article summaries and their 11 categories (the demo corpus: its 2,000-article
sample, and all 9,033 categorised articles), vectors from the bundled all-MiniLM-L6-v2 through the
project's ``Encoder`` (cached by ``benchmarks/corpora.py``). For 5, 10 and 20 labelled records per
category (``--draws`` seeded random draws each), every classifier trains on the same labelled records
and is scored on all the others (accuracy and macro-F1 of its best class, before any abstention):

- ours: :class:`SemanticClassifier` with its defaults (examples only), and with the 11 category names'
  vectors as priors (``both``);
- (a) scikit-learn's ``LogisticRegression()`` with its defaults on the same vectors (target: ours within 2%);
- (b) TF-IDF (English stop words, sublinear tf) + ``LogisticRegression()`` on the texts (target: ours above).

Then zero-shot (the category names alone, embedded by the model: no labelled record) on every record,
and the time to train on 220 labelled records and to predict 100,000 (synthetic 384-d vectors).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def scores(truth: np.ndarray, predicted: np.ndarray, classes: list[str]) -> tuple[float, float]:
    from sklearn.metrics import f1_score

    return float((truth == predicted).mean()), float(f1_score(truth, predicted, labels=classes, average="macro",
                                                               zero_division=0))


def draw(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """A mask of ``per_class`` seeded random records of every class."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        mask[rng.choice(rows, size=min(per_class, len(rows) - 1), replace=False)] = True
    return mask


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--per-class", type=int, nargs="+", default=[5, 10, 20])
    args = parser.parse_args()

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from corpora import corpus_vectors
    from dagster_embedmap.core.classify import SemanticClassifier
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings
    from dagster_embedmap.core.records.datasets import load_wiki_summaries

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"commit {commit.strip()}")
    every, vectors_all = corpus_vectors("wiki-10033")
    row_of = {rid: i for i, rid in enumerate(every["id"].to_list())}
    encoder = Encoder(EncoderSettings())
    corpora = {"demo (2,000)": load_wiki_summaries(n=2000), "all 9,033": load_wiki_summaries(n=None)}
    names = sorted(set(corpora["all 9,033"]["category"].to_list()))
    name_vectors = np.asarray(encoder.encode(names), dtype=np.float32)
    descriptions = dict(zip(names, name_vectors))

    for corpus, frame in corpora.items():
        x = vectors_all[[row_of[i] for i in frame["id"].to_list()]]
        y = np.array(frame["category"].to_list())
        texts = frame["text"].to_list()
        classes = sorted(set(y))
        print(f"\n{corpus}: {len(y):,} articles, {len(classes)} categories, {args.draws} draws per size")
        print("| labelled per class | ours | ours + names as priors | (a) LogisticRegression | ours - (a) "
              "| (b) TF-IDF + LR | ours - (b) | ours: given a class / right of those / mean score | ours: trained in |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k in args.per_class:
            rows = {m: [] for m in ("ours", "both", "lr", "tfidf")}
            fit_s = []
            for seed in range(args.draws):
                train = draw(y, k, seed)
                test = ~train
                t0 = time.perf_counter()
                ours = SemanticClassifier().fit(x[train], list(y[train]))
                fit_s.append(time.perf_counter() - t0)
                p = ours.predict_proba(x[test])
                rows["ours"].append(scores(y[test], np.array(ours.classes_)[p.argmax(axis=1)], classes))
                sure = p.max(axis=1) >= ours.settings.threshold
                picked = np.array(ours.classes_)[p.argmax(axis=1)]
                rows.setdefault("sure", []).append((sure.mean(), (picked[sure] == y[test][sure]).mean() if sure.any()
                                                    else 0.0, p.max(axis=1).mean()))
                both = SemanticClassifier().fit(x[train], list(y[train]), descriptions)
                p = both.predict_proba(x[test])
                rows["both"].append(scores(y[test], np.array(both.classes_)[p.argmax(axis=1)], classes))
                lr = LogisticRegression().fit(x[train], y[train])
                rows["lr"].append(scores(y[test], lr.predict(x[test]), classes))
                tfidf = TfidfVectorizer(stop_words="english", sublinear_tf=True)
                tx = tfidf.fit_transform([texts[i] for i in np.flatnonzero(train)])
                tlr = LogisticRegression().fit(tx, y[train])
                rows["tfidf"].append(scores(y[test], tlr.predict(tfidf.transform([texts[i] for i in np.flatnonzero(test)])),
                                            classes))
            mean = {m: np.mean(v, axis=0) for m, v in rows.items()}

            def cell(m: str) -> str:
                return f"{mean[m][0]:.3f} / {mean[m][1]:.3f}"

            print(f"| {k} | {cell('ours')} | {cell('both')} | {cell('lr')} | "
                  f"{mean['ours'][0] - mean['lr'][0]:+.3f} / {mean['ours'][1] - mean['lr'][1]:+.3f} | {cell('tfidf')} | "
                  f"{mean['ours'][0] - mean['tfidf'][0]:+.3f} / {mean['ours'][1] - mean['tfidf'][1]:+.3f} | "
                  f"{mean['sure'][0]:.3f} / {mean['sure'][1]:.3f} / {mean['sure'][2]:.3f} | "
                  f"{np.median(fit_s) * 1000:.0f} ms |")
        zero = SemanticClassifier().fit(descriptions=descriptions)
        p = zero.predict_proba(x)
        acc, f1 = scores(y, np.array(zero.classes_)[p.argmax(axis=1)], classes)
        print(f"zero-shot from the {len(names)} category names alone: accuracy {acc:.3f}, macro-F1 {f1:.3f} "
              f"(chance {1 / len(classes):.3f})")
    print("(cells: accuracy / macro-F1 on the records not labelled, means over the draws; 'given a class': the "
          "share whose calibrated best score reaches the 0.5 threshold)")

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(11, 384))
    members = rng.integers(0, 11, 100_000)
    big = (centres[members] + rng.normal(scale=3.0, size=(100_000, 384))).astype(np.float32)
    train = draw(members, 20, 0)
    t0 = time.perf_counter()
    model = SemanticClassifier().fit(big[train], [str(m) for m in members[train]])
    fitted = time.perf_counter() - t0
    t0 = time.perf_counter()
    proba = model.predict_proba(big)
    labels, score = model.decide(proba)
    predicted = time.perf_counter() - t0
    right = np.mean(np.array(model.classes_)[proba.argmax(axis=1)] == members.astype(str))
    print(f"\n100,000 synthetic 384-d records, 11 classes: trained on {int(train.sum())} labelled in {fitted:.2f} s, "
          f"predicted all in {predicted:.2f} s (best class right for {right:.3f}; {np.mean(score >= 0.5):.3f} scored "
          f"above the 0.5 threshold, the rest left without a class)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
