"""Labelled text corpora for topic-quality benchmarks, and their cached embeddings.

Each loader in :data:`CORPORA` returns a polars DataFrame with ``id`` (unique str), ``text`` (str),
``label`` (the fine ground-truth class) and ``coarse`` (a coarser grouping of the labels, or null).

- ``wiki-2000``: the demo's 2,000 Wikipedia vital-article summaries
  (``load_wiki_summaries(n=2000)``); label = the article's category (11). coarse: null.
- ``wiki-10033``: all 10,033 summaries, 'Uncategorized' included (12 labels). coarse: null.
  Wikipedia text is CC BY-SA 4.0.
- ``debian``: Debian bookworm (main) package descriptions, short + long, from the apt lists
  (``Packages`` and ``Translation-en``); label = the archive section, coarse = :data:`DEBIAN_COARSE`.
  Filtered, deduplicated and subsampled (see :func:`load_debian`). Descriptions are package metadata
  of the DFSG-free main archive.
- ``docstrings``: summaries of public API docstrings of packages installed in this virtualenv
  (:data:`DOCSTRING_PACKAGES`); label = package + first-level subpackage, coarse = the package.
  The text is under each package's own licence (BSD/MIT/Apache mostly).

The debian and docstrings corpora are cached as parquet in ``benchmarks/.cache/`` (git-ignored), so
later calls need neither apt nor the imports. :func:`corpus_vectors` adds the bundled model's
embeddings, cached there too.

    .venv/bin/python benchmarks/corpora.py [NAME ...]   # build/cache them and print a summary
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import pkgutil
import re
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import polars as pl

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
SCHEMA = {"id": pl.String, "text": pl.String, "label": pl.String, "coarse": pl.String}
#: bump when a recipe changes so older parquet caches are not reused
DEBIAN_VERSION = 1
DOCSTRINGS_VERSION = 1


def _frame(ids, texts, labels, coarse) -> pl.DataFrame:
    frame = pl.DataFrame({"id": ids, "text": texts, "label": labels, "coarse": coarse}, schema=SCHEMA)
    if frame["id"].n_unique() != frame.height:
        raise ValueError("corpus ids must be unique")
    return frame


def capped_sample(labels: list[str], max_total: int, max_per_label: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of a seeded stratified subsample: each label is first cut to at most
    ``max_per_label`` records (so no big label dominates), then, if that is over ``max_total``, every
    label keeps the same share of the total as after the cut (largest-remainder rounding)."""
    rng = np.random.default_rng(seed)
    names, inverse, counts = np.unique(np.asarray(labels, dtype=object), return_inverse=True, return_counts=True)
    capped = np.minimum(counts, max_per_label)
    if capped.sum() > max_total:
        quota = capped * (max_total / capped.sum())
        take = np.floor(quota).astype(np.int64)
        rest = max_total - int(take.sum())
        take[np.argsort(-(quota - take), kind="stable")[:rest]] += 1
    else:
        take = capped
    picked = []
    for k in range(len(names)):
        members = np.flatnonzero(inverse == k)
        picked.append(rng.choice(members, size=int(take[k]), replace=False) if take[k] < len(members) else members)
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


def dedupe_texts(frame: pl.DataFrame) -> pl.DataFrame:
    """One record per text, the first in the frame's order, texts compared by their letters only
    (case, digits, punctuation and spacing ignored): exact duplicates go, and so do variants such as
    "... (32bit)" / "... (64bit)" or "Tomcat 9" / "Tomcat 10"."""
    key = pl.col("text").str.to_lowercase().str.replace_all(r"[^\p{L}]+", "")
    return frame.with_columns(key.alias("_key")).unique(subset="_key", keep="first", maintain_order=True).drop("_key")


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


# -- wiki -------------------------------------------------------------------------------------------

def load_wiki_2000() -> pl.DataFrame:
    from dagster_embedmap.core.records.datasets import load_wiki_summaries

    d = load_wiki_summaries(n=2000)
    return _frame(d["id"], d["text"], d["category"], [None] * d.height)


def load_wiki_10033() -> pl.DataFrame:
    from dagster_embedmap.core.records.datasets import load_wiki_summaries

    d = load_wiki_summaries(n=None, include_uncategorized=True)
    return _frame(d["id"], d["text"], d["category"], [None] * d.height)


