"""The Atom feed of the messages sent: one entry per distinct message, newest first.

The adapter for ``feedgen`` (RFC 4287 Atom). After a poll that sent something,
the feed at ``[feed] path`` is rewritten atomically (mode 0644: it is for feed
readers and holds what the notifications held). Earlier entries are kept,
up to ``max_entries``, in a small JSON file beside the feed
(``m365watch.atom.json``), so the feed never has to be parsed back.

Each entry's id is a ``tag:`` URI built from the issue and the change
(``tag:m365watch,2026:EX1256020/status/serviceDegradation/2026-11-20T14:05:11Z``):
the same change keeps the same id whatever poll or target sent it. With
[[tenants]] the id starts with the tenants the message names
(``tag:m365watch,2026:contoso/EX1256020/…``), so each tenant's message and a
grouped one (sent once for several tenants: one entry) are entries of their own;
each entry has its tenants as Atom categories. All tenants share one feed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from m365watch import files
from m365watch.deliver import Delivery
from m365watch.diff import IssueChange
from m365watch.messages import Message
from m365watch.models import format_timestamp, parse_timestamp
from m365watch.sections import SERVICE_HEALTH_URL

logger = logging.getLogger(__name__)

TAG_PREFIX = "tag:m365watch,2026:"
FEED_ID = TAG_PREFIX + "feed"
FEED_TITLE = "Microsoft 365 service health (m365watch)"
_ENTRIES_MAX_BYTES = 16 * 1024 * 1024
# A grouped message names up to this many tenants in its id; more: their count and a hash.
_TAG_TENANTS = 3


@dataclass(frozen=True)
class FeedEntry:
    """One entry of the feed, as kept between polls."""

    id: str
    title: str
    link: str
    html: str
    updated: datetime
    tenants: tuple[str, ...] = ()  # the [[tenants]] the message names (empty: one tenant)

    def to_json(self) -> dict[str, Any]:
        """The JSON form kept beside the feed."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "link": self.link,
            "html": self.html,
            "updated": format_timestamp(self.updated) or "",
        }
        if self.tenants:
            data["tenants"] = list(self.tenants)
        return data

    @classmethod
    def from_json(cls, data: Any) -> FeedEntry | None:
        """An entry read back; None for anything malformed."""
        if not isinstance(data, dict):
            return None
        fields = [data.get(k) for k in ("id", "title", "link", "html", "updated")]
        if not all(isinstance(f, str) for f in fields):
            return None
        entry_id, title, link, html, updated = fields
        when = parse_timestamp(updated)
        tenants = data.get("tenants", [])
        if when is None or not entry_id or not isinstance(tenants, list):
            return None
        if not all(isinstance(t, str) for t in tenants):
            return None
        return cls(str(entry_id), str(title), str(link), str(html), when, tuple(tenants))


def change_tag(change: IssueChange) -> str:
    """The stable part of an entry id for one change: issue/kinds/status/when."""
    kinds = "+".join(k.value for k in change.ordered_kinds) or "change"
    status = change.issue.status_raw or change.issue.status
    when = change.new_posts[-1].key if change.new_posts else None
    when = when or format_timestamp(change.issue.last_modified) or "-"
    return f"{change.issue.id}/{kinds}/{status}/{when}"


def change_time(change: IssueChange) -> datetime | None:
    """When Microsoft said it: the newest new post, else the issue's last modification."""
    posted = [p.created for p in change.new_posts if p.created is not None]
    return max(posted) if posted else change.issue.last_modified


def tenants_tag(tenants: Sequence[str]) -> str:
    """The part of an entry id naming the tenants of a message (empty for none)."""
    if not tenants:
        return ""
    names = sorted(tenants)
    if len(names) <= _TAG_TENANTS:
        return "+".join(names) + "/"
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    return f"{len(names)}-tenants-{digest}/"


# A poll's changes by [[tenants]] name (None: the one tenant of a plain configuration).
TenantChanges = Mapping[str | None, Sequence[object]]


def _told(message: Message, changes: TenantChanges) -> list[IssueChange]:
    """The issue changes ``message`` tells of, each as the first tenant it names has it."""
    tenants: Sequence[str | None] = message.tenants or list(changes)
    found: list[IssueChange] = []
    for issue_id in message.issue_ids:
        for tenant in tenants:
            change = next(
                (
                    c
                    for c in changes.get(tenant, ())
                    if isinstance(c, IssueChange) and c.issue.id == issue_id
                ),
                None,
            )
            if change is not None:
                found.append(change)
                break
    return found


