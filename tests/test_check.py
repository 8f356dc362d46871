"""The monitoring plugin's judgement: threshold ranges, states, the status line, perfdata.

In-process on the shared samples (tests/health_samples.py); the command line end to
end is tests/test_check_cli.py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from nagiosplugin import Range

from m365watch.check import (
    DEFAULT_ADVISORIES,
    DEFAULT_INCIDENTS,
    CheckQuery,
    PluginState,
    Thresholds,
    judge,
    parse_range,
)
from m365watch.errors import ConfigError
from m365watch.models import Issue, ServiceHealth
from m365watch.query import StatusQuery, build_status
from tests.health_samples import ISSUES, NOW, OVERVIEWS, open_issue

INF = math.inf

# (range, value, alerts): the Monitoring Plugins guidelines' table, ends included.
RANGE_CASES = [
    ("10", -1, True),
    ("10", 0, False),
    ("10", 10, False),
    ("10", 11, True),
    ("10:", 9, True),
    ("10:", 10, False),
    ("10:", 10**9, False),
    ("~:10", -(10**9), False),
    ("~:10", 10, False),
    ("~:10", 11, True),
    ("10:20", 9, True),
    ("10:20", 10, False),
    ("10:20", 20, False),
    ("10:20", 21, True),
    ("@10:20", 9, False),
    ("@10:20", 10, True),
    ("@10:20", 20, True),
    ("@10:20", 21, False),
    ("0", 0, False),
    ("0", 1, True),
    ("@0", 0, True),
    ("@0", 1, False),
    ("~:", 10**9, False),
    ("1.5", 1, False),
    ("1.5", 2, True),
    (".5:", 0, True),
    ("+2:3", 2, False),
    (" 3 ", 4, True),
]


@pytest.mark.parametrize(
    ("spec", "value", "alerts"), RANGE_CASES, ids=[f"{s.strip()}~{v}" for s, v, _ in RANGE_CASES]
)
def test_range_semantics(spec: str, value: int, alerts: bool) -> None:
    assert (not parse_range(spec).match(value)) is alerts


@pytest.mark.parametrize(
    ("spec", "start", "end", "invert"),
    [
        ("10", 0, 10, False),
        ("10:", 10, INF, False),
        ("~:10", -INF, 10, False),
        ("10:20", 10, 20, False),
        ("@10:20", 10, 20, True),
        ("-5:-1", -5, -1, False),
    ],
    ids=["end", "start", "minus-infinity", "both", "inverted", "negative"],
)
def test_range_bounds(spec: str, start: float, end: float, invert: bool) -> None:
    parsed = parse_range(spec)
    assert (parsed.start, parsed.end, parsed.invert) == (start, end, invert)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " ",
        "@",
        ":",
        "abc",
        "10:20:30",
        "20:10",
        "1e3",
        "nan",
        "inf",
        "~",
        "10:~",
        "1_000",
        "@@1",
        "10;20",
        "9" * 60,
        "5 :6",
    ],
    ids=repr,
)
def test_bad_ranges_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="is not a threshold range"):
        parse_range(spec)


def report(
    items: list[Any], services: tuple[str, ...] = (), classification: str | None = None
) -> Any:
    issues = [Issue.from_graph(i) for i in items]
    overviews = [ServiceHealth.from_graph(o) for o in OVERVIEWS]
    query = StatusQuery(services=services, classification=classification)
    return build_status(overviews, issues, query, now=NOW, source="graph")


def thresholds(warning: str | None = None, critical: str | None = None) -> Thresholds:
    return Thresholds(
        warning=parse_range(warning) if warning else None,
        critical=parse_range(critical) if critical else None,
    )


INCIDENT = open_issue("EX1", "Exchange Online", "serviceDegradation", "incident", title="Mail")
ADVISORY = open_issue("EX2", "Exchange Online", "investigating", "advisory", title="Slow")
ADVISORY_2 = open_issue("TM3", "Microsoft Teams", "investigating", "advisory", title="Chat")
RESOLVED = {**INCIDENT, "id": "EX9", "isResolved": True, "status": "serviceRestored"}

# (issues, incident thresholds, advisory thresholds, state)
STATE_CASES: list[tuple[str, list[Any], Thresholds, Thresholds, PluginState]] = [
    ("none", [], DEFAULT_INCIDENTS, DEFAULT_ADVISORIES, PluginState.OK),
    ("resolved-only", [RESOLVED], DEFAULT_INCIDENTS, DEFAULT_ADVISORIES, PluginState.OK),
    ("advisory", [ADVISORY], DEFAULT_INCIDENTS, DEFAULT_ADVISORIES, PluginState.WARNING),
    ("incident", [INCIDENT], DEFAULT_INCIDENTS, DEFAULT_ADVISORIES, PluginState.CRITICAL),
    ("both", [INCIDENT, ADVISORY], DEFAULT_INCIDENTS, DEFAULT_ADVISORIES, PluginState.CRITICAL),
    (
        "incident-tolerated",
        [INCIDENT],
        thresholds(warning="0", critical="1"),
        DEFAULT_ADVISORIES,
        PluginState.WARNING,
    ),
    (
        "warning-only-replaces-default-critical",
        [INCIDENT, {**INCIDENT, "id": "EX3"}],
        thresholds(warning="1"),
        DEFAULT_ADVISORIES,
        PluginState.WARNING,
    ),
    (
        "advisories-two-allowed",
        [ADVISORY, ADVISORY_2],
        DEFAULT_INCIDENTS,
        thresholds(warning="2"),
        PluginState.OK,
    ),
    (
        "advisories-critical-above-one",
        [ADVISORY, ADVISORY_2],
        DEFAULT_INCIDENTS,
        thresholds(warning="0", critical="1"),
        PluginState.CRITICAL,
    ),
    (
        "inverted-alerts-inside",
        [ADVISORY],
        DEFAULT_INCIDENTS,
        thresholds(critical="@1:5"),
        PluginState.CRITICAL,
    ),
    (
        "at-least-one-expected",
        [],
        thresholds(warning="1:"),
        DEFAULT_ADVISORIES,
        PluginState.WARNING,
    ),
]


@pytest.mark.parametrize(
    ("items", "incidents", "advisories", "state"),
    [c[1:] for c in STATE_CASES],
    ids=[c[0] for c in STATE_CASES],
)
def test_states(
    items: list[Any], incidents: Thresholds, advisories: Thresholds, state: PluginState
) -> None:
    query = CheckQuery(incidents=incidents, advisories=advisories)
    result = judge(report(items), query)
    assert result.state is state
    assert result.exit_code == state.value
    assert result.lines()[0].startswith(f"M365 {state.name} - ")


def test_the_status_line_names_the_worst_few_and_counts_the_rest() -> None:
    result = judge(report(ISSUES), CheckQuery())
    first, *details = result.lines()
    assert first == (
        "M365 CRITICAL - 2 incidents, 2 advisories: TM300100 Microsoft Teams (service "
        "interruption), EX1256020 Exchange Online (service degradation), EX1256100 Exchange "
        "Online (investigating) and 1 more | incidents=2;;0;0 advisories=2;0;;0"
    )
    assert [d.split()[0] for d in details] == ["TM300100", "EX1256020", "EX1256100", "MO226784"]
    assert all("https://admin.microsoft.com/" in d for d in details)


def test_ok_says_so() -> None:
    assert judge(report([]), CheckQuery()).lines() == [
        "M365 OK - 0 incidents, 0 advisories | incidents=0;;0;0 advisories=0;0;;0"
    ]


def test_ignored_issues_are_left_out_and_listed() -> None:
    result = judge(report(ISSUES), CheckQuery(), ignored=frozenset({"TM300100", "EX1256020"}))
    assert result.state is PluginState.WARNING
    assert result.details[-1] == "Ignored: EX1256020, TM300100"
    assert not any(d.startswith(("TM300100", "EX1256020")) for d in result.details)


def test_ignore_ids_are_case_insensitive_and_checked() -> None:
    assert CheckQuery(ignore=("tm300100 ",)).ignored() == {"TM300100"}
    with pytest.raises(ConfigError, match="not a service health issue id"):
        CheckQuery(ignore=("not an id",)).ignored()


def test_a_pipe_in_a_title_cannot_start_the_perfdata() -> None:
    piped = {**INCIDENT, "title": "Mail | calendar\nbroken", "service": "Exchange | Online"}
    lines = judge(report([piped]), CheckQuery()).lines()
    assert lines[0].count("|") == 1
    assert all("|" not in line and "\n" not in line for line in lines[1:])


def test_thresholds_given_show_in_the_perfdata() -> None:
    query = CheckQuery(
        incidents=thresholds(warning="1", critical="@3:5"),
        advisories=thresholds(critical="~:10"),
    )
    perfdata = judge(report([]), query).lines()[0].split(" | ")[1]
    assert perfdata == "incidents=0;1;@3:5;0 advisories=0;;~:10;0"


def test_default_thresholds_are_any_open_issue() -> None:
    assert Thresholds(critical=Range("0")) == DEFAULT_INCIDENTS
    assert Thresholds(warning=Range("0")) == DEFAULT_ADVISORIES
    assert Thresholds.of(None, None, default=DEFAULT_INCIDENTS) is DEFAULT_INCIDENTS
    assert Thresholds.of(Range("2"), None, default=DEFAULT_INCIDENTS) == Thresholds(
        warning=Range("2")
    )


def test_the_readme_example_is_what_check_prints() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A check for Nagios, Icinga, Checkmk", 1)[1]
    example = section.split("```\n", 2)[1]
    exchange = [i for i in ISSUES if i["id"] in ("EX1256020", "EX1256100")]
    assert "\n".join(judge(report(exchange), CheckQuery()).lines()) + "\n" == example