# -- debian -----------------------------------------------------------------------------------------

APT_LISTS = Path("/var/lib/apt/lists")
DEBIAN_MIN_CHARS = 80
DEBIAN_MIN_SECTION = 150
DEBIAN_MAX_TOTAL = 10_000
DEBIAN_MAX_SECTION = 1_500

#: Sections grouped by what the software is for, in six groups. The language sections (python, perl,
#: haskell, rust, ...) hold one language's modules and bindings: "language-modules". Native libraries
#: (libs, libdevel, introspection, oldlibs) go with the developer tools (devel, vcs, interpreters, debug):
#: both are what a programmer builds on, and libs/libdevel descriptions read alike (a library and its
#: -dev package). Desktop environments, X, graphics, sound, video and fonts are "desktop-media";
#: administration, utilities, networking, mail, web servers, databases and the kernel are
#: "system-network"; science, maths, electronics, ham radio and education are "science"; text
#: processing, TeX, documentation, editors, localisation, games and the catch-all sections are
#: "text-docs-misc". A section not listed (none survives the 150-package cut today) maps to "other".
DEBIAN_COARSE: dict[str, str] = {
    **{s: "language-modules" for s in (
        "python", "perl", "ruby", "php", "java", "javascript", "golang", "rust", "haskell", "ocaml",
        "lisp", "gnu-r", "cli-mono", "zope", "gnustep",
    )},
    **{s: "libraries-devtools" for s in (
        "libs", "libdevel", "oldlibs", "introspection", "devel", "vcs", "interpreters", "debug",
    )},
    **{s: "desktop-media" for s in ("x11", "gnome", "kde", "xfce", "graphics", "sound", "video", "fonts")},
    **{s: "system-network" for s in (
        "admin", "utils", "shells", "kernel", "otherosfs", "net", "comm", "mail", "news", "web", "httpd",
        "database", "embedded", "metapackages", "tasks",
    )},
    **{s: "science" for s in ("science", "math", "electronics", "hamradio", "education")},
    **{s: "text-docs-misc" for s in ("text", "tex", "doc", "editors", "localization", "games", "misc")},
}

_DROP_NAME = re.compile(r"-(dbg|dbgsym|doc|docs)$")
#: transitional and dummy packages by their short description ("... (transitional package)", "... --
#: dummy package", "(dummy)"); "dummy" alone is not enough ("bridge double dummy solver", "Dummy backend
#: for libfolks" are real software)
_DROP_SHORT = re.compile(r"\btransitional\b|\bdummy\s+(package|transitional)\b|\(dummy\)", re.IGNORECASE)


def _apt_cat(path: Path) -> str:
    """A list file's text, decompressed by apt itself (lists may be kept lz4/gz compressed)."""
    out = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True)
    return out.stdout.decode("utf-8", errors="replace")


