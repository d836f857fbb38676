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
    assert page.count("</script>") == 3  # the data, the (empty) semantic-search data, the code
    assert '<script type="application/json" id="embedmap-semantic">null</script>' in page


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
    assert [m["name"] for m in data["meta"]] == ["source"]
    source = data["meta"][0]
    assert source["kind"] == "cat" and len(source["codes"]) == n  # few values: dictionary-coded
    values = [source["values"][c] for c in source["codes"]]
    assert values[0] == "" and values[1] == "src-1"  # None -> ""
    assert data["levels"] == []  # no topic_{L}_id columns: one level, the topics themselves
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
    assert data["meta"] == [{"name": "meta", "kind": "cat", "values": ["", "1.5"], "codes": [1, 0]}]


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


# A tiny DOM stand-in: runs the page's script in node, hovers a point, zooms, pans, clicks the
# legend, searches, switches the colour-by and reports what the page showed. innerHTML throws,
# so any use of it fails the test. argv: page, index of the point to hover, JSON options
# ({"query": text typed into the search box, "hash": location.hash at load}).
NODE_HARNESS = r"""
"use strict";
const fs = require("fs");
const html = fs.readFileSync(process.argv[2], "utf8");
const target = parseInt(process.argv[3], 10);
const opts = JSON.parse(process.argv[4] || "{}");
const dataText = html.match(/<script type="application\/json" id="embedmap-data">([\s\S]*?)<\/script>/)[1];
const code = html.match(/<script>([\s\S]*?)<\/script>/)[1];
const created = [];
class El {
  constructor(tag) {
    this.tagName = tag; this.children = []; this.style = {}; this.listeners = {}; this._text = "";
    this.className = ""; this.title = ""; this.value = ""; this.offsetWidth = 200;
    this.offsetHeight = 100;
    const s = new Set();
    this.classList = { add: c => s.add(c), remove: c => s.delete(c), contains: c => s.has(c),
      toggle: (c, f) => { if (f === undefined) f = !s.has(c); f ? s.add(c) : s.delete(c); } };
  }
  get textContent() { return this._text + this.children.map(c => c.textContent).join("\n"); }
  set textContent(v) { this.children = []; this._text = String(v); }
  set innerHTML(v) { throw new Error("innerHTML used"); }
  set outerHTML(v) { throw new Error("outerHTML used"); }
  insertAdjacentHTML() { throw new Error("insertAdjacentHTML used"); }
  appendChild(c) { this.children.push(c); return c; }
  addEventListener(t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); }
  fire(t, ev) { (this.listeners[t] || []).forEach(f => f(ev)); }
  setPointerCapture() {} releasePointerCapture() {}
  setAttribute(k, v) { this[k] = String(v); }
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
["map", "tip", "legend", "legend-list", "clear", "filter", "search", "search-mode", "results", "search-info", "copy-ids", "density",
 "colorby", "head", "legend-toggle", "head-toggle"].forEach(id => els[id] = new El("div"));
els.head.offsetTop = 8;  // the header panel: 8 + 100 px tall, the map fits below it
els.map.getContext = () => ctx;
els["embedmap-data"] = new El("script"); els["embedmap-data"].textContent = dataText;
const document = { getElementById: id => els[id],
  createElement: t => { const e = new El(t); created.push(e); return e; },
  createTextNode: t => { const e = new El("#text"); e.textContent = t; return e; },
  write() { throw new Error("document.write used"); } };
const winListeners = {};
const window = { innerWidth: 1000, innerHeight: 800, devicePixelRatio: 1,
  location: { hash: opts.hash || "" },
  addEventListener(t, f) { (winListeners[t] = winListeners[t] || []).push(f); } };
let queue = [];
const raf = f => queue.push(f);
const later = f => { queue.push(f); return queue.length; };
const flush = () => { while (queue.length) { const q = queue; queue = []; q.forEach(f => f()); } };
new Function("document", "window", "requestAnimationFrame", "setTimeout", "clearTimeout", code)(
  document, window, raf, later, () => {});
flush();
const api = window.embedmap;
const legendRows = () => els["legend-list"].children.filter(c => c.className === "item")
  .map(c => c.children.map(s => s.textContent));
const out = { labels: texts.slice(), marks: marks, legend: legendRows(),
  level: api.level(), labelsShown: api.labelsShown(), hashResults: api.results(),
  options: els.colorby.children.map(o => o.textContent), frozen: Object.isFrozen(api) };
const D = JSON.parse(dataText);
const xs = D.x, ys = D.y;
const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
const sx = maxX - minX || maxY - minY || 1, sy = maxY - minY || sx;
const w = 1000 - 280;  // the page keeps the points clear of the 280 px legend panel
const top = 8 + 100 + 12;  // ... and of the header panel
const k = Math.min((w - 80) / sx, (800 - top - 40) / sy);
const px = w / 2 + (xs[target] - (minX + maxX) / 2) * k;
const py = (top + 760) / 2 - (ys[target] - (minY + maxY) / 2) * k;
out.screenOf = api.screenOf(D.id[target]);
out.expected = { x: px, y: py };
const hoverAt = (x, y) => { els.map.fire("pointermove", { clientX: x, clientY: y }); flush();
  return els.tip.style.display === "block" ? els.tip.textContent : null; };
out.hover = hoverAt(px, py);
els.map.fire("wheel", { deltaY: -600, deltaMode: 0, clientX: px, clientY: py, preventDefault() {} });
flush();
out.levelAfterZoom = api.level(); out.labelsAfterZoom = api.labelsShown();
out.hoverAfterZoom = hoverAt(px, py);
els.map.fire("pointerdown", { clientX: 500, clientY: 400, pointerId: 1 });
els.map.fire("pointermove", { clientX: 600, clientY: 450 }); flush();
els.map.fire("pointerup", { pointerId: 1 });
out.hoverAfterPan = hoverAt(px + 100, py + 50);
out.hoverNowhere = hoverAt(-5000, -5000);
els["legend-list"].children[0].fire("click", {}); flush();
out.firstSelected = els["legend-list"].children[0].classList.contains("on");
out.legendDimming = els.legend.classList.contains("sel");
els.clear.fire("click", {}); flush();
if (opts.query !== undefined) {
  els.search.value = opts.query; els.search.fire("input", {}); flush();
  out.results = api.results(); out.matchCount = api.matchCount();
  out.info = els["search-info"].textContent;
  out.resultRows = els.results.children.map(r => r.children.map(s => s.textContent));
  if (els.results.children.length) {
    els.results.children[0].fire("click", {}); flush();
    out.tipAfterResult = els.tip.style.display === "block" ? els.tip.textContent : null;
    out.zoomAfterResult = api.zoom();
  }
  els.search.value = ""; els.search.fire("keydown", { key: "Escape" }); flush();
  out.resultsCleared = api.results().length === 0;
}
out.modes = {};
els.colorby.children.forEach((o, q) => {
  els.colorby.value = o.value; els.colorby.fire("change", {}); flush();
  out.modes[o.textContent] = { colorBy: api.colorBy(), legend: legendRows(),
    legendCount: els["legend-list"].children.length };
});
out.tags = [...new Set(created.map(e => e.tagName))].sort();
console.log(JSON.stringify(out));
"""


