"""Tests for m365watch.graph: paging, retries, error mapping, token safety.

Payloads under tests/data/ are copied unchanged from /work/shared/graph-samples
(see its README): ``cli-microsoft365-*`` are live responses captured by
pnp/cli-microsoft365 (MIT, commit 4fc70756ea5979ab7bee90d53f72ec39c6856a32),
``docs-*`` are Microsoft's hand-written Graph doc examples (PascalCase enums,
microsoftgraph/microsoft-graph-docs commit b1c42ca80270cebd6fa2842726a710c610f7c39c).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from m365watch import __version__, graph
from m365watch.errors import GraphError, NotFoundError
from m365watch.graph import GraphClient

DATA = Path(__file__).parent / "data"
GRAPH = "https://graph.microsoft.com"
BASE = f"{GRAPH}/v1.0/admin/serviceAnnouncement"
ISSUES = f"{BASE}/issues"
OVERVIEWS = f"{BASE}/healthOverviews"
# JWT-shaped, like a real Entra token, so both exact and pattern scrubbing are exercised.
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2dyYXBoIn0.c2lnbmF0dXJl"
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class FakeSleep:
    """Records requested waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_client(sleep: FakeSleep) -> Callable[..., GraphClient]:
    def make(**overrides: Any) -> GraphClient:
        options: dict[str, Any] = {
            "graph_endpoint": GRAPH,
            "get_token": lambda deadline: TOKEN,
            "session": requests.Session(),
            "sleep": sleep,
            "clock": lambda: NOW,
        }
        options.update(overrides)
        return GraphClient(**options)

    return make


