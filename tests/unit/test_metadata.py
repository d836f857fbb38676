"""Dagster UI metadata built from record-derived text: the topic tree and tables stay inert markdown."""

import polars as pl

from dagster_embedmap.assets.metadata import md_cell, md_table, topic_tree_markdown

HOSTILE = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(2)) | pipe\nnew line"


def tree_table():
    return pl.DataFrame(
        {
            "level": [0, 0, 1, 1, 1],
            "topic_id": [0, 1, 0, 1, 2],
            "parent_id": [None, None, 1, 0, 0],
            "size": [70, 30, 30, 40, 30],
            "x": [0.0] * 5,
            "y": [0.0] * 5,
            "label": ["science, physics", HOSTILE, "art, music", "atoms, quantum", "stars, galaxy"],
            "keywords": [["science"], ["x"], ["art", "jazz music"], ["atoms"], [HOSTILE]],
        },
        schema_overrides={"parent_id": pl.Int64},
    )


def test_tree_nests_sub_topics_under_their_parent_biggest_first():
    lines = topic_tree_markdown(tree_table()).splitlines()
    assert lines[0].startswith("- **science, physics** (70; id 0): science")
    assert lines[1].startswith("  - atoms, quantum (40; id 1)")
    assert lines[2].startswith("  - stars, galaxy (30; id 2)")
    assert lines[3].startswith("- **") and "(30; id 1)" in lines[3]
    assert lines[4].startswith("  - art, music (30; id 0): art, jazz music")
    assert len(lines) == 5


def test_hostile_labels_and_keywords_are_inert():
    md = topic_tree_markdown(tree_table())
    assert "<img" not in md and "&lt;img" in md
    assert "](" not in md and "\\[link\\]" in md and "\\*\\*bold\\*\\*" in md
    assert "\\| pipe" in md and "new line" in md and md.count("\n") == 4  # the newline did not start a line


def test_many_children_are_cut_with_a_count():
    rows = [{"level": 0, "topic_id": 0, "parent_id": None, "size": 100, "label": "all", "keywords": []}]
    rows += [{"level": 1, "topic_id": i, "parent_id": 0, "size": 1, "label": f"t{i}", "keywords": []} for i in range(30)]
    md = topic_tree_markdown(pl.DataFrame(rows, schema_overrides={"parent_id": pl.Int64}), max_children=5)
    assert md.splitlines()[-1] == "  - … 25 more" and len(md.splitlines()) == 7
    assert topic_tree_markdown(pl.DataFrame(schema={"level": pl.Int64})) == "_no topics yet_"


def test_md_table_escapes_every_cell():
    table = md_table(["id", "label"], [[HOSTILE, "ok"]])
    assert "<img" not in table and table.count("\n") == 2
    assert md_cell("a" * 300, max_chars=10) == "a" * 9 + "…"
