"""Value objects for service-health issues and the one place that parses Graph's JSON.

Pure: standard library only, no clock, no I/O. Graph is tolerant-parsed: enum
values are compared case-insensitively (real responses are camelCase,
Microsoft's doc examples PascalCase), unknown values are kept raw, timestamps
may carry 0 to 7 fractional digits, and unknown keys are ignored.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

UNKNOWN = "unknown"

# serviceHealthStatus from Graph's v1.0 metadata, in its camelCase spelling.
STATUSES: tuple[str, ...] = (
    "serviceOperational",
    "investigating",
    "restoringService",
    "verifyingService",
    "serviceRestored",
    "postIncidentReviewPublished",
    "serviceDegradation",
    "serviceInterruption",
    "extendedRecovery",
    "falsePositive",
    "investigationSuspended",
    "resolved",
    "mitigatedExternal",
    "mitigated",
    "resolvedExternal",
    "confirmed",
    "reported",
    "unknownFutureValue",
)
_STATUS_BY_LOWER = {s.lower(): s for s in STATUSES}
# Microsoft's own documentation examples carry this typo.
_STATUS_BY_LOWER["servicaoperational"] = "serviceOperational"

STATUS_WORDS: dict[str, str] = {
    "serviceOperational": "Service operational",
    "investigating": "Investigating",
    "restoringService": "Restoring service",
    "verifyingService": "Verifying service",
    "serviceRestored": "Service restored",
    "postIncidentReviewPublished": "Post-incident report published",
    "serviceDegradation": "Service degradation",
    "serviceInterruption": "Service interruption",
    "extendedRecovery": "Extended recovery",
    "falsePositive": "False positive",
    "investigationSuspended": "Investigation suspended",
    "resolved": "Resolved",
    "mitigatedExternal": "Mitigated (external)",
    "mitigated": "Mitigated",
    "resolvedExternal": "Resolved (external)",
    "confirmed": "Confirmed",
    "reported": "Reported",
}

# How bad a status is for the people affected; higher is worse. Used to tell
# an escalation from an improvement and to order digests.
STATUS_SEVERITY: dict[str, int] = {
    "serviceInterruption": 5,
    "serviceDegradation": 4,
    "investigating": 3,
    "confirmed": 3,
    "reported": 3,
    "restoringService": 3,
    "extendedRecovery": 2,
    "investigationSuspended": 2,
    "verifyingService": 1,
    "mitigated": 1,
    "mitigatedExternal": 1,
    "serviceRestored": 0,
    "postIncidentReviewPublished": 0,
    "falsePositive": 0,
    "resolved": 0,
    "resolvedExternal": 0,
    "serviceOperational": 0,
}

CLASSIFICATIONS: tuple[str, ...] = ("incident", "advisory")
PIR_STATUS = "postIncidentReviewPublished"
OPERATIONAL = "serviceOperational"

ADMIN_CENTER_ISSUE_URL = "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/{id}"

_TIMESTAMP = re.compile(
    r"^(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


class ParseError(ValueError):
    """A Graph object lacks something m365watch cannot do without (an id)."""


def canonical_status(raw: str | None) -> str:
    """Graph's camelCase spelling of a status, whatever casing came in; ``unknown`` otherwise."""
    if not raw:
        return UNKNOWN
    return _STATUS_BY_LOWER.get(raw.strip().lower(), UNKNOWN)


def canonical_classification(raw: str | None) -> str:
    """``incident`` or ``advisory`` whatever the casing; ``unknown`` otherwise."""
    value = (raw or "").strip().lower()
    return value if value in CLASSIFICATIONS else UNKNOWN


# Microsoft 365 services by display name and, where a capture showed it, Graph's service id.
# ``status --cached`` accepts these for ``--service`` even when the state holds no issue of
# theirs (a healthy service); live, the tenant's own healthOverviews are the list.
KNOWN_SERVICES: tuple[tuple[str, str | None], ...] = (
    ("Dynamics 365 Apps", None),
    ("Exchange Online", "Exchange"),
    ("Identity Service", "OrgLiveID"),
    ("Microsoft 365 suite", "OSDPPlatform"),
    ("Microsoft Defender for Cloud Apps", "cloudappsecurity"),
    ("Microsoft Forms", None),
    ("Microsoft Teams", "MicrosoftTeams"),
    ("OneDrive for Business", None),
    ("Power BI", None),
    ("SharePoint Online", None),
    ("Skype for Business", None),
)


# A status Microsoft did not document counts as a problem (as "investigating") until someone looks.
UNKNOWN_SEVERITY = 3


