"""Slack: one attachment (a colour bar) holding Block Kit sections in mrkdwn.

Pure, standard library only; :func:`attachment` is the builder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from m365watch.posts import Block, Inline, join_blocks
from m365watch.sections import (
    CHAT_LINK_LABEL,
    COLOURS,
    DIGEST_EXCERPT_LIMIT,
    Section,
    more_list,
    post_parts,
    subtitle,
)

SLACK_POST_LIMIT = 2500
SLACK_TEXT_MAX = 3000  # Slack: characters in one section's text
SLACK_MAX_BLOCKS = 50  # Slack: blocks in one message


def _escape(text: str) -> str:
    # Slack reads only these three as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(part: Inline) -> str:
    if isinstance(part, str):
        return _escape(part)
    if part.text == part.url:
        return f"<{part.url}>"
    return f"<{part.url}|{_escape(part.text)}>"


def _blocks_text(blocks: Iterable[Block]) -> str:
    return join_blocks(blocks, lambda b: "".join(_inline(p) for p in b.parts), bullet="• ")


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_MAX]}}


def _post(section: Section, limit: int, heading: str = "") -> str:
    """The post as mrkdwn within one section's limit (escaping can only lengthen it)."""
    while True:
        blocks, note = post_parts(section, limit)
        text = heading + _blocks_text([*blocks, *([note] if note else [])])
        if len(text) <= SLACK_TEXT_MAX or limit <= 100:
            return text
        limit -= max(100, len(text) - SLACK_TEXT_MAX)


def attachment(title: str, heading: str, sections: Sequence[Section], kind: str) -> dict[str, Any]:
    """The attachment for a message (``heading`` is a digest's title, empty for one change).

    A digest too long for Slack's block limit details its first 20 changes and
    lists the rest as links.
    """
    blocks: list[dict[str, Any]] = []
    if heading:
        blocks.append(_mrkdwn_section(f"*{_escape(heading)}*"))
        detailed = sections if len(sections) * 2 + 1 <= SLACK_MAX_BLOCKS else sections[:20]
        for section in detailed:
            lines = [f"*{_escape(section.headline)}*"]
            more = [subtitle(section), *section.tenant_lines(chat=True), *section.lines]
            lines += [_escape(x) for x in more if x]
            if section.post:
                lines.append(_post(section, DIGEST_EXCERPT_LIMIT))
            lines.append(f"<{section.url}|{CHAT_LINK_LABEL}>")
            blocks += [{"type": "divider"}, _mrkdwn_section("\n".join(lines))]
        rest = sections[len(detailed) :]
        if rest:
            links = more_list(rest, lambda s: f"<{s.url}|{s.issue_id}>", SLACK_TEXT_MAX - 100)
            blocks.append(_mrkdwn_section(f"*{len(rest)} more:* {links}"))
    else:
        section = sections[0]
        text = f"*{_escape(section.headline)}*"
        if subtitle(section):
            text += f"\n{_escape(subtitle(section))}"
        if section.lines:
            text += "\n\n" + "\n".join(_escape(x) for x in section.lines)
        blocks.append(_mrkdwn_section(text))
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{f.label}*\n{_escape(f.value)}"}
                    for f in section.facts_for(chat=True)[:10]
                ],
            }
        )
        if section.impact:
            blocks.append(_mrkdwn_section(f"*Impact:* {_escape(section.impact)}"))
        if section.post:
            post_heading = f"*{_escape(section.post_heading)}:*\n"
            blocks.append(_mrkdwn_section(_post(section, SLACK_POST_LIMIT, post_heading)))
        blocks.append(_mrkdwn_section(f"<{section.url}|{CHAT_LINK_LABEL}>"))
    return {"color": COLOURS[kind], "fallback": title, "blocks": blocks}
