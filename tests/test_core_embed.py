"""Tests for dagster_embedmap.core.embed with the real bundled all-MiniLM-L6-v2 model (CPU)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dagster_embedmap.core.embed import (  # noqa: E402
    BUNDLED_MODEL,
    Encoder,
    EncoderSettings,
    resolve_device,
    resolve_model_path,
    resolve_precision,
)

DIM = 384


@pytest.fixture(scope="module")
def encoder():
    enc = Encoder(EncoderSettings(device="cpu", batch_size=4))
    yield enc
    enc.close()


# -- resolution (no model load) -------------------------------------------------------------------


@pytest.mark.parametrize("alias", ["all-MiniLM-L6-v2", BUNDLED_MODEL])
def test_bundled_alias_resolves_to_an_existing_model_folder(alias):
    path = Path(resolve_model_path(alias))
    assert path.is_absolute()
    assert path.is_dir()
    assert any(path.glob("*.json"))  # a sentence-transformers model folder has its config files


def test_local_folder_is_used_as_is_and_other_names_pass_through(tmp_path):
    assert resolve_model_path(str(tmp_path)) == str(tmp_path.resolve())
    assert resolve_model_path("someone/other-model") == "someone/other-model"


def test_auto_device_is_cpu_here():
    assert resolve_device("auto") == "cpu"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="CUDA"):
        resolve_device("cuda")


def test_resolve_precision():
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("auto", "cuda:1") == "fp16"
    assert resolve_precision("auto", "mps") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", "cpu")


def test_bad_batch_size_is_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        Encoder(EncoderSettings(batch_size=0))


def test_encoder_loads_lazily():
    enc = Encoder()
    assert not enc.loaded
    assert enc.device is None and enc.precision is None
    enc.close()  # closing an unloaded encoder is a no-op
    assert not enc.loaded


# -- encoding -------------------------------------------------------------------------------------

TEXTS = [
    "A striker scored twice in the second half of the football match.",
    "Simmer the tomato sauce with garlic and basil for twenty minutes.",
    "Astronomers observed a distant galaxy with the space telescope.",
    "Short.",
    "The goalkeeper saved a penalty kick in the final minute of the soccer game, and the crowd cheered loudly.",
    "Bake the bread in a hot oven until the crust is golden brown.",
    "Jupiter is the largest planet in the solar system.",
]


def test_encode_shape_dtype_and_unit_norm(encoder):
    vecs = encoder.encode(TEXTS)
    assert encoder.loaded
    assert encoder.device == "cpu" and encoder.precision == "fp32"
    assert encoder.dimension == DIM
    assert vecs.shape == (len(TEXTS), DIM)
    assert vecs.dtype == np.float32
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)


def test_encode_keeps_input_order(encoder):
    # small chunks so length-sorting and chunking both come into play
    vecs = encoder.encode(TEXTS, chunk_size=3)
    for i, text in enumerate(TEXTS):
        alone = encoder.encode([text])[0]
        assert float(vecs[i] @ alone) > 0.999, f"row {i} is not the vector of its text"
    # and rows are not all the same
    assert float(vecs[0] @ vecs[1]) < 0.9


def test_encode_is_deterministic_across_calls(encoder):
    a = encoder.encode(TEXTS)
    b = encoder.encode(list(reversed(TEXTS)))[::-1]
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_progress_reports_each_chunk_and_ends_at_total(encoder):
    calls = []
    encoder.encode(TEXTS, progress=lambda done, total, elapsed: calls.append((done, total, elapsed)), chunk_size=3)
    assert [c[:2] for c in calls] == [(3, 7), (6, 7), (7, 7)]
    assert all(c[2] >= 0 for c in calls)
    assert [c[2] for c in calls] == sorted(c[2] for c in calls)


def test_similar_sentences_are_closer_than_unrelated_ones(encoder):
    football, sauce, galaxy, _, soccer, bread, jupiter = encoder.encode(TEXTS)
    assert football @ soccer > football @ sauce
    assert football @ soccer > football @ galaxy
    assert sauce @ bread > sauce @ galaxy
    assert galaxy @ jupiter > galaxy @ bread
    assert galaxy @ jupiter > galaxy @ football


def test_empty_input_gives_an_empty_matrix(encoder):
    calls = []
    out = encoder.encode([], progress=lambda *a: calls.append(a))
    assert out.shape == (0, DIM)
    assert out.dtype == np.float32
    assert calls == []


def test_identity_describes_the_vectors(encoder):
    ident = encoder.identity()
    assert ident["model"] == "all-MiniLM-L6-v2"
    assert ident["model_path"] == resolve_model_path("all-MiniLM-L6-v2")
    assert ident["dimension"] == DIM
    assert ident["device"] == "cpu" and ident["precision"] == "fp32"
    assert ident["normalize"] is True
    assert ident["max_seq_length"] > 0
    assert encoder.settings_dict()["batch_size"] == 4


def test_close_frees_the_model_and_it_reloads_on_use():
    enc = Encoder(EncoderSettings(device="cpu", max_seq_length=32))
    first = enc.encode(["hello world"])
    assert enc.loaded
    assert int(enc.model.max_seq_length) == 32
    enc.close()
    assert not enc.loaded
    again = enc.encode(["hello world"])
    assert enc.loaded
    np.testing.assert_allclose(first, again, atol=1e-4)
    enc.close()
    assert not enc.loaded


def test_vector_health_flags_nan_zero_rows_and_a_wrong_dimension():
    from dagster_embedmap.core.embed import vector_health

    good = np.eye(3, 4, dtype=np.float32)
    assert vector_health(good, 4) == {"dimension": 4, "expected_dimension": 4, "non_finite_rows": 0,
                                      "zero_rows": 0, "passed": True}
    bad = good.copy()
    bad[0, 1] = np.nan
    bad[2] = 0.0
    health = vector_health(bad, 4)
    assert (health["non_finite_rows"], health["zero_rows"], health["passed"]) == (1, 1, False)
    assert vector_health(good, 384)["passed"] is False


def test_stack_vectors_keeps_rows_and_handles_an_empty_partition():
    from dagster_embedmap.core.embed import stack_vectors

    stacked = stack_vectors([[1.0, 2.0], [3.0, 4.0]])
    assert stacked.dtype == np.float32 and stacked.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert stack_vectors([]).shape == (0, 0)


def test_split_cached_reuses_only_unchanged_texts_under_the_same_model():
    import polars as pl

    from dagster_embedmap.core.embed import split_cached

    docs = pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y2", "z"], "content_hash": ["hx", "hy2", "hz"]})
    previous = pl.DataFrame({"id": ["a", "b", "d"], "content_hash": ["hx", "hy", "hd"], "model": ["m1"] * 3,
                             "vector": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]})
    cached, todo = split_cached(docs, previous, "m1")
    assert cached["id"].to_list() == ["a"] and cached["vector"].to_list() == [[1.0, 0.0]]
    assert sorted(todo["id"].to_list()) == ["b", "c"] and "text" in todo.columns
    cached, todo = split_cached(docs, previous, "m2")  # another model: nothing is reused
    assert cached.is_empty() and sorted(todo["id"].to_list()) == ["a", "b", "c"]
    cached, todo = split_cached(docs, None, "m1")
    assert cached.is_empty() and todo.height == 3


def test_fingerprint_changes_with_the_model_settings_not_the_device():
    base = Encoder(EncoderSettings())
    assert base.fingerprint() == Encoder(EncoderSettings(device="cpu", batch_size=8)).fingerprint()
    assert base.fingerprint() != Encoder(EncoderSettings(max_seq_length=64)).fingerprint()
    assert base.fingerprint() != Encoder(EncoderSettings(normalize=False)).fingerprint()
    assert not base.loaded  # computing it does not load the model
