"""What a change says, in pieces every channel writes its own way: pure, standard library only.

How good or bad the news is (an Apprise notify type, and its colour), the
title line, what changed, the facts and the newest post of one issue make a
:class:`Section`; :mod:`m365watch.messages` and each module of
:mod:`m365watch.channels` write sections in their own syntax.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from m365watch.diff import ChangeKind, IssueChange
from m365watch.models import PIR_STATUS, Issue, status_words
from m365watch.models import format_time as format_time  # here since it began
from m365watch.posts import Block, Link, clean_text, post_blocks, shorten_blocks

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

DIGEST_EXCERPT_LIMIT = 400  # a post's excerpt under each change of a digest

CHAT_LINK_LABEL = "Open in admin center"
ADMIN_LINK_LABEL = "Open in the Microsoft 365 admin center"
SERVICE_HEALTH_URL = "https://admin.microsoft.com/Adminportal/Home#/servicehealth"


@dataclass(frozen=True)
class Fact:
    """One labelled fact shown in a message."""

    label: str
    value: str


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
    tenants: tuple[str, ...] = ()  # [[tenants]] names it happened in (empty: one plain tenant)

    def facts_for(self, *, chat: bool) -> tuple[Fact, ...]:
        """The facts, led by the tenants (the first ten in ``chat``, all elsewhere)."""
        if not self.tenants:
            return self.facts
        label = "Tenant" if len(self.tenants) == 1 else "Tenants"
        return (Fact(label, tenant_list(self.tenants, chat=chat)), *self.facts)

    def tenant_lines(self, *, chat: bool) -> tuple[str, ...]:
        """The tenants as a line of a digest's compact entry (none without tenants)."""
        if not self.tenants:
            return ()
        fact = self.facts_for(chat=chat)[0]
        return (f"{fact.label}: {fact.value}",)


CHAT_TENANTS = 10  # tenants a chat message names before "+N more"


def tenant_list(names: Sequence[str], *, chat: bool) -> str:
    """``contoso, fabrikam``; in chat the first ten and ``+N more``."""
    shown = list(names[:CHAT_TENANTS]) if chat else list(names)
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" +{more} more" if more else "")


def tenant_label(names: Sequence[str]) -> str:
    """What a title is prefixed with: ``contoso: `` or ``3 tenants: `` (empty without tenants)."""
    if not names:
        return ""
    return f"{names[0]}: " if len(names) == 1 else f"{len(names)} tenants: "


def with_tenants(section: Section, names: Sequence[str]) -> Section:
    """``section`` labelled with the tenants it happened in (unchanged for none)."""
    names = tuple(clean_text(n) for n in names)
    if not names:
        return section
    return replace(section, headline=tenant_label(names) + section.headline, tenants=names)


def digest_title(title: str, sections: Sequence[Section]) -> str:
    """A digest's title, prefixed with its tenant when every change is from the same one."""
    tenants = {s.tenants for s in sections}
    if len(tenants) == 1:
        (names,) = tenants
        if len(names) == 1:
            return tenant_label(names) + title
    return title


REPORT_SAVED_LABEL = "Post-incident report: saved to"


def change_section(change: IssueChange, report: str = "") -> Section:
    """The pieces of the message for one change.

    ``report`` is where its post-incident report was saved (``[pir]``): said in a
    line of its own after what changed.
    """
    issue = change.issue
    lines = [clean_text(x) for x in change_lines(change)]
    if report:
        lines.append(f"{REPORT_SAVED_LABEL} {clean_text(report)}")
    post = change.new_posts[-1] if change.new_posts else None
    impact = issue.impact_description if ChangeKind.NEW in change.kinds else None
    return Section(
        headline=clean_text(message_title(issue)),
        title=clean_text(issue.title),
        lines=tuple(lines),
        facts=tuple(Fact(f.label, clean_text(f.value)) for f in facts(change)),
        url=issue.url,
        notify_type=notify_type(change),
        impact=clean_text(impact),
        post_heading=f"Update from Microsoft ({format_time(post.created)})" if post else "",
        post=post_blocks(post) if post else (),
        issue_id=issue.id,
    )


def subtitle(section: Section) -> str:
    """The title shown under the headline; empty when the headline ends with it (a post's)."""
    return "" if section.headline.endswith(section.title) else section.title


def post_parts(section: Section, limit: int) -> tuple[tuple[Block, ...], Block | None]:
    """The post cut to ``limit``, and the note with the link when it was cut."""
    blocks, cut = shorten_blocks(section.post, limit)
    note = None
    if cut:
        note = Block(
            ("(shortened) ", Link("Read the full update in the admin center", section.url))
        )
    return blocks, note


def more_list(sections: Sequence[Section], link: Callable[[Section], str], budget: int) -> str:
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
