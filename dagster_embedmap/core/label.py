"""Topic names from class-based TF-IDF: the words that are frequent in one topic and rare in the others."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["LabelSettings", "TopicKeywords", "ctfidf_keywords", "EXTRA_STOP_WORDS"]

# Words that pass scikit-learn's English list but say nothing about a topic in encyclopaedic text.
EXTRA_STOP_WORDS = frozenset(
    """also known used use uses using including include includes called refers refer term terms
    generally often usually commonly typically various based different especially particularly
    like later early main major number numbers largest large small important example examples
    way ways part parts type types form forms following year years time times th st nd rd
    new just make makes made said say says did does got get gets""".split()
)


@dataclass(frozen=True)
class LabelSettings:
    top_n: int = 10
    """Keywords kept per topic."""
    label_words: int = 3
    """Keywords joined into the short label shown on the map."""
    min_df: int = 2
    """Ignore words found in fewer documents than this (typos, one-off names)."""
    max_features: int = 50_000


@dataclass
class TopicKeywords:
    topic_id: int
    keywords: list[str]
    scores: list[float]
    label: str


def ctfidf_keywords(
    texts: Sequence[str], topics: np.ndarray, settings: LabelSettings = LabelSettings()
) -> dict[int, TopicKeywords]:
    """Keywords per topic id (topic -1, noise, gets none).

    Each topic's texts form one class document; a word's weight is its frequency in the class
    (L1-normalised) times ``log(1 + A / f)``, with ``A`` the average class size in words and ``f``
    the word's frequency over all classes (BERTopic's c-TF-IDF). English stop words, numbers and
    one-letter tokens are removed before counting.
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    topics = np.asarray(topics)
    ids = sorted(int(t) for t in np.unique(topics) if t >= 0)
    if not ids:
        return {}
    vectorizer = CountVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS),
        token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
        lowercase=True,
        min_df=min(settings.min_df, len(texts)),
        max_features=settings.max_features,
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # every text was stop words only
        return {t: TopicKeywords(t, [], [], f"topic {t}") for t in ids}
    vocab = vectorizer.get_feature_names_out()
    rows = {t: i for i, t in enumerate(ids)}
    member = np.array([rows.get(int(t), -1) for t in topics])
    keep = member >= 0
    indicator = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (member[keep], np.flatnonzero(keep))), shape=(len(ids), len(texts))
    )
    class_counts = np.asarray((indicator @ counts).todense(), dtype=np.float64)
    sizes = class_counts.sum(axis=1, keepdims=True)
    tf = np.divide(class_counts, sizes, out=np.zeros_like(class_counts), where=sizes > 0)
    avg_words = float(sizes.mean())
    freq = class_counts.sum(axis=0)
    idf = np.log1p(np.divide(avg_words, freq, out=np.zeros_like(freq), where=freq > 0))
    scores = tf * idf
    out: dict[int, TopicKeywords] = {}
    for t, row in rows.items():
        order = np.argsort(-scores[row], kind="stable")[: settings.top_n]
        order = order[scores[row][order] > 0]
        words = [str(vocab[i]) for i in order]
        out[t] = TopicKeywords(
            topic_id=t,
            keywords=words,
            scores=[float(scores[row][i]) for i in order],
            label=", ".join(words[: settings.label_words]) if words else f"topic {t}",
        )
    return out
