"""Writing output files so that a failure never leaves a half-written one.

Every command writes through these helpers: the data goes to a temporary file in the target's
folder, is flushed to disk, and is renamed over the target only when complete (a rename within
one file system is atomic). On any error, Ctrl-C included, the temporary file is removed and the
exception propagates; the target keeps its previous contents, or stays absent.

:func:`write_files` does the same for a set of files that belong together (the Verilog, file list
and manifest of one generated accelerator): every file is staged first, and only when all of them
are complete are they renamed, in the order given (so the manifest, given last, never describes
files that are not there). Folders it had to create are removed again on failure.

An :class:`OSError` raised here names the target (never the temporary name), so a caller can
report ``cannot write <target>: <reason>``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import stat
import tempfile
from pathlib import Path
from typing import IO, Iterator, Mapping

__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text", "check_directory",
           "make_directory", "read_bytes", "write_figure",
           "write_files", "os_error_reason"]


class _FileInTheWay(NotADirectoryError):
    """A file stands where a folder must be; ``strerror`` says which."""


class _FolderInTheWay(IsADirectoryError):
    """A folder stands where an output file must be."""


def _write(handle: IO, data) -> None:
    """The one place data reaches a temporary file (tests inject a full disk here)."""
    handle.write(data)


def _name_target(error: BaseException, target: Path) -> None:
    """Make an OSError name the target instead of nothing or the temporary file."""
    # an OSError built from a message alone (no errno) prints only that message: naming a file
    # on it would replace the message with "[Errno None] None: path"
    if isinstance(error, OSError) and error.errno is not None and (
            error.filename is None or Path(str(error.filename)).name.endswith(".tmp")):
        error.filename = str(target)


def _stage(target: Path) -> tuple[int, str]:
    if target.is_dir():
        raise _FolderInTheWay(errno.EISDIR, "is a directory, not a file", str(target))
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)


def _finish(handle: IO, tmp: str) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)


@contextlib.contextmanager
def atomic_output(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; rename it to ``path`` on success."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_output writes new files only ('wb' or 'w'), not {mode!r}")
    path = Path(path)
    tmp = None
    try:
        fd, tmp = _stage(path)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            _finish(handle, tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _name_target(e, path)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_output(path, "wb") as handle:
        _write(handle, data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_output(path, "w") as handle:
        _write(handle, text)
    return Path(path)


def write_figure(fig, path: str | Path, **savefig) -> Path:
    """A matplotlib figure as a PNG at ``path``: rendered in memory, the figure closed, then
    written as :func:`atomic_write_bytes` does. No "Software" entry is stored, so the same figure
    gives the same bytes with any matplotlib version; ``savefig`` goes to ``Figure.savefig``."""
    import io

    import matplotlib.pyplot as plt
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", metadata={"Software": None}, **savefig)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def check_directory(path: str | Path) -> list[Path]:
    """Check that folder ``path`` exists or can be created (no file in the way), creating
    nothing; return the missing folders, outermost last. A command calls it before long work so
    that a bad ``-o`` fails at once. A file in the way raises :class:`NotADirectoryError` that
    names it."""
    path = Path(path)
    missing, existing = [], path
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"{existing} is a file"
        raise _FileInTheWay(errno.ENOTDIR, f"{where}, not a directory", str(path))
    return missing


def make_directory(path: str | Path) -> list[Path]:
    """Create folder ``path`` and its missing parents; return the folders created (outermost
    first). A file in the way raises :class:`NotADirectoryError` that names it."""
    missing = check_directory(path)
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)
            created.append(folder)
    except BaseException:
        _remove_folders(created)
        raise
    return created


def _remove_folders(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def write_files(directory: str | Path, files: Mapping[str, bytes | str]) -> list[Path]:
    """Write ``files`` (name -> bytes, or text written as UTF-8) into ``directory``, all or
    nothing: each is staged under a temporary name first, and the complete set is renamed into
    place in the order given. On any error the staged files and the folders created for them are
    removed, and the previous files (if any) stay as they were."""
    directory = Path(directory)
    created = make_directory(directory)
    staged: list[tuple[str, Path]] = []
    target = directory
    try:
        for name, data in files.items():
            target = directory / name
            fd, tmp = _stage(target)
            staged.append((tmp, target))
            with os.fdopen(fd, "wb") as handle:
                _write(handle, data.encode() if isinstance(data, str) else data)
                _finish(handle, tmp)
        for tmp, target in staged:
            os.replace(tmp, target)
    except BaseException as e:
        for tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _remove_folders(created)
        _name_target(e, target)
        raise
    return [target for _, target in staged]


#: Plain reasons for the OS errors a user can cause and fix.
_REASONS = {
    errno.ENOENT: "no such file or directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "is a directory, not a file",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.EEXIST: "already exists",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large (the file-size limit was reached)",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


def os_error_reason(error: OSError) -> str:
    """``<file>: <reason>`` for an OS error, in words (no errno numbers)."""
    if isinstance(error, (_FileInTheWay, _FolderInTheWay)):    # our own, more precise wording
        reason = error.strerror
    else:
        reason = _REASONS.get(error.errno, error.strerror or str(error))
    return f"{error.filename}: {reason}" if error.filename is not None else reason


def read_bytes(path: str | Path) -> bytes:
    """The contents of the input file ``path``, read so that Ctrl-C or SIGTERM always ends the
    wait for a FIFO, a pipe or a terminal (raises what :meth:`Path.read_bytes` raises).

    CPython runs a signal's handler between bytecodes and learns of a signal inside a system
    call from its EINTR. A signal that lands after ``open`` returns and before ``read`` starts
    is therefore seen only when the read returns, which on a FIFO whose writer waits is never:
    the command hung on one Ctrl-C in about 60 under load. Here the handler's wakeup byte
    goes to a pipe that :func:`select.poll` watches beside the file, so no signal is missed.
    Any other file (a regular one never blocks) is read directly, as is any file off the main
    thread (only it can own the wakeup descriptor)."""
    path = Path(path)
    mode = os.stat(path).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):
        return path.read_bytes()
    wake_r, wake_w = os.pipe()
    try:
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        try:
            previous = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        except ValueError:                                   # not the main thread
            return path.read_bytes()
        try:
            return _read_watching(path, wake_r)
        finally:
            signal.set_wakeup_fd(previous)
    finally:
        os.close(wake_r)
        os.close(wake_w)


def _read_watching(path: Path, wake: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)        # a FIFO's open waits for a writer; EINTR runs handlers
    try:
        os.set_blocking(fd, False)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        chunks = []
        while True:
            ready = {fd_: events for fd_, events in poller.poll()}
            if wake in ready:              # a handler is due: it runs before the next bytecode
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
                continue                   # one that does not raise (not ours) changes nothing
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:        # woken without data (a terminal's spurious wakeup)
                continue
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)
