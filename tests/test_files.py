"""Tests for m365watch.files.read_bounded: only regular files and character devices are read."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from m365watch import files


def within(seconds: float, call: Callable[[], bytes], unblock: Path | None = None) -> bytes:
    """``call()`` run in a thread that must finish within ``seconds`` (a hang fails the test).

    ``unblock`` names a named pipe the call may be stuck opening: a writer is opened
    on it afterwards so that a stuck thread ends rather than outliving the test.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung and unblock is not None:
        with contextlib.suppress(OSError):
            os.close(os.open(unblock, os.O_WRONLY | os.O_NONBLOCK))
    assert not hung, f"read_bounded was still blocked after {seconds} s"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    value = outcome["value"]
    assert isinstance(value, bytes)
    return value


def test_a_named_pipe_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)
    with pytest.raises(files.NotAFileError) as caught:
        within(5, lambda: files.read_bounded(fifo, 1024), unblock=fifo)
    assert caught.value.strerror == "it is a named pipe, not a file"


def test_a_named_pipe_with_a_writer_is_refused_too(tmp_path: Path) -> None:
    fifo = tmp_path / "state.json"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # so that a writer can open it
    writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(files.NotAFileError, match="named pipe"):
            within(5, lambda: files.read_bounded(fifo, 1024), unblock=fifo)
    finally:
        os.close(writer)
        os.close(reader)


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        with pytest.raises(files.NotAFileError) as caught:
            within(5, lambda: files.read_bounded(path, 1024))
    assert caught.value.strerror == "it is a socket, not a file"


def test_a_directory_is_refused_as_before(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as caught:
        files.read_bounded(tmp_path, 1024)
    assert str(caught.value) == f"[Errno 21] Is a directory: '{tmp_path}'"


def test_a_regular_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[poll]\n")
    assert within(5, lambda: files.read_bounded(path, 1024)) == b"[poll]\n"


def test_dev_null_reads_as_empty() -> None:
    assert within(5, lambda: files.read_bounded(Path("/dev/null"), 1024)) == b""


def test_dev_zero_is_still_too_large() -> None:
    with pytest.raises(files.TooLargeError) as caught:
        within(5, lambda: files.read_bounded(Path("/dev/zero"), 2048))
    assert caught.value.strerror == "it is larger than 2 KiB"
