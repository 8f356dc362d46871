"""Turn changes into messages people read: pure, standard library only.

Microsoft's post text arrives as blocks from :mod:`m365watch.posts`, untrusted
text already defused. Each message is then written for each kind of channel,
each writer doing its own escaping: plain text and email HTML (built so that
the text Apprise derives from the HTML is exactly the plain text), CommonMark
for Markdown targets, a Teams Adaptive Card, and a Slack Block Kit attachment.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from m365watch.diff import ChangeKind, IssueChange
from m365watch.models import PIR_STATUS, Issue, Post, status_words
from m365watch.posts import (
    Block,
    Inline,
    Link,
    clean_text,
    join_blocks,
    post_blocks,
    shorten_blocks,
)

# Apprise's notify types, by how good or bad the news is.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"
# Worst first: the order of a digest, and the worst one is the digest's own type.
NOTIFY_TYPE_RANK: dict[str, int] = {FAILURE: 0, WARNING: 1, INFO: 2, SUCCESS: 3}
# Slack's colour bar and the email's accent (Microsoft's Fluent palette).
COLOURS: dict[str, str] = {
    FAILURE: "#D13438",
    WARNING: "#FFB900",
    INFO: "#0078D4",
    SUCCESS: "#107C10",
}
# Adaptive Card container styles Teams colours by meaning.
TEAMS_STYLES: dict[str, str] = {
    FAILURE: "attention",
    WARNING: "warning",
    INFO: "accent",
    SUCCESS: "good",
}

MARKDOWN_POST_LIMIT = 3000  # chat services reached through Markdown
TEXT_POST_LIMIT = 6000  # plain text and email: real posts are rarely longer
TEAMS_POST_LIMIT = 2500
SLACK_POST_LIMIT = 2500
DIGEST_EXCERPT_LIMIT = 400
SLACK_TEXT_MAX = 3000  # Slack: characters in one section's text
SLACK_MAX_BLOCKS = 50  # Slack: blocks in one message
TEAMS_CARD_MAX_BYTES = 24_000  # Teams refuses messages over about 28 KB; keep a margin

CHAT_LINK_LABEL = "Open in admin center"
ADMIN_LINK_LABEL = "Open in the Microsoft 365 admin center"
SERVICE_HEALTH_URL = "https://admin.microsoft.com/Adminportal/Home#/servicehealth"


@dataclass(frozen=True)
class Fact:
    """One labelled fact shown in a message."""

    label: str
    value: str


def post_text(post: Post, *, markdown_links: bool = False) -> str:
    """A post's text as readable plain text (or Markdown)."""
    blocks = post_blocks(post)
    return _markdown_blocks(blocks) if markdown_links else _text_document(blocks)


# --------------------------------------------------------------------------
# What a change says


def format_time(value: datetime | None) -> str:
    """A time for people: ``2026-11-20 14:05 UTC``."""
    if value is None:
        return "unknown"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def classification_word(issue: Issue) -> str:
    """``Incident``, ``Advisory`` or Graph's raw word."""
    if issue.classification in ("incident", "advisory"):
        return issue.classification.capitalize()
    return (issue.classification_raw or "Issue").capitalize()


def message_title(issue: Issue) -> str:
    """``[Incident] EX1256020 · Exchange Online: Service degradation``."""
    return f"[{classification_word(issue)}] {issue.id} · {issue.service}: {issue.status_text}"


def notify_type(change: IssueChange) -> str:
    """How good or bad the news is, as an Apprise notify type.

    Resolved or report published = success; a new incident, a worse status of
    an incident, a reopened incident or an advisory turned incident = failure;
    a status getting better = info; anything else (a new advisory, a worse
    advisory, a new post) = warning.
    """
    issue, kinds = change.issue, change.kinds
    incident = issue.classification == "incident"
    if issue.is_resolved and kinds & {ChangeKind.RESOLVED, ChangeKind.PIR}:
        return SUCCESS
    if ChangeKind.NEW in kinds or ChangeKind.REOPENED in kinds:
        return FAILURE if incident and not issue.is_resolved else WARNING
    if ChangeKind.CLASSIFICATION in kinds and incident:
        return FAILURE
    if ChangeKind.STATUS in kinds:
        if change.escalated:
            return FAILURE if incident else WARNING
        return INFO
    return WARNING


def worst_type(types: Iterable[str]) -> str:
    """The most severe of several notify types (info when there are none)."""
    return min(types, key=lambda t: NOTIFY_TYPE_RANK.get(t, 9), default=INFO)


