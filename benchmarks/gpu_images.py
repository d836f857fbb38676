"""Image and text embedding speed of a CLIP model on a GPU: fp32 and fp16, in one process.

From the repository root, on a machine with an NVIDIA GPU (nothing is downloaded: the model is built
here with CLIP ViT-B/32's architecture and random weights, as ``benchmarks/images.py`` builds it, or
``--model FOLDER`` names a CLIP model saved by ``SentenceTransformer.save``):

    TORCH_SPEC=torch bash scripts/setup.sh && .venv/bin/python benchmarks/gpu_images.py
    .venv/bin/python benchmarks/gpu_images.py --device cpu --n 64      # a dry run on the CPU (bf16 for fp16)

Prints images/s and texts/s for a bare ``SentenceTransformer.encode`` in fp32 (the baseline: images
decoded before timing), the library's ``Encoder.encode_images`` (from the kept JPEG copies, decoded on
a thread pool a chunk ahead) and ``Encoder.encode`` in fp32 and in fp16 at each ``--batch-sizes``,
medians over ``--rounds`` interleaved rounds with ratios against the baseline of the same round, and
the cosine of the fp16 vectors to the fp32 ones. Without CUDA and without ``--device cpu`` it says why
and exits with status 2.
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
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description="CLIP image and text embedding speed, fp32 vs fp16")
    parser.add_argument("--n", type=int, default=1024, help="images (and as many captions)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda", help="'cuda' (default), 'cuda:N', or 'cpu' for a dry run")
    parser.add_argument("--model", help="a CLIP sentence-transformers folder (default: built, random weights)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from gpu_embed import no_cuda
    from images import make_images, make_model

    if no_cuda(args.device):
        return 2

    from dagster_embedmap.core.embedding import Encoder, EncoderSettings
    from dagster_embedmap.core.records.images import decode_image, load_images

    root = Path(tempfile.mkdtemp(prefix="gpu-images-"))
    model = args.model or str(make_model(root))
    paths = make_images(root, args.n)
    kept = load_images(paths, [str(i) for i in range(len(paths))], root).images
    pictures = [decode_image(b) for b in kept]
    captions = [f"a photo number {i} of a shape on a noisy background" for i in range(len(paths))]
    device, half = args.device, ("fp16" if args.device.startswith("cuda") else "bf16")
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "CPU (dry run)"
    print(f"{name}; {len(kept)} images (640 x 480 JPEG, kept as 256 px copies) and captions; model {model}")

    def timed(fn) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for batch in args.batch_sizes:
        full = Encoder(EncoderSettings(model=model, device=device, precision="fp32", batch_size=batch))
        low = Encoder(EncoderSettings(model=model, device=device, precision=half, batch_size=batch))
        full.encode_images(kept[:batch])  # warm both (CUDA kernels, the first batch's allocations)
        low.encode_images(kept[:batch])
        rows: dict[str, list[float]] = {k: [] for k in ("bare", "fp32", half, "bare_t", "fp32_t", half + "_t")}
        for _ in range(args.rounds):
            with torch.inference_mode():
                rows["bare"].append(timed(lambda: full.model.encode(pictures, batch_size=batch,
                                                                    normalize_embeddings=True)))
                rows["bare_t"].append(timed(lambda: full.model.encode(captions, batch_size=batch,
                                                                      normalize_embeddings=True)))
            rows["fp32"].append(timed(lambda: full.encode_images(kept)))
            rows[half].append(timed(lambda: low.encode_images(kept)))
            rows["fp32_t"].append(timed(lambda: full.encode(captions)))
            rows[half + "_t"].append(timed(lambda: low.encode(captions)))
        a, b = full.encode_images(kept), low.encode_images(kept)
        cos = float(np.median(np.sum(a * b, axis=1)))
        med = {k: statistics.median(v) for k, v in rows.items()}
        n = len(kept)
        print(f"batch {batch}: images/s bare fp32 {n / med['bare']:.1f} | Encoder fp32 {n / med['fp32']:.1f} "
              f"({med['bare'] / med['fp32']:.2f}x) | Encoder {half} {n / med[half]:.1f} ({med['bare'] / med[half]:.2f}x); "
              f"texts/s bare fp32 {n / med['bare_t']:.1f} | Encoder fp32 {n / med['fp32_t']:.1f} | Encoder {half} "
              f"{n / med[half + '_t']:.1f}; median cosine {half} vs fp32 {cos:.4f}")
        full.close()
        low.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
