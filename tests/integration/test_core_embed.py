"""Tests for dagster_embedmap.core.embedding with the real bundled all-MiniLM-L6-v2 model (CPU)."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dagster_embedmap.core.embedding import (  # noqa: E402
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
    from dagster_embedmap.core.embedding import vector_health

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
    from dagster_embedmap.core.embedding import stack_vectors

    stacked = stack_vectors([[1.0, 2.0], [3.0, 4.0]])
    assert stacked.dtype == np.float32 and stacked.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert stack_vectors([]).shape == (0, 0)


def test_split_cached_reuses_only_unchanged_texts_under_the_same_model():
    import polars as pl

    from dagster_embedmap.core.embedding import split_cached

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


# -- backends: ONNX (fp32 and int8), exported offline and cached ------------------------------------

ONNX_TEXTS = TEXTS + [
    "The parliament passed a new law on renewable energy subsidies.",
    "Mozart composed his first symphony at the age of eight.",
    "The patient was treated with antibiotics for a bacterial infection.",
    "Volcanic eruptions can cool the climate for several years.",
    "The stock market fell sharply after the central bank raised interest rates.",
    "A marathon runner trains by running long distances every week.",
    "The cathedral's stained-glass windows date from the thirteenth century.",
    "Honeybees communicate the location of flowers with a waggle dance.",
    "The novel follows a detective investigating a murder in Victorian London.",
    "Quantum computers use qubits that can be in a superposition of states.",
    "Rice is the staple food for more than half of the world's population.",
    "The bridge was built of steel and opened to traffic in 1932.",
    "Penguins live mostly in the Southern Hemisphere, especially Antarctica.",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    import onnx  # noqa: F401  (the `test` extra installs both; a missing one fails, it does not skip)
    import onnxruntime  # noqa: F401

    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def torch_vectors(encoder):
    return encoder.encode(ONNX_TEXTS)


@pytest.fixture(scope="module")
def int8_encoder(onnx_cache):
    enc = Encoder(EncoderSettings(backend="onnx-int8", cache_dir=str(onnx_cache), batch_size=8))
    yield enc
    enc.close()


def test_int8_onnx_vectors_stay_close_to_torch(int8_encoder, torch_vectors):
    vecs = int8_encoder.encode(ONNX_TEXTS)
    assert vecs.shape == torch_vectors.shape and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    cosine = (vecs * torch_vectors).sum(axis=1)
    assert cosine.mean() > 0.98 and cosine.min() > 0.95, cosine
    ident = int8_encoder.identity()
    assert (ident["backend"], ident["device"], ident["precision"]) == ("onnx-int8", "cpu", "int8")
    assert ident["dimension"] == DIM and ident["max_seq_length"] == 256
    # input order, chunking and progress work as with torch
    calls = []
    chunked = int8_encoder.encode(ONNX_TEXTS, progress=lambda d, t, e: calls.append(d), chunk_size=7)
    # dynamic int8 quantises activations per batch, so batch-mates move a vector slightly (not its meaning)
    assert float((chunked * vecs).sum(axis=1).min()) > 0.97
    assert calls[-1] == len(ONNX_TEXTS)


def test_fp32_onnx_gives_the_torch_vectors(onnx_cache, torch_vectors):
    enc = Encoder(EncoderSettings(backend="onnx", cache_dir=str(onnx_cache), batch_size=8))
    vecs = enc.encode(ONNX_TEXTS)
    assert float((vecs * torch_vectors).sum(axis=1).min()) > 0.999
    assert enc.identity()["precision"] == "fp32"
    enc.close()


def test_the_onnx_export_is_cached_and_reused(int8_encoder, onnx_cache, monkeypatch):
    import json

    from dagster_embedmap.core.embedding import onnx as embed

    int8_encoder.dimension  # loaded (exported) by now
    folder = int8_encoder.onnx_path
    assert folder is not None and folder.parent == onnx_cache
    assert (folder / "model.onnx").is_file() and (folder / "tokenizer").is_dir()
    meta = json.loads((folder / "export.json").read_text())
    assert meta["quantization"]["weights"] == "int8" and meta["pooling"] == "mean"
    assert not [p for p in onnx_cache.iterdir() if ".tmp-" in p.name]  # no half-written leftovers
    stamp = (folder / "model.onnx").stat().st_mtime_ns

    def no_export(*args, **kwargs):
        raise AssertionError("exported again although the cache holds the model")

    monkeypatch.setattr(embed, "_export_onnx_into", no_export)
    again = Encoder(EncoderSettings(backend="onnx-int8", cache_dir=str(onnx_cache)))
    vec = again.encode(["Jupiter is the largest planet in the solar system."])
    assert again.onnx_path == folder and (folder / "model.onnx").stat().st_mtime_ns == stamp
    np.testing.assert_allclose(vec[0], int8_encoder.encode([TEXTS[-1]])[0], atol=1e-5)
    assert embed.export_onnx("all-MiniLM-L6-v2", "onnx-int8", onnx_cache) == folder
    again.close()


def test_a_leftover_without_export_json_is_replaced(onnx_cache, tmp_path, monkeypatch):
    from dagster_embedmap.core.embedding import onnx as embed

    target = embed.onnx_export_path("all-MiniLM-L6-v2", "onnx-int8", tmp_path)
    target.mkdir(parents=True)
    (target / "model.onnx").write_bytes(b"half a model")

    def fake_export(folder, model_path, quantize):
        (folder / "model.onnx").write_bytes(b"whole")
        (folder / "export.json").write_text("{}")

    monkeypatch.setattr(embed, "_export_onnx_into", fake_export)
    assert embed.export_onnx("all-MiniLM-L6-v2", "onnx-int8", tmp_path) == target
    assert (target / "model.onnx").read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [target.name]


def test_fingerprint_differs_per_backend_and_the_earlier_one_still_serves_texts_without_symbols():
    import hashlib
    import json

    import polars as pl

    from dagster_embedmap.core.embedding import split_cached

    prints = {b: Encoder(EncoderSettings(backend=b)).fingerprint() for b in ("torch", "onnx", "onnx-int8")}
    assert len(set(prints.values())) == 3
    # the fingerprint from before symbols were spelled out (and before backends existed, for torch)
    old_key = {"model": resolve_model_path("all-MiniLM-L6-v2"), "max_seq_length": None, "normalize": True}
    old = hashlib.sha256(json.dumps(old_key, sort_keys=True).encode()).hexdigest()[:16]
    earlier, alike = Encoder().earlier_fingerprint()
    assert earlier == old != prints["torch"]
    assert alike("plain words, accents é and CJK 東京") and not alike("pizza 🍕")
    assert prints["onnx-int8"] == Encoder(EncoderSettings(backend="onnx-int8", cache_dir="/elsewhere")).fingerprint()

    # vectors cached under the earlier fingerprint are kept for texts it embedded alike, redone for the others
    docs = pl.DataFrame({"id": ["a", "b"], "text": ["plain", "pizza 🍕"], "content_hash": ["h1", "h2"]})
    previous = pl.DataFrame({"id": ["a", "b"], "content_hash": ["h1", "h2"], "model": [old, old],
                             "vector": [[1.0, 0.0], [0.0, 1.0]], "truncated": [False, False]})
    cached, todo = split_cached(docs, previous, prints["torch"], earlier=(earlier, alike))
    assert cached["id"].to_list() == ["a"] and todo["id"].to_list() == ["b"]


def test_symbols_the_model_does_not_know_are_spelled_out_so_emoji_texts_differ(encoder):
    assert encoder.model_texts(["🍕🍔", "plain", "I ♥ NY"]) == [" slice of pizza  hamburger ", "plain", "I ♥ NY"]
    food, more_food, sport = encoder.encode(["🍕🍔🍟", "🍩🍪🍰", "⚽🏀🏈"])
    assert float(food @ sport) < 0.5 and float(food @ more_food) > float(food @ sport)


def test_bad_backend_settings_are_rejected_clearly():
    with pytest.raises(ValueError, match="backend must be one of 'torch', 'onnx', 'onnx-int8'; got 'tensorrt'"):
        Encoder(EncoderSettings(backend="tensorrt"))
    with pytest.raises(ValueError, match="precision 'fp16' is for the torch backend"):
        Encoder(EncoderSettings(backend="onnx-int8", precision="fp16"))
    with pytest.raises(ValueError, match="num_threads"):
        Encoder(EncoderSettings(num_threads=0))
    from dagster_embedmap.core.embedding import onnx_export_path

    with pytest.raises(ValueError, match="local model folder"):
        onnx_export_path("someone/not-here", "onnx")


def test_the_resource_passes_backend_cache_dir_and_threads(tmp_path):
    from pydantic import ValidationError

    from dagster_embedmap.resources.embedder import EmbedderResource

    settings = EmbedderResource(backend="onnx-int8", cache_dir=str(tmp_path), num_threads=2).settings()
    assert (settings.backend, settings.cache_dir, settings.num_threads) == ("onnx-int8", str(tmp_path), 2)
    assert EmbedderResource().settings().backend == "torch"
    with pytest.raises(ValidationError):
        EmbedderResource(backend="tensorrt")


def test_bf16_vectors_are_unit_length_in_float32():
    enc = Encoder(EncoderSettings(device="cpu", precision="bf16"))
    vecs = enc.encode(TEXTS[:3])
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    enc.close()


def test_the_embed_module_does_not_import_torch_or_onnxruntime():
    import subprocess
    import sys

    code = ("import sys, dagster_embedmap.core.embedding, dagster_embedmap.resources.embedder; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'sentence_transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
