"""Make text from a server safe to show: no secret or token in it, one line, bounded length.

Pure: standard library only. Adapters pass what a server said through these
helpers before it becomes part of an error message or a log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from urllib.parse import quote, quote_plus

# Belt and braces against echoed credentials (a debugging proxy can reflect headers).
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)")

REDACTED = "***"
# A server that echoes part of a secret must not show that part: any run of this many
# characters of a secret is masked (a shorter secret only where it appears whole).
SECRET_RUN = 8


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret in ``secrets`` masked by ***, wherever any part of it shows.

    Masked: every run of `SECRET_RUN` or more characters of a secret (a shorter secret
    where it appears whole), also as it reads URL-encoded or escaped in JSON. Empty
    strings are ignored.
    """
    spans = sorted(
        span
        for secret in secrets
        if secret
        for form in _written_forms(secret)
        for span in _spans_of(text, form)
    )
    if not spans:
        return text
    out: list[str] = []
    done = 0
    for start, end in spans:
        if start > done or not out:
            out.append(text[done:start])
            out.append(REDACTED)
        done = max(done, end)
    out.append(text[done:])
    return "".join(out)


def _written_forms(secret: str) -> set[str]:
    # How a secret reads in an echoed form body, a query string, or a JSON string.
    return {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}


def _spans_of(text: str, secret: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each place in ``text`` inside a run of ``secret``'s characters.

    A run of `SECRET_RUN` or more characters of the secret is covered by the windows of
    `SECRET_RUN` characters that are in the secret, so those windows are what is looked for.
    """
    size = min(len(secret), SECRET_RUN)
    windows = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    for i in range(len(text) - size + 1):
        if text[i : i + size] in windows:
            yield i, i + size


def redact_tokens(text: str) -> str:
    """``text`` with bearer credentials and anything shaped like a JWT replaced by ***."""
    text = _BEARER.sub(f"Bearer {REDACTED}", text)
    return _JWT.sub(REDACTED, text)


def one_line(text: str, limit: int) -> str:
    """Collapse whitespace so ``text`` stays on one line, then cut it to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def first_line(text: str) -> str:
    """The first line of ``text`` once surrounding whitespace is stripped ("" for blank text)."""
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def first_sentence(text: str) -> str:
    """The first sentence of ``text``'s first line; the whole line when no sentence ends in it."""
    line = first_line(text)
    match = _SENTENCE.match(line)
    return (match.group(1) if match else line).strip()
