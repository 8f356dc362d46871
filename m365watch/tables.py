"""Terminal output of ``status``, ``show`` and ``messages``, drawn with rich.

Imported only by those commands (rich costs ~50 ms to import). Functions
return the finished text; the CLI prints it. Colour only when asked for (the
CLI asks when stdout is a terminal); the layout fits the given width. Text
from Microsoft goes in as ``rich.text.Text``, never as markup, so brackets in
a title cannot restyle the output.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from m365watch.models import Issue, format_time
from m365watch.query import (
    SOURCE_CACHE,
    IssueDetail,
    ServiceStatus,
    StatusQuery,
    StatusReport,
    ago,
    cache_note,
    missing_note,
)
from m365watch.sections import classification_word

if TYPE_CHECKING:  # the Message center's and many tenants' modules load only when drawn
    from m365watch.feeds.messages import ServiceMessage
    from m365watch.message_query import MessageDetail, MessagesReport
    from m365watch.tenant_query import TenantsDetail, TenantsMessages, TenantsStatus

# Below this many columns for titles, each title gets a line of its own instead.
MIN_TITLE_COLUMN = 40
# Cell padding plus the divider between two table columns.
COLUMN_GAP = 3
# The widest a Tenant column gets; a longer name folds onto more lines (names go up to 63).
TENANT_COLUMN = 20


def severity_style(severity: int) -> str:
    """The colour of a status: red when users are hurt, yellow while it is being fixed."""
    if severity >= 4:
        return "bold red"
    if severity == 3:
        return "red"
    if severity >= 1:
        return "yellow"
    return "green"


def render_status(report: StatusReport, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch status`` for people: unhealthy services, then issues."""
    parts: list[RenderableType | _Unwrapped] = []
    if report.source == SOURCE_CACHE:
        parts += [Text(cache_note(report.cached_at, now), style="dim"), Text()]
    unhealthy = report.unhealthy_services
    if unhealthy:
        parts += [
            Text("Services with problems", style="bold"),
            _services_table((None, s) for s in unhealthy),
        ]
    else:
        selected = " selected" if report.query.services else ""
        parts.append(Text(f"All{selected} services healthy.", style="green"))
    if report.issues:
        heading = f"{_issues_heading(report.query)} ({len(report.issues)})"
        parts += [
            Text(),
            Text(heading, style="bold"),
            _issues_table([(None, i) for i in report.issues], now, width),
        ]
    elif unhealthy:
        parts += [Text(), Text(f"No {_issues_heading(report.query).lower()}.")]
    return _to_text(parts, width, color)


def _cache_lines(
    detail: IssueDetail | MessageDetail, now: datetime
) -> list[RenderableType | _Unwrapped]:
    """What ``show --cached`` says first: how old the state is, and since when the item is gone."""
    if detail.source != SOURCE_CACHE:
        return []
    lines: list[RenderableType | _Unwrapped] = [
        Text(cache_note(detail.cached_at, now), style="dim")
    ]
    if detail.missing_since is not None:
        lines.append(Text(missing_note(detail.missing_since, now), style="yellow"))
    return [*lines, Text()]