def entry_for(message: Message, changes: TenantChanges, now: datetime) -> FeedEntry:
    """The entry for one message sent, from the changes it tells of (``now``: fallback time).

    Message center posts have no such change: their entry's id is that of a message
    retried from an earlier poll.
    """
    told = _told(message, changes)
    if told and len(told) == len(message.issue_ids):
        tag = ",".join(change_tag(c) for c in told)
    else:
        # A message retried from an earlier poll: its changes are not this poll's.
        digest = hashlib.sha256(f"{message.title}\n{message.text}".encode()).hexdigest()[:20]
        tag = f"{'+'.join(message.issue_ids) or 'message'}/message/{digest}"
    times = [t for t in (change_time(c) for c in told) if t is not None]
    return FeedEntry(
        id=TAG_PREFIX + tenants_tag(message.tenants) + tag,
        title=message.title,
        link=message.url or SERVICE_HEALTH_URL,
        html=message.html,
        updated=max(times) if times else now,
        tenants=message.tenants,
    )


def new_entries(
    deliveries: Iterable[Delivery], changes: TenantChanges, now: datetime
) -> list[FeedEntry]:
    """One entry per distinct message among ``deliveries`` (several targets, one entry)."""
    entries: dict[str, FeedEntry] = {}
    for delivery in deliveries:
        if delivery.message is None:
            continue
        entry = entry_for(delivery.message, changes, now)
        entries.setdefault(entry.id, entry)
    return list(entries.values())


def merge_entries(
    kept: Sequence[FeedEntry], new: Sequence[FeedEntry], max_entries: int
) -> list[FeedEntry]:
    """The entries of the feed: new ones added (an id already there is kept as it was),
    newest first by ``updated``, at most ``max_entries``."""
    known = {e.id for e in kept}
    merged = [e for e in new if e.id not in known] + list(kept)
    merged.sort(key=lambda e: e.updated, reverse=True)  # stable: this poll first on a tie
    return merged[:max_entries]


def render_feed(entries: Sequence[FeedEntry], now: datetime) -> bytes:
    """The Atom document (UTF-8 bytes) for ``entries``, in the order given."""
    from feedgen.feed import FeedGenerator

    generator = FeedGenerator()
    generator.id(FEED_ID)
    generator.title(FEED_TITLE)
    generator.author({"name": "m365watch"})
    generator.link(href=SERVICE_HEALTH_URL, rel="alternate")
    generator.subtitle("Notifications m365watch sent about Microsoft 365 service health")
    generator.updated(entries[0].updated if entries else now)
    for entry in entries:
        item = generator.add_entry(order="append")
        item.id(entry.id)
        item.title(entry.title)
        item.link(href=entry.link, rel="alternate")
        item.content(entry.html, type="html")
        item.updated(entry.updated)
        for tenant in entry.tenants:
            item.category(term=tenant, label=f"Tenant {tenant}")
    document: bytes = generator.atom_str(pretty=True)
    return document


def entries_path(feed_path: Path) -> Path:
    """Where the entries are kept between polls: beside the feed."""
    return feed_path.with_name(feed_path.name + ".json")


def load_entries(feed_path: Path) -> list[FeedEntry]:
    """The entries kept by earlier polls; a missing or damaged file is an empty feed."""
    path = entries_path(feed_path)
    try:
        raw = json.loads(files.read_bounded(path, _ENTRIES_MAX_BYTES))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        logger.warning("starting the feed afresh: cannot read %s (%s)", path, error)
        return []
    items = raw.get("entries") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        return []
    return [e for e in (FeedEntry.from_json(i) for i in items) if e is not None]


def update_feed(
    feed_path: Path,
    max_entries: int,
    deliveries: Iterable[Delivery],
    changes: TenantChanges,
    now: datetime,
) -> int:
    """Add this poll's messages to the feed and rewrite it; the number of entries added.

    ``deliveries``: what the poll sent (a message to several targets, or for several
    tenants, counts once); ``changes``: the poll's changes, by tenant.

    Nothing is written when nothing was sent and the feed exists. Raises OSError.
    """
    now = now.astimezone(timezone.utc)
    kept = load_entries(feed_path)
    known = {e.id for e in kept}
    fresh = [e for e in new_entries(deliveries, changes, now) if e.id not in known]
    if not fresh and feed_path.exists():
        return 0
    entries = merge_entries(kept, fresh, max_entries)
    # The entries first: a feed never names an entry the next poll would forget.
    document = {"version": 1, "entries": [e.to_json() for e in entries]}
    files.write_readable_file(
        entries_path(feed_path), json.dumps(document, indent=1).encode() + b"\n"
    )
    files.write_readable_file(feed_path, render_feed(entries, now))
    return len(fresh)
