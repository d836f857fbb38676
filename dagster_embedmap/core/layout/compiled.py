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

__all__ = ["load_umap", "cache_dir", "KERNEL_MODULES"]

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


def load_umap() -> ModuleType:
    """``import umap`` with every numba function of :data:`KERNEL_MODULES` cached on disk."""
    global _done
    if not _done:
        folder = cache_dir()
        os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))  # read by numba when it is first imported
        import numba
        from numba.core.caching import NullCache
        from numba.core.errors import NumbaWarning
        from numba.core.registry import CPUDispatcher

        numba.config.CACHE_DIR = str(folder)  # and when numba was imported before
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
        _done = True
    import umap

    return umap
