"""Time limits on network exchanges, and reading an answer within one. Standard library only.

A per-read socket timeout never trips on a peer that sends a byte every few
seconds; a :class:`Deadline` bounds the whole exchange. Shared by the Graph
adapter and the MSAL adapter's HTTP client, which each turn :class:`TimeUp` and
:class:`TooLarge` into their own error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

# Bytes asked for per read: read1 returns what has arrived, so a slow peer cannot stall it.
CHUNK_SIZE = 64 * 1024
# The shortest socket wait set before a read, so an almost-spent deadline still reads once.
_MIN_WAIT = 0.01


class TimeUp(Exception):
    """The deadline passed before the answer was complete."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__(f"not done within {deadline.seconds:g} s")
        self.deadline = deadline


class TooLarge(Exception):
    """The answer is larger than the limit; it was not read whole."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {format_size(limit)}")
        self.limit = limit


class ReadFailed(Exception):
    """Reading the answer failed (connection dropped, bad chunking); ``__cause__`` says how."""


class Deadline:
    """A moment by which something must be done, on a monotonic clock.

    ``seconds`` is the limit it was made with, for messages ("within 90 s").
    """

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; 0 once passed."""
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        """Whether the moment has passed."""
        return self._clock() >= self._end

    def within(self, seconds: float) -> Deadline:
        """The sooner of this deadline and one ``seconds`` from now."""
        inner = Deadline(seconds, clock=self._clock)
        return inner if inner._end < self._end else self

    def wait_limit(self, seconds: float) -> float:
        """``seconds``, or less when the deadline comes first (a socket timeout, say)."""
        return seconds if seconds <= self.remaining() else max(self.remaining(), _MIN_WAIT)


class _RawAnswer(Protocol):
    """urllib3's HTTPResponse as requests hands it over with ``stream=True``."""

    def read1(self, amt: int, decode_content: bool) -> bytes: ...


class StreamedAnswer(Protocol):
    """An HTTP answer whose body has not been read yet (a ``requests.Response``)."""

    @property
    def raw(self) -> Any: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def read_body(answer: StreamedAnswer, *, deadline: Deadline, limit: int) -> bytes:
    """The (decoded) body of ``answer``, read within ``deadline`` and at most ``limit`` bytes.

    Raises TimeUp, TooLarge (before reading when Content-Length says so) or
    ReadFailed; on any of them the caller should close the answer.
    """
    declared = answer.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(limit)
    raw: _RawAnswer = answer.raw
    chunks: list[bytes] = []
    size = 0
    while True:
        if deadline.expired:
            raise TimeUp(deadline)
        cut = _limit_socket_wait(answer.raw, deadline)
        try:
            chunk = raw.read1(CHUNK_SIZE, decode_content=True)
        except Exception as exc:  # whatever the transport raises: the caller maps it
            if cut or deadline.expired:
                raise TimeUp(deadline) from exc
            raise ReadFailed(type(exc).__name__) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise TooLarge(limit)
        chunks.append(chunk)


def _limit_socket_wait(raw: Any, deadline: Deadline) -> bool:
    """Let the next socket read wait no longer than the deadline; True when that cut the wait.

    Does nothing when the socket is out of reach (a mocked answer).
    """
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    settimeout = getattr(sock, "settimeout", None)
    gettimeout = getattr(sock, "gettimeout", None)
    if not (callable(settimeout) and callable(gettimeout)):
        return False
    current = gettimeout()
    wait = current if isinstance(current, (int, float)) else deadline.seconds
    limited = deadline.wait_limit(wait)
    settimeout(limited)
    return limited < wait


def format_size(size: int) -> str:
    """``64 MiB``, ``512 KiB``, ``100 bytes``: for messages."""
    for unit, factor in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"
