"""One-off questions about service health: what ``status`` and ``show`` answer.

Given the Graph adapter (live) or the state store (``--cached``), build value
objects that the CLI prints as tables or as JSON. Nothing here prints, reads
the clock (``now`` is passed in) or imports an adapter at run time, so a cached
query never loads msal, requests or apprise.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from m365watch.errors import ConfigError, GraphError, NotFoundError, StateError
from m365watch.models import (
    CLASSIFICATIONS,
    KNOWN_SERVICES,
    OPERATIONAL,
    Issue,
    ParseError,
    Post,
    ServiceHealth,
    as_sent,
    format_time,
    format_timestamp,
    is_issue_id,
    parse_issues,
    severity_of,
    status_words,
)

if TYPE_CHECKING:
    from m365watch.records import State

log = logging.getLogger(__name__)

SOURCE_GRAPH = "graph"
SOURCE_CACHE = "cache"
# The issues feed's name (feeds.issues.ISSUES.name), its table in the state: named here so
# that a cached query loads no feed (and none of the rendering the feeds bring).
ISSUES_FEED = "issues"
# Sent to Graph as an optimisation only: the result is filtered again here.
OPEN_ISSUES_FILTER = "isResolved eq false"


class HealthSource(Protocol):
    """The live source: the Graph adapter (``m365watch.graph.GraphClient``)."""

    def list_health_overviews(self) -> list[dict[str, Any]]: ...

    def list_issues(self, *, filter: str | None = None) -> list[dict[str, Any]]: ...

    def get_issue(self, issue_id: str) -> dict[str, Any]: ...


class StateSource(Protocol):
    """The cached source: the state store (``m365watch.store.StateStore``)."""

    path: Path

    def load(self) -> State: ...

    def age_source(self) -> float | None: ...


class CachedSnapshot(Protocol):
    """An issue as the last poll saw it."""

    @property
    def item(self) -> Issue: ...

    @property
    def missing_since(self) -> datetime | None: ...


class CachedIssues(Protocol):
    """What ``status --cached`` and ``show --cached`` read of the state: its issues."""

    @property
    def exists(self) -> bool: ...

    def items(self, feed: str) -> Mapping[str, CachedSnapshot]: ...


class IssueStateSource(Protocol):
    """The cached source of issues: the state store, or a reader of its issues alone
    (``m365watch.state_reader``)."""

    @property
    def path(self) -> Path: ...

    def load(self) -> CachedIssues: ...

    def age_source(self) -> float | None: ...


@dataclass(frozen=True)
class StatusQuery:
    """What ``status`` was asked for. Empty ``services`` means every service."""

    services: tuple[str, ...] = ()
    classification: str | None = None
    include_resolved: bool = False

    def __post_init__(self) -> None:
        if self.classification is not None and self.classification not in CLASSIFICATIONS:
            raise ValueError(f"classification must be one of {CLASSIFICATIONS}")


@dataclass(frozen=True)
class ServiceStatus:
    """One service's health and how many issues are open on it."""

    id: str | None
    service: str
    status: str
    status_raw: str | None = None
    open_incidents: int = 0
    open_advisories: int = 0
    # The severity of its worst open issue (0 when none is open).
    open_severity: int = 0

    @property
    def status_text(self) -> str:
        """The health in words ("Service degradation"); unknown values as Graph sent them."""
        return status_words(self.status, self.status_raw)

    @property
    def health_text(self) -> str:
        """The health in words, saying why an operational service is listed at all.

        Microsoft reports "serviceOperational" for a service while an advisory (or
        an incident it rates as minor) is open; listed under "Services with problems"
        with that word alone, the row would read as a mistake.
        """
        if self.status != OPERATIONAL or not (self.open_incidents or self.open_advisories):
            return self.status_text
        if self.open_incidents:
            kind = "incident open" if self.open_incidents == 1 else "incidents open"
        else:
            kind = "advisory open" if self.open_advisories == 1 else "advisories open"
        return f"Operational, {kind}"

    @property
    def rank(self) -> int:
        """How bad it is, for ordering: its health or its worst open issue, the worse."""
        return max(self.severity, self.open_severity)

    @property
    def severity(self) -> int:
        """How bad the health is (0 = fine, 5 = service interruption)."""
        return severity_of(self.status)

    @property
    def healthy(self) -> bool:
        """True when the status is a good one and no issue is open on the service."""
        return self.severity == 0 and not (self.open_incidents or self.open_advisories)

    def to_json(self) -> dict[str, Any]:
        """``id``, ``service``, ``status`` (Graph's camelCase, or the raw unknown value), and
        the open issues counted: ``openIncidents``, ``openAdvisories``."""
        status = as_sent(self.status, self.status_raw)
        return {
            "id": self.id,
            "service": self.service,
            "status": status,
            "openIncidents": self.open_incidents,
            "openAdvisories": self.open_advisories,
        }


