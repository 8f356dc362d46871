"""One-off questions about the Message center: what ``messages`` and ``show MC…`` answer.

Given the Graph adapter (live) or the state store (``--cached``), build value
objects that the CLI prints as tables or as JSON, as :mod:`m365watch.query`
does for service health (whose sources, freshness notes and ``--service``
matching this module shares). Nothing here prints, reads the clock or imports
an adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from m365watch.errors import GraphError, NotFoundError, StateError
from m365watch.feeds.messages import NAME, ServiceMessage, parse_messages
from m365watch.messages import blocks_text
from m365watch.models import KNOWN_SERVICES, format_timestamp, is_message_id
from m365watch.query import (
    SOURCE_CACHE,
    SOURCE_GRAPH,
    StateSource,
    ago,
    cached_at_of,
    load_cached_state,
    select_services,
)

log = logging.getLogger(__name__)

# What --category accepts (any case), as Graph spells them.
CATEGORIES = ("preventOrFixIssue", "planForChange", "stayInformed")


class MessageSource(Protocol):
    """The live source: the Graph adapter (``m365watch.graph.GraphClient``)."""

    def list_messages(self) -> list[dict[str, Any]]: ...

    def get_message(self, message_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MessagesQuery:
    """What ``messages`` was asked for; every filter empty or off means every post."""

    category: str | None = None  # one of CATEGORIES, any case
    services: tuple[str, ...] = ()
    major_only: bool = False
    action_required: bool = False  # an act-by date still ahead
    since_days: float | None = None  # modified within this many days

    def __post_init__(self) -> None:
        if self.category is not None and self.category.casefold() not in {
            c.casefold() for c in CATEGORIES
        }:
            raise ValueError(f"category must be one of {CATEGORIES}")
        if self.since_days is not None and not 0 <= self.since_days < float("inf"):
            raise ValueError("since_days must be a finite number of days, 0 or more")


def message_json(post: ServiceMessage) -> dict[str, Any]:
    """A post with Graph's property names and camelCase enum values, plus its admin-center ``url``.

    Unknown enum values are kept as Graph sent them; a missing one is null.
    """
    return {
        "id": post.id,
        "title": post.title,
        "category": post.category or None,
        "severity": post.severity or None,
        "tags": list(post.tags),
        "isMajorChange": post.is_major,
        "actionRequiredByDateTime": format_timestamp(post.act_by),
        "services": list(post.services),
        "startDateTime": format_timestamp(post.start),
        "endDateTime": format_timestamp(post.end),
        "lastModifiedDateTime": format_timestamp(post.last_modified),
        "url": post.url,
    }


def acting_ahead(post: ServiceMessage, now: datetime) -> bool:
    """True when the post has an act-by date that has not passed yet."""
    return post.act_by is not None and post.act_by > now


@dataclass(frozen=True)
class MessagesReport:
    """The answer to ``m365watch messages``: posts, newest (last modified) first."""

    generated: datetime
    source: str  # SOURCE_GRAPH or SOURCE_CACHE
    messages: tuple[ServiceMessage, ...]
    query: MessagesQuery = MessagesQuery()
    cached_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``messages --json`` contract (see the README)."""
        return {
            "generated": format_timestamp(self.generated),
            "source": self.source,
            "cachedAt": format_timestamp(self.cached_at),
            "messages": [message_json(p) for p in self.messages],
        }


@dataclass(frozen=True)
class MessageDetail:
    """The answer to ``m365watch show MC…``: one post, whole."""

    post: ServiceMessage
    generated: datetime
    source: str
    cached_at: datetime | None = None
    # Set when the last poll no longer found the post in Graph's feed (it expired).
    missing_since: datetime | None = None

    @property
    def text(self) -> str:
        """The body as readable text, links as ``text (url)``, as notifications show it."""
        return blocks_text(self.post.blocks)

    def to_json(self) -> dict[str, Any]:
        """The ``show MC… --json`` contract: the post's fields, ``url``, ``text``, ``details``."""
        return {
            **message_json(self.post),
            "text": self.text,
            "details": [{"name": d.name, "value": d.value} for d in self.post.details],
        }


# -- messages ------------------------------------------------------------------------------