def digest_order(changes: Iterable[IssueChange]) -> list[IssueChange]:
    """Most severe first: failure, warning, info, success; then worse status, incidents, id."""
    return sorted(
        changes,
        key=lambda c: (
            NOTIFY_TYPE_RANK.get(notify_type(c), 9),
            -c.issue.severity,
            c.issue.classification != "incident",
            c.issue.id,
        ),
    )


def change_lines(change: IssueChange) -> list[str]:
    """What changed, one short line each, most important first."""
    issue = change.issue
    lines: list[str] = []
    kinds = change.kinds
    if ChangeKind.NEW in kinds:
        suffix = " (already resolved)" if issue.is_resolved else ""
        lines.append(f"New {classification_word(issue).lower()}{suffix}")
    if ChangeKind.STATUS in kinds and change.previous_status is not None:
        before = status_words(change.previous_status, change.previous_status_raw)
        lines.append(f"Status: {before} → {issue.status_text}")
    if ChangeKind.CLASSIFICATION in kinds and change.previous_classification:
        lines.append(
            f"Reclassified: {change.previous_classification} → {classification_word(issue).lower()}"
        )
    if ChangeKind.RESOLVED in kinds and ChangeKind.NEW not in kinds:
        ended = f" at {format_time(issue.end)}" if issue.end else ""
        lines.append(f"Resolved{ended}")
    if ChangeKind.REOPENED in kinds:
        lines.append("Reopened: Microsoft marked it unresolved again")
    if ChangeKind.PIR in kinds or (ChangeKind.NEW in kinds and issue.status == PIR_STATUS):
        lines.append("Post-incident report published")
    if ChangeKind.POST in kinds:
        count = len(change.new_posts)
        lines.append("New update from Microsoft" if count == 1 else f"{count} new updates")
    return lines


def facts(change: IssueChange) -> list[Fact]:
    """The facts worth showing for a change."""
    issue = change.issue
    status = issue.status_text
    if ChangeKind.STATUS in change.kinds and change.previous_status is not None:
        status = f"{status_words(change.previous_status, change.previous_status_raw)} → {status}"
    rows = [
        Fact("Service", issue.service),
        Fact("Feature", issue.feature or "—"),
        Fact("Classification", classification_word(issue)),
        Fact("Status", status),
        Fact("Started", format_time(issue.start)),
    ]
    if issue.end:
        rows.append(Fact("Ended", format_time(issue.end)))
    if issue.last_modified:
        rows.append(Fact("Last update", format_time(issue.last_modified)))
    return rows


@dataclass(frozen=True)
class Section:
    """One issue's part of a message, in channel-neutral pieces; all untrusted text defused."""

    headline: str
    title: str
    lines: tuple[str, ...]
    facts: tuple[Fact, ...]
    url: str
    notify_type: str
    impact: str = ""
    post_heading: str = ""
    post: tuple[Block, ...] = ()
    issue_id: str = ""


def change_section(change: IssueChange) -> Section:
    """The pieces of the message for one change."""
    issue = change.issue
    post = change.new_posts[-1] if change.new_posts else None
    impact = issue.impact_description if ChangeKind.NEW in change.kinds else None
    return Section(
        headline=clean_text(message_title(issue)),
        title=clean_text(issue.title),
        lines=tuple(clean_text(x) for x in change_lines(change)),
        facts=tuple(Fact(f.label, clean_text(f.value)) for f in facts(change)),
        url=issue.url,
        notify_type=notify_type(change),
        impact=clean_text(impact),
        post_heading=f"Update from Microsoft ({format_time(post.created)})" if post else "",
        post=post_blocks(post) if post else (),
        issue_id=issue.id,
    )


# --------------------------------------------------------------------------
# Messages


@dataclass(frozen=True)
class Message:
    """A notification, written once for each kind of channel.

    ``card`` is the whole Teams Workflows payload (an Adaptive Card) and
    ``slack`` one Slack attachment (colour bar + Block Kit); empty when a
    message has none, and then those channels get ``markdown``.
    """

    title: str
    text: str
    markdown: str
    html: str
    notify_type: str
    url: str
    card: dict[str, Any] = field(default_factory=dict, compare=False)
    slack: dict[str, Any] = field(default_factory=dict, compare=False)
    issue_ids: tuple[str, ...] = ()


