"""Topic names from class-based TF-IDF: the words and phrases frequent in one topic and rare in the others.

- :func:`ctfidf_keywords` names the topics of one level.
- :func:`hierarchy_keywords` names every level of a topic tree from one pass over the texts: broad
  topics are compared with each other, sub-topics with every topic of their level, and a keyword
  is never shared by two siblings (topics with the same parent, or all broad topics).

A term is a word or a two-word phrase ("united states", "world war"); English stop words, the
encyclopaedic filler in :data:`EXTRA_STOP_WORDS`, numbers and one-letter tokens are removed before
counting, so no keyword is or contains one. Where words fail, characters name topics: scripts written
without spaces (Chinese, Japanese, Thai) give character pairs ("東京", "料理"), and symbols such as
emoji are terms of their own ("🍕"), so a topic of such texts is named by what it holds, not "topic 3".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "LabelSettings",
    "TopicKeywords",
    "ctfidf_keywords",
    "hierarchy_keywords",
    "EXTRA_STOP_WORDS",
    "stop_words",
]

# Words that pass scikit-learn's English list but say nothing about a topic in encyclopaedic text.
EXTRA_STOP_WORDS = frozenset(
    """also known used use uses using including include includes called refers refer term terms
    generally often usually commonly typically various based different especially particularly
    like later early main major number numbers largest large small important example examples
    way ways part parts type types form forms following year years time times th st nd rd
    new just make makes made said say says did does got get gets""".split()
)


def stop_words() -> frozenset[str]:
    """Every word a keyword may not be or contain: scikit-learn's English list plus :data:`EXTRA_STOP_WORDS`."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP_WORDS


@dataclass(frozen=True)
class LabelSettings:
    top_n: int = 10
    """Keywords kept per topic."""
    label_words: int = 3
    """Keywords joined into the short label shown on the map."""
    min_df: int = 2
    """Ignore terms found in fewer documents than this (typos, one-off names)."""
    max_features: int = 50_000
    """Vocabulary cap (the most frequent terms are kept)."""
    phrases: bool = True
    """Also score two-word phrases; a phrase replaces a single word of it already chosen."""


@dataclass
class TopicKeywords:
    topic_id: int
    keywords: list[str]
    scores: list[float]
    label: str


#: a phrase replaces a chosen word of it only when it makes up this share of the word's uses
_PHRASE_SHARE = 0.7

# Scripts written without spaces between words: Thai, Hiragana, Katakana, CJK ideographs (and their
# compatibility forms). Words are not cut out of them; character pairs are counted instead.
_UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD_PATTERN = rf"(?u)\b[^\W\d_{_UNSPACED}]{{2,}}\b"
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]+")
_HIRAGANA = re.compile("^[\u3040-\u309f]+$")
# a cheap first look: texts with no character from U+2000 on hold neither symbols nor unspaced scripts
_BEYOND_WORDS = re.compile("[\u0e00-\u0e7f\u2000-\U0010ffff]")


def _character_terms(text: str) -> list[str]:
    """The terms words miss: character pairs of unspaced scripts (a lone character as itself; pairs of
    hiragana alone, mostly grammar, are left out) and every symbol (Unicode category So: emoji, signs)."""
    terms: list[str] = []
    for run in _UNSPACED_RUN.findall(text):
        if len(run) == 1:
            terms.append(run)
            continue
        terms.extend(pair for pair in (run[i:i + 2] for i in range(len(run) - 1)) if not _HIRAGANA.match(pair))
    terms.extend(ch for ch in text if ord(ch) >= 0x2000 and unicodedata.category(ch) == "So")
    return terms