def severity_of(status: str | None) -> int:
    """How bad a status is for the people affected (0 fine … 5 interruption)."""
    return STATUS_SEVERITY.get(status or UNKNOWN, UNKNOWN_SEVERITY)


def as_sent(value: str, raw: str | None) -> str:
    """A canonical enum value, or for one this version does not know, what Graph sent."""
    return value if value != UNKNOWN else (raw or UNKNOWN)


def status_words(status: str, raw: str | None = None) -> str:
    """A status in words for people ("Service degradation"); unknown ones shown as sent."""
    if status in STATUS_WORDS:
        return STATUS_WORDS[status]
    return raw or "Unknown"


def parse_timestamp(raw: object) -> datetime | None:
    """Parse Graph's ISO 8601 timestamps (0 to 7 fractional digits, ``Z``) into aware UTC."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    match = _TIMESTAMP.match(raw.strip())
    if not match:
        return None
    frac = (match.group("frac") or "")[:6].ljust(6, "0")
    tz = match.group("tz") or "Z"
    if tz == "Z":
        tz = "+00:00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{match.group('base')}.{frac}{tz}")
    except ValueError:
        return None
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime | None) -> str:
    """A time for people: ``2026-11-20 14:05 UTC``."""
    if value is None:
        return "unknown"
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def format_timestamp(value: datetime | None) -> str | None:
    """Graph's own form: ``2021-08-06T17:49:34.54Z`` style, seconds precision kept exact."""
    if value is None:
        return None
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


# Two to four letters then digits (EX1256020, MO226784); ASCII only, so that other
# scripts' digits cannot reach a URL.
_ISSUE_ID = re.compile(r"[A-Za-z]{2,4}[0-9]+", re.ASCII)


def is_issue_id(text: str) -> bool:
    """True when ``text`` is shaped like a service health issue id (EX1256020), in any case."""
    return _ISSUE_ID.fullmatch(text) is not None


# "MC" then digits (MC54091, MC237349, MC1085564): a Message center post, not an issue.
_MESSAGE_ID = re.compile(r"MC[0-9]{1,12}", re.ASCII | re.IGNORECASE)


def is_message_id(text: str) -> bool:
    """True when ``text`` is shaped like a Message center post id (MC237349), in any case."""
    return _MESSAGE_ID.fullmatch(text) is not None


# Control characters but tab and newline (C0, DEL, C1): text from Graph reaches terminals,
# where ESC sequences could rewrite the screen; no real post needs them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def graph_text(raw: object) -> str | None:
    """Text from Graph without control characters (but tab and newline); None when empty."""
    if not isinstance(raw, str) or raw == "":
        return None
    return _CONTROL.sub("", raw) or None


@dataclass(frozen=True)
class Post:
    """One update Microsoft posted on an issue. Posts have no id in Graph."""

    created: datetime | None
    post_type: str | None
    content: str
    content_type: str  # "html" or "text"

    @property
    def key(self) -> str:
        """What identifies a post across polls: its creation time (Graph gives no id)."""
        stamp = format_timestamp(self.created)
        if stamp:
            return stamp
        # A post without a time is rare; fall back to its text so it still has an identity.
        return "untimed:" + hashlib.sha256(self.content.encode()).hexdigest()[:16]

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Post:
        """Parse one element of an issue's ``posts``."""
        description = data.get("description")
        content = ""
        content_type = "text"
        if isinstance(description, Mapping):
            content = graph_text(description.get("content")) or ""
            content_type = (graph_text(description.get("contentType")) or "text").lower()
        return cls(
            created=parse_timestamp(data.get("createdDateTime")),
            post_type=graph_text(data.get("postType")),
            content=content,
            content_type="html" if content_type == "html" else "text",
        )

    def to_graph(self) -> dict[str, Any]:
        """Graph's own shape, for the state file and JSON output."""
        return {
            "createdDateTime": format_timestamp(self.created),
            "postType": self.post_type,
            "description": {"contentType": self.content_type, "content": self.content},
        }


def _post_sort_key(post: Post) -> tuple[int, datetime]:
    return (0, post.created) if post.created else (1, datetime.min.replace(tzinfo=timezone.utc))


