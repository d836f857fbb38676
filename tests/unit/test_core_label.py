"""Tests for dagster_embedmap.core.topics.labels: topic keywords from class-based TF-IDF."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from dagster_embedmap.core.topics.labels import EXTRA_STOP_WORDS, LabelSettings, ctfidf_keywords

FOOTBALL = [
    "The football team scored a goal in the 90th minute of the match.",
    "Our football striker scored again and the team won the match.",
    "The referee stopped the football match after a goal was disputed.",
    "A late goal gave the home team the football league title.",
    "The football coach praised the team after the match in 2023.",
]
COOKING = [
    "Chop the onions and fry them in olive oil before adding the garlic.",
    "Add garlic to the sauce and simmer the onions for 10 minutes.",
    "The recipe says to fry the onions until they are soft and golden.",
    "Stir the sauce, add more garlic and taste the recipe again.",
    "A good recipe for tomato sauce starts with onions and garlic.",
]
ASTRONOMY = [
    "The telescope revealed a distant galaxy full of bright stars.",
    "Astronomers point the telescope at stars in a nearby galaxy.",
    "Our galaxy contains billions of stars and many planets.",
    "Planets orbit stars, and the telescope measured their orbit.",
    "The space telescope photographed planets around 3 stars in the galaxy.",
]
NOISE = ["Random unrelated words about taxes and paperwork in the office."] * 2

TEXTS = FOOTBALL + COOKING + ASTRONOMY + NOISE
TOPICS = np.array([0] * 5 + [1] * 5 + [2] * 5 + [-1] * 2)


@pytest.fixture(scope="module")
def keywords():
    return ctfidf_keywords(TEXTS, TOPICS, LabelSettings(top_n=6, label_words=3, min_df=2))


def test_one_entry_per_topic_and_none_for_noise(keywords):
    assert sorted(keywords) == [0, 1, 2]
    assert -1 not in keywords
    for tid, tk in keywords.items():
        assert tk.topic_id == tid


def test_distinctive_words_come_first(keywords):
    assert keywords[0].keywords[0] == "football"
    assert set(keywords[0].keywords[:4]) == {"football", "match", "team", "goal"}
    assert set(keywords[1].keywords[:4]) == {"garlic", "onions", "recipe", "sauce"}
    assert keywords[2].keywords[0] == "stars"
    assert set(keywords[2].keywords[:4]) == {"stars", "galaxy", "telescope", "planets"}
    # a topic's keywords are its own: no word is a keyword of two topics
    tops = [set(keywords[t].keywords) for t in (0, 1, 2)]
    assert not (tops[0] & tops[1]) and not (tops[0] & tops[2]) and not (tops[1] & tops[2])
    # noise texts do not leak into any topic
    assert not {"taxes", "paperwork", "office"} & (tops[0] | tops[1] | tops[2])


def test_scores_are_positive_and_descending(keywords):
    for tk in keywords.values():
        assert len(tk.keywords) == len(tk.scores) <= 6
        assert all(s > 0 for s in tk.scores)
        assert tk.scores == sorted(tk.scores, reverse=True)


def test_no_stop_words_digits_or_one_letter_tokens(keywords):
    stop = ENGLISH_STOP_WORDS | EXTRA_STOP_WORDS
    for tk in keywords.values():
        for word in tk.keywords:
            assert word not in stop
            assert not re.search(r"\d", word)
            assert len(word) >= 2
            assert word == word.lower()


def test_label_joins_the_first_label_words_keywords(keywords):
    for tk in keywords.values():
        assert tk.label == ", ".join(tk.keywords[:3])
    two = ctfidf_keywords(TEXTS, TOPICS, LabelSettings(label_words=2))
    for tk in two.values():
        assert tk.label == ", ".join(tk.keywords[:2])
        assert tk.label.count(", ") == 1


def test_min_df_drops_words_seen_in_one_document_only(keywords):
    words = {w for tk in keywords.values() for w in tk.keywords}
    assert "referee" not in words  # appears in a single text
    assert "tomato" not in words


def test_only_noise_gives_no_topics():
    assert ctfidf_keywords(["a text", "another text"], np.array([-1, -1])) == {}


def test_stop_word_only_texts_get_placeholder_labels():
    out = ctfidf_keywords(["the and of", "it is the 42"], np.array([0, 1]))
    assert sorted(out) == [0, 1]
    assert out[0].keywords == [] and out[0].label == "topic 0"
    assert out[1].label == "topic 1"


def test_topic_ids_need_not_be_contiguous():
    texts = FOOTBALL + ASTRONOMY
    topics = np.array([3] * 5 + [7] * 5)
    out = ctfidf_keywords(texts, topics)
    assert sorted(out) == [3, 7]
    assert "football" in out[3].keywords[:3]
    assert "telescope" in out[7].keywords[:3] or "stars" in out[7].keywords[:3]


def test_a_plural_of_a_chosen_keyword_is_not_a_second_keyword():
    texts = ["the cell divides and cells grow", "cells and the cell wall", "a cell membrane of cells"] * 2 + \
            ["stars in the galaxy shine", "the galaxy has stars"] * 3
    out = ctfidf_keywords(texts, np.array([0] * 6 + [1] * 6), LabelSettings(phrases=False))
    assert "cell" in out[0].keywords and "cells" not in out[0].keywords
    assert "stars" in out[1].keywords and "star" not in out[1].keywords
