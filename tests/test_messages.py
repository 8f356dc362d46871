"""Tests for m365watch.messages (and the pieces m365watch.sections gives it): titles,
notify types, and the message of every change of the demo timeline."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from m365watch.diff import ChangeKind, IssueChange, diff_issues
from m365watch.messages import post_text, render_change
from m365watch.models import Issue, parse_issues
from m365watch.sections import (
    FAILURE,
    INFO,
    SUCCESS,
    WARNING,
    change_lines,
    message_title,
    notify_type,
)
from tests.helpers import timeline_steps

NEW, STATUS, POST = ChangeKind.NEW, ChangeKind.STATUS, ChangeKind.POST
CLASSIFICATION, RESOLVED = ChangeKind.CLASSIFICATION, ChangeKind.RESOLVED
REOPENED, PIR = ChangeKind.REOPENED, ChangeKind.PIR

TAG = re.compile(r"</?[a-zA-Z][^>]*>")
ADMIN_URL = "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/"


def issue(**overrides: Any) -> Issue:
    data: dict[str, Any] = {
        "id": "EX1256020",
        "title": "Users can't access their mailboxes",
        "impactDescription": "Users may be unable to access their mailboxes.",
        "classification": "incident",
        "status": "serviceDegradation",
        "service": "Exchange Online",
        "isResolved": False,
        "startDateTime": "2026-11-20T13:42:00Z",
        "lastModifiedDateTime": "2026-11-20T15:21:40.9720778Z",
        "posts": [],
    }
    data.update(overrides)
    return Issue.from_graph(data)


def timeline_changes() -> list[tuple[int, IssueChange]]:
    """Every change the demo timeline yields, with its 1-based step number."""
    changes = []
    previous: dict[str, Issue] = {}
    for number, step in enumerate(timeline_steps(), start=1):
        feed, _ = parse_issues(step["issues"])
        changes += [(number, c) for c in diff_issues(previous, feed)]
        previous = {i.id: i for i in feed}
    return changes


@pytest.mark.parametrize(
    ("content_type", "content", "expected"),
    [
        ("html", "<p>A</p><p>B &amp; C</p>", "A\n\nB & C"),
        ("text", "A\n\n\n\nB &amp; C  ", "A\n\nB & C"),
    ],
    ids=["html-converted", "text-entities-decoded-once"],
)
def test_post_text(content_type: str, content: str, expected: str) -> None:
    parsed = issue(
        posts=[
            {
                "createdDateTime": "2026-11-20T14:05:11Z",
                "description": {"contentType": content_type, "content": content},
            }
        ]
    )
    assert post_text(parsed.posts[0]) == expected


# --- titles and notify types -------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "[Incident] EX1256020 · Exchange Online: Service degradation"),
        (
            {"classification": "Advisory", "status": "ServiceRestored"},
            "[Advisory] EX1256020 · Exchange Online: Service restored",
        ),
        (
            {"status": "postIncidentReviewPublished"},
            "[Incident] EX1256020 · Exchange Online: Post-incident report published",
        ),
        (
            {"classification": "outage", "status": "brandNewStatus"},
            "[Outage] EX1256020 · Exchange Online: brandNewStatus",
        ),
        ({"classification": None, "status": None}, "[Issue] EX1256020 · Exchange Online: Unknown"),
    ],
    ids=["incident", "PascalCase-advisory", "pir", "unknown-values-as-sent", "missing-values"],
)
def test_message_title(overrides: dict[str, Any], expected: str) -> None:
    assert message_title(issue(**overrides)) == expected


@pytest.mark.parametrize(
    ("current", "kinds", "previous_status", "expected"),
    [
        (issue(status="investigating"), {NEW}, None, FAILURE),
        (issue(classification="advisory", status="investigating"), {NEW}, None, WARNING),
        (issue(status="serviceRestored", isResolved=True), {NEW, RESOLVED}, None, SUCCESS),
        (issue(status="serviceInterruption"), {STATUS}, "serviceDegradation", FAILURE),
        (issue(status="serviceInterruption"), {STATUS, POST}, "investigating", FAILURE),
        (
            issue(classification="advisory", status="serviceDegradation"),
            {STATUS},
            "investigating",
            WARNING,
        ),
        (issue(status="restoringService"), {STATUS, POST}, "serviceInterruption", INFO),
        (
            issue(status="serviceRestored", isResolved=True),
            {STATUS, RESOLVED, POST},
            "restoringService",
            SUCCESS,
        ),
        (
            issue(status="postIncidentReviewPublished", isResolved=True),
            {STATUS, PIR, POST},
            "serviceRestored",
            SUCCESS,
        ),
        (issue(), {POST}, None, WARNING),
        (issue(), {CLASSIFICATION}, None, FAILURE),
        (issue(classification="advisory"), {CLASSIFICATION}, None, WARNING),
        (issue(status="serviceDegradation"), {REOPENED, STATUS}, "serviceRestored", FAILURE),
    ],
    ids=[
        "new-incident",
        "new-advisory",
        "new-already-resolved",
        "escalation-of-incident",
        "escalation-with-post",
        "escalation-of-advisory",
        "improvement",
        "resolved",
        "pir",
        "post-only",
        "advisory-became-incident",
        "incident-became-advisory",
        "reopened-incident",
    ],
)
def test_notify_type(
    current: Issue, kinds: set[ChangeKind], previous_status: str | None, expected: str
) -> None:
    change = IssueChange(current, frozenset(kinds), previous_status=previous_status)
    assert notify_type(change) == expected


# --- messages for the whole timeline ------------------------------------------

# (step, issue) -> (notify type, what-changed lines), from m365watch/data/demo-timeline.json.
TIMELINE_MESSAGES: dict[tuple[int, str], tuple[str, list[str]]] = {
    (1, "TM1255871"): (WARNING, ["New advisory"]),
    (1, "SP1249876"): (SUCCESS, ["New incident (already resolved)"]),
    (2, "EX1256020"): (WARNING, ["New advisory"]),
    (3, "EX1256020"): (
        WARNING,
        ["Status: Investigating → Service degradation", "New update from Microsoft"],
    ),
    (4, "MO1256311"): (WARNING, ["New advisory"]),
    (5, "EX1256020"): (
        FAILURE,
        [
            "Status: Service degradation → Service interruption",
            "Reclassified: advisory → incident",
            "New update from Microsoft",
        ],
    ),
    (6, "TM1255871"): (
        SUCCESS,
        [
            "Status: Service degradation → Service restored",
            "Resolved at 2026-11-20 18:30 UTC",
            "New update from Microsoft",
        ],
    ),
    (6, "EX1256020"): (
        INFO,
        ["Status: Service interruption → Restoring service", "New update from Microsoft"],
    ),
    (7, "EX1256020"): (
        SUCCESS,
        [
            "Status: Restoring service → Service restored",
            "Resolved at 2026-11-20 20:15 UTC",
            "New update from Microsoft",
        ],
    ),
    (8, "EX1256020"): (
        SUCCESS,
        [
            "Status: Service restored → Post-incident report published",
            "Post-incident report published",
            "New update from Microsoft",
        ],
    ),
}

TIMELINE_CHANGES = timeline_changes()


def test_timeline_message_table_is_complete() -> None:
    assert [(n, c.issue.id) for n, c in TIMELINE_CHANGES] == list(TIMELINE_MESSAGES)


@pytest.mark.parametrize(
    "where_change", TIMELINE_CHANGES, ids=[f"step{n}-{c.issue.id}" for n, c in TIMELINE_CHANGES]
)
def test_render_timeline_change(where_change: tuple[int, IssueChange]) -> None:
    number, change = where_change
    expected_type, expected_lines = TIMELINE_MESSAGES[(number, change.issue.id)]
    message = render_change(change)
    issue_ = change.issue

    assert message.title == message_title(issue_)
    assert message.notify_type == expected_type
    assert change_lines(change) == expected_lines
    assert message.url == ADMIN_URL + issue_.id

    text_lines = message.text.splitlines()
    markdown_lines = message.markdown.splitlines()
    assert text_lines[0] == issue_.title
    assert markdown_lines[0] == f"**{issue_.title}**"
    assert re.search(f"<h2[^>]*>{re.escape(html.escape(issue_.title))}</h2>", message.html)
    for line in expected_lines:
        assert line in text_lines
        assert line in markdown_lines
        assert html.escape(line) in message.html
    # A transition is written only for a status change (as a line and in the facts).
    transitions = [x for x in text_lines if x.startswith("Status: ") and "→" in x]
    assert bool(transitions) == (STATUS in change.kinds)

    assert text_lines[-1] == f"Open in the Microsoft 365 admin center: {message.url}"
    assert message.markdown.splitlines()[-1] == (
        f"[Open in the Microsoft 365 admin center]({message.url})"
    )
    assert re.search(f"<a href=[\"']{re.escape(message.url)}[\"']", message.html)
    assert TAG.search(message.text) is None
    assert TAG.search(message.markdown) is None

    latest = change.new_posts[-1]
    assert post_text(latest).splitlines()[0] in text_lines
    if NEW in change.kinds:
        assert f"Impact: {issue_.impact_description}" in text_lines
    else:
        assert not any(x.startswith("Impact: ") for x in text_lines)


def test_render_post_links_per_format() -> None:
    number, change = TIMELINE_CHANGES[2]
    assert (number, change.issue.id) == (2, "EX1256020")
    message = render_change(change)
    assert "Outlook on the web (https://outlook.office.com/mail/)" in message.text
    assert "[Outlook on the web](https://outlook.office.com/mail/)" in message.markdown
    assert "We’re reviewing service telemetry" in message.text
    assert "Update from Microsoft (2026-11-20 14:05 UTC):" in message.text
    assert "Started: 2026-11-20 13:42 UTC" in message.text


def test_render_escapes_untrusted_titles() -> None:
    title = "Users *can't* use _Teams_ [beta] <script>x</script>"
    change = IssueChange(issue(title=title), frozenset({NEW}))
    message = render_change(change)
    assert message.markdown.splitlines()[0] == (
        r"**Users \*can't\* use \_Teams\_ \[beta\] \<script\>x\</script\>**"
    )
    assert re.search(
        r"<h2[^>]*>Users \*can&#x27;t\* use _Teams_ \[beta\] &lt;script&gt;x&lt;/script&gt;</h2>",
        message.html,
    )
    assert "<script>" not in message.html
    assert message.text.splitlines()[0] == title


def test_render_shortens_long_posts_with_the_link() -> None:
    long_post = {
        "createdDateTime": "2026-11-20T14:05:11Z",
        "description": {"contentType": "text", "content": "word " * 2000},
    }
    current = issue(posts=[long_post])
    change = IssueChange(current, frozenset({POST}), new_posts=current.posts)
    message = render_change(change)
    for body, link in (
        (message.text, f"(shortened) Read the full update in the admin center ({current.url})"),
        (
            message.markdown,
            f"(shortened) [Read the full update in the admin center]({current.url})",
        ),
    ):
        lines = body.splitlines()
        cut = next(n for n, line in enumerate(lines) if line.endswith("…"))
        assert lines[cut + 2] == link
    assert len(message.text) < 10_000 and len(message.markdown) < 10_000
