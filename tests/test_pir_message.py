"""The ``pir`` message says where the post-incident report was saved; email carries it.

Before delivery one quick try (no retries, ``pir.QUICK_SECONDS`` in all) saves the
report; a report that fails or hangs never holds the notification up, and the
after-poll retry saves it later.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

import m365watch.budget
from m365watch.outputs import pir
from tests.command_line import invoke, write_config
from tests.helpers import SLACK_URL, TEAMS_ENDPOINT, TEAMS_URL, resolved_incident
from tests.identity import mock_identity
from tests.loopback import FakeMicrosoft

GRAPH = "https://graph.microsoft.com"
ISSUES = f"{GRAPH}/v1.0/admin/serviceAnnouncement/issues"
SLACK_HOOKS = re.compile(r"https://hooks\.slack\.com/services/.*")
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
SAVED_LINE = "Post-incident report: saved to"


def graph_issue(status: str) -> dict[str, Any]:
    return resolved_incident("EX1256020", status)


def notify_blocks(port: int) -> str:
    mail = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
    return "".join(
        f'[[notify]]\nname = "{name}"\nurl = "{url}"\n'
        for name, url in (("slack", SLACK_URL), ("teams", TEAMS_URL), ("mail", mail))
    )


def test_the_report_is_saved_before_delivery_named_in_chat_and_attached_to_email(
    tmp_path: Path, smtp_server: Any
) -> None:
    handler, port = smtp_server
    reports = tmp_path / "reports"
    config = write_config(
        tmp_path, extra=f'[pir]\ndirectory = "{reports}"\n', notify=notify_blocks(port)
    )
    saved = reports / "EX1256020.pdf"
    on_disk_when_sent: list[bool] = []

    def accept(request: Any) -> tuple[int, dict[str, str], str]:
        on_disk_when_sent.append(saved.is_file())
        return 200, {}, "ok"

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(ISSUES, json={"value": [graph_issue("serviceRestored")]})
        assert invoke(config, "poll").exit_code == 0  # the baseline: nothing sent
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(ISSUES, json={"value": [graph_issue("postIncidentReviewPublished")]})
        asked = rsps.get(f"{ISSUES}/EX1256020/incidentReport", body=PDF)
        slack = rsps.add_callback(responses.POST, SLACK_HOOKS, callback=accept)
        teams = rsps.add_callback(responses.POST, TEAMS_ENDPOINT, callback=accept)
        result = invoke(config, "-v", "poll")
    assert result.exit_code == 0, result.output
    assert len(asked.calls) == 1  # saved before delivery: the after-poll step asks no more
    assert on_disk_when_sent == [True, True]
    assert saved.read_bytes() == PDF
    line = f"{SAVED_LINE} {saved}"
    slack_payload = json.loads(slack.calls[0].request.body or b"{}")
    assert line in json.dumps(slack_payload)
    teams_payload = json.loads(teams.calls[0].request.body or b"{}")
    assert line in json.dumps(teams_payload)
    [mail] = handler.messages()
    assert line in mail.get_body(preferencelist=("plain",)).get_content()
    assert line in mail.get_body(preferencelist=("html",)).get_content()
    [attached] = list(mail.iter_attachments())
    assert attached.get_filename() == "EX1256020.pdf"
    assert attached.get_content() == PDF


def test_chat_and_email_get_no_line_and_no_attachment_without_pir(
    tmp_path: Path, smtp_server: Any
) -> None:
    handler, port = smtp_server
    config = write_config(tmp_path, notify=notify_blocks(port))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(ISSUES, json={"value": [graph_issue("serviceRestored")]})
        invoke(config, "poll")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(ISSUES, json={"value": [graph_issue("postIncidentReviewPublished")]})
        asked = rsps.get(f"{ISSUES}/EX1256020/incidentReport", body=PDF)
        slack = rsps.post(SLACK_HOOKS, body="ok")
        rsps.post(TEAMS_ENDPOINT, status=202)
        result = invoke(config, "poll")
    assert result.exit_code == 0, result.output
    assert len(asked.calls) == 0
    assert SAVED_LINE not in str(slack.calls[0].request.body)
    [mail] = handler.messages()
    assert list(mail.iter_attachments()) == []
    assert "Post-incident report published" in mail.get_body(("plain",)).get_content()


# -- a report that hangs: against the loopback Graph ------------------------------------------

QUICK = 1.5  # the quick try's limit, in these tests
# The poll's Graph limit (the after-poll download's too): waiting that long before
# sending would fail the test.
FETCH = 6.0
MARGIN = 2.5  # signing in, Apprise, a slow machine


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMicrosoft]:
    monkeypatch.setattr(pir, "QUICK_SECONDS", QUICK)
    monkeypatch.setattr(m365watch.budget, "FETCH_SECONDS", FETCH)
    folder = tmp_path / "loopback"
    folder.mkdir()
    with FakeMicrosoft(folder).start() as server:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_bundle))
        yield server


@pytest.mark.parametrize("failure", ["hangs", "missing"])
def test_a_report_that_hangs_or_fails_never_delays_the_message_and_is_saved_later(
    tmp_path: Path, fake: FakeMicrosoft, failure: str
) -> None:
    reports = tmp_path / "reports"
    config = tmp_path / "config.toml"
    config.write_text(
        fake.config_text(
            tmp_path / "state" / "state.json",
            notify=f'[[notify]]\nname = "hook"\nurl = "{fake.hook_url("ops")}"\n',
            extra=f'[pir]\ndirectory = "{reports}"\n',
        )
    )
    config.chmod(0o600)
    fake.issues = [graph_issue("serviceRestored")]
    assert invoke(config, "poll").exit_code == 0

    fake.issues = [graph_issue("postIncidentReviewPublished")]
    if failure == "hangs":
        fake.reports["EX1256020"] = PDF
        fake.report_delay = 30.0  # past both limits: never answered in time
    started = time.monotonic()
    result = invoke(config, "-v", "poll")
    assert result.exit_code == 0, result.output
    [sent_at] = fake.hook_times["ops"]
    assert sent_at - started < QUICK + MARGIN
    [message] = fake.hooks["ops"]
    assert "Post-incident report published" in message["message"]
    assert SAVED_LINE not in message["message"]
    assert "not saved before sending" in result.stderr
    assert list(reports.glob("EX1256020.*")) == []

    fake.report_delay = 0.0
    fake.reports["EX1256020"] = PDF
    later = invoke(config, "-v", "poll")  # nothing new to send: only the after-poll retry
    assert later.exit_code == 0, later.output
    assert (reports / "EX1256020.pdf").read_bytes() == PDF
    assert len(fake.hooks["ops"]) == 1
