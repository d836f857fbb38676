"""The placement's kernels compiled ahead of time: a fresh process places points without starting numba.

Loading numba's cached code still starts numba's compiler in every process: importing numba and its
numpy typing (which imports SciPy's BLAS bindings) and loading the cache costs about half a second,
most of the placement step of a small partition. numba's ahead-of-time compiler (``numba.pycc``)
turns the same functions of ``kernels.py`` into a plain extension module, which imports like any other
(milliseconds). :func:`placement_kernels` loads that module from the cache folder of ``compiled.py``,
builds it there once per machine when it is missing (a few seconds; needs the C compiler and Python
headers that building a package from source needs; ``scripts/setup.sh`` does it), and falls back to
numba's just-in-time kernels when it cannot be built. Both are compiled from the same source: the tests
check they place points identically, so a deployment whose nodes differ places the same.

The module is keyed by the kernels' source, the numba version and the Python ABI, and built generic
for the architecture (no host-specific instructions), so one cache folder can serve every node.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

__all__ = ["placement_kernels", "nearest_2d_kernel", "build", "module_path"]

_NAME = "embedmap_placement"
_SIGNATURES = {
    "memberships": "f4[:,:](f8[:,:],b1[:,:],f8)",
    "place_epochs": "void(f4[:,:],f4[:,:],i8[:],i8[:],f8[:],f8,f8,f8,f8,f8,i8,i8[:,:])",
    "top_k": "i4[:,:](f4[:,:],i8)",
    "nearest_2d": "Tuple((f8[:,:],i8[:,:]))(f8[:,:],f8[:,:],i8)",
}
_loaded: ModuleType | None = None
_failed: str | None = None


def _key() -> str:
    from importlib.metadata import version

    source = (Path(__file__).with_name("kernels.py")).read_bytes()
    tag = f"{version('numba')}|{sys.implementation.cache_tag}|{sysconfig.get_platform()}|{sorted(_SIGNATURES.items())}"
    return hashlib.sha256(source + tag.encode()).hexdigest()[:16]


def module_path() -> Path:
    """Where this machine's ahead-of-time placement module lives (it may not exist yet)."""
    from .compiled import cache_dir

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    return cache_dir() / "ahead" / _key() / f"{_NAME}{suffix}"


def build(path: Path | None = None) -> Path:
    """Compile the placement kernels of ``kernels.py`` into an extension module at ``path`` (default:
    :func:`module_path`), atomically; returns the path. Raises when numba's ahead-of-time compiler or a
    C compiler is missing."""
    from .compiled import _point_numba_at_cache

    path = path or module_path()
    _point_numba_at_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc says it is pending deprecation on import
        from numba.pycc import CC

        from . import kernels

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        cc = CC(_NAME)
        cc.output_dir = tmp
        cc.verbose = False
        for name, signature in _SIGNATURES.items():
            cc.export(name, signature)(getattr(kernels, name).py_func)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        built = next(Path(tmp).glob(f"{_NAME}*{importlib.machinery.EXTENSION_SUFFIXES[0]}"))
        os.replace(built, path)  # another process may have built the same module meanwhile: either will do
    return path


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(_NAME, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _module() -> ModuleType | None:
    """The ahead-of-time module, built first when missing; None where it cannot be built (the reason is
    kept in :data:`_failed` and the build is not tried again in this process)."""
    global _loaded, _failed
    if _loaded is None and _failed is None:
        path = module_path()
        try:
            if not path.exists():
                build(path)
            _loaded = _load(path)
        except Exception as exc:  # no compiler, no numba.pycc, an unreadable cache: the JIT kernels do the same
            _failed = f"{type(exc).__name__}: {exc}"
    return _loaded


def placement_kernels():
    """``(memberships, place_epochs, top_k)``: the ahead-of-time kernels; numba's just-in-time ones
    (``compiled.placement_kernels``) where they cannot be built."""
    module = _module()
    if module is not None:
        return module.memberships, module.place_epochs, module.top_k
    from .compiled import placement_kernels as jit, top_k_kernel

    memberships, place_epochs = jit()
    return memberships, place_epochs, top_k_kernel()


def nearest_2d_kernel():
    """``kernels.nearest_2d``, ahead of time; numba's just-in-time one where that cannot be built."""
    module = _module()
    if module is not None:
        return module.nearest_2d
    from .compiled import _point_numba_at_cache

    _point_numba_at_cache()
    from .kernels import nearest_2d

    return nearest_2d