def run_harness(tmp_path: Path, page: Path, target: int, **opts) -> dict:
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS, encoding="utf-8")
    proc = subprocess.run(
        ["node", str(harness), str(page), str(target), json.dumps(opts)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_html_script_runs_hover_zoom_pan_legend(tmp_path):
    frame = hostile_frame()
    page_path = render_html_map(frame, tmp_path / "map.html", extra_columns=["source"])
    target = frame["id"].to_list().index("doc-3")
    out = run_harness(tmp_path, page_path, target)

    assert out["marks"] == frame.height  # every point drawn once
    assert "space exploration" in out["labels"]  # biggest topics labelled at the first zoom
    assert out["legend"][0][2] in {"space exploration", "medieval history and castles",
                                   "jazz music", HOSTILE_LABEL}  # fmt: skip
    assert sum(int(row[3].replace(",", "")) for row in out["legend"]) == frame.height
    assert HOSTILE_LABEL in [row[2] for row in out["legend"]]  # shown verbatim, as text
    assert out["level"] == 0 and out["levelAfterZoom"] == 0  # one level only
    assert out["frozen"]
    assert out["screenOf"]["x"] == pytest.approx(out["expected"]["x"], abs=1e-6)
    assert out["screenOf"]["y"] == pytest.approx(out["expected"]["y"], abs=1e-6)

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
    assert out["options"] == ["topic", "partition", "source"]  # no levels: no "broad topic"


# ------------------------------------------------------------------------ HTML: topic levels

BROAD = ["science", "arts"]
FINE = ["space exploration", "particle physics", "jazz music", "renaissance painting"]


def levelled(n_per: int = 80, seed: int = 0) -> pl.DataFrame:
    """Four fine topics in four blobs, two per broad topic (0: science, 1: arts), plus noise."""
    rng = np.random.default_rng(seed)
    centres = [(-8.0, 0.0), (-8.0, 6.0), (8.0, 0.0), (8.0, 6.0)]
    xs, ys, fine, broad = [], [], [], []
    for tid, (cx, cy) in enumerate(centres):
        xs.append(rng.normal(cx, 0.8, n_per))
        ys.append(rng.normal(cy, 0.8, n_per))
        fine += [tid] * n_per
        broad += [tid // 2] * n_per
    xs.append(rng.uniform(-10, 10, 10))
    ys.append(rng.uniform(-2, 8, 10))
    fine += [-1] * 10
    broad += [-1] * 10
    n = len(fine)
    return pl.DataFrame(
        {
            "id": [f"rec-{i}" for i in range(n)],
            "x": np.concatenate(xs),
            "y": np.concatenate(ys),
            "topic_0_id": broad,
            "topic_0_label": [BROAD[b] if b >= 0 else "" for b in broad],
            "topic_1_id": fine,
            "topic_1_label": [FINE[f] if f >= 0 else "" for f in fine],
            "topic_id": fine,
            "topic_label": [FINE[f] if f >= 0 else "" for f in fine],
            "text": [
                f"note {i} about {FINE[f] if f >= 0 else 'nothing much'}"
                for i, f in enumerate(fine)
            ],
            "partition": [f"2024-0{1 + i % 3}" for i in range(n)],
            "title": [f"Title number {i}" for i in range(n)],
            "kind": [["article", "review", "note"][i % 3] for i in range(n)],
            "score": [float(i % 97) / 7 for i in range(n)],
        }
    )


def test_html_levels_json(tmp_path):
    frame = levelled()
    data = embedded_data(render_html_map(frame, tmp_path / "m.html").read_text("utf-8"))
    assert len(data["levels"]) == 1  # topic_1 repeats topic_id: broad level + the finest
    broad = data["levels"][0]
    assert broad["name"] == "broad topic"
    assert [t["label"] for t in broad["topics"]] == ["science", "arts", "no topic"]  # by size
    assert len(broad["t"]) == len(data["t"]) == frame.height
    for i, (b, f) in enumerate(zip(frame["topic_0_id"], frame["topic_id"])):
        assert broad["topics"][broad["t"][i]]["id"] == b
        assert data["topics"][data["t"][i]]["id"] == f
    # every fine topic hangs under the broad topic holding its points; level 0 has no parent
    assert all(t["parent"] == -1 for t in broad["topics"])
    by_label = {t["label"]: t for t in data["topics"]}
    for fine_label, broad_label in zip(FINE, ["science", "science", "arts", "arts"]):
        assert broad["topics"][by_label[fine_label]["parent"]]["label"] == broad_label
    assert broad["topics"][by_label["no topic"]["parent"]]["id"] == -1
    # sub-topics take tones of their broad topic's colour; the biggest keeps it
    colours = {t["label"]: t["color"] for t in broad["topics"]}
    siblings = [by_label[f]["color"] for f in FINE[:2]]
    assert colours["science"] in siblings and len(set(siblings)) == 2
    assert colours["arts"] in [by_label[f]["color"] for f in FINE[2:]]
    # broad labels wrap narrower; medians sit on the blobs
    sci = next(t for t in broad["topics"] if t["label"] == "science")
    assert sci["cx"] == pytest.approx(-8.0, abs=0.5) and sci["cy"] == pytest.approx(3.0, abs=1.5)
    assert [o["name"] for o in data["colorby"]][:2] == ["topic", "broad topic"]
    assert data["colorby"][0]["level"] == 1 and data["colorby"][1]["level"] == 0


def test_html_levels_without_labels_topic_id_or_with_three_levels(tmp_path):
    frame = levelled(n_per=20)
    # no label columns and no topic_id: the last level is the finest, labels are "topic {id}"
    bare = frame.drop("topic_0_label", "topic_1_label", "topic_id", "topic_label")
    data = embedded_data(render_html_map(bare, tmp_path / "a.html").read_text("utf-8"))
    assert len(data["levels"]) == 1
    assert {t["label"] for t in data["levels"][0]["topics"]} == {"topic 0", "topic 1", "no topic"}
    assert {t["label"] for t in data["topics"]} == {"topic 0", "topic 1", "topic 2", "topic 3",
                                                   "no topic"}  # fmt: skip

    # levels that do not end in topic_id are all broader levels: 2 + the finest = 3 levels
    three = frame.with_columns(
        topic_id=pl.when(pl.col("topic_id") >= 0).then(pl.col("topic_id") * 10 + pl.col("id")
        .str.extract(r"(\d+)$").cast(pl.Int64) % 2).otherwise(-1),
    ).with_columns(topic_label=pl.format("leaf {}", pl.col("topic_id")))
    data = embedded_data(render_html_map(three, tmp_path / "b.html").read_text("utf-8"))
    assert [lv["name"] for lv in data["levels"]] == ["broad topic", "topic level 1"]
    mid = data["levels"][1]["topics"]
    for t in data["topics"]:
        if t["id"] >= 0:
            assert mid[t["parent"]]["id"] == t["id"] // 10

    # null level ids mean "no topic"
    nulls = frame.with_columns(topic_0_id=pl.when(pl.col("topic_0_id") == 1).then(None)
                               .otherwise(pl.col("topic_0_id")))  # fmt: skip
    data = embedded_data(render_html_map(nulls, tmp_path / "c.html").read_text("utf-8"))
    assert {t["id"] for t in data["levels"][0]["topics"]} == {0, -1}


def test_html_colorby_and_search_payload(tmp_path):
    frame = levelled(n_per=40)
    n = frame.height
    many = frame.with_columns(  # 30 values: the top 19 get colours, the rest is "other"
        many=pl.Series([f"v{(i * 7) % 30:02d}" if i % 5 else "" for i in range(n)])
    )
    out = render_html_map(many, tmp_path / "m.html",
                          extra_columns=["kind", "score", "title", "many"])  # fmt: skip
    data = embedded_data(out.read_text("utf-8"))
    options = {o["name"]: o for o in data["colorby"]}
    assert list(options) == ["topic", "broad topic", "partition", "kind", "score", "title", "many"]

    part = options["partition"]
    assert [g["label"] for g in part["groups"]] == sorted(data["parts"]) == ["2024-01", "2024-02",
                                                                            "2024-03"]  # fmt: skip
    assert [data["parts"][i] for i in range(3)] == ["2024-01", "2024-02", "2024-03"]
    assert sum(g["count"] for g in part["groups"]) == n

    kind = options["kind"]
    meta = {m["name"]: m for m in data["meta"]}
    assert meta["kind"]["kind"] == "cat" and kind["src"] == 0
    assert {g["label"] for g in kind["groups"]} == {"article", "review", "note"}
    for q in range(n):  # value -> group -> label round trip
        value = meta["kind"]["values"][meta["kind"]["codes"][q]]
        assert kind["groups"][kind["map"][meta["kind"]["codes"][q]]]["label"] == value

    score = options["score"]
    assert score["kind"] == "num" and meta["score"]["kind"] == "num"
    assert score["min"] == 0 and score["max"] == pytest.approx(96 / 7, rel=1e-5)
    assert len(score["q"]) == 33 and score["q"] == sorted(score["q"])  # quantile bin edges
    assert score["q"][0] == 0 and score["q"][16] == pytest.approx(score["median"], rel=1e-5)
    assert meta["score"]["v"][:3] == [0.0, pytest.approx(1 / 7), pytest.approx(2 / 7)]

    # every title differs: sent as plain strings, colour groups per row, searched
    assert meta["title"]["kind"] == "str" and meta["title"]["s"][5] == "Title number 5"
    assert len(options["title"]["g"]) == n
    assert data["search_meta"] == [2]

    groups = options["many"]["groups"]
    labels = [g["label"] for g in groups]
    assert len(labels) == 19 + 2 and labels[-2:] == ["other", "(empty)"]
    assert len({g["color"] for g in groups[:19]}) == 19
    assert groups[-1]["count"] == sum(1 for i in range(n) if i % 5 == 0)
    assert sum(g["count"] for g in groups) == n
    counts = [g["count"] for g in groups[:19]]
    assert counts == sorted(counts, reverse=True)
    left_out = [c for v, c in many["many"].value_counts().iter_rows() if v and v not in labels]
    assert left_out and min(counts) >= max(left_out)  # the most frequent values got colours


def test_html_numeric_columns_with_few_values_or_huge_ints_are_categories(tmp_path):
    frame = pl.DataFrame(
        {
            "id": ["a", "b", "c"], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5],
            "year": [2020, 2021, None], "big": [2**60, 2**60 + 1, 3],
            "ratio": [float("nan"), 0.5, float("inf")],
        }
    )  # fmt: skip
    page = render_html_map(frame, tmp_path / "m.html", extra_columns=["year", "big", "ratio"])
    data = embedded_data(page.read_text("utf-8"))
    kinds = {m["name"]: m["kind"] for m in data["meta"]}
    assert kinds == {"year": "cat", "big": "cat", "ratio": "cat"}
    big = data["meta"][1]
    assert sorted(big["values"]) == sorted(["1152921504606846976", "1152921504606846977", "3"])

    rng = np.random.default_rng(0)
    ramp = pl.DataFrame({"id": [str(i) for i in range(50)], "x": rng.normal(size=50),
                         "y": rng.normal(size=50),
                         "v": [float("nan") if i == 3 else i / 3 for i in range(50)]})  # fmt: skip
    data = embedded_data(render_html_map(ramp, tmp_path / "r.html",
                                         extra_columns=["v"]).read_text("utf-8"))  # fmt: skip
    assert data["meta"][0]["kind"] == "num" and data["meta"][0]["v"][3] is None
    assert data["colorby"][-1]["max"] == pytest.approx(49 / 3, rel=1e-5)


def test_html_snippets_shorter_for_big_maps(tmp_path):
    from dagster_embedmap.core.render.html import _snippet_limit

    assert _snippet_limit(100) == 400 and _snippet_limit(20_000) == 400
    assert _snippet_limit(40_000) == 200 and _snippet_limit(100_000) == 120
    frame = levelled(n_per=5).with_columns(text=pl.lit("word " * 200))
    data = embedded_data(render_html_map(frame, tmp_path / "m.html", text_limit=50)
                         .read_text("utf-8"))  # fmt: skip
    assert all(len(t) == 50 and t.endswith("…") for t in data["text"])


def test_html_point_budget_goes_to_the_page_and_a_negative_one_is_refused(tmp_path):
    from dagster_embedmap.core.render.html import POINT_BUDGET

    frame = levelled(n_per=5)
    assert embedded_data(render_html_map(frame, tmp_path / "a.html").read_text("utf-8"))["budget"] == POINT_BUDGET
    assert embedded_data(render_html_map(frame, tmp_path / "b.html", point_budget=0).read_text("utf-8"))["budget"] == 0
    with pytest.raises(ValueError, match="point_budget must be 0"):
        render_html_map(frame, tmp_path / "c.html", point_budget=-1)
    assert not (tmp_path / "c.html").exists()


def test_html_script_levels_search_colorby(tmp_path):
    frame = levelled()
    page = render_html_map(frame, tmp_path / "m.html", title="Levels",
                           extra_columns=["kind", "score", "title"])  # fmt: skip
    target = 5
    out = run_harness(tmp_path, page, target, query="JAZZ note 16")
    # zoomed out: the broad region titles and, with them, the fine topics; one wheel step (2.5x) later
    # the fine ones in view still (a two-level tree has no deeper level), beside the titles in view
    shown = set(out["labelsShown"])
    assert out["level"] == 1 and shown >= {"science", "arts"} and shown - {"science", "arts"} <= set(FINE)
    assert len(shown) > 2
    assert out["levelAfterZoom"] == 1
    fine_after = set(out["labelsAfterZoom"]) - set(BROAD)
    assert fine_after <= set(FINE) and fine_after
    # legend tree: broad topic, then its sub-topics
    labels = [row[2] for row in out["legend"]]
    assert labels.index("space exploration") == labels.index("science") + 1
    assert labels.index("jazz music") > labels.index("arts")
    assert out["legend"][0][0] == "\u25be"  # open caret on a broad topic
    # the tooltip carries every level
    assert "broad topic:\nscience" in out["hover"] and "topic:\nspace exploration" in out["hover"]
    assert "title:\nTitle number 5" in out["hover"] and "kind:\nnote" in out["hover"]
    # "jazz" matches the topic label, "note" and "16" the text: records 16x of topic 2
    expected = [i for i in range(frame.height) if frame["topic_id"][i] == 2
                and "16" in frame["text"][i]]  # fmt: skip
    assert out["results"] == [frame["id"][i] for i in expected]
    assert out["matchCount"] == len(expected) and str(len(expected)) in out["info"]
    assert out["resultRows"][0] == [frame["id"][expected[0]], frame["title"][expected[0]], "arts \u203a jazz music"]
    assert f"id:\n{frame['id'][expected[0]]}" in out["tipAfterResult"]
    assert out["zoomAfterResult"] >= 4 and out["resultsCleared"]
    # colour-by switches the legend
    per_partition = dict(frame["partition"].value_counts().iter_rows())
    assert out["modes"]["partition"]["legend"] == [
        ["", "", p, str(per_partition[p])] for p in ["2024-01", "2024-02", "2024-03"]
    ]
    assert [r[2] for r in out["modes"]["broad topic"]["legend"]] == ["science", "arts", "no topic"]
    assert [r[2] for r in out["modes"]["kind"]["legend"]] == ["article", "note", "review"]
    # ramp bar, min / median / max, the "quantiles" note; no "no value" row (none missing)
    assert out["modes"]["score"]["legendCount"] == 3
    assert out["modes"]["title"]["colorBy"] == "title"
    assert not {"img", "svg", "script", "iframe"} & set(out["tags"])


def test_html_script_hash_search(tmp_path):
    frame = levelled(n_per=20)
    page = render_html_map(frame, tmp_path / "m.html", extra_columns=["title"])
    out = run_harness(tmp_path, page, 0, hash="#q=title+number%2012")
    assert out["hashResults"] == ["rec-12"]  # "title number 12" (plus sign as space), not 120+
    bad = run_harness(tmp_path, page, 0, hash="#q=%E0%A4%A")  # malformed escapes: raw text
    assert bad["hashResults"] == []


# ---------------------------------------------------------------------- HTML: hostile strings

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    '"><svg onload=alert(3)>',
    "</script><script>window.__pwned=1</script>",
    "\u2028\u2029&amp;&lt;",
]


def hostile_levelled() -> pl.DataFrame:
    frame = levelled(n_per=20)
    k = len(PAYLOADS)
    return frame.with_columns(
        id=pl.when(pl.int_range(pl.len()) < k)
        .then(pl.Series(PAYLOADS + [""] * (frame.height - k)))
        .otherwise(pl.col("id")),
        text=pl.when(pl.int_range(pl.len()) == 1).then(pl.lit(PAYLOADS[0])).otherwise("text"),
        topic_0_label=pl.when(pl.col("topic_0_id") == 0).then(pl.lit(PAYLOADS[1]))
        .otherwise("topic_0_label"),
        topic_label=pl.when(pl.col("topic_id") == 3).then(pl.lit(PAYLOADS[2]))
        .otherwise("topic_label"),
        partition=pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit(PAYLOADS[3]))
        .otherwise("partition"),
        kind=pl.when(pl.col("kind") == "note").then(pl.lit(PAYLOADS[4])).otherwise("kind"),
    ).rename({"title": PAYLOADS[0] + " title"})