def _stanzas(text: str) -> Iterable[dict[str, str]]:
    """Deb822 stanzas as dicts; a field's continuation lines are kept (joined by newlines)."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key is not None:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _long_description(lines: list[str]) -> str:
    """Continuation lines of a Description field as one line of prose: " ." paragraph breaks dropped,
    whitespace collapsed."""
    kept = [ln.strip() for ln in lines if ln.strip() not in (".", "")]
    return " ".join(" ".join(kept).split())


def _debian_lists(kind: str) -> list[Path]:
    # bookworm, bookworm-updates and bookworm-security from any Debian mirror; other repositories
    # (nodesource, cloud-sdk ...) are left out, which ``apt-cache dumpavail`` would not do
    if kind == "Packages":
        pattern = "*_dists_bookworm*_binary-*_Packages*"
    else:
        pattern = "*_dists_bookworm*_i18n_Translation-en*"
    return sorted(p for p in APT_LISTS.glob(pattern) if not p.name.endswith(".diff_Index"))


def _ensure_translations() -> None:
    if _debian_lists("Translation"):
        return
    if os.geteuid() != 0:
        raise RuntimeError("the Debian corpus needs /var/lib/apt/lists/*Translation-en*: run as root "
                           "`apt-get -o Acquire::Languages=en update`")
    subprocess.run(["apt-get", "-o", "Acquire::Languages=en", "update"], check=True, capture_output=True)
    if not _debian_lists("Translation"):
        raise RuntimeError("apt-get update fetched no Translation-en list")


def _parse_debian() -> pl.DataFrame:
    """All Debian bookworm main packages with id, text, section (prefix removed) and short description."""
    _ensure_translations()
    long_by_md5: dict[str, str] = {}
    for path in _debian_lists("Translation"):
        for st in _stanzas(_apt_cat(path)):
            desc = st.get("Description-en", "")
            md5 = st.get("Description-md5")
            if md5 and desc:
                long_by_md5[md5] = _long_description(desc.split("\n")[1:])
    packages: dict[str, tuple[str, str, str]] = {}

    def suite_order(path: Path) -> tuple[bool, str]:  # bookworm first, then -security and -updates
        return "-" in path.name.split("_dists_")[1].split("_")[0], path.name

    # a package's stanza in a later suite replaces the one in bookworm
    for path in sorted(_debian_lists("Packages"), key=suite_order):
        for st in _stanzas(_apt_cat(path)):
            name, section, desc = st.get("Package"), st.get("Section", ""), st.get("Description", "")
            if not name or not desc:
                continue
            short, *rest = desc.split("\n")
            long = long_by_md5.get(st.get("Description-md5", "")) or _long_description(rest)
            short = short.strip()
            text = short if not long else f"{short.rstrip('.')}. {long}"
            section = section.split("/")[-1]
            packages[name] = (text, section, short)
    names = sorted(packages)
    return pl.DataFrame(
        {"id": names, "text": [packages[n][0] for n in names], "section": [packages[n][1] for n in names],
         "short": [packages[n][2] for n in names]}
    )


def load_debian(refresh: bool = False) -> pl.DataFrame:
    """Debian bookworm package descriptions labelled by section (see the module docstring).

    Kept: text (short description + ". " + long description) of at least 80 characters; not a
    ``-dbg``/``-dbgsym``/``-doc`` package, not a transitional or dummy package; one package per text
    (the first by name; :func:`dedupe_texts`); sections with at least 150 such packages. Then a seeded
    stratified subsample (:func:`capped_sample`) of at most 10,000 records, 1,500 per section.
    """
    path = CACHE_DIR / f"debian.v{DEBIAN_VERSION}.parquet"
    if path.exists() and not refresh:
        return pl.read_parquet(path)
    raw = _parse_debian()
    kept = (
        raw.filter(
            (pl.col("text").str.len_chars() >= DEBIAN_MIN_CHARS)
            & ~pl.col("id").str.contains(_DROP_NAME.pattern)
            & ~pl.col("short").map_elements(lambda t: bool(_DROP_SHORT.search(t)), return_dtype=pl.Boolean)
            & (pl.col("section") != "")
        )
        .sort("id")
    )
    kept = dedupe_texts(kept)
    counts = kept["section"].value_counts()
    big = counts.filter(pl.col("count") >= DEBIAN_MIN_SECTION)["section"]
    kept = kept.filter(pl.col("section").is_in(big.implode())).sort("id")
    idx = capped_sample(kept["section"].to_list(), DEBIAN_MAX_TOTAL, DEBIAN_MAX_SECTION, seed=0)
    sub = kept[idx]
    frame = _frame(sub["id"], sub["text"], sub["section"],
                   [DEBIAN_COARSE.get(s, "other") for s in sub["section"]])
    _write_parquet(frame, path)
    return frame


# -- docstrings -------------------------------------------------------------------------------------

DOCSTRING_PACKAGES = (
    "numpy", "scipy", "sklearn", "polars", "torch", "dagster", "qdrant_client", "matplotlib",
    "sympy", "pandas", "pyarrow", "networkx",
)
DOCSTRING_MIN_CHARS = 60
DOCSTRING_MIN_LABEL = 80
DOCSTRING_MAX_TOTAL = 10_000
DOCSTRING_MAX_LABEL = 800
#: seconds one module's import and scan may take before the worker is killed and the module skipped
MODULE_TIMEOUT_S = 60.0
#: seconds one package may take in all
PACKAGE_TIMEOUT_S = 900.0

_SECTION = re.compile(
    r"^\s*(Parameters|Params|Arguments|Args|Keyword Arg(ument)?s|Kwargs|Returns?|Yields?|Raises|Examples?|"
    r"Notes?|See Also|References|Attributes|Methods|Warnings?|Other Parameters|Type|Shape|Inputs?|Outputs?|"
    r"Usage|Tip|Todo|Deprecated)\s*:?\s*$",
    re.IGNORECASE,
)
#: a Google-style section header with its content on the same line ("Returns: JobDefinition.")
_SECTION_INLINE = re.compile(
    r"^\s*(Parameters|Params|Arguments|Args|Keyword Arg(ument)?s|Kwargs|Returns?|Yields?|Raises|Examples?|"
    r"Notes?|See Also|References|Attributes|Warnings?|Shape|Inputs?|Outputs?|Usage)\s*:",
)
_UNDERLINE = re.compile(r"^\s*[-=~^]{3,}\s*$")
#: a reST directive or field (":param x:", ":meta private:", ":returns:"), or a doctest line
_DIRECTIVE = re.compile(r"^\s*(\.\. |:\w[\w ]*:|>>>|\.\.\.\s)")
_SIGNATURE = re.compile(r"^[\w.]+\(.*\)\s*(->\s*.+)?$", re.DOTALL)
_ROLE = re.compile(r":[\w:.-]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"`{1,2}([^`]+)`{1,2}")
#: sentences many docstrings of one package repeat (sklearn's pointer to its user guide)
_BOILERPLATE = re.compile(r"\bRead more in the User Guide\.?")


def _paragraphs(doc: str) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for line in doc.splitlines():
        if line.strip():
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [p for p in out if p]


def _stops(lines: list[str], i: int) -> bool:
    """Line ``i`` starts a section, doctest, directive or field list: the summary ends before it."""
    line = lines[i]
    if _UNDERLINE.match(line) or _DIRECTIVE.match(line):
        return True
    if _SECTION.match(line) or _SECTION_INLINE.match(line):
        return True
    return i + 1 < len(lines) and bool(_UNDERLINE.match(lines[i + 1]))


def _prose(lines: list[str]) -> bool:
    """A paragraph reads as prose: not indented code, a list, a table or a signature."""
    first = lines[0]
    joined = " ".join(ln.strip() for ln in lines)
    return (
        not first.startswith((" ", "\t"))
        and not re.match(r"^\s*([-*+•|]|\d+[.)]\s|\w+\s*:\s*$|[\w*]+\s*\(.*\)\s*:)", first)
        and not _SIGNATURE.match(joined)
        and sum(ch.isalpha() for ch in joined) >= 0.6 * len(joined)
        and " " in joined
    )


def docstring_summary(doc: str | None) -> str:
    """A docstring's summary: its first paragraph (a leading call-signature line is skipped) and the
    next one if it is prose; it stops at a section ("Parameters", "Args:", "Returns", "----"
    underlines), a doctest (">>>") or a directive. Sphinx roles and literals are unwrapped and
    whitespace collapsed."""
    if not doc or not isinstance(doc, str):
        return ""
    paras = _paragraphs(inspect.cleandoc(doc))
    while paras and _SIGNATURE.match(" ".join(ln.strip() for ln in paras[0])):
        paras = paras[1:]
    kept: list[str] = []
    for n, para in enumerate(paras[:2]):
        if n == 1 and not _prose(para):
            break
        cut = next((i for i in range(len(para)) if _stops(para, i)), len(para))
        kept.extend(para[:cut])
        if cut < len(para):
            break
    text = " ".join(" ".join(kept).split())
    text = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))
    text = _BOILERPLATE.sub(" ", text)
    return " ".join(text.split())


#: module names never walked: tests, and third-party code vendored into a package (not its own API)
_SKIP_MODULES = frozenset({"tests", "test", "conftest", "setup", "externals", "extern", "vendor", "vendored"})


def _public(name: str) -> bool:
    return not name.startswith("_")


def _module_names(package: str) -> list[str]:
    """The package and its public submodules, found with pkgutil on the file system (nothing is
    imported): no component starting with "_", no ``tests``/``test`` packages or ``test_*``/``conftest``
    modules."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None:
        return []
    names = [package]

    def walk(paths: list[str], prefix: str) -> None:
        for info in sorted(pkgutil.iter_modules(paths), key=lambda m: m.name):
            leaf = info.name
            if not _public(leaf) or leaf in _SKIP_MODULES or leaf.startswith("test_"):
                continue
            full = f"{prefix}.{leaf}"
            names.append(full)
            if info.ispkg:
                sub = [os.path.join(p, leaf) for p in paths if os.path.isdir(os.path.join(p, leaf))]
                walk(sub, full)

    if spec.submodule_search_locations:
        walk(list(spec.submodule_search_locations), package)
    return names


