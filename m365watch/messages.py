"""Turn changes into messages people read: pure, standard library only.

A :class:`Message` is written once per change (or per digest of changes) for
every kind of channel, each writer doing its own escaping: plain text and
email HTML (built so that the text Apprise derives from the HTML is exactly
the plain text), CommonMark for Markdown targets, and the payloads of
:mod:`m365watch.channels` (a Teams Adaptive Card, a Slack Block Kit
attachment).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from m365watch.diff import IssueChange
from m365watch.models import Post
from m365watch.posts import Block, Inline, Link, clean_text, join_blocks, post_blocks
from m365watch.sections import (
    ADMIN_LINK_LABEL,
    COLOURS,
    DIGEST_EXCERPT_LIMIT,
    FAILURE,
    INFO,
    SERVICE_HEALTH_URL,
    SUCCESS,
    Fact,
    Section,
    change_section,
    digest_order,
    digest_title,
    format_time,
    post_parts,
    subtitle,
    tenant_label,
    with_tenants,
    worst_type,
)

MARKDOWN_POST_LIMIT = 3000  # chat services reached through Markdown
TEXT_POST_LIMIT = 6000  # plain text and email: real posts are rarely longer

# The watcher's own messages: m365watch reporting on itself.
WATCHER_DOWN_TITLE = "m365watch cannot reach Microsoft Graph"
WATCHER_UP_TITLE = "m365watch is working again"


@dataclass(frozen=True)
class Message:
    """A notification, written once for each kind of channel.

    ``payloads`` holds, by channel name (``teams``, ``slack``: the keys of
    :data:`m365watch.channels.PAYLOAD_BUILDERS`), the payload m365watch built
    for that channel; a channel without one gets ``markdown``. ``attachments`` are
    files sent along where the channel can carry them (email): the post-incident
    reports the message says were saved.
    """

    title: str
    text: str
    markdown: str
    html: str
    notify_type: str
    url: str
    payloads: Mapping[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    issue_ids: tuple[str, ...] = ()
    attachments: tuple[Path, ...] = ()
    # The [[tenants]] it tells of, in the order named (empty: the one plain tenant).
    tenants: tuple[str, ...] = ()

    def payload(self, channel: str) -> dict[str, Any]:
        """The payload built for ``channel`` (e.g. the Teams card); empty when there is none."""
        return self.payloads.get(channel, {})


def render_change(
    change: IssueChange,
    reports: Mapping[str, Path] | None = None,
    tenants: Mapping[str, Sequence[str]] | None = None,
) -> Message:
    """The message for one change: title, what changed, facts, the newest post, the link.

    ``reports`` maps issue ids to their saved post-incident report: the message says
    where it is and carries it as an attachment.
    """
    return render_digest([change], reports, tenants)


def render_digest(
    changes: Sequence[IssueChange],
    reports: Mapping[str, Path] | None = None,
    tenants: Mapping[str, Sequence[str]] | None = None,
) -> Message:
    """One message listing several changes, most severe first; one change renders as usual.

    ``reports`` as for :func:`render_change`; ``tenants`` maps issue ids to the
    [[tenants]] names each change happened in (named in the title and the facts).
    """
    reports, tenants = reports or {}, tenants or {}
    ordered = digest_order(changes) if len(changes) > 1 else list(changes)
    sections = [
        with_tenants(
            change_section(c, str(reports.get(c.issue.id, ""))), tenants.get(c.issue.id, ())
        )
        for c in ordered
    ]
    attachments = tuple(reports[c.issue.id] for c in ordered if c.issue.id in reports)
    if len(sections) == 1:
        message = _message(sections[0].headline, sections, digest=False)
    else:
        ids = [s.issue_id for s in sections]
        shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
        title = digest_title(
            f"Microsoft 365 service health: {len(ids)} changes ({shown})", sections
        )
        message = _message(title, sections, digest=True)
    return replace(message, attachments=attachments) if attachments else message


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


def render_watcher_down(
    reason: str,
    failures: int,
    since: datetime | None,
    *,
    tenant: str | None = None,
    consent_url: str | None = None,
) -> Message:
    """The one alert sent when polls keep failing: what fails, since when, what to run.

    ``tenant`` (a [[tenants]] name) is named; ``consent_url`` is where its admin grants
    consent again, said when the failure looks like withdrawn consent.
    """
    label = tenant_label([clean_text(tenant)]) if tenant else ""
    lines = [
        f"{failures} polls in a row have failed, the first at {format_time(since)}. "
        + (
            f"Service-health changes of the tenant {clean_text(tenant)} are not being watched "
            "until this is fixed."
            if tenant
            else "Service-health changes are not being watched until this is fixed."
        ),
    ]
    if consent_url:
        lines.append(
            f"If the tenant's admin consent was withdrawn, an administrator of the tenant grants "
            f"it again at {consent_url}"
        )
    lines.append(
        "Run m365watch doctor on its host to see what is wrong. You will get one message "
        "when it works again; nothing is lost meanwhile."
    )
    facts = [Fact("Failed polls", str(failures)), Fact("Failing since", format_time(since))]
    if tenant:
        facts.insert(0, Fact("Tenant", clean_text(tenant)))
    section = Section(
        headline=label + WATCHER_DOWN_TITLE,
        title=f"{label}{WATCHER_DOWN_TITLE}: {clean_text(reason)}",
        lines=tuple(lines),
        facts=tuple(facts),
        url=SERVICE_HEALTH_URL,
        notify_type=FAILURE,
    )
    return _message(label + WATCHER_DOWN_TITLE, [section], digest=False)


def render_watcher_up(
    since: datetime | None, now: datetime, *, tenant: str | None = None
) -> Message:
    """The one message sent when a poll succeeds again after the alert (naming ``tenant``)."""
    label = tenant_label([clean_text(tenant)]) if tenant else ""
    facts = [Fact("Failing since", format_time(since)), Fact("Working since", format_time(now))]
    if tenant:
        facts.insert(0, Fact("Tenant", clean_text(tenant)))
    section = Section(
        headline=label + WATCHER_UP_TITLE,
        title=label + WATCHER_UP_TITLE,
        lines=(
            f"m365watch reached Microsoft Graph again at {format_time(now)}, after failing "
            f"since {format_time(since)}. Changes made meanwhile are sent as usual.",
        ),
        facts=tuple(facts),
        url=SERVICE_HEALTH_URL,
        notify_type=SUCCESS,
    )
    return _message(label + WATCHER_UP_TITLE, [section], digest=False)


def render_sections(title: str, sections: Sequence[Section], *, digest: bool) -> Message:
    """A message from sections another feed wrote (the Message center): every channel's form."""
    return _message(title, sections, digest=digest)