def page(name: str, next_link: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = load(name)
    if next_link is not None:
        body["@odata.nextLink"] = next_link
    return body


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# -- paging ------------------------------------------------------------------

PAGE2 = f"{ISSUES}?$skiptoken=page2%3D%3D"
PAGE3 = f"{ISSUES}?$skiptoken=page3%3D%3D"


def test_list_issues_follows_next_links_across_three_pages(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    # Real camelCase pages first, Microsoft's PascalCase doc example last.
    mocked.get(
        ISSUES,
        json=page("cli-microsoft365-healthissue-list.json", PAGE2),
        match=[matchers.query_string_matcher("")],
    )
    mocked.get(
        PAGE2,
        json=page("cli-microsoft365-healthissue-list-filter-service-forms.json", PAGE3),
        match=[matchers.query_string_matcher("$skiptoken=page2%3D%3D")],
    )
    mocked.get(
        PAGE3,
        json=page("docs-beta2021-list-issues.json"),
        match=[matchers.query_string_matcher("$skiptoken=page3%3D%3D")],
    )
    client = make_client()

    issues = client.list_issues()

    assert ids(issues) == ["CR275975", "FM298724", "FM298724", "EX226792"]
    assert issues[-1]["status"] == "ServiceRestored"  # returned raw, casing untouched
    assert client.request_count == 3
    assert [call.request.url for call in mocked.calls] == [ISSUES, PAGE2, PAGE3]
    for call in mocked.calls:
        headers = call.request.headers
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Prefer"] == "odata.maxpagesize=1000"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"] == f"m365watch/{__version__}"


def test_list_issues_sends_filter_percent_encoded(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(ISSUES, json=load("cli-microsoft365-healthissue-list-filter-service-forms.json"))
    client = make_client()

    issues = client.list_issues(filter="service eq 'Microsoft Forms'")

    assert ids(issues) == ["FM298724"]
    assert mocked.calls[0].request.url == (
        f"{ISSUES}?$filter=service%20eq%20%27Microsoft%20Forms%27"
    )


def test_list_health_overviews_pages_without_prefer_header(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    next_link = f"{OVERVIEWS}?$skiptoken=x"
    first = {
        "value": [
            {"service": "SharePoint Online", "status": "serviceOperational", "id": "SharePoint"}
        ]
    }
    first["@odata.nextLink"] = next_link  # type: ignore[assignment]
    mocked.get(OVERVIEWS, json=first, match=[matchers.query_string_matcher("")])
    mocked.get(next_link, json=load("docs-beta2021-list-healthoverviews.json"))
    client = make_client()

    overviews = client.list_health_overviews()

    assert ids(overviews) == ["SharePoint", "Exchange", "OrgLiveID", "OSDPPlatform"]
    assert overviews[1]["status"] == "ServicaOperational"  # Microsoft's typo passes through
    assert all("Prefer" not in call.request.headers for call in mocked.calls)
    assert client.request_count == 2


def test_get_issue_returns_the_raw_object(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    body = load("cli-microsoft365-healthissue-get-CR275975.json")
    mocked.get(f"{ISSUES}/CR275975", json=body)
    client = make_client()

    assert client.get_issue("CR275975") == body
    assert client.request_count == 1
    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_requests_use_connect_and_read_timeout(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(ISSUES, json={"value": []})
    make_client(timeout=12.5).list_issues()

    assert mocked.calls[0].request.req_kwargs["timeout"] == (12.5, 12.5)  # type: ignore[attr-defined]


def test_default_session_trusts_environment(mocked: responses.RequestsMock) -> None:
    mocked.get(ISSUES, json={"value": []})
    client = GraphClient(graph_endpoint=GRAPH + "/", get_token=lambda deadline: TOKEN)

    assert client.list_issues() == []
    assert client._session.trust_env  # proxies and REQUESTS_CA_BUNDLE are honoured


def test_token_is_fetched_for_every_attempt(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    # MSAL caches tokens; asking each time lets a token that expired mid-retry renew.
    tokens = iter(["first-token", "second-token"])
    mocked.get(ISSUES, status=503)
    mocked.get(ISSUES, json={"value": []})
    make_client(get_token=lambda deadline: next(tokens)).list_issues()

    assert [call.request.headers["Authorization"] for call in mocked.calls] == [
        "Bearer first-token",
        "Bearer second-token",
    ]


# -- paging guards -----------------------------------------------------------


@pytest.mark.parametrize(
    ("next_link", "expected"),
    [
        (
            "https://evil.example.com/v1.0/admin/serviceAnnouncement/issues?$skiptoken=a",
            "evil.example.com",
        ),
        (
            "http://graph.microsoft.com/v1.0/admin/serviceAnnouncement/issues?$skiptoken=a",
            "refusing",
        ),
        ("https://graph.microsoft.com:8443/v1.0/admin/serviceAnnouncement/issues", "refusing"),
        ("https://graph.microsoft.us/v1.0/admin/serviceAnnouncement/issues", "graph.microsoft.us"),
        ("https://graph.microsoft.com.evil.example/v1.0/issues", "refusing"),
    ],
    ids=["other-host", "downgrade-to-http", "other-port", "other-cloud", "suffix-trick"],
)
def test_next_link_to_another_origin_is_refused(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    next_link: str,
    expected: str,
) -> None:
    mocked.get(ISSUES, json={"value": [{"id": "EX1"}], "@odata.nextLink": next_link})
    client = make_client()

    with pytest.raises(GraphError, match=expected) as caught:
        client.list_issues()

    assert "access token" in str(caught.value)
    assert client.request_count == 1
    assert len(mocked.calls) == 1  # the foreign URL was never requested


def test_next_link_with_explicit_default_port_is_followed(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    next_link = "https://GRAPH.microsoft.com:443/v1.0/admin/serviceAnnouncement/issues?$skiptoken=b"
    mocked.get(
        ISSUES,
        json={"value": [{"id": "EX1"}], "@odata.nextLink": next_link},
        match=[matchers.query_string_matcher("")],
    )
    # responses tells host and host:443 apart; Graph does not.
    mocked.get(
        "https://graph.microsoft.com:443/v1.0/admin/serviceAnnouncement/issues?$skiptoken=b",
        json={"value": [{"id": "EX2"}]},
    )

    assert ids(make_client().list_issues()) == ["EX1", "EX2"]


def test_repeated_next_link_stops_paging(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(
        ISSUES,
        json={"value": [{"id": "EX1"}], "@odata.nextLink": PAGE2},
        match=[matchers.query_string_matcher("")],
    )
    mocked.get(PAGE2, json={"value": [{"id": "EX2"}], "@odata.nextLink": PAGE2})
    client = make_client()

    with pytest.raises(GraphError, match="repeated a next-page link"):
        client.list_issues()
    assert client.request_count == 2


def test_more_than_one_hundred_pages_stops_paging(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    counter = iter(range(1, 1000))

    def endless(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        link = f"{ISSUES}?$skiptoken={next(counter)}"
        return 200, {}, json.dumps({"value": [{"id": "EX1"}], "@odata.nextLink": link})

    mocked.add_callback(responses.GET, ISSUES, callback=endless)
    client = make_client()

    with pytest.raises(GraphError, match="after 100"):
        client.list_issues()
    assert client.request_count == 100


# -- retries -----------------------------------------------------------------


def _throttled(retry_after: str | None = None) -> dict[str, Any]:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return {"status": 429, "json": load("docs-throttling-429-body.json"), "headers": headers}


OK = {"status": 200, "json": {"value": [{"id": "EX1"}]}}


@pytest.mark.parametrize(
    ("answers", "expected_waits"),
    [
        ([_throttled("1.5"), OK], [1.5]),
        ([_throttled("2.128"), OK], [2.128]),
        ([_throttled("3"), OK], [3.0]),
        ([_throttled("0"), OK], [0.0]),
        ([_throttled(), _throttled(), _throttled(), OK], [1.0, 2.0, 4.0]),
        ([_throttled("soon"), OK], [1.0]),
        ([_throttled("-5"), OK], [1.0]),
        ([_throttled("Tue, 14 Nov 2023 22:13:50 GMT"), OK], [30.0]),
        ([_throttled("Mon, 13 Nov 2023 00:00:00 GMT"), OK], [0.0]),
        ([{"status": 503}, OK], [1.0]),
        ([{"status": 503, "headers": {"Retry-After": "7"}}, OK], [7.0]),
        ([{"status": 502, "body": "<html>Bad Gateway</html>"}, OK], [1.0]),
        ([{"status": 504}, {"status": 503}, OK], [1.0, 2.0]),
        ([{"status": 500}, OK], [1.0]),
    ],
    ids=[
        "429-fractional-1.5",
        "429-fractional-2.128-docs-sample",
        "429-whole-seconds",
        "429-zero",
        "429-missing-exponential",
        "429-unparseable-exponential",
        "429-negative-exponential",
        "429-http-date",
        "429-http-date-in-past",
        "503-then-ok",
        "503-with-retry-after",
        "502-html-then-ok",
        "504-503-then-ok",
        "500-retried-once",
    ],
)
def test_retryable_answers_are_retried(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    sleep: FakeSleep,
    answers: list[dict[str, Any]],
    expected_waits: list[float],
) -> None:
    for answer in answers:
        mocked.get(ISSUES, **answer)
    client = make_client()

    assert ids(client.list_issues()) == ["EX1"]
    assert sleep.waits == pytest.approx(expected_waits)
    assert client.request_count == len(answers)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("2.128", 2.128),
        (" 3 ", 3.0),
        ("9" * 400, None),
        ("1e3", None),
        ("Tue, 14 Nov 2023 22:13:50 GMT", 30.0),
        ("Tue, 14 Nov 2023 22:13:50 -0000", 30.0),
        ("Mon, 13 Nov 2023 00:00:00 GMT", 0.0),
    ],
    ids=[
        "absent",
        "fractional",
        "padded",
        "overflows",
        "exponent",
        "http-date",
        "naive-date",
        "past",
    ],
)
def test_retry_after_rule(value: str | None, expected: float | None) -> None:
    assert graph._retry_after(value, lambda: NOW) == expected


def test_exponential_backoff_is_capped(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], sleep: FakeSleep
) -> None:
    for _ in range(8):
        mocked.get(ISSUES, status=503)
    mocked.get(ISSUES, json={"value": []})
    client = make_client(max_attempts=9, max_total_wait=1000)

    client.list_issues()

    assert sleep.waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


@pytest.mark.parametrize(
    ("answers", "options", "expected_waits", "expected_text"),
    [
        ([{"status": 504}] * 4, {}, [1.0, 2.0, 4.0], "unavailable (504 Gateway Timeout) after 4"),
        ([_throttled("120")], {"max_total_wait": 60}, [], "throttling"),
        ([_throttled("40"), _throttled("40")], {"max_total_wait": 60}, [40.0], "60s retry budget"),
        ([_throttled()] * 2, {"max_attempts": 2}, [1.0], "after 2 attempts"),
        ([{"status": 503}], {"max_attempts": 1}, [], "after 1 attempts"),
        ([{"status": 503}] * 2, {"max_total_wait": 2.5}, [1.0], "retry budget"),
        ([{"status": 500}, {"status": 500}], {}, [1.0], "500 Internal Server Error"),
        (
            [_throttled("Wed, 15 Nov 2023 22:13:20 GMT")],
            {},
            [],
            "waiting 86400s more would exceed",
        ),
    ],
    ids=[
        "504-exhausted",
        "retry-after-beyond-budget-gives-up-at-once",
        "second-wait-beyond-budget",
        "429-max-attempts",
        "single-attempt",
        "backoff-beyond-budget",
        "500-only-once",
        "http-date-beyond-budget",
    ],
)
def test_retries_are_bounded(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    sleep: FakeSleep,
    answers: list[dict[str, Any]],
    options: dict[str, Any],
    expected_waits: list[float],
    expected_text: str,
) -> None:
    for answer in answers:
        mocked.get(ISSUES, **answer)
    client = make_client(**options)

    with pytest.raises(GraphError, match="run again later") as caught:
        client.list_issues()

    assert expected_text in str(caught.value)
    assert sleep.waits == expected_waits
    assert client.request_count == len(answers)


def test_wait_budget_covers_all_pages_of_one_call(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], sleep: FakeSleep
) -> None:
    mocked.get(ISSUES, **_throttled("40"), match=[matchers.query_string_matcher("")])
    mocked.get(
        ISSUES,
        json={"value": [{"id": "EX1"}], "@odata.nextLink": PAGE2},
        match=[matchers.query_string_matcher("")],
    )
    mocked.get(PAGE2, **_throttled("40"))
    client = make_client(max_total_wait=60)

    with pytest.raises(GraphError, match="retry budget"):
        client.list_issues()
    assert sleep.waits == [40.0]
    assert client.request_count == 3


def test_wait_budget_is_fresh_for_each_call(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], sleep: FakeSleep
) -> None:
    for _ in range(2):
        mocked.get(ISSUES, **_throttled("40"))
        mocked.get(ISSUES, json={"value": []})
    client = make_client(max_total_wait=60)

    client.list_issues()
    client.list_issues()

    assert sleep.waits == [40.0, 40.0]


# -- network failures --------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "expected_text"),
    [
        (
            requests.exceptions.ReadTimeout("read timed out"),
            "Microsoft Graph did not answer within 30s (ReadTimeout from graph.microsoft.com)",
        ),
        (
            requests.exceptions.ConnectTimeout("connect timed out"),
            "Microsoft Graph did not answer within 30s (ConnectTimeout",
        ),
        (
            requests.exceptions.ConnectionError("Name or service not known"),
            "cannot reach graph host graph.microsoft.com (ConnectionError)",
        ),
        (
            requests.exceptions.ProxyError("proxy refused"),
            "cannot reach graph host graph.microsoft.com (ProxyError)",
        ),
        (
            requests.exceptions.ChunkedEncodingError("connection broken"),
            "cannot reach graph host graph.microsoft.com (ChunkedEncodingError)",
        ),
    ],
    ids=["read-timeout", "connect-timeout", "connection-error", "proxy-error", "dropped-mid-body"],
)
def test_network_failures_are_retried_then_reported(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    sleep: FakeSleep,
    exc: Exception,
    expected_text: str,
) -> None:
    mocked.get(ISSUES, body=exc)
    client = make_client()

    with pytest.raises(GraphError) as caught:
        client.list_issues()

    assert str(caught.value).startswith(expected_text)
    assert "after 4 attempts" in str(caught.value)
    assert sleep.waits == [1.0, 2.0, 4.0]
    assert client.request_count == 4
    assert caught.value.__cause__ is exc


def test_timeout_then_success(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], sleep: FakeSleep
) -> None:
    mocked.get(ISSUES, body=requests.exceptions.ReadTimeout("read timed out"))
    mocked.get(ISSUES, json={"value": [{"id": "EX1"}]})
    client = make_client()

    assert ids(client.list_issues()) == ["EX1"]
    assert sleep.waits == [1.0]
    assert client.request_count == 2


def test_tls_failure_is_not_retried(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], sleep: FakeSleep
) -> None:
    mocked.get(ISSUES, body=requests.exceptions.SSLError("certificate verify failed"))
    client = make_client()

    with pytest.raises(GraphError, match="REQUESTS_CA_BUNDLE"):
        client.list_issues()
    assert sleep.waits == []
    assert client.request_count == 1


# -- HTTP errors -------------------------------------------------------------

NOT_EXIST = load("cli-microsoft365-message-get-error-resource-not-exist.json")


def graph_error(message: str, code: str = "BadRequest") -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.mark.parametrize(
    ("status", "body", "expected_text"),
    [
        (
            401,
            graph_error(
                "Access token validation failure. Invalid audience.", "InvalidAuthenticationToken"
            ),
            "Graph rejected the access token (401 Unauthorized): check that the tenant and cloud",
        ),
        (
            403,
            graph_error("Missing role permissions on the request.", "Forbidden"),
            "Graph answered 403 Forbidden: grant the application permission ServiceHealth.Read.All "
            "to the app registration and have an admin grant consent",
        ),
        (
            # The not-exist body means "missing" only for get_issue; here it is a plain 403.
            403,
            NOT_EXIST,
            "Graph answered 403 Forbidden: grant the application permission ServiceHealth.Read.All",
        ),
        (
            404,
            graph_error("Resource not found for the segment 'issuez'."),
            "Graph answered 404 Not Found for /v1.0/admin/serviceAnnouncement/issues: Resource",
        ),
        (
            400,
            graph_error("Invalid filter clause: Could not find a property named 'servce'."),
            "Graph answered 400 Bad Request for /v1.0/admin/serviceAnnouncement/issues: "
            "Invalid filter clause: Could not find a property named 'servce'.",
        ),
        (
            400,
            NOT_EXIST,
            "Graph answered 400 Bad Request for /v1.0/admin/serviceAnnouncement/issues: "
            "Resource doesn't exist for the tenant. ActivityId:",
        ),
        (
            409,
            {"unexpected": True},
            "Graph answered 409 Conflict for /v1.0/admin/serviceAnnouncement/issues",
        ),
        (418, "<html>teapot</html>", "Graph answered 418 I'm a Teapot"),
        (501, graph_error("Not implemented"), "Graph answered 501 Not Implemented"),
    ],
    ids=[
        "401",
        "403",
        "403-not-exist-body-on-list",
        "404-on-list",
        "400-message",
        "400-doubly-nested-message",
        "409-no-error-object",
        "418-not-json",
        "501-not-retried",
    ],
)
def test_http_errors_on_lists(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    sleep: FakeSleep,
    status: int,
    body: Any,
    expected_text: str,
) -> None:
    if isinstance(body, str):
        mocked.get(ISSUES, status=status, body=body, content_type="text/html")
    else:
        mocked.get(ISSUES, status=status, json=body)
    client = make_client()

    with pytest.raises(GraphError) as caught:
        client.list_issues()

    assert not isinstance(caught.value, NotFoundError)
    assert str(caught.value).startswith(expected_text)
    assert "\n" not in str(caught.value)
    assert sleep.waits == []
    assert client.request_count == 1


def test_graph_message_is_first_line_and_truncated(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    long = "\n  First line of a long story " + "x" * 500 + "\nsecond line"
    mocked.get(ISSUES, status=400, json=graph_error(long))

    with pytest.raises(GraphError) as caught:
        make_client().list_issues()

    text = str(caught.value)
    assert "First line of a long story" in text
    assert "second line" not in text
    assert text.endswith("…")
    assert len(text.split(": ", 1)[1]) <= 200


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, graph_error("Not found", "NotFound")),
        (404, ""),
        (400, NOT_EXIST),
        (403, NOT_EXIST),
        (404, NOT_EXIST),
        (500, NOT_EXIST),
    ],
    ids=[
        "404",
        "404-empty-body",
        "400-unknownerror",
        "403-unknownerror",
        "404-unknownerror",
        "500-unknownerror",
    ],
)
def test_get_issue_missing_raises_not_found(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    sleep: FakeSleep,
    status: int,
    body: Any,
) -> None:
    if isinstance(body, str):
        mocked.get(f"{ISSUES}/EX999999", status=status, body=body)
    else:
        mocked.get(f"{ISSUES}/EX999999", status=status, json=body)
    client = make_client()

    with pytest.raises(NotFoundError, match="issue EX999999 does not exist in this tenant"):
        client.get_issue("EX999999")
    assert sleep.waits == []  # a missing issue is an answer, not a reason to retry
    assert client.request_count == 1


