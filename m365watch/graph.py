"""Microsoft Graph adapter: service-health requests with paging, retries and clear errors.

This module knows HTTP and Graph's error conventions, not the shape of issues:
it returns raw JSON dicts and leaves parsing to ``m365watch.models``.
"""

from __future__ import annotations

import email.utils
import hashlib
import http
import http.cookiejar
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Any, NoReturn
from urllib.parse import quote, urljoin, urlsplit

import requests

from m365watch import __version__
from m365watch.budget import EXCHANGE_SECONDS, FETCH_SECONDS, GRAPH_MAX_BYTES, REPORT_MAX_BYTES
from m365watch.deadline import Deadline, ReadFailed, TimeUp, TooLarge, format_size, read_body
from m365watch.errors import GraphError, NotFoundError
from m365watch.models import is_issue_id, is_message_id
from m365watch.redact import first_line, one_line, redact_secrets, redact_tokens

logger = logging.getLogger(__name__)

SERVICE_ANNOUNCEMENT_PATH = "/v1.0/admin/serviceAnnouncement"
# Graph caps odata.maxpagesize at 1000 for issues; fewer pages means fewer requests
# against the 800-per-hour budget.
MESSAGES_PERMISSION = "ServiceMessage.Read.All"
PREFER_MAX_PAGE_SIZE = "odata.maxpagesize=1000"
MAX_PAGES = 100
# Statuses worth another try: throttling and gateway/availability trouble.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A 500 is retried once only: a persistent 500 (Graph's "UnknownError") is rarely
# transient, and every extra attempt spends the small hourly request budget.
MAX_RETRIES_AFTER_500 = 1
BACKOFF_CAP_SECONDS = 30.0
# Attempts per request: also the most one single-page poll can spend of the hourly budget.
DEFAULT_MAX_ATTEMPTS = 4
MESSAGE_LIMIT = 200
SNIPPET_LIMIT = 60

_RETRY_AFTER_SECONDS = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*", re.ASCII)
_NOT_EXIST = re.compile(r"does(?:n'?t| not) exist", re.IGNORECASE)


@dataclass
class _WaitBudget:
    """Seconds slept for one public call (all its pages together), and its limit.

    ``deadline`` is the call's whole time limit: sign-in, every page, retries and waits.
    """

    limit: float
    deadline: Deadline
    waited: float = 0.0

    def allows(self, seconds: float) -> bool:
        """Whether sleeping ``seconds`` more stays within the limit."""
        return self.waited + seconds <= self.limit

    def spend(self, seconds: float) -> None:
        """Count ``seconds`` slept."""
        self.waited += seconds


@dataclass(frozen=True)
class _Answered:
    """Graph answered, and the answer stands: a success, or an error not worth retrying."""

    response: requests.Response


@dataclass(frozen=True)
class _Retry:
    """The attempt failed in a way another attempt may cure."""

    failure: str  # what went wrong: for the log, and the error when retries run out
    advice: str  # what the user can do when retries run out
    retry_after: float | None = None  # seconds Graph asked for; None: back off
    status: int | None = None  # None when Graph never answered
    cause: Exception | None = None


@dataclass(frozen=True)
class _Failed:
    """The attempt failed in a way no retry can cure."""

    message: str
    cause: Exception


_Outcome = _Answered | _Retry | _Failed


# The request-code label of an attempt that got no HTTP answer (timeout, refused, TLS).
NO_ANSWER = "none"


