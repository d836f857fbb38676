"""Image records on a CPU: what reading them costs, what embedding them costs, and the page's size.

    .venv/bin/python benchmarks/images.py                  # 256 images, batch sizes 8 / 32 / 64
    .venv/bin/python benchmarks/images.py --n 512 --batch-sizes 16 64

No CLIP weights can be downloaded here, so the model is one with CLIP ViT-B/32's architecture (the
default ``transformers.CLIPConfig``: a 12-layer ViT-B/32 image tower at 224 px, a 12-layer text tower)
and random weights, saved as a sentence-transformers folder: the same arithmetic as ``clip-ViT-B-32``,
so the same speed, and no meaning at all (quality needs the real weights).

The images are 640 x 480 JPEGs of noise and shapes (noise makes decoding cost what a photo's does).
Each measurement runs in a fresh process, through the production path:

1. the documents step (``write_documents``): every image read, checked, hashed, resized for the model
   and thumbnailed, on a thread pool: images/s;
2. the embeddings step (``embed_partition``) per batch size: the kept copies decoded (a thread pool, a
   chunk ahead) and embedded by the image tower: images/s, beside the baseline measured in the same
   run, bare ``SentenceTransformer.encode`` of the same images already decoded (no decoding, no files);
   and texts/s of the text tower on the captions;
3. the HTML map of 10,000 image records with 64 px thumbnails: its size, and with the 12 MB cap.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def make_model(folder: Path) -> Path:
    """A sentence-transformers folder of a CLIP ViT-B/32-shaped model with random weights."""
    out = folder / "clip-b32-random"
    if (out / "modules.json").exists():
        return out
    import torch
    from sentence_transformers import SentenceTransformer
    from support.tiny_clip import build_tiny_clip  # its tokenizer, reused
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizerFast

    tiny = build_tiny_clip(folder)
    tokenizer = CLIPTokenizerFast.from_pretrained(str(folder / "tiny-clip-hf"))
    tokenizer.model_max_length = 77
    config = CLIPConfig()  # ViT-B/32: 224 px, patch 32, 12 layers each tower, 512-d projection
    config.text_config.vocab_size = len(tokenizer)
    config.text_config.bos_token_id, config.text_config.eos_token_id, config.text_config.pad_token_id = 0, 1, 1
    torch.manual_seed(0)
    hf = folder / "clip-b32-random-hf"
    CLIPModel(config).save_pretrained(hf)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(hf)
    SentenceTransformer(str(hf), device="cpu").save(str(out))
    del tiny
    return out


def make_images(folder: Path, n: int) -> list[str]:
    import numpy as np
    from PIL import Image, ImageDraw

    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / "img" / f"{i}.jpg"
        paths.append(f"img/{i}.jpg")
        if path.exists():
            continue
        noise = rng.integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
        img = Image.fromarray(noise)
        ImageDraw.Draw(img).ellipse([100 + i % 200, 80, 400, 380], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        img.save(path, quality=88)
    return paths


def child(task: str, args: dict) -> dict:
    """Run ``task`` in a fresh process; its JSON result."""
    done = subprocess.run([sys.executable, __file__, "--child", task, json.dumps(args)], capture_output=True,
                          text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        sys.exit(f"{task} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_child(task: str, a: dict) -> dict:
    import numpy as np
    import polars as pl

    from dagster_embedmap.core.embedding import Encoder, EncoderSettings
    from dagster_embedmap.core.paths import MapLayout
    from dagster_embedmap.core.records.documents import RecordSchema
    from dagster_embedmap.core.records.images import ImageSettings, decode_image
    from dagster_embedmap.steps import NullLog, embed_partition, write_documents

    root = Path(a["root"])
    layout = MapLayout(str(root / "home"), "bench")
    if task == "documents":
        frame = pl.DataFrame({"id": [f"i{k}" for k in range(len(a["paths"]))], "path": a["paths"],
                              "caption": [f"a photo number {k} of a shape" for k in range(len(a["paths"]))]})
        schema = RecordSchema(text_column="caption", image_column="path", images=ImageSettings(root=str(root)))
        t0 = time.perf_counter()
        docs = write_documents(layout, "p", frame, schema, NullLog()).frame
        took = time.perf_counter() - t0
        return {"seconds": took, "images": docs.height, "kept_bytes": int(docs["image"].bin.size().sum()),
                "thumb_bytes": int(docs["thumbnail"].bin.size().sum())}
    settings = EncoderSettings(model=a["model"], batch_size=a.get("batch", 32))
    encoder = Encoder(settings)
    encoder.dimension  # the model loads outside the timed part
    if task == "embed":
        layout.embeddings("p").unlink(missing_ok=True)
        result = embed_partition(layout, "p", lambda: encoder, NullLog())
        return {"seconds": result.seconds, "images": result.embedded}
    if task == "bare":  # the baseline: the same images, decoded before timing, straight to the model
        docs = pl.read_parquet(layout.documents("p"), columns=["image", "text"])
        pictures = [decode_image(b) for b in docs["image"].to_list()]
        import torch

        with torch.inference_mode():
            t0 = time.perf_counter()
            encoder.model.encode(pictures, batch_size=settings.batch_size, normalize_embeddings=True)
            images_s = time.perf_counter() - t0
            texts = docs["text"].to_list()
            t0 = time.perf_counter()
            encoder.encode(texts)
            texts_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in docs["image"].to_list():
            decode_image(b)
        return {"seconds": images_s, "texts_seconds": texts_s, "decode_seconds": time.perf_counter() - t0,
                "n": len(pictures)}
    raise SystemExit(f"unknown task {task}")


def page_size(root: Path, n: int) -> dict:
    import io

    import numpy as np
    import polars as pl
    from PIL import Image

    from dagster_embedmap.core.render import render_html_map
    from dagster_embedmap.core.render.html import THUMBNAIL_BUDGET, cap_thumbnails

    rng = np.random.default_rng(1)
    tiles = []
    for _ in range(64):  # 64 distinct 64 x 48 noisy thumbnails, repeated
        img = Image.fromarray(rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=70, optimize=True)
        tiles.append(out.getvalue())
    points = pl.DataFrame({"id": [f"i{k}" for k in range(n)], "x": rng.normal(size=n), "y": rng.normal(size=n),
                           "topic_id": rng.integers(0, 20, n), "topic_label": ["t"] * n,
                           "text": [""] * n, "thumbnail": pl.Series([tiles[k % 64] for k in range(n)],
                                                                   dtype=pl.Binary)})
    bare = render_html_map(points.drop("thumbnail"), root / "no-thumbs.html").stat().st_size
    every = render_html_map(points, root / "all-thumbs.html").stat().st_size  # uncapped: what no budget gives
    capped, kept, size = cap_thumbnails(points)  # what the map step writes
    page = render_html_map(capped, root / "capped.html").stat().st_size
    return {"bare": bare, "every": every, "thumb_bytes": int(points["thumbnail"].bin.size().sum()),
            "budget": THUMBNAIL_BUDGET, "kept": kept, "kept_bytes": size, "page": page}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--page-points", type=int, default=10_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(args.child[0], json.loads(args.child[1]))))
        return 0
    root = Path(tempfile.mkdtemp(prefix="images-bench-"))
    model = str(make_model(root))
    paths = make_images(root, args.n)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPO).stdout.strip()
    print(f"commit {commit}; {args.n} images of 640 x 480 (JPEG), a CLIP ViT-B/32-shaped model (random weights), "
          f"CPU, {os.cpu_count()} cores, each row a fresh process")
    docs = child("documents", {"root": str(root), "paths": paths})
    print(f"documents step (read, check, hash, 256 px copy, 64 px thumbnail): {docs['images'] / docs['seconds']:.1f} "
          f"images/s; kept copies {docs['kept_bytes'] / docs['images'] / 1024:.1f} KB, thumbnails "
          f"{docs['thumb_bytes'] / docs['images'] / 1024:.2f} KB per image")
    print("| batch size | embeddings step, images/s | bare encode of decoded images, images/s | step / bare | "
          "decoding alone, images/s | text tower, texts/s |")
    print("|---|---|---|---|---|---|")
    for batch in args.batch_sizes:
        ours = child("embed", {"root": str(root), "model": model, "batch": batch})
        bare = child("bare", {"root": str(root), "model": model, "batch": batch})
        print(f"| {batch} | {ours['images'] / ours['seconds']:.1f} | {bare['n'] / bare['seconds']:.1f} | "
              f"{(ours['images'] / ours['seconds']) / (bare['n'] / bare['seconds']):.2f} | "
              f"{bare['n'] / bare['decode_seconds']:.0f} | {bare['n'] / bare['texts_seconds']:.1f} |")
    page = page_size(root, args.page_points)
    mb = 1024 * 1024
    print(f"HTML map of {args.page_points:,} image records with 64 px thumbnails ({page['thumb_bytes'] / mb:.1f} MB "
          f"of JPEG in all): {page['bare'] / mb:.1f} MB without thumbnails, {page['every'] / mb:.1f} MB with every one; "
          f"as the map step writes it (budget {page['budget'] / 1e6:.0f} MB) {page['kept']:,} keep theirs "
          f"({page['kept_bytes'] / mb:.1f} MB): {page['page'] / mb:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
