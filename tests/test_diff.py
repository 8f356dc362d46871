"""Tests for m365watch.diff: what counts as a change between two polls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from m365watch.diff import EVENTS, ChangeKind, IssueChange, diff_issue, diff_issues
from m365watch.models import Issue, parse_issues
from tests.helpers import timeline_steps

NEW, STATUS, POST = ChangeKind.NEW, ChangeKind.STATUS, ChangeKind.POST
CLASSIFICATION, RESOLVED = ChangeKind.CLASSIFICATION, ChangeKind.RESOLVED
REOPENED, PIR = ChangeKind.REOPENED, ChangeKind.PIR

REPO = Path(__file__).resolve().parents[1]


def issue(**overrides: Any) -> Issue:
    """An open Exchange incident with one post; ``overrides`` replace Graph keys."""
    data: dict[str, Any] = {
        "id": "EX1256020",
        "title": "Users can't access their mailboxes",
        "classification": "incident",
        "status": "investigating",
        "service": "Exchange Online",
        "isResolved": False,
        "startDateTime": "2026-11-20T13:42:00Z",
        "lastModifiedDateTime": "2026-11-20T14:05:11.2Z",
        "posts": [post("2026-11-20T14:05:11.2Z", "First")],
    }
    data.update(overrides)
    return Issue.from_graph(data)


def post(created: str, text: str) -> dict[str, Any]:
    return {
        "createdDateTime": created,
        "postType": "regular",
        "description": {"contentType": "text", "content": text},
    }


FIRST = post("2026-11-20T14:05:11.2Z", "First")
SECOND = post("2026-11-20T15:21:40.9720778Z", "Second")
THIRD = post("2026-11-20T16:48:03Z", "Third")


def timeline_feeds() -> list[list[Issue]]:
    feeds = []
    for step in timeline_steps():
        issues, skipped = parse_issues(step["issues"])
        assert skipped == 0
        feeds.append(issues)
    return feeds


def timeline_changes() -> list[tuple[int, IssueChange]]:
    """Every change the demo timeline yields, with its 1-based step number."""
    changes = []
    previous: dict[str, Issue] = {}
    for number, feed in enumerate(timeline_feeds(), start=1):
        changes += [(number, c) for c in diff_issues(previous, feed)]
        previous = {i.id: i for i in feed}
    return changes


# --- the whole demo timeline -------------------------------------------------

# Steps are numbered from 1 as in m365watch/data/demo-timeline.json; step 0 is "nothing seen".
TIMELINE_DIFFS: list[tuple[int, list[tuple[str, frozenset[ChangeKind]]]]] = [
    (1, [("TM1255871", frozenset({NEW})), ("SP1249876", frozenset({NEW, RESOLVED}))]),
    (2, [("EX1256020", frozenset({NEW}))]),
    (3, [("EX1256020", frozenset({STATUS, POST}))]),
    # EX1256020 only moves its lastModifiedDateTime: nothing to say about it.
    (4, [("MO1256311", frozenset({NEW}))]),
    (5, [("EX1256020", frozenset({STATUS, CLASSIFICATION, POST}))]),
    (
        6,
        [
            ("TM1255871", frozenset({STATUS, RESOLVED, POST})),
            ("EX1256020", frozenset({STATUS, POST})),
        ],
    ),
    (7, [("EX1256020", frozenset({STATUS, RESOLVED, POST}))]),
    (8, [("EX1256020", frozenset({STATUS, PIR, POST}))]),
    # The Message center steps (a post published, updated, due) change no issue.
    (9, []),
    (10, []),
    (11, []),
]


def test_timeline_table_covers_every_step() -> None:
    assert [n for n, _ in TIMELINE_DIFFS] == list(range(1, len(timeline_steps()) + 1))


@pytest.mark.parametrize(
    ("step", "expected"), TIMELINE_DIFFS, ids=[f"step{n - 1}-to-{n}" for n, _ in TIMELINE_DIFFS]
)
def test_timeline_diff(step: int, expected: list[tuple[str, frozenset[ChangeKind]]]) -> None:
    feeds = timeline_feeds()
    previous = {i.id: i for i in feeds[step - 2]} if step > 1 else {}
    changes = diff_issues(previous, feeds[step - 1])
    assert [(c.issue.id, c.kinds) for c in changes] == expected


# (step, issue) -> (previous status, new post times) for the changes that are not "new".
TIMELINE_DETAILS: dict[tuple[int, str], tuple[str, list[str]]] = {
    (3, "EX1256020"): ("investigating", ["2026-11-20T15:21:40.972077Z"]),
    (5, "EX1256020"): ("serviceDegradation", ["2026-11-20T16:48:03Z"]),
    (6, "TM1255871"): ("serviceDegradation", ["2026-11-20T18:31:00Z"]),
    (6, "EX1256020"): ("serviceInterruption", ["2026-11-20T18:55:27.51Z"]),
    (7, "EX1256020"): ("restoringService", ["2026-11-20T20:37:00Z"]),
    (8, "EX1256020"): ("serviceRestored", ["2026-11-25T10:02:00Z"]),
}


@pytest.mark.parametrize(
    ("where", "expected"),
    list(TIMELINE_DETAILS.items()),
    ids=[f"step{n}-{i}" for n, i in TIMELINE_DETAILS],
)
def test_timeline_previous_status_and_new_posts(
    where: tuple[int, str], expected: tuple[str, list[str]]
) -> None:
    found = [c for n, c in timeline_changes() if (n, c.issue.id) == where]
    assert len(found) == 1
    change = found[0]
    assert (change.previous_status, [p.key for p in change.new_posts]) == expected


def test_timeline_last_modified_only_is_not_a_change() -> None:
    feeds = timeline_feeds()
    before = {i.id: i for i in feeds[2]}["EX1256020"]
    after = {i.id: i for i in feeds[3]}["EX1256020"]
    assert before.last_modified != after.last_modified
    assert diff_issue(before, after) is None


# --- single issues -----------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, issue(), {NEW}),
        (None, issue(isResolved=True, status="serviceRestored"), {NEW, RESOLVED}),
        (
            None,
            issue(isResolved=True, status="PostIncidentReviewPublished"),
            {NEW, RESOLVED, PIR},
        ),
        (issue(), issue(), None),
        (issue(), issue(lastModifiedDateTime="2026-11-21T00:00:00Z"), None),
        (issue(status="serviceDegradation"), issue(status="ServiceDegradation"), None),
        (issue(status="ServicaOperational"), issue(status="serviceOperational"), None),
        (issue(status="brandNewStatus"), issue(status="BrandNewStatus"), None),
        (issue(status="brandNewStatus"), issue(status="otherNewStatus"), {STATUS}),
        (issue(status="brandNewStatus"), issue(status="investigating"), {STATUS}),
        (issue(), issue(status="serviceDegradation"), {STATUS}),
        (issue(), issue(classification="Advisory"), {CLASSIFICATION}),
        (issue(), issue(posts=[FIRST, SECOND]), {POST}),
        (issue(posts=[FIRST, SECOND]), issue(posts=[SECOND, FIRST]), None),
        (issue(posts=[FIRST, SECOND]), issue(posts=[FIRST]), None),
        (issue(title="Old"), issue(title="New wording"), None),
        (
            issue(status="serviceRestored", isResolved=True),
            issue(status="postIncidentReviewPublished", isResolved=True),
            {STATUS, PIR},
        ),
        (
            issue(status="investigating"),
            issue(status="serviceRestored", isResolved=True, posts=[FIRST, SECOND]),
            {STATUS, RESOLVED, POST},
        ),
        (
            issue(status="serviceRestored", isResolved=True),
            issue(status="serviceDegradation", isResolved=False),
            {STATUS, REOPENED},
        ),
        (
            issue(status="serviceRestored", isResolved=True),
            issue(isResolved=False, status="serviceRestored"),
            {REOPENED},
        ),
    ],
    ids=[
        "new-open",
        "new-already-resolved",
        "new-with-report",
        "identical",
        "last-modified-only",
        "PascalCase-vs-camelCase-same-status",
        "doc-typo-same-status",
        "same-unknown-status-other-casing",
        "two-different-unknown-statuses",
        "unknown-to-known",
        "status",
        "classification",
        "post-added",
        "posts-reordered",
        "post-gone",
        "title-wording-only",
        "report-published",
        "resolved-with-post",
        "reopened-with-status",
        "reopened-only",
    ],
)
def test_diff_issue(
    previous: Issue | None, current: Issue, expected: set[ChangeKind] | None
) -> None:
    change = diff_issue(previous, current)
    if expected is None:
        assert change is None
    else:
        assert change is not None
        assert change.kinds == frozenset(expected)
        assert change.issue == current


def test_new_issue_carries_all_its_posts_and_no_previous_status() -> None:
    current = issue(posts=[SECOND, FIRST])
    change = diff_issue(None, current)
    assert change is not None
    assert change.new_posts == current.posts
    assert (change.previous_status, change.previous_classification) == (None, None)


def test_changed_issue_carries_only_new_posts_and_previous_values() -> None:
    previous = issue(status="ServiceDegradation", classification="advisory")
    current = issue(status="serviceInterruption", posts=[FIRST, SECOND, THIRD])
    change = diff_issue(previous, current)
    assert change is not None
    assert [p.content for p in change.new_posts] == ["Second", "Third"]
    assert change.previous_status == "serviceDegradation"
    assert change.previous_status_raw == "ServiceDegradation"
    assert change.previous_classification == "advisory"
    assert change.escalated is True


@pytest.mark.parametrize(
    ("before", "after", "escalated"),
    [
        ("investigating", "serviceInterruption", True),
        ("serviceDegradation", "restoringService", False),
        ("serviceDegradation", "serviceDegradation", False),
    ],
    ids=["worse", "better", "unchanged"],
)
def test_escalated(before: str, after: str, escalated: bool) -> None:
    change = IssueChange(issue(status=after), frozenset({STATUS}), previous_status=before)
    assert change.escalated is escalated


def test_diff_issues_keeps_feed_order_and_skips_unchanged() -> None:
    previous = {"EX1": issue(id="EX1"), "EX2": issue(id="EX2")}
    current = [issue(id="EX3"), issue(id="EX2", status="serviceDegradation"), issue(id="EX1")]
    changes = diff_issues(previous, current)
    assert [(c.issue.id, c.kinds) for c in changes] == [
        ("EX3", frozenset({NEW})),
        ("EX2", frozenset({STATUS})),
    ]


# --- subscriptions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "events", "wanted"),
    [
        ({NEW}, [], True),
        ({NEW, RESOLVED}, ["resolved"], True),
        ({NEW, RESOLVED}, ["status", "post"], False),
        ({STATUS, POST}, ["post"], True),
        ({PIR, STATUS}, ["pir"], True),
        ({POST}, ["new", "resolved"], False),
        ({REOPENED}, ["reopened"], True),
        ({CLASSIFICATION}, ["classification"], True),
        ({STATUS}, ["watcher"], False),
    ],
    ids=[
        "no-events-means-all",
        "one-of-several-kinds",
        "none-subscribed",
        "post",
        "pir",
        "post-not-subscribed",
        "reopened",
        "classification",
        "watcher-is-not-an-issue-kind",
    ],
)
def test_matches(kinds: set[ChangeKind], events: list[str], wanted: bool) -> None:
    assert IssueChange(issue(), frozenset(kinds)).matches(events) is wanted


def test_events_are_the_kinds_the_message_center_s_and_watcher() -> None:
    assert EVENTS == (
        "new",
        "status",
        "post",
        "classification",
        "resolved",
        "reopened",
        "pir",
        "message-new",
        "message-updated",
        "message-due",
        "watcher",
    )


# --- merging pending changes -------------------------------------------------


def change(
    kinds: set[ChangeKind],
    *,
    status: str = "serviceDegradation",
    resolved: bool = False,
    previous: str | None = "investigating",
    posts: tuple[dict[str, Any], ...] = (),
) -> IssueChange:
    current = issue(status=status, isResolved=resolved, posts=[FIRST, SECOND, THIRD])
    new_posts = Issue.from_graph({"id": "x", "posts": list(posts)}).posts
    return IssueChange(
        issue=current,
        kinds=frozenset(kinds),
        previous_status=previous,
        previous_status_raw=previous,
        previous_classification="incident" if previous else None,
        new_posts=new_posts,
    )


@pytest.mark.parametrize(
    ("first", "later", "kinds", "previous_status", "post_texts"),
    [
        (
            change({STATUS}, status="serviceDegradation", previous="investigating"),
            change(
                {POST}, status="serviceDegradation", previous="serviceDegradation", posts=(SECOND,)
            ),
            {STATUS, POST},
            "investigating",
            ["Second"],
        ),
        (
            change({STATUS}, status="serviceDegradation", previous="investigating"),
            change({STATUS}, status="serviceInterruption", previous="serviceDegradation"),
            {STATUS},
            "investigating",
            [],
        ),
        (
            change(
                {STATUS, POST},
                status="serviceDegradation",
                previous="investigating",
                posts=(SECOND,),
            ),
            change({STATUS}, status="investigating", previous="serviceDegradation"),
            {POST},
            "investigating",
            ["Second"],
        ),
        (
            change({POST}, previous="serviceDegradation", posts=(FIRST, SECOND)),
            change({POST}, previous="serviceDegradation", posts=(SECOND, THIRD)),
            {POST},
            "serviceDegradation",
            ["First", "Second", "Third"],
        ),
        (
            change({STATUS, RESOLVED}, status="serviceRestored", resolved=True),
            change({STATUS, REOPENED}, status="serviceDegradation", previous="serviceRestored"),
            {STATUS, REOPENED},
            "investigating",
            [],
        ),
        (
            change({REOPENED}, resolved=False, previous="serviceDegradation"),
            change({RESOLVED}, resolved=True, previous="serviceDegradation"),
            {RESOLVED},
            "serviceDegradation",
            [],
        ),
        (
            change({NEW}, status="investigating", previous=None, posts=(FIRST,)),
            change(
                {STATUS, POST},
                status="serviceDegradation",
                previous="investigating",
                posts=(SECOND,),
            ),
            {NEW, STATUS, POST},
            "investigating",
            ["First", "Second"],
        ),
    ],
    ids=[
        "kinds-union",
        "earliest-previous-status-kept",
        "status-dropped-when-back-where-it-started",
        "posts-deduplicated-in-order",
        "resolved-then-reopened-is-reopened",
        "reopened-then-resolved-is-resolved",
        "new-stays-new",
    ],
)
def test_merged_with(
    first: IssueChange,
    later: IssueChange,
    kinds: set[ChangeKind],
    previous_status: str,
    post_texts: list[str],
) -> None:
    merged = first.merged_with(later)
    assert merged.kinds == frozenset(kinds)
    assert merged.previous_status == previous_status
    assert [p.content for p in merged.new_posts] == post_texts
    assert merged.issue == later.issue


def test_merged_with_refuses_another_issue() -> None:
    other = replace(change({STATUS}), issue=issue(id="EX999"))
    with pytest.raises(ValueError, match="different issues"):
        change({STATUS}).merged_with(other)


# --- persistence -------------------------------------------------------------


@pytest.mark.parametrize(
    "where_change",
    timeline_changes(),
    ids=[f"step{n}-{c.issue.id}" for n, c in timeline_changes()],
)
def test_to_dict_from_dict_round_trip(where_change: tuple[int, IssueChange]) -> None:
    _, original = where_change
    stored = json.loads(json.dumps(original.to_dict()))
    restored = IssueChange.from_dict(stored)
    # The state file keeps only the new posts; the issue's full post list is not stored.
    assert restored == replace(original, issue=replace(original.issue, posts=()))
    assert restored.key == original.key
    assert restored.to_dict() == stored


def test_from_dict_keeps_raw_previous_status_and_skips_unknown_kinds() -> None:
    stored = {
        "issue": issue().to_graph(with_posts=False),
        "kinds": ["status", "somethingNew"],
        "previousStatus": "ServiceDegradation",
        "previousClassification": "advisory",
        "newPosts": [SECOND],
    }
    restored = IssueChange.from_dict(stored)
    assert restored.kinds == frozenset({STATUS})
    assert (restored.previous_status, restored.previous_status_raw) == (
        "serviceDegradation",
        "ServiceDegradation",
    )
    assert [p.content for p in restored.new_posts] == ["Second"]
    assert restored.issue.posts == ()


# --- keys --------------------------------------------------------------------

KEY_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1])
from helpers import timeline_steps
from m365watch.diff import diff_issues
from m365watch.models import parse_issues
previous = {}
for step in timeline_steps():
    issues, _ = parse_issues(step["issues"])
    for change in diff_issues(previous, issues):
        print(change.key)
    previous = {i.id: i for i in issues}
"""

