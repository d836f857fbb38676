"""Topic quality on the demo corpus: our topics vs. KMeans(k=11) on the very same vectors, same run.

    .venv/bin/python benchmarks/quality.py                 # builds the 2,000-article demo map in a temp home
    .venv/bin/python benchmarks/quality.py --home .embedmap --reuse   # scores a map `embedmap demo` built

Prints NMI and ARI of each against the articles' 11 categories, the share of points HDBSCAN clustered
itself, the share that ended with a topic, and the ratio of our NMI to KMeans' (target: >= 1.0).
"""

import argparse
import json
import sys
import time

from demo_map import add_demo_arguments, demo_home


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_demo_arguments(parser)
    parser.add_argument("--kmeans-seeds", type=int, default=5, help="KMeans is averaged over this many seeds")
    parser.add_argument("--layout-seeds", type=int, default=4,
                        help="also rerun projection + topics with this many other UMAP seeds (core only) for the spread")
    args = parser.parse_args()
    home = demo_home(args, "embedmap-quality-")
    if home is None:
        return 1

    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from dagster_embedmap.core.store import StoreLocation, open_store

    with open_store(StoreLocation(path=str(home / "qdrant")), "wiki") as store:
        _, vectors, payloads = store.read_vectors()
    categories = [p["category"] for p in payloads]
    topics = np.array([p["topic_id"] for p in payloads])
    clustered_share = json.loads((home / "wiki" / "topics_state.json").read_text())["clustered_share"]
    k = len(set(categories))

    rows = []
    ours_nmi = normalized_mutual_info_score(categories, topics)
    rows.append(("embedmap (UMAP 2-D + HDBSCAN, noise assigned)", len(set(topics)), ours_nmi,
                 adjusted_rand_score(categories, topics), float(clustered_share), float((topics >= 0).mean())))
    km_nmi, km_ari = [], []
    started = time.perf_counter()
    for seed in range(args.kmeans_seeds):
        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(vectors)
        km_nmi.append(normalized_mutual_info_score(categories, labels))
        km_ari.append(adjusted_rand_score(categories, labels))
    km_s = time.perf_counter() - started
    rows.append((f"KMeans(k={k}) on the same {vectors.shape[1]}-d vectors, mean of {args.kmeans_seeds} seeds", k,
                 float(np.mean(km_nmi)), float(np.mean(km_ari)), 1.0, 1.0))

    from dagster_embedmap.core.cluster import HDBSCANTopics
    from dagster_embedmap.core.project import ProjectionSettings, UMAPProjector

    seed_nmi = []
    for seed in range(1, args.layout_seeds + 1):
        xy = UMAPProjector(ProjectionSettings(random_state=seed)).fit_transform(vectors)
        seed_nmi.append(normalized_mutual_info_score(categories, HDBSCANTopics().fit_predict(xy)))
    if seed_nmi:
        rows.append((f"embedmap, UMAP seeds 1-{args.layout_seeds} (mean)", "-", float(np.mean(seed_nmi)), float("nan"),
                     float("nan"), 1.0))

    print(f"\n{len(categories)} articles, {k} categories, {vectors.shape[1]}-d vectors; KMeans took {km_s:.1f} s\n")
    print("| method | topics | NMI | ARI | share clustered | share with a topic |")
    print("|---|---|---|---|---|---|")
    def fmt(value: float) -> str:
        return "-" if value != value else f"{value:.3f}"  # NaN: not measured for that row

    for name, n_topics, nmi, ari, clustered, assigned in rows:
        print(f"| {name} | {n_topics} | {fmt(nmi)} | {fmt(ari)} | {fmt(clustered)} | {fmt(assigned)} |")
    ratio = ours_nmi / float(np.mean(km_nmi))
    print(f"\nNMI ratio embedmap / KMeans: {ratio:.3f} (target >= 1.0; KMeans NMI range "
          f"{min(km_nmi):.3f}-{max(km_nmi):.3f})")
    if seed_nmi:
        print(f"embedmap NMI over other UMAP seeds: {min(seed_nmi):.3f}-{max(seed_nmi):.3f}, ratio of the mean to "
              f"KMeans {float(np.mean(seed_nmi)) / float(np.mean(km_nmi)):.3f}")
    return 0 if ratio >= 1.0 else 3


if __name__ == "__main__":
    sys.exit(main())
