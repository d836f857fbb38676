"""A minimal Chrome DevTools Protocol client for a real headless Chromium, shared by the browser tests
(``test_browser.py``, ``test_security.py``) and ``benchmarks/html_map.py``.

The browser is the system Chromium (``scripts/setup.sh`` installs Debian's ``chromium``; set
``EMBEDMAP_CHROMIUM`` to use another binary); nothing is downloaded. The client talks to it over
``--remote-debugging-pipe`` (fds 3 and 4), so it needs no port and no package. Every wait is bounded.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import queue
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------------------------
# a minimal CDP client

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--disable-sync", "--disable-component-update",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--metrics-recording-only",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows", "--password-store=basic",
)  # fmt: skip


def find_chromium() -> str | None:
    """``EMBEDMAP_CHROMIUM``, else the first Chromium/Chrome on ``PATH``."""
    if os.environ.get("EMBEDMAP_CHROMIUM"):
        return os.environ["EMBEDMAP_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    pass


def _high_fd(fd: int) -> int:
    """``fd`` moved to a number >= 10 (close-on-exec) so the spawn's dup2 onto 3/4 is safe."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class Browser:
    """One headless Chromium, CDP commands in on its fd 3 and replies out on its fd 4.

    Every call waits at most ``timeout`` s. JavaScript dialogs are recorded in ``dialogs`` and
    dismissed at once, uncaught page exceptions land in ``page_errors``. :meth:`close` ends the
    browser's process group (the browser is spawned as the leader of a group of its own).
    """

    def __init__(self, executable: str, *, width: int = 1280, height: int = 800,
                 timeout: float = 20.0) -> None:  # fmt: skip
        self.timeout, self.width, self.height = timeout, width, height
        self.session: str | None = None
        self.dialogs: list[str] = []
        self.page_errors: list[str] = []
        self.events: queue.Queue = queue.Queue()
        self._waiting: dict[int, queue.Queue] = {}
        self._lock = threading.Lock()
        self._next_id = 0
        self._profile = tempfile.mkdtemp(prefix="embedmap-chromium-")
        to_browser_r, self._to_browser = (_high_fd(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_high_fd(fd) for fd in os.pipe())
        args = [executable, *CHROMIUM_FLAGS, "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
                "about:blank"]  # fmt: skip
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            self.pid = os.posix_spawn(
                executable, args, dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
                    (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
                    (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
                ],
                setpgroup=0,
            )  # fmt: skip
        finally:
            for fd in (devnull, to_browser_r, from_browser_w):
                os.close(fd)
        threading.Thread(target=self._read, daemon=True).start()

    # -- transport
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    waiter = self._waiting.pop(msg["id"], None)
                    if waiter is not None:
                        waiter.put(msg)
                else:
                    self._watch(msg)
                    self.events.put(msg)
        for waiter in list(self._waiting.values()):
            waiter.put({"error": {"message": "the browser closed the pipe"}})

    def _watch(self, event: dict) -> None:
        """Runs on the reader thread: a pending dialog would block every later evaluate."""
        method = event.get("method")
        if method == "Page.javascriptDialogOpening":
            self.dialogs.append(event["params"].get("message", ""))
            self._post("Page.handleJavaScriptDialog", {"accept": False}, event.get("sessionId"))
        elif method == "Runtime.exceptionThrown":
            details = event["params"]["exceptionDetails"]
            self.page_errors.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )

    def _post(self, method: str, params: dict, session: str | None,
              reply: queue.Queue | None = None) -> int:  # fmt: skip
        with self._lock:
            self._next_id += 1
            ident = self._next_id
            if reply is not None:
                self._waiting[ident] = reply
            msg: dict[str, Any] = {"id": ident, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            os.write(self._to_browser, json.dumps(msg).encode() + b"\0")
        return ident

    def send(self, method: str, params: dict | None = None, *, browser_level: bool = False,
             timeout: float | None = None) -> dict:  # fmt: skip
        reply: queue.Queue = queue.Queue()
        wait = timeout or self.timeout
        ident = self._post(method, params or {}, None if browser_level else self.session, reply)
        try:
            answer = reply.get(timeout=wait)
        except queue.Empty:
            self._waiting.pop(ident, None)
            raise CDPError(f"{method}: no answer in {wait} s") from None
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    def wait_event(self, method: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event.get("method") == method:
                return event
        raise CDPError(f"no {method} event in {timeout or self.timeout} s")

    def drain(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    # -- page
    def open_page(self) -> None:
        """Attach to the first page target (or a new one) and fix its viewport."""
        targets = self.send("Target.getTargets", browser_level=True)["targetInfos"]
        pages = [t["targetId"] for t in targets if t["type"] == "page"]
        target = pages[0] if pages else self.send(
            "Target.createTarget", {"url": "about:blank"}, browser_level=True)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 browser_level=True)["sessionId"]  # fmt: skip
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        self.send("Page.bringToFront")

    def navigate(self, url: str, timeout: float | None = None) -> None:
        self.drain()
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if "errorText" in result:
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        if "loaderId" in result:  # none for a same-document (fragment) navigation
            self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str, timeout: float | None = None) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, timeout=timeout)  # fmt: skip
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page raised: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {expression}")
            time.sleep(0.03)
        return value

    def mouse(self, kind: str, x: float, y: float, **extra: Any) -> None:
        self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, **extra})

    def click(self, x: float, y: float) -> None:
        self.mouse("mouseMoved", x, y)
        self.mouse("mousePressed", x, y, button="left", clickCount=1)
        self.mouse("mouseReleased", x, y, button="left", clickCount=1)

    def wheel(self, x: float, y: float, delta_y: float) -> None:
        self.mouse("mouseWheel", x, y, deltaX=0, deltaY=delta_y)

    def type_text(self, text: str) -> None:
        self.send("Input.insertText", {"text": text})

    def press_enter(self) -> None:
        key = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.send("Input.dispatchKeyEvent", {"type": "keyDown", "text": "\r", **key})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **key})

    def press_key(self, key: str, code: int) -> None:
        """A key without text (``ArrowDown``, 40), pressed and released."""
        event = {"key": key, "code": key, "windowsVirtualKeyCode": code}
        self.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **event})
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", **event})

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def close(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not os.waitpid(self.pid, os.WNOHANG)[0]:
            time.sleep(0.05)
        else:
            if time.monotonic() >= deadline:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                    os.waitpid(self.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def image_stats(png: bytes) -> tuple[float, int]:
    """Share of non-white pixels and number of distinct colours of a PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        rgb = np.asarray(im.convert("RGB")).reshape(-1, 3)
    non_white = float((rgb.min(axis=1) < 245).mean())
    return non_white, len(np.unique(rgb, axis=0))


# --------------------------------------------------------------------------------------------
# the HTML map's page, seen through the driver


def load(b: Browser, url: str) -> None:
    """A fresh page load of ``url`` (also when only its #fragment differs from the current one)."""
    b.navigate("about:blank")
    b.navigate(url)
    b.wait_for("window.embedmap && embedmap.timings().draws > 0")


def assert_nothing_ran(b: Browser) -> None:
    """No dialog, no sentinel, no markup from the data, no page errors. The one image element the page
    makes itself, an image record's thumbnail in the hover (a JPEG of its own data), is not markup."""
    assert b.dialogs == []
    assert b.evaluate("typeof window.__pwned") == "undefined"
    found = b.evaluate("""JSON.stringify({
        markup: [...document.querySelectorAll('img,svg,iframe,object,embed,b')].filter(e => !(e.matches(
            '#tip > img.thumb') && e.getAttribute('src').startsWith('data:image/jpeg;base64,'))).length,
        scripts: document.scripts.length,
        handlers: [...document.querySelectorAll('*')].filter(e =>
            [...e.attributes].some(a => a.name.startsWith('on'))).length})""")
    assert json.loads(found) == {"markup": 0, "scripts": 3, "handlers": 0}
    assert b.page_errors == []


def tip_text(b: Browser) -> str | None:
    return b.evaluate("""(() => { const t = document.getElementById('tip');
        return t.style.display === 'block' ? t.textContent : null; })()""")


def hover_record(b: Browser, record_id: str) -> str:
    pos = b.evaluate(f"embedmap.screenOf({json.dumps(record_id)})")
    b.mouse("mouseMoved", pos["x"] + 40, pos["y"] + 40)
    b.mouse("mouseMoved", pos["x"], pos["y"])
    return b.wait_for("""(() => { const t = document.getElementById('tip');
        return t.style.display === 'block' && t.textContent; })()""")


def rect_centre(b: Browser, selector: str) -> tuple[float, float]:
    r = b.evaluate(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
        .getBoundingClientRect(); return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()""")
    return r["x"], r["y"]
