"""Texts to vectors: :class:`Encoder` loads a sentence-transformers model once and encodes in batches."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .model import BACKENDS, EncoderSettings, ProgressFn, model_load_error, model_source, resolve_device, resolve_model_path, resolve_precision
from .onnx import _OnnxModel, export_onnx
from .vectors import _unit_rows


# -- the encoder ----------------------------------------------------------------------------------

_SYMBOL_NAMES_VERSION = 1
"""Bumped when :meth:`Encoder.model_texts` changes what the model is given (part of the fingerprint)."""


def _symbols(text: str) -> set[str]:
    """The symbol characters (Unicode category So, from U+2000 on: emoji, pictographs, signs) of ``text``."""
    return {ch for ch in set(text) if ord(ch) >= 0x2000 and unicodedata.category(ch) == "So"}


def embedded_alike_before_symbol_names(text: str) -> bool:
    """True when spelling out unknown symbols cannot change what the model is given for ``text``
    (it has no symbol at all): its vector from before symbols were spelled out is still the same."""
    return not _symbols(text)


class Encoder:
    """A sentence-transformers model loaded once, on first use, with the settings' device, precision and backend."""

    def __init__(self, settings: EncoderSettings = EncoderSettings()):
        if settings.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {settings.batch_size}")
        if settings.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}; got {settings.backend!r}")
        if settings.backend != "torch" and settings.precision not in ("auto", "fp32"):
            raise ValueError(
                f"precision {settings.precision!r} is for the torch backend; backend {settings.backend!r} "
                "runs fp32 (or int8 weights for 'onnx-int8'): leave precision at 'auto'"
            )
        if settings.num_threads is not None and settings.num_threads < 1:
            raise ValueError(f"num_threads must be at least 1, got {settings.num_threads}")
        self.settings = settings
        self._model = None
        self.device: str | None = None
        self.precision: str | None = None
        self.onnx_path: Path | None = None
        self._unknown: dict[str, str | None] = {}

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        if self._model is None:
            self._load()
        return self._model

    def _load(self) -> None:
        if self.settings.backend != "torch":
            self._load_onnx()
            return
        import torch
        from sentence_transformers import SentenceTransformer

        if self.settings.num_threads:
            torch.set_num_threads(int(self.settings.num_threads))
        device = resolve_device(self.settings.device)
        precision = resolve_precision(self.settings.precision, device)
        source, cache_only = model_source(self.settings.model)  # fails at once where it cannot load
        try:
            model = SentenceTransformer(source, device=device, local_files_only=cache_only)
        except (OSError, ValueError) as exc:  # not a model (a folder without one, an unknown Hub id, ...)
            raise model_load_error(self.settings.model, exc) from exc
        if self.settings.max_seq_length:
            model.max_seq_length = int(self.settings.max_seq_length)
        if precision == "fp16":
            model = model.half()
        elif precision == "bf16":
            model = model.to(torch.bfloat16)
        model.eval()
        self._model, self.device, self.precision = model, device, precision

    def _load_onnx(self) -> None:
        device = "cpu" if self.settings.device in ("auto", "cpu") else self.settings.device
        model_source(self.settings.model)  # fails at once where it cannot load
        folder = export_onnx(self.settings.model, self.settings.backend, self.settings.cache_dir)
        model = _OnnxModel(folder, device=device, num_threads=self.settings.num_threads)
        if self.settings.max_seq_length:
            model.max_seq_length = int(self.settings.max_seq_length)
        self.onnx_path = folder
        self._model, self.device = model, device
        self.precision = "int8" if self.settings.backend == "onnx-int8" else "fp32"

    @property
    def dimension(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def fingerprint(self) -> str:
        """What makes two runs' vectors interchangeable: the model, the backend and how texts are cut,
        prepared (:meth:`model_texts`) and scaled.

        Known without loading the model. Device and precision are left out: fp16 on a GPU and fp32 on
        a CPU give vectors of the same model (cosine above 0.999), so a cache survives moving hardware.
        The backend is in (an ONNX or int8 model is another model: changing it re-embeds).
        """
        return self._fingerprint(symbol_names=True)

    def earlier_fingerprint(self) -> tuple[str, Callable[[str], bool]]:
        """The fingerprint this model had before :meth:`model_texts` spelled out symbols, and which texts
        it embedded alike (those without symbols): their cached vectors stay valid
        (:func:`split_cached`)."""
        return self._fingerprint(symbol_names=False), embedded_alike_before_symbol_names

    def _fingerprint(self, symbol_names: bool) -> str:
        key: dict[str, object] = {
            "model": resolve_model_path(self.settings.model),
            "max_seq_length": self.settings.max_seq_length,
            "normalize": self.settings.normalize,
        }
        if self.settings.backend != "torch":
            key["backend"] = self.settings.backend
        if symbol_names:
            key["symbol_names"] = _SYMBOL_NAMES_VERSION
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def model_texts(self, texts: Sequence[str]) -> list[str]:
        """The texts as the model is given them: symbols its vocabulary lacks (most emoji: 🍕, ⚽, 🚀) are
        spelled out by their Unicode names ("slice of pizza", "soccer ball", "rocket"). Without this, a text
        of emoji reaches the model as one unknown token, and every such text gets the same vector."""
        out = list(texts)
        for i, text in enumerate(out):
            symbols = _symbols(text)
            if not symbols:
                continue
            names = {ch: self._unknown_symbol(ch) for ch in symbols}
            names = {ch: n for ch, n in names.items() if n}
            if names:
                out[i] = "".join(f" {names[ch]} " if ch in names else ch for ch in text)
        return out

    def _unknown_symbol(self, ch: str) -> str | None:
        """The lower-case Unicode name of a symbol the tokenizer can only give as its unknown token, else None."""
        if ch not in self._unknown:
            tokenizer = self.model.tokenizer
            unk = getattr(tokenizer, "unk_token", None)
            tokens = tokenizer.tokenize(ch)
            unknown = unk is not None and (not tokens or all(t == unk for t in tokens))
            self._unknown[ch] = unicodedata.name(ch, "").lower() or None if unknown else None
        return self._unknown[ch]

    def identity(self) -> dict[str, object]:
        """What determines the vectors: model, its resolved path, backend, precision, window and normalisation."""
        model = self.model
        ident: dict[str, object] = {
            "model": self.settings.model,
            "model_path": resolve_model_path(self.settings.model),
            "dimension": self.dimension,
            "backend": self.settings.backend,
            "device": self.device,
            "precision": self.precision,
            "max_seq_length": int(model.max_seq_length),
            "normalize": self.settings.normalize,
            "fingerprint": self.fingerprint(),
        }
        if self.onnx_path is not None:
            ident["onnx_path"] = str(self.onnx_path)
        return ident

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None, chunk_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(n, dimension)`` array, in input order.

        Texts are sorted by length so each batch pads little; they are fed in chunks of
        ``chunk_size`` (default 16 batches) and ``progress(done, total, elapsed_s)`` is called after each.
        Without ``progress`` and ``chunk_size`` the whole list goes to the model in one call (no chunking
        cost; sentence-transformers sorts by length itself).
        """
        model = self.model
        total = len(texts)
        if total == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        texts = self.model_texts(texts)
        if self.settings.backend == "torch":
            import torch

            context = torch.inference_mode()
        else:
            context = contextlib.nullcontext()
        kwargs = dict(batch_size=self.settings.batch_size, normalize_embeddings=self.settings.normalize,
                      convert_to_numpy=True, show_progress_bar=False)
        # half precision normalises in half precision (norms off by up to ~1e-3): redo it in float32
        renormalize = self.settings.normalize and self.precision in ("fp16", "bf16")
        with context:
            if progress is None and chunk_size is None:
                out = np.asarray(model.encode(texts, **kwargs), dtype=np.float32)
                return _unit_rows(out) if renormalize else out
            out = np.empty((total, self.dimension), dtype=np.float32)
            order = np.argsort([-len(t) for t in texts], kind="stable")
            chunk = chunk_size or self.settings.batch_size * 16
            start = time.perf_counter()
            for lo in range(0, total, chunk):
                idx = order[lo : lo + chunk]
                vecs = np.asarray(model.encode([texts[i] for i in idx], **kwargs), dtype=np.float32)
                out[idx] = _unit_rows(vecs) if renormalize else vecs
                if progress is not None:
                    progress(min(lo + chunk, total), total, time.perf_counter() - start)
        return out

    @property
    def embeds_images(self) -> bool:
        """Whether the model has an image tower (a CLIP-family sentence-transformers model)."""
        return self.settings.backend == "torch" and "image" in (getattr(self.model, "modalities", None) or ())

    def encode_images(self, images: Sequence[bytes], progress: ProgressFn | None = None) -> np.ndarray:
        """Embed images (JPEG / PNG bytes, e.g. the copies :func:`~dagster_embedmap.core.records.images.load_images`
        keeps) with the model's image tower into a float32 ``(n, dimension)`` array, in input order, in the
        same space as :meth:`encode` puts texts. Decoding runs on a thread pool, a chunk ahead of the model."""
        from concurrent.futures import ThreadPoolExecutor

        from ..records.images import decode_image

        total = len(images)
        if total == 0:
            return np.empty((0, self.dimension), dtype=np.float32)
        if not self.embeds_images:
            from ..errors import EmbedMapInputError

            raise EmbedMapInputError(
                f"model {self.settings.model!r} embeds no images" + (
                    f" through backend {self.settings.backend!r} (images need the torch backend)"
                    if self.settings.backend != "torch" else ""),
                fix="give the embedder a CLIP-family sentence-transformers model (clip-ViT-B-32, or a folder "
                    "saved by SentenceTransformer.save)",
                cli_fix="pass --model with a CLIP-family sentence-transformers model (clip-ViT-B-32, or a folder "
                        "saved by SentenceTransformer.save)")
        import torch

        model = self.model
        kwargs = dict(batch_size=self.settings.batch_size, normalize_embeddings=self.settings.normalize,
                      convert_to_numpy=True, show_progress_bar=False)
        renormalize = self.settings.normalize and self.precision in ("fp16", "bf16")
        out = np.empty((total, self.dimension), dtype=np.float32)
        chunk = self.settings.batch_size * 4
        start = time.perf_counter()
        with ThreadPoolExecutor() as pool, torch.inference_mode():
            ahead = pool.map(decode_image, images[:chunk])
            for lo in range(0, total, chunk):
                decoded = list(ahead)
                if lo + chunk < total:
                    ahead = pool.map(decode_image, images[lo + chunk: lo + 2 * chunk])
                vecs = np.asarray(model.encode(decoded, **kwargs), dtype=np.float32)
                out[lo: lo + len(decoded)] = _unit_rows(vecs) if renormalize else vecs
                if progress is not None:
                    progress(min(lo + chunk, total), total, time.perf_counter() - start)
        return out

    def over_window(self, texts: Sequence[str]) -> list[int]:
        """Positions of the texts longer than the model's window (``max_seq_length`` tokens, special
        tokens included): the model sees only their beginning. Only texts with more characters than
        the window are tokenized (a token covers at least one character)."""
        model = self.model
        window = int(model.max_seq_length)
        candidates = [i for i, t in enumerate(texts) if len(t) + 2 > window]
        if not candidates:
            return []
        tokens = model.tokenizer([texts[i] for i in candidates], add_special_tokens=True, truncation=False,
                                 verbose=False)["input_ids"]
        return [i for i, ids in zip(candidates, tokens) if len(ids) > window]

    def close(self) -> None:
        """Free the model (and the GPU memory it held)."""
        if self._model is None:
            return
        device = self.device or ""
        self._model = None
        import gc

        gc.collect()
        if device.startswith("cuda") and self.settings.backend == "torch":
            import torch

            torch.cuda.empty_cache()

    def settings_dict(self) -> dict[str, object]:
        return asdict(self.settings)
