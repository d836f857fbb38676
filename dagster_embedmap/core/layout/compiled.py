"""numba's compiled code kept on disk, so a fresh process (every Dagster step, every CLI run) loads the
layout's kernels instead of compiling them again.

umap-learn and pynndescent mark only some of their numba functions ``cache=True``; the rest (the
neighbour-graph weights, the layout optimiser's epoch, the distance kernels, the nearest-neighbour
search) were compiled again in every process: about 12 s of a 13 s fit of 300 points in a fresh
process here, and most of the ~60 s cold start at 20,000 points. :func:`load_umap` turns caching on
for every one of them before their first call; the cache then serves every later process.

Where: ``$NUMBA_CACHE_DIR`` when set (numba's own variable), else ``$XDG_CACHE_HOME/dagster-embedmap/numba``
(``~/.cache/dagster-embedmap/numba``): one folder per user that every step process of a deployment
finds. ``scripts/setup.sh`` warms it.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["load_umap", "top_k_kernel", "placement_kernels", "cache_dir", "warm", "KERNEL_MODULES"]

KERNEL_MODULES = (
    "umap.umap_", "umap.layouts", "umap.utils", "umap.distances", "umap.sparse", "umap.spectral",
    "pynndescent.pynndescent_", "pynndescent.distances", "pynndescent.sparse", "pynndescent.utils",
    "pynndescent.rp_trees", "pynndescent.graph_utils",
)
"""The modules whose numba functions the layout calls (fit, transform, neighbour search)."""

_done = False


def cache_dir() -> Path:
    """The folder numba keeps compiled code in (see the module docstring)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return Path(os.environ["NUMBA_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dagster-embedmap" / "numba"


def _point_numba_at_cache() -> None:
    folder = cache_dir()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))  # read by numba when it is first imported
    import numba

    numba.config.CACHE_DIR = str(folder)  # and when numba was imported before


def top_k_kernel():
    """:func:`~dagster_embedmap.core.layout.kernels.top_k`, compiled into (or loaded from) the cache."""
    _point_numba_at_cache()
    from .kernels import top_k

    return top_k


def placement_kernels():
    """``(memberships, place_epochs)`` of ``kernels.py`` (``placement.py``), compiled into (or loaded
    from) the cache."""
    _point_numba_at_cache()
    from .kernels import memberships, place_epochs

    return memberships, place_epochs


def load_umap() -> ModuleType:
    """``import umap`` with every numba function of :data:`KERNEL_MODULES` cached on disk."""
    global _done
    if not _done:
        _point_numba_at_cache()
        from numba.core.caching import NullCache
        from numba.core.errors import NumbaWarning
        from numba.core.registry import CPUDispatcher

        # a few (pynndescent's nn_descent) hold dynamic globals and cannot be cached: they compile in each
        # process as before, without numba saying so in every step's log
        warnings.filterwarnings("ignore", message="Cannot cache compiled function", category=NumbaWarning)
        for name in KERNEL_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:  # a module a future version dropped: nothing to cache there
                continue
            for value in vars(module).values():
                if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                    value.enable_caching()
        _release_gil_in_layout_epochs()
        _done = True
    import umap

    return umap


def _release_gil_in_layout_epochs() -> None:
    """umap-learn's layout epoch, compiled from its own source with ``nogil=True`` (and cached): the
    same code and flags otherwise, so the same layout, but two fits can then run at once on two cores
    (``project.py`` fits the 2-D map and the cluster space side by side). The copy has its own name,
    so its cache entry is not the one umap-learn's compiled epoch (with the GIL) keeps."""
    import types

    import numba

    try:
        from umap import layouts

        epoch = layouts._optimize_layout_euclidean_single_epoch
        getattr(layouts, "_nb_optimize_layout_euclidean_single_epoch")
    except (ImportError, AttributeError):  # another umap-learn layout: its own epoch, with the GIL
        return
    copy = types.FunctionType(epoch.__code__, epoch.__globals__, epoch.__name__ + "_nogil", epoch.__defaults__,
                              epoch.__closure__)
    copy.__qualname__ = epoch.__qualname__ + "_nogil"
    copy.__module__ = epoch.__module__
    layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(
        copy, fastmath=True, parallel=False, nogil=True, cache=True)
    global releases_gil
    releases_gil = True


releases_gil = False
"""Whether umap-learn's layout epoch releases the GIL (after :func:`load_umap`): then two fits overlap."""


def _stamp() -> Path:
    """A file in the cache folder naming the library versions whose kernels it holds."""
    from importlib.metadata import version

    names = ("numba", "umap-learn", "pynndescent")
    from .ahead import _key

    # the kernels of each path, and the source of the ahead-of-time ones (a changed kernel warms again)
    key = "-".join(f"{n}{version(n)}" for n in names) + f"-exact-topk-nogil-placer-ahead{_key()}"
    return cache_dir() / f"warm-{key}.stamp"


def warm(force: bool = False) -> bool:
    """Compile (or load) the kernels a map's layout uses, once per machine: a fit and a placement on
    300 random vectors, both the way umap-learn does them for a small sample and the way a sample of
    4,096 points or more is done (on exact neighbours, ``neighbours.py``), and the placement's module of
    ``ahead.py``. False when the cache was already warm for these versions."""
    import numpy as np

    stamp = _stamp()
    if stamp.exists() and not force:
        return False
    from .project import ProjectionSettings, fit_projection

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    ids = [str(i) for i in range(len(vectors))]
    from . import project

    small = project._SMALL
    for threshold in (small, 0):  # umap-learn's own small-sample path, then the exact-neighbour one
        project._SMALL = threshold
        try:
            model = fit_projection(ids, vectors, ProjectionSettings(n_epochs=5))
            model.place(["new"], vectors[:1] + 0.5)
        finally:
            project._SMALL = small
    from . import ahead

    try:  # the placement's kernels ahead of time (no numba at all in a fresh process's placement)
        if not ahead.module_path().exists():
            ahead.build()
    except Exception as exc:  # no C compiler here: placements load numba's cached kernels instead
        print(f"setup: the placement's ahead-of-time kernels could not be built ({type(exc).__name__}: {exc}); "
              "placing points will start numba in each process (about 0.5 s)")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text("warm\n")
    return True


def main() -> None:
    """What ``scripts/setup.sh`` runs: :func:`warm`, with one line when it compiled anything."""
    import time

    started = time.perf_counter()
    if warm():
        print(f"setup: compiled the layout's numba kernels into {cache_dir()} ({time.perf_counter() - started:.0f} s)")
