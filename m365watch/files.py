"""Private files: atomic, 0600, in a 0700 folder. Standard library only.

Shared by the adapters that keep secrets-adjacent files on disk (the state,
MSAL's token and HTTP caches, the health record); each turns ``OSError`` into
its own error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its parents with mode 0700 if missing (raises OSError)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename), mode 0600.

    A process killed at any moment leaves either the old file or the new one,
    never a mix; the temporary file is removed on failure. Raises OSError.
    """
    make_private_dir(path.parent)
    replace_atomically(path, data, 0o600)


def write_readable_file(path: Path, data: bytes) -> None:
    """Like :func:`write_private_file`, but mode 0644: for files others read (a feed).

    A missing folder is created with the usual permissions (0755 under umask 022).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, data, 0o644)


def replace_atomically(path: Path, data: bytes, mode: int) -> None:
    """Temp file, fsync, rename into an existing folder: ``mode`` is set before any byte."""
    # mkstemp creates the file 0600 with O_EXCL: the content is never readable by others.
    import tempfile  # only when writing (its import brings random and hashlib)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        # Make the rename itself durable.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class TooLargeError(OSError):
    """A file is larger than m365watch will read (raised by :func:`read_bounded`)."""


class NotAFileError(OSError):
    """A path names a named pipe, a socket or a block device, not a file (see read_bounded)."""


_CHUNK = 1024 * 1024


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of ``path``; TooLargeError past ``limit`` (``/dev/zero`` never fills memory).

    Only a regular file or a character device is read: a named pipe or a
    socket is NotAFileError at once (opening or reading a pipe would block).
    """
    # O_NONBLOCK (POSIX only): opening a named pipe for reading would wait for a writer.
    nonblock = getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # what opening a Unix socket says
            _refuse_special(path, os.stat(path).st_mode)
        raise
    try:
        _refuse_special(path, os.fstat(fd).st_mode)
        if nonblock:
            os.set_blocking(fd, True)  # a regular file or a device: read it as usual
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        # In chunks: read(limit + 1) would allocate the whole limit (256 MiB) at once.
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = handle.read(min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    if len(data) > limit:
        raise TooLargeError(errno.EFBIG, f"it is larger than {limit // 1024} KiB")
    return data


def _refuse_special(path: Path, mode: int) -> None:
    """Only a regular file or a character device (``/dev/null``) is read."""
    if stat.S_ISREG(mode) or stat.S_ISCHR(mode):
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    kind = "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else None
    raise NotAFileError(errno.EINVAL, f"it is {kind or 'not a regular file'}, not a file")
