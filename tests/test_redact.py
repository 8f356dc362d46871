"""Tests for m365watch.redact: the pure helpers that make server text safe to show."""

from __future__ import annotations

import pytest

from m365watch.redact import (
    first_line,
    first_sentence,
    one_line,
    redact_secrets,
    redact_tokens,
)

JWT = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJncmFwaCJ9.c2ln"
SECRET = "Abc8Q~dEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        ("value s3cr3t here", ["s3cr3t"], "value *** here"),
        ("s3cr3t and s3cr3t", ["s3cr3t"], "*** and ***"),
        ("a b", ["", "a"], "*** b"),
        ("nothing", [], "nothing"),
        (f"echo {SECRET[5:13]}!", [SECRET], "echo ***!"),
        (f"echo {SECRET[5:12]}!", [SECRET], f"echo {SECRET[5:12]}!"),
        (f"[{SECRET[:20]}\r\n{SECRET[20:]}]", [SECRET], "[***\r\n***]"),
        (f"x {SECRET[2:12]}{SECRET[20:30]} y", [SECRET], "x *** y"),
        ("secret=p%40ss+w%C3%B6rd&x", ["p@ss wörd"], "secret=***&x"),
        ('{"v": "a\\"b\\\\cdefgh"}', ['a"b\\cdefgh'], '{"v": "***"}'),
        ("short s3cr and s3c", ["s3cr"], "short *** and s3c"),
    ],
    ids=[
        "once",
        "every-occurrence",
        "empty-secret-ignored",
        "no-secrets",
        "eight-characters-of-it",
        "seven-characters-kept",
        "split-across-lines",
        "two-parts-side-by-side",
        "url-encoded",
        "json-escaped",
        "short-secret-only-whole",
    ],
)
def test_redact_secrets(text: str, secrets: list[str], expected: str) -> None:
    assert redact_secrets(text, secrets) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer ***"),
        ("bearer short", "bearer short"),
        (f"token={JWT};", "token=***;"),
        ("plain text", "plain text"),
    ],
    ids=["bearer", "short-bearer-kept", "jwt", "plain"],
)
def test_redact_tokens(text: str, expected: str) -> None:
    assert redact_tokens(text) == expected


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("a\n b\t\tc ", 10, "a b c"),
        ("abcdef", 6, "abcdef"),
        ("abcdefg", 6, "abcde…"),
    ],
    ids=["collapsed", "at-limit", "truncated"],
)
def test_one_line(text: str, limit: int, expected: str) -> None:
    assert one_line(text, limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first\nsecond", "first"),
        ("\n\n  first  \nsecond", "first  "),
        ("only", "only"),
        ("  \n\t", ""),
    ],
    ids=["two-lines", "leading-blank-lines", "one-line", "blank"],
)
def test_first_line(text: str, expected: str) -> None:
    assert first_line(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two.", "One."),
        ("Is it? Yes.", "Is it?"),
        ("v1.0 is fine. Next.", "v1.0 is fine."),
        ("no full stop\nNext line.", "no full stop"),
        ("", ""),
    ],
    ids=["full-stop", "question", "dot-inside-word", "no-sentence-end", "empty"],
)
def test_first_sentence(text: str, expected: str) -> None:
    assert first_sentence(text) == expected