class _Counts:
    """The term counts of every text, computed once and shared by every level of a tree."""

    def __init__(self, texts: Sequence[str], settings: LabelSettings):
        from sklearn.feature_extraction.text import CountVectorizer

        from scipy import sparse

        self.n = len(texts)
        min_df = min(settings.min_df, max(1, len(texts)))
        words = CountVectorizer(
            stop_words=sorted(stop_words()),
            token_pattern=_WORD_PATTERN,
            lowercase=True,
            ngram_range=(1, 2 if settings.phrases else 1),
            min_df=min_df,
            max_features=settings.max_features,
        )
        parts = [_fit_counts(words, texts)]
        if any(_BEYOND_WORDS.search(t) for t in texts):
            parts.append(_fit_counts(CountVectorizer(analyzer=_character_terms, min_df=min_df,
                                                     max_features=settings.max_features), texts))
        parts = [p for p in parts if p is not None]
        if parts:
            self.matrix = sparse.hstack([m for m, _ in parts]).tocsr()
            self.vocab = np.concatenate([v for _, v in parts])
        else:  # every text was stop words only
            self.matrix, self.vocab = None, np.array([], dtype=object)
        self.index = {str(v): i for i, v in enumerate(self.vocab)}

    def scores(self, topics: np.ndarray, ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """c-TF-IDF and the raw counts, one row per topic id: a term's share of the topic's words times
        ``log(1 + A / f)``, ``A`` the average topic size in words, ``f`` the term's count over all topics."""
        from scipy import sparse

        rows = {t: i for i, t in enumerate(ids)}
        member = np.array([rows.get(int(t), -1) for t in topics], dtype=np.int64)
        keep = member >= 0
        indicator = sparse.csr_matrix(
            (np.ones(int(keep.sum())), (member[keep], np.flatnonzero(keep))), shape=(len(ids), self.n)
        )
        class_counts = np.asarray((indicator @ self.matrix).todense(), dtype=np.float64)
        sizes = class_counts.sum(axis=1, keepdims=True)
        tf = np.divide(class_counts, sizes, out=np.zeros_like(class_counts), where=sizes > 0)
        avg_words = float(sizes.mean())
        freq = class_counts.sum(axis=0)
        idf = np.log1p(np.divide(avg_words, freq, out=np.zeros_like(freq), where=freq > 0))
        return tf * idf, class_counts


def _fit_counts(vectorizer, texts: Sequence[str]):
    """(term counts, vocabulary), or None when no text has a term the vectorizer keeps."""
    try:
        return vectorizer.fit_transform(texts), vectorizer.get_feature_names_out()
    except ValueError:
        return None


def _singular(word: str) -> str:
    """A crude singular, only to tell "cell" and "cells" apart as the same keyword."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _choose(
    order: Iterable[int], score_row: np.ndarray, count_row: np.ndarray, counts: "_Counts", allowed: np.ndarray,
    top_n: int,
):
    """The best ``top_n`` allowed terms, in score order. A phrase takes the place of a lone word of it
    chosen before when it accounts for most of that word's uses ("states" -> "united states"); a word
    already inside a chosen phrase, or a phrase whose words are all chosen, adds nothing."""
    vocab, index = counts.vocab, counts.index
    terms: list[str] = []
    scores: list[float] = []
    for i in order:
        if len(terms) >= top_n or score_row[i] <= 0:
            break
        if not allowed[i]:
            continue
        term = str(vocab[i])
        words = term.split(" ")
        used = {w for t in terms for w in t.split(" ")}
        if tuple(_singular(w) for w in words) in {tuple(_singular(w) for w in t.split(" ")) for t in terms}:
            continue  # "cells" after "cell" says nothing new
        if len(words) == 1:
            if term not in used:
                terms.append(term)
                scores.append(float(score_row[i]))
            continue
        lone = [j for j, t in enumerate(terms) if t in words]
        if lone and count_row[i] < _PHRASE_SHARE * max(count_row[index[terms[j]]] for j in lone):
            continue  # a phrase of a word, not what the word means here
        if lone:  # the phrase says more, in the place (and with the score) of the word it extends
            terms[lone[0]] = term
            for j in reversed(lone[1:]):
                del terms[j], scores[j]
        elif not all(w in used for w in words):
            terms.append(term)
            scores.append(float(score_row[i]))
    return terms, scores


def _level_keywords(
    counts: _Counts,
    topics: np.ndarray,
    settings: LabelSettings,
    groups: Mapping[int, Hashable] | None = None,
    avoid: Mapping[int, Iterable[str]] | None = None,
) -> dict[int, TopicKeywords]:
    topics = np.asarray(topics)
    ids = sorted(int(t) for t in np.unique(topics) if t >= 0)
    if not ids:
        return {}
    if counts.matrix is None or len(counts.vocab) == 0:
        return {t: TopicKeywords(t, [], [], f"topic {t}") for t in ids}
    scores, class_counts = counts.scores(topics, ids)
    group_of = [groups.get(t, None) if groups is not None else None for t in ids]
    # each term belongs to the sibling that scores it highest, so siblings never share a keyword
    owner = np.full(scores.shape, False)
    for g in dict.fromkeys(group_of):
        members = [r for r, gg in enumerate(group_of) if gg == g]
        sub = scores[members]
        best = np.argmax(sub, axis=0)
        for pos, r in enumerate(members):
            owner[r] = best == pos
    out: dict[int, TopicKeywords] = {}
    for r, t in enumerate(ids):
        order = np.argsort(-scores[r], kind="stable")
        words, word_scores = _choose(order, scores[r], class_counts[r], counts, owner[r], settings.top_n)
        skip = set(avoid.get(t, ())) if avoid else set()
        label_terms = [w for w in words if not set(w.split(" ")) & skip]
        if len(label_terms) < settings.label_words:
            label_terms = label_terms + [w for w in words if w not in label_terms]
        label = ", ".join(label_terms[: settings.label_words]) if words else f"topic {t}"
        out[t] = TopicKeywords(topic_id=t, keywords=words, scores=word_scores, label=label)
    return out


def ctfidf_keywords(
    texts: Sequence[str],
    topics: np.ndarray,
    settings: LabelSettings = LabelSettings(),
    groups: Mapping[int, Hashable] | None = None,
) -> dict[int, TopicKeywords]:
    """Keywords per topic id (topic -1, noise, gets none), best first.

    Each topic's texts form one class document; a term's weight is its frequency in the class
    (L1-normalised) times ``log(1 + A / f)``, with ``A`` the average class size in words and ``f``
    the term's frequency over all classes (BERTopic's c-TF-IDF). Topics in the same ``groups`` entry
    (by default: all of them) never share a keyword: a term goes to the one that scores it highest.
    """
    return _level_keywords(_Counts(texts, settings), np.asarray(topics), settings, groups)


def hierarchy_keywords(
    texts: Sequence[str],
    levels: Sequence[np.ndarray],
    parents: Sequence[Mapping[int, int]],
    settings: LabelSettings = LabelSettings(),
) -> list[dict[int, TopicKeywords]]:
    """Keywords for every level of a topic tree, broadest first.

    ``levels[L]`` holds each text's topic id at level ``L`` (-1: none); ``parents[L]`` maps the ids of
    level ``L + 1`` to their parent at level ``L``. Siblings never share a keyword, and a sub-topic's
    label prefers terms that are not in its parent's label (the parent already says those).
    """
    if len(parents) != max(0, len(levels) - 1):
        raise ValueError(f"{len(levels)} levels need {len(levels) - 1} parent maps, got {len(parents)}")
    counts = _Counts(texts, settings)
    out: list[dict[int, TopicKeywords]] = []
    for level, topics in enumerate(levels):
        if level == 0:
            out.append(_level_keywords(counts, np.asarray(topics), settings))
            continue
        parent_of = parents[level - 1]
        above = out[level - 1]
        avoid = {
            t: {w for term in above[p].label.split(", ") for w in term.split(" ")}
            for t, p in parent_of.items()
            if p in above
        }
        out.append(_level_keywords(counts, np.asarray(topics), settings, groups=parent_of, avoid=avoid))
    return out
