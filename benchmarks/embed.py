"""Embedding speed on the CPU: bare sentence-transformers against the library's encoder and its ONNX paths.

One process, the same N demo texts (Wikipedia summaries) and settings for every method (batch size,
normalisation, the model's own max_seq_length, the same number of CPU threads). The texts are cut into
blocks; within each block every method runs once, in an order that rotates from block to block, so
load from other processes on a shared machine falls on all methods alike. A round is one pass over all
N texts; the table shows medians over the rounds, and each ratio is the median of the per-round ratios
against the baseline measured in that same round.

    .venv/bin/python benchmarks/embed.py                      # 1000 texts, 3 rounds, 2 threads
    .venv/bin/python benchmarks/embed.py --n 2000 --rounds 5 --threads 4 --no-asset

Methods:
  bare ST.encode     SentenceTransformer(...).encode(texts, batch_size, normalize_embeddings=True): the baseline
  Encoder torch      dagster_embedmap's Encoder.encode as the embeddings asset calls it (chunks + progress)
  Encoder torch bf16 the same with bf16 weights (oneDNN uses AMX / AVX512-BF16 where the CPU has them)
  Encoder onnx       the fp32 ONNX export run by onnxruntime
  Encoder onnx-int8  the int8 (dynamic quantisation) ONNX export: the fast CPU path
  asset (torch)      the embeddings asset itself (dagster materialize), its own docs_per_s metadata, against
                     a bare encode of the same partition's texts right before it (run with --asset, default on)

Targets (issue "Performance and scale", embedding): Encoder torch >= 0.95x bare; the fast CPU path
>= 2x bare with a mean cosine similarity to the fp32 vectors above 0.98.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="demo texts (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the texts (default 3; medians reported)")
    parser.add_argument("--block", type=int, default=250, help="texts per interleaving block (default 250)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2),
                        help="CPU threads for torch and onnxruntime alike (default min(cores, 2))")
    parser.add_argument("--backends", nargs="*", default=["onnx", "onnx-int8"], help="ONNX backends to time")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                        help="also time torch with bf16 weights on the CPU (fast where the CPU has AMX / AVX512-BF16)")
    parser.add_argument("--cache-dir", default=None, help="ONNX export cache (default: the library's)")
    parser.add_argument("--asset", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the embeddings asset via dagster (default on)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> int:
    args = _parse()
    import torch
    from sentence_transformers import SentenceTransformer

    from dagster_embedmap.core.records.datasets import load_wiki_summaries
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings, resolve_model_path

    torch.set_num_threads(args.threads)
    texts = load_wiki_summaries(n=args.n, batches=1, seed=args.seed)["text"].to_list()
    try:
        cpu_flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        cpu_flags = set()
    print("CPU features: " + (", ".join(f for f in ("avx2", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
                                        if f in cpu_flags) or "unknown"))
    print(f"{len(texts)} demo texts, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}, "
          f"{args.rounds} rounds of {-(-len(texts) // args.block)} interleaved blocks")

    bare = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device="cpu")
    common = dict(device="cpu", batch_size=args.batch_size, num_threads=args.threads, cache_dir=args.cache_dir)
    encoders: dict[str, Encoder] = {"Encoder torch": Encoder(EncoderSettings(**common))}
    if args.bf16:
        encoders["Encoder torch bf16"] = Encoder(EncoderSettings(precision="bf16", **common))
    for backend in args.backends:
        encoders[f"Encoder {backend}"] = Encoder(EncoderSettings(backend=backend, **common))
    for name, enc in encoders.items():  # load (and export, on first use) outside the timing
        started = time.perf_counter()
        enc.dimension
        print(f"  loaded {name} in {time.perf_counter() - started:.1f}s"
              + (f" ({enc.onnx_path})" if enc.onnx_path else ""))

    def run_bare(block):
        return bare.encode(block, batch_size=args.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)

    def runner(enc):
        # as the embeddings asset calls it: with a progress callback (so in chunks)
        return lambda block: enc.encode(block, progress=lambda done, total, elapsed: None)

    methods = {"bare ST.encode": run_bare, **{name: runner(enc) for name, enc in encoders.items()}}
    warm = texts[: args.batch_size]
    for fn in methods.values():
        fn(warm)

    names = list(methods)
    blocks = [texts[i : i + args.block] for i in range(0, len(texts), args.block)]
    seconds = {name: [] for name in names}
    vectors: dict[str, np.ndarray] = {}
    for rnd in range(args.rounds):
        spent = dict.fromkeys(names, 0.0)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for b, block in enumerate(blocks):
            shift = (rnd * len(blocks) + b) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                out = methods[name](block)
                spent[name] += time.perf_counter() - started
                parts[name].append(out)
        for name in names:
            seconds[name].append(spent[name])
            vectors[name] = np.concatenate(parts[name])
        print(f"  round {rnd + 1}: " + ", ".join(f"{n} {len(texts) / spent[n]:.1f}" for n in names) + " docs/s")

    base = seconds["bare ST.encode"]
    ref = vectors["bare ST.encode"]
    targets = {"Encoder torch": (0.95, None), "Encoder torch bf16": (2.0, 0.98)}
    for backend in args.backends:
        targets[f"Encoder {backend}"] = (2.0, 0.98) if "int8" in backend else (None, None)
    rows = []
    for name in names:
        rate = statistics.median(len(texts) / s for s in seconds[name])
        ratio = statistics.median(b / s for b, s in zip(base, seconds[name]))
        cos = (vectors[name] * ref).sum(axis=1)
        speed_target, cos_target = targets.get(name, (None, None))
        verdict = []
        if speed_target is not None:
            verdict.append(f">= {speed_target}x: {'met' if ratio >= speed_target else 'MISSED'}")
        if cos_target is not None:
            verdict.append(f"cos > {cos_target}: {'met' if cos.mean() > cos_target else 'MISSED'}")
        rows.append((name, f"{rate:.1f}", f"{ratio:.2f}x", f"{cos.mean():.4f}", f"{cos.min():.4f}",
                     "; ".join(verdict) or ("baseline" if name == "bare ST.encode" else "-")))

    if args.asset:
        rows.append(_asset_row(args, bare))

    header = ("method", "docs/s (median)", "vs bare", "mean cos", "min cos", "target")
    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    for enc in encoders.values():
        enc.close()
    return 0


def _asset_row(args, bare) -> tuple[str, ...]:
    """The embeddings asset's own docs_per_s (dagster materialize of documents + embeddings of one
    partition) against a bare encode of that partition's texts, interleaved per round."""
    import logging

    import dagster as dg
    import polars as pl

    from dagster_embedmap import MapKeys, build_embedmap_defs, embedmap_resources
    from dagster_embedmap.core.records.datasets import load_wiki_summaries
    from dagster_embedmap.core.paths import MapLayout

    logging.getLogger("dagster").setLevel(logging.WARNING)
    frame = load_wiki_summaries(n=args.n, batches=1, seed=args.seed)
    partition = frame["batch"][0]
    rates, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        (Path(tmp) / "dagster").mkdir()
        pdef = dg.StaticPartitionsDefinition([partition])

        @dg.asset(partitions_def=pdef, name="bench_articles")
        def articles(context):  # no annotations: this module has postponed ones
            return frame.drop("batch")

        defs = dg.Definitions.merge(
            dg.Definitions(assets=[articles]),
            build_embedmap_defs("bench", articles, home=home),
        )
        resources = embedmap_resources(home, device="cpu", batch_size=args.batch_size, num_threads=args.threads)
        keys = MapKeys.for_map("bench")
        layout = MapLayout(home, "bench")
        with dg.instance_for_test(temp_dir=str(Path(tmp) / "dagster")) as instance:
            def materialize(selection):
                return dg.materialize(list(defs.assets), selection=selection, partition_key=partition,
                                      instance=instance, resources=resources, raise_on_error=True,
                                      run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})

            materialize(dg.AssetSelection.assets(articles.key, keys.documents))
            texts = pl.read_parquet(layout.documents(partition))["text"].to_list()
            for rnd in range(args.rounds):
                layout.embeddings(partition).unlink(missing_ok=True)  # no reuse: every record is embedded
                started = time.perf_counter()
                bare.encode(texts, batch_size=args.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
                bare_rate = len(texts) / (time.perf_counter() - started)
                result = materialize(dg.AssetSelection.assets(keys.embeddings))
                rate = next(float(event.materialization.metadata["docs_per_s"].value)
                            for event in result.get_asset_materialization_events()
                            if event.asset_key == keys.embeddings)
                rates.append(rate)
                ratios.append(rate / bare_rate)
                print(f"  asset round {rnd + 1}: asset {rate:.1f} docs/s, bare {bare_rate:.1f} docs/s")
    ratio = statistics.median(ratios)
    return ("asset (torch, docs_per_s metadata)", f"{statistics.median(rates):.1f}", f"{ratio:.2f}x", "-", "-",
            f">= 0.95x: {'met' if ratio >= 0.95 else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
