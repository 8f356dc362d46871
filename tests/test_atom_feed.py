"""The Atom feed ([feed] path): real polls through the command line, read back with feedparser."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import feedparser
import responses

from tests.command_line import invoke, write_config
from tests.helpers import SLACK_URL, load_json
from tests.identity import mock_identity

GRAPH_ISSUES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/issues"
GRAPH_MESSAGES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/messages"
SLACK_HOOKS = re.compile(r"https://hooks\.slack\.com/services/.*")
ADMIN = "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/"
# Two targets: one message each, but one feed entry per distinct message.
TWO_TARGETS = (
    f'[[notify]]\nname = "ops"\nurl = "{SLACK_URL}"\n\n'
    '[[notify]]\nname = "noc"\nurl = "slack://T1JJ3T3L2/A1BRTD4JD/OtherTokenOfTheNocTeam1"\n'
)


def issue(issue_id: str, status: str, posts: list[tuple[str, str]]) -> dict[str, Any]:
    """A service-health issue as Graph sends it, with (createdDateTime, text) posts."""
    return {
        "id": issue_id,
        "title": f"Users can't reach mailboxes ({issue_id})",
        "service": "Exchange Online",
        "status": status,
        "classification": "incident",
        "isResolved": False,
        "startDateTime": "2026-11-20T13:00:00Z",
        "lastModifiedDateTime": posts[-1][0] if posts else "2026-11-20T13:00:00Z",
        "impactDescription": "Users <b>may</b> be unable to reach mailboxes.",
        "posts": [
            {
                "createdDateTime": when,
                "postType": "regular",
                "description": {"contentType": "html", "content": f"<p>{text}</p>"},
            }
            for when, text in posts
        ],
    }


FIRST = [issue("EX1256020", "investigating", [("2026-11-20T13:05:00Z", "Looking into it.")])]
SECOND = [
    issue(
        "EX1256020",
        "serviceDegradation",
        [("2026-11-20T13:05:00Z", "Looking into it."), ("2026-11-20T14:05:11Z", "Cause found.")],
    )
]
THIRD = [
    *SECOND,
    issue("MO1256311", "investigating", [("2026-11-20T15:30:00Z", "Teams meetings drop.")]),
]


def poll(config: Path, issues: list[dict[str, Any]], *, sign_in: bool = False) -> Any:
    """One poll over ``issues``; its result, with ``sent`` the messages Slack received."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if sign_in:
            mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": issues})
        slack = rsps.post(SLACK_HOOKS, body="ok")
        result = invoke(config, "poll")
    assert result.exit_code == 0, result.output
    result.sent = len(slack.calls)
    return result


def feed_config(tmp_path: Path, max_entries: int | None = None) -> tuple[Path, Path]:
    path = tmp_path / "www" / "m365watch.atom"
    extra = f'[feed]\npath = "{path}"\n'
    if max_entries is not None:
        extra += f"max_entries = {max_entries}\n"
    return write_config(tmp_path, extra=extra, notify=TWO_TARGETS), path


def parsed(path: Path) -> Any:
    feed = feedparser.parse(path.read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def test_feed_holds_one_entry_per_message_with_stable_ids_newest_first(tmp_path: Path) -> None:
    config, path = feed_config(tmp_path)
    poll(config, FIRST, sign_in=True)  # the baseline sends nothing
    assert poll(config, SECOND).sent == 2
    after_second = parsed(path)
    assert [e.id for e in after_second.entries] == [
        "tag:m365watch,2026:EX1256020/status+post/serviceDegradation/2026-11-20T14:05:11Z"
    ]  # two targets, one message: one entry
    entry = after_second.entries[0]
    assert entry.link == ADMIN + "EX1256020"
    assert entry.updated == "2026-11-20T14:05:11+00:00"
    assert entry.content[0].type == "text/html"
    assert "Cause found." in entry.content[0].value
    assert "EX1256020" in entry.title
    assert after_second.feed.id == "tag:m365watch,2026:feed"

    poll(config, THIRD)
    after_third = parsed(path)
    assert [e.id for e in after_third.entries] == [
        "tag:m365watch,2026:MO1256311/new/investigating/2026-11-20T15:30:00Z",
        after_second.entries[0].id,  # kept across polls, with the same id
    ]
    assert after_third.entries[1].content[0].value == entry.content[0].value
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    # Nothing changed: the feed is not rewritten.
    before = path.read_bytes()
    poll(config, THIRD)
    assert path.read_bytes() == before


def test_max_entries_keeps_the_newest(tmp_path: Path) -> None:
    config, path = feed_config(tmp_path, max_entries=1)
    poll(config, FIRST, sign_in=True)
    poll(config, SECOND)
    poll(config, THIRD)
    assert [e.id for e in parsed(path).entries] == [
        "tag:m365watch,2026:MO1256311/new/investigating/2026-11-20T15:30:00Z"
    ]


def test_a_feed_that_cannot_be_written_is_one_warning_and_the_poll_goes_on(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "www"
    blocker.write_text("a file where the feed's folder should be")
    config, _ = feed_config(tmp_path)
    poll(config, FIRST, sign_in=True)
    result = poll(config, SECOND)  # exit code 0 asserted inside
    assert "the Atom feed" in result.stderr and "was not updated" in result.stderr


def test_message_center_posts_sent_are_entries_too(tmp_path: Path) -> None:
    path = tmp_path / "www" / "m365watch.atom"
    config = write_config(tmp_path, extra=f'[feed]\npath = "{path}"\n\n[messages]\n')
    posts = load_json("cli-microsoft365-message-list.json")["value"]
    new = next(p for p in posts if p["id"] == "MC237349")
    for graph_posts, sign_in in (([p for p in posts if p is not new], True), (posts, False)):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            if sign_in:
                mock_identity(rsps)
            rsps.get(GRAPH_ISSUES, json={"value": FIRST})
            rsps.get(GRAPH_MESSAGES, json={"value": graph_posts})
            slack = rsps.post(SLACK_HOOKS, body="ok")
            result = invoke(config, "poll")
        assert result.exit_code == 0, result.output
    assert len(slack.calls) == 1  # MC237349, new
    (entry,) = parsed(path).entries
    assert "MC237349" in entry.title
    assert entry.id.startswith("tag:m365watch,2026:MC237349/message/")
