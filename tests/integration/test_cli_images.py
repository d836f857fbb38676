"""`embedmap build images.csv --image-column path [--text-column caption] --model FOLDER --home DIR`: a
folder of images drawn with Pillow and a CSV of paths, through the CLI in a fresh process, with a tiny
CLIP model the test builds; bad images are named in one paragraph, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
from support.tiny_clip import COLOURS, build_tiny_clip, draw_shape

EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([*EMBEDMAP, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def test_the_cli_builds_a_map_of_images_and_names_bad_ones(tmp_path):
    model = build_tiny_clip(tmp_path)
    (tmp_path / "img").mkdir()
    for i in range(20):
        draw_shape(tmp_path / "img" / f"{i}.png", list(COLOURS)[i % 3], ("circle", "square")[i % 2])
    pl.DataFrame({"id": [f"im{i}" for i in range(20)], "path": [f"img/{i}.png" for i in range(20)]}).write_csv(
        tmp_path / "images.csv")
    home = tmp_path / "home"
    build = ["build", str(tmp_path / "images.csv"), "--image-column", "path", "--model", str(model),
             "--home", str(home), "--name", "pics"]
    done = run(*build, cwd=tmp_path)  # no text column at all: the images alone
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "points.csv"
    assert run("export", "--home", str(home), "--out", str(out), cwd=tmp_path).returncode == 0
    points = pl.read_csv(out)
    assert points.height == 20 and points["path"].to_list()[0].startswith("img/")
    found = run("search", "--home", str(home), "a red circle", cwd=tmp_path)
    assert found.returncode == 0 and "im" in found.stdout, found.stderr
    again = run(*build, cwd=tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout + again.stderr

    # a missing path and a broken file: named, and with --bad-image fail nothing is written
    (tmp_path / "img" / "bad.png").write_bytes(b"not an image")
    pl.DataFrame({"id": [f"im{i}" for i in range(20)] + ["bad", "gone"],
                  "path": [f"img/{i}.png" for i in range(20)] + ["img/bad.png", "img/gone.png"]}).write_csv(
        tmp_path / "images.csv")
    failed = run(*build, "--bad-image", "fail", cwd=tmp_path)
    text = failed.stdout + failed.stderr
    assert failed.returncode == 2 and "Traceback" not in text, text[-3000:]
    assert "2 image(s) of column 'path' cannot be read" in text and "--bad-image skip" in text
    assert f"no file at {tmp_path / 'img' / 'gone.png'}" in text
    skipped = run(*build, cwd=tmp_path)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert "skipped 2 record(s) whose image in column 'path' cannot be read" in skipped.stdout + skipped.stderr
    neither = run("build", str(tmp_path / "images.csv"), "--home", str(home), cwd=tmp_path)
    assert neither.returncode != 0 and "give --text-column COLUMN" in neither.stderr
