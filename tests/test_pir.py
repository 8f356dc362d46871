"""Post-incident reports: downloaded from a stand-in Graph, saved once, retried, checked."""

from __future__ import annotations

import json
import logging
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch.errors import GraphError, NotFoundError
from m365watch.graph import GraphClient
from m365watch.outputs import pir
from tests.command_line import invoke, write_config
from tests.helpers import resolved_incident
from tests.identity import mock_identity

GRAPH = "https://graph.microsoft.com"
ISSUES = f"{GRAPH}/v1.0/admin/serviceAnnouncement/issues"
SLACK_HOOKS = re.compile(r"https://hooks\.slack\.com/services/.*")
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
DOCX = b"PK\x03\x04\x14\x00\x06\x00word/document.xml..."
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Proxy error</h1></body></html>"


def report_url(issue_id: str) -> str:
    return f"{ISSUES}/{issue_id}/incidentReport"


def graph_client() -> GraphClient:
    return GraphClient(
        graph_endpoint=GRAPH, get_token=lambda deadline: "t0ken", sleep=lambda s: None
    )


# -- the Graph request -----------------------------------------------------------------


def test_graph_returns_the_report_bytes() -> None:
    with responses.RequestsMock() as rsps:
        call = rsps.get(report_url("EX1256020"), body=PDF, content_type="application/pdf")
        assert graph_client().get_incident_report("EX1256020") == PDF
    assert call.calls[0].request.headers["Accept"] == "*/*"
    assert call.calls[0].request.headers["Authorization"] == "Bearer t0ken"


def test_graph_says_not_found_when_there_is_no_report() -> None:
    error = {"error": {"code": "NotFound", "message": "The report doesn't exist."}}
    with responses.RequestsMock() as rsps:
        rsps.get(report_url("EX1256020"), json=error, status=404)
        with pytest.raises(NotFoundError, match="EX1256020 has no post-incident report"):
            graph_client().get_incident_report("EX1256020")


def test_graph_refuses_a_report_over_the_size_cap() -> None:
    with responses.RequestsMock() as rsps:
        rsps.get(report_url("EX1256020"), body=b"%PDF" + b"x" * 2000)
        with pytest.raises(GraphError, match="larger than"):
            graph_client().get_incident_report("EX1256020", max_bytes=1000)


def test_a_50_mb_report_is_refused_by_default() -> None:
    from m365watch.budget import REPORT_MAX_BYTES

    assert REPORT_MAX_BYTES < 50 * 1024 * 1024
    with responses.RequestsMock() as rsps:
        rsps.get(report_url("EX1256020"), body=b"%PDF" + bytes(50 * 1024 * 1024))
        with pytest.raises(GraphError, match="larger than 20 MiB"):
            graph_client().get_incident_report("EX1256020")


# -- recognising what came back -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "extension"),
    [(PDF, ".pdf"), (DOCX, ".docx"), (b"\xd0\xcf\x11\xe0 an old .doc", ".bin")],
    ids=["pdf", "docx", "unknown"],
)
def test_the_type_comes_from_the_first_bytes(data: bytes, extension: str) -> None:
    assert pir.report_extension(data) == extension


@pytest.mark.parametrize(
    "data",
    [HTML_PAGE, b"\n  <html><head><title>Sign in</title>", b"", b'{"error": {"code": "x"}}'],
    ids=["html-error-page", "html-login-page", "empty", "json"],
)
def test_what_is_no_document_is_refused(data: bytes) -> None:
    with pytest.raises(pir.NotAReportError):
        pir.report_extension(data)


# -- keeping them after each poll -----------------------------------------------------------