#: first-level subpackages that are internal although their names are not private: pandas documents
#: ``pandas.core`` as private (its public names are re-exported by ``pandas`` and ``pandas.api``)
_INTERNAL_SUBPACKAGES = {"pandas": {"core"}}


def _label_of(package: str, defined_in: str | None, found_in: str) -> str:
    """package + first-level subpackage: where the object is defined when that is public, else the
    public module it was found in, else the package."""
    internal = _INTERNAL_SUBPACKAGES.get(package, set())
    for mod in (defined_in, found_in):
        if not mod or not (mod == package or mod.startswith(package + ".")):
            continue
        parts = mod.split(".")
        if len(parts) == 1:
            return package
        if _public(parts[1]) and parts[1] not in internal:
            return ".".join(parts[:2])
    return package


def _docstring_worker(package: str, modules_file: str) -> None:
    """Child process: imports each listed module in turn and prints one JSON line per module started,
    per record and per module done (the parent watches the time between them)."""
    import importlib
    import warnings

    warnings.simplefilter("ignore")
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the imported code prints goes to stderr, not into the protocol
    seen: dict[int, object] = {}  # id -> the object itself, kept alive so an id is never reused

    def emit(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    def record(obj, qualname: str, found_in: str, owner: tuple[str, str] | None = None) -> str | None:
        try:
            doc = obj.__doc__ if not isinstance(obj, property) else (obj.fget.__doc__ if obj.fget else obj.__doc__)
        except Exception:
            return None
        if owner is None:
            defined = getattr(obj, "__module__", None)
            defined = defined if isinstance(defined, str) else None
            label = _label_of(package, defined, found_in)
            base = defined if defined and (defined == package or defined.startswith(package + ".")) else found_in
            ident = f"{base}.{qualname}"
        else:  # a method: named and labelled after its class
            ident, label = owner
        text = docstring_summary(doc)
        if len(text) >= DOCSTRING_MIN_CHARS:
            emit({"id": ident, "text": text, "label": label})
        return ident

    for name in Path(modules_file).read_text().split():
        emit({"start": name})
        try:
            module = importlib.import_module(name)
            listed = getattr(module, "__all__", None)
            if not isinstance(listed, (list, tuple)) or not all(isinstance(n, str) for n in listed):
                listed = [n for n in dir(module) if _public(n)]
            for attr in listed:
                if not _public(attr):
                    continue
                try:
                    obj = getattr(module, attr)
                except Exception:
                    continue
                if inspect.ismodule(obj) or id(obj) in seen:
                    continue
                if not (inspect.isclass(obj) or inspect.isroutine(obj) or type(obj).__name__ == "ufunc"):
                    continue
                defined = getattr(obj, "__module__", None)
                if isinstance(defined, str) and not (defined == package or defined.startswith(package + ".")):
                    continue  # re-exported from another package
                seen[id(obj)] = obj
                qualname = getattr(obj, "__qualname__", None) or attr
                qualname = qualname if isinstance(qualname, str) else attr
                class_id = record(obj, qualname, name)
                if inspect.isclass(obj) and class_id is not None:
                    label = _label_of(package, defined if isinstance(defined, str) else None, name)
                    for meth_name, meth in sorted(vars(obj).items()):
                        if not _public(meth_name) or id(meth) in seen:
                            continue
                        if isinstance(meth, (staticmethod, classmethod)):
                            meth = meth.__func__
                        if not (inspect.isroutine(meth) or isinstance(meth, property)):
                            continue
                        seen[id(meth)] = meth
                        record(meth, "", name, owner=(f"{class_id}.{meth_name}", label))
        except BaseException as exc:  # noqa: BLE001 - any import failure just skips the module
            emit({"error": name, "why": f"{type(exc).__name__}: {exc}"[:200]})
        emit({"done": name})


def _scan_package(package: str, log: Callable[[str], None]) -> tuple[list[dict], list[str]]:
    """Records of one package, from child processes; a module that hangs past MODULE_TIMEOUT_S is
    skipped (the child is killed and a new one goes on with the next module)."""
    todo = _module_names(package)
    records: list[dict] = []
    skipped: list[str] = []
    deadline = time.monotonic() + PACKAGE_TIMEOUT_S
    env = dict(os.environ, MPLBACKEND="Agg", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONWARNINGS="ignore", TQDM_DISABLE="1")
    boot = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('_corpora_worker', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); sys.modules[s.name] = m; s.loader.exec_module(m); "
            "m._docstring_worker(sys.argv[2], sys.argv[3])")
    with tempfile.TemporaryDirectory(prefix="corpora-docstrings-") as tmp:
        while todo and time.monotonic() < deadline:
            mods = Path(tmp) / "modules.txt"
            mods.write_text("\n".join(todo))
            proc = subprocess.Popen([sys.executable, "-c", boot, str(Path(__file__).resolve()), package, str(mods)],
                                    cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    stdin=subprocess.DEVNULL, text=True)
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            current = None
            last = time.monotonic()
            buffer = ""
            finished = False
            while True:
                if time.monotonic() - last > MODULE_TIMEOUT_S or time.monotonic() > deadline:
                    break
                if not sel.select(timeout=1.0):
                    if proc.poll() is not None:
                        rest = proc.stdout.read()
                        buffer += rest
                        finished = True
                    else:
                        continue
                else:
                    chunk = os.read(proc.stdout.fileno(), 1 << 20).decode("utf-8", errors="replace")
                    if not chunk:
                        finished = True
                    buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    if not line:
                        continue
                    msg = json.loads(line)
                    if "start" in msg:
                        current, last = msg["start"], time.monotonic()
                    elif "done" in msg:
                        todo.remove(msg["done"])
                        current, last = None, time.monotonic()
                    elif "error" in msg:
                        skipped.append(f"{msg['error']} ({msg['why']})")
                    else:
                        records.append(msg)
                if finished:
                    break
            sel.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            if current is not None and current in todo:  # hung or crashed in this module: skip it
                reason = "crashed" if finished else "timed out"
                skipped.append(f"{current} ({reason})")
                log(f"  {package}: {current} {reason}, skipped")
                todo.remove(current)
            elif finished and todo and current is None:
                # the child died between modules; retry the rest once by skipping the next one
                skipped.append(f"{todo[0]} (worker died)")
                todo.pop(0)
        if todo:
            skipped.append(f"{len(todo)} modules not reached (package time limit)")
    return records, skipped


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_docstrings(refresh: bool = False, log: Callable[[str], None] = _log) -> pl.DataFrame:
    """API docstring summaries of the installed :data:`DOCSTRING_PACKAGES` (see the module docstring).

    One record per public function, class or method with a summary (:func:`docstring_summary`) of at
    least 60 characters; one record per text (the first by id; :func:`dedupe_texts`); labels with at
    least 80 records; then a seeded stratified subsample (:func:`capped_sample`) of at most 10,000, 800 per label.
    """
    import importlib.util

    path = CACHE_DIR / f"docstrings.v{DOCSTRINGS_VERSION}.parquet"
    if path.exists() and not refresh:
        return pl.read_parquet(path)
    rows: list[dict] = []
    for package in DOCSTRING_PACKAGES:
        if importlib.util.find_spec(package) is None:
            log(f"docstrings: {package} not installed, skipped")
            continue
        start = time.perf_counter()
        records, skipped = _scan_package(package, log)
        for r in records:
            r["coarse"] = package
        rows.extend(records)
        log(f"docstrings: {package}: {len(records)} records in {time.perf_counter() - start:.0f} s, "
            f"{len(skipped)} modules skipped")
    raw = pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "label": pl.String, "coarse": pl.String})
    kept = dedupe_texts(raw.sort("id").unique(subset="id", keep="first", maintain_order=True))
    counts = kept["label"].value_counts()
    big = counts.filter(pl.col("count") >= DOCSTRING_MIN_LABEL)["label"]
    kept = kept.filter(pl.col("label").is_in(big.implode())).sort("id")
    idx = capped_sample(kept["label"].to_list(), DOCSTRING_MAX_TOTAL, DOCSTRING_MAX_LABEL, seed=0)
    sub = kept[idx]
    frame = _frame(sub["id"], sub["text"], sub["label"], sub["coarse"])
    _write_parquet(frame, path)
    return frame


