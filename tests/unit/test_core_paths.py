"""Tests for dagster_embedmap.core.paths: safe partition file names and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dagster_embedmap.core.paths import MapLayout, atomic_path, partition_filename

HOSTILE_KEYS = [
    "../etc/passwd",
    "a/b",
    "a b",
    "",
    ".",
    "..",
    "x" * 300,
    "/abs/path",
    "a\\b",
    "ключ",
    "a\x00b",
]


@pytest.mark.parametrize("key", ["2024-01-01", "batch-000", "abc_DEF.9", "p1"])
def test_simple_keys_are_kept(key):
    assert partition_filename(key) == key


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_become_safe_file_names(key, tmp_path):
    name = partition_filename(key)
    assert name
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert ".." not in name
    assert not name.startswith(".")
    assert len(name) <= 120
    # used as a file name, it stays inside its folder
    target = (tmp_path / f"{name}.parquet").resolve()
    assert target.parent == tmp_path.resolve()
    target.write_bytes(b"ok")
    assert target.read_bytes() == b"ok"


def test_changed_keys_are_unique_and_deterministic():
    keys = HOSTILE_KEYS + ["a_b", "a-b", "a?b", "a*b", "x" * 301, "x" * 80, "x" * 81, "partition"]
    names = [partition_filename(k) for k in keys]
    assert len(set(names)) == len(keys)
    assert names == [partition_filename(k) for k in keys]


def test_readable_part_is_kept_in_changed_keys():
    assert partition_filename("a b").startswith("a_b-")
    assert partition_filename("../etc/passwd").startswith("etc_passwd-")


def test_long_key_is_truncated_with_a_hash():
    name = partition_filename("y" * 500)
    assert name.startswith("y" * 80 + "-")
    assert len(name) == 80 + 1 + 12


def test_map_layout_keeps_partition_files_inside_the_map_folder(tmp_path):
    layout = MapLayout(tmp_path, "../evil map")
    assert layout.root.parent == tmp_path.resolve()
    doc = layout.documents("../../etc/passwd")
    emb = layout.embeddings("a/b")
    assert doc.parent == layout.root / "documents"
    assert emb.parent == layout.root / "embeddings"
    assert doc.suffix == ".parquet"


# -- atomic_path ----------------------------------------------------------------------------------


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp != target
        assert tmp.parent == target.parent
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible before the block ends
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_atomic_path_keeps_old_file_when_block_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_path_creates_no_target_when_block_raises(tmp_path):
    target = tmp_path / "sub" / "new.bin"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
            raise ValueError
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_atomic_path_creates_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "c.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("hi")
    assert target.read_text() == "hi"
    assert leftovers(target.parent) == []


def test_file_lock_waits_then_raises_the_given_error_and_frees_on_exit(tmp_path):
    import time

    from dagster_embedmap.core.paths import file_lock

    lock = tmp_path / "sub" / "x.lock"
    with file_lock(lock):
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="held"):
            with file_lock(lock, timeout_s=0.3, on_timeout=lambda: RuntimeError("held")):
                pass
        assert time.monotonic() - started >= 0.25
    with file_lock(lock, timeout_s=0.1):  # released: taken at once
        pass
