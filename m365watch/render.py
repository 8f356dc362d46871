"""Turn a change into a message people read: pure, standard library only.

Microsoft's post text arrives as HTML or as plain text with blank lines. It is
converted to readable text that keeps every link URL, and each message is
built once as parts, then written as plain text, Markdown and HTML.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from html.parser import HTMLParser

from m365watch.diff import ChangeKind, IssueChange
from m365watch.models import PIR_STATUS, Issue, Post, status_words

# Apprise's notify types, by how good or bad the news is.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"

POST_TEXT_LIMIT = 3000

_BLOCK_TAGS = frozenset(
    [
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
    ]
)
_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_HAS_TAG = re.compile(r"</?[a-zA-Z][^>]*>")


class _TextExtractor(HTMLParser):
    """Collects readable text from HTML, writing out link URLs."""

    def __init__(self, markdown_links: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.markdown_links = markdown_links
        self.out: list[str] = []
        self.skip_depth = 0
        self.link_href: str | None = None
        self.link_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
        elif tag == "a":
            self.link_href = dict(attrs).get("href") or None
            self.link_text = []
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in _BLOCK_TAGS:
            self.out.append("\n\n" if tag not in {"br", "tr"} else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "a":
            self._close_link()
        elif tag in _BLOCK_TAGS and tag not in {"br", "li"}:
            self.out.append("\n\n" if tag not in {"tr"} else "\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        text = re.sub(r"\s+", " ", data)
        if self.link_href is not None:
            self.link_text.append(text)
        else:
            self.out.append(text)

    def _close_link(self) -> None:
        href, text = self.link_href, "".join(self.link_text).strip()
        self.link_href, self.link_text = None, []
        if not href or href.startswith(("javascript:", "#")):
            self.out.append(text)
        elif not text or text == href:
            self.out.append(href)
        elif self.markdown_links:
            self.out.append(f"[{text}]({href})")
        else:
            self.out.append(f"{text} ({href})")

    def result(self) -> str:
        if self.link_href is not None:
            self._close_link()
        return "".join(self.out)


def _tidy(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def html_to_text(content: str, *, markdown_links: bool = False) -> str:
    """Readable text from Microsoft's post HTML (or plain text), keeping link URLs.

    Links become ``text (url)``, or ``[text](url)`` with ``markdown_links``.
    Content without tags keeps its own line breaks; entities are decoded.
    """
    if not _HAS_TAG.search(content):
        return _tidy(html.unescape(content))
    parser = _TextExtractor(markdown_links)
    parser.feed(content)
    parser.close()
    return _tidy(parser.result())


def post_text(post: Post, *, markdown_links: bool = False) -> str:
    """A post's text as readable plain text."""
    if post.content_type == "html":
        return html_to_text(post.content, markdown_links=markdown_links)
    return _tidy(post.content)


def shorten(text: str, limit: int, *, url: str | None = None) -> str:
    """Cut ``text`` to ``limit`` characters at a word boundary, with a clear "…" and the link."""
    if len(text) <= limit:
        return text
    tail = f"… (shortened; full text: {url})" if url else "…"
    room = max(0, limit - len(tail))
    cut = text[:room]
    space = cut.rfind(" ")
    if space > room * 0.6:
        cut = cut[:space]
    return cut.rstrip() + tail


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
    a status getting better = info; anything else = warning.
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


@dataclass(frozen=True)
class Fact:
    """One labelled fact shown in a message."""

    label: str
    value: str


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
class Message:
    """A notification, written once for each kind of channel."""

    title: str
    text: str
    markdown: str
    html: str
    notify_type: str
    url: str