@pytest.mark.parametrize(
    ("status", "expected_type", "expected_text"),
    [
        (401, GraphError, "Graph rejected the access token"),
        (403, GraphError, "ServiceHealth.Read.All"),
    ],
    ids=["401", "403"],
)
def test_get_issue_auth_errors_stay_graph_errors(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    status: int,
    expected_type: type[Exception],
    expected_text: str,
) -> None:
    mocked.get(f"{ISSUES}/EX1", status=status, json=graph_error("Forbidden", "Forbidden"))

    with pytest.raises(expected_type, match=expected_text) as caught:
        make_client().get_issue("EX1")
    assert not isinstance(caught.value, NotFoundError)


@pytest.mark.parametrize(
    "issue_id",
    [
        "",
        "EX",
        "123456",
        "E1",
        "ABCDE1",
        "EX12 ",
        "EX12\n",
        "../EX1",
        "EX1/../x",
        "EX1?x=1",
        "EX١٢٣",
    ],
    ids=[
        "empty",
        "letters-only",
        "digits-only",
        "one-letter",
        "five-letters",
        "trailing-space",
        "trailing-newline",
        "path-traversal",
        "slash",
        "query",
        "arabic-digits",
    ],
)
def test_get_issue_rejects_malformed_ids_without_a_request(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], issue_id: str
) -> None:
    client = make_client()

    with pytest.raises(NotFoundError, match="is not a service health issue id") as caught:
        client.get_issue(issue_id)

    assert "\n" not in str(caught.value)
    assert client.request_count == 0
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("issue_id", ["EX1256020", "MO226784", "cr275975", "ABCD1"], ids=str)
def test_get_issue_accepts_well_formed_ids(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], issue_id: str
) -> None:
    mocked.get(f"{ISSUES}/{issue_id}", json={"id": issue_id})

    assert make_client().get_issue(issue_id) == {"id": issue_id}


