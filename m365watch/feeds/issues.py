"""The service-health issues feed (``/admin/serviceAnnouncement/issues``). Pure.

Parsing is :mod:`m365watch.models`, comparing is :mod:`m365watch.diff`,
rendering is :mod:`m365watch.messages`; this module binds them into the
:class:`~m365watch.feeds.Feed` the poll pipeline runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from m365watch.diff import ChangeKind, IssueChange, diff_issue
from m365watch.messages import Message, render_digest
from m365watch.models import CLASSIFICATIONS, UNKNOWN, Issue, parse_issues
from m365watch.settings import PollSettings, TargetSettings


def in_scope(issue: Issue, services: Iterable[str], classifications: Iterable[str]) -> bool:
    """True when ``issue`` passes a service filter and a classification filter (empty = all)."""
    wanted_services = {s.casefold() for s in services}
    wanted_classes = set(classifications)
    if wanted_services and issue.service.casefold() not in wanted_services:
        return False
    if not wanted_classes or issue.classification in wanted_classes:
        return True
    # A classification this version does not know yet passes unless the filter was narrowed.
    return issue.classification == UNKNOWN and set(CLASSIFICATIONS) <= wanted_classes


class IssuesFeed:
    """Service-health issues: incidents and advisories."""

    name = "issues"

    def parse(self, raw: Sequence[Mapping[str, Any]]) -> tuple[list[Issue], int]:
        """Issues from Graph's collection, and how many items had no id."""
        return parse_issues(raw)

    def item_id(self, item: Issue) -> str:
        """The issue's id."""
        return item.id

    def to_record(self, item: Issue) -> dict[str, Any]:
        """Graph's own shape (camelCase), posts included."""
        return item.to_graph()

    def record_for(self, item: Issue, raw: Mapping[str, Any]) -> dict[str, Any]:
        """What Graph sent: an issue's record is its JSON as Graph sent it."""
        return dict(raw)

    def unchanged(self, record: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
        """The very JSON stored."""
        return record == raw

    def from_record(self, record: Mapping[str, Any]) -> Issue:
        """Inverse of :meth:`to_record`."""
        if not isinstance(record, Mapping):
            raise TypeError("an issue record is not an object")
        return Issue.from_graph(record)

    def same(self, before: Issue, after: Issue) -> bool:
        """Nothing but ``lastModifiedDateTime`` (or raw casing) differs."""
        return before.same_content(after)

    def diff(self, before: Issue | None, after: Issue) -> IssueChange | None:
        """The change between two sightings of an issue."""
        return diff_issue(before, after)

    def existing(self, item: Issue) -> IssueChange | None:
        """An open issue announced as new on a first poll with ``notify_existing``."""
        if item.is_resolved:
            return None
        return IssueChange(issue=item, kinds=frozenset({ChangeKind.NEW}), new_posts=item.posts)

    def change_to_record(self, change: IssueChange) -> dict[str, Any]:
        """The queued change as stored."""
        return change.to_dict()

    def change_from_record(self, record: Mapping[str, Any]) -> IssueChange:
        """Inverse of :meth:`change_to_record`."""
        return IssueChange.from_dict(record)

    def merge(self, earlier: IssueChange, later: IssueChange) -> IssueChange:
        """Two queued changes of one issue as one."""
        return earlier.merged_with(later)

    def in_scope(self, change: IssueChange, poll: PollSettings) -> bool:
        """The ``[poll]`` services and classifications filters."""
        return in_scope(change.issue, poll.services, poll.classifications)

    def wanted_by(self, change: IssueChange, target: TargetSettings) -> bool:
        """A target's services, classifications and events filters."""
        return in_scope(change.issue, target.services, target.classifications) and change.matches(
            target.events
        )

    def next_event(self, items: Iterable[Issue]) -> datetime | None:
        """None: an issue changes only when Graph says so."""
        return None

    def render(
        self,
        changes: Sequence[IssueChange],
        reports: Mapping[str, Path] | None = None,
        tenants: Mapping[str, Sequence[str]] | None = None,
    ) -> Message:
        """One message per issue, or a digest (most severe first); ``reports``: saved PIRs."""
        return render_digest(changes, reports, tenants)


ISSUES = IssuesFeed()
