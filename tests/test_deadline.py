"""m365watch.deadline: a time limit on a whole exchange, and reading an answer within it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from m365watch.deadline import (
    Deadline,
    ReadFailed,
    TimeUp,
    TooLarge,
    format_size,
    read_body,
)


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Raw:
    """An unread answer body: each read1 returns the next piece, the clock moving meanwhile."""

    def __init__(self, clock: Clock, pieces: list[bytes | Exception], step: float = 0.0) -> None:
        self.clock = clock
        self.pieces: Iterator[bytes | Exception] = iter(pieces)
        self.step = step
        self.reads = 0

    def read1(self, amt: int, decode_content: bool) -> bytes:
        assert decode_content
        self.reads += 1
        self.clock.now += self.step
        piece = next(self.pieces, b"")
        if isinstance(piece, Exception):
            raise piece
        return piece


class Answer:
    def __init__(self, raw: Raw, headers: dict[str, str] | None = None) -> None:
        self.raw = raw
        self.headers = headers or {}


def test_deadline_counts_down_and_the_sooner_limit_wins() -> None:
    clock = Clock()
    poll = Deadline(90, clock=clock)
    clock.now += 70
    assert poll.remaining() == 20
    assert poll.within(30) is poll  # 20 s left: the poll's limit comes first
    exchange = poll.within(5)
    assert (exchange.seconds, exchange.remaining()) == (5, 5)
    assert poll.wait_limit(30) == 20 and poll.wait_limit(10) == 10
    clock.now += 20
    assert poll.expired and poll.remaining() == 0
    assert poll.wait_limit(30) == 0.01  # one last short wait, never zero (no timeout)


def test_read_body_joins_the_pieces() -> None:
    clock = Clock()
    raw = Raw(clock, [b'{"value"', b": []}"])
    assert read_body(Answer(raw), deadline=Deadline(5, clock=clock), limit=100) == b'{"value": []}'


def test_a_dribbled_body_is_cut_off_at_the_deadline() -> None:
    clock = Clock()
    raw = Raw(clock, [b" "] * 100, step=0.5)  # a byte every half second
    deadline = Deadline(3, clock=clock)
    with pytest.raises(TimeUp) as info:
        read_body(Answer(raw), deadline=deadline, limit=1000)
    assert info.value.deadline is deadline
    assert raw.reads == 6


@pytest.mark.parametrize(
    ("headers", "reads"),
    [({"Content-Length": "101"}, 0), ({}, 2)],
    ids=["declared-refused-unread", "counted-while-reading"],
)
def test_a_body_over_the_limit_is_refused(headers: dict[str, str], reads: int) -> None:
    clock = Clock()
    raw = Raw(clock, [b"x" * 60, b"x" * 60, b"x" * 60])
    with pytest.raises(TooLarge, match="larger than 100 bytes"):
        read_body(Answer(raw, headers), deadline=Deadline(5, clock=clock), limit=100)
    assert raw.reads == reads


def test_a_broken_read_names_what_broke() -> None:
    clock = Clock()
    raw = Raw(clock, [b"{", ConnectionResetError("reset by peer")])
    with pytest.raises(ReadFailed, match="ConnectionResetError") as info:
        read_body(Answer(raw), deadline=Deadline(5, clock=clock), limit=100)
    assert isinstance(info.value.__cause__, ConnectionResetError)


@pytest.mark.parametrize(
    ("size", "text"),
    [(64 * 1024 * 1024, "64 MiB"), (1024 * 1024, "1 MiB"), (4096, "4 KiB"), (1000, "1000 bytes")],
)
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text
