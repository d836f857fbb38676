"""Topic quality on several labelled corpora, through the production path, two builds per corpus.

    .venv/bin/python benchmarks/topics.py                              # every corpus of benchmarks/corpora.py
    .venv/bin/python benchmarks/topics.py --corpora wiki-2000 debian   # some of them

For each corpus (its texts and the bundled model's vectors, cached by ``benchmarks/corpora.py``) the
records are written as 4 landing files and the map is built twice, each time in a fresh process
through ``materialize_map`` (the Dagster steps the CLI runs: documents, embeddings from the given
vectors, collection, layout, placement, topics, map), under two map names, so every point id and the
store's order differ between the builds. It prints, per corpus:

- fine topics: count, largest share, HDBSCAN's noise share (every noise point is then given a topic),
  NMI and ARI against the labels, beside KMeans(k = number of labels) on the very same vectors in the
  same run (mean of 3 seeds), and their ratio;
- broad topics: count, largest share, NMI against the corpus's coarser grouping where it has one;
- ARI between the fine topics of the two builds (same records, other map name);
- label accuracy: each fine label and each category name embedded with the bundled model; a label is
  right when the category nearest to it is its topic's majority category; weighted by topic size.
  Ours: the labeller the topics step runs for a map the model embeds (c-TF-IDF candidates ranked by
  meaning), on build A's topics. Baseline on the very same topics: BERTopic-style c-TF-IDF labels
  (its top 3 words, English stop words removed, as BERTopic's docs advise); BERTopic's default (no
  stop-word list) is printed as well.

The maps are built from given vectors, so the production build itself names topics by c-TF-IDF
alone (a map of given vectors never loads the model); the "ours" labels are computed here with the
function and inputs the step uses when the model embedded the map (its fitted sample is the whole
map below 20,000 records). Exit status 3 when an acceptance target is missed.
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

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: clearer names for the embedding of cryptic category names (Debian sections, API modules)
CATEGORY_WORDS = {
    "admin": "system administration", "comm": "communication modems serial", "devel": "software development",
    "doc": "documentation", "editors": "text editors", "electronics": "electronics circuits",
    "embedded": "embedded devices", "fonts": "fonts typefaces", "games": "games", "gnome": "GNOME desktop",
    "graphics": "graphics images", "hamradio": "amateur radio", "httpd": "web servers",
    "interpreters": "programming language interpreters", "java": "Java libraries", "javascript": "JavaScript libraries",
    "kde": "KDE desktop", "kernel": "Linux kernel", "libdevel": "library development headers",
    "libs": "shared libraries", "lisp": "Lisp Emacs", "localization": "translations languages",
    "mail": "email mail", "math": "mathematics", "metapackages": "metapackages", "misc": "miscellaneous",
    "net": "networking", "news": "news feeds usenet", "ocaml": "OCaml libraries", "oldlibs": "old libraries",
    "otherosfs": "other operating systems file systems", "perl": "Perl modules", "php": "PHP libraries",
    "python": "Python modules", "ruby": "Ruby gems", "rust": "Rust crates", "science": "science",
    "shells": "command shells", "sound": "sound audio music", "tex": "TeX LaTeX typesetting",
    "text": "text processing", "utils": "utilities", "vcs": "version control", "video": "video",
    "web": "web browsers", "x11": "X11 window system", "xfce": "Xfce desktop", "zope": "Zope",
    "golang": "Go libraries", "haskell": "Haskell libraries", "introspection": "GObject introspection",
    "database": "databases", "cli-mono": "Mono .NET", "debug": "debugging symbols", "gnu-r": "R statistics packages",
}


def category_words(label: str) -> str:
    if label in CATEGORY_WORDS:
        return CATEGORY_WORDS[label]
    return label.replace(".", " ").replace("_", " ")


def build(corpus: str, map_name: str, home: Path) -> None:
    """One build of ``corpus`` as map ``map_name`` in ``home`` (run in a fresh process)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import dagster as dg
    import polars as pl

    from corpora import corpus_vectors
    from dagster_embedmap import build_embedmap_defs, embedmap_resources
    from dagster_embedmap.assets.factory import MapKeys
    from dagster_embedmap.assets.run import materialize_map
    from dagster_embedmap.core.records.sources import FileSource

    frame, vectors = corpus_vectors(corpus)
    landing = home / f"landing-{map_name}"
    landing.mkdir(parents=True)
    frame = frame.with_columns(pl.Series("emb", vectors.tolist(), dtype=pl.List(pl.Float32)))
    parts = 4
    for p in range(parts):
        frame.gather_every(parts, offset=p).write_parquet(landing / f"part-{p}.parquet")
    pdef = dg.DynamicPartitionsDefinition(name=f"{map_name}_parts")
    defs = dg.Definitions.merge(
        build_embedmap_defs(map_name, FileSource(str(landing / "*.parquet")), vector_column="emb", partitions_def=pdef,
                            home=str(home)),
        dg.Definitions(resources=embedmap_resources(str(home))),
    )
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(pdef.name, [f"part-{p}" for p in range(parts)])
    started = time.perf_counter()
    materialize_map(defs, MapKeys.for_map(map_name), instance=instance, log_level="WARNING")
    (home / f"{map_name}.seconds").write_text(f"{time.perf_counter() - started:.1f}")


