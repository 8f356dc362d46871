"""Feeds: the kinds of item m365watch watches, each one module (fetch, parse, diff, render).

The poll pipeline (:mod:`m365watch.plan`, :mod:`m365watch.poll`) works on any
:class:`Feed`: items with an id, a stored snapshot of each, and a change type
that knows its events. Service-health issues (:mod:`m365watch.feeds.issues`)
are the first feed; a new one is a new module here plus one entry in the
wiring, with no edit inside the pipeline. Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from m365watch.messages import Message
from m365watch.settings import PollSettings, TargetSettings

ItemT = TypeVar("ItemT")
ChangeT = TypeVar("ChangeT", bound="FeedChange")


class FeedChange(Protocol):
    """What every feed's change can say about itself."""

    @property
    def item_id(self) -> str:
        """The id of the item that changed (EX1256020)."""
        ...

    @property
    def silent(self) -> bool:
        """True when nothing is left to say (a status that went A → B → A before delivery)."""
        ...


class Feed(Protocol[ItemT, ChangeT]):
    """One kind of item: how it is parsed, stored, compared, filtered and rendered."""

    @property
    def name(self) -> str:
        """The feed's name: its table in the state file and its tag in the outbox."""
        ...

    def record_for(self, item: ItemT, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The record stored for ``item``, parsed this poll from ``raw`` (Graph's JSON).

        What Graph sent (plus what the feed adds), so that :meth:`unchanged` can tell
        an item Graph sends again without parsing it.
        """
        ...

    def unchanged(self, record: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
        """True when ``raw`` would parse to the very item ``record`` holds (no change due)."""
        ...

    def parse(self, raw: Sequence[Mapping[str, Any]]) -> tuple[list[ItemT], int]:
        """Items from Graph's JSON, and how many were skipped (no id)."""
        ...

    def item_id(self, item: ItemT) -> str:
        """An item's id."""
        ...

    def to_record(self, item: ItemT) -> dict[str, Any]:
        """The JSON stored for an item's snapshot."""
        ...

    def from_record(self, record: Mapping[str, Any]) -> ItemT:
        """Inverse of :meth:`to_record`; ValueError/KeyError/TypeError when malformed."""
        ...

    def same(self, before: ItemT, after: ItemT) -> bool:
        """True when nothing a person cares about, nor anything stored, differs."""
        ...

    def diff(self, before: ItemT | None, after: ItemT) -> ChangeT | None:
        """The change from ``before`` (None: never seen) to ``after``, or None."""
        ...

    def existing(self, item: ItemT) -> ChangeT | None:
        """On a first poll with ``notify_existing``: the change announcing an open item."""
        ...

    def change_to_record(self, change: ChangeT) -> dict[str, Any]:
        """The JSON stored for a queued change."""
        ...

    def change_from_record(self, record: Mapping[str, Any]) -> ChangeT:
        """Inverse of :meth:`change_to_record`; ValueError/KeyError/TypeError when malformed."""
        ...

    def merge(self, earlier: ChangeT, later: ChangeT) -> ChangeT:
        """One change covering two queued changes of the same item."""
        ...

    def in_scope(self, change: ChangeT, poll: PollSettings) -> bool:
        """True when the ``[poll]`` filters let ``change`` be notified at all."""
        ...

    def wanted_by(self, change: ChangeT, target: TargetSettings) -> bool:
        """True when ``target``'s filters (services, classifications, events) want it."""
        ...

    def next_event(self, items: Iterable[ItemT]) -> datetime | None:
        """The first time after this poll's at which ``items``, unchanged, could make a change.

        None when only a change in Graph can (issues); a reminder's time for posts.
        """
        ...

    def render(
        self,
        changes: Sequence[ChangeT],
        reports: Mapping[str, Path] | None = None,
        tenants: Mapping[str, Sequence[str]] | None = None,
    ) -> Message:
        """One message for one change, or a digest of several.

        ``reports`` maps item ids to files saved for them (post-incident reports): the
        message says where each is and carries it as an attachment. ``tenants`` maps
        item ids to the [[tenants]] names the change happened in: the message names them.
        """
        ...


def _registry() -> dict[str, Feed[Any, Any]]:
    from m365watch.feeds.issues import ISSUES
    from m365watch.feeds.messages import MESSAGES

    return {ISSUES.name: ISSUES, MESSAGES.name: MESSAGES}


# Every feed this version knows, by name: how the state's tables and outbox entries are read.
FEEDS: Mapping[str, Feed[Any, Any]] = _registry()