def _message(title: str, sections: Sequence[Section], *, digest: bool) -> Message:
    # The channel payloads only when a message is written: a poll that sends nothing,
    # and the queries, never load them.
    from m365watch.channels import PAYLOAD_BUILDERS

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
        payloads={
            channel: build(title, heading, sections, kind)
            for channel, build in PAYLOAD_BUILDERS.items()
        },
        issue_ids=tuple(s.issue_id for s in sections if s.issue_id),
        tenants=tuple(dict.fromkeys(t for s in sections for t in s.tenants)),
    )


def post_text(post: Post, *, markdown_links: bool = False) -> str:
    """A post's text as readable plain text (or Markdown)."""
    return blocks_text(post_blocks(post), markdown_links=markdown_links)


def blocks_text(blocks: Iterable[Block], *, markdown_links: bool = False) -> str:
    """Paragraphs and bullets as readable plain text, links as ``text (url)`` (or Markdown)."""
    return _markdown_blocks(blocks) if markdown_links else _text_document(blocks)


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
            lines = [subtitle(section), *section.tenant_lines(chat=False), *section.lines]
            units.append(Block(("\n".join(x for x in lines if x),)))
        else:
            units.append(Block((section.title,), heading=2, accent=accent))
            if section.lines:
                units.append(Block(("\n".join(section.lines),)))
            units.append(section.facts_for(chat=False))
            if section.impact:
                units.append(Block((f"Impact: {section.impact}",)))
        if section.post:
            blocks, note = post_parts(section, post_limit)
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
            lines = [f"**{_md_escape(section.headline)}**"]
            more = [subtitle(section), *section.tenant_lines(chat=True), *section.lines]
            lines += [_md_escape(x) for x in more if x]
            parts.append("\n".join(lines))
        else:
            parts.append(f"**{_md_escape(section.title)}**")
            if section.lines:
                parts.append("\n".join(_md_escape(x) for x in section.lines))
            parts.append(
                "\n".join(
                    f"**{_md_escape(f.label)}:** {_md_escape(f.value)}"
                    for f in section.facts_for(chat=True)
                )
            )
            if section.impact:
                parts.append(f"**Impact:** {_md_escape(section.impact)}")
        if section.post:
            blocks, note = post_parts(section, post_limit)
            text = _markdown_blocks([*blocks, *([note] if note else [])])
            parts.append(text if heading else f"**{section.post_heading}:**\n{text}")
        parts.append(f"[{ADMIN_LINK_LABEL}]({section.url})")
    return "\n\n".join(parts)
