"""Real Apprise delivery: Slack and Teams intercepted by `responses`, email to aiosmtpd."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
import responses

from m365watch.deliver import SendResult
from m365watch.diff import ChangeKind, IssueChange
from m365watch.errors import ConfigError
from m365watch.messages import Message, render_change
from m365watch.models import Issue
from m365watch.notify import Notifier, scrub
from tests.helpers import (
    SLACK_URL,
    SLACK_WEBHOOK,
    TEAMS_ENDPOINT,
    TEAMS_URL,
    body_of,
    json_strings,
    text_of,
    timeline_change,
    timeline_steps,
)

MESSAGE = Message(
    title="[Incident] EX1256020 · Exchange Online: Service degradation",
    text="Users can't reach mail\n\nStatus: Investigating → Service degradation\n\n"
    "Open in the Microsoft 365 admin center: https://admin.microsoft.com/x",
    markdown="**Users can't reach mail**\n\nStatus: Investigating → Service degradation\n\n"
    "[Open in the Microsoft 365 admin center](https://admin.microsoft.com/x)",
    html="<h2>Users can't reach mail</h2><p><a href='https://admin.microsoft.com/x'>Open</a></p>",
    notify_type="failure",
    url="https://admin.microsoft.com/x",
)


@responses.activate
def test_slack_gets_markdown_and_success_needs_ok_body() -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok", status=200)
    result = Notifier({"slack": [SLACK_URL]}, throttle=False).send("slack", MESSAGE)
    assert result.ok, result.reason
    payload = json.loads(body_of(responses.calls[0].request))
    text = json.dumps(payload)
    assert "EX1256020" in text
    assert "Investigating → Service degradation" in payload["attachments"][0]["text"]
    # Slack's own link syntax, made by Apprise from our Markdown link.
    assert "<https://admin.microsoft.com/x|Open in the Microsoft 365 admin center>" in text


@responses.activate
def test_teams_workflows_gets_an_adaptive_card() -> None:
    responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    result = Notifier({"teams": [TEAMS_URL]}, throttle=False).send("teams", MESSAGE)
    assert result.ok, result.reason
    request = responses.calls[0].request
    assert "sig=Sig0123456789abcdefSecret" in (request.url or "")
    payload = json.loads(body_of(request))
    card = payload["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    assert "EX1256020" in json.dumps(card)


def test_email_gets_html_with_subject(smtp_server: Any) -> None:
    handler, port = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
    result = Notifier({"mail": [url]}).send("mail", MESSAGE)
    assert result.ok, result.reason
    [received] = handler.messages()
    assert received["Subject"] == MESSAGE.title
    assert received["To"] == "ops@example.com"
    html = received.get_body(preferencelist=("html",)).get_content()
    assert (
        "<h2>Users can&#x27;t reach mail</h2>" in html or "<h2>Users can't reach mail</h2>" in html
    )


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, "oops"), (404, "no_service"), (200, "invalid_token")],
    ids=["server-error", "gone", "200-but-not-ok"],
)
@responses.activate
def test_slack_failure_is_reported_without_secrets(status: int, body: str) -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body=body, status=status)
    result = Notifier({"slack": [SLACK_URL]}, throttle=False).send("slack", MESSAGE)
    assert not result.ok
    assert result.reason.startswith("slack:")
    for secret in ("TIiajkdnlazkcOXrIdevi7", "A1BRTD4JD", "T1JJ3T3L2"):
        assert secret not in result.reason


def test_dead_smtp_server_fails_that_target_only(smtp_server: Any) -> None:
    from tests.helpers import free_port

    handler, port = smtp_server
    good = f"mailto://127.0.0.1:{port}?from=a@example.com&to=ops@example.com"
    dead = f"mailto://127.0.0.1:{free_port()}?from=a@example.com&to=ops@example.com"
    notifier = Notifier({"good": [good], "dead": [dead]})
    assert notifier.send("dead", MESSAGE).ok is False
    assert notifier.send("good", MESSAGE).ok is True
    assert len(handler.envelopes) == 1


@responses.activate
def test_a_target_fails_unless_all_its_urls_accept() -> None:
    responses.add(responses.POST, SLACK_WEBHOOK, body="ok", status=200)
    responses.add(responses.POST, TEAMS_ENDPOINT, status=500)
    result = Notifier({"both": [SLACK_URL, TEAMS_URL]}, throttle=False).send("both", MESSAGE)
    assert not result.ok
    assert result.reason.startswith("workflows:")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("nosuchscheme://abcSECRET", "abcSECRET"),
        ("slack://onlyonetokenSECRET", "onlyonetokenSECRET"),
        ("mailto://?to=SECRET@example.com", "SECRET"),
        ("slack://T1JJ3T3L2/badSECRET!x/C0FFEE", "badSECRET"),
    ],
    ids=["unknown-scheme", "malformed-slack", "mailto-without-host", "bad-second-token"],
)
def test_check_rejects_urls_apprise_cannot_load(
    url: str, secret: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError) as caught:
        Notifier({"ops": [url]}).check()
    message = str(caught.value)
    assert "notify target 'ops'" in message
    # Apprise's own warning quotes the bad token: it is kept out of the logs and the message.
    assert secret not in message + capsys.readouterr().err + caplog.text


def test_throttle_off_sets_rate_to_zero_and_on_keeps_apprise_default() -> None:
    off = Notifier({"s": [SLACK_URL]}, throttle=False)
    on = Notifier({"s": [SLACK_URL]})
    off.check()
    on.check()
    assert off._apprise_objects("s")[0][0].request_rate_per_sec == 0
    assert on._apprise_objects("s")[0][0].request_rate_per_sec > 0


def test_scrub_removes_urls_and_tokens() -> None:
    line = "Failed to send to https://hooks.slack.com/services/T/B/C token xoxb-1234567890-abcdefghijkl"
    cleaned = scrub(line)
    assert "hooks.slack.com" not in cleaned
    assert "xoxb-1234567890-abcdefghijkl" not in cleaned
    assert cleaned.startswith("Failed to send to")


def test_notifiers_guard_apprise_log_with_one_scrubbing_filter() -> None:
    logger = logging.getLogger("apprise")
    level, filters = logger.level, logger.filters[:]
    logger.filters.clear()
    logger.setLevel(logging.DEBUG)
    try:
        Notifier({"s": [SLACK_URL]})
        Notifier({"t": [TEAMS_URL]})
        assert logger.level == logging.WARNING  # Apprise's DEBUG records carry whole URLs
        assert len(logger.filters) == 1
        record = logger.makeRecord(
            "apprise", logging.WARNING, __file__, 1, "cannot reach %s", (SLACK_WEBHOOK,), None
        )
        assert logger.filter(record)
        assert record.getMessage() == "cannot reach <url>"
    finally:
        logger.filters[:] = filters
        logger.setLevel(level)


# --- What each channel receives, for three moments of the demo incident ---

EX_URL = "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1256020"
TITLE = "Users can't access their mailboxes using Outlook mobile or the new Outlook for Mac"
TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(\s[^>]*)?>")

# (before, after): a new incident, a status change with a new post, the resolution.
SCENARIOS = {
    "new-incident": (None, 4),
    "status-and-post": (1, 2),
    "resolved": (5, 6),
}
EXPECTED: dict[str, dict[str, Any]] = {
    "new-incident": {
        "headline": "[Incident] EX1256020 · Exchange Online: Service interruption",
        "style": "attention",
        "colour": "#D13438",
        "lines": ["New incident"],
        "status": "Service interruption",
        "times": [("Started", "2026-11-20 13:42 UTC"), ("Last update", "2026-11-20 16:48 UTC")],
        "post_start": f"Title: {TITLE}",
        "post_end": "Next update by: Thursday, November 20, 2026, at 7:00 PM UTC",
    },
    "status-and-post": {
        "headline": "[Advisory] EX1256020 · Exchange Online: Service degradation",
        "style": "warning",
        "colour": "#FFB900",
        "lines": ["Status: Investigating → Service degradation", "New update from Microsoft"],
        "status": "Investigating → Service degradation",
        "times": [("Started", "2026-11-20 13:42 UTC"), ("Last update", "2026-11-20 15:21 UTC")],
        "post_start": f"Title: {TITLE}",
        "post_end": "Next update by: Thursday, November 20, 2026, at 5:00 PM UTC",
    },
    "resolved": {
        "headline": "[Incident] EX1256020 · Exchange Online: Service restored",
        "style": "good",
        "colour": "#107C10",
        "lines": [
            "Status: Restoring service → Service restored",
            "Resolved at 2026-11-20 20:15 UTC",
            "New update from Microsoft",
        ],
        "status": "Restoring service → Service restored",
        "times": [
            ("Started", "2026-11-20 13:42 UTC"),
            ("Ended", "2026-11-20 20:15 UTC"),
            ("Last update", "2026-11-20 20:37 UTC"),
        ],
        "post_start": f"Title: {TITLE}",
        "post_end": "Next steps: We're reviewing our change validation procedures. "
        "This is the final update for the event.",
    },
}


def scenario_message(name: str) -> Message:
    before, after = SCENARIOS[name]
    return render_change(timeline_change(before, after, "EX1256020"))


def expected_facts(name: str) -> list[tuple[str, str]]:
    case = EXPECTED[name]
    classification = case["headline"][1:9]
    return [
        ("Service", "Exchange Online"),
        ("Feature", "E-Mail and calendar access"),
        ("Classification", classification),
        ("Status", case["status"]),
        *case["times"],
    ]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@responses.activate
def test_teams_receives_an_adaptive_card(scenario: str) -> None:
    teams = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    message = scenario_message(scenario)
    result = Notifier({"teams": [TEAMS_URL]}, throttle=False).send("teams", message)
    assert result.ok, result.reason
    body = body_of(teams.calls[0].request)
    payload = json.loads(body)
    # Exactly the card m365watch built, through Apprise's plugin.
    assert payload == message.payload("teams")
    case = EXPECTED[scenario]
    card = payload["attachments"][0]["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    header = card["body"][0]
    assert header["style"] == case["style"]
    assert [b["text"] for b in header["items"]] == [case["headline"], TITLE]
    assert card["body"][1]["text"] == "\n\n".join(case["lines"])
    [factset] = [b for b in card["body"] if b["type"] == "FactSet"]
    assert [(f["title"], f["value"]) for f in factset["facts"]] == expected_facts(scenario)
    post = card["body"][-1]["text"]
    assert post.startswith(case["post_start"]) and post.endswith(case["post_end"])
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open in admin center", "url": EX_URL}
    ]
    assert not [s for s in json_strings(card) if TAG.search(s)]
    assert len(body) < 28_000  # Teams' message size limit is about 28 KB


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@responses.activate
def test_slack_receives_mrkdwn_with_a_colour_bar(scenario: str) -> None:
    slack = responses.add(responses.POST, SLACK_WEBHOOK, body="ok", status=200)
    message = scenario_message(scenario)
    result = Notifier({"slack": [SLACK_URL]}, throttle=False).send("slack", message)
    assert result.ok, result.reason
    payload = json.loads(body_of(slack.calls[0].request))
    assert payload == {"attachments": [message.payload("slack")]}
    case = EXPECTED[scenario]
    attachment = payload["attachments"][0]
    assert attachment["color"] == case["colour"]
    assert attachment["fallback"] == case["headline"]
    first, fields, *middle, link = attachment["blocks"]
    assert first["text"]["text"] == (
        f"*{case['headline']}*\n{TITLE}\n\n" + "\n".join(case["lines"])
    )
    assert [f["text"] for f in fields["fields"]] == [
        f"*{label}*\n{value}" for label, value in expected_facts(scenario)
    ]
    post = middle[-1]["text"]["text"]
    assert post.startswith("*Update from Microsoft (")
    assert post.endswith(case["post_end"])
    assert link["text"]["text"] == f"<{EX_URL}|Open in admin center>"
    texts = [b["text"]["text"] for b in attachment["blocks"] if "text" in b]
    assert all(len(t) <= 3000 for t in texts)  # Slack's limit for a section's text
    # No HTML: the only angle brackets are Slack's own <url|label> links.
    assert not [t for t in texts if TAG.search(re.sub(r"<https://[^>|]+\|[^>]*>", "", t))]


def test_slack_new_incident_payload_in_full() -> None:
    message = scenario_message("new-incident")
    assert message.payload("slack") == {
        "color": "#D13438",
        "fallback": "[Incident] EX1256020 · Exchange Online: Service interruption",
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*[Incident] EX1256020 · Exchange Online: Service interruption*\n"
                    f"{TITLE}\n\nNew incident",
                },
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Service*\nExchange Online"},
                    {"type": "mrkdwn", "text": "*Feature*\nE-Mail and calendar access"},
                    {"type": "mrkdwn", "text": "*Classification*\nIncident"},
                    {"type": "mrkdwn", "text": "*Status*\nService interruption"},
                    {"type": "mrkdwn", "text": "*Started*\n2026-11-20 13:42 UTC"},
                    {"type": "mrkdwn", "text": "*Last update*\n2026-11-20 16:48 UTC"},
                ],
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Impact:* Users may be unable to access their mailboxes using "
                    "Outlook mobile or the new Outlook for Mac.",
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Update from Microsoft (2026-11-20 16:48 UTC):*\n"
                    f"Title: {TITLE}\n\n"
                    "User impact: Users can't access their mailboxes using Outlook mobile or "
                    "the new Outlook for Mac.\n\n"
                    "More info: Impact has grown to a significant portion of North America and "
                    "Europe. Outlook on the web and Outlook for Windows are not affected.\n\n"
                    "Current status: We've confirmed a configuration change to the "
                    "authentication infrastructure caused the impact and are reverting it.\n\n"
                    "• Outlook mobile: affected\n• New Outlook for Mac: affected\n\n"
                    "Next update by: Thursday, November 20, 2026, at 7:00 PM UTC",
                },
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{EX_URL}|Open in admin center>"},
            },
        ],
    }


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_email_receives_html_and_a_text_part_with_every_url(
    smtp_server: Any, scenario: str
) -> None:
    handler, port = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
    message = scenario_message(scenario)
    result = Notifier({"mail": [url]}, throttle=False).send("mail", message)
    assert result.ok, result.reason
    [received] = handler.messages()
    case = EXPECTED[scenario]
    assert received["Subject"] == case["headline"]
    assert received.get_content_type() == "multipart/alternative"
    html_part = received.get_body(preferencelist=("html",)).get_content()
    text_part = received.get_body(preferencelist=("plain",)).get_content()
    for label, value in expected_facts(scenario):
        assert f'<b style="display:inline-block;min-width:110px">{label}:</b> {value}</td>' in (
            html_part
        )
    assert f'<a href="{EX_URL}">{EX_URL}</a>' in html_part
    # The text part Apprise derives from the HTML is exactly m365watch's own text rendering.
    assert text_part.replace("\r\n", "\n").strip() == message.text
    lines = message.text.splitlines()
    assert lines[0] == TITLE
    assert lines[2 : 2 + len(case["lines"])] == case["lines"]
    assert f"Open in the Microsoft 365 admin center: {EX_URL}" in lines
    hrefs = {h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html_part)}
    assert hrefs and all(h in text_part for h in hrefs)
    assert not TAG.search(text_part)


def test_email_text_part_writes_out_the_links_of_a_post(smtp_server: Any) -> None:
    handler, port = smtp_server
    url = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
    message = render_change(timeline_change(None, 1, "EX1256020"))
    assert Notifier({"mail": [url]}).send("mail", message).ok
    [received] = handler.messages()
    html_part = received.get_body(preferencelist=("html",)).get_content()
    text_part = received.get_body(preferencelist=("plain",)).get_content()
    assert '<a href="https://outlook.office.com/mail/">Outlook on the web</a>' in html_part
    assert (
        "Users can use Outlook on the web (https://outlook.office.com/mail/) in the meantime."
        in (text_part)
    )
    assert "We’re reviewing service telemetry" in text_part  # &#8217; decoded once


def test_every_demo_message_has_an_email_text_part_equal_to_its_text() -> None:
    from apprise import conversion
    from apprise.common import NotifyFormat

    from m365watch.diff import diff_issues
    from m365watch.messages import render_digest
    from m365watch.models import parse_issues

    steps = timeline_steps()
    messages = []
    for number, step in enumerate(steps):
        before = {i.id: i for i in parse_issues(steps[number - 1]["issues"])[0]} if number else {}
        changes = diff_issues(before, parse_issues(step["issues"])[0])
        messages += [render_change(c) for c in changes]
        if len(changes) > 1:
            messages.append(render_digest(changes))
    assert len(messages) == 12
    # apprise.conversion is unannotated: give convert_between the type it is used at.
    convert_between = cast(
        Callable[[NotifyFormat, NotifyFormat, str], str], conversion.convert_between
    )
    for message in messages:
        assert convert_between(NotifyFormat.HTML, NotifyFormat.TEXT, message.html) == message.text


@responses.activate
def test_a_post_with_mass_mentions_arrives_defused(smtp_server: Any) -> None:
    handler, port = smtp_server
    slack = responses.add(responses.POST, SLACK_WEBHOOK, body="ok")
    teams = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    issue = Issue.from_graph(
        {
            "id": "EX1300000",
            "title": "Mail delays @here",
            "service": "Exchange Online",
            "status": "investigating",
            "classification": "incident",
            "isResolved": False,
            "posts": [
                {
                    "createdDateTime": "2026-11-20T14:00:00Z",
                    "description": {
                        "contentType": "text",
                        "content": "Attention <!channel> and <!here>: <at>Everyone</at> "
                        "@everyone <b>see</b> [this](https://evil.example)",
                    },
                }
            ],
        }
    )
    message = render_change(IssueChange(issue, frozenset({ChangeKind.NEW}), new_posts=issue.posts))
    mail = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
    notifier = Notifier({"all": [SLACK_URL, TEAMS_URL, mail]}, throttle=False)
    assert notifier.send("all", message).ok
    [received] = handler.messages()
    delivered = {
        "slack": json_strings(json.loads(body_of(slack.calls[0].request))),
        "teams": json_strings(json.loads(body_of(teams.calls[0].request))),
        "email": [
            received.get_body(preferencelist=("plain",)).get_content(),
            received.get_body(preferencelist=("html",)).get_content(),
            str(received["Subject"]),
        ],
    }
    for channel, texts in delivered.items():
        joined = "\n".join(texts)
        assert not re.search(r"<!(channel|here)", joined), channel
        assert not re.search(r"<at>", joined, re.IGNORECASE), channel
        assert not re.search(r"(?<!\w)@(everyone|here)", joined), channel
        assert "Everyone" in joined and "everyone" in joined  # still readable
    slack_blocks = json.loads(body_of(slack.calls[0].request))["attachments"][0]["blocks"]
    assert slack_blocks[-2]["text"]["text"].endswith(
        "Attention &lt;\u200b!channel&gt; and &lt;\u200b!here&gt;: &lt;\u200bat&gt;Everyone"
        "&lt;\u200b/at&gt; @\u200beveryone &lt;b&gt;see&lt;/b&gt; [this](<https://evil.example>)"
    )
    teams_card = json.loads(body_of(teams.calls[0].request))["attachments"][0]["content"]
    assert "entities" not in teams_card.get("msteams", {})  # no mention for Teams to resolve


@responses.activate
def test_a_users_own_workflows_template_is_kept(tmp_path: Any) -> None:
    teams = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    template = tmp_path / "card.json"
    template.write_text(
        '{"type": "message", "attachments": [{"contentType": "x", "content": '
        '{"title": "{{app_title}}", "text": "{{app_body}}"}}]}'
    )
    url = f"{TEAMS_URL}?template={template}"
    message = scenario_message("resolved")
    assert Notifier({"teams": [url]}, throttle=False).send("teams", message).ok
    sent = json.loads(body_of(teams.calls[0].request))["attachments"][0]["content"]
    assert sent["title"] == message.title
    assert sent["text"].startswith(f"**{TITLE}**")  # the Markdown flavour


@responses.activate
def test_template_braces_in_a_post_reach_teams_unchanged() -> None:
    teams = responses.add(responses.POST, TEAMS_ENDPOINT, status=202)
    issue = Issue.from_graph(
        {"id": "EX1300001", "title": "Literal {{app_body}} and {{app_title}}", "service": "S"}
    )
    message = render_change(IssueChange(issue, frozenset({ChangeKind.NEW})))
    assert Notifier({"teams": [TEAMS_URL]}, throttle=False).send("teams", message).ok
    assert json.loads(body_of(teams.calls[0].request)) == message.payload("teams")
    assert "Literal {{app_body}} and {{app_title}}" in text_of(teams.calls[0].request)


def test_a_send_that_hangs_times_out_and_its_url_waits_until_it_ends() -> None:
    release = threading.Event()
    answered = []

    def hang(request: Any) -> tuple[int, dict[str, str], str]:
        release.wait(10)
        answered.append(request)
        return 200, {}, "ok"

    with responses.RequestsMock() as rsps:
        rsps.add_callback(responses.POST, SLACK_WEBHOOK, callback=hang)
        notifier = Notifier({"slack": [SLACK_URL]}, throttle=False, send_timeout=0.2)
        started = time.monotonic()
        first = notifier.send("slack", MESSAGE)
        second = notifier.send("slack", MESSAGE)
        took = time.monotonic() - started
        assert first == SendResult(False, "slack: timed out after 0.2 s")
        # Not tried again while the first send still hangs.
        assert second == SendResult(
            False,
            "slack: not tried: an earlier send to it timed out after 0.2 s and has not finished",
        )
        assert took < 1.0
        assert len(rsps.calls) == 0
        release.set()
        # Once the hung send has ended, the URL is tried again.
        until = time.monotonic() + 5
        while not (result := notifier.send("slack", MESSAGE)).ok and time.monotonic() < until:
            time.sleep(0.01)
        assert result.ok, result.reason
        assert len(answered) == 2
