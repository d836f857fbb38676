"""The HTML map in a real headless Chromium: drawing, search, hostile strings, label levels and
colour-by, driven through the Chrome DevTools Protocol.

The browser is the system Chromium (``scripts/setup.sh`` installs Debian's ``chromium``; set
``EMBEDMAP_CHROMIUM`` to use another binary); nothing is downloaded. The small CDP client,
``support/browser.py``, talks to it over ``--remote-debugging-pipe``, so it needs no port and no
package. Every wait is bounded. Without a browser the tests fail, saying how to get one.

The screenshot of the test map is kept at ``test-artifacts/browser/map.png`` (repo root).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import polars as pl
import pytest
from support.browser import (
    Browser, assert_nothing_ran, find_chromium, hover_record, image_stats, load, rect_centre,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"

# --------------------------------------------------------------------------------------------
# the test map

BROAD = ["natural sciences", "arts and culture"]
FINE = ["astronomy and space", "marine biology", "jazz and blues", "renaissance painting"]
FINE_WORDS = [
    ["planet", "orbit", "telescope", "galaxy"], ["coral", "reef", "whale", "plankton"],
    ["saxophone", "swing", "improvisation", "trumpet"], ["fresco", "florence", "canvas", "patron"],
]  # fmt: skip
NEEDLE_ID = "record-needle-42"
NEEDLE_TEXT = "a quokka juggles marmalade zeppelins over the telescope"
# every payload would set window.__pwned or open a dialog if it ever ran as markup or code
HOSTILE = {
    "img": '<img src=x onerror="window.__pwned=1">',
    "script": "<script>window.__pwned=2;alert(2)</script>",
    "svg": '"><svg onload="window.__pwned=3;alert(3)">',
    "alert": "<img src=x onerror=alert(1)>",
    "close": "</script><script>alert(4)</script>",
}
HOSTILE_IDS = [HOSTILE["img"], HOSTILE["svg"], HOSTILE["close"]]
PARTITIONS = ["2024-01", "2024-02", HOSTILE["script"]]


def corpus(n_per: int = 70, seed: int = 7) -> pl.DataFrame:
    """Four planted blobs (two broad topics of two sub-topics), a needle, hostile records."""
    rng = np.random.default_rng(seed)
    centres = [(-6.0, 4.0), (-6.0, -4.0), (6.0, 4.0), (6.0, -4.0)]
    rows: list[dict[str, Any]] = []
    for tid, (cx, cy) in enumerate(centres):
        for q in range(n_per):
            words = rng.choice(FINE_WORDS[tid], 3)
            rows.append({"x": rng.normal(cx, 0.9), "y": rng.normal(cy, 0.9), "fine": tid,
                         "text": f"note {q}: " + " ".join(words)})  # fmt: skip
    for q in range(12):  # unlabelled scatter
        rows.append({"x": rng.uniform(-8, 8), "y": rng.uniform(-6, 6), "fine": -1,
                     "text": f"stray note {q}"})  # fmt: skip
    n = len(rows)
    ids = [f"rec-{i}" for i in range(n)]
    ids[5] = NEEDLE_ID
    rows[5]["text"] = NEEDLE_TEXT
    # hostile records sit alone near the middle so a hover finds exactly them
    for q, hid in enumerate(HOSTILE_IDS):
        ids[n_per + q] = hid
        rows[n_per + q].update(x=-0.9 + 0.9 * q, y=0.0, text=HOSTILE["alert"] + " " + hid)
    fine = [r["fine"] for r in rows]
    labels = list(FINE)
    labels[3] = HOSTILE["svg"]  # a hostile topic label
    return pl.DataFrame(
        {
            "id": ids,
            "x": [r["x"] for r in rows],
            "y": [r["y"] for r in rows],
            "topic_0_id": [f // 2 if f >= 0 else -1 for f in fine],
            "topic_0_label": [BROAD[f // 2] if f >= 0 else "" for f in fine],
            "topic_1_id": fine,
            "topic_1_label": [labels[f] if f >= 0 else "" for f in fine],
            "topic_id": fine,
            "topic_label": [labels[f] if f >= 0 else "" for f in fine],
            "text": [r["text"] for r in rows],
            "partition": [PARTITIONS[i % 3] for i in range(n)],
            "source": [HOSTILE["img"] if i % 11 == 0 else ["web", "book", "mail"][i % 3]
                       for i in range(n)],  # fmt: skip
            "title": [f"Record {i}" for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = find_chromium()
    if exe is None:
        pytest.fail("no Chromium found: run scripts/setup.sh (it installs Debian's chromium with "
                    "apt-get) or set EMBEDMAP_CHROMIUM to a Chromium/Chrome binary")  # fmt: skip
    with Browser(exe) as b:
        b.open_page()
        yield b


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    from dagster_embedmap.core.render import render_html_map

    path = tmp_path_factory.mktemp("browser") / "map.html"
    render_html_map(corpus(), path, title="Planted " + HOSTILE["alert"],
                    extra_columns=["source", "title"])  # fmt: skip
    return path.as_uri()


# --------------------------------------------------------------------------------------------
# tests


def test_map_draws_and_screenshot(browser, page_url):
    load(browser, page_url)
    assert browser.evaluate("document.title") == "Planted " + HOSTILE["alert"]
    # wait for a draw after the last resize, then photograph
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    png = browser.screenshot(ARTIFACTS / "map.png")
    non_white, colours = image_stats(png)
    assert non_white > 0.01, non_white  # ~300 points of 3-6 px on 1280 x 800
    assert colours > 100, colours
    # topic colours drawn: the four blobs' hues are in the picture
    legend = browser.evaluate("embedmap.legend()")
    assert legend == [BROAD[0], FINE[0], FINE[1], BROAD[1], FINE[2], HOSTILE["svg"], "no topic"]
    assert_nothing_ran(browser)


def test_search_lists_record_and_click_shows_tooltip(browser, page_url):
    load(browser, page_url)
    browser.click(*rect_centre(browser, "#search"))
    browser.type_text("Quokka  MARMALADE")
    results = browser.wait_for("embedmap.results().length && embedmap.results()")
    assert results == [NEEDLE_ID]
    assert browser.evaluate("document.querySelector('#results .rid').textContent") == NEEDLE_ID
    info = browser.evaluate("document.getElementById('search-info').textContent")
    assert info == "1 matching record"
    browser.click(*rect_centre(browser, "#results .res"))
    tip = browser.wait_for("document.getElementById('tip').style.display === 'block' && "
                           "document.getElementById('tip').textContent")  # fmt: skip
    assert NEEDLE_ID in tip and NEEDLE_TEXT in tip
    assert browser.evaluate("embedmap.zoom()") >= 4
    # the record now sits in the middle of the plot area
    pos = browser.evaluate(f"embedmap.screenOf({json.dumps(NEEDLE_ID)})")
    assert abs(pos["x"] - (1280 - 280) / 2) < 2 and abs(pos["y"] - 400) < 2

    # Enter picks the first result; a #q= link runs the search on load
    load(browser, page_url + "#q=" + "telescope%20quokka")
    assert browser.evaluate("embedmap.results()") == [NEEDLE_ID]
    assert browser.evaluate("document.getElementById('search').value") == "telescope quokka"
    browser.click(*rect_centre(browser, "#search"))
    browser.press_enter()
    tip = browser.wait_for("document.getElementById('tip').style.display === 'block' && "
                           "document.getElementById('tip').textContent")  # fmt: skip
    assert NEEDLE_ID in tip
    assert_nothing_ran(browser)


@pytest.mark.parametrize("frame", ["planted", "demo-sized"])
def test_the_png_preview_shows_the_html_overview_labels_and_colours(browser, tmp_path, frame):
    from PIL import Image

    from dagster_embedmap.core.render import draw_preview, render_html_map

    points = corpus() if frame == "planted" else many_topics()
    path = tmp_path / "map.html"
    render_html_map(points, path, title="same look")
    load(browser, path.as_uri())
    html_labels = {(one["level"], one["label"]) for one in browser.evaluate("embedmap.labelBoxes()")}
    png, png_labels = draw_preview(points, title="same look")
    assert set(png_labels) == html_labels and len(png_labels) == len(html_labels)
    # every topic colour of the page's legend is drawn in the preview
    legend = browser.evaluate("""[...document.querySelectorAll('#legend-list .sw')]
        .map(e => getComputedStyle(e).backgroundColor)""")
    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(int(v) for v in c[4:-1].split(",")) for c in legend}
    for colour in colours - {(207, 207, 207)}:  # "no topic" grey aside
        near = np.abs(rgb - np.array(colour)).max(axis=1) <= 40
        assert near.sum() >= 20, colour


def test_clicking_a_topic_on_the_map_or_in_the_legend_focuses_it(browser, page_url):
    load(browser, page_url)
    drawn = browser.evaluate("embedmap.labelBoxes()")
    target = next(one for one in drawn if one["label"] == FINE[1])  # marine biology, a fine label
    x, y = (target["box"][0] + target["box"][2]) / 2, (target["box"][1] + target["box"][3]) / 2
    draws = browser.evaluate("embedmap.timings().draws")
    browser.click(x, y)
    browser.wait_for(f"embedmap.timings().draws > {draws} && embedmap.selected().length === 1")
    assert browser.evaluate("embedmap.selected()") == [f"1:{target['g']}"]
    assert browser.evaluate("embedmap.zoom()") > 1.5  # zoomed to the topic's extent
    view = browser.evaluate("[innerWidth, innerHeight]")
    members = [f"rec-{i}" for i in range(73, 140)]  # the marine blob (70-72 are the hostile records, in it too)
    # every point of the topic is in view, its label still drawn, the other labels of level 1 gone
    for rid in members + HOSTILE_IDS:
        pos = browser.evaluate(f"embedmap.screenOf({json.dumps(rid)})")
        assert 0 <= pos["x"] <= view[0] and 0 <= pos["y"] <= view[1], rid
    fine = [one["label"] for one in browser.evaluate("embedmap.labelBoxes()") if one["level"] == 1]
    assert fine == [FINE[1]]
    # a topic clicked in the legend is focused the same way
    load(browser, page_url)
    draws = browser.evaluate("embedmap.timings().draws")
    browser.evaluate("""[...document.querySelectorAll('#legend-list .item')]
        .find(e => e.textContent.includes('jazz and blues')).click()""")
    browser.wait_for(f"embedmap.selected().length === 1 && embedmap.zoom() > 1.5 && embedmap.timings().draws > {draws}")
    assert [one["label"] for one in browser.evaluate("embedmap.labelBoxes()") if one["level"] == 1] == [FINE[2]]
    assert_nothing_ran(browser)


def test_a_lasso_lists_the_records_inside_it_and_copies_their_ids(browser, page_url):
    load(browser, page_url)
    ids = [f"rec-{i}" for i in range(70) if i != 5] + [NEEDLE_ID]  # the astronomy blob
    where = [browser.evaluate(f"embedmap.screenOf({json.dumps(r)})") for r in ids]
    x0, x1 = min(p["x"] for p in where) - 6, max(p["x"] for p in where) + 6
    y0, y1 = min(p["y"] for p in where) - 6, max(p["y"] for p in where) + 6
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]
    browser.mouse("mouseMoved", *ring[0], modifiers=8)
    browser.mouse("mousePressed", *ring[0], button="left", clickCount=1, modifiers=8)
    for a, b in zip(ring, ring[1:]):
        for t in np.linspace(0, 1, 6)[1:]:
            browser.mouse("mouseMoved", a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, button="left",
                          buttons=1, modifiers=8)
    browser.mouse("mouseReleased", *ring[-1], button="left", clickCount=1, modifiers=8)
    inside = set(browser.wait_for("embedmap.lassoed().length && embedmap.lassoed()"))
    # the blob's records are in it; anything else only if it lies inside the box
    assert set(ids) <= inside
    for rid in inside - set(ids):
        pos = browser.evaluate(f"embedmap.screenOf({json.dumps(rid)})")
        assert x0 <= pos["x"] <= x1 and y0 <= pos["y"] <= y1
    info = browser.evaluate("document.getElementById('search-info').textContent")
    assert info.startswith(f"{len(inside)} records in the lasso")
    listed = browser.evaluate("[...document.querySelectorAll('#results .rid')].map(e => e.textContent)")
    assert listed and set(listed) <= inside
    assert browser.evaluate("embedmap.zoom()") == 1  # a lasso does not pan
    browser.evaluate("document.getElementById('copy-ids').click()")
    assert set(browser.evaluate("embedmap.copied()").split("\n")) == inside
    assert_nothing_ran(browser)


def test_the_density_layer_shades_where_points_crowd(browser, page_url, tmp_path):
    from PIL import Image

    from dagster_embedmap.core.render import render_html_map

    def shaded(png: bytes) -> int:  # pixels of the layer's blue-grey, not white, not a topic colour
        with Image.open(io.BytesIO(png)) as im:
            rgb = np.asarray(im.convert("RGB")).astype(int)
        return int(((rgb[..., 2] - rgb[..., 0] > 15) & (rgb[..., 2] - rgb[..., 0] < 70) & (rgb.min(axis=2) < 235)
                    & (rgb.min(axis=2) > 60)).sum())

    load(browser, page_url)
    assert browser.evaluate("embedmap.density()")["on"] is False  # off by default for a small map
    off = browser.screenshot(ARTIFACTS / "map-density-off.png")
    draws = browser.evaluate("embedmap.timings().draws")
    browser.evaluate("(() => { const b = document.getElementById('density'); b.checked = true;"
                     " b.dispatchEvent(new Event('change')); })()")
    browser.wait_for(f"embedmap.timings().draws > {draws}")
    state = browser.evaluate("embedmap.density()")
    assert state["on"] is True and state["max"] > 0
    on = browser.screenshot(ARTIFACTS / "map-density-on.png")
    assert shaded(on) > 3 * shaded(off) + 5000
    # a big map starts with it on
    big = many_topics(n_per=2100)  # 50,400 points
    path = tmp_path / "big.html"
    render_html_map(big, path, title="big")
    load(browser, path.as_uri())
    assert browser.evaluate("embedmap.density()")["on"] is True
    assert browser.evaluate("document.getElementById('density').checked") is True
    assert_nothing_ran(browser)


def test_at_phone_width_the_legend_starts_folded_and_labels_keep_clear_of_the_panels(browser, tmp_path):
    from dagster_embedmap.core.render import render_html_map

    path = tmp_path / "phone.html"
    render_html_map(many_topics(), path, title="many topics")
    metrics = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    browser.send("Emulation.setDeviceMetricsOverride", metrics)
    try:
        load(browser, path.as_uri())
        assert browser.evaluate("document.getElementById('legend').classList.contains('folded')") is True
        drawn = assert_labels_legible(browser)
        assert len(drawn) >= 6 and {one["level"] for one in drawn} == {0, 1}
        browser.screenshot(ARTIFACTS / "map-phone.png")
        draws = browser.evaluate("embedmap.timings().draws")
        browser.evaluate("document.getElementById('legend-toggle').click()")
        browser.wait_for(f"embedmap.timings().draws > {draws}")
        assert browser.evaluate("document.getElementById('legend').classList.contains('folded')") is False
        assert_labels_legible(browser)  # the unfolded legend is a panel the labels keep clear of
        draws = browser.evaluate("embedmap.timings().draws")
        browser.evaluate("document.getElementById('head-toggle').click()")
        browser.wait_for(f"embedmap.timings().draws > {draws}")
        assert browser.evaluate("getComputedStyle(document.getElementById('hint')).display") == "none"
        assert browser.evaluate("getComputedStyle(document.getElementById('search')).display") != "none"
        assert_nothing_ran(browser)
    finally:
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": browser.width, "height": browser.height, "deviceScaleFactor": 1, "mobile": False})


def test_search_rings_its_hits_dims_the_rest_and_lists_their_topics(browser, page_url):
    from PIL import Image

    load(browser, page_url)
    before = browser.screenshot(ARTIFACTS / "map-before-search.png")
    browser.click(*rect_centre(browser, "#search"))
    browser.type_text("quokka")
    browser.wait_for("embedmap.results().length === 1")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert browser.evaluate("embedmap.rings()") == 1
    after = browser.screenshot(ARTIFACTS / "map-search.png")
    pos = browser.evaluate(f"embedmap.screenOf({json.dumps(NEEDLE_ID)})")

    def pixels(png):
        with Image.open(io.BytesIO(png)) as im:
            return np.asarray(im.convert("RGB")).astype(int)

    shot, base = pixels(after), pixels(before)
    x, y = round(pos["x"]), round(pos["y"])
    around = shot[y - 9:y + 10, x - 9:x + 10].reshape(-1, 3)
    ring = (around[:, 0] > 180) & (around[:, 1] < 80) & (around[:, 2] < 80)  # the red ring
    assert ring.sum() >= 12, around
    # the rest of the map is dimmed: far fewer strongly coloured pixels than before the search
    def coloured(img):
        return int(((img.max(axis=2) - img.min(axis=2)) > 60).sum())
    assert coloured(shot) < 0.5 * coloured(base)
    # the result row names the record's topics, broadest first
    path = browser.evaluate("document.querySelector('#results .rpath').textContent")
    assert path == f"{BROAD[0]} \u203a {FINE[0]}"
    assert_nothing_ran(browser)


def test_arrow_keys_walk_the_results_and_enter_opens_the_chosen_one(browser, page_url):
    load(browser, page_url)
    browser.click(*rect_centre(browser, "#search"))
    browser.type_text("telescope")
    many = browser.wait_for("embedmap.results().length > 2 && embedmap.results()")
    browser.press_key("ArrowDown", 40)
    browser.press_key("ArrowDown", 40)
    browser.press_key("ArrowDown", 40)
    browser.press_key("ArrowUp", 38)
    assert browser.evaluate("embedmap.activeResult()") == 1
    assert browser.evaluate("document.querySelector('#results .res.act .rid').textContent") == many[1]
    browser.press_enter()
    tip = browser.wait_for("document.getElementById('tip').style.display === 'block' && "
                           "document.getElementById('tip').textContent")  # fmt: skip
    assert many[1] in tip
    assert_nothing_ran(browser)


def test_hostile_strings_stay_text(browser, page_url):
    load(browser, page_url)
    assert_nothing_ran(browser)
    tip = hover_record(browser, HOSTILE["img"])
    assert f"id:{HOSTILE['img']}" in tip  # the row is "id:" + the literal id
    assert HOSTILE["alert"] + " " + HOSTILE["img"] in tip  # the text, literally
    assert "natural sciences" in tip and "source:" in tip
    # hostile topic label and partition names are listed literally in the legend
    assert HOSTILE["svg"] in browser.evaluate("embedmap.legend()")
    # search the hostile text: the results list holds the hostile ids as text
    browser.click(*rect_centre(browser, "#search"))
    browser.type_text("onerror window.__pwned")
    results = browser.wait_for("embedmap.results().length && embedmap.results()")
    # text "<img ... onerror=alert(1)> <id>": both words only where the id holds window.__pwned
    assert results == [HOSTILE["img"], HOSTILE["svg"]]
    shown = browser.evaluate(
        "[...document.querySelectorAll('#results .rid')].map(e => e.textContent)")
    assert HOSTILE["img"] in shown
    browser.click(*rect_centre(browser, "#results .res"))
    browser.wait_for("document.getElementById('tip').style.display === 'block'")
    assert_nothing_ran(browser)


def assert_labels_legible(browser) -> list[dict]:
    """Every drawn label inside the viewport, under no panel, and no two overlapping; returns them."""
    drawn = browser.evaluate("embedmap.labelBoxes()")
    view = browser.evaluate("[innerWidth, innerHeight]")
    panels = browser.evaluate("embedmap.panels()")

    def hit(a, b):
        return a[0] < b[2] and a[2] > b[0] and a[1] < b[3] and a[3] > b[1]

    for q, one in enumerate(drawn):
        box = one["box"]
        assert 0 <= box[0] < box[2] <= view[0] and 0 <= box[1] < box[3] <= view[1], one
        assert not any(hit(box, panel) for panel in panels), one
        assert not any(hit(box, other["box"]) for other in drawn[q + 1:]), (one, drawn)
    return drawn


def test_overview_labels_both_levels_and_zoom_reflows_them(browser, page_url):
    load(browser, page_url)
    drawn = assert_labels_legible(browser)
    levels = {one["level"] for one in drawn}
    assert levels == {0, 1}, drawn  # broad region titles and fine topics at once
    assert set(browser.evaluate("embedmap.labelsShown()")) >= set(BROAD)
    assert set(one["label"] for one in drawn if one["level"] == 1) <= set(FINE) | {HOSTILE["svg"]}
    assert browser.evaluate("embedmap.level()") == 1
    draws = browser.evaluate("embedmap.timings().draws")
    # zoom in on the first blob (astronomy): the wheel keeps the point under the cursor
    pos = browser.evaluate("embedmap.screenOf('rec-0')")
    for _ in range(10):
        browser.wheel(pos["x"], pos["y"], -200)
        if browser.evaluate("embedmap.zoom()") >= 2.2:
            break
    browser.wait_for(f"embedmap.timings().draws > {draws}")
    fine = [one["label"] for one in assert_labels_legible(browser) if one["level"] == 1]
    assert FINE[0] in fine and set(fine) <= set(FINE) | {HOSTILE["svg"]}
    assert browser.evaluate("embedmap.zoom()") < 4
    assert_nothing_ran(browser)


def many_topics(broad: int = 6, per: int = 4, n_per: int = 60, seed: int = 3) -> pl.DataFrame:
    """A demo-sized tree: ``broad`` regions of ``per`` sub-topics each, blobs of ``n_per`` points."""
    rng = np.random.default_rng(seed)
    rows = []
    for b in range(broad):
        angle = 2 * np.pi * b / broad
        for f in range(per):
            cx = 10 * np.cos(angle) + 2.5 * np.cos(2 * np.pi * f / per)
            cy = 10 * np.sin(angle) + 2.5 * np.sin(2 * np.pi * f / per)
            for _ in range(n_per):
                rows.append((rng.normal(cx, 0.6), rng.normal(cy, 0.6), b, b * per + f))
    x, y, b, f = (list(c) for c in zip(*rows))
    return pl.DataFrame({
        "id": [f"r{i}" for i in range(len(x))], "x": x, "y": y,
        "topic_0_id": b, "topic_0_label": [f"region {v} words" for v in b],
        "topic_1_id": f, "topic_1_label": [f"topic {v} term, word" for v in f],
        "topic_id": f, "topic_label": [f"topic {v} term, word" for v in f],
        "text": [f"text {i}" for i in range(len(x))],
    })


def test_above_its_point_budget_a_frame_draws_a_fixed_share_and_every_point_once_zoomed_in(browser, tmp_path):
    from PIL import Image

    from dagster_embedmap.core.render import render_html_map

    def coloured(png: bytes) -> int:
        with Image.open(io.BytesIO(png)) as im:
            rgb = np.asarray(im.convert("RGB")).astype(int)
        return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 40).sum())

    points = many_topics(n_per=250)  # 6,000 points, all in view at the overview
    thin, full = tmp_path / "thin.html", tmp_path / "full.html"
    render_html_map(points, thin, title="thinned", point_budget=1500)
    render_html_map(points, full, title="every point", point_budget=0)
    load(browser, full.as_uri())
    assert browser.evaluate("embedmap.timings().drawnShare") == 1
    settle = "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
    browser.evaluate(settle)
    every = coloured(browser.screenshot(ARTIFACTS / "map-budget-off.png"))
    load(browser, thin.as_uri())
    share = browser.evaluate("embedmap.timings().drawnShare")
    assert 0.2 < share < 0.3, share  # 1,500 of the 6,000 in view
    browser.evaluate(settle)
    first = browser.screenshot(ARTIFACTS / "map-budget-1500.png")
    assert coloured(first) < 0.75 * every, (coloured(first), every)
    # the same points frame after frame: a redraw gives the same picture
    draws = browser.evaluate("embedmap.timings().draws")
    browser.evaluate("window.dispatchEvent(new Event('resize'))")
    browser.wait_for(f"embedmap.timings().draws > {draws}")
    assert browser.screenshot(ARTIFACTS / "map-budget-1500-again.png") == first
    # a point the overview leaves out is still found, ringed and hovered
    keys = [((i + 1) * 2654435761 % 2**32) >> 16 for i in range(points.height)]
    hidden = next(i for i, key in enumerate(keys) if key >= 0.5 * 65536)
    rid = points["id"][hidden]
    tip = hover_record(browser, rid)
    assert f"id:{rid}" in tip, tip
    browser.click(*rect_centre(browser, "#search"))
    browser.evaluate("document.getElementById('search-mode').value = 'words'")
    browser.type_text(f"text {hidden}")
    browser.wait_for("embedmap.matchCount() >= 1")
    assert rid in browser.evaluate("embedmap.results()")
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert browser.evaluate("embedmap.rings()") >= 1
    browser.evaluate("(() => { const s = document.getElementById('search'); s.value = '';"
                     " s.dispatchEvent(new Event('input')); })()")
    # zoomed in on one sub-topic, fewer than 1,500 points are in view: every one of them is drawn
    pos = browser.evaluate(f"embedmap.screenOf({json.dumps(rid)})")
    for _ in range(30):
        browser.wheel(pos["x"], pos["y"], -120)
        if browser.evaluate("embedmap.timings().drawnShare") == 1:
            break
    assert browser.evaluate("embedmap.timings().drawnShare") == 1
    assert browser.evaluate("embedmap.zoom()") > 1.5
    assert_nothing_ran(browser)


def test_a_demo_sized_map_shows_many_labels_of_both_levels_at_the_overview(browser, tmp_path):
    from dagster_embedmap.core.render import render_html_map

    path = tmp_path / "many.html"
    render_html_map(many_topics(), path, title="many topics")
    load(browser, path.as_uri())
    drawn = assert_labels_legible(browser)
    broad = [one for one in drawn if one["level"] == 0]
    fine = [one for one in drawn if one["level"] == 1]
    assert len(broad) == 6 and len(fine) >= 10, drawn
    assert_nothing_ran(browser)


def test_colorby_partition_changes_legend(browser, page_url):
    load(browser, page_url)
    options = browser.evaluate(
        "[...document.querySelectorAll('#colorby option')].map(o => o.textContent)")
    assert options == ["topic", "broad topic", "partition", "source", "title"]
    browser.evaluate("""(() => { const s = document.getElementById('colorby');
        s.value = [...s.options].find(o => o.textContent === 'partition').value;
        s.dispatchEvent(new Event('change')); })()""")
    browser.wait_for("embedmap.colorBy() === 'partition'")
    assert sorted(browser.evaluate("embedmap.legend()")) == sorted(PARTITIONS)
    swatches = browser.evaluate(
        "[...document.querySelectorAll('#legend-list .sw')].map(e => e.style.background)")
    assert len(set(swatches)) == 3
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    non_white, colours = image_stats(browser.screenshot(ARTIFACTS / "map-partition.png"))
    assert non_white > 0.01 and colours > 50
    assert_nothing_ran(browser)


def test_the_map_colours_by_a_classifier_and_shows_its_class_in_the_hover(browser, tmp_path):
    from support.classified import KINDS, build, render

    html = render(build(tmp_path))  # a labels file -> classifier -> every point tagged in Qdrant -> the map
    load(browser, html.as_uri())
    options = browser.evaluate("[...document.querySelectorAll('#colorby option')].map(o => o.textContent)")
    assert "class_kind" in options and "class_kind_score" in options and "class_kind_version" not in options
    browser.evaluate("""(() => { const s = document.getElementById('colorby');
        s.value = [...s.options].find(o => o.textContent === 'class_kind').value;
        s.dispatchEvent(new Event('change')); })()""")
    browser.wait_for("embedmap.colorBy() === 'class_kind'")
    assert sorted(browser.evaluate("embedmap.legend()")) == KINDS
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    non_white, colours = image_stats(browser.screenshot(ARTIFACTS / "map-classifier.png"))
    assert non_white > 0.005 and colours > 20
    tip = hover_record(browser, "p2-4")  # a login ticket of the partition no label came from
    assert "class_kind:login" in tip.replace(" ", ""), tip
    assert_nothing_ran(browser)


def test_a_search_ranks_only_within_the_classes_picked_in_the_legend(browser, tmp_path):
    from support.classified import KINDS, NAME, build, render

    mapped = build(tmp_path)
    html = render(mapped)
    with mapped["store"](read_only=True) as store:
        _, _, payloads = store.read_vectors()
    login = {pl["record_id"] for pl in payloads if pl.get("class_kind") == "login"}
    assert 20 <= len(login) < len(payloads)
    load(browser, html.as_uri())
    everywhere = _page_search(browser, "ticket", mode="words")
    assert everywhere["count"] == len(payloads) and browser.evaluate("embedmap.searchScope()") == -1
    browser.evaluate("""(() => { const s = document.getElementById('colorby');
        s.value = [...s.options].find(o => o.textContent === 'class_kind').value;
        s.dispatchEvent(new Event('change')); })()""")
    browser.wait_for("embedmap.colorBy() === 'class_kind'")
    item = browser.evaluate("[...document.querySelectorAll('#legend-list .item')].findIndex("
                            "el => el.querySelector('.lab').textContent === 'login')")
    assert item >= 0, browser.evaluate("embedmap.legend()")
    browser.evaluate(f"document.querySelectorAll('#legend-list .item')[{item}].click()")
    # picking the class reruns the search that was typed, over that class's records only
    browser.wait_for("embedmap.searchScope() > 0")
    within = browser.evaluate("({ids: embedmap.results(), count: embedmap.matchCount(), scope: embedmap.searchScope(),"
                              " info: document.getElementById('search-info').textContent})")
    assert within["scope"] == len(login) and within["count"] == len(login), within
    assert within["ids"] and set(within["ids"]) <= login, within
    assert "within the selection" in within["info"], within["info"]
    narrowed = _page_search(browser, "ticket 4", mode="words")  # a new query keeps the scope
    assert narrowed["ids"] and set(narrowed["ids"]) <= login and narrowed["count"] < everywhere["count"]
    browser.evaluate("document.getElementById('clear').click()")  # clearing the legend widens the search again
    browser.wait_for("embedmap.searchScope() === -1")
    assert browser.evaluate("embedmap.matchCount()") > narrowed["count"]
    assert_nothing_ran(browser)


def test_a_mixed_text_and_image_map_shows_thumbnails_and_stays_inert_against_hostile_captions(browser, tmp_path):
    import dagster as dg
    from support.hostile import HOSTILE_STRINGS
    from support.tiny_clip import COLOURS, build_tiny_clip, draw_shape

    from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources, materialize_map

    landing = tmp_path / "landing"
    (landing / "img").mkdir(parents=True)
    rows = []
    for i in range(30):
        draw_shape(landing / "img" / f"{i}.png", list(COLOURS)[i % 3], ("circle", "square")[i % 2])
        rows.append({"id": f"img{i}", "path": f"img/{i}.png", "caption": HOSTILE_STRINGS[i % len(HOSTILE_STRINGS)]})
    rows += [{"id": f"txt{i}", "path": None, "caption": f"{h} an article {i}"} for i, h in enumerate(HOSTILE_STRINGS)]
    pl.DataFrame(rows).write_csv(landing / "images.csv")
    home = tmp_path / "home"
    defs = dg.Definitions.merge(
        build_embedmap_defs("pics", FileSource(str(landing / "images.csv")), text_column="caption", image_column="path",
                            home=home),
        dg.Definitions(resources=embedmap_resources(home, model=str(build_tiny_clip(tmp_path)))))
    with dg.instance_for_test() as instance:
        built = materialize_map(defs, MapKeys.for_map("pics"), instance=instance)
    assert built.success
    meta = built.metadata(MapKeys.for_map("pics").map)
    assert meta["image_records"] == 30 and meta["thumbnails_on_page"] == 30 and meta["thumbnail_bytes"] > 3000
    load(browser, (home / "pics" / "map.html").as_uri())
    assert browser.evaluate("embedmap.thumbnails().records") == 30
    tip = hover_record(browser, "img4")
    src = browser.evaluate("document.querySelector('#tip > img.thumb').getAttribute('src')")
    assert src.startswith("data:image/jpeg;base64,") and "img4" in tip
    assert browser.evaluate("document.querySelectorAll('#tip img').length") == 1  # one picture, the page's own
    hover_record(browser, "txt2")
    assert browser.evaluate("document.querySelector('#tip > img.thumb')") is None  # a text record: no picture
    # zoomed in on an image record, the points there are drawn as their thumbnails
    for _ in range(6):
        pos = browser.evaluate("embedmap.screenOf('img7')")
        browser.wheel(pos["x"], pos["y"], -300)
    browser.wait_for("embedmap.zoom() >= 2 && embedmap.thumbnails().drawn > 0")
    non_white, colours = image_stats(browser.screenshot(ARTIFACTS / "map-images.png"))
    assert non_white > 0.01 and colours > 20
    assert_nothing_ran(browser)


# --------------------------------------------------------------------------------------------
# search by meaning in the page, on the real demo map (built by `embedmap demo`, the bundled model)

# held-out queries (not the ones the table's settings were chosen on): 12 short, 8 sentences
MEANING_QUERIES = [
    "medieval castle", "electric current", "ancient egypt", "jazz musician", "earthquake", "islam",
    "tennis player", "economics market", "bird species", "language family", "opera composer", "nuclear weapon",
    "a famous scientist who studied physics", "diseases caused by bacteria or viruses",
    "the largest cities in asia", "inventions that changed transportation", "a poet who wrote in english",
    "the structure of the human brain", "a mountain range in south america", "the industrial revolution in britain",
]  # fmt: skip


@pytest.fixture(scope="module")
def demo_map(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import subprocess
    import sys

    home = tmp_path_factory.mktemp("demo") / "home"
    done = subprocess.run([sys.executable, "-m", "dagster_embedmap.cli", "demo", "--home", str(home)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {"home": home, "html": home / "wiki" / "map.html"}


def _page_search(browser, query: str, mode: str = "meaning") -> dict:
    """Type ``query`` into the search box in ``mode`` (the page's own path) and read what it found."""
    browser.evaluate(f"""(() => {{ const s = document.getElementById('search'), m = document.getElementById('search-mode');
        m.value = {json.dumps(mode)}; s.value = ''; s.dispatchEvent(new KeyboardEvent('keydown', {{key: 'Escape'}}));
        s.value = {json.dumps(query)}; s.dispatchEvent(new Event('input')); }})()""")
    browser.wait_for(f"embedmap.searchMode().mode !== '' && document.getElementById('search-info').textContent !== ''")
    return browser.evaluate("({ids: embedmap.results(), count: embedmap.matchCount(), by: embedmap.searchMode(),"
                            " info: document.getElementById('search-info').textContent})")


def test_search_by_meaning_in_the_page_agrees_with_embedmap_search(browser, demo_map):
    from dagster_embedmap.core.embedding import Encoder
    from dagster_embedmap.core.store import StoreLocation, open_store
    from dagster_embedmap.core.store.search import search_map

    load(browser, demo_map["html"].as_uri())
    assert browser.evaluate("embedmap.searchMode().semantic") is True
    assert browser.evaluate("document.getElementById('search-mode').hidden") is False
    encoder = Encoder()
    overlaps = []
    with open_store(StoreLocation(path=str(demo_map["home"] / "qdrant")), "wiki", read_only=True) as store:
        for query in MEANING_QUERIES:
            page = _page_search(browser, query)
            assert page["by"]["mode"] == "meaning" and page["count"] == 50, (query, page)
            truth = [hit.id for hit in search_map(store, encoder, query, k=10)]
            overlaps.append(len(set(page["ids"][:10]) & set(truth)) / 10)
    short, long = np.mean(overlaps[:12]), np.mean(overlaps[12:])
    print(f"top-10 overlap with embedmap search: {np.mean(overlaps):.3f} (short {short:.3f}, sentences {long:.3f})")
    assert np.mean(overlaps) >= 0.5, overlaps
    assert min(overlaps) >= 0.1, overlaps  # no query comes back unrelated
    assert_nothing_ran(browser)


def test_search_by_meaning_within_a_topic_picked_in_the_legend_lists_only_its_records(browser, demo_map):
    load(browser, demo_map["html"].as_uri())
    everywhere = _page_search(browser, "a famous scientist who studied physics")
    # the broad topic that holds the fewest of the query's nearest records, picked in the legend
    paths = browser.evaluate("[...document.querySelectorAll('#results .rpath')].map(e => e.textContent)")
    broad = browser.evaluate("[...document.querySelectorAll('#legend-list .item')].filter(el => "
                             "el.style.paddingLeft === '4px').map(el => el.querySelector('.lab').textContent)")
    fewest = min((b for b in broad if b != "no topic"), key=lambda b: sum(p.split(" \u203a ")[0] == b for p in paths))
    item = broad.index(fewest)
    browser.evaluate(f"[...document.querySelectorAll('#legend-list .item')].filter(el => "
                     f"el.style.paddingLeft === '4px')[{item}].click()")
    browser.wait_for("embedmap.searchScope() > 0")
    within = browser.evaluate("({ids: embedmap.results(), count: embedmap.matchCount(), scope: embedmap.searchScope(),"
                              " by: embedmap.searchMode().mode})")
    paths = browser.evaluate("[...document.querySelectorAll('#results .rpath')].map(e => e.textContent)")
    assert within["by"] == "meaning" and within["count"] == min(50, within["scope"]), within
    assert 0 < within["scope"] < 2000 and all(p.split(" \u203a ")[0] == fewest for p in paths), (fewest, paths)
    assert set(within["ids"]) != set(everywhere["ids"])
    assert_nothing_ran(browser)


def test_a_query_sharing_no_word_with_the_map_still_finds_its_topic(browser, demo_map):
    from collections import Counter

    from dagster_embedmap.core.embedding import Encoder
    from dagster_embedmap.core.store import StoreLocation, open_store
    from dagster_embedmap.core.store.search import search_map

    load(browser, demo_map["html"].as_uri())
    query = "kittens puppies"  # neither word occurs in any record's id, text or topic label
    by_words = _page_search(browser, query, mode="words")
    assert by_words["count"] == 0 and "no matching records" in by_words["info"], by_words
    page = _page_search(browser, query)
    assert page["by"]["mode"] == "meaning" and page["by"]["known"] >= 2, page
    paths = browser.evaluate("[...document.querySelectorAll('#results .rpath')].slice(0, 10).map(e => e.textContent)")
    with open_store(StoreLocation(path=str(demo_map["home"] / "qdrant")), "wiki", read_only=True) as store:
        hits = search_map(store, Encoder(), query, k=10)
    # the page's nearest records sit in the topic the model's own search finds
    topic, count = Counter(paths).most_common(1)[0]
    assert count >= 6 and topic == Counter(" \u203a ".join(h.topic_path) for h in hits).most_common(1)[0][0], (paths, hits)
    categories = {h.id: h.metadata["category"] for h in hits}
    docs = pl.concat([pl.read_parquet(p) for p in sorted((demo_map["home"] / "wiki" / "documents").glob("*.parquet"))])
    categories.update(zip(docs["id"], docs["category"]))
    top = [categories[i] for i in page["ids"][:10]]
    assert top.count("Biology and health sciences") >= 7, top  # animals, as the query means
    assert_nothing_ran(browser)


TOKENIZER_CASES = [
    "Café déjà vu", "naïve FAÇADE Über", "北京大学 and 東京タワー", "emoji 🚀 rocket 🎉!", "Hello, World! (test) — dash…",
    "supercalifragilisticexpialidocious", "x" * 150, "tab\tnew\nline\r end", "don't stop-me-now", "C++ & C# <b>",
    "3.14159 km² ½ №7", "Ωmega ß straße İstanbul", "Привет, мир", "مرحبا بالعالم", "ｆｕｌｌｗｉｄｔｈ", "zero\u200bwidth\u00adsoft",
    "  leading and trailing  ", "", "ǅ ǈ ﬁ ligature", "Ἀθῆναι", "e\u0301 combining",
]  # fmt: skip


def test_the_page_splits_text_exactly_as_the_models_tokenizer(browser, demo_map):
    from transformers import AutoTokenizer

    from dagster_embedmap.core.embedding import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    load(browser, demo_map["html"].as_uri())
    page = browser.evaluate(f"{json.dumps(TOKENIZER_CASES)}.map(t => EmbedmapSemantic.tokenize(t))")
    for text, tokens in zip(TOKENIZER_CASES, page):
        assert tokens == tokenizer.tokenize(text), text
    assert_nothing_ran(browser)
