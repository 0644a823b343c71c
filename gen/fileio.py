"""Writing output files so that a failure never leaves a half-written one.

Every command writes through these helpers: the data goes to a temporary file in the target's
folder, is flushed to disk, and is renamed over the target only when complete (a rename within
one file system is atomic). On any error the temporary file is removed and the exception
propagates; the target keeps its previous contents, or stays absent.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text"]


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on success."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output writes new files only ('wb' or 'w'), not {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_output(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_output(path, "w") as handle:
        handle.write(text)
    return Path(path)
