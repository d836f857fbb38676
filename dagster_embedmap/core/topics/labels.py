"""Topic names: candidates from class-based TF-IDF, chosen by meaning.

- :func:`ctfidf_keywords` names the topics of one level.
- :func:`hierarchy_keywords` names every level of a topic tree from one pass over the texts: broad
  topics are compared with each other, sub-topics with every topic of their level, and a keyword
  is never shared by two siblings (topics with the same parent, or all broad topics). A sub-topic may
  repeat its parent's word when that word is what it is about ("games, board, chess" under "games, ...").

How a topic's keywords are chosen:

1. **Candidates**: the words and phrases frequent in the topic and rare in the others (c-TF-IDF, as
   BERTopic scores them), without *corpus boilerplate* (terms found in at least
   :data:`BOILERPLATE_SHARE` of every fine topic's texts, such as the "wrote" of every e-mail reply or
   the "returns" of every docstring) and without clipped tokens (the "don" of "don't").
2. **Meaning** (when the model is at hand, :class:`Semantic`): each candidate is embedded with the map's
   own model and scored by its cosine to the topic's mean vector; the label is the candidates closest
   to it, and the further keywords are picked by maximal marginal relevance (close to the topic,
   unlike the keywords already picked). Without the model, c-TF-IDF order is kept.

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
from typing import Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from ..settings import setting

__all__ = [
    "LabelSettings",
    "Semantic",
    "TopicKeywords",
    "BOILERPLATE_SHARE",
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
    new just make makes made said say says did does got get gets
    don doesn didn isn wasn aren weren couldn wouldn shouldn haven hasn hadn won ll ve re
    dont doesnt didnt isnt wasnt arent cant couldnt wouldnt shouldnt wont im ive youre""".split()
)
"""The second line: what is left of a contraction when the apostrophe is lost ("don" of "don't")."""

BOILERPLATE_SHARE = 0.75
"""A term found in at least 5% of the texts of this share of the fine topics (with 4 topics or more) is
corpus boilerplate: frequent everywhere, it names none of them."""


