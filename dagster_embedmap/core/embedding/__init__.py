"""Embedding: texts to vectors with sentence-transformers: device, precision, backend and batching in one place.

This is the only package that imports torch and onnxruntime (lazily, inside :class:`Encoder`, the
ONNX export and :func:`static_table`), so a code location that only defines assets never loads them.

:func:`static_table` distils the model into a per-token table (each token's sentence vector) that the
HTML map uses to embed a query in the browser.

Backends: ``torch`` runs the sentence-transformers model as is (fp16 on CUDA). ``onnx`` and
``onnx-int8`` run an ONNX export of the same model with onnxruntime, made offline from the local model
folder on first use and kept in a cache folder (:func:`export_onnx`); ``onnx-int8`` quantises the
linear layers' weights to int8 (dynamic quantisation), the fast path on a CPU.
"""

from .encoder import Encoder, embedded_alike_before_symbol_names
from .model import BACKENDS, BUNDLED_MODEL, DEFAULT_MODEL, Backend, EncoderSettings, Precision, resolve_device, resolve_model_path, resolve_precision
from .onnx import ONNX_EXPORT_VERSION, export_onnx, onnx_cache_dir, onnx_export_path
from .static import StaticTable, static_table, tokenizer_spec
from .vectors import split_cached, stack_vectors, vector_health

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
    "embedded_alike_before_symbol_names",
    "BUNDLED_MODEL",
    "DEFAULT_MODEL",
    "BACKENDS",
    "StaticTable",
    "static_table",
    "tokenizer_spec",
]