def render_change(change: IssueChange) -> Message:
    """The message for one change: title, what changed, facts, the newest post, the link."""
    section = change_section(change)
    return _message(section.headline, [section], digest=False)


def render_digest(changes: Sequence[IssueChange]) -> Message:
    """One message listing several changes, most severe first; one change renders as usual."""
    if len(changes) == 1:
        return render_change(changes[0])
    sections = [change_section(c) for c in digest_order(changes)]
    ids = [s.issue_id for s in sections]
    shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    title = f"Microsoft 365 service health: {len(ids)} changes ({shown})"
    return _message(title, sections, digest=True)


def render_test(target: str, now: datetime, *, version: str = "") -> Message:
    """The clearly-marked message ``m365watch test-notify`` sends to a target."""
    section = Section(
        headline="[Test] m365watch test notification",
        title=f"Test message for the target {clean_text(target)!r}: no action is needed.",
        lines=(
            "This is not a service-health issue. If you can read it, m365watch "
            "can deliver to this target.",
        ),
        facts=(
            Fact("Target", clean_text(target)),
            Fact("Sent", format_time(now)),
            Fact("Sent by", f"m365watch {version}".strip()),
        ),
        url=SERVICE_HEALTH_URL,
        notify_type=INFO,
    )
    title = f"[Test] m365watch test notification for {clean_text(target)}"
    return _message(title, [section], digest=False)


def _message(title: str, sections: Sequence[Section], *, digest: bool) -> Message:
    kind = worst_type(s.notify_type for s in sections)
    heading = title if digest else ""  # a digest opens with its title; one change with its issue
    limit = DIGEST_EXCERPT_LIMIT if digest else TEXT_POST_LIMIT
    document = _document(heading, sections, limit, kind)
    return Message(
        title=title,
        text=_text_document(document),
        markdown=_markdown_message(
            heading, sections, DIGEST_EXCERPT_LIMIT if digest else MARKDOWN_POST_LIMIT
        ),
        html=_html_document(document),
        notify_type=kind,
        url=sections[0].url if len(sections) == 1 else SERVICE_HEALTH_URL,
        card=_teams_card(title, heading, sections, kind),
        slack=_slack_attachment(title, heading, sections, kind),
        issue_ids=tuple(s.issue_id for s in sections if s.issue_id),
    )


def _post_parts(section: Section, limit: int) -> tuple[tuple[Block, ...], Block | None]:
    """The post cut to ``limit``, and the note with the link when it was cut."""
    blocks, cut = shorten_blocks(section.post, limit)
    note = None
    if cut:
        note = Block(
            ("(shortened) ", Link("Read the full update in the admin center", section.url))
        )
    return blocks, note


# --------------------------------------------------------------------------
# Plain text and email HTML: one document, two writers; the text Apprise
# derives from the HTML for the email's text part is exactly the plain text.

Unit = Block | tuple[Fact, ...]


def _document(heading: str, sections: Sequence[Section], post_limit: int, kind: str) -> list[Unit]:
    units: list[Unit] = []
    if heading:
        units.append(Block((heading,), heading=2, accent=COLOURS[kind]))
    for section in sections:
        compact = bool(heading)
        accent = COLOURS[section.notify_type]
        if compact:
            units.append(Block((section.headline,), heading=3, accent=accent))
            units.append(Block(("\n".join([section.title, *section.lines]),)))
        else:
            units.append(Block((section.title,), heading=2, accent=accent))
            if section.lines:
                units.append(Block(("\n".join(section.lines),)))
            units.append(section.facts)
            if section.impact:
                units.append(Block((f"Impact: {section.impact}",)))
        if section.post:
            blocks, note = _post_parts(section, post_limit)
            if not compact:
                units.append(Block((section.post_heading + ":",), heading=3))
            units += blocks
            if note:
                units.append(note)
        units.append(Block((ADMIN_LINK_LABEL + ": ", Link(section.url, section.url))))
    return units


def _inline_text(part: Inline) -> str:
    if isinstance(part, str):
        return part
    return part.url if part.text == part.url else f"{part.text} ({part.url})"


def _text_document(units: Iterable[Unit]) -> str:
    blocks = [
        u if isinstance(u, Block) else Block(("\n".join(f"{f.label}: {f.value}" for f in u),))
        for u in units
    ]
    return join_blocks(blocks, lambda b: "".join(_inline_text(p) for p in b.parts), bullet="- ")


_FONT = "font-family:'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;color:#242424"


