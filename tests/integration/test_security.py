"""Security: hostile record text, ids, metadata and partition keys stay inert wherever they are shown
(the HTML map in a real browser, Markdown metadata in the Dagster UI, the terminal); the Qdrant API
key never leaves through logs, metadata, errors, run storage or the map; HTTPS really encrypts.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import warnings

import dagster as dg
import numpy as np
import polars as pl
import pytest
from support.hostile import HOSTILE_STRINGS
from support.browser import Browser, assert_nothing_ran, find_chromium, hover_record, load

from dagster_embedmap import FileSource, MapKeys, build_embedmap_defs, embedmap_resources
from dagster_embedmap.core.errors import EmbedMapStoreError
from dagster_embedmap.core.paths import MapLayout
from dagster_embedmap.core.store import StoreLocation, open_store

pytestmark = pytest.mark.e2e
EMBEDMAP = [sys.executable, "-m", "dagster_embedmap.cli"]
# partition keys: a plain one and two hostile ones (a script tag, terminal escapes; Dagster itself
# refuses a bell or a newline in a key, see the last test)
PARTITIONS = ["plain", HOSTILE_STRINGS[0], "\x1b[2J\x1b[31mred partition\x1b[0m"]
RAW_MARKUP = re.compile(r"<\s*/?\s*(script|img|svg|iframe|b)\b", re.IGNORECASE)
TERMINAL_ESCAPES = ("\x1b[2J", "\x1b[31m", "\x1b]0;", "\x07", "\u202e")


def _cli(*args, cwd):
    return subprocess.run([*EMBEDMAP, *args], cwd=cwd, capture_output=True, text=True, env=os.environ.copy(),
                          timeout=900)


@pytest.fixture(scope="module")
def hostile_map(tmp_path_factory, wiki_small):
    """A map built with the CLI from 30 real articles and one record per hostile string, whose id, text
    start and ``source`` metadata are that string; the records are spread over three partitions, two of
    them with hostile keys."""
    root = tmp_path_factory.mktemp("hostile")
    real = wiki_small.select("id", "text").head(30).with_columns(pl.lit("wikipedia").alias("source"))
    hostile = pl.DataFrame({
        "id": HOSTILE_STRINGS,
        "text": [f"{h} {t}" for h, t in zip(HOSTILE_STRINGS, wiki_small["text"].slice(30, len(HOSTILE_STRINGS)))],
        "source": HOSTILE_STRINGS,
    })
    records = pl.concat([hostile, real]).with_columns(  # hostile first: they lead each partition's preview
        pl.Series("part", [PARTITIONS[i % 3] for i in range(30 + len(HOSTILE_STRINGS))]))
    records.write_ndjson(root / "records.jsonl")
    built = _cli("build", "records.jsonl", "--text-column", "text", "--partition-column", "part",
                 "--home", "maps", "--name", "hostile", cwd=root)
    assert built.returncode == 0, built.stderr[-3000:]
    return {"root": root, "home": root / "maps", "records": records, "built": built}


def test_the_terminal_gets_no_escape_sequences(hostile_map):
    root, built = hostile_map["root"], hostile_map["built"]
    found = _cli("search", "--home", "maps", "ANSI red window title", "-k", "46", cwd=root)
    assert found.returncode == 0, found.stderr[-3000:]
    assert "ANSI red" in found.stdout  # the hostile record is found and shown, as plain text
    as_json = _cli("search", "--home", "maps", "ANSI red", "-k", "46", "--json", cwd=root)
    ids = [json.loads(line)["id"] for line in as_json.stdout.splitlines()]
    assert HOSTILE_STRINGS[9] in ids  # --json keeps the exact id, escaped by JSON
    for output in (built.stdout, built.stderr, found.stdout, found.stderr, as_json.stdout):
        for escape in TERMINAL_ESCAPES:
            assert escape not in output, (escape, output[:2000])
    assert "checks     all passed" in built.stdout


def test_markdown_metadata_shows_hostile_text_as_text(hostile_map):
    instance = dg.DagsterInstance.from_config(str(hostile_map["home"] / "dagster"))
    try:
        keys = MapKeys.for_map("hostile")
        shown = []
        for key in (keys.documents, keys.embeddings, keys.collection, keys.projection, keys.topics, keys.map):
            records = instance.fetch_materializations(key, limit=100).records
            assert records
            for record in records:
                for name, value in record.asset_materialization.metadata.items():
                    if isinstance(value, dg.MarkdownMetadataValue):
                        shown.append((key.to_user_string(), name, value.md_str))
                    elif isinstance(value, dg.TextMetadataValue):
                        assert not any(e in value.text for e in TERMINAL_ESCAPES)
    finally:
        instance.dispose()
    previews = [md for _, name, md in shown if name == "preview" and md.startswith("|")]
    assert len(previews) == 3  # one table of records per partition
    for where, name, md in shown:
        assert not RAW_MARKUP.search(md), (where, name, md[:500])
        assert "](javascript" not in md and "](http://evil" not in md, (where, name)
        assert "\n|---|---|" not in md.split("\n", 2)[-1], (where, name)  # no forged table row
        assert not any(e in md for e in TERMINAL_ESCAPES), (where, name)
    # the previews do show the hostile records, escaped: the table cell holds "\[click me\]\(javascript..."
    assert any(r"\[click me\]\(javascript:window.\_\_pwned=6\)" in md for md in previews)
    assert any("&lt;script&gt;window.\\_\\_pwned=1&lt;/script&gt;" in md for md in previews)


def test_the_html_map_keeps_hostile_records_as_text_in_a_real_browser(hostile_map):
    page = (hostile_map["home"] / "hostile" / "map.html").read_text(encoding="utf-8")
    # the data block, the search-by-meaning block (both inert JSON) and the page's own code, nothing else
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="application/json" id="embedmap-data">',
        '<script type="application/json" id="embedmap-semantic">',
        "<script>",
    ]
    for raw in HOSTILE_STRINGS:
        if "<" in raw:
            assert raw not in page
    exe = find_chromium()
    if exe is None:
        pytest.fail("no Chromium found: run scripts/setup.sh or set EMBEDMAP_CHROMIUM")
    with Browser(exe) as browser:
        browser.open_page()
        load(browser, (hostile_map["home"] / "hostile" / "map.html").as_uri())
        assert_nothing_ran(browser)
        for hostile_id in HOSTILE_STRINGS[:5]:  # the markup ones: each tooltip shows the literal id
            tip = hover_record(browser, hostile_id)
            assert f"id:{hostile_id}" in tip and f"source:{hostile_id}" in tip
            assert_nothing_ran(browser)
        legend = browser.evaluate("embedmap.legend()")
        assert legend  # topic names; the partitions (hostile keys) are a colour-by option
        assert_nothing_ran(browser)


# -- the API key -----------------------------------------------------------------------------------------

SECRET = "sk-embedmap-test-5ecr3t-d0-n0t-leak"


def _refusing_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connecting is refused


def test_the_api_key_never_reaches_logs_metadata_errors_run_storage_or_files(tmp_path, monkeypatch):
    """A server given only through the environment, down: the step fails naming it, never the key."""
    url = f"http://127.0.0.1:{_refusing_port()}"
    monkeypatch.setenv("EMBEDMAP_QDRANT_URL", url)
    monkeypatch.setenv("EMBEDMAP_QDRANT_API_KEY", SECRET)
    frame = pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"],
                          "emb": np.eye(3, 4, dtype=np.float32).tolist()})
    frame.write_parquet(tmp_path / "records.parquet")
    home = tmp_path / "home"
    resources = embedmap_resources(home)
    assert isinstance(resources["qdrant"].api_key, dg.EnvVar)  # resolved at run time, never stored
    defs = dg.Definitions.merge(
        build_embedmap_defs("secret", FileSource(str(tmp_path / "records.parquet")), vector_column="emb", home=home),
        dg.Definitions(resources=resources),
    )
    keys = MapKeys.for_map("secret")
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(*keys.ingest),
                                partition_key="all", instance=instance, resources=defs.resources,
                                raise_on_error=False)
        assert not result.success
        error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
        assert url in error and "4 tries" in error  # the failure names the server...
        assert SECRET not in error  # ...and never the key
        logs = [entry.user_message for entry in instance.all_logs(result.run_id)]
        assert logs and not any(SECRET in m for m in logs)
        assert SECRET not in repr(resources["qdrant"])
        assert not MapLayout(home, "secret").pending_partitions()  # down from the start: nothing half written
    # nothing written anywhere holds it: run storage, event logs, the map's files
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


class _Listener:
    """A TCP listener on a free port that never answers: it records the first bytes each client sends
    and hangs up, or (``hold=True``) keeps every connection open in silence, like a hung server."""

    def __init__(self, hold: bool = False):
        self.hold = hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.hold:
                self.held.append(conn)
                continue
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(4096))
                except OSError:
                    pass

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_an_https_url_sends_the_key_only_inside_tls(scheme):
    server = _Listener()
    try:
        location = StoreLocation(url=f"{scheme}://127.0.0.1:{server.port}", api_key=SECRET, retries=0, timeout_s=3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(EmbedMapStoreError) as err:
                with open_store(location, "anything") as store:
                    store.count()
        assert SECRET not in str(err.value) and f"{scheme}://127.0.0.1:{server.port}" in str(err.value)
    finally:
        server.close()
    first = server.received[0]
    if scheme == "https":
        assert first[:1] == b"\x16" and first[1:2] == b"\x03"  # a TLS handshake record: nothing in the clear
        assert SECRET.encode() not in b"".join(server.received)
    else:  # plain HTTP carries the key in the clear, and qdrant-client says so
        assert SECRET.encode() in first and first.startswith((b"GET", b"POST"))
        assert any("insecure" in str(w.message).lower() for w in caught)


def test_a_partition_value_dagster_cannot_use_is_refused_by_name(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "part": ["fine", HOSTILE_STRINGS[9]]}).write_ndjson(
        tmp_path / "records.jsonl")
    failed = _cli("build", "records.jsonl", "--text-column", "text", "--partition-column", "part", "--home", "maps",
                  cwd=tmp_path)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "partition column 'part'" in failed.stderr and "Dagster cannot use" in failed.stderr
    assert repr(HOSTILE_STRINGS[9]) in failed.stderr  # shown escaped
    assert not any(e in failed.stderr for e in TERMINAL_ESCAPES)


def test_a_server_that_times_out_is_retried_then_named(monkeypatch):
    import time

    server = _Listener(hold=True)
    try:
        location = StoreLocation(url=f"http://127.0.0.1:{server.port}", api_key=SECRET, retries=1, timeout_s=1)
        started = time.perf_counter()
        with pytest.raises(EmbedMapStoreError) as err:
            with open_store(location, "anything") as store:
                store.count()
        waited = time.perf_counter() - started
    finally:
        server.close()
    message = str(err.value)
    assert f"http://127.0.0.1:{server.port}" in message and "2 tries" in message and SECRET not in message
    assert "Timeout" in message or "timed out" in message, message
    assert 2.0 <= waited < 30, waited  # two timeouts of 1 s and a backoff of 0.5 s
