"""Graph faults and damaged state files, in-process: exit 1, one line, state untouched.

Each fault case polls once successfully (the baseline), then meets the fault
while Graph has news, then polls again: the news must all arrive. HTTP is
intercepted by `responses` (real MSAL, real Apprise json:// deliveries); the
Graph client's sleep is injected, so retries cost no time and are asserted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses

import m365watch.wiring
from tests.identity import mock_identity
from tests.installation import EXPECTED, FEED_AFTER, FEED_BEFORE
from tests.json_hooks import GRAPH_ISSUES, invoke, mock_hooks, received, write_config


def issue_ids(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(target, title.split("] ", 1)[1].split(" ", 1)[0]) for target, title in calls]


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The Graph client's retry waits, recorded instead of slept."""
    waits: list[float] = []
    real = m365watch.wiring.build_graph

    def build_graph(settings: Any, **options: Any) -> Any:
        return real(settings, sleep=waits.append, **options)

    monkeypatch.setattr(m365watch.wiring, "build_graph", build_graph)
    return waits


@pytest.fixture
def installed(tmp_path: Path, sleeps: list[float]) -> Iterator[Path]:
    """A config whose state holds FEED_BEFORE as its baseline (token cached)."""
    config = write_config(tmp_path)
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_BEFORE})
        assert invoke(config, "poll").exit_code == 0
    yield config


def _timeout(rsps: responses.RequestsMock) -> None:
    rsps.get(GRAPH_ISSUES, body=requests.exceptions.ReadTimeout("read timed out"))


def _truncated_transfer(rsps: responses.RequestsMock) -> None:
    rsps.get(GRAPH_ISSUES, body=requests.exceptions.ChunkedEncodingError("IncompleteRead(512)"))


def _status(
    status: int, body: str = "{}", content_type: str = "application/json", **headers: str
) -> Callable[[responses.RequestsMock], None]:
    def register(rsps: responses.RequestsMock) -> None:
        rsps.get(GRAPH_ISSUES, status=status, body=body, content_type=content_type, headers=headers)

    return register


GRAPH_ERROR = '{"error": {"code": "%s", "message": "%s"}}'
FAULTS = [
    (
        _status(
            429, GRAPH_ERROR % ("TooManyRequests", "Too many requests"), **{"Retry-After": "2.128"}
        ),
        "Error: Microsoft Graph is throttling requests (429 Too Many Requests) after 4 attempts; run again later",
        [2.128, 2.128, 2.128],
    ),
    (
        _status(500, GRAPH_ERROR % ("UnknownError", "Something broke")),
        "Error: Microsoft Graph is unavailable (500 Internal Server Error): Something broke; run again later",
        [1.0],
    ),
    (
        _status(503, GRAPH_ERROR % ("ServiceUnavailable", "Try later")),
        "Error: Microsoft Graph is unavailable (503 Service Unavailable) after 4 attempts; run again later",
        [1.0, 2.0, 4.0],
    ),
    (
        _timeout,
        "Error: Microsoft Graph did not answer within 30s (ReadTimeout from graph.microsoft.com) after 4 attempts",
        [1.0, 2.0, 4.0],
    ),
    (
        _status(200, '{"value": [{"id": "EX1200000", "title": "Users can'),
        "Error: Graph returned a response that is not JSON for /v1.0/admin/serviceAnnouncement/issues (HTTP 200",
        [],
    ),
    (
        _truncated_transfer,
        "Error: cannot reach graph host graph.microsoft.com (ChunkedEncodingError) after 4 attempts",
        [1.0, 2.0, 4.0],
    ),
    (
        _status(
            200,
            "<html><head><title>Sign in to continue</title></head><body>Proxy</body></html>",
            "text/html",
        ),
        "Error: Graph returned a response that is not JSON for /v1.0/admin/serviceAnnouncement/issues (HTTP 200, Content-Type text/html",
        [],
    ),
    (
        _status(401, GRAPH_ERROR % ("InvalidAuthenticationToken", "Access token has expired.")),
        "Error: Graph rejected the access token (401 Unauthorized): check that the tenant and cloud",
        [],
    ),
    (
        _status(403, GRAPH_ERROR % ("Forbidden", "Missing role")),
        "Error: Graph answered 403 Forbidden: grant the application permission ServiceHealth.Read.All",
        [],
    ),
]
FAULT_IDS = [
    "429-fractional",
    "500",
    "503",
    "timeout",
    "truncated-json",
    "truncated-transfer",
    "html-page",
    "401",
    "403",
]


@pytest.mark.parametrize(("register", "message", "waits"), FAULTS, ids=FAULT_IDS)
def test_graph_fault_exits_1_with_one_line_and_the_next_poll_delivers_everything(
    installed: Path,
    sleeps: list[float],
    register: Callable[[responses.RequestsMock], None],
    message: str,
    waits: list[float],
) -> None:
    state = installed.parent / "state" / "state.json"
    before = state.read_bytes(), state.stat().st_mtime_ns
    sleeps.clear()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        register(rsps)
        mock_hooks(rsps)
        failed = invoke(installed, "-q", "poll")
        assert received(rsps) == []
    assert failed.exit_code == 1
    assert failed.output.startswith(message), failed.output
    assert len(failed.output.splitlines()) == 1
    assert sleeps == waits
    assert (state.read_bytes(), state.stat().st_mtime_ns) == before
    # The failure is counted beside the state, not in it.
    health = json.loads((installed.parent / "state" / "state.health.json").read_text())
    assert health["failures"] == 1 and health["toldDown"] == []

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(GRAPH_ISSUES, json={"value": FEED_AFTER})
        mock_hooks(rsps)
        good = invoke(installed, "-q", "poll")
        delivered = issue_ids(received(rsps))
    assert (good.exit_code, good.output) == (0, "")
    assert sorted(delivered) == sorted(EXPECTED)
    health = json.loads((installed.parent / "state" / "state.health.json").read_text())
    assert health["failures"] == 0


@pytest.mark.parametrize(
    "content",
    [
        b'{"meta": {"1": {"schema": 1, "baselineAt": "2026-11-20T13:30:00Z"}}, "issues": {"1": {"id": "EX12',
        b"",
        b"\x00\x00\x00\x00\x00\x00",
        b"\xff\xfe{not json",
        b"[1, 2, 3]",
        b'{"meta": {"1": {"baselineAt": "2026-11-20T13:30:00Z"}}}',
        b'{"meta": {"1": {"schema": 99}}}',
        b'{"meta": "nonsense", "issues": 7}',
    ],
    ids=[
        "truncated",
        "empty",
        "zeros",
        "binary",
        "json-list",
        "no-schema",
        "newer-schema",
        "bad-tables",
    ],
)
def test_damaged_state_is_named_left_untouched_and_graph_is_not_asked(
    tmp_path: Path, content: bytes
) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state" / "state.json"
    state.parent.mkdir(mode=0o700)
    state.write_bytes(content)
    mtime = state.stat().st_mtime_ns
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": FEED_AFTER})
        result = invoke(config, "poll")
        assert len(rsps.calls) == 0
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: state file {state} ")
    assert "upgrade m365watch" in result.output or "cannot be used" in result.output
    assert len(result.output.splitlines()) == 1
    assert (state.read_bytes(), state.stat().st_mtime_ns) == (content, mtime)
    # Not a Graph failure: the watcher does not count it.
    assert not (tmp_path / "state" / "state.health.json").exists()
