"""The data for search by meaning in the HTML map: the tokenizer spec the page re-implements, and the
shared space the table rows and point vectors are put into (core/render/semantic.py)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from dagster_embedmap.core.embedding import StaticTable, resolve_model_path, tokenizer_spec
from dagster_embedmap.core.render import render_html_map, semantic_payload
from dagster_embedmap.core.render import semantic as semantic_module


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))


WORDS = ["whale", "coral", "planet", "orbit", "violin", "piano", "castle", "king", "river", "delta", "the", "of"]


@pytest.fixture(scope="module")
def table(tokenizer) -> StaticTable:
    """A small table over the real tokenizer: one random unit row per word (the rest of the vocabulary
    is left out, as unknown)."""
    spec, why = tokenizer_spec(tokenizer)
    assert spec is not None, why
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(len(WORDS), 32)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return StaticTable(list(WORDS), rows, spec, tokenizer.backend_tokenizer.to_str())


def records(table: StaticTable, n_per: int = 30, seed: int = 1) -> tuple[np.ndarray, list[str], list[int]]:
    """Records near one word's row each (plus noise), their texts and the word each is about."""
    rng = np.random.default_rng(seed)
    about = [w for w in range(10) for _ in range(n_per)]
    vectors = table.vectors[about] + rng.normal(scale=0.15, size=(len(about), table.vectors.shape[1]))
    texts = [f"the story of the {WORDS[w]}" for w in about]
    return vectors.astype(np.float32), texts, about


def decode(payload: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dims = payload["dims"]
    rows = np.frombuffer(base64.b64decode(payload["table"]), dtype=np.int8).reshape(-1, dims)
    points = np.frombuffer(base64.b64decode(payload["points"]), dtype=np.int8).reshape(-1, dims)
    return rows, points, np.asarray(payload["scale"])


def rank(payload: dict, words: list[str]) -> np.ndarray:
    """What the page does: sum the query tokens' int8 rows, scale per axis, dot with every point."""
    rows, points, scale = decode(payload)
    vocab = payload["vocab"].split("\n")
    q = sum(rows[vocab.index(w)].astype(np.float64) for w in words) * scale
    return np.argsort(-(points.astype(np.float64) @ q), kind="stable")


def test_the_spec_of_minilms_tokenizer_is_berts(tokenizer):
    spec, why = tokenizer_spec(tokenizer)
    assert why == "" and spec == {"lowercase": True, "strip_accents": True, "chinese_chars": True, "prefix": "##",
                                  "max_chars": 100, "unk": "[UNK]"}  # fmt: skip


def test_a_tokenizer_the_page_cannot_follow_is_refused_with_its_reason(tokenizer):
    class Slow:  # a tokenizer without a Rust backend
        pass

    assert tokenizer_spec(Slow()) == (None, "the model's tokenizer is not a fast (Rust) tokenizer")

    class NotWordPiece:
        def __init__(self, conf):
            self.backend_tokenizer = type("B", (), {"to_str": lambda _self: conf})()

    conf = tokenizer.backend_tokenizer.to_str().replace('"type":"WordPiece"', '"type":"BPE"')
    spec, why = tokenizer_spec(NotWordPiece(conf))
    assert spec is None and "BPE, not WordPiece" in why


def test_a_one_word_query_ranks_that_words_records_first(table):
    vectors, texts, about = records(table)
    payload = semantic_payload(vectors, texts, table, dims=8)
    assert payload["dims"] == 8 and payload["spec"] == table.spec
    rows, points, scale = decode(payload)
    assert rows.shape == (len(WORDS), 8) and points.shape == (len(vectors), 8) and scale.shape == (8,)
    for w in range(10):
        top = rank(payload, [WORDS[w]])[:30]
        assert np.mean([about[p] == w for p in top]) >= 0.9, WORDS[w]


def test_a_word_every_text_has_weighs_less_than_a_rare_one(table):
    vectors, texts, _ = records(table)
    payload = semantic_payload(vectors, texts, table, dims=8)
    rows, _, scale = decode(payload)
    norms = np.linalg.norm(rows * scale, axis=1)
    vocab = payload["vocab"].split("\n")
    # "the" is in every text twice, "whale" in a tenth of them once, and both rows had unit length
    assert norms[vocab.index("the")] < 0.2 * norms[vocab.index("whale")]
    # so "the whale" still finds the whales
    about = records(table)[2]
    assert np.mean([about[p] == 0 for p in rank(payload, ["the", "whale"])[:30]]) >= 0.9


def test_the_same_records_give_the_same_bytes_in_any_order(table):
    vectors, texts, _ = records(table)
    first = semantic_payload(vectors, texts, table, dims=8)
    again = semantic_payload(vectors.copy(), list(texts), table, dims=8)
    assert first == again
    order = np.random.default_rng(5).permutation(len(vectors))
    shuffled = semantic_payload(vectors[order], [texts[i] for i in order], table, dims=8)
    assert shuffled["table"] == first["table"] and shuffled["scale"] == first["scale"]
    np.testing.assert_array_equal(decode(shuffled)[1], decode(first)[1][order])


def test_no_payload_for_no_records_or_too_many_and_a_clear_error_for_another_models_vectors(table, monkeypatch):
    vectors, texts, _ = records(table, n_per=2)
    assert semantic_payload(vectors[:0], [], table) is None
    monkeypatch.setattr(semantic_module, "MAX_POINTS", len(vectors) - 1)
    assert semantic_payload(vectors, texts, table) is None
    monkeypatch.undo()
    with pytest.raises(ValueError, match="same model"):
        semantic_payload(vectors[:, :16], texts, table)


def test_the_page_refuses_a_payload_of_other_points(table, tmp_path):
    import polars as pl

    vectors, texts, _ = records(table, n_per=3)
    payload = semantic_payload(vectors, texts, table, dims=8)
    n = len(vectors)
    points = pl.DataFrame({"id": [f"r{i}" for i in range(n)], "x": np.arange(n, dtype=float),
                           "y": np.zeros(n), "text": texts})  # fmt: skip
    page = render_html_map(points, tmp_path / "m.html", semantic=payload).read_text("utf-8")
    assert '<script type="application/json" id="embedmap-semantic">{"dims":8,' in page
    with pytest.raises(ValueError, match="holds 30 points, the map 29"):
        render_html_map(points.head(n - 1), tmp_path / "other.html", semantic=payload)
    assert not (tmp_path / "other.html").exists()
