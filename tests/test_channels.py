"""What each channel's message says: m365watch.messages and the payloads of m365watch.channels
(no Apprise here)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from m365watch.channels.teams import TEAMS_CARD_MAX_BYTES, payload_size
from m365watch.diff import ChangeKind, IssueChange, diff_issue
from m365watch.messages import render_change, render_digest, render_test
from m365watch.models import Issue, parse_issues
from m365watch.sections import FAILURE, INFO, SUCCESS, WARNING, digest_order, notify_type
from tests.helpers import json_strings, timeline_change, timeline_steps

STEPS = timeline_steps()
ZWSP = "\u200b"


def issue_at(step: int, issue_id: str) -> Issue:
    return {i.id: i for i in parse_issues(STEPS[step]["issues"])[0]}[issue_id]


def change_between(before: int | None, after: int, issue_id: str) -> IssueChange:
    change: IssueChange = timeline_change(before, after, issue_id)
    return change


def issue_with_post(content: str, content_type: str = "html", **fields: Any) -> Issue:
    raw = {
        "id": "EX1300000",
        "title": "Users can't sign in",
        "service": "Exchange Online",
        "status": "serviceDegradation",
        "classification": "incident",
        "isResolved": False,
        "startDateTime": "2026-11-20T13:42:00Z",
        "posts": [
            {
                "createdDateTime": "2026-11-20T14:00:00Z",
                "description": {"contentType": content_type, "content": content},
            }
        ],
        **fields,
    }
    return Issue.from_graph(raw)


def new_change(issue: Issue) -> IssueChange:
    change = diff_issue(None, issue)
    assert change is not None
    return change


@pytest.mark.parametrize(
    ("before", "after", "issue_id", "expected"),
    [
        (None, 4, "EX1256020", FAILURE),  # new incident, open
        (None, 1, "EX1256020", WARNING),  # new advisory
        (1, 2, "EX1256020", WARNING),  # advisory got worse
        (3, 4, "EX1256020", FAILURE),  # advisory became an incident, interruption
        (4, 5, "EX1256020", INFO),  # interruption -> restoring service
        (5, 6, "EX1256020", SUCCESS),  # resolved
        (6, 7, "EX1256020", SUCCESS),  # post-incident report published
        (4, 5, "TM1255871", SUCCESS),  # advisory resolved
        (None, 0, "SP1249876", SUCCESS),  # first seen already resolved
    ],
    ids=[
        "new-incident",
        "new-advisory",
        "advisory-worse",
        "became-incident",
        "improving",
        "resolved",
        "pir",
        "advisory-resolved",
        "new-but-resolved",
    ],
)
def test_severity_maps_to_notify_type(
    before: int | None, after: int, issue_id: str, expected: str
) -> None:
    assert notify_type(change_between(before, after, issue_id)) == expected


def test_post_only_on_an_open_incident_is_a_warning() -> None:
    issue = issue_at(5, "EX1256020")
    change = IssueChange(issue, frozenset({ChangeKind.POST}), "restoringService", None, "incident")
    assert notify_type(change) == WARNING


def test_mentions_in_a_post_are_defused_in_every_flavour() -> None:
    post = (
        "<p>Heads up <!channel> &lt;!here&gt; @everyone <at>Everyone</at> "
        "&lt;at&gt;All&lt;/at&gt;</p>"
    )
    message = render_change(new_change(issue_with_post(post, title="Fix @here <!channel>")))
    flavours = [
        message.title,
        message.text,
        message.markdown,
        message.html,
        *json_strings(message.payload("teams")),
        *json_strings(message.payload("slack")),
    ]
    for text in flavours:
        assert not re.search(r"<(!|@|/?at\b)", text, re.IGNORECASE), text
        assert not re.search(r"(?<!\w)@(everyone|here|channel)", text, re.IGNORECASE), text
    assert f"&lt;{ZWSP}!here&gt; @{ZWSP}everyone" in json.dumps(
        message.payload("slack"), ensure_ascii=False
    )
    assert "entities" not in json.dumps(message.payload("teams"))  # no Teams mention entity


def test_long_post_fits_every_channel_and_says_where_the_rest_is() -> None:
    paragraph = "<p>" + ("The service is recovering in every region. " * 20) + "</p>"
    message = render_change(new_change(issue_with_post(paragraph * 12)))  # ~10 KB of text
    url = "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1300000"
    post_block = message.payload("teams")["attachments"][0]["content"]["body"][-1]["text"]
    assert "…\n\n(shortened) [Read the full update in the admin center](" + url + ")" in post_block
    assert payload_size(message.payload("teams")) <= TEAMS_CARD_MAX_BYTES
    slack_texts = [b["text"]["text"] for b in message.payload("slack")["blocks"] if "text" in b]
    assert all(len(t) <= 3000 for t in slack_texts)
    assert f"(shortened) <{url}|Read the full update in the admin center>" in slack_texts[-2]
    assert f"(shortened) [Read the full update in the admin center]({url})" in message.markdown
    # Email and plain text keep up to 6,000 characters of the post.
    assert f"…\n\n(shortened) Read the full update in the admin center ({url})" in message.text
    assert message.text.count("The service is recovering in every region.") == 139  # of 240


def test_entities_survive_slack_escaping_once() -> None:
    post = "<p>We&#8217;re fixing Q&amp;A &lt;tags&gt;</p>"
    message = render_change(new_change(issue_with_post(post)))
    post_text = message.payload("slack")["blocks"][-2]["text"]["text"]
    assert post_text.endswith("We’re fixing Q&amp;A &lt;tags&gt;")
    assert "We’re fixing Q&A <tags>" in message.text
    assert "We’re fixing Q&amp;A &lt;tags&gt;" in message.html


def test_digest_lists_every_change_most_severe_first() -> None:
    changes = [
        change_between(4, 5, "TM1255871"),  # resolved: success
        change_between(None, 3, "MO1256311"),  # new advisory: warning
        change_between(None, 4, "EX1256020"),  # new incident: failure
    ]
    assert [c.issue.id for c in digest_order(changes)] == ["EX1256020", "MO1256311", "TM1255871"]
    message = render_digest(changes)
    assert message.title == (
        "Microsoft 365 service health: 3 changes (EX1256020, MO1256311, TM1255871)"
    )
    assert message.notify_type == FAILURE
    assert message.issue_ids == ("EX1256020", "MO1256311", "TM1255871")
    for text in (
        message.text,
        message.markdown,
        message.html,
        json.dumps(message.payload("teams")),
    ):
        positions = [text.index(i) for i in message.issue_ids]
        assert positions == sorted(positions)
    slack = json.dumps(message.payload("slack"))
    assert all(i in slack for i in message.issue_ids)
    actions = [
        a["title"]
        for item in message.payload("teams")["attachments"][0]["content"]["body"][1:]
        for element in item["items"]
        if element["type"] == "ActionSet"
        for a in element["actions"]
    ]
    assert actions == ["Open EX1256020", "Open MO1256311", "Open TM1255871"]


def test_a_digest_of_one_is_the_usual_message() -> None:
    change = change_between(1, 2, "EX1256020")
    assert render_digest([change]) == render_change(change)


def test_a_huge_digest_stays_within_teams_and_slack_limits() -> None:
    changes = [
        new_change(issue_with_post("<p>" + "Details. " * 400 + "</p>", id=f"EX{1300000 + n}"))
        for n in range(60)
    ]
    message = render_digest(changes)
    assert payload_size(message.payload("teams")) <= TEAMS_CARD_MAX_BYTES
    assert len(message.payload("slack")["blocks"]) <= 50
    slack = json.dumps(message.payload("slack"))
    assert all(f"EX{1300000 + n}" in slack for n in range(60))


def test_test_message_is_clearly_marked() -> None:
    now = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)
    message = render_test("ops-teams", now, version="1.2.3")
    assert message.title == "[Test] m365watch test notification for ops-teams"
    assert message.notify_type == INFO
    assert message.text.splitlines()[0] == (
        "Test message for the target 'ops-teams': no action is needed."
    )
    assert "Sent: 2026-11-20 21:00 UTC" in message.text
    assert "Sent by: m365watch 1.2.3" in message.text
    heading = message.payload("teams")["attachments"][0]["content"]["body"][0]["items"][0]["text"]
    assert heading == "[Test] m365watch test notification"
    assert message.payload("slack")["blocks"][0]["text"]["text"].startswith(
        "*[Test] m365watch test notification*"
    )