TIMELINE_KEYS = [
    "TM1255871|new|serviceDegradation|2026-11-19T08:30:00Z",
    "SP1249876|new+resolved|serviceRestored|2026-11-14T11:41:00Z",
    "EX1256020|new|investigating|2026-11-20T14:05:11.2Z",
    "EX1256020|status+post|serviceDegradation|2026-11-20T15:21:40.972077Z",
    "MO1256311|new|investigating|2026-11-20T16:02:00Z",
    "EX1256020|status+post+classification|serviceInterruption|2026-11-20T16:48:03Z",
    "TM1255871|status+post+resolved|serviceRestored|2026-11-20T18:31:00Z",
    "EX1256020|status+post|restoringService|2026-11-20T18:55:27.51Z",
    "EX1256020|status+post+resolved|serviceRestored|2026-11-20T20:37:00Z",
    "EX1256020|status+post+pir|postIncidentReviewPublished|2026-11-25T10:02:00Z",
]


def test_keys_of_the_timeline() -> None:
    assert [c.key for _, c in timeline_changes()] == TIMELINE_KEYS


@pytest.mark.parametrize("seed", ["0", "1", "4242"], ids=["seed-0", "seed-1", "seed-4242"])
def test_keys_are_stable_across_processes(seed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", KEY_SCRIPT, str(REPO / "tests")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.splitlines() == TIMELINE_KEYS


def test_key_does_not_depend_on_kind_insertion_order() -> None:
    a = IssueChange(issue(), frozenset([POST, STATUS, RESOLVED]))
    b = IssueChange(issue(), frozenset([RESOLVED, STATUS, POST]))
    assert a.key == b.key == "EX1256020|status+post+resolved|investigating|-"


def test_a_second_post_with_the_same_time_is_still_new() -> None:
    first = post("2026-11-20T14:05:00Z", "first update")
    second = post("2026-11-20T14:05:00Z", "second update, same second")
    before = issue(posts=[first])
    after = issue(posts=[first, second])
    change = diff_issue(before, after)
    assert change is not None
    assert change.kinds == frozenset({ChangeKind.POST})
    assert [p.content for p in change.new_posts] == ["second update, same second"]
    assert diff_issue(after, after) is None


def test_merging_keeps_two_posts_that_share_a_time() -> None:
    first = issue(posts=[post("2026-11-20T14:05:00Z", "one")])
    second = issue(posts=[post("2026-11-20T14:05:00Z", "two")])
    a = IssueChange(first, frozenset({ChangeKind.POST}), new_posts=first.posts)
    b = IssueChange(second, frozenset({ChangeKind.POST}), new_posts=second.posts)
    assert [p.content for p in a.merged_with(b).new_posts] == ["one", "two"]
    assert [p.content for p in a.merged_with(a).new_posts] == ["one"]
