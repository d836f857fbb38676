"""The shape of the code itself: the HTML map's page lives in real static files shipped as package data,
not in Python strings."""

from __future__ import annotations

import ast
import fnmatch
import re
import tomllib
from pathlib import Path

import dagster_embedmap
from dagster_embedmap.core.render.html import static_file

PACKAGE = Path(dagster_embedmap.__file__).resolve().parent
REPO = PACKAGE.parent
STATIC = PACKAGE / "core" / "render" / "static"
MAX_STRING_LINES = 40


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are module, class or function docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def test_no_python_string_holds_a_page():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                lines = node.value.count("\n") + 1
                if lines > MAX_STRING_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} ({lines} lines)")
    assert long == [], f"strings over {MAX_STRING_LINES} lines belong in static files: {long}"


def test_static_files_ship_as_package_data_and_fill_the_page():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["dagster_embedmap.core.render"]
    files = sorted(p.name for p in STATIC.iterdir() if p.is_file())
    assert files == ["map.css", "map.html", "map.js", "semantic.js"]
    unshipped = [f for f in files if not any(fnmatch.fnmatch(f"static/{f}", g) for g in globs)]
    assert unshipped == [], f"not in pyproject's package-data: {unshipped}"
    page = static_file("map.html")
    # the template's placeholders are exactly what render_html_map fills in
    assert sorted(set(re.findall(r"%%([A-Z]+)%%", page))) == ["COUNT", "CSS", "DATA", "JS", "SEMANTIC", "TITLE"]
    assert "embedmap-data" in static_file("map.js") and "#legend" in static_file("map.css")
    assert "embedmap-semantic" in static_file("semantic.js") and "EmbedmapSemantic" in static_file("map.js")


MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 600


def test_no_function_over_100_lines_and_no_module_over_600():
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(REPO)
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name} ({source.count(chr(10))} lines)")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.lineno} {node.name} ({lines} lines)")
    assert too_long == [], f"split these: {too_long}"


def test_the_core_is_grouped_by_stage_and_never_imports_dagster():
    core = PACKAGE / "core"
    stages = sorted(p.name for p in core.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert stages == ["classify", "embedding", "layout", "records", "render", "store", "topics"]
    loose = sorted(p.name for p in core.glob("*.py"))
    assert loose == ["__init__.py", "errors.py", "paths.py", "settings.py"]
    importing = []
    for path in sorted(core.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == "dagster" or n.startswith("dagster.") or n.startswith("dagster_") for n in names):
                importing.append(str(path.relative_to(REPO)))
    assert importing == []
