"""Tests for dagster_embedmap.core.render: the PNG preview, its markdown form and the HTML map."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dagster_embedmap.core.errors import EmbedMapInputError
from dagster_embedmap.core.render import png_markdown, render_html_map, render_preview_png

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE_TEXT = "</script><img src=x onerror=alert(1)>"
HOSTILE_LABEL = "<b>x</b>"
DATA_RE = re.compile(
    r'<script type="application/json" id="embedmap-data">(.*?)</script>', re.DOTALL
)


def blobs(n_per: int = 300, n_noise: int = 60, seed: int = 0) -> pl.DataFrame:
    """Three labelled gaussian blobs plus some unlabelled noise (topic -1)."""
    rng = np.random.default_rng(seed)
    centres = [(-6.0, 0.0), (6.0, 1.0), (0.0, 8.0)]
    labels = ["space exploration", "medieval history and castles", "jazz music"]
    xs, ys, tids, tlabels = [], [], [], []
    for tid, ((cx, cy), label) in enumerate(zip(centres, labels)):
        xs.append(rng.normal(cx, 1.0, n_per))
        ys.append(rng.normal(cy, 1.0, n_per))
        tids += [tid] * n_per
        tlabels += [label] * n_per
    xs.append(rng.uniform(-10, 10, n_noise))
    ys.append(rng.uniform(-5, 12, n_noise))
    tids += [-1] * n_noise
    tlabels += [""] * n_noise
    n = len(tids)
    return pl.DataFrame(
        {
            "id": [f"doc-{i}" for i in range(n)],
            "x": np.concatenate(xs),
            "y": np.concatenate(ys),
            "topic_id": tids,
            "topic_label": tlabels,
            "text": [f"record number {i} " + "lorem ipsum " * (i % 50) for i in range(n)],
            "partition": ["2024-01" if i % 2 else "2024-02" for i in range(n)],
            "source": [None if i % 7 == 0 else f"src-{i % 3}" for i in range(n)],
        }
    )


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk."""
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def read_rgb(path: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return (img[..., :3] * 255).round().astype(np.uint8)


def embedded_data(page: str) -> dict:
    match = DATA_RE.search(page)
    assert match, "no embedmap-data script block"
    return json.loads(match.group(1))


# ------------------------------------------------------------------------------------- PNG


def test_png_has_signature_requested_size_and_topic_colours(tmp_path):
    out = render_preview_png(blobs(), tmp_path / "map.png", title="Three blobs")
    assert out == tmp_path / "map.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (1000, 750)

    rgb = read_rgb(out)
    assert rgb.shape[:2] == (750, 1000)
    pixels = rgb.reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20  # far from a flat image
    # the three topics are blue, orange and green in the palette: each dominates somewhere
    sat = pixels[(pixels.max(axis=1).astype(int) - pixels.min(axis=1)) > 80]
    assert set(np.argmax(sat, axis=1).tolist()) == {0, 1, 2}
    # small enough to inline into Dagster metadata
    assert len(data) < 400_000


def test_png_custom_size_and_title_area(tmp_path):
    frame = blobs(n_per=100, n_noise=0)
    with_title = render_preview_png(frame, tmp_path / "a.png", title="TITLE", width_px=640,
                                    height_px=333)  # fmt: skip
    without = render_preview_png(frame, tmp_path / "b.png", width_px=640, height_px=333)
    assert png_size(with_title.read_bytes()) == (640, 333)
    assert png_size(without.read_bytes()) == (640, 333)
    # the title is dark text in the top band; without a title that band holds only light pixels
    # or points, never the near-black title text
    top_with = read_rgb(with_title)[:30].astype(int)
    top_without = read_rgb(without)[:30].astype(int)
    assert (top_with.max(axis=2) < 80).any()
    assert not (top_without.max(axis=2) < 80).any()


def test_png_empty_frame_says_no_points(tmp_path):
    empty = blobs().clear()
    out = render_preview_png(empty, tmp_path / "empty.png", width_px=400, height_px=300)
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (400, 300)
    rgb = read_rgb(out)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 2  # the "no points" text is drawn
    # the text sits in the middle of the image, the corners stay white
    assert (rgb[:20, :20] == 255).all()
    assert (rgb[120:180, 100:300] < 250).any()


def test_png_one_point_and_no_topic_columns(tmp_path):
    one = blobs().head(1)
    out = render_preview_png(one, tmp_path / "one.png")
    assert png_size(out.read_bytes()) == (1000, 750)
    assert len(np.unique(read_rgb(out).reshape(-1, 3), axis=0)) > 2

    bare = pl.DataFrame({"x": [0.0, 1.0, float("nan")], "y": [0.0, 1.0, 2.0]})
    out2 = render_preview_png(bare, tmp_path / "bare.png", width_px=200, height_px=200)
    assert png_size(out2.read_bytes()) == (200, 200)


def test_png_creates_parents_overwrites_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "deep" / "er" / "map.png"
    render_preview_png(blobs(n_per=50), target)
    first = target.read_bytes()
    render_preview_png(blobs(n_per=50, seed=3), target, title="again")
    assert target.read_bytes() != first
    assert sorted(p.name for p in target.parent.iterdir()) == ["map.png"]


def test_png_many_topics_cycle_colours(tmp_path):
    rng = np.random.default_rng(1)
    n = 3000
    frame = pl.DataFrame(
        {
            "x": rng.normal(0, 10, n),
            "y": rng.normal(0, 10, n),
            "topic_id": rng.integers(-1, 60, n),
        }
    ).with_columns(topic_label=pl.format("topic number {}", pl.col("topic_id")))
    out = render_preview_png(frame, tmp_path / "many.png", max_labels=5)
    assert png_size(out.read_bytes()) == (1000, 750)


def test_png_missing_columns_is_an_input_error(tmp_path):
    with pytest.raises(EmbedMapInputError, match="y"):
        render_preview_png(pl.DataFrame({"x": [1.0]}), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_png_markdown_round_trips_bytes(tmp_path):
    out = render_preview_png(blobs(n_per=40), tmp_path / "m.png", width_px=300, height_px=200)
    md = png_markdown(out, alt="topic map")
    match = re.fullmatch(r"!\[topic map\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
    assert match, md[:80]
    assert base64.b64decode(match.group(1)) == out.read_bytes()
    assert png_markdown(out).startswith("![map preview](data:image/png;base64,")


# ------------------------------------------------------------------------------------ HTML


def hostile_frame() -> pl.DataFrame:
    frame = blobs(n_per=30, n_noise=5)
    return frame.with_columns(
        text=pl.when(pl.col("id") == "doc-3")
        .then(pl.lit(HOSTILE_TEXT + "\u2028line\u2029 & more"))
        .otherwise(pl.col("text")),
        topic_label=pl.when(pl.col("topic_id") == 1)
        .then(pl.lit(HOSTILE_LABEL))
        .otherwise(pl.col("topic_label")),
        id=pl.when(pl.col("id") == "doc-4")
        .then(pl.lit('"><svg onload=alert(2)>'))
        .otherwise(pl.col("id")),
    )


def test_html_is_self_contained(tmp_path):
    out = render_html_map(hostile_frame(), tmp_path / "map.html", extra_columns=["source"])
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z]+:)?//""", page, re.I)
    assert "@import" not in page and "url(" not in page
    assert "<link" not in page.lower()
    assert "<canvas" in page
    # data is JSON in the required script block; exactly one code script besides it
    assert len(DATA_RE.findall(page)) == 1
    assert page.count("</script>") == 2


def test_html_embeds_every_point(tmp_path):
    frame = blobs()
    out = render_html_map(frame, tmp_path / "sub" / "map.html", title="Blobs",
                          extra_columns=["source"])  # fmt: skip
    assert out == tmp_path / "sub" / "map.html"
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.html"]
    page = out.read_text(encoding="utf-8")
    data = embedded_data(page)
    n = frame.height
    for key in ("x", "y", "t", "id", "text", "p"):
        assert len(data[key]) == n, key
    assert data["extra_names"] == ["source"]
    assert len(data["extra"]) == 1 and len(data["extra"][0]) == n
    assert data["extra"][0][0] == "" and data["extra"][0][1] == "src-1"  # None -> ""
    assert data["id"][:3] == ["doc-0", "doc-1", "doc-2"]
    assert data["x"][10] == pytest.approx(frame["x"][10], abs=1e-3)
    assert data["y"][10] == pytest.approx(frame["y"][10], abs=1e-3)
    # coordinates are rounded, not written at full float precision
    assert max(len(repr(v).split(".")[-1]) for v in data["x"]) <= 4
    # topics: biggest first, counts add up, point -> topic index -> label is consistent
    topics = data["topics"]
    assert sum(t["count"] for t in topics) == n
    assert {t["label"] for t in topics} == {
        "space exploration", "medieval history and castles", "jazz music", "no topic"
    }  # fmt: skip
    assert topics[data["t"][0]]["label"] == "space exploration"
    assert topics[data["t"][-1]]["id"] == -1
    assert sorted(data["parts"]) == ["2024-01", "2024-02"]
    assert data["parts"][data["p"][1]] == "2024-01"
    # header shows the escaped title and the point count
    assert "<h1>Blobs</h1>" in page and f"{n:,} points" in page


def test_html_ids_of_any_type_and_long_text_cut(tmp_path):
    frame = pl.DataFrame(
        {
            "id": [101, 102],
            "x": [0.5, 1.5],
            "y": [2.0, 3.0],
            "topic_id": [0, 0],
            "topic_label": ["t", "t"],
            "text": ["é" * 1000, None],
            "partition": ["p", "p"],
            "meta": [1.5, None],
        }
    )
    data = embedded_data(
        render_html_map(frame, tmp_path / "m.html", extra_columns=["meta"]).read_text("utf-8")
    )
    assert data["id"] == ["101", "102"]
    assert len(data["text"][0]) <= 400 and data["text"][0].startswith("é" * 300)
    assert data["text"][1] == ""
    assert data["extra"] == [["1.5", ""]]


def test_html_hostile_strings_only_escaped(tmp_path):
    title = "<script>alert('title')</script> & co"
    out = render_html_map(hostile_frame(), tmp_path / "map.html", title=title,
                          extra_columns=["source"])  # fmt: skip
    page = out.read_text(encoding="utf-8")
    for raw in (HOSTILE_TEXT, HOSTILE_LABEL, "<img", "<b>", "<svg", title, "alert('title')</"):
        assert raw not in page, raw
    assert "\u2028" not in page and "\u2029" not in page
    assert "\\u003c/script\\u003e\\u003cimg" in page
    assert html.escape(title) in page
    # the JS only ever uses textContent for data, never innerHTML
    assert "innerHTML" not in page and "textContent" in page
    data = embedded_data(page)
    i = data["id"].index("doc-3")
    assert data["text"][i] == HOSTILE_TEXT + "\u2028line\u2029 & more"
    assert '"><svg onload=alert(2)>' in data["id"]
    assert HOSTILE_LABEL in [t["label"] for t in data["topics"]]


def test_html_empty_and_one_point(tmp_path):
    empty = render_html_map(blobs().clear(), tmp_path / "empty.html")
    data = embedded_data(empty.read_text("utf-8"))
    assert data["x"] == [] and data["topics"] == [] and data["id"] == []
    assert "0 points" in empty.read_text("utf-8")

    one = render_html_map(blobs().head(1), tmp_path / "one.html")
    data = embedded_data(one.read_text("utf-8"))
    assert data["id"] == ["doc-0"] and len(data["topics"]) == 1


def test_html_missing_extra_column_is_an_input_error(tmp_path):
    with pytest.raises(EmbedMapInputError, match="nope"):
        render_html_map(blobs(n_per=5), tmp_path / "m.html", extra_columns=["nope"])
    assert not (tmp_path / "m.html").exists()


# A tiny DOM stand-in: runs the page's script in node, hovers a point, zooms, pans and clicks the
# legend, and reports what the page showed. innerHTML throws, so any use of it fails the test.
NODE_HARNESS = r"""
"use strict";
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const target = parseInt(process.argv[3], 10);
const dataText = html.match(/<script type="application\/json" id="embedmap-data">([\s\S]*?)<\/script>/)[1];
const code = html.match(/<script>([\s\S]*?)<\/script>/)[1];
class El {
  constructor(tag) {
    this.tagName = tag; this.children = []; this.style = {}; this.listeners = {}; this._text = "";
    this.className = ""; this.title = ""; this.offsetWidth = 200; this.offsetHeight = 100;
    const s = new Set();
    this.classList = { add: c => s.add(c), remove: c => s.delete(c), contains: c => s.has(c),
      toggle: (c, f) => { if (f === undefined) f = !s.has(c); f ? s.add(c) : s.delete(c); } };
  }
  get textContent() { return this._text + this.children.map(c => c.textContent).join("\n"); }
  set textContent(v) { this.children = []; this._text = String(v); }
  set innerHTML(v) { throw new Error("innerHTML used"); }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); }
  fire(t, ev) { (this.listeners[t] || []).forEach(f => f(ev)); }
  setPointerCapture() {} releasePointerCapture() {}
}
const texts = [];
let marks = 0;
const ctx = new Proxy({}, { get(o, k) {
  if (k === "measureText") return s => ({ width: String(s).length * 7 });
  if (k === "fillText") return s => texts.push(String(s));
  if (k === "rect" || k === "arc") return () => { marks++; };
  if (k in o) return o[k];
  return () => {};
}, set(o, k, v) { o[k] = v; return true; } });
const els = {};
["map", "tip", "legend", "legend-list", "clear", "filter"].forEach(id => els[id] = new El("div"));
els.map.getContext = () => ctx;
els["embedmap-data"] = new El("script"); els["embedmap-data"].textContent = dataText;
const document = { getElementById: id => els[id], createElement: t => new El(t),
  createTextNode: t => { const e = new El("#text"); e.textContent = t; return e; } };
const window = { innerWidth: 1000, innerHeight: 800, devicePixelRatio: 1, addEventListener() {} };
let queue = [];
const raf = f => queue.push(f);
const flush = () => { while (queue.length) { const q = queue; queue = []; q.forEach(f => f()); } };
new Function("document", "window", "requestAnimationFrame", code)(document, window, raf);
flush();
const out = { labels: texts.slice(), marks: marks,
  legend: els["legend-list"].children.map(c => c.children.map(s => s.textContent)) };
const D = JSON.parse(dataText);
const xs = D.x, ys = D.y;
const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
const sx = maxX - minX || maxY - minY || 1, sy = maxY - minY || sx;
const w = 1000 - 280;  // the page keeps the points clear of the 280 px legend panel
const k = Math.min((w - 80) / sx, (800 - 80) / sy);
const px = w / 2 + (xs[target] - (minX + maxX) / 2) * k, py = 400 - (ys[target] - (minY + maxY) / 2) * k;
const hoverAt = (x, y) => { els.map.fire("pointermove", { clientX: x, clientY: y }); flush();
  return els.tip.style.display === "block" ? els.tip.textContent : null; };
out.hover = hoverAt(px, py);
els.map.fire("wheel", { deltaY: -600, deltaMode: 0, clientX: px, clientY: py, preventDefault() {} });
flush();
out.hoverAfterZoom = hoverAt(px, py);
els.map.fire("pointerdown", { clientX: 500, clientY: 400, pointerId: 1 });
els.map.fire("pointermove", { clientX: 600, clientY: 450 }); flush();
els.map.fire("pointerup", { pointerId: 1 });
out.hoverAfterPan = hoverAt(px + 100, py + 50);
out.hoverNowhere = hoverAt(-5000, -5000);
els["legend-list"].children[0].fire("click", {}); flush();
out.firstSelected = els["legend-list"].children[0].classList.contains("on");
out.legendDimming = els.legend.classList.contains("sel");
console.log(JSON.stringify(out));
"""


def test_html_script_runs_hover_zoom_pan_legend(tmp_path):
    frame = hostile_frame()
    page_path = render_html_map(frame, tmp_path / "map.html", extra_columns=["source"])
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS, encoding="utf-8")
    target = frame["id"].to_list().index("doc-3")
    proc = subprocess.run(
        ["node", str(harness), str(page_path), str(target)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)

    assert out["marks"] == frame.height  # every point drawn once
    assert "space exploration" in out["labels"]  # biggest topics labelled at the first zoom
    assert out["legend"][0][1] in {"space exploration", "medieval history and castles",
                                   "jazz music", HOSTILE_LABEL}  # fmt: skip
    assert sum(int(row[2].replace(",", "")) for row in out["legend"]) == frame.height
    assert HOSTILE_LABEL in [row[1] for row in out["legend"]]  # shown verbatim, as text

    tip = out["hover"]
    assert tip is not None
    assert "id:\ndoc-3" in tip
    assert "topic:\nspace exploration" in tip
    assert "partition:\n2024-01" in tip
    assert "source:\nsrc-0" in tip
    assert HOSTILE_TEXT in tip  # the hostile text reaches the tooltip as plain text
    assert out["hoverAfterZoom"] == tip  # zoom keeps the point under the cursor
    assert out["hoverAfterPan"] == tip  # the drag moved the map by the drag distance
    assert out["hoverNowhere"] is None
    assert out["firstSelected"] and out["legendDimming"]
