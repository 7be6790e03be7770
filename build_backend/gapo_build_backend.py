"""PEP 517 build backend: scikit-build-core, after one check that it cannot make itself.

The ops compile against the torch of the environment that builds them, so that torch must be
importable by the build: a build in pip's default isolated environment (which hides it), or
in an environment without torch, would otherwise fail deep inside CMake. This backend stops
such a build at once and says what to do. With GAPO_OPS_LIBRARY set (a prebuilt ops library,
see scripts/build_wheel.sh) only the pybind11 module is compiled, and torch is not needed.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

try:
    from scikit_build_core import build as _scikit_build
    from scikit_build_core.build import *  # noqa: F403  (every hook this backend does not wrap)
except ImportError:  # only without build isolation, where pip installs no build requirements
    print(
        "\nerror: building gapo-kernels without build isolation needs its build tools installed "
        "first:\n    pip install scikit-build-core pybind11 cmake ninja\n",
        file=sys.stderr,
    )
    raise SystemExit(1) from None

MIN_TORCH = (2, 10)  # the LibTorch stable ABI the ops target (TORCH_TARGET_VERSION in CMakeLists.txt)


def _torch_problem() -> str | None:
    if os.environ.get("GAPO_OPS_LIBRARY"):
        return None
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        isolated = any("build-env" in path for path in sys.path)
        return (
            "gapo-kernels is compiled against the torch of the environment that builds it, and this "
            "build cannot import torch"
            + (" (pip's build isolation hides the packages you installed)" if isolated else "")
            + ".\n"
            "  With torch >= 2.10 installed:  pip install --no-build-isolation <gapo-kernels source>\n"
            "  Without torch: install one first (any torch >= 2.10, CPU or CUDA: pip install torch), "
            "then the same command."
        )
    release = tuple(int(part) for part in version.split("+")[0].split(".")[:2] if part.isdigit())
    if release < MIN_TORCH:
        return (
            f"gapo-kernels needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} to build (its ops use that "
            f"version's stable ABI); this environment has torch {version}. Upgrade torch first."
        )
    return None


def _checked(hook):
    def run(*args, **kwargs):
        problem = _torch_problem()
        if problem:
            print(f"\nerror: {problem}\n", file=sys.stderr)
            raise SystemExit(1)
        return hook(*args, **kwargs)

    run.__name__ = hook.__name__
    run.__doc__ = hook.__doc__
    return run


for _name in (
    "get_requires_for_build_wheel",
    "get_requires_for_build_editable",
    "prepare_metadata_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "build_wheel",
    "build_editable",
):
    if hasattr(_scikit_build, _name):
        globals()[_name] = _checked(getattr(_scikit_build, _name))
