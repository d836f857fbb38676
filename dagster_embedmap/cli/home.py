"""A map home as the ``embedmap`` command keeps it: the manifest of its maps, the store's place, the
build lock, and the Dagster instance that records its runs."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .output import _CliLog, _log, _warn

MANIFEST = "embedmap.json"
STORE_FOLDER = "qdrant"
"""The embedded Qdrant's folder inside a home; the manifest records it relative to the home."""


def _instance(home: Path):
    import dagster as dg


    folder = home / "dagster"
    folder.mkdir(parents=True, exist_ok=True)
    telemetry_off(folder / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(folder))


def telemetry_off(config: Path) -> None:
    """The CLI's own instance sends no usage statistics and prints no telemetry banner: ``telemetry:
    enabled: false`` is added to its dagster.yaml unless that file has a telemetry setting already."""
    import yaml

    text = config.read_text(encoding="utf-8") if config.exists() else ""
    try:
        settings = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:  # the user's own file, unreadable: Dagster says so; it is left as it is
        return
    if not isinstance(settings, dict) or "telemetry" in settings:
        return
    config.write_text(text + ("\n" if text and not text.endswith("\n") else "")
                      + "# written by embedmap: no usage statistics from the CLI's runs (set it to true to send them)\n"
                      "telemetry:\n  enabled: false\n", encoding="utf-8")


def _read_manifest(home: Path) -> dict:
    """``{"maps": {name: entry}}``. An unreadable manifest is named and set aside; without a readable one
    the maps are found from the home's own folders (each map's folder beside its collection in the store)."""
    from ..core.paths import read_json_state, set_aside

    path = home / MANIFEST
    recover = "the maps are found from the home's folders instead (the next `embedmap build` writes it again)"
    data = read_json_state(path, log=_CliLog(), then=recover,
                           holds="the list of the maps built in this home (input, columns, model and store of each)")
    maps = data.get("maps") if data else None
    if maps is not None and not (isinstance(maps, dict) and all(isinstance(v, dict) for v in maps.values())):
        aside = set_aside(path)
        _warn(f"{path} does not hold a list of maps; it was set aside as {aside.name}, and {recover}")
        maps = None
    if maps is None:  # missing or unreadable: what the home's folders hold
        maps = _discover_maps(home)
    return {"maps": maps}


def _discover_maps(home: Path) -> dict[str, dict]:
    """The maps a home holds, found from its folders: a map folder with documents whose collection is in
    the embedded store (what `embedmap build` writes)."""
    found: dict[str, dict] = {}
    store = home / STORE_FOLDER
    for folder in sorted(p for p in home.iterdir() if p.is_dir()) if home.is_dir() else []:
        if not (folder / "documents").is_dir():
            continue
        engine = "edge" if (store / "edge" / f"{folder.name}.json").exists() else \
            "local" if (store / "collection" / folder.name).exists() else None
        if engine is None:
            continue
        found[folder.name] = {"collection": folder.name, "qdrant_path": STORE_FOLDER, "engine": engine,
                              "model": None, "input": None, "recovered": True}
    if found:
        _warn(f"found map(s) {sorted(found)} in {home}; their input and model are not known until they are built "
              "again (search uses the bundled model)")
    return found


def _write_manifest(home: Path, name: str, entry: dict) -> None:
    from ..core.paths import write_json

    home.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(home)
    manifest["maps"][name] = entry
    write_json(home / MANIFEST, manifest)


def _store_location(home: Path, entry: dict):
    """Where a map's collection is: the manifest's ``qdrant_path``, relative to the home. Manifests of
    earlier versions hold an absolute path; a home's store was always its ``qdrant`` folder, so that is
    used (a copied home reads its own store, never the one it was copied from)."""
    from ..core.store import StoreLocation

    recorded = Path(entry.get("qdrant_path") or STORE_FOLDER)
    folder = home / STORE_FOLDER if recorded.is_absolute() else home / recorded
    if recorded.is_absolute() and recorded != home / STORE_FOLDER:
        _warn(f"{home / MANIFEST} names the store {recorded}, outside this home (a manifest from before paths "
              f"were kept relative); reading this home's own store {folder}")
    # a manifest without an engine was written before the edge engine became the default
    return StoreLocation(path=str(folder), engine=entry.get("engine", "local"))


@contextmanager
def _build_lock(home: Path, name: str) -> Iterator[None]:
    """One build of a map at a time: a second `embedmap build` of the same map waits for the first, so
    the manifest and the store always describe the same build."""
    from ..core.paths import MapLayout, file_lock

    layout = MapLayout(home, name)
    waiting = lambda: _log(f"waiting for another build of map {name!r} in {home} to finish ...")  # noqa: E731
    with file_lock(layout.root / ".build.lock", on_wait=waiting):
        yield


def _pick_map(home: Path, name: str | None) -> tuple[str, dict]:
    maps = _read_manifest(home)["maps"]
    if name:
        if name not in maps:
            raise SystemExit(f"embedmap: no map named {name!r} in {home} (maps: {sorted(maps) or 'none'})")
        return name, maps[name]
    if len(maps) != 1:
        raise SystemExit(
            f"embedmap: {home} holds {len(maps)} maps ({sorted(maps) or 'none'}); pick one with --name"
            if maps
            else f"embedmap: no map built in {home} yet; run `embedmap build` or `embedmap demo` first"
        )
    return next(iter(maps.items()))


def _warn_incomplete(name: str, entry: dict) -> None:
    if entry.get("complete") is False:
        _warn(f"the last build of map {name!r} (input {entry.get('input')!r}) did not finish; the map may still show "
              "some records of the build before it. Run that build again to finish it")