def test_html_hostile_levels_partitions_metadata(tmp_path):
    frame = hostile_levelled()
    title_col = PAYLOADS[0] + " title"
    page_path = render_html_map(frame, tmp_path / "m.html", title=PAYLOADS[3],
                                extra_columns=["kind", title_col])  # fmt: skip
    page = page_path.read_text("utf-8")
    for raw in PAYLOADS:
        assert raw not in page
    for tag in ("<img", "<svg", "alert(2)</", "<b>"):
        assert tag not in page
    assert page.count("<script") == 3 and page.count("</script>") == 3
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page
    assert "document.write" not in page and "eval(" not in page
    data = embedded_data(page)
    assert data["id"][:5] == PAYLOADS
    assert PAYLOADS[3] in data["parts"]
    assert data["meta"][1]["name"] == title_col and data["search_meta"] == [1]
    assert PAYLOADS[1] in [t["label"] for t in data["levels"][0]["topics"]]

    out = run_harness(tmp_path, page_path, 1, query="onerror")
    assert f"id:\n{PAYLOADS[1]}" in out["hover"] and PAYLOADS[0] in out["hover"]
    assert PAYLOADS[1] in [row[2] for row in out["legend"]]
    assert PAYLOADS[2] in [row[2] for row in out["legend"]]
    # "onerror" is in record 0's id and in record 1's text: both listed, as text
    assert out["results"] == [PAYLOADS[0], PAYLOADS[1]]
    assert out["resultRows"][0][:2] == [PAYLOADS[0], "Title number 0"]
    assert out["resultRows"][0][2] == "<script>alert(2)</script> \u203a space exploration"  # its topic path, as text
    assert PAYLOADS[3] in [r[2] for r in out["modes"]["partition"]["legend"]]
    assert title_col in out["options"]
    assert not {"img", "svg", "script", "iframe"} & set(out["tags"])