class GraphClient:
    """Reads the service-health part of Microsoft Graph with app-only tokens.

    ``request_count`` counts every HTTP attempt handed to the session, including
    retries and attempts that timed out, so callers can watch the request budget.
    :meth:`take_request_codes` says how those attempts ended, by HTTP status code.
    """

    def __init__(
        self,
        *,
        graph_endpoint: str,
        get_token: Callable[[Deadline], str],
        session: requests.Session | None = None,
        timeout: float = EXCHANGE_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_total_wait: float = 60.0,
        time_limit: float = FETCH_SECONDS,
        max_bytes: int = GRAPH_MAX_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Prepare a client; no request is sent until a method is called.

        ``graph_endpoint`` is the cloud's Graph root (``https://graph.microsoft.com``).
        ``get_token`` is called before every attempt, with what is left of the call's
        time limit, so an expiring token is renewed. ``timeout`` bounds one exchange
        (connecting, each read, and the whole answer); ``max_attempts`` bounds attempts
        per request and ``max_total_wait`` the seconds slept per call. ``time_limit``
        bounds a whole public call: sign-in, every page, retries and waits; running out
        is a GraphError. An answer larger than ``max_bytes`` is refused unread.
        ``sleep``, ``clock`` and ``monotonic`` exist for tests (``clock`` reads
        HTTP-date Retry-After, ``monotonic`` measures the time limits).
        """
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout <= 0 or time_limit <= 0:
            raise ValueError("timeout and time_limit must be positive")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        if max_total_wait < 0:
            raise ValueError("max_total_wait must not be negative")
        self._endpoint = graph_endpoint.rstrip("/")
        parts = urlsplit(self._endpoint)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"graph_endpoint must be an http(s) URL, got {graph_endpoint!r}")
        self._origin = _origin(self._endpoint)
        self._host = parts.hostname
        self._base = self._endpoint + SERVICE_ANNOUNCEMENT_PATH
        self._get_token = get_token
        # A default Session keeps trust_env on: HTTPS_PROXY and REQUESTS_CA_BUNDLE apply.
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_total_wait = max_total_wait
        self._time_limit = time_limit
        self._max_bytes = max_bytes
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        # Remembered only to scrub it from error text; never logged or shown.
        self._last_token = ""
        self.request_count = 0
        # Attempts by how they ended: "200", "429", … or NO_ANSWER; drained by take_request_codes.
        self._request_codes: dict[str, int] = {}

    def list_issues(self, *, filter: str | None = None) -> Collection:
        """Return every service health issue, following ``@odata.nextLink`` to the end.

        ``filter`` is sent as ``$filter``; Graph's filter support is undocumented,
        so callers must filter the result again.
        """
        url = f"{self._base}/issues"
        if filter:
            # %20 rather than '+' for spaces: OData parsers differ on form encoding.
            url += "?$filter=" + quote(filter, safe="")
        return self._get_collection(url, {"Prefer": PREFER_MAX_PAGE_SIZE})

    def list_messages(self) -> Collection:
        """Return every Message center post, following ``@odata.nextLink`` to the end.

        Needs the application permission ServiceMessage.Read.All (not ServiceHealth.Read.All).
        """
        return self._get_collection(f"{self._base}/messages", {"Prefer": PREFER_MAX_PAGE_SIZE})

    def get_message(self, message_id: str) -> dict[str, Any]:
        """Return one Message center post by id; NotFoundError when the tenant has no such post."""
        _require_message_id(message_id)
        not_found = f"Message center post {message_id} does not exist in this tenant"
        body = self._get_json(f"{self._base}/messages/{message_id}", {}, self._budget(), not_found)
        if not isinstance(body, dict):
            self._fail(
                f"Graph returned {type(body).__name__} instead of an object for {message_id}"
            )
        return body

    def peek_messages(self) -> int:
        """One request for at most one Message center post (``$top=1``, no paging): how many.

        What ``doctor`` asks to learn that ServiceMessage.Read.All works.
        """
        url = f"{self._base}/messages?$top=1"
        body = self._get_json(url, {}, self._budget(), None)
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            self._fail(
                f"Graph answered {_path(url)} without a 'value' list; "
                "check that graph_endpoint points at Microsoft Graph"
            )
        return len(body["value"])

    def list_health_overviews(self) -> list[dict[str, Any]]:
        """Return the health overview of every service (one dict per service)."""
        # No Prefer header: Microsoft documents odata.maxpagesize only for issues
        # and messages, and the overview list is small.
        return self._get_collection(f"{self._base}/healthOverviews", {})

    def get_issue(self, issue_id: str) -> dict[str, Any]:
        """Return one issue by id; raise NotFoundError if the tenant has no such issue."""
        _require_issue_id(issue_id)
        not_found = f"issue {issue_id} does not exist in this tenant"
        budget = self._budget()
        body = self._get_json(f"{self._base}/issues/{issue_id}", {}, budget, not_found)
        if not isinstance(body, dict):
            self._fail(f"Graph returned {type(body).__name__} instead of an object for {issue_id}")
        return body

    def take_request_codes(self) -> dict[str, int]:
        """The attempts since the last call, by HTTP status code (``none``: no answer)."""
        codes, self._request_codes = self._request_codes, {}
        return codes

    def get_incident_report(
        self,
        issue_id: str,
        *,
        max_bytes: int = REPORT_MAX_BYTES,
        time_limit: float | None = None,
        retries: bool = True,
    ) -> bytes:
        """The post-incident report of one issue, as the bytes Graph streams (PDF or DOCX).

        NotFoundError when the issue has none (Graph serves one only once the status is
        postIncidentReviewPublished); GraphError for a report larger than ``max_bytes``
        and for every other failure, after the usual retries within the time limit.
        ``time_limit`` replaces the client's limit for this call (sign-in included), and
        ``retries=False`` makes it one attempt: a quick try that never waits long.
        """
        _require_issue_id(issue_id)
        url = f"{self._base}/issues/{issue_id}/incidentReport"
        # Graph answers with a file stream: JSON only when it reports an error.
        headers = {"Accept": "*/*"}
        response = self._send(
            url,
            headers,
            self._budget(time_limit),
            True,
            max_bytes=max_bytes,
            max_attempts=None if retries else 1,
        )
        if not 200 <= response.status_code < 300:
            self._raise_for_status(
                response,
                url,
                f"issue {issue_id} has no post-incident report (yet) in this tenant",
            )
        return response.content

    # -- internals -----------------------------------------------------------

    def _count_code(self, code: str) -> None:
        self._request_codes[code] = self._request_codes.get(code, 0) + 1

    def _get_counted(
        self, url: str, headers: dict[str, str], read_timeout: float
    ) -> requests.Response:
        """One GET, its answer's status code counted (or NO_ANSWER when none came)."""
        try:
            response = self._session.get(
                url, headers=headers, timeout=(read_timeout, read_timeout), stream=True
            )
        except requests.exceptions.RequestException:
            self._count_code(NO_ANSWER)
            raise
        self._count_code(str(response.status_code))
        return response

    def _budget(self, time_limit: float | None = None) -> _WaitBudget:
        """The waits and the time limit of one public call, starting now."""
        seconds = self._time_limit if time_limit is None else time_limit
        return _WaitBudget(self._max_total_wait, Deadline(seconds, clock=self._monotonic))

    def _get_collection(self, first_url: str, headers: dict[str, str]) -> Collection:
        """Fetch a collection and all its pages; the wait budget covers all pages.

        The result carries a digest of every page's bytes: the same digest as last poll's
        means Graph sent the very same collection (the poll can skip comparing it).
        """
        budget = self._budget()
        items = Collection()
        digest = hashlib.sha256()
        seen: set[str] = set()
        url: str | None = first_url
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                self._fail(
                    f"Graph kept sending more pages after {MAX_PAGES} for "
                    f"{_path(first_url)}; stopping to avoid an endless loop"
                )
            seen.add(url)
            body = self._get_json(url, headers, budget, None, digest)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                self._fail(
                    f"Graph answered {_path(url)} without a 'value' list; "
                    "check that graph_endpoint points at Microsoft Graph"
                )
            for item in body["value"]:
                if not isinstance(item, dict):
                    self._fail(f"Graph returned a non-object item in {_path(url)}")
                items.append(item)
            url = self._next_link(body, url, seen)
        logger.debug("fetched %d items from %s in %d pages", len(items), _path(first_url), pages)
        items.digest = f"sha256:{digest.hexdigest()}"
        return items

    def _next_link(self, body: dict[str, Any], current: str, seen: set[str]) -> str | None:
        """Validate ``@odata.nextLink``: same origin as graph_endpoint, never repeated."""
        link = body.get("@odata.nextLink")
        if link is None:
            return None
        if not isinstance(link, str) or not link:
            self._fail("Graph returned an @odata.nextLink that is not a URL")
        # Graph sends absolute links; urljoin leaves those untouched.
        absolute = urljoin(current, link)
        if _origin(absolute) != self._origin:
            # The bearer token goes with every page request: never send it elsewhere.
            shown = self._redact(urlsplit(absolute).hostname or "?")
            self._fail(
                f"Graph's next-page link points to {one_line(shown, 80)}, not {self._host}; "
                "refusing to send the access token there"
            )
        if absolute in seen:
            self._fail(f"Graph repeated a next-page link for {_path(current)}; stopping paging")
        return absolute

    def _get_json(
        self,
        url: str,
        headers: dict[str, str],
        budget: _WaitBudget,
        not_found: str | None,
        digest: Any = None,
    ) -> Any:
        """GET with retries and map the outcome to JSON or an m365watch error.

        ``not_found`` is the NotFoundError message when a missing resource is an
        answer (get_issue) rather than a misconfiguration. ``digest`` (a hashlib
        object) is fed the answer's bytes.
        """
        response = self._send(url, headers, budget, not_found is not None)
        if not 200 <= response.status_code < 300:
            self._raise_for_status(response, url, not_found)
        if digest is not None:
            digest.update(response.content)
        try:
            return response.json()
        except ValueError as exc:
            content_type = response.headers.get("Content-Type", "none")
            # Redact before truncating: a cut token would no longer match.
            snippet = one_line(self._redact(response.text), SNIPPET_LIMIT)
            self._fail(
                f"Graph returned a response that is not JSON for {_path(url)} "
                f"(HTTP {response.status_code}, Content-Type {one_line(content_type, 60)}, "
                f"starts {snippet!r}); a proxy or captive portal may be in the way",
                exc,
            )

    def _send(
        self,
        url: str,
        extra_headers: dict[str, str],
        budget: _WaitBudget,
        missing_is_answer: bool,
        *,
        max_bytes: int | None = None,
        max_attempts: int | None = None,
    ) -> requests.Response:
        """Send one GET, retrying throttling, 5xx and network failures within bounds.

        ``max_bytes`` and ``max_attempts`` replace the client's own for this request.
        """
        attempts_allowed = self._max_attempts if max_attempts is None else max_attempts
        retries_after_500 = 0
        attempt = 0
        while True:
            if budget.deadline.expired:
                # Reached between pages: the previous page used up the time.
                self._fail(
                    f"Microsoft Graph was still being read ({_path(url)}) when the "
                    f"{budget.deadline.seconds:g}s limit for sign-in and Graph in one poll "
                    "ran out; check the network and proxy, or run again later"
                )
            attempt += 1
            outcome = self._attempt(
                url,
                extra_headers,
                attempt,
                budget.deadline,
                missing_is_answer=missing_is_answer,
                may_retry_500=retries_after_500 < MAX_RETRIES_AFTER_500,
                max_bytes=self._max_bytes if max_bytes is None else max_bytes,
            )
            if isinstance(outcome, _Answered):
                return outcome.response
            if isinstance(outcome, _Failed):
                self._fail(outcome.message, outcome.cause)
            if outcome.status == 500:
                retries_after_500 += 1
            wait = _backoff(attempt) if outcome.retry_after is None else outcome.retry_after
            if attempt >= attempts_allowed:
                self._fail(
                    f"{outcome.failure} after {attempt} attempts; {outcome.advice}", outcome.cause
                )
            if not budget.allows(wait):
                self._fail(
                    f"{outcome.failure}; waiting {wait:g}s more would exceed the "
                    f"{budget.limit:g}s retry budget; {outcome.advice}",
                    outcome.cause,
                )
            if wait >= budget.deadline.remaining():
                self._fail(
                    f"{outcome.failure}; {_time_is_up(budget.deadline)}; {outcome.advice}",
                    outcome.cause,
                )
            logger.warning(
                "%s for %s; retrying in %gs (attempt %d of %d)",
                outcome.failure,
                _path(url),
                wait,
                attempt + 1,
                attempts_allowed,
            )
            self._sleep(wait)
            budget.spend(wait)

    def _attempt(
        self,
        url: str,
        extra_headers: dict[str, str],
        attempt: int,
        deadline: Deadline,
        *,
        missing_is_answer: bool,
        may_retry_500: bool,
        max_bytes: int,
    ) -> _Outcome:
        """One GET with a fresh token, judged: answered, worth another try, or failed.

        The whole exchange, body included, ends by ``timeout`` or ``deadline``, whichever
        comes first.
        """
        token = self._get_token(deadline)
        self._last_token = token
        exchange = deadline.within(self._timeout)
        # Each socket wait: the exchange's timeout, or less when the call's limit comes first.
        read_timeout = deadline.wait_limit(self._timeout)
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": f"m365watch/{__version__}",
            **extra_headers,
        }
        self.request_count += 1
        logger.debug("GET %s (attempt %d)", _path(url), attempt)
        try:
            response = self._get_counted(url, headers, read_timeout)
        except requests.exceptions.Timeout as exc:
            return _Retry(
                failure=(
                    f"Microsoft Graph did not answer within {read_timeout:g}s "
                    f"({type(exc).__name__} from {self._host})"
                ),
                advice="check the network and proxy, or run again later",
                cause=exc,
            )
        except requests.exceptions.SSLError as exc:
            # A certificate problem does not go away by retrying.
            return _Failed(
                f"TLS check failed for graph host {self._host}; if a proxy inspects "
                "TLS, point REQUESTS_CA_BUNDLE at its CA certificate",
                exc,
            )
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            return _Retry(
                failure=f"cannot reach graph host {self._host} ({type(exc).__name__})",
                advice="check DNS, the proxy (HTTPS_PROXY) and the firewall, or run again later",
                cause=exc,
            )
        except requests.exceptions.RequestException as exc:
            return _Failed(f"request to graph host {self._host} failed ({type(exc).__name__})", exc)
        unread = self._read_body(response, url, exchange, max_bytes)
        if unread is not None:
            return unread
        if not _worth_retrying(
            response, missing_is_answer=missing_is_answer, may_retry_500=may_retry_500
        ):
            return _Answered(response)
        return _Retry(
            failure=_unavailable(response.status_code),
            advice="run again later",
            retry_after=_retry_after(response.headers.get("Retry-After"), self._clock),
            status=response.status_code,
        )

    def _read_body(
        self, response: requests.Response, url: str, exchange: Deadline, max_bytes: int
    ) -> _Outcome | None:
        """Read the answer's body into ``response`` within ``exchange``; None when it was read."""
        try:
            response._content = read_body(response, deadline=exchange, limit=max_bytes)
        except TimeUp as exc:
            response.close()
            return _Retry(
                failure=(
                    f"Microsoft Graph's answer for {_path(url)} was still arriving after "
                    f"{exc.deadline.seconds:g}s (from {self._host})"
                ),
                advice="check the network and proxy, or run again later",
                cause=exc,
            )
        except TooLarge as exc:
            response.close()
            return _Failed(
                f"Graph's answer for {_path(url)} is larger than {format_size(exc.limit)}; "
                "refusing to read it: check that graph_endpoint points at Microsoft Graph "
                "and that no proxy is in the way",
                exc,
            )
        except ReadFailed as exc:
            response.close()
            return _Retry(
                failure=f"cannot reach graph host {self._host} ({exc})",
                advice="check DNS, the proxy (HTTPS_PROXY) and the firewall, or run again later",
                cause=exc,
            )
        return None

    def _raise_for_status(
        self, response: requests.Response, url: str, not_found: str | None
    ) -> NoReturn:
        """Turn a non-2xx answer into one clear error, decided by HTTP status."""
        status = response.status_code
        graph_message = _graph_error_message(response, self._redact)
        # Graph has reported a missing item as 400/403/5xx with "doesn't exist" text;
        # a 401 stays an authentication problem whatever its text says.
        if not_found is not None and (
            status == 404 or (status != 401 and graph_message and _NOT_EXIST.search(graph_message))
        ):
            raise NotFoundError(self._scrub(not_found))
        said = f": {graph_message}" if graph_message else ""
        if status == 401:
            self._fail(
                "Graph rejected the access token (401 Unauthorized): check that the tenant "
                "and cloud (graph endpoint) match the app registration and that admin "
                f"consent was granted{said}"
            )
        if status == 403:
            self._fail(
                "Graph answered 403 Forbidden: grant the application permission "
                f"{_permission_for(url)} to the app registration and have an admin grant consent"
            )
        if status in RETRY_STATUSES:
            self._fail(f"{_unavailable(status)}{said}; run again later")
        if status == 404:
            # Every path here exists in v1.0, so a 404 means the endpoint is wrong.
            said += "; check graph_endpoint (the Graph root, such as https://graph.microsoft.com)"
        self._fail(f"Graph answered {_status_text(status)} for {_path(url)}{said}", status=status)

    def _fail(
        self, message: str, cause: BaseException | None = None, *, status: int | None = None
    ) -> NoReturn:
        """Raise GraphError with a one-line message that cannot carry the token."""
        raise GraphError(self._scrub(message), status=status) from cause

    def _scrub(self, message: str) -> str:
        """Make a message safe to show: no token, one line, bounded length."""
        return one_line(self._redact(message), 600)

    def _redact(self, text: str) -> str:
        """Remove the access token (and anything token-like) from text."""
        return redact_tokens(redact_secrets(text, (self._last_token,)))


