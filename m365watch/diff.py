"""Compare what was seen before with what Graph shows now: pure, standard library only.

The change vocabulary is small on purpose: ``new``, ``status``, ``post``,
``classification``, ``resolved``, ``reopened`` and ``pir``. All kinds found
for one issue in one poll make one :class:`IssueChange`. A move of
``lastModifiedDateTime`` alone is not a change people care about.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from m365watch.models import (
    PIR_STATUS,
    Issue,
    Post,
    canonical_status,
    post_keys,
    severity_of,
)


class ChangeKind(str, Enum):
    """What happened to an issue between two polls."""

    NEW = "new"
    STATUS = "status"
    POST = "post"
    CLASSIFICATION = "classification"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    PIR = "pir"


# Order used when a change is described in words.
KIND_ORDER: tuple[ChangeKind, ...] = tuple(ChangeKind)
# Events a [[notify]] target may subscribe to; "watcher" is about m365watch itself.
# The Message center feed's events (m365watch.feeds.messages), named apart from the issues'.
MESSAGE_EVENTS: tuple[str, ...] = ("message-new", "message-updated", "message-due")
EVENTS: tuple[str, ...] = (*(k.value for k in ChangeKind), *MESSAGE_EVENTS, "watcher")


@dataclass(frozen=True)
class IssueChange:
    """Everything that changed about one issue, with the issue as it is now."""

    issue: Issue
    kinds: frozenset[ChangeKind]
    previous_status: str | None = None
    previous_status_raw: str | None = None
    previous_classification: str | None = None
    new_posts: tuple[Post, ...] = ()

    @property
    def item_id(self) -> str:
        """The id of the issue that changed."""
        return self.issue.id

    @property
    def silent(self) -> bool:
        """True when merging left nothing to say (a status that went A → B → A)."""
        return not self.kinds

    @property
    def key(self) -> str:
        """A stable name for this change, used to record deliveries."""
        last_post = self.new_posts[-1].key if self.new_posts else "-"
        kinds = "+".join(k.value for k in KIND_ORDER if k in self.kinds)
        return f"{self.issue.id}|{kinds}|{self.issue.status}|{last_post}"

    @property
    def ordered_kinds(self) -> tuple[ChangeKind, ...]:
        """The kinds in a fixed, readable order."""
        return tuple(k for k in KIND_ORDER if k in self.kinds)

    @property
    def escalated(self) -> bool:
        """True when the status got worse (for people affected) than it was."""
        if ChangeKind.STATUS not in self.kinds or self.previous_status is None:
            return False
        before = severity_of(self.previous_status)
        return self.issue.severity > before

    def matches(self, events: Iterable[str]) -> bool:
        """True when a target subscribed to ``events`` (empty = everything) wants this change."""
        wanted = set(events)
        return not wanted or any(k.value in wanted for k in self.kinds)

    def merged_with(self, later: IssueChange) -> IssueChange:
        """One change covering this one and a later one of the same issue (for retries)."""
        if later.issue.id != self.issue.id:
            raise ValueError("cannot merge changes of different issues")
        kinds = set(self.kinds | later.kinds)
        # Only the end state matters when an issue flipped both ways before delivery.
        if ChangeKind.RESOLVED in kinds and ChangeKind.REOPENED in kinds:
            kinds.discard(ChangeKind.REOPENED if later.issue.is_resolved else ChangeKind.RESOLVED)
        previous_status = self.previous_status if self.previous_status else later.previous_status
        if ChangeKind.NEW not in kinds and previous_status == later.issue.status:
            kinds.discard(ChangeKind.STATUS)
        # One post queued twice (same time and text) counts once; two that share a time both count.
        seen = {(p.key, p.content) for p in self.new_posts}
        posts = self.new_posts + tuple(p for p in later.new_posts if (p.key, p.content) not in seen)
        return replace(
            later,
            kinds=frozenset(kinds),
            previous_status=previous_status,
            previous_status_raw=self.previous_status_raw or later.previous_status_raw,
            previous_classification=self.previous_classification or later.previous_classification,
            new_posts=posts,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe form for the state file (pending deliveries)."""
        return {
            "issue": self.issue.to_graph(with_posts=False),
            "kinds": [k.value for k in self.ordered_kinds],
            "previousStatus": self.previous_status_raw or self.previous_status,
            "previousClassification": self.previous_classification,
            "newPosts": [p.to_graph() for p in self.new_posts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IssueChange:
        """Inverse of :meth:`to_dict`; ValueError naming the field that is not as written.

        A kind this version does not know is skipped beside known ones (a newer
        release may have written it); with no known kind left, or a field of the wrong
        type, the change is refused rather than dropped or changed without a word.
        """
        raw_issue, posts_raw = data.get("issue"), data.get("newPosts") or []
        if not isinstance(raw_issue, Mapping):
            raise ValueError("issue is not an object")
        if not isinstance(posts_raw, list) or not all(isinstance(p, Mapping) for p in posts_raw):
            raise ValueError("newPosts is not a list of posts")
        kinds = data.get("kinds")
        if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
            raise ValueError("kinds is not a list of change kinds")
        known = [k for k in kinds if k in _KIND_VALUES]
        if not known:
            raise ValueError(f"kinds {kinds!r:.60} names no change kind this version knows")
        previous_raw = data.get("previousStatus")
        previous_class = data.get("previousClassification")
        for name, value in (
            ("previousStatus", previous_raw),
            ("previousClassification", previous_class),
        ):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} is not text")
        issue = Issue.from_graph({**raw_issue, "posts": posts_raw})
        posts = issue.posts
        issue = replace(issue, posts=())
        previous = canonical_status(previous_raw) if previous_raw is not None else None
        return cls(
            issue=issue,
            kinds=frozenset(ChangeKind(k) for k in known),
            previous_status=previous,
            previous_status_raw=previous_raw,
            previous_classification=previous_class,
            new_posts=posts,
        )


_KIND_VALUES = frozenset(k.value for k in ChangeKind)


def diff_issue(previous: Issue | None, current: Issue) -> IssueChange | None:
    """The change from ``previous`` (None = never seen) to ``current``, or None."""
    if previous is None:
        kinds = {ChangeKind.NEW}
        if current.is_resolved:
            kinds.add(ChangeKind.RESOLVED)
        if current.status == PIR_STATUS:
            kinds.add(ChangeKind.PIR)
        return IssueChange(issue=current, kinds=frozenset(kinds), new_posts=current.posts)

    kinds = set()
    if _status_changed(previous, current):
        kinds.add(ChangeKind.STATUS)
        if current.status == PIR_STATUS:
            kinds.add(ChangeKind.PIR)
    if previous.classification != current.classification:
        kinds.add(ChangeKind.CLASSIFICATION)
    if current.is_resolved and not previous.is_resolved:
        kinds.add(ChangeKind.RESOLVED)
    if previous.is_resolved and not current.is_resolved:
        kinds.add(ChangeKind.REOPENED)
    seen = set(post_keys(previous.posts))
    new_posts = tuple(
        p for p, key in zip(current.posts, post_keys(current.posts), strict=True) if key not in seen
    )
    if new_posts:
        kinds.add(ChangeKind.POST)
    if not kinds:
        return None
    return IssueChange(
        issue=current,
        kinds=frozenset(kinds),
        previous_status=previous.status,
        previous_status_raw=previous.status_raw,
        previous_classification=previous.classification,
        new_posts=new_posts,
    )


def _status_changed(previous: Issue, current: Issue) -> bool:
    if previous.status != current.status:
        return True
    # Two different statuses this version does not know are still a change.
    unknown_raw = (previous.status_raw or "").lower(), (current.status_raw or "").lower()
    return previous.status == "unknown" and unknown_raw[0] != unknown_raw[1]


def diff_issues(previous: Mapping[str, Issue], current: Iterable[Issue]) -> list[IssueChange]:
    """Every change between the issues seen before (by id) and the current feed, in feed order."""
    changes = []
    for issue in current:
        change = diff_issue(previous.get(issue.id), issue)
        if change is not None:
            changes.append(change)
    return changes