def render_change(change: IssueChange, *, post_limit: int = POST_TEXT_LIMIT) -> Message:
    """The message for one change: title, what changed, impact, the newest post, the link."""
    issue = change.issue
    post = change.new_posts[-1] if change.new_posts else None
    lines = change_lines(change)
    impact = issue.impact_description if ChangeKind.NEW in change.kinds else None

    text = [issue.title, "", *lines]
    md = [f"**{_md_escape(issue.title)}**", "", *[_md_escape(x) for x in lines]]
    if ChangeKind.NEW in change.kinds:
        started = f"Started: {format_time(issue.start)}"
        text.append(started)
        md.append(started)
    if impact:
        text += ["", f"Impact: {impact}"]
        md += ["", f"**Impact:** {_md_escape(impact)}"]
    if post is not None:
        heading = f"Update from Microsoft ({format_time(post.created)}):"
        text += ["", heading, shorten(post_text(post), post_limit, url=issue.url)]
        md += [
            "",
            f"**{heading}**",
            shorten(post_text(post, markdown_links=True), post_limit, url=issue.url),
        ]
    text += ["", f"Open in the Microsoft 365 admin center: {issue.url}"]
    md += ["", f"[Open in the Microsoft 365 admin center]({issue.url})"]

    return Message(
        title=message_title(issue),
        text="\n".join(text).strip(),
        markdown="\n".join(md).strip(),
        html=_html(change, lines, impact, post, post_limit),
        notify_type=notify_type(change),
        url=issue.url,
    )


def _md_escape(text: str) -> str:
    # Keep untrusted text from opening emphasis or links in Markdown channels.
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)


def _html(
    change: IssueChange, lines: list[str], impact: str | None, post: Post | None, limit: int
) -> str:
    issue = change.issue
    esc = html.escape
    parts = [f"<h2>{esc(issue.title)}</h2>"]
    if lines:
        parts.append("<p>" + "<br>".join(esc(x) for x in lines) + "</p>")
    rows = "".join(
        f"<tr><th align='left'>{esc(f.label)}</th><td>{esc(f.value)}</td></tr>"
        for f in facts(change)
    )
    parts.append(f"<table>{rows}</table>")
    if impact:
        parts.append(f"<p><b>Impact:</b> {esc(impact)}</p>")
    if post is not None:
        body = esc(shorten(post_text(post), limit, url=issue.url)).replace("\n", "<br>")
        parts.append(f"<h3>Update from Microsoft ({esc(format_time(post.created))})</h3>")
        parts.append(f"<p>{body}</p>")
    parts.append(
        f"<p><a href='{esc(issue.url)}'>Open in the Microsoft 365 admin center</a>"
        f"<br>{esc(issue.url)}</p>"
    )
    return "\n".join(parts)


# --- watcher messages (issue 5): m365watch reporting on itself ---

WATCHER_DOWN_TITLE = "m365watch cannot reach Microsoft Graph"
WATCHER_UP_TITLE = "m365watch is working again"


def render_watcher_down(reason: str, failures: int, since: datetime | None) -> Message:
    """The one alert sent when polls keep failing: what fails, since when, what to run."""
    first = f"{WATCHER_DOWN_TITLE}: {reason}"
    detail = (
        f"{failures} polls in a row have failed, the first at {format_time(since)}. "
        "Service-health changes are not being watched until this is fixed."
    )
    hint = "Run m365watch doctor on its host to see what is wrong."
    after = "You will get one message when it works again; nothing is lost meanwhile."
    text = "\n\n".join([first, detail, f"{hint} {after}"])
    markdown = "\n\n".join(
        [
            f"**{_md_escape(WATCHER_DOWN_TITLE)}:** {_md_escape(reason)}",
            _md_escape(detail),
            f"Run `m365watch doctor` on its host to see what is wrong. {after}",
        ]
    )
    esc = html.escape
    body_html = "\n".join(
        [
            f"<p><b>{esc(WATCHER_DOWN_TITLE)}:</b> {esc(reason)}</p>",
            f"<p>{esc(detail)}</p>",
            f"<p>Run <code>m365watch doctor</code> on its host to see what is wrong. "
            f"{esc(after)}</p>",
        ]
    )
    return Message(WATCHER_DOWN_TITLE, text, markdown, body_html, FAILURE, "")


def render_watcher_up(since: datetime | None, now: datetime) -> Message:
    """The one message sent when a poll succeeds again after the alert."""
    text = (
        f"m365watch reached Microsoft Graph again at {format_time(now)}, after failing since "
        f"{format_time(since)}. Changes made meanwhile are sent as usual."
    )
    return Message(
        WATCHER_UP_TITLE, text, _md_escape(text), f"<p>{html.escape(text)}</p>", SUCCESS, ""
    )