# -- bodies that are not what Graph promises ---------------------------------

HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Proxy login</title></head>"
    "<body><h1>Please sign in to the corporate proxy</h1>"
    + "<p>filler</p>" * 200
    + "</body></html>"
)


@pytest.mark.parametrize(
    ("body", "content_type", "expected_text"),
    [
        ("this is not json", "application/json", "not JSON"),
        ('{"value": [{"id": "EX1", "title": "cut o', "application/json", "not JSON"),
        (HTML_PAGE, "text/html; charset=utf-8", "not JSON"),
        ("", "application/json", "not JSON"),
        ('{"@odata.context": "x"}', "application/json", "without a 'value' list"),
        ('{"value": {"id": "EX1"}}', "application/json", "without a 'value' list"),
        ('{"value": ["EX1"]}', "application/json", "non-object item"),
        (
            (DATA / "cli-microsoft365-health-list-serviceHealthResponse.json").read_text(),
            "application/json",
            "without a 'value' list",
        ),
    ],
    ids=[
        "garbage",
        "truncated",
        "html-200",
        "empty",
        "no-value",
        "value-not-list",
        "item-not-object",
        "bare-array-stub",
    ],
)
def test_unexpected_bodies_raise_one_line_graph_error(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    body: str,
    content_type: str,
    expected_text: str,
) -> None:
    mocked.get(ISSUES, body=body, content_type=content_type)

    with pytest.raises(GraphError, match=expected_text) as caught:
        make_client().list_issues()

    text = str(caught.value)
    assert "\n" not in text
    assert len(text) < 400
    assert "filler" * 3 not in text  # a snippet, not the page


