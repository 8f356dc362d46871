"""``m365watch check``: service health as a Monitoring Plugin (Nagios, Icinga, Checkmk …).

The plugin API is its own contract: the state is the exit code (0 OK, 1 WARNING,
2 CRITICAL, 3 UNKNOWN), the output one status line with performance data after
``|``, then the long output. The counts of open incidents and advisories are
judged against threshold ranges in the standard syntax (``10``, ``10:``, ``~:10``,
``10:20``, ``@10:20``); by default an open incident is CRITICAL and an open
advisory WARNING. UNKNOWN is for the check's own failure (sign-in, Graph, a
stale or missing state, a bad option), never CRITICAL.

Like :mod:`m365watch.query`, whose answer it judges, this module receives its
sources through Protocols and reads no clock. nagiosplugin parses the ranges
and formats the performance data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from nagiosplugin import Performance, Range

from m365watch.errors import ConfigError, M365WatchError, StateError, first_line
from m365watch.models import Issue, status_words
from m365watch.query import (
    HealthSource,
    StateSource,
    StatusQuery,
    StatusReport,
    issue_order,
    normalise_issue_id,
    status_from_graph,
    status_from_state,
)
from m365watch.settings import TenantSettings
from m365watch.tenant_query import TenantAnswer

SERVICE = "M365"
# How many issues the status line names; the long output lists every one.
NAMED_ON_STATUS_LINE = 3
DEFAULT_MAX_AGE = "15m"

# [@][start:][end]: start is a number or ~ (minus infinity), end a number; one of them given.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^@?(?:(?:~|{_NUMBER})?:)?(?:{_NUMBER})?$")


class PluginState(IntEnum):
    """The Monitoring Plugins states; the value is the exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


def parse_range(text: str) -> Range:
    """A threshold range from the Monitoring Plugins syntax; ConfigError for anything else.

    ``10`` alerts outside 0..10, ``10:`` below 10, ``~:10`` above 10, ``10:20`` outside
    10..20, ``@10:20`` inside 10..20 (ends included).
    """
    spec = text.strip()
    shown = repr(text) if len(text) <= 40 else repr(text[:40]) + "…"
    if len(spec) > 40 or spec in ("", "@", ":", "@:") or not _RANGE.match(spec):
        raise ConfigError(f"{shown} is not a threshold range: use 10, 10:, ~:10, 10:20 or @10:20")
    try:
        return Range(spec)  # the pattern above leaves it only numbers int() or float() read
    except ValueError as error:  # start greater than end
        raise ConfigError(f"{shown} is not a threshold range: {error}") from None


@dataclass(frozen=True)
class Thresholds:
    """The warning and critical ranges of one count; None: no such rule."""

    warning: Range | None = None
    critical: Range | None = None

    def judge(self, value: float) -> PluginState:
        """CRITICAL when outside the critical range, else WARNING outside the warning one."""
        if self.critical is not None and not self.critical.match(value):
            return PluginState.CRITICAL
        if self.warning is not None and not self.warning.match(value):
            return PluginState.WARNING
        return PluginState.OK

    @classmethod
    def of(
        cls, warning: Range | None, critical: Range | None, *, default: Thresholds
    ) -> Thresholds:
        """The ranges given as options; ``default`` when neither is given."""
        if warning is None and critical is None:
            return default
        return cls(warning=warning, critical=critical)


# An open incident is CRITICAL, an open advisory WARNING (alert outside 0..0).
DEFAULT_INCIDENTS = Thresholds(critical=Range("0"))
DEFAULT_ADVISORIES = Thresholds(warning=Range("0"))


@dataclass(frozen=True)
class CheckQuery:
    """What ``check`` was asked: the scope (as ``status``), ignored issues, thresholds."""

    services: tuple[str, ...] = ()
    classification: str | None = None
    ignore: tuple[str, ...] = ()
    incidents: Thresholds = DEFAULT_INCIDENTS
    advisories: Thresholds = DEFAULT_ADVISORIES

    def status_query(self) -> StatusQuery:
        """The ``status`` question behind the check: open issues only."""
        return StatusQuery(services=self.services, classification=self.classification)

    def ignored(self) -> frozenset[str]:
        """The ``--ignore`` ids, upper case (ConfigError for one that is not an issue id)."""
        return frozenset(normalise_issue_id(i) for i in self.ignore)


@dataclass(frozen=True)
class CheckResult:
    """The plugin's answer: its state, status line, long output and performance data."""

    state: PluginState
    summary: str
    details: tuple[str, ...] = ()
    perfdata: tuple[Any, ...] = field(default=())  # nagiosplugin.Performance

    @property
    def exit_code(self) -> int:
        """The state as the exit code the plugin API expects."""
        return int(self.state)

    def lines(self) -> list[str]:
        """``M365 STATE - summary | perfdata``, then one line per detail."""
        first = f"{SERVICE} {self.state.name} - {self.summary}"
        if self.perfdata:
            first += " | " + " ".join(str(p) for p in self.perfdata)
        return [first, *self.details]


