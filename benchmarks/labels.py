"""Label quality on the demo corpus: stop words among the top-10 keywords, and topic diversity.

    .venv/bin/python benchmarks/labels.py                              # builds the 2,000-article demo map in a temp home
    .venv/bin/python benchmarks/labels.py --home .embedmap --reuse     # scores the map `embedmap demo` built

For every level of the topic tree it prints:

- the share of top-10 keywords that are, or contain, an English stop word (target 0), against
  scikit-learn's 318-word list and, as a stricter second view, the 1,333-word list of the PyPI package
  ``stop-words`` (installed with the ``bench`` extra); a keyword is a word or a two-word phrase;
- topic diversity: unique / total top-10 keywords across the level's topics (target >= 0.9), over
  keywords and over the single words inside them.

The baseline, measured in the same run on the very same topics: c-TF-IDF the way BERTopic computes
it by default (unigrams, no stop-word list, no sibling rule).
"""

import argparse
import sys

from demo_map import add_demo_arguments, demo_home

import numpy as np


def measure(keywords: dict[int, list[str]], stop_sets: dict[str, frozenset[str]]) -> dict[str, float]:
    terms = [kw for words in keywords.values() for kw in words[:10]]
    words = [w for kw in terms for w in kw.split(" ")]
    out = {f"stop share ({name})": float(np.mean([any(w in s for w in kw.split(" ")) for kw in terms])) if terms else 0.0
           for name, s in stop_sets.items()}
    out["diversity (keywords)"] = len(set(terms)) / len(terms) if terms else 0.0
    out["diversity (words)"] = len(set(words)) / len(words) if words else 0.0
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_demo_arguments(parser)
    args = parser.parse_args()
    home = demo_home(args, "embedmap-labels-")
    if home is None:
        return 1

    import polars as pl
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from dagster_embedmap.core.paths import MapLayout
    from dagster_embedmap.core.topics.quality import ctfidf_terms
    from dagster_embedmap.core.store.payload import full_texts, level_field, points_frame
    from dagster_embedmap.core.store import StoreLocation, open_store

    stop_sets = {"scikit-learn, 318 words": frozenset(ENGLISH_STOP_WORDS)}
    try:
        from stop_words import get_stop_words

        broad = frozenset(get_stop_words("en"))
        stop_sets[f"stop-words package, {len(broad):,} words"] = broad
    except ImportError:
        print("note: the stricter list needs the `bench` extra (pip install -e '.[bench]'); measuring sklearn's only")

    layout = MapLayout(home, "wiki")
    table = pl.read_parquet(layout.topics)
    with open_store(StoreLocation(path=str(home / "qdrant")), "wiki") as store:
        points = points_frame(store)
    texts = full_texts(points, layout.documents)
    depth = int(table["level"].max()) + 1
    print(f"\n{points.height} articles; topic tree of {depth} levels\n")
    print("| level | topics | labeller | " + " | ".join(measure({}, stop_sets)) + " |")
    print("|---|---|---|" + "---|" * (len(stop_sets) + 2))
    failed = False
    for level in range(depth):
        rows = table.filter((pl.col("level") == level) & (pl.col("topic_id") >= 0))
        ours = dict(zip(rows["topic_id"].to_list(), rows["keywords"].to_list()))
        topics = points[level_field(level, "id")].fill_null(-1).to_numpy()
        base = ctfidf_terms(texts, topics, 10, stop_words=None)  # BERTopic's default: no stop-word list
        for name, keywords in (("embedmap", ours), ("baseline: BERTopic-default c-TF-IDF", base)):
            m = measure(keywords, stop_sets)
            print(f"| {level} | {len(keywords)} | {name} | " + " | ".join(f"{v:.3f}" for v in m.values()) + " |")
            if name == "embedmap":
                sklearn_share = m["stop share (scikit-learn, 318 words)"]
                failed |= sklearn_share > 0 or m["diversity (keywords)"] < 0.9
                mine = m
            else:
                print(f"|   |   | ratio embedmap / baseline | " + " | ".join(
                    f"{mine[k] / v:.2f}" if v else "-" for k, v in m.items()) + " |")
    print("\ntargets: stop share (scikit-learn list) 0, diversity (keywords) >= 0.9 at every level")
    print("broad topics:")
    for row in table.filter(pl.col("level") == 0).sort("size", descending=True).iter_rows(named=True):
        print(f"  {row['topic_id']:>3} {row['size']:>5}  {row['label']:<40} {', '.join(row['keywords'][:10])}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
