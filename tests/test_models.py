"""Tests for m365watch.models: tolerant parsing of Graph's service-health JSON.

Payloads under tests/data/ are copied unchanged from /work/shared/graph-samples
(see its README): ``cli-microsoft365-*`` are live responses captured by
pnp/cli-microsoft365 (MIT, commit 4fc70756ea5979ab7bee90d53f72ec39c6856a32) or that
CLI's printed output (bare arrays, docs commit 2a27875133d80a0c1806844e3e05315adc5ed26a),
``docs-beta2021-*`` are Microsoft's hand-written Graph doc examples (PascalCase enums,
the ``ServicaOperational`` typo; microsoftgraph/microsoft-graph-docs commit
b1c42ca80270cebd6fa2842726a710c610f7c39c).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from m365watch.models import (
    Issue,
    ParseError,
    Post,
    ServiceHealth,
    canonical_classification,
    canonical_status,
    format_timestamp,
    is_issue_id,
    parse_issues,
    parse_timestamp,
)
from tests.helpers import DATA, load_json

UTC = timezone.utc


def issue_payloads(doc: Any) -> list[dict[str, Any]]:
    """The serviceHealthIssue objects in any sample shape (envelope, bare array, expanded)."""
    if isinstance(doc, list):
        return [item for element in doc for item in issue_payloads(element)]
    if not isinstance(doc, dict):
        return []
    if "value" in doc:
        return issue_payloads(doc["value"])
    if "issues" in doc:  # a serviceHealth with $expand=issues
        return list(doc["issues"])
    if "isResolved" in doc:
        return [doc]
    return []


def overview_payloads(doc: Any) -> list[dict[str, Any]]:
    """The serviceHealth objects in a healthOverviews sample."""
    items = doc if isinstance(doc, list) else doc.get("value", [doc])
    return [item for item in items if "isResolved" not in item]


def base_issue(**overrides: Any) -> dict[str, Any]:
    """A complete, camelCase serviceHealthIssue; ``overrides`` replace keys."""
    data: dict[str, Any] = {
        "id": "EX1256020",
        "title": "Users can't access their mailboxes",
        "impactDescription": "Users may be unable to access their mailboxes.",
        "classification": "incident",
        "origin": "microsoft",
        "status": "serviceDegradation",
        "service": "Exchange Online",
        "feature": "E-Mail and calendar access",
        "featureGroup": "E-Mail and calendar access",
        "isResolved": False,
        "startDateTime": "2026-11-20T13:42:00Z",
        "endDateTime": None,
        "lastModifiedDateTime": "2026-11-20T15:21:40.9720778Z",
        "details": [],
        "posts": [
            {
                "createdDateTime": "2026-11-20T14:05:11.2Z",
                "postType": "quick",
                "description": {"contentType": "html", "content": "<p>First</p>"},
            },
            {
                "createdDateTime": "2026-11-20T15:21:40.9720778Z",
                "postType": "regular",
                "description": {"contentType": "text", "content": "Second"},
            },
        ],
    }
    data.update(overrides)
    return data


# --- timestamps -------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2021-02-01T19:23:04Z", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("2022-05-17T11:00:42.2Z", datetime(2022, 5, 17, 11, 0, 42, 200000, tzinfo=UTC)),
        ("2021-08-06T17:49:34.54Z", datetime(2021, 8, 6, 17, 49, 34, 540000, tzinfo=UTC)),
        ("2021-08-06T18:13:57.923Z", datetime(2021, 8, 6, 18, 13, 57, 923000, tzinfo=UTC)),
        ("2021-01-01T00:00:00.1234Z", datetime(2021, 1, 1, 0, 0, 0, 123400, tzinfo=UTC)),
        ("2021-01-01T00:00:00.12345Z", datetime(2021, 1, 1, 0, 0, 0, 123450, tzinfo=UTC)),
        ("2021-01-01T00:00:00.123456Z", datetime(2021, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2021-09-21T04:07:15.9720778Z", datetime(2021, 9, 21, 4, 7, 15, 972077, tzinfo=UTC)),
        ("2021-02-01T19:23:04+00:00", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("2021-02-01T21:23:04+02:00", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("2021-02-01T11:23:04.5-08:00", datetime(2021, 2, 1, 19, 23, 4, 500000, tzinfo=UTC)),
        ("2021-02-02T00:53:04+0530", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("2021-02-01T19:23:04", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("  2021-02-01T19:23:04Z\n", datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC)),
        ("not a time", None),
        ("2021-02-01", None),
        ("2021-02-30T00:00:00Z", None),
        ("2021-02-01T25:00:00Z", None),
        ("2021-02-01T19:23:04.Z", None),
        ("2021-02-01T19:23:04Zjunk", None),
        ("", None),
        ("   ", None),
        (None, None),
        (1612207384, None),
    ],
    ids=[
        "0-digits",
        "1-digit",
        "2-digits",
        "3-digits",
        "4-digits",
        "5-digits",
        "6-digits",
        "7-digits-truncated",
        "offset-zero",
        "offset-plus-2h",
        "offset-minus-8h-with-fraction",
        "offset-without-colon",
        "no-zone-means-utc",
        "surrounding-whitespace",
        "garbage",
        "date-only",
        "impossible-date",
        "impossible-hour",
        "dot-without-digits",
        "trailing-junk",
        "empty",
        "blank",
        "none",
        "number",
    ],
)
def test_parse_timestamp(raw: object, expected: datetime | None) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2021, 2, 1, 19, 23, 4, tzinfo=UTC), "2021-02-01T19:23:04Z"),
        (datetime(2021, 8, 6, 17, 49, 34, 540000, tzinfo=UTC), "2021-08-06T17:49:34.54Z"),
        (datetime(2021, 9, 21, 4, 7, 15, 972077, tzinfo=UTC), "2021-09-21T04:07:15.972077Z"),
        (
            datetime(2021, 2, 1, 21, 23, 4, tzinfo=timezone(timedelta(hours=2))),
            "2021-02-01T19:23:04Z",
        ),
        (None, None),
    ],
    ids=["whole-seconds", "trailing-zeros-dropped", "microseconds", "converted-to-utc", "none"],
)
def test_format_timestamp(value: datetime | None, expected: str | None) -> None:
    assert format_timestamp(value) == expected
    assert parse_timestamp(expected) == value


# --- enums ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("serviceRestored", "serviceRestored"),
        ("ServiceRestored", "serviceRestored"),
        ("SERVICERESTORED", "serviceRestored"),
        (" investigating ", "investigating"),
        ("PostIncidentReviewPublished", "postIncidentReviewPublished"),
        ("ServicaOperational", "serviceOperational"),
        ("servicaOperational", "serviceOperational"),
        ("unknownFutureValue", "unknownFutureValue"),
        ("somethingMicrosoftAddsLater", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
    ids=[
        "camelCase",
        "PascalCase",
        "upper",
        "whitespace",
        "PascalCase-pir",
        "doc-typo-ServicaOperational",
        "doc-typo-camel",
        "unknownFutureValue-member",
        "unknown-value",
        "empty",
        "none",
    ],
)
def test_canonical_status(raw: str | None, expected: str) -> None:
    assert canonical_status(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("incident", "incident"),
        ("Incident", "incident"),
        ("ADVISORY", "advisory"),
        ("outage", "unknown"),
        (None, "unknown"),
    ],
    ids=["camelCase", "PascalCase", "upper", "unknown-value", "none"],
)
def test_canonical_classification(raw: str | None, expected: str) -> None:
    assert canonical_classification(raw) == expected


@pytest.mark.parametrize(
    ("status", "expected_status", "expected_raw", "expected_text"),
    [
        ("ServiceRestored", "serviceRestored", "ServiceRestored", "Service restored"),
        ("ServicaOperational", "serviceOperational", "ServicaOperational", "Service operational"),
        ("brandNewStatus", "unknown", "brandNewStatus", "brandNewStatus"),
        (None, "unknown", None, "Unknown"),
    ],
    ids=["PascalCase", "doc-typo", "unknown-kept-raw", "missing"],
)
def test_issue_status_keeps_raw_value(
    status: str | None, expected_status: str, expected_raw: str | None, expected_text: str
) -> None:
    issue = Issue.from_graph(base_issue(status=status))
    assert issue.status == expected_status
    assert issue.status_raw == expected_raw
    assert issue.status_text == expected_text


def test_unknown_status_and_classification_survive_to_graph() -> None:
    issue = Issue.from_graph(base_issue(status="brandNewStatus", classification="Outage"))
    assert issue.classification == "unknown"
    graph = issue.to_graph()
    assert graph["status"] == "brandNewStatus"
    assert graph["classification"] == "Outage"


# --- every real sample ------------------------------------------------------

# file -> the issue ids it holds, in order.
SAMPLE_ISSUE_IDS: dict[str, list[str]] = {
    "cli-microsoft365-healthissue-get-CR275975.json": ["CR275975"],
    "cli-microsoft365-healthissue-list.json": ["CR275975", "FM298724"],
    "cli-microsoft365-healthissue-list-filter-service-forms.json": ["FM298724"],
    "cli-microsoft365-docs-healthissue-get.json": ["CR384241"],
    "cli-microsoft365-docs-healthissue-list.json": ["CR384241"],
    "cli-microsoft365-docs-health-get-1.json": ["EX415080"],
    "cli-microsoft365-docs-health-list-1.json": ["CS381143"],
    "cli-microsoft365-health-get-serviceHealthIssueResponse.json": ["EX226574"],
    "cli-microsoft365-health-list-serviceHealthIssuesResponse.json": ["EX226574"],
    "docs-beta2021-list-issues.json": ["EX226792"],
    "docs-beta2021-get-issue.json": ["MO226784"],
    "docs-beta2021-get-servicehealth-expand-issues.json": ["MO226574"],
    "docs-beta2021-list-healthoverviews-expand-issues.json": ["EX226574"],
}


def test_every_data_file_with_issues_is_in_the_table() -> None:
    holding = {
        path.name
        for path in DATA.glob("*.json")
        if issue_payloads(json.loads(path.read_text(encoding="utf-8")))
    }
    assert holding == set(SAMPLE_ISSUE_IDS)


@pytest.mark.parametrize(
    ("name", "ids"), list(SAMPLE_ISSUE_IDS.items()), ids=list(SAMPLE_ISSUE_IDS)
)
def test_from_graph_parses_every_real_sample(name: str, ids: list[str]) -> None:
    payloads = issue_payloads(load_json(name))
    issues = [Issue.from_graph(p) for p in payloads]
    assert [i.id for i in issues] == ids
    for issue, payload in zip(issues, payloads, strict=True):
        assert issue.title == payload["title"]
        assert issue.service == payload["service"]
        assert issue.status == canonical_status(payload["status"]) != "unknown"
        assert issue.classification in ("incident", "advisory")
        assert issue.is_resolved is payload["isResolved"]
        assert issue.last_modified == parse_timestamp(payload["lastModifiedDateTime"])
        assert len(issue.posts) == len(payload["posts"])
        created = [p.created for p in issue.posts]
        assert None not in created
        assert created == sorted(created)  # type: ignore[type-var]
        assert Issue.from_graph(issue.to_graph()) == issue


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "cli-microsoft365-healthissue-get-CR275975.json",
            {
                "status": "serviceRestored",
                "classification": "advisory",
                "is_resolved": True,
                "feature": "Other",
                "start": datetime(2021, 8, 2, 14, 36, tzinfo=UTC),
                "posts": 3,
            },
        ),
        (
            "docs-beta2021-get-issue.json",
            {
                "status": "serviceRestored",
                "classification": "advisory",
                "is_resolved": True,
                "feature": "Access",
                "start": datetime(2020, 11, 14, 8, 15, tzinfo=UTC),
                "posts": 1,
            },
        ),
    ],
    ids=["live-camelCase", "doc-PascalCase"],
)
def test_from_graph_fields_of_a_sample(name: str, expected: dict[str, Any]) -> None:
    issue = Issue.from_graph(issue_payloads(load_json(name))[0])
    actual = {
        "status": issue.status,
        "classification": issue.classification,
        "is_resolved": issue.is_resolved,
        "feature": issue.feature,
        "start": issue.start,
        "posts": len(issue.posts),
    }
    assert actual == expected


def test_pascal_case_post_fields_are_normalised() -> None:
    issue = Issue.from_graph(load_json("docs-beta2021-get-issue.json"))
    post = issue.posts[0]
    assert post.content_type == "text"  # "Text" in Microsoft's example
    assert post.post_type == "Regular"
    assert post.created == datetime(2020, 11, 12, 7, 7, 38, 970000, tzinfo=UTC)
    assert post.content.startswith("Title: Intermittently unable to invite partners")


def test_posts_are_sorted_by_created_time_when_given_out_of_order() -> None:
    payload = issue_payloads(
        load_json("cli-microsoft365-healthissue-list-filter-service-forms.json")
    )[0]
    in_order = Issue.from_graph(payload)
    shuffled = copy.deepcopy(payload)
    posts = shuffled["posts"]
    shuffled["posts"] = [posts[3], posts[0], posts[5], posts[1], posts[4], posts[2]]
    reordered = Issue.from_graph(shuffled)
    assert reordered.posts == in_order.posts
    assert [p.key for p in reordered.posts] == [
        "2021-11-17T13:32:11.507Z",
        "2021-11-17T13:43:12.06Z",
        "2021-11-17T14:15:34.897Z",
        "2021-11-19T15:58:37.487Z",
        "2021-11-24T18:01:53.493Z",
        "2021-11-24T18:04:07.063Z",
    ]


def test_posts_without_a_time_sort_last() -> None:
    untimed = {"createdDateTime": None, "description": {"contentType": "text", "content": "?"}}
    issue = Issue.from_graph(base_issue(posts=[untimed, *base_issue()["posts"]]))
    assert [p.content for p in issue.posts] == ["<p>First</p>", "Second", "?"]
    assert issue.latest_post is not None
    assert issue.latest_post.key.startswith("untimed:")


@pytest.mark.parametrize(
    ("overrides", "attribute", "expected"),
    [
        ({"feature": None}, "feature", None),
        ({"featureGroup": None}, "feature_group", None),
        ({"details": None}, "feature", "E-Mail and calendar access"),
        ({"posts": None}, "posts", ()),
        ({"posts": []}, "posts", ()),
        ({"impactDescription": None}, "impact_description", None),
        ({"endDateTime": None}, "end", None),
        ({"title": None}, "title", "(no title)"),
        ({"service": None}, "service", "(unknown service)"),
        ({"isResolved": None}, "is_resolved", False),
        ({"isResolved": "true"}, "is_resolved", True),
        (
            {"posts": [{"createdDateTime": "2026-11-20T14:05:11Z", "description": None}]},
            "posts",
            (
                Post(
                    created=datetime(2026, 11, 20, 14, 5, 11, tzinfo=UTC),
                    post_type=None,
                    content="",
                    content_type="text",
                ),
            ),
        ),
        (
            {"posts": [{"createdDateTime": "2026-11-20T14:05:11Z", "postType": None}]},
            "posts",
            (
                Post(
                    created=datetime(2026, 11, 20, 14, 5, 11, tzinfo=UTC),
                    post_type=None,
                    content="",
                    content_type="text",
                ),
            ),
        ),
        ({"posts": ["not a post", None]}, "posts", ()),
        ({"highImpact": None, "@odata.context": "x", "somethingNew": {"a": 1}}, "id", "EX1256020"),
    ],
    ids=[
        "feature-null",
        "featureGroup-null",
        "details-null",
        "posts-null",
        "posts-empty",
        "impactDescription-null",
        "endDateTime-null",
        "title-null",
        "service-null",
        "isResolved-null",
        "isResolved-string",
        "post-description-null",
        "post-postType-null-and-no-description",
        "post-not-an-object",
        "extra-keys-ignored",
    ],
)
def test_from_graph_tolerates_nulls_and_extras(
    overrides: dict[str, Any], attribute: str, expected: object
) -> None:
    assert getattr(Issue.from_graph(base_issue(**overrides)), attribute) == expected


def test_extra_keys_do_not_change_the_issue() -> None:
    plain = Issue.from_graph(base_issue())
    extra = Issue.from_graph(base_issue(highImpact=None, somethingNew=[1, 2]))
    assert extra == plain
    assert "highImpact" not in extra.to_graph()


@pytest.mark.parametrize(
    "payload",
    [base_issue(id=None), base_issue(id=""), base_issue(id=1256020), {"title": "only a title"}],
    ids=["id-null", "id-empty", "id-number", "id-missing"],
)
def test_from_graph_without_id_raises_parse_error(payload: dict[str, Any]) -> None:
    with pytest.raises(ParseError):
        Issue.from_graph(payload)


def test_parse_issues_skips_items_without_id() -> None:
    items = [base_issue(id="EX1"), {"title": "no id"}, base_issue(id=""), base_issue(id="EX2")]
    issues, skipped = parse_issues(items)
    assert [i.id for i in issues] == ["EX1", "EX2"]
    assert skipped == 2


# --- to_graph / same_content -------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        base_issue(),
        base_issue(status="ServiceRestored", classification="Advisory", isResolved=True),
        base_issue(status="brandNewStatus", classification="Outage"),
        base_issue(feature=None, posts=None, impactDescription=None, endDateTime=None),
        base_issue(posts=[{"createdDateTime": None, "description": None}]),
    ],
    ids=["complete", "PascalCase", "unknown-values", "nulls", "untimed-post"],
)
def test_to_graph_round_trips(payload: dict[str, Any]) -> None:
    issue = Issue.from_graph(payload)
    again = Issue.from_graph(issue.to_graph())
    assert again == issue
    assert again.status_text == issue.status_text
    assert again.to_graph() == issue.to_graph()


def test_to_graph_is_json_safe_and_uses_graph_names() -> None:
    graph = Issue.from_graph(base_issue(status="ServiceDegradation")).to_graph()
    assert json.loads(json.dumps(graph)) == graph
    assert graph["status"] == "serviceDegradation"
    assert graph["lastModifiedDateTime"] == "2026-11-20T15:21:40.972077Z"
    assert graph["posts"][0] == {
        "createdDateTime": "2026-11-20T14:05:11.2Z",
        "postType": "quick",
        "description": {"contentType": "html", "content": "<p>First</p>"},
    }
    assert "posts" not in Issue.from_graph(base_issue()).to_graph(with_posts=False)


@pytest.mark.parametrize(
    ("overrides", "same"),
    [
        ({}, True),
        ({"lastModifiedDateTime": "2026-11-20T16:00:00Z"}, True),
        ({"lastModifiedDateTime": None}, True),
        ({"status": "ServiceDegradation"}, True),
        ({"status": "serviceInterruption"}, False),
        ({"classification": "advisory"}, False),
        ({"isResolved": True}, False),
        ({"title": "A new title"}, False),
        ({"impactDescription": "Wider impact."}, False),
        ({"feature": "Other"}, False),
        ({"endDateTime": "2026-11-20T20:15:00Z"}, False),
        ({"posts": base_issue()["posts"][:1]}, False),
    ],
    ids=[
        "identical",
        "lastModified-moved",
        "lastModified-gone",
        "status-casing-only",
        "status",
        "classification",
        "isResolved",
        "title",
        "impactDescription",
        "feature",
        "endDateTime",
        "posts",
    ],
)
def test_same_content_ignores_last_modified_only(overrides: dict[str, Any], same: bool) -> None:
    before = Issue.from_graph(base_issue())
    after = Issue.from_graph(base_issue(**overrides))
    assert before.same_content(after) is same
    assert after.same_content(before) is same


def test_issue_url_and_properties() -> None:
    issue = Issue.from_graph(base_issue())
    assert (
        issue.url
        == "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1256020"
    )
    assert issue.severity == 4
    assert issue.latest_post == issue.posts[-1]
    assert replace(issue, posts=()).latest_post is None


# --- healthOverviews --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "docs-beta2021-list-healthoverviews.json",
            [
                ("Exchange", "Exchange Online", "serviceOperational", "ServicaOperational"),
                ("OrgLiveID", "Identity Service", "serviceRestored", "ServiceRestored"),
                ("OSDPPlatform", "Microsoft 365 suite", "serviceOperational", "ServiceOperational"),
            ],
        ),
        (
            "docs-beta2021-get-servicehealth.json",
            [("OSDPPlatform", "Microsoft 365 suite", "restoringService", "RestoringService")],
        ),
        (
            "docs-beta2021-get-servicehealth-expand-issues.json",
            [("OSDPPlatform", "Microsoft 365 suite", "serviceOperational", "ServiceOperational")],
        ),
        (
            "cli-microsoft365-health-list-serviceHealthResponse.json",
            [
                ("Exchange", "Exchange Online", "serviceOperational", "serviceOperational"),
                ("OrgLiveID", "Identity Service", "serviceOperational", "serviceOperational"),
                ("OSDPPlatform", "Microsoft 365 suite", "serviceOperational", "serviceOperational"),
            ],
        ),
        (
            "cli-microsoft365-health-get-serviceHealthResponse.json",
            [("Exchange", "Exchange Online", "serviceOperational", "serviceOperational")],
        ),
        (
            "cli-microsoft365-docs-health-get.json",
            [("Exchange", "Exchange Online", "serviceDegradation", "serviceDegradation")],
        ),
        (
            "cli-microsoft365-docs-health-list-1.json",
            [
                (
                    "cloudappsecurity",
                    "Microsoft Defender for Cloud Apps",
                    "serviceOperational",
                    "serviceOperational",
                )
            ],
        ),
    ],
    ids=[
        "doc-PascalCase-and-typo",
        "doc-get-PascalCase",
        "doc-get-expanded",
        "cli-list",
        "cli-get",
        "cli-docs-get",
        "cli-docs-bare-array-expanded",
    ],
)
def test_service_health_from_real_samples(
    name: str, expected: list[tuple[str, str, str, str]]
) -> None:
    overviews = [ServiceHealth.from_graph(o) for o in overview_payloads(load_json(name))]
    assert [(o.id, o.service, o.status, o.status_raw) for o in overviews] == expected
    for overview in overviews:
        assert ServiceHealth.from_graph(overview.to_graph()) == overview


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"id": "Exchange", "status": "brandNew"},
            ServiceHealth("Exchange", "Exchange", "unknown"),
        ),
        ({"service": "Exchange Online"}, ServiceHealth("", "Exchange Online", "unknown")),
        ({}, ServiceHealth("", "(unknown)", "unknown")),
    ],
    ids=["unknown-status-and-no-name", "no-id", "empty"],
)
def test_service_health_tolerates_missing_fields(
    payload: dict[str, Any], expected: ServiceHealth
) -> None:
    parsed = ServiceHealth.from_graph(payload)
    assert parsed == expected
    assert parsed.to_graph()["status"] == (payload.get("status") or "unknown")


def test_casing_of_an_unknown_status_is_not_a_change_of_content() -> None:
    base = {"id": "EX1", "title": "t", "service": "s", "classification": "incident"}
    one = Issue.from_graph({**base, "status": "NewThing"})
    other = Issue.from_graph({**base, "status": "newthing"})
    assert one.same_content(other)
    assert not one.same_content(Issue.from_graph({**base, "status": "OtherThing"}))


def test_control_characters_from_graph_never_reach_a_terminal() -> None:
    issue = Issue.from_graph(
        {
            "id": "EX1",
            "title": "Mail \x1b]0;owned\x07down\r\x9b31m",
            "service": "Exchange\x00 Online",
            "posts": [
                {
                    "createdDateTime": "2026-11-20T14:05:00Z",
                    "description": {"contentType": "text", "content": "line 1\n\tline 2\x1b[2J"},
                }
            ],
        }
    )
    assert issue.title == "Mail ]0;owneddown31m"
    assert issue.service == "Exchange Online"
    assert issue.posts[0].content == "line 1\n\tline 2[2J"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EX1256020", True),
        ("mo226784", True),
        ("ABCD1", True),
        ("E1", False),
        ("ABCDE1", False),
        ("EX", False),
        (" EX1 ", False),
        ("EX1/../x", False),
        ("EX\u0661", False),  # an Arabic-Indic digit must not reach a URL
        ("", False),
    ],
    ids=[
        "upper",
        "lower",
        "four-letters",
        "one-letter",
        "five-letters",
        "no-digits",
        "spaces",
        "path",
        "non-ascii-digit",
        "empty",
    ],
)
def test_is_issue_id(text: str, expected: bool) -> None:
    assert is_issue_id(text) is expected
