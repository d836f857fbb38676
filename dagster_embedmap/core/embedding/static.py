"""A static token table distilled from a sentence model: each vocabulary token's sentence vector.

A query's sentence vector is approximated by a weighted mean of its tokens' rows, so a query can be
embedded with a table lookup and a sum, without running the model: this is what lets the offline HTML
map search by meaning in the browser (:mod:`..render.semantic`). A token's row is exactly the model's
vector of the one-token text ``[CLS] token [SEP]`` (pooled and normalised as the model does), so a
one-word query gets the very vector ``embedmap search`` gives it.

Only WordPiece tokenizers with BERT's normaliser and pre-tokeniser (the MiniLM, MPNet-free BERT family)
are supported, since the page re-implements that tokenizer in JavaScript; :func:`tokenizer_spec` says why
another model cannot be distilled. The table is computed once per model (about 40 s for MiniLM on 2 CPU
cores) and cached beside the ONNX exports.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .model import resolve_model_path
from .onnx import onnx_cache_dir

__all__ = ["StaticTable", "static_table", "tokenizer_spec"]

STATIC_VERSION = 1
"""Bumped when the way rows are computed changes (old caches are then ignored)."""
_BATCH = 1024


@dataclass(frozen=True)
class StaticTable:
    """``tokens[i]``'s row is ``vectors[i]`` (float32, the model's dimension); ``spec`` is how the
    tokenizer splits text (:func:`tokenizer_spec`)."""

    tokens: list[str]
    vectors: np.ndarray
    spec: dict
    tokenizer_json: str
    """The model's tokenizer (``tokenizers`` JSON), to count tokens without loading transformers."""

    def token_counts(self, texts: list[str]) -> np.ndarray:
        """How often each of :attr:`tokens` occurs in ``texts`` (the model's own tokenizer)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self.tokenizer_json)
        row = {t: i for i, t in enumerate(self.tokens)}
        vocab = tok.get_vocab()
        lookup = np.full(max(vocab.values()) + 1, -1, dtype=np.int64)
        for t, i in vocab.items():
            lookup[i] = row.get(t, -1)
        counts = np.zeros(len(self.tokens), dtype=np.int64)
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            rows = lookup[np.asarray(enc.ids, dtype=np.int64)]
            np.add.at(counts, rows[rows >= 0], 1)
        return counts


def tokenizer_spec(tokenizer) -> tuple[dict | None, str]:
    """How a fast BERT WordPiece tokenizer splits text (``lowercase``, ``strip_accents``,
    ``chinese_chars``, ``prefix``, ``max_chars``, ``unk``), or None and the reason it is not one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None, "the model's tokenizer is not a fast (Rust) tokenizer"
    conf = json.loads(backend.to_str())
    model, norm, pre = conf.get("model") or {}, conf.get("normalizer") or {}, conf.get("pre_tokenizer") or {}
    if model.get("type") != "WordPiece":
        return None, f"the model's tokenizer is {model.get('type')}, not WordPiece"
    if norm.get("type") != "BertNormalizer" or pre.get("type") != "BertPreTokenizer":
        return None, "the model's tokenizer does not split text the way BERT does"
    lowercase = bool(norm.get("lowercase", True))
    strip = norm.get("strip_accents")
    return {
        "lowercase": lowercase,
        "strip_accents": lowercase if strip is None else bool(strip),
        "chinese_chars": bool(norm.get("handle_chinese_chars", True)),
        "prefix": model.get("continuing_subword_prefix", "##"),
        "max_chars": int(model.get("max_input_chars_per_word", 100)),
        "unk": model.get("unk_token", "[UNK]"),
    }, ""


def _cache_file(model: str, cache_dir: str | os.PathLike | None) -> Path:
    path = resolve_model_path(model)
    stamp = path
    weights = [p for p in Path(path).glob("*.safetensors")] + [p for p in Path(path).glob("*.bin")]
    if weights:  # a model folder: its weights' size and time tell a replaced model from the cached one
        w = max(weights, key=lambda p: p.stat().st_size)
        stamp += f"|{w.stat().st_size}|{w.stat().st_mtime_ns}"
    key = hashlib.sha256(f"{STATIC_VERSION}|{stamp}".encode()).hexdigest()[:16]
    return onnx_cache_dir(cache_dir).parent / "static" / f"{key}.npz"


def static_table(model: str, cache_dir: str | os.PathLike | None = None) -> tuple[StaticTable | None, str]:
    """The static table of ``model`` (a sentence-transformers id or folder), from the cache or computed
    and cached; or None and why the model's tokenizer cannot be used in the browser."""
    cache = _cache_file(model, cache_dir)
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as data:
                return StaticTable(str(data["tokens"]).split("\n"), data["vectors"].astype(np.float32),
                                   json.loads(str(data["spec"])), str(data["tokenizer"])), ""
        except (OSError, ValueError, KeyError):
            pass  # unreadable (an interrupted write by an older version): compute it again
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(resolve_model_path(model), device="cpu")
    st.eval()
    tok = st.tokenizer
    spec, why = tokenizer_spec(tok)
    if spec is None:
        return None, why
    special = set(tok.all_special_tokens)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    kept = [(t, i) for t, i in vocab if t not in special and "\n" not in t
            and not (t.startswith("[unused") and t.endswith("]"))]
    width = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
    rows = np.empty((len(kept), width()), dtype=np.float32)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    with torch.inference_mode():
        for lo in range(0, len(kept), _BATCH):
            ids = torch.tensor([[cls, i, sep] for _, i in kept[lo : lo + _BATCH]])
            feats = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            if "token_type_ids" in tok.model_input_names:
                feats["token_type_ids"] = torch.zeros_like(ids)
            rows[lo : lo + len(ids)] = st(feats)["sentence_embedding"].float().numpy()
    table = StaticTable([t for t, _ in kept], rows, spec, tok.backend_tokenizer.to_str())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, tokens=np.asarray("\n".join(table.tokens)), vectors=rows.astype(np.float16),
             spec=np.asarray(json.dumps(spec)), tokenizer=np.asarray(table.tokenizer_json))
    os.replace(tmp, cache)
    return table, ""
