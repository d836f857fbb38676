"""The layout's numba kernels are cached on disk, so a fresh process loads them instead of compiling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from dagster_embedmap.core.layout.compiled import KERNEL_MODULES, cache_dir, load_umap

FIT = """
import sys, time
import numpy as np
from dagster_embedmap.core.layout.project import ProjectionSettings, fit_projection
v = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
ids = [str(i) for i in range(len(v))]
start = time.perf_counter()
model = fit_projection(ids, v, ProjectionSettings(n_epochs=50))
model.place(["new"], v[:1] + 0.01)
print(time.perf_counter() - start)
"""


def test_the_cache_folder_follows_numba_then_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "n"))
    assert cache_dir() == tmp_path / "n"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "dagster-embedmap" / "numba"


def test_every_kernel_of_the_layout_gets_a_disk_cache():
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    load_umap()
    uncached = [f"{name}.{value.py_func.__name__}" for name in KERNEL_MODULES
                for value in vars(importlib.import_module(name)).values()
                if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache)]
    assert uncached == []


def test_a_second_fresh_process_loads_the_kernels_instead_of_compiling_them(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}

    def fresh() -> float:
        out = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, env=env, timeout=600,
                             cwd=Path(__file__).parent)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "NumbaWarning" not in out.stderr, out.stderr[-2000:]
        return float(out.stdout.strip().splitlines()[-1])

    first, second = fresh(), fresh()
    saved = list((tmp_path / "numba").rglob("*.nbc"))
    assert len(saved) > 50  # umap's and pynndescent's kernels, not only those they cache themselves
    assert second < first / 3, (first, second)  # measured here: 12 s, then under 1.5 s


def test_warming_runs_once_per_library_versions(monkeypatch, tmp_path):
    from dagster_embedmap.core.layout import compiled

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert compiled.warm() is True  # kernels come from the suite's cache here: a fit and a placement
    stamps = list(tmp_path.glob("warm-*.stamp"))
    assert len(stamps) == 1 and "umap-learn" in stamps[0].name and "pynndescent" in stamps[0].name
    assert compiled.warm() is False  # warm for these versions: nothing to do
    assert compiled.warm(force=True) is True


def test_the_layout_epoch_releases_the_gil_and_two_fits_side_by_side_give_the_same_layout(monkeypatch):
    import numpy as np
    from umap import layouts

    from dagster_embedmap.core.layout import compiled, project

    load_umap()
    epoch = layouts._nb_optimize_layout_euclidean_single_epoch
    assert compiled.releases_gil and epoch.targetoptions.get("nogil") is True
    assert epoch.py_func.__code__ is layouts._optimize_layout_euclidean_single_epoch.__code__  # umap's own code

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(8, 24))
    vectors = (centres[rng.integers(0, 8, 4500)] + 0.3 * rng.normal(size=(4500, 24))).astype(np.float32)
    settings = project.ProjectionSettings(n_epochs=20, cluster_dims=5, cluster_neighbors=30)
    together = project.UMAPProjector(settings)
    assert together._side_by_side()  # omp or tbb on this box, 2 cores
    together.fit(vectors)
    monkeypatch.setattr(project.UMAPProjector, "_side_by_side", lambda self: False)
    apart = project.UMAPProjector(settings).fit(vectors)
    assert np.array_equal(together.fit_embedding_, apart.fit_embedding_)
    assert np.array_equal(together.cluster_embedding_, apart.cluster_embedding_)
    assert together.cluster_embedding_.shape == (4500, 5)
