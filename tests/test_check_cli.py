"""`m365watch check` end to end: exit codes and output as a monitoring system reads them.

Live: real MSAL and GraphClient, the identity platform and Graph mocked with
`responses`. Cached: a real TinyDB state file. The clock is fixed through
``m365watch.wiring.utc_now``. The performance data printed is parsed back with a
parser written to the Monitoring Plugins guidelines and nagiosplugin's Range.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from nagiosplugin import Range
from responses import matchers

from m365watch import wiring
from tests.command_line import invoke, write_config
from tests.health_samples import ISSUES, NOW, OVERVIEWS, write_state
from tests.identity import TENANT, aad_error, mock_identity, token_url

GRAPH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
STATES = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}

# 'label'=value[UOM];[warn];[crit];[min];[max], the label quoted when it has spaces.
_PERF = re.compile(
    r"""(?:'(?P<quoted>[^'=]+)'|(?P<label>[^'=\s]+))=(?P<value>-?\d+(?:\.\d+)?)(?P<uom>[a-zA-Z%]*)"""
    r"""(?:;(?P<warn>[^;\s]*))?(?:;(?P<crit>[^;\s]*))?(?:;(?P<min>[^;\s]*))?(?:;(?P<max>[^;\s]*))?"""
)


def parse_perfdata(text: str) -> dict[str, dict[str, Any]]:
    """Every metric of a perfdata string; fails the test on anything it cannot read."""
    metrics: dict[str, dict[str, Any]] = {}
    position = 0
    text = text.strip()
    while position < len(text):
        match = _PERF.match(text, position)
        assert match, f"unreadable perfdata at {text[position:]!r}"
        label = match["quoted"] or match["label"]
        assert label not in metrics, f"{label} twice"
        metrics[label] = {
            "value": float(match["value"]),
            "uom": match["uom"],
            "warn": Range(match["warn"]) if match["warn"] else None,
            "crit": Range(match["crit"]) if match["crit"] else None,
            "min": float(match["min"]) if match["min"] else None,
        }
        position = match.end()
        assert position == len(text) or text[position] == " ", text
        position += 1
    return metrics


def plugin_output(result: Any) -> tuple[str, str, dict[str, dict[str, Any]], list[str]]:
    """(state word, status text, perfdata, long output lines), checking the shape."""
    first, *details = result.stdout.splitlines()
    state = STATES[result.exit_code]
    assert first.startswith(f"M365 {state} - "), first
    text, _, perfdata = first.partition(" | ")
    assert "|" not in text and all("|" not in line for line in details)
    return state, text, parse_perfdata(perfdata), details


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: NOW)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def state_path(config: Path) -> Path:
    return config.parent / "state" / "state.json"


def mock_graph(rsps: responses.RequestsMock, issues: list[Any]) -> None:
    mock_identity(rsps)
    rsps.get(f"{GRAPH}/healthOverviews", json={"value": OVERVIEWS})
    rsps.get(
        f"{GRAPH}/issues",
        json={"value": [i for i in issues if not i["isResolved"]]},
        match=[matchers.query_param_matcher({"$filter": "isResolved eq false"})],
    )


# -- live -----------------------------------------------------------------------------------


def test_live_critical_with_every_open_issue_in_the_long_output(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_graph(rsps, ISSUES)
    result = invoke(config, "check")
    assert result.exit_code == 2
    _, text, perf, details = plugin_output(result)
    assert text.startswith("M365 CRITICAL - 2 incidents, 2 advisories: TM300100 Microsoft Teams")
    assert perf["incidents"] == {"value": 2, "uom": "", "warn": None, "crit": Range("0"), "min": 0}
    assert perf["advisories"] == {"value": 2, "uom": "", "warn": Range("0"), "crit": None, "min": 0}
    assert [d.split()[0] for d in details] == ["TM300100", "EX1256020", "EX1256100", "MO226784"]
    assert details[1] == (
        "EX1256020 incident, Exchange Online, service degradation: Users can't send email - "
        "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1256020"
    )
    assert result.stderr == ""


def test_live_ok_when_nothing_is_open(config: Path, rsps: responses.RequestsMock) -> None:
    mock_graph(rsps, [i for i in ISSUES if i["isResolved"]])
    result = invoke(config, "check")
    assert (result.exit_code, result.stdout) == (
        0,
        "M365 OK - 0 incidents, 0 advisories | incidents=0;;0;0 advisories=0;0;;0\n",
    )


@pytest.mark.parametrize(
    ("args", "code", "incidents", "advisories"),
    [
        (("--classification", "advisory"), 1, 0, 2),
        (("--classification", "INCIDENT"), 2, 2, 0),
        (("--service", "exchange online"), 2, 1, 1),
        (("--service", "365 suite"), 1, 0, 1),
        (("--service", "teams", "--service", "Exchange"), 2, 2, 1),
        (("--ignore", "tm300100", "--ignore", "EX1256020"), 1, 0, 2),
        (("--critical-incidents", "2"), 1, 2, 2),
        (("--critical-incidents", "1", "--warning-advisories", "5"), 2, 2, 2),
        (("--warning-incidents", "5", "--warning-advisories", "5"), 0, 2, 2),
        (("--warning-advisories", "@2:3", "--critical-incidents", "~:"), 1, 2, 2),
        (("--critical-advisories", "1:1", "--critical-incidents", "3"), 2, 2, 2),
    ],
    ids=[
        "advisories-only",
        "incidents-only",
        "one-service",
        "part-of-a-name",
        "two-services",
        "ignored",
        "two-incidents-tolerated",
        "critical-above-one",
        "raised-warnings",
        "inverted",
        "advisories-critical",
    ],
)
def test_live_options(
    config: Path,
    rsps: responses.RequestsMock,
    args: tuple[str, ...],
    code: int,
    incidents: int,
    advisories: int,
) -> None:
    mock_graph(rsps, ISSUES)
    result = invoke(config, "check", *args)
    assert result.exit_code == code, result.stdout
    _, _, perf, _ = plugin_output(result)
    assert (perf["incidents"]["value"], perf["advisories"]["value"]) == (incidents, advisories)


def test_perfdata_carries_the_thresholds_given(config: Path, rsps: responses.RequestsMock) -> None:
    mock_graph(rsps, ISSUES)
    args = (
        "--warning-incidents",
        "1",
        "--critical-incidents",
        "@3:5",
        "--critical-advisories",
        "~:10",
    )
    _, _, perf, _ = plugin_output(invoke(config, "check", *args))
    assert (perf["incidents"]["warn"], perf["incidents"]["crit"]) == (Range("1"), Range("@3:5"))
    assert (perf["advisories"]["warn"], perf["advisories"]["crit"]) == (None, Range("~:10"))


def test_tenant_given_must_be_the_configured_one(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_graph(rsps, ISSUES)
    assert invoke(config, "check", "--tenant", TENANT.upper()).exit_code == 2


def test_a_sign_in_failure_is_unknown(config: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(
        rsps,
        token_status=401,
        token_body=aad_error(7000215, "invalid_client", "Invalid client secret provided."),
    )
    result = invoke(config, "check")
    assert result.exit_code == 3
    assert len(result.stdout.splitlines()) == 1
    assert result.stdout.startswith("M365 UNKNOWN - ")
    assert "Traceback" not in result.output
    assert rsps.calls[-1].request.url == token_url("https://login.microsoftonline.com")


def test_a_graph_failure_is_unknown(config: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(rsps)
    rsps.get(
        f"{GRAPH}/healthOverviews",
        status=403,
        json={"error": {"code": "Forbidden", "message": "Missing role"}},
    )
    result = invoke(config, "check")
    assert result.exit_code == 3
    assert result.stdout.startswith("M365 UNKNOWN - ")
    assert "403" in result.stdout
    assert len(result.stdout.splitlines()) == 1


# -- cached ---------------------------------------------------------------------------------


def test_cached_answers_from_the_state_without_network(config: Path) -> None:
    write_state(state_path(config), ISSUES, age_minutes=12)
    with responses.RequestsMock() as rsps:  # any request would fail the test
        result = invoke(config, "check", "--cached")
        assert not rsps.calls
    assert result.exit_code == 2
    _, text, perf, details = plugin_output(result)
    assert text.endswith("and 1 more (local state, 12m old)")
    assert perf["age"] == {"value": 720, "uom": "s", "warn": None, "crit": None, "min": 0}
    assert (perf["incidents"]["value"], perf["advisories"]["value"]) == (2, 2)
    assert len(details) == 4


def test_cached_ignores_issues_no_longer_in_graph_s_feed(config: Path) -> None:
    write_state(state_path(config), ISSUES, missing=("TM300100", "EX1256020"))
    result = invoke(config, "check", "--cached")
    assert result.exit_code == 1
    assert plugin_output(result)[2]["incidents"]["value"] == 0


@pytest.mark.parametrize(
    ("age_minutes", "max_age", "code"),
    [(12, None, 2), (16, None, 3), (16, "1h", 2), (61, "1h", 3), (2, "90s", 3), (1, "90s", 2)],
    ids=["fresh", "stale-default-15m", "fresh-1h", "stale-1h", "stale-90s", "fresh-90s"],
)
def test_a_stale_state_is_unknown_naming_its_age(
    config: Path, age_minutes: float, max_age: str | None, code: int
) -> None:
    write_state(state_path(config), ISSUES, age_minutes=age_minutes)
    args = ("--max-age", max_age) if max_age else ()
    result = invoke(config, "check", "--cached", *args)
    assert result.exit_code == code, result.stdout
    if code == 3:
        age = {16: "16m", 61: "1h1m", 2: "2m"}[int(age_minutes)]
        assert result.stdout.startswith(f"M365 UNKNOWN - the local state is {age} old,")
        assert "more than --max-age" in result.stdout


def test_a_missing_state_is_unknown(config: Path) -> None:
    result = invoke(config, "check", "--cached")
    assert result.exit_code == 3
    assert result.stdout.startswith("M365 UNKNOWN - there is no local state yet")


def test_a_damaged_state_is_unknown(config: Path) -> None:
    path = state_path(config)
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")
    result = invoke(config, "check", "--cached")
    assert result.exit_code == 3
    assert result.stdout.startswith("M365 UNKNOWN - ")
    assert len(result.stdout.splitlines()) == 1


# -- our own failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--bogus",), "No such option '--bogus'"),
        (("--warning-incidents", "abc"), "'--warning-incidents': 'abc' is not a threshold range"),
        (("--critical-advisories", "20:10"), "is not a threshold range"),
        (("--warning-advisories",), "requires an argument"),
        (("--classification", "outage"), "'outage' is not one of"),
        (("--cached", "--max-age", "soon"), "--max-age must be a duration"),
        (("--cached", "--max-age", "0"), "--max-age must be a duration"),
        (("--ignore", "not-an-id"), "is not a service health issue id"),
        (("--tenant", "fabrikam.onmicrosoft.com"), "--tenant 'fabrikam.onmicrosoft.com' is not"),
        (("--service", "nothing like it"), "matches no service"),
        (("extra",), "unexpected extra argument"),
    ],
    ids=[
        "unknown-option",
        "bad-range",
        "reversed-range",
        "missing-value",
        "bad-classification",
        "bad-max-age",
        "zero-max-age",
        "bad-ignore",
        "other-tenant",
        "no-such-service",
        "extra-argument",
    ],
)
def test_bad_options_are_unknown_3(config: Path, args: tuple[str, ...], says: str) -> None:
    write_state(state_path(config), ISSUES)
    result = invoke(config, "check", "--cached", *args)
    assert result.exit_code == 3, result.output
    assert result.stdout.startswith("M365 UNKNOWN - "), result.stdout
    assert says in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_bad_configuration_is_unknown(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[tenant\n", encoding="utf-8")
    result = invoke(config, "check")
    assert result.exit_code == 3
    assert result.stdout.startswith("M365 UNKNOWN - ")


def test_an_unexpected_error_is_unknown_not_python_s_exit_1(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(wiring, "build_state_store", broken)
    result = invoke(config, "check", "--cached")
    assert (result.exit_code, result.stdout) == (
        3,
        "M365 UNKNOWN - unexpected RuntimeError: boom\n",
    )


def test_help_says_the_exit_codes_are_the_plugin_api() -> None:
    result = invoke(None, "check", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "These exit codes are the Monitoring Plugins API" in text
    for row in ("0 OK:", "1 WARNING:", "2 CRITICAL:", "3 UNKNOWN:"):
        assert row in text


def test_no_answer_within_the_timeout_is_unknown(
    config: Path, rsps: responses.RequestsMock
) -> None:
    never = threading.Event()

    def hang(request: Any) -> Any:
        never.wait(30)  # interrupted by the check's alarm long before
        return (200, {}, '{"value": []}')

    mock_identity(rsps)
    rsps.add_callback(responses.GET, f"{GRAPH}/healthOverviews", callback=hang)
    started = time.monotonic()
    result = invoke(config, "check", "--timeout", "0.2")
    assert time.monotonic() - started < 10
    assert (result.exit_code, result.stdout) == (
        3,
        "M365 UNKNOWN - no answer within --timeout 0.2 s\n",
    )
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