# -- registry and embeddings ------------------------------------------------------------------------

CORPORA: dict[str, Callable[[], pl.DataFrame]] = {
    "wiki-2000": load_wiki_2000,
    "wiki-10033": load_wiki_10033,
    "debian": load_debian,
    "docstrings": load_docstrings,
}


def texts_hash(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for t in texts:
        digest.update(t.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def corpus_vectors(
    name: str, progress: Callable[[int, int, float], None] | None = None
) -> tuple[pl.DataFrame, np.ndarray]:
    """The corpus and its float32, L2-normalised embeddings (one row per record, in order) from the
    bundled all-MiniLM-L6-v2 via the project's :class:`Encoder` with default settings. Cached as
    ``.cache/<name>.vectors.npy``; its sidecar ``.vectors.json`` holds the texts' hash and the
    encoder's fingerprint, and a mismatch in either recomputes the vectors."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from dagster_embedmap.core.embedding import Encoder, EncoderSettings

    frame = CORPORA[name]()
    texts = frame["text"].to_list()
    encoder = Encoder(EncoderSettings())
    key = {"texts_sha256": texts_hash(texts), "n": len(texts), "fingerprint": encoder.fingerprint()}
    npy, meta = CACHE_DIR / f"{name}.vectors.npy", CACHE_DIR / f"{name}.vectors.json"
    if npy.exists() and meta.exists():
        try:
            stored = json.loads(meta.read_text())
        except ValueError:
            stored = {}
        if all(stored.get(k) == v for k, v in key.items()):
            vectors = np.load(npy)
            if vectors.shape[0] == len(texts):
                return frame, vectors
    start = time.perf_counter()
    vectors = encoder.encode(texts, progress=progress)
    seconds = time.perf_counter() - start
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms > 0, norms, 1.0)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, vectors.astype(np.float32))
    os.replace(tmp, npy)
    ident = encoder.identity()
    meta.write_text(json.dumps({**key, "dimension": int(vectors.shape[1]), "embed_seconds": round(seconds, 1),
                                "device": ident.get("device"), "precision": ident.get("precision"),
                                "model_path": ident.get("model_path")}, indent=2))
    encoder.close()
    return frame, vectors


def summary(name: str, frame: pl.DataFrame) -> str:
    counts = frame["label"].value_counts().sort(["count", "label"], descending=[True, False])
    top = counts.row(0)
    coarse = frame["coarse"].drop_nulls().unique().sort().to_list()
    lines = [
        f"== {name}",
        f"records: {frame.height:,}",
        f"labels: {counts.height}  (smallest: {counts.row(-1)[0]} {counts.row(-1)[1]})",
        f"largest label: {top[0]} {top[1]} ({top[1] / frame.height:.1%})",
        f"coarse groups: {len(coarse)}" + (f"  {', '.join(coarse)}" if coarse else "  (none)"),
    ]
    for row in frame.sample(3, seed=0).iter_rows(named=True):
        text = row["text"] if len(row["text"]) <= 240 else row["text"][:237] + "..."
        lines.append(f"  [{row['label']}] {text}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        print(f"unknown corpora: {', '.join(unknown)}; known: {', '.join(CORPORA)}", file=sys.stderr)
        return 2
    for name in names:
        start = time.perf_counter()
        frame, vectors = corpus_vectors(name)
        meta = json.loads((CACHE_DIR / f"{name}.vectors.json").read_text())
        print(summary(name, frame))
        print(f"vectors: {vectors.shape} {vectors.dtype}, embedding took {meta['embed_seconds']} s "
              f"({meta['device']}, {meta['precision']}); this call {time.perf_counter() - start:.1f} s")
        print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