def test_html_page_message_names_status_and_content_type(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(ISSUES, body=HTML_PAGE, content_type="text/html; charset=utf-8")

    with pytest.raises(GraphError) as caught:
        make_client().list_issues()

    assert str(caught.value).startswith("Graph returned a response that is not JSON")
    assert "HTTP 200" in str(caught.value)
    assert "text/html" in str(caught.value)


def test_get_issue_with_a_non_object_body(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(f"{ISSUES}/EX1", json=["EX1"])

    with pytest.raises(GraphError, match="instead of an object"):
        make_client().get_issue("EX1")


# -- secrets -----------------------------------------------------------------

ECHO = f"<html><pre>GET /issues\nAuthorization: Bearer {TOKEN}\n</pre></html>"


@pytest.mark.parametrize(
    ("answers", "call"),
    [
        ([{"status": 401, "json": graph_error(f"token {TOKEN} is expired")}], "list"),
        ([{"status": 400, "json": graph_error(f"bad header Bearer {TOKEN}")}], "list"),
        ([{"status": 200, "body": ECHO, "content_type": "text/html"}], "list"),
        ([{"status": 200, "body": TOKEN + " trailing garbage"}], "list"),
        ([{"status": 503}] * 4, "list"),
        ([{"body": requests.exceptions.ReadTimeout(f"timed out, token {TOKEN}")}] * 4, "list"),
        ([{"status": 404, "json": graph_error(TOKEN)}], "get"),
        ([{"status": 403, "json": graph_error(TOKEN)}], "get"),
        (
            [
                {
                    "status": 200,
                    "json": {"value": [], "@odata.nextLink": f"https://x.example/{TOKEN}"},
                }
            ],
            "list",
        ),
    ],
    ids=[
        "401-echo",
        "400-echo",
        "html-echo-of-headers",
        "non-json-starting-with-token",
        "503-exhausted",
        "timeout-exhausted",
        "404",
        "403",
        "foreign-next-link",
    ],
)
def test_access_token_never_appears_in_errors_or_logs(
    mocked: responses.RequestsMock,
    make_client: Callable[..., GraphClient],
    caplog: pytest.LogCaptureFixture,
    answers: list[dict[str, Any]],
    call: str,
) -> None:
    for answer in answers:
        mocked.get(ISSUES if call == "list" else f"{ISSUES}/EX1", **answer)
    client = make_client()
    caplog.set_level(logging.DEBUG)

    with pytest.raises((GraphError, NotFoundError)) as caught:
        if call == "list":
            client.list_issues()
        else:
            client.get_issue("EX1")

    assert TOKEN not in str(caught.value)
    assert TOKEN.split(".")[0] not in str(caught.value)
    assert TOKEN not in caplog.text


def test_non_jwt_token_is_scrubbed_too(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    token = "opaque-secret-123"
    mocked.get(ISSUES, body=f"echo: {token}")

    with pytest.raises(GraphError) as caught:
        make_client(get_token=lambda deadline: token).list_issues()

    assert token not in str(caught.value)


def test_earlier_token_echoed_after_renewal_is_scrubbed(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    # Only the latest token is known exactly; the JWT pattern catches the older one.
    older = "eyJvbGQiOiJ0b2tlbiJ9.eyJhdWQiOiJvbGQifQ.b2xkc2ln"
    tokens = iter([older, TOKEN])
    mocked.get(ISSUES, status=503)
    mocked.get(ISSUES, body=f"{older} was seen", content_type="text/plain")

    with pytest.raises(GraphError, match="not JSON") as caught:
        make_client(get_token=lambda deadline: next(tokens)).list_issues()

    assert older.split(".")[0] not in str(caught.value)


# -- time and size limits --------------------------------------------------------------------


def test_the_time_limit_ends_retries_before_the_attempts_run_out(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    mocked.get(ISSUES, status=503)
    client = make_client(time_limit=2.5, sleep=sleep, monotonic=lambda: now[0])
    with pytest.raises(GraphError) as info:
        client.list_issues()
    # Waited 1 s after the first attempt; waiting 2 s more would reach the limit.
    assert client.request_count == 2
    assert str(info.value) == (
        "Microsoft Graph is unavailable (503 Service Unavailable); no time left for another "
        "attempt within the 2.5s limit for sign-in and Graph in one poll; run again later"
    )


def test_every_page_and_sign_in_share_the_calls_one_time_limit(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    second = f"{ISSUES}?$skiptoken=2"
    mocked.get(
        second,
        json={"value": [{"id": "EX2"}]},
        match=[matchers.query_string_matcher("$skiptoken=2")],
    )
    mocked.get(ISSUES, json={"value": [{"id": "EX1"}], "@odata.nextLink": second})
    deadlines: list[Any] = []

    def get_token(deadline: Any) -> str:
        deadlines.append(deadline)
        return TOKEN

    assert len(make_client(get_token=get_token, time_limit=42).list_issues()) == 2
    assert len(deadlines) == 2 and deadlines[0] is deadlines[1]
    assert deadlines[0].seconds == 42


@pytest.mark.parametrize("declared", [False, True], ids=["unsized", "content-length"])
def test_an_answer_over_the_size_cap_is_refused_and_not_retried(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient], declared: bool
) -> None:
    body = '{"value": [' + " " * 4096 + "]}"
    headers = {"Content-Length": str(len(body))} if declared else {}
    mocked.get(ISSUES, body=body, headers=headers, content_type="application/json")
    client = make_client(max_bytes=4096)
    with pytest.raises(GraphError) as info:
        client.list_issues()
    assert client.request_count == 1
    assert str(info.value) == (
        "Graph's answer for /v1.0/admin/serviceAnnouncement/issues is larger than 4 KiB; "
        "refusing to read it: check that graph_endpoint points at Microsoft Graph and that "
        "no proxy is in the way"
    )


def test_request_codes_count_every_attempt_by_status_and_are_drained(
    mocked: responses.RequestsMock, make_client: Callable[..., GraphClient]
) -> None:
    mocked.get(OVERVIEWS, status=429, headers={"Retry-After": "1"})
    mocked.get(OVERVIEWS, body=requests.exceptions.ConnectionError("refused"))
    mocked.get(OVERVIEWS, json={"value": []})
    client = make_client()

    client.list_health_overviews()

    assert client.request_count == 3
    assert client.take_request_codes() == {"429": 1, graph.NO_ANSWER: 1, "200": 1}
    assert client.take_request_codes() == {}  # drained: the next poll counts only its own


def test_thread_sessions_give_each_thread_one_session_and_keep_no_cookies() -> None:
    import threading

    from m365watch.graph import ThreadSessions

    shared = ThreadSessions()
    mine = shared._own()
    theirs: list[object] = []
    worker = threading.Thread(target=lambda: theirs.append(shared._own()))
    worker.start()
    worker.join(timeout=10)

    assert shared._own() is mine  # a thread keeps its session (and its connection)
    assert theirs and theirs[0] is not mine
    with responses.RequestsMock() as rsps:
        rsps.get("https://graph.example/x", headers={"Set-Cookie": "a=b; Path=/"})
        shared.get("https://graph.example/x")
    assert not list(mine.cookies)  # one tenant's cookie never goes to another
    shared.close()
