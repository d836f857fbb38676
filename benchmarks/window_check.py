"""What flagging over-long texts costs: ``Encoder.over_window`` against ``Encoder.encode`` of the same texts.

The embeddings step tokenizes every text longer (in characters) than the model's window to count the
texts the model sees only the beginning of. This measures that tokenization against the encoding it
accompanies, in the same process, on the same N demo texts, alternating the two for ``--rounds``
rounds (medians, and the median of the per-round ratios).

    .venv/bin/python benchmarks/window_check.py              # 1000 texts, 3 rounds
    .venv/bin/python benchmarks/window_check.py --n 2000 --rounds 5
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="demo texts (default 1000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from dagster_embedmap.core.records.datasets import load_wiki_summaries
    from dagster_embedmap.core.embedding import Encoder

    texts = load_wiki_summaries(n=args.n, batches=1, seed=0)["text"].to_list()
    encoder = Encoder()
    encoder.encode(texts[:64])  # load and warm the model outside the timings
    window = int(encoder.model.max_seq_length)
    encode_s, check_s, ratios = [], [], []
    flagged = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        encoder.encode(texts)
        encode_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        flagged = len(encoder.over_window(texts))
        check_s.append(time.perf_counter() - started)
        ratios.append(check_s[-1] / encode_s[-1])
    longer = sum(len(t) + 2 > window for t in texts)
    print(f"{len(texts)} texts, window {window} tokens: {longer} longer than the window in characters "
          f"(tokenized), {flagged} longer in tokens (flagged)")
    print(f"encode        {statistics.median(encode_s):8.3f} s (median of {args.rounds})")
    print(f"over_window   {statistics.median(check_s):8.3f} s")
    print(f"over_window / encode = {statistics.median(ratios):.4f} (median of per-round ratios)")


if __name__ == "__main__":
    main()