@dataclass(frozen=True)
class Issue:
    """A service-health issue (incident or advisory) as Graph describes it."""

    id: str
    title: str
    service: str
    status: str
    classification: str
    is_resolved: bool
    feature: str | None = None
    feature_group: str | None = None
    origin: str | None = None
    impact_description: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    last_modified: datetime | None = None
    posts: tuple[Post, ...] = ()
    status_raw: str | None = field(default=None, compare=False)
    classification_raw: str | None = field(default=None, compare=False)

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> Issue:
        """Parse a ``serviceHealthIssue``; raises ParseError only when there is no id."""
        issue_id = graph_text(data.get("id"))
        if issue_id is None:
            raise ParseError("a service-health issue without an id")
        raw_posts = data.get("posts")
        posts = tuple(Post.from_graph(p) for p in (raw_posts or []) if isinstance(p, Mapping))
        status_raw = graph_text(data.get("status"))
        classification_raw = graph_text(data.get("classification"))
        resolved = data.get("isResolved")
        return cls(
            id=issue_id,
            title=graph_text(data.get("title")) or "(no title)",
            service=graph_text(data.get("service")) or "(unknown service)",
            status=canonical_status(status_raw),
            classification=canonical_classification(classification_raw),
            is_resolved=resolved is True or str(resolved).lower() == "true",
            feature=graph_text(data.get("feature")),
            feature_group=graph_text(data.get("featureGroup")),
            origin=graph_text(data.get("origin")),
            impact_description=graph_text(data.get("impactDescription")),
            start=parse_timestamp(data.get("startDateTime")),
            end=parse_timestamp(data.get("endDateTime")),
            last_modified=parse_timestamp(data.get("lastModifiedDateTime")),
            posts=tuple(sorted(posts, key=_post_sort_key)),
            status_raw=status_raw,
            classification_raw=classification_raw,
        )

    def to_graph(self, *, with_posts: bool = True) -> dict[str, Any]:
        """Graph's own property names, status and classification in camelCase spelling."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "service": self.service,
            "feature": self.feature,
            "featureGroup": self.feature_group,
            "classification": as_sent(self.classification, self.classification_raw),
            "origin": self.origin,
            "status": as_sent(self.status, self.status_raw),
            "isResolved": self.is_resolved,
            "startDateTime": format_timestamp(self.start),
            "endDateTime": format_timestamp(self.end),
            "lastModifiedDateTime": format_timestamp(self.last_modified),
            "impactDescription": self.impact_description,
        }
        if with_posts:
            data["posts"] = [p.to_graph() for p in self.posts]
        return data

    @property
    def url(self) -> str:
        """The issue's page in the Microsoft 365 admin center."""
        return ADMIN_CENTER_ISSUE_URL.format(id=self.id)

    @property
    def status_text(self) -> str:
        """The status in words."""
        return status_words(self.status, self.status_raw)

    @property
    def severity(self) -> int:
        """How bad the current status is (0 = fine, 5 = service interruption)."""
        return severity_of(self.status)

    @property
    def latest_post(self) -> Post | None:
        """The newest post, if any."""
        return self.posts[-1] if self.posts else None

    def same_content(self, other: Issue) -> bool:
        """True when nothing but ``lastModifiedDateTime`` (and raw casing) differs."""
        return self._comparable() == other._comparable()

    def _comparable(self) -> dict[str, Any]:
        data = self.to_graph()
        data["lastModifiedDateTime"] = None
        # Unknown values are kept as sent; their casing alone is not a change either.
        data["status"] = str(data["status"]).lower()
        data["classification"] = str(data["classification"]).lower()
        return data


def post_keys(posts: Sequence[Post]) -> list[str]:
    """One key per post: its time, with ``#2``, ``#3``… for later posts of the same time.

    Graph gives posts no id, and two posts may share a ``createdDateTime`` to the
    second; counting them keeps the second one from passing for the first.
    """
    seen: dict[str, int] = {}
    keys = []
    for post in posts:
        seen[post.key] = seen.get(post.key, 0) + 1
        keys.append(post.key if seen[post.key] == 1 else f"{post.key}#{seen[post.key]}")
    return keys


def parse_issues(items: Sequence[Mapping[str, Any]]) -> tuple[list[Issue], int]:
    """Parse a Graph ``issues`` collection; returns the issues and how many items were skipped."""
    issues: list[Issue] = []
    skipped = 0
    for item in items:
        try:
            issues.append(Issue.from_graph(item))
        except ParseError:
            skipped += 1
    return issues, skipped


@dataclass(frozen=True)
class ServiceHealth:
    """One service's overall health (``healthOverviews``)."""

    id: str
    service: str
    status: str
    status_raw: str | None = field(default=None, compare=False)

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> ServiceHealth:
        """Parse a ``serviceHealth`` object."""
        status_raw = graph_text(data.get("status"))
        return cls(
            id=graph_text(data.get("id")) or "",
            service=graph_text(data.get("service")) or graph_text(data.get("id")) or "(unknown)",
            status=canonical_status(status_raw),
            status_raw=status_raw,
        )

    def to_graph(self) -> dict[str, Any]:
        """Graph's property names."""
        return {
            "id": self.id,
            "service": self.service,
            "status": as_sent(self.status, self.status_raw),
        }