def messages_from_graph(
    source: MessageSource, query: MessagesQuery, *, now: datetime
) -> MessagesReport:
    """Ask Graph: every post (paged); the filters are applied here."""
    posts, skipped = parse_messages(source.list_messages())
    if skipped:
        log.warning("%d messages from Graph had no id and were ignored", skipped)
    return build_messages(posts, query, now=now, source=SOURCE_GRAPH)


def messages_from_state(
    store: StateSource, query: MessagesQuery, *, now: datetime
) -> MessagesReport:
    """Answer from the state file alone; posts the last poll no longer found are left out.

    A state without Message center posts (no poll with ``[messages]`` yet) is an error
    (exit 1) that says so, not an empty list that would read as "nothing to do".
    """
    state = load_cached_state(store)
    if NAME not in state.meta.baselines:
        raise StateError(
            f"the local state ({store.path}) has no Message center posts: add [messages] to "
            "the configuration and run `m365watch poll`, or leave out --cached"
        )
    posts = [s.item for s in state.items(NAME).values() if s.missing_since is None]
    return build_messages(posts, query, now=now, source=SOURCE_CACHE, cached_at=cached_at_of(store))


def build_messages(
    posts: Sequence[ServiceMessage],
    query: MessagesQuery,
    *,
    now: datetime,
    source: str,
    cached_at: datetime | None = None,
) -> MessagesReport:
    """Filter and order: newest first by ``lastModifiedDateTime`` (posts without one last).

    ``--service`` matches as ``status --service`` does (any of a post's services).
    """
    catalogue = list(KNOWN_SERVICES) + [(s, None) for p in posts for s in p.services]
    wanted = select_services(query.services, catalogue)
    since = now - timedelta(days=query.since_days) if query.since_days is not None else None
    category = query.category.casefold() if query.category else None

    def shown(post: ServiceMessage) -> bool:
        if wanted is not None and not {s.casefold() for s in post.services} & wanted:
            return False
        if category is not None and post.category.casefold() != category:
            return False
        if query.major_only and not post.is_major:
            return False
        if query.action_required and not acting_ahead(post, now):
            return False
        return since is None or (post.last_modified is not None and post.last_modified >= since)

    selected = sorted((p for p in posts if shown(p)), key=message_order)
    return MessagesReport(
        generated=now,
        source=source,
        messages=tuple(selected),
        query=query,
        cached_at=cached_at,
    )


def message_order(post: ServiceMessage) -> tuple[bool, float, str]:
    """How ``messages`` lists posts: newest (last modified) first, those without a date last."""
    return (post.last_modified is None, -_timestamp(post.last_modified), post.id)


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


# -- show MC… -------------------------------------------------------------------------------


def is_message_request(item_id: str) -> bool:
    """True when ``show`` was given a Message center post id (MC237349) rather than an issue's."""
    return is_message_id(item_id.strip())


def message_from_graph(source: MessageSource, message_id: str, *, now: datetime) -> MessageDetail:
    """Ask Graph for one post; NotFoundError (exit 4) when the tenant has no such post."""
    wanted = message_id.strip().upper()
    try:
        post = ServiceMessage.from_graph(source.get_message(wanted))
    except ValueError:
        raise GraphError(
            f"Graph answered the request for {wanted} with a post without an id; run again later"
        ) from None
    return MessageDetail(post, generated=now, source=SOURCE_GRAPH)


def message_from_state(store: StateSource, message_id: str, *, now: datetime) -> MessageDetail:
    """Find one post in the state file; NotFoundError (exit 4) when it is not there."""
    state = load_cached_state(store)
    wanted = message_id.strip().upper()
    snapshot = next((s for k, s in state.items(NAME).items() if k.upper() == wanted), None)
    if snapshot is None:
        raise NotFoundError(
            f"Message center post {wanted} is not in the local state ({store.path}): it may "
            "not exist, be newer than the last poll, or [messages] is not configured; leave "
            "out --cached to ask Microsoft Graph"
        )
    return MessageDetail(
        snapshot.item,
        generated=now,
        source=SOURCE_CACHE,
        cached_at=cached_at_of(store),
        missing_since=snapshot.missing_since,
    )


def from_now(then: datetime | None, now: datetime) -> str:
    """``in 3 days`` or ``2 days ago`` (``ago`` only counts backwards), for people."""
    if then is None:
        return "unknown"
    if then <= now:
        return ago(then, now)
    left = ago(now, then)  # the same words, counted forwards
    return "in less than a minute" if left == "just now" else "in " + left.removesuffix(" ago")
