"""Embedding speed on a GPU: fp32 and fp16 (torch CUDA), length-sorted batching, in one process.

From the repository root, on a machine with an NVIDIA GPU (nothing is downloaded at run time: the model
is the bundled one and the texts are the demo corpus):

    TORCH_SPEC=torch bash scripts/setup.sh && .venv/bin/python benchmarks/gpu_embed.py

(``TORCH_SPEC=torch`` lets pip pick the CUDA build of torch; if ``.venv`` already has a CUDA torch,
``.venv/bin/python benchmarks/gpu_embed.py`` alone is enough.) Options: ``--n 5000`` texts (default
5000, the demo corpus repeated if needed), ``--batch-size 256``, ``--rounds 3``. ``--device cpu`` is a dry
run on the CPU (fp32 and bf16 instead of fp16). Without CUDA and without ``--device cpu`` it prints why
and exits with status 2.

Prints docs/s for a bare ``SentenceTransformer.encode`` in fp32 (the baseline), the library's Encoder
in fp32 and in fp16 (medians over interleaved rounds, ratios against the baseline of the same round),
and the cosine similarity of the fp16 vectors to the fp32 ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def no_cuda(device: str) -> bool:
    """True (and says why, on stderr) when ``device`` is a CUDA one and torch sees none."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device visible to torch {torch.__version__} (built for CUDA {torch.version.cuda}); "
              "run this on a GPU machine with a CUDA build of torch (TORCH_SPEC=torch bash scripts/setup.sh), "
              "or pass --device cpu for a dry run on the CPU.", file=sys.stderr)
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description="fp32 vs fp16 embedding speed on a GPU")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="'cuda' (default), 'cuda:N', or 'cpu' for a dry run")
    args = parser.parse_args()

    import numpy as np
    import torch

    if no_cuda(args.device):
        return 2

    from sentence_transformers import SentenceTransformer

    from dagster_embedmap.core.records.datasets import load_wiki_summaries
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings, resolve_model_path

    corpus = load_wiki_summaries(n=None, batches=1, seed=0)["text"].to_list()
    texts = (corpus * (args.n // len(corpus) + 1))[: args.n]
    device = args.device
    half = "fp16" if device.startswith("cuda") else "bf16"
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU (dry run)"
    print(f"{name}: torch {torch.__version__}, {len(texts)} texts, batch {args.batch_size}, {args.rounds} rounds")

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    bare = SentenceTransformer(resolve_model_path("all-MiniLM-L6-v2"), device=device)
    encoders = {
        "Encoder fp32": Encoder(EncoderSettings(device=device, precision="fp32", batch_size=args.batch_size)),
        f"Encoder {half}": Encoder(EncoderSettings(device=device, precision=half, batch_size=args.batch_size)),
    }

    def run_bare(batch):
        return bare.encode(batch, batch_size=args.batch_size, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)

    methods = {"bare ST.encode fp32": run_bare}
    methods.update({k: (lambda enc: lambda batch: enc.encode(batch, progress=lambda *a: None))(e)
                    for k, e in encoders.items()})
    for fn in methods.values():  # warm-up: load, CUDA context, kernels
        fn(texts[: args.batch_size * 2])
    sync()

    rates = {k: [] for k in methods}
    ratios = {k: [] for k in methods}
    vectors = {}
    for rnd in range(args.rounds):
        order = list(methods)[rnd % len(methods):] + list(methods)[: rnd % len(methods)]
        spent = {}
        for key in order:
            sync()
            started = time.perf_counter()
            vectors[key] = methods[key](texts)
            sync()
            spent[key] = time.perf_counter() - started
        for key in methods:
            rates[key].append(len(texts) / spent[key])
            ratios[key].append(spent["bare ST.encode fp32"] / spent[key])
        print(f"  round {rnd + 1}: " + ", ".join(f"{k} {len(texts) / spent[k]:.0f}" for k in methods) + " docs/s")

    ref = vectors["Encoder fp32"]
    print()
    print("| method | docs/s (median) | vs bare fp32 | mean cos to fp32 | min cos |")
    print("|---|---|---|---|---|")
    for key in methods:
        cos = (np.asarray(vectors[key], dtype=np.float32) * ref).sum(axis=1)
        print(f"| {key} | {statistics.median(rates[key]):.0f} | {statistics.median(ratios[key]):.2f}x | "
              f"{cos.mean():.4f} | {cos.min():.4f} |")
    if device.startswith("cuda"):
        print(f"\npeak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
