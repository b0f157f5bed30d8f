"""Writing files so that a reader, or a run killed half-way, never sees half of one."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], *, durable: bool = True) -> None:
    """Have ``write`` fill a temporary file beside ``path``, then rename it into place.

    ``durable`` also fsyncs the file and its folder, for files that others trust after a crash (indexes,
    vectors); caches that can be rebuilt skip it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        if durable:
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), durable=durable)


class FileRefused(Exception):
    """A local file that will not be read: not a regular file, or over the size limit. The message says which."""


def read_regular_file(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    FIFOs, devices, sockets and folders are refused without reading: ``file:///dev/zero`` ran out of memory and
    a FIFO hung a run. The file is opened non-blocking and checked through its descriptor, so it cannot be
    swapped for a FIFO between the check and the read. Raises FileRefused, or OSError when it cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except ValueError as exc:  # an embedded NUL byte
        raise FileRefused(f"invalid file name ({exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{path} is not a regular file")
        if info.st_size > max_bytes:
            raise FileRefused(f"{path} is {info.st_size} bytes, over the limit of {max_bytes}")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)  # the file may have grown since fstat
        if len(data) > max_bytes:
            raise FileRefused(f"{path} is over the limit of {max_bytes} bytes")
        return data


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or quota) is full, however the library that raised it words it."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    # sqlite3 says "database or disk is full"; FAISS and numpy pass on strerror in a RuntimeError or OSError.
    return "disk is full" in text or "no space left on device" in text or "quota exceeded" in text


def is_writable_dir(path: Path) -> bool:
    """Whether files can be created in ``path``, tried for real: root ignores file modes, a read-only mount
    does not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".ivs-write-probe-", dir=path)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def prefetch(path: Path | str) -> None:
    """Ask the kernel to read ``path`` into the page cache now, in the background (``POSIX_FADV_WILLNEED``).

    A memory-mapped index is read page by page as queries touch it; where it is not in the page cache (a
    fresh boot, or other files read since it was), each of the first queries waits on many small random reads:
    find-similar at a million regions took 78 ms at the median instead of 8, until the pages were in. One
    sequential read ahead of the queries costs seconds once. A no-op where the call does not exist."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except OSError:
        pass
    finally:
        os.close(fd)