def _inline_html(part: Inline) -> str:
    if isinstance(part, str):
        return html.escape(part).replace("\n", "<br>")
    url = html.escape(part.url)
    if part.text == part.url:
        return f'<a href="{url}">{url}</a>'
    return f'<a href="{url}">{html.escape(part.text)}</a> (<a href="{url}">{url}</a>)'


def _html_document(units: Sequence[Unit]) -> str:
    out: list[str] = [f'<div style="{_FONT};max-width:760px">']
    in_list = False
    for unit in units:
        if isinstance(unit, Block) and unit.bullet:
            out.append(("" if in_list else "\n<ul>") + "<li>")
            out.append("".join(_inline_html(p) for p in unit.parts) + "</li>")
            in_list = True
            continue
        if in_list:
            out.append("</ul>")
            in_list = False
        out.append("\n" + _html_unit(unit))
    if in_list:
        out.append("</ul>")
    out.append("\n</div>")
    return "".join(out)


def _html_unit(unit: Unit) -> str:
    if not isinstance(unit, Block):
        rows = "".join(
            '<tr><td style="padding:3px 10px;border-bottom:1px solid #e0e0e0">'
            f'<b style="display:inline-block;min-width:110px">{html.escape(f.label)}:</b> '
            f"{html.escape(f.value)}</td></tr>"
            for f in unit
        )
        return f'<table style="border-collapse:collapse;margin:4px 0">{rows}</table>'
    body = "".join(_inline_html(p) for p in unit.parts)
    if unit.heading:
        style = "margin:12px 0 6px"
        if unit.accent:
            style += f";border-left:6px solid {unit.accent};padding-left:10px"
        return f'<h{unit.heading} style="{style}">{body}</h{unit.heading}>'
    return f"<p>{body}</p>"


# --------------------------------------------------------------------------
# Markdown (CommonMark) for other Markdown targets


def _md_escape(text: str) -> str:
    # Keep untrusted text from opening emphasis, links or HTML in Markdown channels.
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)


def _md_inline(part: Inline) -> str:
    if isinstance(part, str):
        return _md_escape(part)
    if part.text == part.url:
        return f"<{part.url}>"
    return f"[{_md_escape(part.text)}]({part.url})"


def _markdown_blocks(blocks: Iterable[Block]) -> str:
    return join_blocks(blocks, lambda b: "".join(_md_inline(p) for p in b.parts), bullet="- ")


def _markdown_message(heading: str, sections: Sequence[Section], post_limit: int) -> str:
    parts: list[str] = []
    if heading:
        parts.append(f"**{_md_escape(heading)}**")
    for section in sections:
        if heading:
            lines = [f"**{_md_escape(section.headline)}**", _md_escape(section.title)]
            parts.append("\n".join(lines + [_md_escape(x) for x in section.lines]))
        else:
            parts.append(f"**{_md_escape(section.title)}**")
            if section.lines:
                parts.append("\n".join(_md_escape(x) for x in section.lines))
            parts.append(
                "\n".join(
                    f"**{_md_escape(f.label)}:** {_md_escape(f.value)}" for f in section.facts
                )
            )
            if section.impact:
                parts.append(f"**Impact:** {_md_escape(section.impact)}")
        if section.post:
            blocks, note = _post_parts(section, post_limit)
            text = _markdown_blocks([*blocks, *([note] if note else [])])
            parts.append(text if heading else f"**{section.post_heading}:**\n{text}")
        parts.append(f"[{ADMIN_LINK_LABEL}]({section.url})")
    return "\n\n".join(parts)


# --------------------------------------------------------------------------
# Microsoft Teams: an Adaptive Card posted through a Workflows webhook


def _teams_escape(text: str) -> str:
    # Adaptive Cards read a Markdown subset (bold, italic, lists, links): escape only what
    # could open one, so "[Incident]" or "snake_case" show without stray backslashes.
    text = re.sub(r"([\\`*])", r"\\\1", text)
    text = re.sub(r"(?<!\w)_|_(?!\w)", r"\\_", text)
    return text.replace("](", "]\\(")


def _teams_inline(part: Inline, *, bullet: bool = False) -> str:
    if isinstance(part, str):
        # A blank line breaks a paragraph's lines; inside a list item it would end the list.
        return _teams_escape(part).replace("\n", " " if bullet else "\n\n")
    return f"[{_teams_escape(part.text)}]({part.url})"


