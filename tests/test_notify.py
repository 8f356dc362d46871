"""Real Apprise delivery: Slack and Teams intercepted by `responses`, email to aiosmtpd."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from m365watch.errors import ConfigError
from m365watch.notify import Notifier, scrub
from m365watch.render import Message
from tests.conftest import SLACK_URL, SLACK_WEBHOOK, TEAMS_ENDPOINT, TEAMS_URL

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
    payload = json.loads(responses.calls[0].request.body)
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
    payload = json.loads(request.body)
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
    from tests.conftest import free_port

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
    ],
    ids=["unknown-scheme", "malformed-slack", "mailto-without-host"],
)
def test_check_rejects_urls_apprise_cannot_load(url: str, secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Notifier({"ops": [url]}).check()
    message = str(caught.value)
    assert "notify target 'ops'" in message
    assert secret not in message


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
