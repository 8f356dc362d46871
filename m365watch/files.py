"""Private files: atomic, 0600, in a 0700 folder. Standard library only.

Shared by the adapters that keep secrets-adjacent files on disk (the state,
MSAL's token and HTTP caches, the health record); each turns ``OSError`` into
its own error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
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
    # mkstemp creates the file 0600 with O_EXCL: the content is never readable by others.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
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


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of ``path``; TooLargeError past ``limit`` (``/dev/zero`` never fills memory)."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(errno.EFBIG, f"it is larger than {limit // 1024} KiB")
    return data
