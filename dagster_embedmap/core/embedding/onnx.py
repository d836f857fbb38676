"""The ONNX export of a sentence-transformers model (offline, cached) and its onnxruntime runner."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..paths import file_lock
from .model import DEFAULT_MODEL, resolve_model_path


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
    model: str = DEFAULT_MODEL,
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


def _quantized_into(fused: Path, target: Path) -> dict[str, object]:
    """int8 dynamic quantisation of the weights of ``fused`` into ``target``; how it was done."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantization: dict[str, object] = {"method": "dynamic", "weights": "int8", "per_channel": True,
                                       "reduce_range": not _cpu_has_vnni(), "ops": ["MatMul", "Attention"]}
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
    return quantization


def _export_onnx_into(folder: Path, model_path: str, quantize: bool) -> None:
    """The export itself: the transformer as ONNX (eager attention, so onnxruntime can fuse it),
    onnxruntime's transformer graph fusions, optionally int8 dynamic quantisation of the weights,
    the tokenizer, and ``export.json`` describing pooling and normalisation. Checked against torch."""
    import torch
    from sentence_transformers import SentenceTransformer

    try:
        import onnx  # noqa: F401
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
    quantization = _quantized_into(fused, folder / _ONNX_FILE) if quantize else None
    if not quantize:
        os.replace(fused, folder / _ONNX_FILE)
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
