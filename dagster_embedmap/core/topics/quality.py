"""How good a map's topics are against known labels: the measures the topic benchmark and CI use.

- :func:`label_accuracy`: is each topic's label nearest (by the model's embedding) to the name of the
  category most of its records have? Weighted by topic size.
- :func:`ctfidf_terms` / :func:`ctfidf_labels`: the baseline labeller, BERTopic's c-TF-IDF (top words by
  ``tf * log(1 + A / f)``).

NMI and ARI come from scikit-learn (``normalized_mutual_info_score``, ``adjusted_rand_score``).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["label_accuracy", "ctfidf_labels", "ctfidf_terms"]


def label_accuracy(labels: Mapping[int, str], topics: np.ndarray, truth: Sequence[str],
                   embed: Callable[[list[str]], np.ndarray], names: Mapping[str, str] | None = None) -> float:
    """Size-weighted share of topics whose label's nearest category name is their majority category.

    ``labels``: topic id -> label; ``topics``: each record's topic; ``truth``: each record's category;
    ``embed``: texts -> vectors (the map's model); ``names``: a clearer name to embed for a category
    (e.g. Debian's ``libdevel`` -> "library development headers"), the category itself otherwise.
    """
    topics = np.asarray(topics)
    truth = np.asarray(truth, dtype=object)
    categories = sorted(set(truth.tolist()))
    names = names or {}

    def unit(v):
        v = np.asarray(v, dtype=np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    category_vectors = unit(embed([names.get(c, c) for c in categories]))
    ids = [t for t in sorted(labels) if (topics == t).any()]
    if not ids:
        return 0.0
    label_vectors = unit(embed([labels[t] for t in ids]))
    right = weight = 0
    for t, v in zip(ids, label_vectors):
        values, counts = np.unique(truth[topics == t], return_counts=True)
        nearest = categories[int(np.argmax(category_vectors @ v))]
        right += int(counts.sum()) * (nearest == values[int(np.argmax(counts))])
        weight += int(counts.sum())
    return right / weight


def ctfidf_terms(texts: Sequence[str], topics: np.ndarray, top_n: int = 10,
                 stop_words: str | None = "english") -> dict[int, list[str]]:
    """BERTopic's c-TF-IDF: ``CountVectorizer(stop_words=...)`` counts per topic, weighted by
    ``tf * log(1 + A / f)``; the ``top_n`` words of each topic, best first. ``stop_words=None`` is
    BERTopic's default."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    topics = np.asarray(topics)
    ids = sorted(int(t) for t in np.unique(topics) if t >= 0)
    vectorizer = CountVectorizer(stop_words=stop_words)
    counts = vectorizer.fit_transform(texts)
    vocab = vectorizer.get_feature_names_out()
    rows = {t: i for i, t in enumerate(ids)}
    member = np.array([rows.get(int(t), -1) for t in topics])
    keep = member >= 0
    indicator = sparse.csr_matrix((np.ones(int(keep.sum())), (member[keep], np.flatnonzero(keep))),
                                  shape=(len(ids), len(texts)))
    cc = np.asarray((indicator @ counts).todense(), dtype=np.float64)
    tf = cc / np.maximum(cc.sum(axis=1, keepdims=True), 1)
    idf = np.log1p(cc.sum(axis=1).mean() / np.maximum(cc.sum(axis=0), 1))
    scores = tf * idf
    return {t: [str(vocab[i]) for i in np.argsort(-scores[r], kind="stable")[:top_n]] for t, r in rows.items()}


def ctfidf_labels(texts: Sequence[str], topics: np.ndarray, words: int = 3,
                  stop_words: str | None = "english") -> dict[int, str]:
    """BERTopic's c-TF-IDF labels (:func:`ctfidf_terms`): the top ``words`` joined by ", "."""
    return {t: ", ".join(terms) for t, terms in ctfidf_terms(texts, topics, words, stop_words).items()}
