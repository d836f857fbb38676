"""The HTML map at 100,000 points: render time, file size and how the page behaves in Chromium.

    .venv/bin/python benchmarks/html_map.py              # 100,000 points
    .venv/bin/python benchmarks/html_map.py --n 20000    # another size

Builds a synthetic collection consistent with its own map: 8 broad topics of 5 sub-topics each,
every sub-topic a gaussian blob near its broad topic's centre, with texts drawn from the
sub-topic's vocabulary (plus shared filler words), 3% unlabelled scatter, 12 partitions and
metadata (title, source, a numeric score). The projection of 100k points is benchmarked
elsewhere; this times the topics step on those points (HDBSCAN, the topic tree and labels, unless
``--planted-topics``), :func:`render_html_map` and the page. It prints the render seconds and
file size, then opens the file in headless Chromium (the CDP client of tests/support/browser.py)
and prints the time to the first draw, a zoom redraw and two searches over all points. Above the
page's point budget (``render_html_map(point_budget=)``, 250,000: a frame then draws an evenly spread
share of the points in view) the same map is written again with ``point_budget=0`` and opened in the
same run, as the baseline: every figure is printed for both, with the ratio of the times. The
screenshot goes to ``test-artifacts/browser/map-100k.png`` (``map-20k.png`` for ``--n 20000``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

BROAD = ["astronomy", "biology", "music", "painting", "sport", "cooking", "law", "computing"]
FILLER = ("the of and a in to is was for on with as by at from that which its an are this also "
          "has have been were it or new first two one after into most later during").split()


def synthetic(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` records: coordinates, two topic levels and texts that agree with each other."""
    rng = np.random.default_rng(seed)
    n_fine = len(BROAD) * 5
    angle = np.linspace(0, 2 * np.pi, len(BROAD), endpoint=False)
    broad_xy = np.c_[np.cos(angle), np.sin(angle)] * 12
    fine_xy = np.repeat(broad_xy, 5, axis=0) + rng.normal(0, 3.0, (n_fine, 2))
    # letters only, so the labeller (which drops tokens with digits) can name the topics it finds
    vocab = [[f"{BROAD[f // 5]}{'abcde'[f % 5]}{chr(97 + w // 26)}{chr(97 + w % 26)}" for w in range(60)]
             for f in range(n_fine)]

    n_noise = n * 3 // 100
    fine = np.concatenate([rng.integers(0, n_fine, n - n_noise), np.full(n_noise, -1)])
    xy = np.where(
        (fine >= 0)[:, None],
        fine_xy[np.maximum(fine, 0)] + rng.normal(0, 0.8, (n, 2)),
        rng.uniform(-17, 17, (n, 2)),
    )
    lengths = rng.integers(15, 60, n)
    topic_words = rng.integers(0, 60, (n, 60))
    filler = rng.integers(0, len(FILLER), (n, 60))
    use_topic = rng.random((n, 60)) < 0.4
    texts = []
    for i in range(n):
        words = vocab[fine[i]] if fine[i] >= 0 else FILLER
        texts.append(" ".join(
            words[topic_words[i, j] % len(words)] if use_topic[i, j] else FILLER[filler[i, j]]
            for j in range(lengths[i])
        ))  # fmt: skip
    broad = np.where(fine >= 0, fine // 5, -1)
    return pl.DataFrame(
        {
            "id": [f"doc-{i:06d}" for i in range(n)],
            "x": xy[:, 0],
            "y": xy[:, 1],
            "topic_0_id": broad,
            "topic_0_label": [BROAD[b] if b >= 0 else "" for b in broad],
            "topic_1_id": fine,
            "topic_1_label": [f"{BROAD[f // 5]} / theme {f % 5}" if f >= 0 else "" for f in fine],
            "topic_id": fine,
            "topic_label": [f"{BROAD[f // 5]} / theme {f % 5}" if f >= 0 else "" for f in fine],
            "text": texts,
            "partition": [f"2024-{1 + i % 12:02d}" for i in range(n)],
            "title": [f"Document {i}" for i in range(n)],
            "source": rng.choice(["web", "book", "mail", "paper", "wiki"], n).tolist(),
            "score": np.round(rng.gamma(2.0, 1.5, n), 3),
        }
    )


def browse(path: Path, needle: str, shot: Path) -> dict[str, float | int]:
    from support.browser import Browser, find_chromium

    exe = find_chromium()
    if exe is None:
        raise SystemExit("no Chromium: run scripts/setup.sh or set EMBEDMAP_CHROMIUM")
    out: dict[str, float | int] = {}
    with Browser(exe, timeout=60) as b:
        b.open_page()
        started = time.perf_counter()
        b.navigate(path.as_uri(), timeout=60)
        b.wait_for("window.embedmap && embedmap.timings().draws > 0", timeout=60)
        out["page load to first draw (wall, s)"] = time.perf_counter() - started
        # performance.now() counts from the navigation start
        out["first draw done, page clock (ms)"] = b.evaluate("embedmap.timings().firstDraw")
        out["one full draw (ms)"] = b.evaluate("embedmap.timings().lastDraw")
        out["share of the points in view drawn"] = b.evaluate("embedmap.timings().drawnShare")
        b.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        b.screenshot(shot)

        draws = b.evaluate("embedmap.timings().draws")
        started = time.perf_counter()
        b.wheel(500, 400, -400)
        b.wait_for(f"embedmap.timings().draws > {draws}", timeout=30)
        out["zoom: wheel to redrawn (wall, ms)"] = (time.perf_counter() - started) * 1000
        out["zoom redraw (ms)"] = b.evaluate("embedmap.timings().lastDraw")

        for label, query in (("first search, builds the index", needle),
                             ("second search", "astronomybab the")):  # fmt: skip
            b.evaluate(f"location.hash = {json.dumps('#q=' + query)}")
            b.wait_for(f"document.getElementById('search').value === {json.dumps(query)}")
            out[f"{label} (ms)"] = b.evaluate("embedmap.timings().lastSearch")
            out[f"  matches of '{query}'"] = b.evaluate("embedmap.matchCount()")
        if b.page_errors or b.dialogs:
            raise SystemExit(f"page errors: {b.page_errors} dialogs: {b.dialogs}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--out", help="keep the HTML file here (default: a temporary file)")
    parser.add_argument("--from-vectors", action="store_true",
                        help="bring-your-own-vectors path: synthetic clustered 384-d vectors, projected to 2-D "
                             "with the pipeline's UMAP (fitted on a 20,000-point sample, the rest placed)")
    parser.add_argument("--planted-topics", action="store_true",
                        help="draw the planted topics instead of finding them (render and page only)")
    args = parser.parse_args()
    if args.out:
        return run(args.n, Path(args.out), not args.planted_topics, args.from_vectors)
    with tempfile.TemporaryDirectory(prefix="embedmap-html-") as tmp:
        return run(args.n, Path(tmp) / "map.html", not args.planted_topics, args.from_vectors)


def project_vectors(frame: pl.DataFrame, dim: int = 384, seed: int = 1) -> pl.DataFrame:
    """Replace the blob coordinates by a UMAP layout of clustered vectors that follow the same topics."""
    from dagster_embedmap.core.layout.project import ProjectionSettings, fit_projection

    rng = np.random.default_rng(seed)
    fine = frame["topic_1_id"].to_numpy()
    n_fine = int(fine.max()) + 1
    broad_c = rng.normal(0, 1, (len(BROAD), dim))
    fine_c = np.repeat(broad_c, 5, axis=0) + rng.normal(0, 0.6, (n_fine, dim))
    vectors = np.where((fine >= 0)[:, None], fine_c[np.maximum(fine, 0)], 0.0)
    vectors = (vectors + rng.normal(0, 0.9, (len(fine), dim))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    settings = ProjectionSettings()
    started = time.perf_counter()
    ids = [str(i) for i in range(len(vectors))]
    model = fit_projection(ids, vectors, settings)  # the layout step's fit, then its placing of every point
    fitted = time.perf_counter() - started
    xy = model.place(ids, vectors)
    print(f"projection of {len(vectors):,} x {dim}-d vectors: fit on {len(model.sample_ids or ()):,} in {fitted:.1f} s, "
          f"all placed in {time.perf_counter() - started:.1f} s")
    return frame.with_columns(pl.Series("x", xy[:, 0].astype(np.float64)), pl.Series("y", xy[:, 1].astype(np.float64)))


def find_topics(frame: pl.DataFrame) -> pl.DataFrame:
    """The pipeline's own topics step on these points: HDBSCAN, the topic tree and c-TF-IDF labels
    of every level (:func:`dagster_embedmap.core.topics.model.update_topics`), replacing the planted ones."""
    from sklearn.metrics import adjusted_rand_score

    from dagster_embedmap.core.topics.model import update_topics

    xy = frame.select("x", "y").to_numpy()
    started = time.perf_counter()
    update = update_topics(xy, [np.full(frame.height, -1)], None, lambda: frame["text"].to_list())
    seconds = time.perf_counter() - started
    rows = [update.payload(i) for i in range(frame.height)]
    found = pl.DataFrame(rows)
    planted = frame["topic_0_id"].to_numpy()
    counts = [len(np.unique(level[level >= 0])) for level in update.tree.levels]
    print(f"topics (HDBSCAN + tree + labels of every level): {seconds:.1f} s; topics per level {counts}; "
          f"ARI of broad topics vs the 8 planted: {adjusted_rand_score(planted, update.tree.levels[0]):.3f}")
    return frame.drop(found.columns).hstack(found)


def run(n: int, path: Path, with_topics: bool = True, from_vectors: bool = False) -> int:
    from dagster_embedmap.core.render import render_html_map
    from dagster_embedmap.core.render.html import POINT_BUDGET

    total = time.perf_counter()
    started = time.perf_counter()
    frame = synthetic(n)
    seconds = time.perf_counter() - started
    print(f"synthetic collection of {frame.height:,} records: {seconds:.1f} s")
    if from_vectors:
        frame = project_vectors(frame)
    if with_topics:
        frame = find_topics(frame)

    started = time.perf_counter()
    render_html_map(frame, path, title=f"{n:,} synthetic documents",
                    extra_columns=["title", "source", "score"])  # fmt: skip
    seconds = time.perf_counter() - started
    data = path.read_bytes()
    print(f"render_html_map: {seconds:.2f} s")
    print(f"map built (collection, topics, HTML): {time.perf_counter() - total:.1f} s (target: under 120 s)")
    zipped = len(gzip.compress(data, 6))
    print(f"file size: {len(data) / 1e6:.1f} MB ({zipped / 1e6:.1f} MB gzipped)")

    needle = f"{frame['title'][frame.height // 2]} {frame['text'][frame.height // 2].split()[4]}"
    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    shot = REPO / "test-artifacts" / "browser" / f"map-{size}.png"
    result = browse(path, needle, shot)
    if frame.height <= POINT_BUDGET:
        for name, value in result.items():
            print(f"{name}: {show(name, value)}")
    else:  # the same page drawing every point in view, opened in the same run: the baseline
        full = path.with_name(path.stem + "-every-point.html")
        render_html_map(frame, full, title=f"{n:,} synthetic documents", extra_columns=["title", "source", "score"],
                        point_budget=0)
        baseline = browse(full, needle, shot.with_name(shot.stem + "-every-point.png"))
        print(f"\n{'':52} {'budget ' + format(POINT_BUDGET, ','):>16} {'every point':>12} {'ratio':>6}")
        for name, value in result.items():
            ratio = f"{value / baseline[name]:.2f}" if "ms" in name and baseline[name] else ""
            print(f"{name:52} {show(name, value):>16} {show(name, baseline[name]):>12} {ratio:>6}")
    print(f"screenshot: {shot.relative_to(REPO)}")
    return 0


def show(name: str, value: float) -> str:
    if "matches" in name or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if "share" in name else f"{value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