def stop_words() -> frozenset[str]:
    """Every word a keyword may not be or contain: scikit-learn's English list plus :data:`EXTRA_STOP_WORDS`."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP_WORDS


@dataclass(frozen=True)
class LabelSettings:
    top_n: int = setting(
        10,
        """Keywords kept per topic.""")
    label_words: int = setting(
        3,
        """Keywords joined into the short label shown on the map.""")
    min_df: int = setting(
        2,
        """Ignore terms found in fewer documents than this (typos, one-off names).""")
    max_features: int = setting(
        50_000,
        """Vocabulary cap (the most frequent terms are kept).""")
    phrases: bool = setting(
        True,
        """Also score two-word phrases; a phrase replaces a single word of it already chosen.""")
    candidates: int = setting(
        20,
        """c-TF-IDF candidates per topic that the model re-ranks by meaning (with :class:`Semantic`).""")
    diversity: float = setting(
        0.3,
        """Weight of unlikeness to the keywords already picked, in maximal marginal relevance, for the keywords
        after the label's (the label is the ``label_words`` candidates closest to the topic: MMR there named
        topics less like their records' categories, 0.83-0.86x c-TF-IDF's accuracy on 3 corpora vs 1.06-1.14x).""")


@dataclass
class Semantic:
    """What ranking keywords by meaning needs: the texts that have vectors and a way to embed terms."""

    rows: np.ndarray
    """Indices, into the texts, of the points whose vectors are given."""
    vectors: np.ndarray
    """Their embedding vectors (one row per entry of ``rows``)."""
    embed: Callable[[list[str]], np.ndarray]
    """Terms -> one vector each, from the same model as ``vectors``."""


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


# possessive "'s" goes (earth's -> earth); a contraction goes whole (don't, we'll, they've, I'm)
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")
_CONTRACTION = re.compile(r"\b\w+(?:n['\u2019]t|['\u2019](?:ll|re|ve|d|m))\b")


def _preprocess(text: str) -> str:
    """Lower case, without possessives and contractions (so no clipped "don" or "ll" is counted)."""
    return _CONTRACTION.sub(" ", _POSSESSIVE.sub("", text.lower()))


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
            preprocessor=_preprocess,
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

    def boilerplate(self, topics: np.ndarray) -> np.ndarray:
        """Per term: True when it is in at least 5% of the texts of :data:`BOILERPLATE_SHARE` of the
        ``topics`` (never with fewer than 4 topics)."""
        from scipy import sparse

        ids = sorted(int(t) for t in np.unique(topics) if t >= 0)
        if self.matrix is None or len(ids) < 4:
            return np.zeros(len(self.vocab), dtype=bool)
        rows = {t: i for i, t in enumerate(ids)}
        member = np.array([rows.get(int(t), -1) for t in topics], dtype=np.int64)
        keep = member >= 0
        indicator = sparse.csr_matrix(
            (np.ones(int(keep.sum())), (member[keep], np.flatnonzero(keep))), shape=(len(ids), self.n)
        )
        present = self.matrix.copy()
        present.data[:] = 1.0
        share = np.asarray((indicator @ present).todense(), dtype=np.float64) / np.maximum(
            np.bincount(member[keep], minlength=len(ids)), 1)[:, None]
        return (share >= 0.05).mean(axis=0) >= BOILERPLATE_SHARE

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


def _level_candidates(
    counts: _Counts,
    topics: np.ndarray,
    n_terms: int,
    groups: Mapping[int, Hashable] | None = None,
    excluded: np.ndarray | None = None,
) -> dict[int, tuple[list[str], list[float]]]:
    """Per topic id: its best ``n_terms`` terms by c-TF-IDF and their scores, siblings (topics in the
    same ``groups`` entry; all topics by default) never sharing one, ``excluded`` terms left out."""
    topics = np.asarray(topics)
    ids = sorted(int(t) for t in np.unique(topics) if t >= 0)
    if not ids:
        return {}
    if counts.matrix is None or len(counts.vocab) == 0:
        return {t: ([], []) for t in ids}
    scores, class_counts = counts.scores(topics, ids)
    group_of = [groups.get(t, None) if groups is not None else None for t in ids]
    # each term belongs to the sibling that scores it highest, so siblings never share a keyword
    owner = np.full(scores.shape, False)
    for g in dict.fromkeys(group_of):
        members = [r for r, gg in enumerate(group_of) if gg == g]
        best = np.argmax(scores[members], axis=0)
        for pos, r in enumerate(members):
            owner[r] = best == pos
    if excluded is not None:
        owner &= ~excluded[None, :]
    return {t: _choose(np.argsort(-scores[r], kind="stable"), scores[r], class_counts[r], counts, owner[r], n_terms)
            for r, t in enumerate(ids)}


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _by_meaning(terms: list[str], term_vectors: np.ndarray, centroid: np.ndarray, top_n: int,
                diversity: float, closest: int) -> list[str]:
    """The ``closest`` terms nearest the topic's mean vector (the label), then maximal marginal
    relevance: repeatedly the term closest to the mean vector, less ``diversity`` times its closeness
    to the nearest term already picked."""
    if not terms:
        return []
    relevance = term_vectors @ centroid
    likeness = term_vectors @ term_vectors.T
    picked = [int(i) for i in np.argsort(-relevance, kind="stable")[: max(1, min(closest, top_n))]]
    while len(picked) < min(top_n, len(terms)):
        rest = [i for i in range(len(terms)) if i not in picked]
        mmr = (1 - diversity) * relevance[rest] - diversity * likeness[np.ix_(rest, picked)].max(axis=1)
        picked.append(rest[int(np.argmax(mmr))])
    return [terms[i] for i in picked]


def _name_levels(
    counts: _Counts,
    levels: Sequence[np.ndarray],
    groups: Sequence[Mapping[int, Hashable] | None],
    settings: LabelSettings,
    semantic: Semantic | None,
) -> list[dict[int, TopicKeywords]]:
    excluded = counts.boilerplate(np.asarray(levels[-1])) if len(levels) else None
    n_terms = max(settings.candidates, settings.top_n) if semantic is not None else settings.top_n
    candidates = [_level_candidates(counts, np.asarray(topics), n_terms, g, excluded)
                  for topics, g in zip(levels, groups)]
    vectors: dict[str, np.ndarray] = {}
    if semantic is not None and len(semantic.rows):
        terms = sorted({term for level in candidates for words, _ in level.values() for term in words})
        if terms:
            vectors = dict(zip(terms, _unit(semantic.embed(terms))))
        unit_rows = _unit(semantic.vectors)
    out: list[dict[int, TopicKeywords]] = []
    for topics, level in zip(levels, candidates):
        at = np.asarray(topics)[semantic.rows] if vectors else None
        named: dict[int, TopicKeywords] = {}
        for t, (words, scores) in level.items():
            chosen = words[: settings.top_n]
            if vectors and words and (at == t).any():
                centroid = _unit(unit_rows[at == t].mean(axis=0))
                chosen = _by_meaning(words, np.stack([vectors[w] for w in words]), centroid, settings.top_n,
                                     settings.diversity, settings.label_words)
            score_of = dict(zip(words, scores))
            label = ", ".join(chosen[: settings.label_words]) if chosen else f"topic {t}"
            named[t] = TopicKeywords(topic_id=t, keywords=chosen, scores=[score_of[w] for w in chosen], label=label)
        out.append(named)
    return out


def ctfidf_keywords(
    texts: Sequence[str],
    topics: np.ndarray,
    settings: LabelSettings = LabelSettings(),
    groups: Mapping[int, Hashable] | None = None,
    semantic: Semantic | None = None,
) -> dict[int, TopicKeywords]:
    """Keywords per topic id (topic -1, noise, gets none), best first.

    Each topic's texts form one class document; a term's weight is its frequency in the class
    (L1-normalised) times ``log(1 + A / f)``, with ``A`` the average class size in words and ``f``
    the term's frequency over all classes (BERTopic's c-TF-IDF). Topics in the same ``groups`` entry
    (by default: all of them) never share a keyword: a term goes to the one that scores it highest.
    With ``semantic`` the candidates are re-ranked by meaning (see the module docstring).
    """
    return _name_levels(_Counts(texts, settings), [np.asarray(topics)], [groups], settings, semantic)[0]


def hierarchy_keywords(
    texts: Sequence[str],
    levels: Sequence[np.ndarray],
    parents: Sequence[Mapping[int, int]],
    settings: LabelSettings = LabelSettings(),
    semantic: Semantic | None = None,
) -> list[dict[int, TopicKeywords]]:
    """Keywords for every level of a topic tree, broadest first.

    ``levels[L]`` holds each text's topic id at level ``L`` (-1: none); ``parents[L]`` maps the ids of
    level ``L + 1`` to their parent at level ``L``. Siblings never share a keyword; a sub-topic may
    use its parent's words (it is compared with its siblings, not with its parent). With ``semantic``
    the candidates are re-ranked by meaning (see the module docstring).
    """
    if len(parents) != max(0, len(levels) - 1):
        raise ValueError(f"{len(levels)} levels need {len(levels) - 1} parent maps, got {len(parents)}")
    groups = [None] + [parents[level - 1] for level in range(1, len(levels))]
    return _name_levels(_Counts(texts, settings), levels, groups, settings, semantic)