class ThreadSessions(requests.Session):
    """A session that hands each thread a requests session of its own, kept for reuse.

    The Graph clients of many tenants share one: a worker thread polling tenant after
    tenant reuses its connection to Graph (its TLS handshake) instead of opening one
    per tenant. Requests carry their own headers (the token); cookies are never kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []

    def _own(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:
        """A GET through this thread's own session."""
        return self._own().get(url, **kwargs)

    def close(self) -> None:
        """Close every thread's session."""
        with self._lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        super().close()


class Collection(list[dict[str, Any]]):
    """A collection's items, and ``digest``: a hash of the bytes Graph sent for it."""

    digest: str | None = None


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what must match before a token is sent."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # an invalid port never matches the endpoint
    if port is None:
        port = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def _path(url: str) -> str:
    """The URL path, for messages: short, and without query or host details."""
    return urlsplit(url).path or "/"


def _worth_retrying(
    response: requests.Response, *, missing_is_answer: bool, may_retry_500: bool
) -> bool:
    """Rule: which answers get another attempt (throttling and gateway trouble)."""
    status = response.status_code
    if status not in RETRY_STATUSES:
        return False
    if missing_is_answer and _says_not_exist(response):
        # A "doesn't exist" UnknownError may come as a 5xx: retrying cannot help.
        return False
    return status != 500 or may_retry_500