def render_issue(detail: IssueDetail, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch show`` for people: facts, impact, every post oldest first, the link."""
    issue = detail.issue
    parts: list[RenderableType | _Unwrapped] = _cache_lines(detail, now)
    heading = Text(f"{issue.id} · {issue.service}: ", style="bold")
    heading.append(issue.status_text, style=_status_style(issue))
    parts += [heading, Text(issue.title, style="bold"), Text()]

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    status = Text(issue.status_text, style=_status_style(issue))
    status.append(" (resolved)" if issue.is_resolved else " (open)")
    rows: list[tuple[str, Text]] = [
        ("Classification", Text(classification_word(issue))),
        ("Status", status),
        ("Service", Text(issue.service)),
    ]
    if issue.feature:
        rows.append(("Feature", Text(issue.feature)))
    if issue.feature_group:
        rows.append(("Feature group", Text(issue.feature_group)))
    if issue.origin:
        rows.append(("Origin", Text(issue.origin)))
    rows.append(("Started", Text(_when(issue.start, now))))
    if issue.end is not None:
        rows.append(("Ended", Text(_when(issue.end, now))))
    rows.append(("Last updated", Text(_when(issue.last_modified, now))))
    for label, value in rows:
        facts.add_row(label, value)
    parts.append(facts)
    # A URL broken across lines cannot be copied: it gets a line of its own, never wrapped.
    parts.append(_Unwrapped(Text.assemble(("Admin center", "dim"), "    ", issue.url)))

    if issue.impact_description:
        parts += [Text(), Text("Impact", style="bold"), _prose(issue.impact_description, width)]
    parts.append(Text())
    if detail.posts:
        count = len(detail.posts)
        label = "1 update" if count == 1 else f"{count} updates, oldest first"
        parts.append(Text(f"Updates from Microsoft ({label})", style="bold"))
        for post in detail.posts:
            stamp = format_time(post.created) if post.created else "time unknown"
            kind = f" · {post.post_type}" if post.post_type else ""
            parts += [
                Text(),
                Text(f"{stamp}{kind}", style="bold cyan"),
                _prose(post.text, width),
            ]
    else:
        parts.append(Text("No updates from Microsoft yet.", style="dim"))
    return _to_text(parts, width, color)


def render_messages(report: MessagesReport, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch messages`` for people: posts, newest first, with their act-by dates."""
    parts: list[RenderableType | _Unwrapped] = []
    if report.source == SOURCE_CACHE:
        parts += [Text(cache_note(report.cached_at, now), style="dim"), Text()]
    if not report.messages:
        parts.append(Text("No Message center posts."))
        return _to_text(parts, width, color)
    heading = f"Message center posts, newest first ({len(report.messages)})"
    parts += [
        Text(heading, style="bold"),
        _messages_table([(None, p) for p in report.messages], now, width),
    ]
    return _to_text(parts, width, color)


def render_message(detail: MessageDetail, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch show MC…`` for people: facts, links, details, then the post's text."""
    post = detail.post
    parts: list[RenderableType | _Unwrapped] = _cache_lines(detail, now)
    heading = Text(f"{post.id} · Message center: ", style="bold")
    heading.append(post.category_text, style=_severity_style(post))
    parts += [heading, Text(post.title or "(untitled)", style="bold"), Text()]

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim", no_wrap=True)
    facts.add_column()
    rows: list[tuple[str, Text]] = [
        ("Category", Text(post.category_text)),
        ("Severity", Text(post.severity_text, style=_severity_style(post))),
        ("Major change", Text(_yes_no(post.is_major))),
        ("Services", Text(", ".join(post.services) or "none")),
    ]
    if post.tags:
        rows.append(("Tags", Text(", ".join(post.tags))))
    if post.act_by is not None:
        rows.append(
            ("Act by", Text(_when_either_way(post.act_by, now), style=_act_by_style(post, now)))
        )
    if post.start is not None:
        rows.append(("Published", Text(_when_either_way(post.start, now))))
    if post.end is not None:
        rows.append(("Ends", Text(_when_either_way(post.end, now))))
    rows.append(("Last updated", Text(_when(post.last_modified, now))))
    for label, value in rows:
        facts.add_row(label, value)
    parts.append(facts)
    parts.append(_Unwrapped(Text.assemble(("Admin center", "dim"), "  ", post.url)))

    if post.details:
        # Names Microsoft has not documented (ExternalLink, RoadmapIds…): shown as sent, whole.
        parts += [Text(), Text("Details", style="bold")]
        parts += [
            _Unwrapped(Text.assemble((f"{d.name}:", "dim"), " ", d.value)) for d in post.details
        ]
    parts += [Text(), Text("The post", style="bold")]
    text = detail.text
    parts.append(_prose(text, width) if text else Text("(no text)", style="dim"))
    return _to_text(parts, width, color)


def render_tenants_status(report: TenantsStatus, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch status`` with [[tenants]]: as for one, each row naming its tenant."""
    from m365watch.tenant_query import tenants_cache_note

    parts: list[RenderableType | _Unwrapped] = []
    if report.source == SOURCE_CACHE:
        parts += [Text(tenants_cache_note(report.cached_ats, now), style="dim"), Text()]
    unhealthy = report.unhealthy_services
    count = len(report.answered)
    in_tenants = f"in {count} tenant{'' if count == 1 else 's'}"
    if unhealthy:
        parts += [Text("Services with problems", style="bold"), _services_table(unhealthy)]
    elif count:
        selected = " selected" if report.query.services else ""
        parts.append(Text(f"All{selected} services healthy {in_tenants}.", style="green"))
    issues = report.issues
    if issues:
        heading = f"{_issues_heading(report.query)} ({len(issues)} {in_tenants})"
        parts += [Text(), Text(heading, style="bold"), _issues_table(issues, now, width)]
    elif unhealthy:
        parts += [Text(), Text(f"No {_issues_heading(report.query).lower()}.")]
    return _to_text(parts, width, color) if parts else ""


def render_tenants_messages(
    report: TenantsMessages, *, now: datetime, width: int, color: bool
) -> str:
    """``m365watch messages`` with [[tenants]]: as for one, each row naming its tenant."""
    from m365watch.tenant_query import tenants_cache_note

    parts: list[RenderableType | _Unwrapped] = []
    if report.source == SOURCE_CACHE and report.answered:
        parts += [Text(tenants_cache_note(report.cached_ats, now), style="dim"), Text()]
    posts = report.messages
    if not report.answered:
        return ""
    count = len(report.answered)
    in_tenants = f"in {count} tenant{'' if count == 1 else 's'}"
    if not posts:
        parts.append(Text(f"No Message center posts {in_tenants}."))
        return _to_text(parts, width, color)
    heading = f"Message center posts, newest first ({len(posts)} {in_tenants})"
    parts += [Text(heading, style="bold"), _messages_table(posts, now, width)]
    return _to_text(parts, width, color)


def render_tenants_detail(detail: TenantsDetail, *, now: datetime, width: int, color: bool) -> str:
    """``m365watch show ID`` with [[tenants]]: a heading per tenant that has it, then it whole."""
    from m365watch.message_query import MessageDetail

    pieces = []
    for name, answer in detail.answered:
        pieces.append(_to_text([Rule(Text(name, style="bold"), style="cyan")], width, color))
        if isinstance(answer, MessageDetail):
            pieces.append(render_message(answer, now=now, width=width, color=color))
        else:
            pieces.append(render_issue(answer, now=now, width=width, color=color))
        pieces.append("\n")
    if detail.missing:
        missing = ", ".join(detail.missing)
        note = Text(f"{detail.item_id} is not in: {missing}.", style="dim")
        pieces.append(_to_text([note], width, color))
    return "".join(pieces)


def _messages_table(
    rows: Sequence[tuple[str | None, ServiceMessage]], now: datetime, width: int
) -> Table:
    """Title in its own column when there is room, else on a line under each post.

    With tenants (many [[tenants]]), a Tenant column comes first.
    """
    tenants = any(tenant is not None for tenant, _ in rows)
    lead = ("Tenant",) if tenants else ()
    first = len(lead)  # where the ID is
    cells = [
        (
            *((tenant or "",) if tenants else ()),
            p.id,
            p.category_text,
            ", ".join(p.services) or "none",
            _day(p.last_modified),
            _day(p.act_by) if p.act_by is not None else "",
        )
        for tenant, p in rows
    ]
    headers = (*lead, "ID", "Category", "Services", "Updated", "Act by")
    fixed = [max(cell_len(h), *(cell_len(row[n]) for row in cells)) for n, h in enumerate(headers)]
    fixed[:first] = [min(w, TENANT_COLUMN) for w in fixed[:first]]
    room = width - sum(fixed) - COLUMN_GAP * len(fixed)
    longest = max(cell_len(p.title) for _, p in rows)
    table = _table()
    if room >= min(MIN_TITLE_COLUMN, longest):
        _tenant_columns(table, lead)
        for header in headers[first:]:
            table.add_column(header, no_wrap=True)
        table.add_column("Title", no_wrap=True, overflow="ellipsis", max_width=room)
        for (_, post), row in zip(rows, cells, strict=True):
            table.add_row(
                *(Text(c, style="bold") for c in row[:first]),
                Text(row[first], style="bold"),
                Text(row[first + 1], style=_severity_style(post)),
                Text(row[first + 2]),
                Text(row[first + 3]),
                Text(row[first + 4], style=_act_by_style(post, now)),
                Text(post.title),
            )
        return table
    _tenant_columns(table, lead)
    table.add_column("ID", no_wrap=True)
    table.add_column("Post: category · services · updated · act by")
    for (_, post), row in zip(rows, cells, strict=True):
        line = Text(
            f"{row[first + 1]} · {row[first + 2]} · {row[first + 3]}",
            no_wrap=True,
            overflow="ellipsis",
        )
        if row[first + 4]:
            line.append(" · ")
            line.append(f"act by {row[first + 4]}", style=_act_by_style(post, now))
        title = Text(post.title, no_wrap=True, overflow="ellipsis")
        table.add_row(
            *(Text(c, style="bold") for c in row[:first]),
            Text(row[first], style="bold"),
            Group(line, title),
        )
    return table


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else "unknown"


def _yes_no(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def _severity_style(post: ServiceMessage) -> str:
    return {"critical": "bold red", "high": "red"}.get(post.severity.casefold(), "")


def _act_by_style(post: ServiceMessage, now: datetime) -> str:
    """An act-by date still ahead stands out; one that has passed is dim."""
    from m365watch.message_query import acting_ahead

    return "bold yellow" if acting_ahead(post, now) else "dim"


def _when_either_way(value: datetime, now: datetime) -> str:
    from m365watch.message_query import from_now

    return f"{format_time(value)} ({from_now(value, now)})"


def _issues_heading(query: StatusQuery) -> str:
    kind = {"incident": "incidents", "advisory": "advisories"}.get(
        query.classification or "", "issues"
    )
    if query.include_resolved:
        return f"{kind.capitalize()}, open and resolved"
    return f"Open {kind}"


def _services_table(rows: Iterable[tuple[str | None, ServiceStatus]]) -> Table:
    """One row per service; with a Tenant column first when the rows have tenants."""
    rows = list(rows)
    tenants = any(tenant is not None for tenant, _ in rows)
    table = _table()
    _tenant_columns(table, ("Tenant",) if tenants else ())
    table.add_column("Service")
    table.add_column("Health")
    table.add_column("Incidents", justify="right", no_wrap=True)
    table.add_column("Advisories", justify="right", no_wrap=True)
    for tenant, service in rows:
        cells = [Text(tenant or "", style="bold")] if tenants else []
        table.add_row(
            *cells,
            Text(service.service),
            # Listed with a good health only for its open issues: attention, not "fine" green.
            Text(
                service.health_text,
                style=severity_style(service.severity) if service.severity else "yellow",
            ),
            Text(str(service.open_incidents)),
            Text(str(service.open_advisories)),
        )
    return table


def _issues_table(rows: Sequence[tuple[str | None, Issue]], now: datetime, width: int) -> Table:
    """Title in its own column when there is room, else on a line under each issue.

    With tenants (many [[tenants]]), a Tenant column comes first.
    """
    tenants = any(tenant is not None for tenant, _ in rows)
    lead = ("Tenant",) if tenants else ()
    first = len(lead)  # where the ID is
    cells = [
        (
            *((tenant or "",) if tenants else ()),
            i.id,
            classification_word(i),
            i.service,
            i.status_text,
            ago(i.last_modified, now),
        )
        for tenant, i in rows
    ]
    headers = (*lead, "ID", "Type", "Service", "Status", "Updated")
    fixed = [max(cell_len(h), *(cell_len(row[n]) for row in cells)) for n, h in enumerate(headers)]
    fixed[:first] = [min(w, TENANT_COLUMN) for w in fixed[:first]]
    room = width - sum(fixed) - COLUMN_GAP * len(fixed)
    longest = max(cell_len(i.title) for _, i in rows)
    table = _table()
    if room >= min(MIN_TITLE_COLUMN, longest):
        _tenant_columns(table, lead)
        for header in headers[first:-1]:
            table.add_column(header, no_wrap=True)
        table.add_column("Title", no_wrap=True, overflow="ellipsis", max_width=room)
        table.add_column("Updated", no_wrap=True, justify="right")
        for (_, issue), row in zip(rows, cells, strict=True):
            style = "dim" if issue.is_resolved else ""
            table.add_row(
                *(Text(c, style="bold") for c in row[:first]),
                Text(row[first], style="bold"),
                Text(row[first + 1]),
                Text(row[first + 2]),
                Text(row[first + 3], style=_status_style(issue)),
                Text(issue.title),
                Text(row[first + 4]),
                style=style,
            )
        return table
    _tenant_columns(table, lead)
    table.add_column("ID", no_wrap=True)
    table.add_column("Issue: type · service · status · last update")
    for (_, issue), row in zip(rows, cells, strict=True):
        line = Text(f"{row[first + 1]} · {row[first + 2]} · ", no_wrap=True, overflow="ellipsis")
        line.append(row[first + 3], style=_status_style(issue))
        line.append(f" · {row[first + 4]}")
        title = Text(issue.title, no_wrap=True, overflow="ellipsis")
        table.add_row(
            *(Text(c, style="bold") for c in row[:first]),
            Text(row[first], style="bold"),
            Group(line, title),
            style="dim" if issue.is_resolved else "",
        )
    return table


def _tenant_columns(table: Table, lead: tuple[str, ...]) -> None:
    """The Tenant column, when there is one: at most TENANT_COLUMN wide, longer names folded."""
    for header in lead:
        table.add_column(header, max_width=TENANT_COLUMN, overflow="fold")


def _table() -> Table:
    return Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
    )


def _status_style(issue: Issue) -> str:
    return "green" if issue.is_resolved else severity_style(issue.severity)


def _when(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "unknown"
    return f"{format_time(value)} ({ago(value, now)})"


class _Unwrapped:
    """Text printed as it is: no wrapping and no cropping (long URLs stay whole)."""

    def __init__(self, text: Text) -> None:
        self.text = text


def _prose(text: str, width: int) -> _Unwrapped:
    """Wrap at spaces only: a URL longer than the line stays whole, so it can be copied."""
    lines = []
    for line in text.splitlines():
        indent = "  " if line.startswith("- ") else ""
        wrapped = textwrap.wrap(
            line,
            width=max(width, 20),
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines += wrapped or [""]
    return _Unwrapped(Text("\n".join(lines)))


def _to_text(parts: list[RenderableType | _Unwrapped], width: int, color: bool) -> str:
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=max(width, 20),
        force_terminal=color,
        color_system="auto" if color else None,
        no_color=None if color else True,
        markup=False,
        emoji=False,
        highlight=False,
        legacy_windows=False,
    )
    for part in parts:
        if isinstance(part, _Unwrapped):
            console.print(part.text, soft_wrap=True)
        else:
            console.print(part)
    # rich pads every line to the full width; trailing blanks only get in the way.
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"
