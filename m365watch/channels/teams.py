"""Microsoft Teams: an Adaptive Card posted through a Workflows webhook.

Pure, standard library only; :func:`card` is the builder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from m365watch.posts import Block, Inline, join_blocks
from m365watch.sections import (
    CHAT_LINK_LABEL,
    FAILURE,
    INFO,
    SUCCESS,
    WARNING,
    Section,
    more_list,
    post_parts,
    subtitle,
)

# Adaptive Card container styles Teams colours by meaning.
TEAMS_STYLES: dict[str, str] = {
    FAILURE: "attention",
    WARNING: "warning",
    INFO: "accent",
    SUCCESS: "good",
}
TEAMS_POST_LIMIT = 2500
TEAMS_CARD_MAX_BYTES = 24_000  # Teams refuses messages over about 28 KB; keep a margin


def _escape(text: str) -> str:
    # Adaptive Cards read a Markdown subset (bold, italic, lists, links): escape only what
    # could open one, so "[Incident]" or "snake_case" show without stray backslashes.
    text = re.sub(r"([\\`*])", r"\\\1", text)
    text = re.sub(r"(?<!\w)_|_(?!\w)", r"\\_", text)
    return text.replace("](", "]\\(")


def _inline(part: Inline, *, bullet: bool = False) -> str:
    if isinstance(part, str):
        # A blank line breaks a paragraph's lines; inside a list item it would end the list.
        return _escape(part).replace("\n", " " if bullet else "\n\n")
    return f"[{_escape(part.text)}]({part.url})"


def _blocks_text(blocks: Iterable[Block]) -> str:
    # Adaptive Cards: "\r" between list items (Microsoft's documented form).
    return join_blocks(
        blocks,
        lambda b: "".join(_inline(p, bullet=b.bullet) for p in b.parts),
        bullet="- ",
        between_items="\r",
    )


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _post(section: Section, limit: int) -> dict[str, Any]:
    blocks, note = post_parts(section, limit)
    return _text_block(_blocks_text([*blocks, *([note] if note else [])]))


def _lines(lines: Iterable[str], **style: Any) -> list[dict[str, Any]]:
    text = "\n\n".join(_escape(x) for x in lines)
    return [_text_block(text, **style)] if text else []


def _change_body(section: Section, post_limit: int) -> list[dict[str, Any]]:
    """The body of a one-change card: what changed, the FactSet, impact, the newest post."""
    items = _lines(section.lines, weight="Bolder")
    facts = [{"title": f.label, "value": _escape(f.value)} for f in section.facts_for(chat=True)]
    items.append({"type": "FactSet", "facts": facts})
    if section.impact:
        items.append(_text_block(f"**Impact:** {_escape(section.impact)}"))
    if section.post and post_limit > 0:
        heading = _text_block(section.post_heading, weight="Bolder", separator=True)
        items += [heading, _post(section, post_limit)]
    return items


def _digest_entry(section: Section, post_limit: int) -> dict[str, Any]:
    """One change of a digest: a separated container with its own "Open" button."""
    items = [
        _text_block(
            _escape(section.headline),
            weight="Bolder",
            color=TEAMS_STYLES[section.notify_type],
        ),
        *_lines([subtitle(section)], spacing="Small"),
        *_lines([*section.tenant_lines(chat=True), *section.lines], spacing="Small"),
    ]
    if section.post and post_limit > 0:
        items.append(_post(section, post_limit))
    action = {"type": "Action.OpenUrl", "title": f"Open {section.issue_id}", "url": section.url}
    items.append({"type": "ActionSet", "actions": [action]})
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def card(title: str, heading: str, sections: Sequence[Section], kind: str) -> dict[str, Any]:
    """The Workflows payload for a message (``heading`` is a digest's title, empty for one change).

    Post text, then detail, give way until the card fits Teams' size limit.
    """
    if heading:
        attempts = [(n, limit) for n in (len(sections), 20, 10, 0) for limit in (400, 150, 0)]
    else:
        attempts = [(1, limit) for limit in (TEAMS_POST_LIMIT, 1000, 300, 0)]
    for detailed, post_limit in attempts:
        if heading:
            top = [_text_block(_escape(heading), size="Large", weight="Bolder")]
            body = [_digest_entry(s, post_limit) for s in sections[:detailed]]
            rest = sections[detailed:]
            if rest:
                links = more_list(rest, lambda s: f"[{s.issue_id}]({s.url})", 6000)
                body.append(_text_block(f"**{len(rest)} more:** {links}", separator=True))
            actions: list[dict[str, Any]] = []
        else:
            section = sections[0]
            top = [
                _text_block(_escape(section.headline), size="Large", weight="Bolder"),
                *_lines([subtitle(section)], spacing="Small"),
            ]
            body = _change_body(section, post_limit)
            actions = [{"type": "Action.OpenUrl", "title": CHAT_LINK_LABEL, "url": section.url}]
        content: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "msteams": {"width": "Full"},
            "fallbackText": title,
            "body": [
                {"type": "Container", "style": TEAMS_STYLES[kind], "bleed": True, "items": top},
                *body,
            ],
        }
        if actions:
            content["actions"] = actions
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": content,
                }
            ],
        }
        if payload_size(payload) <= TEAMS_CARD_MAX_BYTES:
            break
    return payload


def payload_size(payload: dict[str, Any]) -> int:
    """Bytes of ``payload`` as JSON on the wire (Apprise's ``json.dumps``, ASCII-escaped)."""
    return len(json.dumps(payload).encode("utf-8"))
