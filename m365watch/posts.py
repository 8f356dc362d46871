"""Microsoft's post bodies as paragraphs, bullets and links: pure, standard library only.

A post's content (HTML, or plain text with blank lines) is parsed once into
:class:`Block` values, with every piece of untrusted text defused (no live
mass mentions, no markup) and bare URLs made links. Each channel then writes
the blocks in its own syntax, with its own escaping, through
:func:`join_blocks`; :func:`shorten_blocks` cuts them to a channel's room.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import quote

from m365watch.models import Post

_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table"}
    | {"blockquote", "pre", "hr", "section", "article"}
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_HAS_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_HAS_BLOCK_TAG = re.compile(r"<(?:p|div|br|li|h[1-6]|tr|table|pre)\b", re.IGNORECASE)
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BARE_URL = re.compile(r"https?://[^\s<>\"']+")
_BULLET = re.compile(r"^[-•*·]\s+")
_SPACES = re.compile(r"[^\S\n]+")
# Chat mention syntax: Slack/Mattermost <!channel> <@U123> <#C123>, Teams <at>…</at>.
_MENTION_TAG = re.compile(r"<(?=[!@#]|/?at\b)", re.IGNORECASE)
# Plain-text mass mentions (Discord, Mattermost, Rocket.Chat, Matrix…), not e-mail addresses.
_MASS_MENTION = re.compile(r"(?<![\w.+-])@(?=(?:everyone|here|channel|all|room|team)\b)", re.I)
_ZWSP = "\u200b"


# --------------------------------------------------------------------------
# Untrusted text: entities, whitespace, mentions


def defuse(text: str) -> str:
    """Make untrusted text unable to mention or address anyone, visibly unchanged.

    A zero-width space after ``<`` in ``<!channel>``/``<@U…>``/``<at>`` and
    after ``@`` in ``@everyone``/``@here``/``@channel``/``@all``… breaks the
    syntax every chat service matches, while people read the same characters.
    """
    return _MASS_MENTION.sub("@" + _ZWSP, _MENTION_TAG.sub("<" + _ZWSP, text))


def decode_entities(text: str) -> str:
    """Decode complete HTML entities (``&amp;``, ``&#8217;``); a bare ``&`` stays as it is."""
    return _ENTITY.sub(lambda m: html.unescape(m.group()), text)


def clean_text(text: str | None) -> str:
    """One line of untrusted text (a title, a service name) made safe to show anywhere."""
    return defuse(re.sub(r"\s+", " ", decode_entities(text or "")).strip())


def safe_url(url: str | None) -> str | None:
    """An http(s) or mailto URL percent-encoded so no channel's link syntax can break; else None."""
    url = (url or "").strip()
    if not re.match(r"(?:https?://[^/\s]|mailto:)", url, re.IGNORECASE):
        return None
    return quote(url, safe=":/?#@!$&'*+,;=%~-._")


# --------------------------------------------------------------------------
# Post text as paragraphs, bullets and links


@dataclass(frozen=True)
class Link:
    """A link inside text; ``text == url`` for a bare URL."""

    text: str
    url: str


Inline = str | Link


@dataclass(frozen=True)
class Block:
    """A paragraph (``"\\n"`` inside a string is a line break), a bullet, or one of our headings."""

    parts: tuple[Inline, ...]
    bullet: bool = False
    heading: int = 0  # 2 or 3 for headings m365watch writes; never set from a post
    accent: str = ""  # a heading's colour in email, by notify type


class _PostParser(HTMLParser):
    """Collects paragraphs, bullets and links from Microsoft's post HTML."""

    def __init__(self, keep_newlines: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_newlines = keep_newlines
        self.blocks: list[Block] = []
        self.parts: list[Inline] = []
        self.bullet = False
        self.skip_depth = 0
        self.link_href: str | None = None
        self.link_text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
        elif tag == "a":
            self._close_link()
            self.link_href, self.link_text = dict(attrs).get("href"), []
        elif tag == "br":
            self._add("\n")
        elif tag == "li":
            self._flush()
            self.bullet = True
        elif tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "a":
            self._close_link()
        elif tag in _BLOCK_TAGS and tag != "br":
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        data = data.replace("\r\n", "\n").replace("\r", "\n")
        if not self.keep_newlines:
            data = re.sub(r"\s+", " ", data)
        self._add(data)

    def _add(self, text: str) -> None:
        if self.link_text is not None:
            self.link_text.append(text.replace("\n", " "))
        else:
            self.parts.append(text)

    def _close_link(self) -> None:
        if self.link_text is None:
            return
        text = re.sub(r"\s+", " ", "".join(self.link_text)).strip()
        url = safe_url(self.link_href)
        self.link_href, self.link_text = None, None
        if url is None:
            self.parts.append(text)  # javascript:, #anchors, relative links: keep the words only
        else:
            self.parts.append(Link(text or url, url))

    def _flush(self) -> None:
        self._close_link()
        self.blocks += _blocks_from_parts(self.parts, bullet=self.bullet)
        self.parts, self.bullet = [], False

    def result(self) -> tuple[Block, ...]:
        self._flush()
        return tuple(self.blocks)


_OPENERS = {")": "(", "]": "[", "}": "{"}


def _trim_url(raw: str) -> str:
    """Drop sentence punctuation after a bare URL, keeping balanced brackets (``a_(b)``)."""
    while raw:
        last = raw[-1]
        opener = _OPENERS.get(last)
        if last in ".,;:!?" or (opener and raw.count(opener) < raw.count(last)):
            raw = raw[:-1]
        else:
            return raw
    return raw


def _linkify(text: str) -> list[Inline]:
    out: list[Inline] = []
    position = 0
    for match in _BARE_URL.finditer(text):
        raw = _trim_url(match.group())
        url = safe_url(raw)
        if url is None:
            continue
        out += [text[position : match.start()], Link(url, url)]
        position = match.start() + len(raw)
    out.append(text[position:])
    return [p for p in out if p != ""]


def _finish_line(parts: list[Inline]) -> list[Inline]:
    """Merge, tidy, linkify and defuse one line of inline parts."""
    line: list[Inline] = []
    for part in _merge_strings(parts):
        if isinstance(part, Link):
            text = part.text if part.text == part.url else clean_text(part.text)
            line.append(Link(text, part.url))
        else:
            for piece in _linkify(_SPACES.sub(" ", part)):
                line.append(piece if isinstance(piece, Link) else defuse(piece))
    if line and isinstance(line[0], str):
        line[0] = line[0].lstrip()
    if line and isinstance(line[-1], str):
        line[-1] = line[-1].rstrip()
    return [p for p in line if p != ""]


def _blocks_from_parts(parts: Sequence[Inline], *, bullet: bool = False) -> list[Block]:
    """Split inline parts at line breaks into paragraphs (blank line) and bullets ("- …")."""
    lines: list[list[Inline]] = [[]]
    for part in parts:
        if isinstance(part, Link):
            lines[-1].append(part)
            continue
        first, *rest = part.split("\n")
        lines[-1].append(first)
        lines += [[piece] for piece in rest]
    blocks: list[Block] = []
    current: list[list[Inline]] = []

    def flush(as_bullet: bool = False) -> None:
        if current:
            joined: list[Inline] = []
            for number, line in enumerate(current):
                joined += (["\n"] if number else []) + line
            blocks.append(Block(tuple(_merge_strings(joined)), bullet=as_bullet))
            current.clear()

    for raw_line in lines:
        line = _finish_line(raw_line)
        if not line:
            if not bullet:
                flush()
            continue
        head = line[0]
        if not bullet and isinstance(head, str) and _BULLET.match(head):
            flush()
            stripped = _BULLET.sub("", head)
            item: list[Inline] = [stripped] if stripped else []
            current.append(item + line[1:])
            flush(as_bullet=True)
            continue
        current.append(line)
    flush(as_bullet=bullet)
    return blocks


def _merge_strings(parts: Iterable[Inline]) -> list[Inline]:
    merged: list[Inline] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        elif part != "":
            merged.append(part)
    return merged


def text_blocks(content: str, *, is_html: bool) -> tuple[Block, ...]:
    """Paragraphs, bullets and links of Microsoft's post content, untrusted text defused.

    HTML without paragraph or line-break tags keeps its own line breaks (real
    posts often are text with a few ``<a>`` tags); plain text is never parsed
    as HTML, so a literal ``<at>`` in it stays visible text.
    """
    if is_html and _HAS_TAG.search(content):
        parser = _PostParser(keep_newlines=not _HAS_BLOCK_TAG.search(content))
        parser.feed(content)
        parser.close()
        return parser.result()
    text = decode_entities(content.replace("\r\n", "\n").replace("\r", "\n"))
    return tuple(_blocks_from_parts([text]))


def post_blocks(post: Post) -> tuple[Block, ...]:
    """A post's text as blocks."""
    return text_blocks(post.content, is_html=post.content_type == "html")


def blocks_length(blocks: Iterable[Block]) -> int:
    """How many characters the blocks show (link text counted, not URLs)."""
    return sum(len(p) if isinstance(p, str) else len(p.text) for b in blocks for p in b.parts)


def shorten_blocks(blocks: Sequence[Block], limit: int) -> tuple[tuple[Block, ...], bool]:
    """Keep about ``limit`` characters, cut at a word with "…"; says whether anything was cut."""
    if blocks_length(blocks) <= limit:
        return tuple(blocks), False
    kept: list[Block] = []
    room = limit
    for block in blocks:
        size = blocks_length([block])
        if size <= room:
            kept.append(block)
            room -= size
            continue
        parts: list[Inline] = []
        for part in block.parts:
            text = part if isinstance(part, str) else part.text
            if len(text) <= room:
                parts.append(part)
                room -= len(text)
                continue
            if isinstance(part, str) and room > 0:
                parts.append(_cut_at_word(part, room))
            break
        parts = _merge_strings(parts)
        if parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1].rstrip()
        kept.append(Block(tuple(_merge_strings([*parts, "…"])), bullet=block.bullet))
        break
    return tuple(kept), True


def _cut_at_word(text: str, room: int) -> str:
    cut = text[:room]
    space = cut.rfind(" ")
    if space > room * 0.6:
        cut = cut[:space]
    return cut.rstrip()


def join_blocks(
    blocks: Iterable[Block],
    write: Callable[[Block], str],
    *,
    bullet: str,
    between_items: str = "\n",
) -> str:
    """Blocks written one by one: a blank line between paragraphs, one line break between
    consecutive list items (``between_items``), each item starting with ``bullet``."""
    out: list[str] = []
    previous_bullet = False
    for block in blocks:
        if out:
            out.append(between_items if block.bullet and previous_bullet else "\n\n")
        out.append((bullet if block.bullet else "") + write(block))
        previous_bullet = block.bullet
    return "".join(out)