def _teams_blocks(blocks: Iterable[Block]) -> str:
    # Adaptive Cards: "\r" between list items (Microsoft's documented form).
    return join_blocks(
        blocks,
        lambda b: "".join(_teams_inline(p, bullet=b.bullet) for p in b.parts),
        bullet="- ",
        between_items="\r",
    )


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _teams_post(section: Section, limit: int) -> dict[str, Any]:
    blocks, note = _post_parts(section, limit)
    return _text_block(_teams_blocks([*blocks, *([note] if note else [])]))


def _teams_lines(lines: Iterable[str], **style: Any) -> list[dict[str, Any]]:
    text = "\n\n".join(_teams_escape(x) for x in lines)
    return [_text_block(text, **style)] if text else []


def _teams_change(section: Section, post_limit: int) -> list[dict[str, Any]]:
    """The body of a one-change card: what changed, the FactSet, impact, the newest post."""
    items = _teams_lines(section.lines, weight="Bolder")
    facts = [{"title": f.label, "value": _teams_escape(f.value)} for f in section.facts]
    items.append({"type": "FactSet", "facts": facts})
    if section.impact:
        items.append(_text_block(f"**Impact:** {_teams_escape(section.impact)}"))
    if section.post and post_limit > 0:
        heading = _text_block(section.post_heading, weight="Bolder", separator=True)
        items += [heading, _teams_post(section, post_limit)]
    return items


def _teams_digest_entry(section: Section, post_limit: int) -> dict[str, Any]:
    """One change of a digest: a separated container with its own "Open" button."""
    items = [
        _text_block(
            _teams_escape(section.headline),
            weight="Bolder",
            color=TEAMS_STYLES[section.notify_type],
        ),
        _text_block(_teams_escape(section.title), spacing="Small"),
        *_teams_lines(section.lines, spacing="Small"),
    ]
    if section.post and post_limit > 0:
        items.append(_teams_post(section, post_limit))
    action = {"type": "Action.OpenUrl", "title": f"Open {section.issue_id}", "url": section.url}
    items.append({"type": "ActionSet", "actions": [action]})
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def _teams_card(title: str, heading: str, sections: Sequence[Section], kind: str) -> dict[str, Any]:
    """The Workflows payload; post text, then detail, give way until it fits Teams' size limit."""
    if heading:
        attempts = [(n, limit) for n in (len(sections), 20, 10, 0) for limit in (400, 150, 0)]
    else:
        attempts = [(1, limit) for limit in (TEAMS_POST_LIMIT, 1000, 300, 0)]
    for detailed, post_limit in attempts:
        if heading:
            top = [_text_block(_teams_escape(heading), size="Large", weight="Bolder")]
            body = [_teams_digest_entry(s, post_limit) for s in sections[:detailed]]
            rest = sections[detailed:]
            if rest:
                links = _more_list(rest, lambda s: f"[{s.issue_id}]({s.url})", 6000)
                body.append(_text_block(f"**{len(rest)} more:** {links}", separator=True))
            actions: list[dict[str, Any]] = []
        else:
            section = sections[0]
            top = [
                _text_block(_teams_escape(section.headline), size="Large", weight="Bolder"),
                _text_block(_teams_escape(section.title), spacing="Small"),
            ]
            body = _teams_change(section, post_limit)
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
        card = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": content,
                }
            ],
        }
        if payload_size(card) <= TEAMS_CARD_MAX_BYTES:
            break
    return card


def _more_list(sections: Sequence[Section], link: Callable[[Section], str], budget: int) -> str:
    """The ids of changes a digest has no room to detail: linked while they fit, then plain."""
    out: list[str] = []
    used = 0
    for section in sections:
        item = link(section)
        if used + len(item) > budget:
            item = section.issue_id
        out.append(item)
        used += len(item) + 2
    return ", ".join(out)


def payload_size(payload: dict[str, Any]) -> int:
    """Bytes of ``payload`` as JSON on the wire (Apprise's ``json.dumps``, ASCII-escaped)."""
    return len(json.dumps(payload).encode("utf-8"))


# --------------------------------------------------------------------------
# Slack: one attachment (colour bar) holding Block Kit sections in mrkdwn


def _slack_escape(text: str) -> str:
    # Slack reads only these three as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_inline(part: Inline) -> str:
    if isinstance(part, str):
        return _slack_escape(part)
    if part.text == part.url:
        return f"<{part.url}>"
    return f"<{part.url}|{_slack_escape(part.text)}>"


