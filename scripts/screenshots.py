"""Screenshots of the demo map for the README: the overview, a region zoomed in, and a search.

    .venv/bin/python scripts/screenshots.py                   # builds the 2,000-article demo map in a temporary home
    .venv/bin/python scripts/screenshots.py --home .embedmap  # the map `embedmap demo --home .embedmap` built

Opens ``<home>/wiki/map.html`` in headless Chromium (the browser tests' client, ``tests/support/browser.py``)
at 1280 x 800 and writes ``docs/map-overview.png``, ``docs/map-zoomed.png`` (the biggest broad topic,
zoomed 3x around its title) and ``docs/map-search.png`` (``#q=renaissance painter``, by meaning), then prints what each shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUERY = "renaissance painter"


def settle(browser) -> None:
    browser.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def shoot(html: Path, out: Path) -> list[str]:
    from support.browser import Browser, find_chromium, load

    exe = find_chromium()
    if exe is None:
        raise SystemExit("no Chromium found: run scripts/setup.sh (it installs Debian's chromium) or set "
                         "EMBEDMAP_CHROMIUM to a Chromium/Chrome binary")
    said = []
    with Browser(exe) as browser:
        browser.open_page()
        load(browser, html.as_uri())
        settle(browser)
        browser.screenshot(out / "map-overview.png")
        boxes = browser.evaluate("embedmap.labelBoxes()")
        said.append(f"map-overview.png: {len(boxes)} labels ({sum(b['level'] == 0 for b in boxes)} broad)")
        title = next(b for b in boxes if b["level"] == 0)
        x, y = (title["box"][0] + title["box"][2]) / 2, (title["box"][1] + title["box"][3]) / 2
        for _ in range(20):
            browser.wheel(x, y, -120)
            if browser.evaluate("embedmap.zoom()") >= 3:
                break
        settle(browser)
        browser.screenshot(out / "map-zoomed.png")
        boxes = browser.evaluate("embedmap.labelBoxes()")
        said.append(f"map-zoomed.png: zoom {browser.evaluate('embedmap.zoom()'):.1f}x on "
                    f"{json.dumps(title['label'])}, {len(boxes)} labels")
        load(browser, html.as_uri() + "#q=" + quote(QUERY))
        settle(browser)
        browser.screenshot(out / "map-search.png")
        said.append(f"map-search.png: {json.dumps(QUERY)}, by {browser.evaluate('embedmap.searchMode().mode')}, "
                    f"{browser.evaluate('embedmap.matchCount()')} matches, "
                    f"{browser.evaluate('embedmap.rings()')} ringed")
    return said


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="a home where `embedmap demo` built the map (default: build one)")
    args = parser.parse_args()
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(args.home).resolve() if args.home else Path(tmp) / "home"
        if not args.home:
            embedmap = str(Path(sys.executable).with_name("embedmap"))
            env = {**os.environ, "HF_HUB_OFFLINE": "1"}
            subprocess.run([embedmap, "demo", "--home", str(home)], check=True, env=env, stdout=subprocess.DEVNULL)
        html = home / "wiki" / "map.html"
        if not html.exists():
            raise SystemExit(f"{html} does not exist: run `embedmap demo --home {home}` first")
        for line in shoot(html, out):
            print(line)
    print(f"written to {out} at commit {commit.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