class FakeReports:
    """Serves reports by issue id: bytes, or an error to raise; counts requests."""

    def __init__(self, answers: dict[str, bytes | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get_incident_report(self, issue_id: str) -> bytes:
        self.asked.append(issue_id)
        answer = self.answers.get(issue_id, NotFoundError(f"no report for {issue_id}"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def pir_change(issue_id: str) -> Any:
    from m365watch.diff import diff_issue
    from m365watch.models import Issue

    before = Issue.from_graph(graph_issue(issue_id, "serviceRestored"))
    after = Issue.from_graph(graph_issue(issue_id, "postIncidentReviewPublished"))
    change = diff_issue(before, after)
    assert change is not None
    return change


def test_reports_are_saved_private_and_named_after_the_issue(tmp_path: Path) -> None:
    source = FakeReports({"EX1256020": PDF, "MO1256311": DOCX})
    changes = [pir_change("EX1256020"), pir_change("MO1256311")]
    saved = pir.keep_reports(tmp_path, changes, source)
    assert [(s.issue_id, s.path.name) for s in saved] == [
        ("EX1256020", "EX1256020.pdf"),
        ("MO1256311", "MO1256311.docx"),
    ]
    assert (tmp_path / "EX1256020.pdf").read_bytes() == PDF
    assert stat.S_IMODE((tmp_path / "MO1256311.docx").stat().st_mode) == 0o600
    # Already saved: never fetched again, even when the change comes round once more.
    assert pir.keep_reports(tmp_path, changes, source) == []
    assert source.asked == ["EX1256020", "MO1256311"]


@pytest.mark.parametrize(
    "failure",
    [GraphError("Microsoft Graph is unavailable (503)"), NotFoundError("no report yet"), HTML_PAGE],
    ids=["graph-error", "not-yet", "html-error-page"],
)
def test_a_failed_download_is_one_warning_and_retried_next_poll(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: bytes | Exception
) -> None:
    source = FakeReports({"EX1256020": failure})
    with caplog.at_level(logging.WARNING):
        assert pir.keep_reports(tmp_path, [pir_change("EX1256020")], source) == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "EX1256020 not saved" in warnings[0]
    assert "trying again next poll" in warnings[0]
    assert list(tmp_path.glob("EX1256020*")) == []
    assert json.loads((tmp_path / pir.PENDING_FILE).read_text()) == {"EX1256020": 1}

    source.answers["EX1256020"] = PDF  # the next poll has no change: the report is still owed
    saved = pir.keep_reports(tmp_path, [], source)
    assert [s.path.name for s in saved] == ["EX1256020.pdf"]
    assert json.loads((tmp_path / pir.PENDING_FILE).read_text()) == {}


def test_a_report_never_published_is_given_up(tmp_path: Path) -> None:
    source = FakeReports({})
    pir.keep_reports(tmp_path, [pir_change("EX1256020")], source)
    for _ in range(pir.MAX_ATTEMPTS + 3):
        pir.keep_reports(tmp_path, [], source)
    assert len(source.asked) == pir.MAX_ATTEMPTS


# -- through the command line -------------------------------------------------------------


def graph_issue(issue_id: str, status: str) -> dict[str, Any]:
    return resolved_incident(issue_id, status)


def poll(config: Path, status: str, report: Any = None, *, sign_in: bool = False) -> Any:
    """One poll of EX1256020 in ``status``; ``report``: the incidentReport answer, if asked."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        if sign_in:
            mock_identity(rsps)
        rsps.get(ISSUES, json={"value": [graph_issue("EX1256020", status)]})
        rsps.post(SLACK_HOOKS, body="ok")
        asked = rsps.get(report_url("EX1256020"), **(report or {"status": 404, "json": {}}))
        result = invoke(config, "-v", "poll")
    result.report_requests = len(asked.calls)
    return result


def test_poll_saves_the_report_after_the_notification(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    config = write_config(tmp_path, extra=f'[pir]\ndirectory = "{reports}"\n')
    assert poll(config, "serviceRestored", sign_in=True).report_requests == 0
    done = poll(config, "postIncidentReviewPublished", {"body": PDF})
    assert done.exit_code == 0, done.output
    assert done.report_requests == 1
    assert (reports / "EX1256020.pdf").read_bytes() == PDF
    assert f"saved the post-incident report of EX1256020 to {reports}/EX1256020.pdf" in done.stderr
    assert poll(config, "postIncidentReviewPublished", {"body": PDF}).report_requests == 0


def test_an_html_page_is_one_warning_the_poll_exit_code_unchanged_then_retried(
    tmp_path: Path,
) -> None:
    reports = tmp_path / "reports"
    config = write_config(tmp_path, extra=f'[pir]\ndirectory = "{reports}"\n')
    poll(config, "serviceRestored", sign_in=True)
    html = {"body": HTML_PAGE, "content_type": "text/html"}
    failed = poll(config, "postIncidentReviewPublished", html)
    assert failed.exit_code == 0, failed.output
    assert "1 message(s) sent" in failed.output  # the notification went out all the same
    assert "WARNING: post-incident report of EX1256020 not saved" in failed.stderr
    assert "an HTML page" in failed.stderr
    assert list(reports.glob("EX1256020.*")) == []
    retried = poll(config, "postIncidentReviewPublished", {"body": DOCX})
    assert (retried.exit_code, retried.report_requests) == (0, 1)
    assert (reports / "EX1256020.docx").read_bytes() == DOCX


def on_demand(config: Path, *args: str, **report: Any) -> Any:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(report_url("EX1256020"), **report)
        return invoke(config, "pir", *args)


def test_pir_command_saves_to_the_file_asked_for(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    target = tmp_path / "out" / "report.pdf"
    result = on_demand(config, "ex1256020", "-o", str(target), body=PDF)
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == PDF
    assert (
        result.output
        == f"Saved the post-incident report of EX1256020 ({len(PDF)} bytes) to {target}\n"
    )


def test_pir_command_defaults_to_the_pir_directory(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra=f'[pir]\ndirectory = "{tmp_path / "kept"}"\n')
    result = on_demand(config, "EX1256020", body=DOCX)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "kept" / "EX1256020.docx").read_bytes() == DOCX


@pytest.mark.parametrize(
    ("args", "report", "code", "message"),
    [
        (["EX1256020"], {"status": 404, "json": {}}, 4, "has no post-incident report"),
        (["EX1256020"], {"body": HTML_PAGE}, 1, "an HTML page instead of a PDF"),
        (["not-an-id"], {"body": PDF}, 2, "is not a service health issue id"),
        (["mc237349"], {"body": PDF}, 2, "mc237349 is a Message center post"),
    ],
    ids=["no-report", "html-page", "bad-id", "message-center-id"],
)
def test_pir_command_exit_codes(
    tmp_path: Path, args: list[str], report: dict[str, Any], code: int, message: str
) -> None:
    config = write_config(tmp_path)
    result = on_demand(config, *args, "-o", str(tmp_path / "r.pdf"), **report)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert not (tmp_path / "r.pdf").exists()


def test_a_poll_that_fails_at_graph_fetches_no_report(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / pir.PENDING_FILE).write_text('{"EX1256020": 1}')
    config = write_config(tmp_path, extra=f'[pir]\ndirectory = "{reports}"\n')
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(ISSUES, status=403, json={"error": {"code": "Forbidden", "message": "no"}})
        asked = rsps.get(report_url("EX1256020"), body=PDF)
        result = invoke(config, "poll")
    assert result.exit_code == 1
    assert len(asked.calls) == 0
    assert list(reports.glob("EX1256020.*")) == []