def _slack_blocks_text(blocks: Iterable[Block]) -> str:
    return join_blocks(blocks, lambda b: "".join(_slack_inline(p) for p in b.parts), bullet="• ")


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_TEXT_MAX]}}


def _slack_post(section: Section, limit: int, heading: str = "") -> str:
    """The post as mrkdwn within one section's limit (escaping can only lengthen it)."""
    while True:
        blocks, note = _post_parts(section, limit)
        text = heading + _slack_blocks_text([*blocks, *([note] if note else [])])
        if len(text) <= SLACK_TEXT_MAX or limit <= 100:
            return text
        limit -= max(100, len(text) - SLACK_TEXT_MAX)


def _slack_attachment(
    title: str, heading: str, sections: Sequence[Section], kind: str
) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = []
    if heading:
        blocks.append(_slack_section(f"*{_slack_escape(heading)}*"))
        detailed = sections if len(sections) * 2 + 1 <= SLACK_MAX_BLOCKS else sections[:20]
        for section in detailed:
            lines = [f"*{_slack_escape(section.headline)}*", _slack_escape(section.title)]
            lines += [_slack_escape(x) for x in section.lines]
            if section.post:
                lines.append(_slack_post(section, DIGEST_EXCERPT_LIMIT))
            lines.append(f"<{section.url}|{CHAT_LINK_LABEL}>")
            blocks += [{"type": "divider"}, _slack_section("\n".join(lines))]
        rest = sections[len(detailed) :]
        if rest:
            links = _more_list(rest, lambda s: f"<{s.url}|{s.issue_id}>", SLACK_TEXT_MAX - 100)
            blocks.append(_slack_section(f"*{len(rest)} more:* {links}"))
    else:
        section = sections[0]
        text = f"*{_slack_escape(section.headline)}*\n{_slack_escape(section.title)}"
        if section.lines:
            text += "\n\n" + "\n".join(_slack_escape(x) for x in section.lines)
        blocks.append(_slack_section(text))
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{f.label}*\n{_slack_escape(f.value)}"}
                    for f in section.facts[:10]
                ],
            }
        )
        if section.impact:
            blocks.append(_slack_section(f"*Impact:* {_slack_escape(section.impact)}"))
        if section.post:
            post_heading = f"*{_slack_escape(section.post_heading)}:*\n"
            blocks.append(_slack_section(_slack_post(section, SLACK_POST_LIMIT, post_heading)))
        blocks.append(_slack_section(f"<{section.url}|{CHAT_LINK_LABEL}>"))
    return {"color": COLOURS[kind], "fallback": title, "blocks": blocks}


# --- watcher messages (issue 5): m365watch reporting on itself ---

WATCHER_DOWN_TITLE = "m365watch cannot reach Microsoft Graph"
WATCHER_UP_TITLE = "m365watch is working again"


def render_watcher_down(reason: str, failures: int, since: datetime | None) -> Message:
    """The one alert sent when polls keep failing: what fails, since when, what to run."""
    section = Section(
        headline=WATCHER_DOWN_TITLE,
        title=f"{WATCHER_DOWN_TITLE}: {clean_text(reason)}",
        lines=(
            f"{failures} polls in a row have failed, the first at {format_time(since)}. "
            "Service-health changes are not being watched until this is fixed.",
            "Run m365watch doctor on its host to see what is wrong. You will get one message "
            "when it works again; nothing is lost meanwhile.",
        ),
        facts=(
            Fact("Failed polls", str(failures)),
            Fact("Failing since", format_time(since)),
        ),
        url=SERVICE_HEALTH_URL,
        notify_type=FAILURE,
    )
    return _message(WATCHER_DOWN_TITLE, [section], digest=False)


def render_watcher_up(since: datetime | None, now: datetime) -> Message:
    """The one message sent when a poll succeeds again after the alert."""
    section = Section(
        headline=WATCHER_UP_TITLE,
        title=WATCHER_UP_TITLE,
        lines=(
            f"m365watch reached Microsoft Graph again at {format_time(now)}, after failing "
            f"since {format_time(since)}. Changes made meanwhile are sent as usual.",
        ),
        facts=(Fact("Failing since", format_time(since)), Fact("Working since", format_time(now))),
        url=SERVICE_HEALTH_URL,
        notify_type=SUCCESS,
    )
    return _message(WATCHER_UP_TITLE, [section], digest=False)