def _backoff(attempt: int) -> float:
    """Rule: seconds to wait after attempt ``attempt`` when Graph named no time."""
    return min(2.0 ** (attempt - 1), BACKOFF_CAP_SECONDS)


def _retry_after(value: str | None, clock: Callable[[], float]) -> float | None:
    """Rule: seconds from Retry-After (fractional or HTTP-date); None if absent or invalid."""
    if value is None:
        return None
    match = _RETRY_AFTER_SECONDS.fullmatch(value)
    if match:
        seconds = float(match.group(1))
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        logger.debug("ignoring unparseable Retry-After %r", value[:40])
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; parsedate returns naive for "-0000".
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - clock())


def _time_is_up(deadline: Deadline) -> str:
    """Why no further attempt is made: the call's time limit would pass first."""
    return (
        f"no time left for another attempt within the {deadline.seconds:g}s limit for "
        "sign-in and Graph in one poll"
    )


def _status_text(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _unavailable(status: int) -> str:
    if status == 429:
        return "Microsoft Graph is throttling requests (429 Too Many Requests)"
    return f"Microsoft Graph is unavailable ({_status_text(status)})"


def _graph_error_message(
    response: requests.Response, redact: Callable[[str], str] = str
) -> str | None:
    """Graph's ``error.message``, unwrapping JSON nested inside it, as one short line."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    text = _innermost_message(body.get("error"))
    if text is None:
        return None
    return one_line(first_line(redact(text)), MESSAGE_LIMIT) or None


def _innermost_message(value: Any, depth: int = 0) -> str | None:
    """Follow message/error keys through JSON-in-a-string, as seen with UnknownError."""
    if depth > 5:
        return None
    if isinstance(value, dict):
        for key in ("message", "error"):
            found = _innermost_message(value.get(key), depth + 1)
            if found:
                return found
        return None
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if stripped.startswith("{"):
        try:
            nested = json.loads(stripped)
        except ValueError:
            return value
        return _innermost_message(nested, depth + 1) or value
    return value


def _says_not_exist(response: requests.Response) -> bool:
    message = _graph_error_message(response)
    return message is not None and _NOT_EXIST.search(message) is not None


def _require_issue_id(issue_id: object) -> None:
    """NotFoundError, without a request, for anything that is not an issue id."""
    if not isinstance(issue_id, str) or not is_issue_id(issue_id):
        shown = one_line(repr(issue_id), 40)
        raise NotFoundError(
            f"{shown} is not a service health issue id: expected two to four letters "
            "followed by digits, such as EX1256020"
        )


def _require_message_id(message_id: object) -> None:
    """NotFoundError, without a request, for anything that is not a Message center post id."""
    if not isinstance(message_id, str) or not is_message_id(message_id):
        shown = one_line(repr(message_id), 40)
        raise NotFoundError(
            f"{shown} is not a Message center post id: expected MC followed by digits, "
            "such as MC237349"
        )


def _permission_for(url: str) -> str:
    """The application permission a Graph path needs: the Message center has its own."""
    path = urlsplit(url).path
    if "/serviceAnnouncement/messages" in path:
        return MESSAGES_PERMISSION
    return "ServiceHealth.Read.All"