def unknown(reason: str) -> CheckResult:
    """The check could not judge: why, in one line."""
    return CheckResult(PluginState.UNKNOWN, _clean(reason))


def pick_tenant(asked: str, tenants: Sequence[TenantSettings]) -> str:
    """The [[tenants]] name ``--tenant`` means: a tenant's name or its ``tenant_id`` (any case).

    ConfigError (UNKNOWN) for anything else, naming the tenants.
    """
    wanted = asked.strip().casefold()
    for tenant in tenants:
        if wanted in (str(tenant.name).casefold(), tenant.tenant_id.strip().casefold()):
            return str(tenant.name)
    names = ", ".join(str(t.name) for t in tenants)
    raise ConfigError(f"--tenant {asked!r} is not configured: the [[tenants]] are {names}")


def check_tenant(asked: str | None, configured: str) -> None:
    """``--tenant`` must name the configured tenant (its ``tenant_id``, any case) or be absent."""
    if asked is None or asked.strip().casefold() == configured.strip().casefold():
        return
    raise ConfigError(
        f"--tenant {asked!r} is not configured: the [tenant] table is {configured!r} "
        "(one tenant per configuration)"
    )


def check_live(source: HealthSource, query: CheckQuery, *, now: datetime) -> CheckResult:
    """Judge the open issues Graph lists now (errors propagate: the caller says UNKNOWN)."""
    ignored = query.ignored()
    report = status_from_graph(source, query.status_query(), now=now)
    return judge(report, query, ignored=ignored)


def check_cached(
    store: StateSource, query: CheckQuery, *, now: datetime, max_age: float
) -> CheckResult:
    """Judge the issues of the local state; UNKNOWN when its last poll is older than ``max_age``."""
    ignored = query.ignored()
    report = status_from_state(store, query.status_query(), now=now)
    try:
        age = _fresh_age(report, store, now=now, max_age=max_age)
    except StateError as error:
        return unknown(str(error))
    return judge(report, query, ignored=ignored, age=age)


def _fresh_age(report: StatusReport, store: StateSource, *, now: datetime, max_age: float) -> float:
    """The age of the state behind ``report``; StateError when unknown or beyond ``max_age``."""
    if report.cached_at is None:
        raise StateError(f"the time of the last poll is unknown ({store.path})")
    age = max(0.0, (now - report.cached_at).total_seconds())
    if age > max_age:
        raise StateError(
            f"the local state is {_age_words(age)} old, more than --max-age "
            f"{_age_words(max_age)}: is `m365watch poll` running? ({store.path})"
        )
    return age


# -- many tenants ([[tenants]]) ------------------------------------------------------------


@dataclass(frozen=True)
class Look:
    """What one tenant's check found: its open issues, and the age of its state (--cached)."""

    report: StatusReport
    age: float | None = None


def look_live(source: HealthSource, query: CheckQuery, *, now: datetime) -> Look:
    """One tenant's open issues from Graph (errors propagate: that tenant is UNKNOWN)."""
    return Look(status_from_graph(source, query.status_query(), now=now))


def look_cached(store: StateSource, query: CheckQuery, *, now: datetime, max_age: float) -> Look:
    """One tenant's open issues from its state; StateError when it is missing or too old."""
    report = status_from_state(store, query.status_query(), now=now)
    return Look(report, _fresh_age(report, store, now=now, max_age=max_age))


# Worst first for many tenants: an open incident still pages while another tenant is UNKNOWN.
_WORST = (PluginState.OK, PluginState.WARNING, PluginState.UNKNOWN, PluginState.CRITICAL)