def read_build(home: Path, map_name: str):
    import polars as pl

    from dagster_embedmap.core.store.payload import level_field, points_frame
    from dagster_embedmap.core.store import StoreLocation, open_store

    with open_store(StoreLocation(path=str(home / "qdrant")), map_name, read_only=True) as store:
        points = points_frame(store)
    state = json.loads((home / map_name / "topics_state.json").read_text())
    table = pl.read_parquet(home / map_name / "topics.parquet")
    depth = int(table["level"].max()) + 1
    points = points.select("id", *[level_field(level, "id") for level in range(depth)]).sort("id")
    return points, table, state, depth


def measure(corpus: str, work: Path) -> dict:
    import polars as pl
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from corpora import corpus_vectors
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings
    from dagster_embedmap.core.topics.labels import LabelSettings, Semantic, hierarchy_keywords
    from dagster_embedmap.core.store.payload import level_field
    from dagster_embedmap.core.topics.quality import ctfidf_labels, label_accuracy

    frame, vectors = corpus_vectors(corpus)
    home = work / corpus
    names = [f"{corpus.replace('-', '_')}_a", f"map_{corpus.replace('-', '_')}_b"]
    seconds = []
    for name in names:  # each build in a fresh process, as a Dagster step or the CLI runs it
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--build", corpus, name, str(home)], check=True)
        seconds.append(time.perf_counter() - started)
    (a, table, state, depth), (b, _, _, _) = read_build(home, names[0]), read_build(home, names[1])
    order = {rid: i for i, rid in enumerate(frame["id"].to_list())}
    rows = np.array([order[rid] for rid in a["id"].to_list()])
    truth = frame["label"].to_numpy()[rows]
    texts = [frame["text"][int(i)] for i in rows]
    vecs = vectors[rows]
    fine_a = a[level_field(depth - 1, "id")].to_numpy()
    fine_b = b.join(a.select("id"), on="id", how="right")[level_field(depth - 1, "id")].to_numpy()
    broad = a[level_field(0, "id")].to_numpy()
    k = len(set(truth.tolist()))
    km = [normalized_mutual_info_score(truth, KMeans(k, n_init=10, random_state=s).fit_predict(vecs)) for s in range(3)]
    km_ari = [adjusted_rand_score(truth, KMeans(k, n_init=10, random_state=s).fit_predict(vecs)) for s in range(3)]
    out = {
        "corpus": corpus, "records": len(rows), "labels": k, "build_s": seconds,
        "fine": int(len(np.unique(fine_a))), "fine_largest": float(np.bincount(fine_a).max() / len(fine_a)),
        "noise": 1.0 - float(state.get("clustered_share") or 0.0),
        "nmi": float(normalized_mutual_info_score(truth, fine_a)), "ari": float(adjusted_rand_score(truth, fine_a)),
        "km_nmi": float(np.mean(km)), "km_ari": float(np.mean(km_ari)),
        "broad": int(len(np.unique(broad))), "broad_largest": float(np.bincount(broad).max() / len(broad)),
        "builds_ari": float(adjusted_rand_score(fine_a, fine_b)),
    }
    coarse = frame["coarse"].to_numpy()[rows] if frame["coarse"].null_count() == 0 else None
    out["broad_nmi_coarse"] = float(normalized_mutual_info_score(coarse, broad)) if coarse is not None else None
    encoder = Encoder(EncoderSettings())

    def embed(terms):
        v = np.asarray(encoder.encode(list(terms)), dtype=np.float64)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    levels = [a[level_field(level, "id")].to_numpy() for level in range(depth)]
    parents = []
    for level in range(1, depth):
        fine_rows = table.filter(pl.col("level") == level)
        parents.append({int(t): int(p) for t, p in zip(fine_rows["topic_id"], fine_rows["parent_id"]) if t >= 0})
    started = time.perf_counter()
    named = hierarchy_keywords(texts, levels, parents, LabelSettings(),
                               semantic=Semantic(rows=np.arange(len(rows)), vectors=vecs, embed=embed))
    out["label_s"] = time.perf_counter() - started
    ours = {t: kw.label for t, kw in named[-1].items()}
    names = {c: category_words(c) for c in set(truth.tolist())}
    out["label_acc"] = label_accuracy(ours, fine_a, truth, embed, names)
    out["label_acc_ctfidf"] = label_accuracy(ctfidf_labels(texts, fine_a), fine_a, truth, embed, names)
    out["label_acc_default"] = label_accuracy(ctfidf_labels(texts, fine_a, stop_words=None), fine_a, truth, embed,
                                              names)
    sizes = np.bincount(broad)
    out["broad_labels"] = [(int(sizes[t]), named[0][t].label) for t in np.argsort(-sizes) if t in named[0]]
    out["examples"] = [(int(np.sum(fine_a == t)), ours[t]) for t in sorted(ours, key=lambda t: -np.sum(fine_a == t))[:8]]
    encoder.close()
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        build(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
        return 0
    from corpora import CORPORA

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                           cwd=HERE).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory(prefix="embedmap-topics-") as tmp:
        for corpus in args.corpora:
            results.append(measure(corpus, Path(tmp)))
            r = results[-1]
            print(f"{corpus}: fine NMI {r['nmi']:.3f} vs KMeans {r['km_nmi']:.3f}; builds ARI {r['builds_ari']:.3f}; "
                  f"labels {r['label_acc']:.3f} vs {r['label_acc_ctfidf']:.3f}", flush=True)
    print(f"\nmeasured at commit {commit}{' (with uncommitted changes)' if dirty else ''}, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| corpus | records / labels | fine topics | largest fine | noise | fine NMI (KMeans) | ratio | fine ARI (KMeans) "
          "| broad topics | largest broad | broad NMI vs coarse | ARI of two builds | label accuracy (c-TF-IDF, default) "
          "| ratio | build s |")
    print("|---" * 15 + "|")
    failed = []
    for r in results:
        ratio = r["nmi"] / r["km_nmi"]
        lab_ratio = r["label_acc"] / max(r["label_acc_ctfidf"], 1e-9)
        coarse = "-" if r["broad_nmi_coarse"] is None else f"{r['broad_nmi_coarse']:.3f}"
        print(f"| {r['corpus']} | {r['records']:,} / {r['labels']} | {r['fine']} | {r['fine_largest']:.3f} | "
              f"{r['noise']:.3f} | {r['nmi']:.3f} ({r['km_nmi']:.3f}) | {ratio:.3f} | {r['ari']:.3f} ({r['km_ari']:.3f}) | "
              f"{r['broad']} | {r['broad_largest']:.3f} | {coarse} | {r['builds_ari']:.3f} | "
              f"{r['label_acc']:.3f} ({r['label_acc_ctfidf']:.3f}, {r['label_acc_default']:.3f}) | {lab_ratio:.2f} | "
              f"{' / '.join(f'{s:.0f}' for s in r['build_s'])} |")
        wiki = r["corpus"].startswith("wiki")
        checks = {
            f"fine NMI ratio >= {1.05 if wiki else 1.0}": ratio >= (1.05 if wiki else 1.0),
            "broad topics 4-15": 4 <= r["broad"] <= 15, "largest broad <= 0.40": r["broad_largest"] <= 0.40,
            "largest fine <= 0.25": r["fine_largest"] <= 0.25, "ARI of two builds >= 0.9": r["builds_ari"] >= 0.9,
            "label accuracy >= 1.15x c-TF-IDF": lab_ratio >= 1.15,
        }
        failed += [f"{r['corpus']}: {name}" for name, ok in checks.items() if not ok]
    for r in results:
        print(f"\n{r['corpus']}: broad topics " + "; ".join(f"{label} ({size})" for size, label in r["broad_labels"]))
        print(f"{r['corpus']}: largest fine topics " + "; ".join(f"{label} ({size})" for size, label in r["examples"]))
    if args.json:
        Path(args.json).write_text(json.dumps({"commit": commit, "results": results}, indent=2))
    print("\ntargets missed: " + ("; ".join(failed) if failed else "none"))
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