@dataclass(frozen=True)
class StatusReport:
    """The answer to ``m365watch status``."""

    generated: datetime
    source: str  # SOURCE_GRAPH or SOURCE_CACHE
    services: tuple[ServiceStatus, ...]
    issues: tuple[Issue, ...]
    query: StatusQuery = StatusQuery()
    cached_at: datetime | None = None

    @property
    def unhealthy_services(self) -> tuple[ServiceStatus, ...]:
        """Services with a bad status or open issues, worst first (health or worst open issue)."""
        return tuple(
            sorted(
                (s for s in self.services if not s.healthy),
                key=lambda s: (-s.rank, -s.severity, s.service.casefold()),
            )
        )

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` contract (see the README)."""
        return {
            "generated": format_timestamp(self.generated),
            "source": self.source,
            "cachedAt": format_timestamp(self.cached_at),
            "services": [s.to_json() for s in self.services],
            "issues": [issue_json(i) for i in self.issues],
        }


@dataclass(frozen=True)
class PostText:
    """One update from Microsoft as readable text (links kept as ``text (url)``)."""

    created: datetime | None
    post_type: str | None
    text: str

    @classmethod
    def from_post(cls, post: Post) -> PostText:
        """Convert a post's HTML or text content."""
        from m365watch.messages import post_text  # rendering: only ``show`` needs it

        return cls(created=post.created, post_type=post.post_type, text=post_text(post))

    def to_json(self) -> dict[str, Any]:
        """``createdDateTime``, ``postType``, ``text``."""
        return {
            "createdDateTime": format_timestamp(self.created),
            "postType": self.post_type,
            "text": self.text,
        }


@dataclass(frozen=True)
class IssueDetail:
    """The answer to ``m365watch show ISSUE_ID``."""

    issue: Issue
    posts: tuple[PostText, ...]
    generated: datetime
    source: str
    cached_at: datetime | None = None
    # Set when the last poll no longer found the issue in Graph's feed.
    missing_since: datetime | None = None

    @classmethod
    def of(cls, issue: Issue, **kwargs: Any) -> IssueDetail:
        """Build the detail of ``issue``, its posts oldest first."""
        return cls(issue=issue, posts=tuple(PostText.from_post(p) for p in issue.posts), **kwargs)

    def to_json(self) -> dict[str, Any]:
        """The ``show --json`` contract: the issue's fields, ``url`` and ``posts``."""
        return {**issue_json(self.issue), "posts": [p.to_json() for p in self.posts]}


def issue_json(issue: Issue) -> dict[str, Any]:
    """An issue with Graph's property names and camelCase values, plus its admin-center ``url``."""
    return {**issue.to_graph(with_posts=False), "url": issue.url}


# -- status -----------------------------------------------------------------------------


def status_from_graph(source: HealthSource, query: StatusQuery, *, now: datetime) -> StatusReport:
    """Ask Graph: one ``healthOverviews`` request and one ``issues`` request (paged)."""
    overviews = [ServiceHealth.from_graph(o) for o in source.list_health_overviews()]
    server_filter = None if query.include_resolved else OPEN_ISSUES_FILTER
    try:
        items = source.list_issues(filter=server_filter)
    except GraphError as error:
        # The filter only saves bytes (issues are filtered here again): never fail over it.
        if server_filter is None or error.status != 400:
            raise
        log.warning("Graph refused the filter %r; asking for every issue", server_filter)
        items = source.list_issues(filter=None)
    issues, skipped = parse_issues(items)
    if skipped:
        log.warning("%d issues from Graph had no id and were ignored", skipped)
    return build_status(overviews, issues, query, now=now, source=SOURCE_GRAPH)


def status_from_state(
    store: IssueStateSource, query: StatusQuery, *, now: datetime
) -> StatusReport:
    """Answer from the state file alone; no network request.

    The state keeps issues but not ``healthOverviews``, so each service's health
    is that of its worst open issue, and only services with open issues appear.
    Issues the last poll no longer found in Graph's feed are left out.
    """
    state = load_cached_state(store)
    snapshots = state.items(ISSUES_FEED).values()
    issues = [s.item for s in snapshots if s.missing_since is None]
    return build_status(
        None, issues, query, now=now, source=SOURCE_CACHE, cached_at=cached_at_of(store)
    )


def build_status(
    overviews: Sequence[ServiceHealth] | None,
    issues: Sequence[Issue],
    query: StatusQuery,
    *,
    now: datetime,
    source: str,
    cached_at: datetime | None = None,
) -> StatusReport:
    """Filter and summarise; ``overviews`` is None when only issues are known (cache).

    ``--service`` matches a service's display name or Graph's service id, in any
    case, or a part of one that fits one service only (see :func:`select_services`);
    ``--classification`` and ``--all`` narrow the issues, not the services.
    """
    catalogue = (
        [(o.service, o.id or None) for o in overviews]
        if overviews is not None
        else list(KNOWN_SERVICES)
    )
    catalogue += [(i.service, None) for i in issues]
    wanted = select_services(query.services, catalogue)

    def selected_service(service: str) -> bool:
        return wanted is None or service.casefold() in wanted

    selected = [i for i in issues if selected_service(i.service)]
    open_issues = [i for i in selected if not i.is_resolved]

    services: list[ServiceStatus] = []
    listed: set[str] = set()
    for overview in overviews or ():
        if not selected_service(overview.service):
            continue
        mine = [i for i in open_issues if i.service.casefold() == overview.service.casefold()]
        services.append(_service_status(overview, mine))
        listed.add(overview.service.casefold())
    # Open issues on a service Graph did not list (always the case from the cache).
    by_service: dict[str, list[Issue]] = {}
    for issue in open_issues:
        if issue.service.casefold() not in listed:
            by_service.setdefault(issue.service.casefold(), []).append(issue)
    for mine in by_service.values():
        worst = max(mine, key=lambda i: (i.severity, _timestamp(i.last_modified)))
        overview = ServiceHealth(
            id="",  # the state file does not keep service ids
            service=worst.service,
            status=worst.status,
            status_raw=worst.status_raw,
        )
        services.append(_service_status(overview, mine))
    services.sort(key=lambda s: s.service.casefold())

    shown = [
        i
        for i in selected
        if (query.include_resolved or not i.is_resolved)
        and (query.classification is None or i.classification == query.classification)
    ]
    shown.sort(key=issue_order)
    return StatusReport(
        generated=now,
        source=source,
        services=tuple(services),
        issues=tuple(shown),
        query=query,
        cached_at=cached_at,
    )


def _service_status(overview: ServiceHealth, open_issues: Sequence[Issue]) -> ServiceStatus:
    incidents = sum(1 for i in open_issues if i.classification == "incident")
    return ServiceStatus(
        id=overview.id or None,
        service=overview.service,
        status=overview.status,
        status_raw=overview.status_raw,
        open_incidents=incidents,
        open_advisories=len(open_issues) - incidents,
        open_severity=max((i.severity for i in open_issues), default=0),
    )


def issue_order(issue: Issue) -> tuple[bool, int, float, str]:
    """How ``status`` lists issues: open before resolved, worst, then latest update first."""
    return (issue.is_resolved, -issue.severity, -_timestamp(issue.last_modified), issue.id)


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def select_services(
    names: Iterable[str], catalogue: Sequence[tuple[str, str | None]]
) -> set[str] | None:
    """The display names (case-folded) that ``--service`` names pick from ``catalogue``.

    ``catalogue`` holds (display name, service id or None). Each name matches, in any
    case, a display name or an id exactly, or else a part of one that fits a single
    service (``teams`` finds "Microsoft Teams"). A name that fits several services or
    none is a ConfigError (exit 2) naming the candidates or the closest names: an
    empty answer would read as "all healthy". No names: None (every service).
    """
    wanted = [name.strip() for name in names if name.strip()]
    if not wanted:
        return None
    services: dict[str, str] = {}  # folded display name -> display name
    keys: dict[str, set[str]] = {}  # folded display name or id -> folded display names
    for service, service_id in catalogue:
        folded = service.casefold()
        services.setdefault(folded, service)
        keys.setdefault(folded, set()).add(folded)
        if service_id:
            keys.setdefault(service_id.casefold(), set()).add(folded)
    chosen: set[str] = set()
    for name in wanted:
        folded = name.casefold()
        found = keys.get(folded) or {
            service for key, matches in keys.items() if folded in key for service in matches
        }
        if len(found) > 1 and folded not in keys:
            listed = ", ".join(repr(services[f]) for f in sorted(found))
            raise ConfigError(
                f"--service {name!r} matches several services: {listed}; "
                "give the one you mean in full"
            )
        if not found:
            closest = _closest(folded, services)
            raise ConfigError(f"--service {name!r} matches no service; {closest}")
        chosen |= found
    return chosen


def _closest(folded: str, services: dict[str, str]) -> str:
    """The names most like ``folded`` (whole names and their words), or every name."""
    candidates: dict[str, str] = {}
    for key, service in services.items():
        candidates.setdefault(key, service)
        for word in key.split():
            if len(word) >= 3:
                candidates.setdefault(word, service)
    import difflib  # only to word this error

    close = difflib.get_close_matches(folded, list(candidates), n=6, cutoff=0.6)
    names = list(dict.fromkeys(candidates[c] for c in close))[:3]
    if names:
        return "the closest: " + ", ".join(repr(n) for n in names)
    every = sorted(services.values(), key=str.casefold)
    return "the services are: " + ", ".join(repr(n) for n in every)


# -- show ---------------------------------------------------------------------------------


def issue_from_graph(source: HealthSource, issue_id: str, *, now: datetime) -> IssueDetail:
    """Ask Graph for one issue; NotFoundError (exit 4) when the tenant has no such issue."""
    raw = source.get_issue(normalise_issue_id(issue_id))
    try:
        issue = Issue.from_graph(raw)
    except ParseError:
        raise GraphError(
            f"Graph answered the request for {normalise_issue_id(issue_id)} with an issue "
            "without an id; run again later"
        ) from None
    return IssueDetail.of(issue, generated=now, source=SOURCE_GRAPH)


def issue_from_state(store: IssueStateSource, issue_id: str, *, now: datetime) -> IssueDetail:
    """Find one issue in the state file; NotFoundError (exit 4) when it is not there."""
    state = load_cached_state(store)
    wanted = normalise_issue_id(issue_id)
    snapshots = state.items(ISSUES_FEED)
    snapshot = next((s for k, s in snapshots.items() if k.upper() == wanted), None)
    if snapshot is None:
        raise NotFoundError(
            f"issue {wanted} is not in the local state ({store.path}): it may not exist or "
            "be newer than the last poll; leave out --cached to ask Microsoft Graph"
        )
    return IssueDetail.of(
        snapshot.item,
        generated=now,
        source=SOURCE_CACHE,
        cached_at=cached_at_of(store),
        missing_since=snapshot.missing_since,
    )


def normalise_issue_id(issue_id: str) -> str:
    """Issue ids are two to four letters and digits (EX1256020); any case and spaces accepted.

    Anything else is a usage error (exit 2) that shows the input shortened and escaped,
    never raw (it is printed to a terminal).
    """
    value = issue_id.strip()
    if not is_issue_id(value):
        shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "…"
        raise ConfigError(
            f"{shown} is not a service health issue id: expected two to four letters "
            "followed by digits, such as EX1256020"
        )
    return value.upper()


# -- freshness ----------------------------------------------------------------------------


Loaded = TypeVar("Loaded", bound="CachedIssues", covariant=True)


class _Loads(Protocol[Loaded]):
    @property
    def path(self) -> Path: ...

    def load(self) -> Loaded: ...


def load_cached_state(store: _Loads[Loaded]) -> Loaded:
    """The state for a ``--cached`` answer; StateError (exit 1) when no poll has written one."""
    state = store.load()
    if not state.exists:
        raise StateError(
            f"there is no local state yet ({store.path}): run `m365watch poll` first, "
            "or leave out --cached"
        )
    return state


def cached_at_of(store: IssueStateSource) -> datetime | None:
    """When the state was last written by a poll (its file's time), if known."""
    stamp = store.age_source()
    return datetime.fromtimestamp(stamp, tz=timezone.utc) if stamp is not None else None


def ago(then: datetime | None, now: datetime) -> str:
    """How long ago, for people: ``just now``, ``5 min ago``, ``3 h ago``, ``2 days ago``."""
    if then is None:
        return "unknown"
    seconds = (now - then).total_seconds()
    if seconds < 60:
        return "just now"  # also a clock slightly ahead of ours
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h ago"
    days = hours // 24
    return f"{days} days ago"


def cache_note(cached_at: datetime | None, now: datetime) -> str:
    """The sentence that says how old cached data is."""
    if cached_at is None:
        return "From the local state (time of the last poll unknown)."
    return (
        f"From the local state, as of the last poll {ago(cached_at, now)} "
        f"({format_time(cached_at)})."
    )


def missing_note(missing_since: datetime, now: datetime) -> str:
    """The sentence for an issue that left Graph's feed."""
    return (
        f"Not in Microsoft's feed since {format_time(missing_since)} "
        f"({ago(missing_since, now)}); this is its last known state."
    )