def judge_tenants(answers: Sequence[TenantAnswer[Look]], query: CheckQuery) -> CheckResult:
    """Judge every tenant as one: each tenant against the thresholds, the worst state wins.

    CRITICAL over UNKNOWN (a tenant that could not be checked) over WARNING over OK.
    The performance data sums the counts of every tenant checked (the thresholds shown
    are those each tenant is judged by); ``unknown_tenants`` counts those that could
    not be; ``age`` is the oldest state's. Each line of the long output names its tenant.
    """
    ignored = query.ignored()
    states = []
    incidents: list[tuple[int, str, Issue]] = []
    advisories: list[tuple[int, str, Issue]] = []
    ages = []
    failed = [a for a in answers if a.answer is None]
    for position, answer in enumerate(answers):
        if answer.answer is None:
            states.append(PluginState.UNKNOWN)
            continue
        found, advised = _open_issues(answer.answer.report, ignored)
        states.append(max(query.incidents.judge(len(found)), query.advisories.judge(len(advised))))
        incidents += [(position, answer.name, i) for i in found]
        advisories += [(position, answer.name, i) for i in advised]
        if answer.answer.age is not None:
            ages.append(answer.answer.age)
    state = max(states, key=_WORST.index, default=PluginState.UNKNOWN)
    # Incidents first, each group worst first, an issue's tenants together.
    worst = [
        (name, issue)
        for group in (incidents, advisories)
        for _, name, issue in sorted(group, key=lambda row: (issue_order(row[2]), row[0]))
    ]
    counts = f"{_counted(len(incidents), 'incident')}, {_counted(len(advisories), 'advisory')}"
    if failed:
        unknowns = ", ".join(a.name for a in failed)
        counts += f" in {len(answers) - len(failed)} of {len(answers)} tenants ({unknowns} UNKNOWN)"
    else:
        counts += f" in {_counted(len(answers), 'tenant')}"
    tenants_of: dict[str, list[str]] = {}
    first: dict[str, Issue] = {}
    for name, issue in worst:
        tenants_of.setdefault(issue.id, []).append(name)
        first.setdefault(issue.id, issue)
    named = ", ".join(
        f"{_issue_short(first[i])} in {_tenants_text(tenants_of[i])}"
        for i in list(first)[:NAMED_ON_STATUS_LINE]
    )
    more = len(first) - NAMED_ON_STATUS_LINE
    summary = counts + (f": {named}" if named else "") + (f" and {more} more" if more > 0 else "")
    if ages:
        summary += f" (local state, the oldest {_age_words(max(ages))} old)"
    perfdata = [
        _performance("incidents", len(incidents), query.incidents),
        _performance("advisories", len(advisories), query.advisories),
        Performance("unknown_tenants", len(failed), min=0),
    ]
    if ages:
        perfdata.append(Performance("age", round(max(ages)), "s", min=0))
    details = [
        _clean(f"{a.name}: UNKNOWN - {first_line(a.error or M365WatchError())}") for a in failed
    ]
    details += [_clean(f"{name}: {_issue_line(issue)}") for name, issue in worst]
    if ignored:
        details.append("Ignored: " + ", ".join(sorted(ignored)))
    return CheckResult(state, _clean(summary), tuple(details), tuple(perfdata))


def _tenants_text(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} tenants"


def _open_issues(report: StatusReport, ignored: frozenset[str]) -> tuple[list[Issue], list[Issue]]:
    """The open incidents and advisories in scope, less the ignored ones."""
    issues = [i for i in report.issues if not i.is_resolved and i.id.upper() not in ignored]
    incidents = [i for i in issues if i.classification == "incident"]
    # An issue whose classification Graph does not document yet counts as an advisory.
    advisories = [i for i in issues if i.classification != "incident"]
    return incidents, advisories


def judge(
    report: StatusReport,
    query: CheckQuery,
    *,
    ignored: frozenset[str] = frozenset(),
    age: float | None = None,
) -> CheckResult:
    """Count the open issues in scope (less the ignored ones) and judge both counts."""
    incidents, advisories = _open_issues(report, ignored)
    state = max(
        query.incidents.judge(len(incidents)),
        query.advisories.judge(len(advisories)),
    )
    counts = f"{_counted(len(incidents), 'incident')}, {_counted(len(advisories), 'advisory')}"
    # Incidents first, each group worst first (the report's order).
    worst = [*incidents, *advisories]
    named = ", ".join(_issue_short(i) for i in worst[:NAMED_ON_STATUS_LINE])
    more = len(worst) - NAMED_ON_STATUS_LINE
    summary = counts + (f": {named}" if named else "") + (f" and {more} more" if more > 0 else "")
    if age is not None:
        summary += f" (local state, {_age_words(age)} old)"
    perfdata = [
        _performance("incidents", len(incidents), query.incidents),
        _performance("advisories", len(advisories), query.advisories),
    ]
    if age is not None:
        perfdata.append(Performance("age", round(age), "s", min=0))
    details = [_issue_line(i) for i in worst]
    if ignored:
        details.append("Ignored: " + ", ".join(sorted(ignored)))
    return CheckResult(state, _clean(summary), tuple(details), tuple(perfdata))


def _performance(label: str, value: int, thresholds: Thresholds) -> Any:
    return Performance(
        label,
        value,
        warn=str(thresholds.warning) if thresholds.warning is not None else "",
        crit=str(thresholds.critical) if thresholds.critical is not None else "",
        min=0,
    )


def _counted(count: int, word: str) -> str:
    plural = "advisories" if word == "advisory" else word + "s"
    return f"{count} {word if count == 1 else plural}"


def _status(issue: Issue) -> str:
    words = status_words(issue.status, issue.status_raw)
    return words[:1].lower() + words[1:]


def _issue_short(issue: Issue) -> str:
    return f"{issue.id} {issue.service} ({_status(issue)})"


def _issue_line(issue: Issue) -> str:
    kind = issue.classification if issue.classification != "unknown" else "issue"
    return _clean(
        f"{issue.id} {kind}, {issue.service}, {_status(issue)}: {issue.title} - {issue.url}"
    )


def _clean(text: str) -> str:
    """One line, and no ``|``: it would start the performance data."""
    return " ".join(text.replace("|", "/").split())


def _age_words(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size:
            whole = int(seconds // size)
            rest = int(seconds % size // (60 if unit == "h" else 1))
            if rest:
                return f"{whole}{unit}{rest}{'m' if unit == 'h' else 's'}"
            return f"{whole}{unit}"
    return f"{int(seconds)}s"
