"""Tests for m365watch.query: status and show answers from a fake Graph and a real state file."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from m365watch.errors import (
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    EXIT_USAGE,
    ConfigError,
    NotFoundError,
    StateError,
)
from m365watch.models import Issue, ServiceHealth
from m365watch.query import (
    OPEN_ISSUES_FILTER,
    SOURCE_CACHE,
    SOURCE_GRAPH,
    StatusQuery,
    StatusReport,
    ago,
    build_status,
    cache_note,
    issue_from_graph,
    issue_from_state,
    select_services,
    status_from_graph,
    status_from_state,
)
from m365watch.store import StateStore
from tests.health_samples import (
    CR275975,
    FM298724,
    ISSUES,
    NOW,
    OVERVIEWS,
    open_issue,
    write_state,
)
from tests.helpers import load_json

# The JSON contract (README): Graph's property names, in this order, plus the admin-center url.
ISSUE_KEYS = [
    "id",
    "title",
    "service",
    "feature",
    "featureGroup",
    "classification",
    "origin",
    "status",
    "isResolved",
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "impactDescription",
    "url",
]


class FakeGraph:
    """Stands in for GraphClient; like Graph it may ignore a $filter it is sent."""

    def __init__(
        self, overviews: list[Any], issues: list[Any], honour_filter: bool = False
    ) -> None:
        self.overviews = overviews
        self.issues = issues
        self.honour_filter = honour_filter
        self.calls: list[tuple[str, str | None]] = []

    def list_health_overviews(self) -> list[dict[str, Any]]:
        self.calls.append(("healthOverviews", None))
        return copy.deepcopy(self.overviews)

    def list_issues(self, *, filter: str | None = None) -> list[dict[str, Any]]:
        self.calls.append(("issues", filter))
        items = copy.deepcopy(self.issues)
        if self.honour_filter and filter == OPEN_ISSUES_FILTER:
            items = [i for i in items if not i["isResolved"]]
        return items

    def get_issue(self, issue_id: str) -> dict[str, Any]:
        self.calls.append(("issue", issue_id))
        for item in self.issues:
            if item["id"] == issue_id:
                return copy.deepcopy(item)
        raise NotFoundError(f"issue {issue_id} does not exist in this tenant")


def live(query: StatusQuery | None = None, **kwargs: Any) -> StatusReport:
    graph = FakeGraph(OVERVIEWS, ISSUES, **kwargs)
    return status_from_graph(graph, query or StatusQuery(), now=NOW)


# -- status from Graph ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include_resolved", "sent_filter"),
    [(False, "isResolved eq false"), (True, None)],
    ids=["open-only", "all"],
)
def test_one_overview_request_and_one_issues_request(
    include_resolved: bool, sent_filter: str | None
) -> None:
    graph = FakeGraph(OVERVIEWS, ISSUES)
    status_from_graph(graph, StatusQuery(include_resolved=include_resolved), now=NOW)
    assert graph.calls == [("healthOverviews", None), ("issues", sent_filter)]


def test_all_healthy() -> None:
    overviews = load_json("docs-beta2021-list-healthoverviews.json")["value"]
    report = status_from_graph(FakeGraph(overviews, [CR275975, FM298724]), StatusQuery(), now=NOW)
    # ServicaOperational (Microsoft's typo) and ServiceRestored both count as healthy.
    assert report.unhealthy_services == ()
    assert report.issues == ()
    none_open = {"openIncidents": 0, "openAdvisories": 0}
    assert [s.to_json() for s in report.services] == [
        {"id": "Exchange", "service": "Exchange Online", "status": "serviceOperational"}
        | none_open,
        {"id": "OrgLiveID", "service": "Identity Service", "status": "serviceRestored"} | none_open,
        {"id": "OSDPPlatform", "service": "Microsoft 365 suite", "status": "serviceOperational"}
        | none_open,
    ]


def test_several_degraded_services_worst_first_with_counts() -> None:
    report = live()
    rows = [
        (s.service, s.status_text, s.open_incidents, s.open_advisories)
        for s in report.unhealthy_services
    ]
    assert rows == [
        ("Microsoft Teams", "Service interruption", 1, 0),
        ("Exchange Online", "Service degradation", 1, 1),
        ("Microsoft 365 suite", "brandNewStatus", 0, 1),
    ]


def test_an_operational_service_with_open_issues_says_why_it_is_listed() -> None:
    operational = {"Exchange", "OSDPPlatform"}
    overviews = [
        {**o, "status": "serviceOperational"} if o["id"] in operational else o for o in OVERVIEWS
    ]
    report = status_from_graph(FakeGraph(overviews, ISSUES), StatusQuery(), now=NOW)
    rows = [(s.service, s.health_text, s.status) for s in report.unhealthy_services]
    # Exchange's open incident is a degradation: it comes before an advisory, whatever the health.
    assert rows == [
        ("Microsoft Teams", "Service interruption", "serviceInterruption"),
        ("Exchange Online", "Operational, incident open", "serviceOperational"),
        ("Microsoft 365 suite", "Operational, advisory open", "serviceOperational"),
    ]
    two = status_from_graph(
        FakeGraph(overviews, [*ISSUES, open_issue("MO1", "Microsoft 365 suite", "x", "advisory")]),
        StatusQuery(services=("osdp",)),
        now=NOW,
    )
    assert [s.health_text for s in two.services] == ["Operational, advisories open"]


def test_pascal_case_and_unknown_statuses_in_json() -> None:
    data = live().to_json()
    services = {s["service"]: s["status"] for s in data["services"]}
    assert services == {
        "Dynamics 365 Apps": "serviceOperational",
        "Exchange Online": "serviceDegradation",
        "Microsoft 365 suite": "brandNewStatus",
        "Microsoft Forms": "serviceOperational",
        "Microsoft Teams": "serviceInterruption",
    }
    issues = {i["id"]: (i["status"], i["classification"]) for i in data["issues"]}
    assert issues == {
        "TM300100": ("serviceInterruption", "incident"),
        "EX1256020": ("serviceDegradation", "incident"),
        "EX1256100": ("investigating", "advisory"),
        "MO226784": ("brandNewStatus", "advisory"),
    }


def test_docs_example_in_pascal_case_is_parsed() -> None:
    items = load_json("docs-beta2021-list-issues.json")["value"]
    report = status_from_graph(FakeGraph([], items), StatusQuery(include_resolved=True), now=NOW)
    (issue,) = report.to_json()["issues"]
    assert (issue["status"], issue["classification"]) == ("serviceRestored", "incident")


@pytest.mark.parametrize("honour_filter", [False, True], ids=["graph-ignores-filter", "honoured"])
@pytest.mark.parametrize(
    ("include_resolved", "expected"),
    [
        (False, ["TM300100", "EX1256020", "EX1256100", "MO226784"]),
        (True, ["TM300100", "EX1256020", "EX1256100", "MO226784", "FM298724", "CR275975"]),
    ],
    ids=["resolved-hidden", "resolved-shown-with-all"],
)
def test_resolved_issues_hidden_unless_all(
    honour_filter: bool, include_resolved: bool, expected: list[str]
) -> None:
    report = live(StatusQuery(include_resolved=include_resolved), honour_filter=honour_filter)
    assert [i.id for i in report.issues] == expected


@pytest.mark.parametrize(
    ("query", "services", "issues"),
    [
        (
            StatusQuery(services=("exchange ONLINE",)),
            ["Exchange Online"],
            ["EX1256020", "EX1256100"],
        ),
        (StatusQuery(services=("EXCHANGE",)), ["Exchange Online"], ["EX1256020", "EX1256100"]),
        (
            StatusQuery(services=("Exchange Online", "microsoft teams")),
            ["Exchange Online", "Microsoft Teams"],
            ["TM300100", "EX1256020", "EX1256100"],
        ),
        (
            StatusQuery(classification="incident"),
            [
                "Dynamics 365 Apps",
                "Exchange Online",
                "Microsoft 365 suite",
                "Microsoft Forms",
                "Microsoft Teams",
            ],
            ["TM300100", "EX1256020"],
        ),
        (
            StatusQuery(services=("exchange online",), classification="advisory"),
            ["Exchange Online"],
            ["EX1256100"],
        ),
        (
            StatusQuery(services=("Microsoft Forms",), include_resolved=True),
            ["Microsoft Forms"],
            ["FM298724"],
        ),
    ],
    ids=[
        "name-any-case",
        "service-id",
        "two-services",
        "incidents",
        "service-and-advisory",
        "resolved-of-one-service",
    ],
)
def test_filters(query: StatusQuery, services: list[str], issues: list[str]) -> None:
    report = live(query)
    assert [s.service for s in report.services] == services
    assert [i.id for i in report.issues] == issues


def test_classification_filter_leaves_service_counts_alone() -> None:
    report = live(StatusQuery(services=("Exchange Online",), classification="incident"))
    (exchange,) = report.services
    assert (exchange.open_incidents, exchange.open_advisories) == (1, 1)


@pytest.mark.parametrize(
    ("names", "services", "issues"),
    [
        (("teams",), ["Microsoft Teams"], ["TM300100"]),
        (
            ("TEAMS", "exch"),
            ["Exchange Online", "Microsoft Teams"],
            ["TM300100", "EX1256020", "EX1256100"],
        ),
        (("OSDP",), ["Microsoft 365 suite"], ["MO226784"]),
    ],
    ids=["part-of-a-name", "any-case-and-two", "part-of-an-id"],
)
def test_a_part_of_one_service_name_selects_it(
    names: tuple[str, ...], services: list[str], issues: list[str]
) -> None:
    report = live(StatusQuery(services=names))
    assert [s.service for s in report.services] == services
    assert [i.id for i in report.issues] == issues


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Exchange Onlien",
            "--service 'Exchange Onlien' matches no service; the closest: 'Exchange Online'",
        ),
        ("temas", "--service 'temas' matches no service; the closest: 'Microsoft Teams'"),
        (
            "Nothing Like It",
            "--service 'Nothing Like It' matches no service; the services are: "
            "'Dynamics 365 Apps', 'Exchange Online', 'Microsoft 365 suite', 'Microsoft Forms', "
            "'Microsoft Teams'",
        ),
        (
            "microsoft",
            "--service 'microsoft' matches several services: 'Microsoft 365 suite', "
            "'Microsoft Forms', 'Microsoft Teams'; give the one you mean in full",
        ),
    ],
    ids=["typo", "typo-of-a-word", "nothing-close", "ambiguous"],
)
def test_a_service_name_that_selects_no_one_service_is_a_usage_error(
    name: str, message: str
) -> None:
    # An empty answer would read as "all healthy".
    with pytest.raises(ConfigError) as info:
        live(StatusQuery(services=("Exchange Online", name)))
    assert str(info.value) == message
    assert info.value.exit_code == EXIT_USAGE


def test_an_exact_name_or_id_wins_over_the_longer_names_it_is_part_of() -> None:
    catalogue: list[tuple[str, str | None]] = [
        ("Exchange Online", "Exchange"),
        ("Exchange Online Protection", "EOP"),
        ("Microsoft Teams", "MicrosoftTeams"),
    ]
    assert select_services(["exchange online"], catalogue) == {"exchange online"}
    assert select_services(["EXCHANGE"], catalogue) == {"exchange online"}
    assert select_services(["protection"], catalogue) == {"exchange online protection"}
    assert select_services([" ", ""], catalogue) is None


def test_cached_service_names_come_from_the_state_and_a_builtin_list(tmp_path: Path) -> None:
    store = write_state(tmp_path / "state.json", ISSUES)
    # SharePoint has no issue in the state: healthy, not unknown.
    report = status_from_state(store, StatusQuery(services=("sharepoint",)), now=NOW)
    assert (report.services, report.issues) == ((), ())
    report = status_from_state(store, StatusQuery(services=("teams",)), now=NOW)
    assert [i.id for i in report.issues] == ["TM300100"]
    # Dynamics 365 Apps is known from the state's issues (and the list); ids work too.
    report = status_from_state(store, StatusQuery(services=("MicrosoftTeams",)), now=NOW)
    assert [i.id for i in report.issues] == ["TM300100"]
    with pytest.raises(ConfigError) as info:
        status_from_state(store, StatusQuery(services=("sharepont",)), now=NOW)
    assert str(info.value) == (
        "--service 'sharepont' matches no service; the closest: 'SharePoint Online'"
    )


def test_open_issue_on_a_service_missing_from_overviews_still_counts() -> None:
    graph = FakeGraph(OVERVIEWS[:1], ISSUES)
    report = status_from_graph(graph, StatusQuery(), now=NOW)
    assert [(s.id, s.service, s.status) for s in report.unhealthy_services] == [
        (None, "Microsoft Teams", "serviceInterruption"),
        ("Exchange", "Exchange Online", "serviceDegradation"),
        (None, "Microsoft 365 suite", "unknown"),
    ]


def test_issue_without_id_is_skipped() -> None:
    broken = {k: v for k, v in ISSUES[0].items() if k != "id"}
    report = status_from_graph(FakeGraph(OVERVIEWS, [broken]), StatusQuery(), now=NOW)
    assert report.issues == ()


def test_status_json_contract() -> None:
    data = live().to_json()
    assert list(data) == ["generated", "source", "cachedAt", "services", "issues"]
    assert (data["generated"], data["source"], data["cachedAt"]) == (
        "2026-11-20T21:00:00Z",
        SOURCE_GRAPH,
        None,
    )
    # openIncidents and openAdvisories came after the first three: keys are only ever added.
    assert list(data["services"][0]) == [
        "id",
        "service",
        "status",
        "openIncidents",
        "openAdvisories",
    ]
    assert list(data["issues"][0]) == ISSUE_KEYS
    first = data["issues"][0]
    assert first["url"] == (
        "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/TM300100"
    )
    assert first["isResolved"] is False
    assert first["endDateTime"] is None


# -- status from the state file ----------------------------------------------------------------


def test_cached_status_without_state_file_says_run_poll(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    with pytest.raises(StateError) as info:
        status_from_state(store, StatusQuery(), now=NOW)
    assert str(info.value) == (
        f"there is no local state yet ({tmp_path / 'state.json'}): run `m365watch poll` "
        "first, or leave out --cached"
    )
    assert info.value.exit_code == EXIT_RUNTIME
    assert not (tmp_path / "state.json").exists()


def test_cached_status_reads_the_state_file(tmp_path: Path) -> None:
    gone = open_issue("SP100", "SharePoint Online", "serviceDegradation", "incident")
    store = write_state(tmp_path / "state.json", [*ISSUES, gone], missing=("SP100",))
    report = status_from_state(store, StatusQuery(), now=NOW)
    assert report.source == SOURCE_CACHE
    assert report.cached_at == NOW - timedelta(minutes=12)
    # SP100 left Graph's feed: its last known state is not news.
    assert [i.id for i in report.issues] == ["TM300100", "EX1256020", "EX1256100", "MO226784"]
    # No healthOverviews in the state: each service has its worst open issue's status.
    assert [s.to_json() for s in report.unhealthy_services] == [
        {"id": None, "service": "Microsoft Teams", "status": "serviceInterruption"}
        | {"openIncidents": 1, "openAdvisories": 0},
        {"id": None, "service": "Exchange Online", "status": "serviceDegradation"}
        | {"openIncidents": 1, "openAdvisories": 1},
        {"id": None, "service": "Microsoft 365 suite", "status": "brandNewStatus"}
        | {"openIncidents": 0, "openAdvisories": 1},
    ]
    assert report.to_json()["cachedAt"] == "2026-11-20T20:48:00Z"


def test_cached_status_filters_like_live(tmp_path: Path) -> None:
    store = write_state(tmp_path / "state.json", ISSUES)
    query = StatusQuery(services=("microsoft forms",), include_resolved=True)
    report = status_from_state(store, query, now=NOW)
    assert [i.id for i in report.issues] == ["FM298724"]
    assert report.services == ()  # nothing open on Forms


def test_build_status_is_pure() -> None:
    issues = [Issue.from_graph(i) for i in ISSUES]
    overviews = [ServiceHealth.from_graph(o) for o in OVERVIEWS]
    first = build_status(overviews, issues, StatusQuery(), now=NOW, source=SOURCE_GRAPH)
    again = build_status(overviews, issues, StatusQuery(), now=NOW, source=SOURCE_GRAPH)
    assert first == again


# -- show ---------------------------------------------------------------------------------------


def test_show_from_graph_has_every_post_in_time_order_with_links() -> None:
    shuffled = {**CR275975, "posts": list(reversed(CR275975["posts"]))}
    graph = FakeGraph([], [shuffled])
    detail = issue_from_graph(graph, "cr275975", now=NOW)
    assert graph.calls == [("issue", "CR275975")]
    created = [p.created for p in detail.posts]
    assert created == sorted(c for c in created if c is not None)
    assert len(detail.posts) == 3
    assert (
        "review the following documentation. "
        "(https://docs.microsoft.com/en-us/power-platform/admin/dlp-custom-connector-parity)"
    ) in detail.posts[1].text
    assert "<" not in "".join(p.text for p in detail.posts)


def test_show_json_contract() -> None:
    detail = issue_from_graph(FakeGraph([], [FM298724]), "FM298724", now=NOW)
    data = detail.to_json()
    assert list(data) == [*ISSUE_KEYS, "posts"]
    assert data["status"] == "postIncidentReviewPublished"
    assert len(data["posts"]) == 6
    assert data["posts"][0] == {
        "createdDateTime": "2021-11-17T13:32:11.507Z",
        "postType": "regular",
        "text": FM298724["posts"][0]["description"]["content"],
    }


def test_show_missing_issue_from_graph_is_not_found() -> None:
    with pytest.raises(NotFoundError) as info:
        issue_from_graph(FakeGraph([], ISSUES), "EX9999999", now=NOW)
    assert info.value.exit_code == EXIT_NOT_FOUND


def test_show_from_state_any_case_and_missing_since(tmp_path: Path) -> None:
    store = write_state(tmp_path / "state.json", ISSUES, missing=("TM300100",))
    detail = issue_from_state(store, " tm300100 ", now=NOW)
    assert detail.issue.id == "TM300100"
    assert detail.source == SOURCE_CACHE
    assert detail.cached_at == NOW - timedelta(minutes=12)
    assert detail.missing_since == NOW - timedelta(minutes=60)
    assert len(detail.posts) == 3


def test_show_from_state_of_unknown_id_is_not_found(tmp_path: Path) -> None:
    store = write_state(tmp_path / "state.json", ISSUES)
    with pytest.raises(NotFoundError) as info:
        issue_from_state(store, "EX9999999", now=NOW)
    assert str(info.value) == (
        f"issue EX9999999 is not in the local state ({tmp_path / 'state.json'}): it may not "
        "exist or be newer than the last poll; leave out --cached to ask Microsoft Graph"
    )
    assert info.value.exit_code == EXIT_NOT_FOUND


def test_show_from_state_without_state_file(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="run `m365watch poll` first"):
        issue_from_state(StateStore(tmp_path / "state.json"), "EX1", now=NOW)


# -- words about time --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(seconds=-30), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=1), "1 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=1), "1 h ago"),
        (timedelta(hours=47), "47 h ago"),
        (timedelta(days=2), "2 days ago"),
        (timedelta(days=400), "400 days ago"),
    ],
    ids=[
        "clock-ahead",
        "seconds",
        "a-minute",
        "under-an-hour",
        "an-hour",
        "under-two-days",
        "two-days",
        "long-ago",
    ],
)
def test_ago(delta: timedelta, words: str) -> None:
    assert ago(NOW - delta, NOW) == words


def test_ago_of_unknown_time() -> None:
    assert ago(None, NOW) == "unknown"


def test_cache_note() -> None:
    assert cache_note(NOW - timedelta(minutes=12), NOW) == (
        "From the local state, as of the last poll 12 min ago (2026-11-20 20:48 UTC)."
    )


def test_status_asks_for_every_issue_when_graph_refuses_the_filter() -> None:
    import responses

    from m365watch.graph import GraphClient

    base = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
    open_issue = {
        "id": "EX1",
        "title": "Open",
        "service": "Exchange Online",
        "status": "serviceDegradation",
        "classification": "incident",
        "isResolved": False,
    }
    closed_issue = {
        **open_issue,
        "id": "EX2",
        "title": "Closed",
        "isResolved": True,
        "status": "serviceRestored",
    }
    with responses.RequestsMock() as rsps:
        rsps.get(f"{base}/healthOverviews", json={"value": []})
        refused = rsps.get(
            f"{base}/issues",
            match=[responses.matchers.query_param_matcher({"$filter": "isResolved eq false"})],
            status=400,
            json={"error": {"code": "BadRequest", "message": "Invalid filter clause"}},
        )
        everything = rsps.get(
            f"{base}/issues",
            match=[responses.matchers.query_param_matcher({})],
            json={"value": [open_issue, closed_issue]},
        )
        graph = GraphClient(
            graph_endpoint="https://graph.microsoft.com", get_token=lambda deadline: "t"
        )
        report = status_from_graph(graph, StatusQuery(), now=NOW)
    assert (refused.call_count, everything.call_count) == (1, 1)
    assert [i.id for i in report.issues] == ["EX1"]  # still filtered here
