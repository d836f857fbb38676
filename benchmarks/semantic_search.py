"""Search by meaning inside the offline HTML map: what it costs in file size and time, and how well
the page's ranking agrees with the model's own search.

    .venv/bin/python benchmarks/semantic_search.py               # 2,000 and 10,033 Wikipedia summaries
    .venv/bin/python benchmarks/semantic_search.py --sizes 2000  # one size

For each size, a map of that many Wikipedia vital-article summaries (a seeded sample of the 10,033;
vectors from the bundled all-MiniLM-L6-v2 through the project's ``Encoder``, cached by
``benchmarks/corpora.py``) is written twice by :func:`render_html_map`: once words-only (the
baseline, what the page was before) and once with :func:`semantic_payload` over the model's
:func:`static_table`, as ``render_map`` does. It prints both files' sizes, the ratio, and the cost of
search by meaning: the fixed part (the token table) and the part per 10,000 points (from the two
sizes' difference). Then both pages are opened in headless Chromium and 20 held-out queries are typed
into the search box, in the page's meaning mode and in its words mode: each top 10 is compared with
the model's exact top 10 (the query embedded by the full model, cosine against the records' 384-d
vectors: what ``embedmap search`` ranks by; the embedded store searches exhaustively). It prints the
mean overlap of each mode, the time to decode the payload and a search's time.
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
sys.path.insert(0, str(REPO / "benchmarks"))

#: none of these is a record's text; 12 short ones and 8 sentences
QUERIES = [
    "roman emperor", "volcano eruption", "chinese dynasty", "football club", "vaccine", "buddhism",
    "string instrument", "stock exchange", "marine mammals", "alphabet writing", "ballet dancer", "aircraft engine",
    "a painter of the italian renaissance", "infections spread by mosquitoes", "rivers that flow through europe",
    "machines that compute with numbers", "a novelist who wrote about war", "how plants make energy from light",
    "a desert in africa", "the fall of the soviet union",
]  # fmt: skip


def map_frame(frame: pl.DataFrame, vectors: np.ndarray) -> pl.DataFrame:
    """The records as the map step hands them to the page: coordinates (the vectors' first two
    principal axes: where a point sits does not change what search costs), the category as the topic."""
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 5000)], full_matrices=False)
    xy = centred @ vt[:2].T
    names = sorted(set(frame["label"].to_list()))
    code = {name: i for i, name in enumerate(names)}
    return pl.DataFrame({
        "id": frame["id"], "x": xy[:, 0], "y": xy[:, 1], "text": frame["text"],
        "topic_id": [code[c] for c in frame["label"]], "topic_label": frame["label"],
        "partition": ["all"] * frame.height,
    })  # fmt: skip


def page_search(browser, query: str, mode: str) -> dict:
    """Type ``query`` into the search box in ``mode``, as a person does, and read what it found."""
    browser.evaluate(f"""(() => {{ const s = document.getElementById('search'), m = document.getElementById('search-mode');
        m.value = {json.dumps(mode)}; s.value = ''; s.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Escape'}}));
        s.value = {json.dumps(query)}; s.dispatchEvent(new Event('input')); }})()""")
    browser.wait_for("document.getElementById('search-info').textContent !== ''")
    return browser.evaluate("({ids: embedmap.results(), by: embedmap.searchMode(), ms: embedmap.timings().lastSearch})")


def in_chromium(path: Path, truth: dict[str, list[str]], semantic: bool) -> dict[str, float]:
    from support.browser import Browser, find_chromium

    exe = find_chromium()
    if exe is None:
        raise SystemExit("no Chromium: run scripts/setup.sh or set EMBEDMAP_CHROMIUM")
    out: dict[str, float] = {}
    with Browser(exe, timeout=60) as b:
        b.open_page()
        started = time.perf_counter()
        b.navigate(path.as_uri(), timeout=60)
        b.wait_for("window.embedmap && embedmap.timings().draws > 0", timeout=60)
        out["first draw (wall, s)"] = time.perf_counter() - started
        if semantic:
            if b.evaluate("embedmap.searchMode().semantic") is not True:
                raise SystemExit(f"{path.name}: the page cannot search by meaning")
            modes = ("meaning", "words")
        else:
            modes = ("words",)
        for mode in modes:
            overlaps, times = [], []
            for query in QUERIES:
                page = page_search(b, query, mode if semantic else "")
                overlaps.append(len(set(page["ids"][:10]) & set(truth[query])) / 10)
                times.append(page["ms"])
                if semantic and page["by"]["mode"] != mode:
                    raise SystemExit(f"'{query}' was searched by {page['by']['mode']}, not {mode}")
            out[f"{mode}: mean top-10 overlap"] = float(np.mean(overlaps))
            out[f"{mode}: short queries / sentences"] = (float(np.mean(overlaps[:12])), float(np.mean(overlaps[12:])))
            out[f"{mode}: search, median (ms)"] = float(np.median(times))
        if semantic:
            out["decode the payload, first search (ms)"] = b.evaluate("EmbedmapSemantic.loadMs()")
        if b.page_errors or b.dialogs:
            raise SystemExit(f"page errors: {b.page_errors} dialogs: {b.dialogs}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10033])
    args = parser.parse_args()

    import subprocess

    from corpora import corpus_vectors
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings, static_table
    from dagster_embedmap.core.render import render_html_map, semantic_payload

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}")
    started = time.perf_counter()
    corpus, all_vectors = corpus_vectors("wiki-10033")
    print(f"corpus: {corpus.height:,} summaries and their vectors in {time.perf_counter() - started:.1f} s")
    encoder = Encoder(EncoderSettings())
    started = time.perf_counter()
    table, why = static_table(encoder.settings.model)
    if table is None:
        raise SystemExit(f"no static table: {why}")
    print(f"static table {table.vectors.shape[0]:,} x {table.vectors.shape[1]} in {time.perf_counter() - started:.1f} s "
          f"(computed once per model, then read from the cache)")
    query_vectors = np.asarray(encoder.encode(QUERIES), dtype=np.float32)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)

    sizes: dict[int, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="embedmap-semantic-") as tmp:
        for n in args.sizes:
            rows = np.sort(np.random.default_rng(0).choice(corpus.height, n, replace=False)) if n < corpus.height \
                else np.arange(corpus.height)
            frame, vectors = corpus[rows], all_vectors[rows]
            points = map_frame(frame, vectors)
            ids = points["id"].to_list()
            truth = {q: [ids[i] for i in np.argsort(-(vectors @ v), kind="stable")[:10]]
                     for q, v in zip(QUERIES, query_vectors)}
            plain, meaning = Path(tmp) / f"words-{n}.html", Path(tmp) / f"meaning-{n}.html"
            render_html_map(points, plain, title=f"{n:,} summaries")
            t0 = time.perf_counter()
            payload = semantic_payload(vectors, points["text"].to_list(), table)
            build = time.perf_counter() - t0
            render_html_map(points, meaning, title=f"{n:,} summaries", semantic=payload)
            a, b = plain.stat().st_size, meaning.stat().st_size
            sizes[n] = (a, b)
            za, zb = len(gzip.compress(plain.read_bytes(), 6)), len(gzip.compress(meaning.read_bytes(), 6))
            print(f"\n{n:,} points: words-only page {a / 1e6:.2f} MB ({za / 1e6:.2f} MB gzipped), with search by meaning "
                  f"{b / 1e6:.2f} MB ({zb / 1e6:.2f} MB gzipped): {b / a:.2f}x the size; semantic_payload {build:.2f} s")
            baseline = in_chromium(plain, truth, semantic=False)
            result = in_chromium(meaning, truth, semantic=True)
            print(f"  words-only page: first draw {baseline['first draw (wall, s)']:.2f} s, "
                  f"top-10 overlap with the model's search {baseline['words: mean top-10 overlap']:.3f}")
            short, sentences = result["meaning: short queries / sentences"]
            print(f"  page with meaning: first draw {result['first draw (wall, s)']:.2f} s; by meaning: top-10 overlap "
                  f"{result['meaning: mean top-10 overlap']:.3f} (short {short:.3f}, sentences {sentences:.3f}), "
                  f"{result['meaning: mean top-10 overlap'] / max(baseline['words: mean top-10 overlap'], 1e-9):.1f}x "
                  f"the words-only page's; by words on the same page {result['words: mean top-10 overlap']:.3f}")
            print(f"  decoding the payload (once, at the first search) {result['decode the payload, first search (ms)']:.0f} ms; "
                  f"a search by meaning, median {result['meaning: search, median (ms)']:.1f} ms "
                  f"(by words {result['words: search, median (ms)']:.1f} ms)")
    if len(sizes) >= 2:
        (n1, (a1, b1)), (n2, (a2, b2)) = sorted(sizes.items())[0], sorted(sizes.items())[-1]
        per_point = ((b2 - a2) - (b1 - a1)) / (n2 - n1)
        fixed = (b1 - a1) - per_point * n1
        print(f"\ncost of search by meaning: {fixed / 1e6:.2f} MB fixed (the token table and vocabulary) + "
              f"{per_point * 10_000 / 1e6:.2f} MB per 10,000 points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
