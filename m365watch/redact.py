"""Make text from a server safe to show: no secret or token in it, one line, bounded length.

Pure: standard library only. Adapters pass what a server said through these
helpers before it becomes part of an error message or a log line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Belt and braces against echoed credentials (a debugging proxy can reflect headers).
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SENTENCE = re.compile(r"(.+?[.!?])(?:\s|$)")

REDACTED = "***"


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-empty string in ``secrets`` replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


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
