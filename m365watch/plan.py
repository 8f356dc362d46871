"""Plan a poll: (state, fetched items, settings, now) -> changes, next snapshots, outbox. Pure.

Nothing here reads a clock, a file or the network: :mod:`m365watch.poll`
fetches, calls :func:`plan_poll`, writes what it returns, then delivers the
:func:`outgoing` messages, recording each acceptance as it happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from m365watch.feeds import Feed, FeedChange
from m365watch.records import Entry, Owed, Snapshot, State, Unit, units_of
from m365watch.settings import PollSettings, TargetSettings

# An item that left the feed is kept this long (its return is then not "new").
FORGET_AFTER = timedelta(days=90)

ItemT = TypeVar("ItemT")
ChangeT = TypeVar("ChangeT", bound=FeedChange)


@dataclass(frozen=True)
class FeedPlan(Generic[ItemT, ChangeT]):
    """What one feed's poll found."""

    feed: str
    baseline: bool
    seen: int
    skipped: int
    changes: tuple[ChangeT, ...]
    snapshots: Mapping[str, Snapshot[ItemT]]
    snapshots_changed: bool


@dataclass(frozen=True)
class Dropped:
    """A change that was still owed to a target the configuration no longer has."""

    item_id: str
    target: str


@dataclass(frozen=True)
class Plan:
    """What a poll will write before it sends anything."""

    feeds: tuple[FeedPlan[Any, Any], ...]
    state: State
    dropped: tuple[Dropped, ...] = ()

    @property
    def changes(self) -> tuple[Any, ...]:
        """Every feed's changes, in feed order."""
        return tuple(c for f in self.feeds for c in f.changes)

    @property
    def snapshots_changed(self) -> bool:
        """True when the state file's snapshots or meta must be written."""
        return any(f.snapshots_changed for f in self.feeds)


@dataclass(frozen=True)
class Outgoing:
    """One message owed to one unit, and the outbox entries (by position) it settles.

    No changes: what the entries said cancelled out, and they settle unsent.
    """

    unit: Unit
    feed: str
    changes: tuple[Any, ...]
    entries: tuple[int, ...]


def plan_feed(
    feed: Feed[ItemT, ChangeT],
    previous: Mapping[str, Snapshot[ItemT]],
    fetched: Sequence[Mapping[str, Any]],
    *,
    baseline: bool,
    notify_existing: bool,
    poll: PollSettings,
    now: datetime,
) -> FeedPlan[ItemT, ChangeT]:
    """Diff one feed's fetched items against its snapshots.

    Snapshots hold what Graph sent (``Feed.record_for``): an item Graph sends again
    (``Feed.unchanged``) is kept without being parsed, so a poll in which one of 5,000
    issues changed parses and compares one.
    """
    unchanged: dict[str, Snapshot[ItemT]] = {}
    if not baseline:
        rest = []
        for raw in fetched:
            item_id = raw.get("id")
            old = previous.get(item_id) if isinstance(item_id, str) else None
            if (
                old is not None
                and old.record is not None
                and item_id not in unchanged
                and feed.unchanged(old.record, raw)
            ):
                unchanged[str(item_id)] = old
            else:
                rest.append(raw)
        fetched = rest
    items, skipped = feed.parse(fetched)
    found: list[ChangeT] = []
    if baseline:
        if notify_existing:
            found = [c for c in (feed.existing(i) for i in items) if c is not None]
    else:
        for item in items:
            before = previous.get(feed.item_id(item))
            change = feed.diff(before.item if before else None, item)
            if change is not None:
                found.append(change)
    changes = tuple(c for c in found if feed.in_scope(c, poll))
    records = {str(r.get("id")): r for r in fetched if isinstance(r, Mapping)}
    snapshots, changed = _next_snapshots(feed, previous, unchanged, items, records, now)
    return FeedPlan(
        feed=feed.name,
        baseline=baseline,
        seen=len(unchanged) + len(items),
        skipped=skipped,
        changes=changes,
        snapshots=snapshots,
        snapshots_changed=changed or baseline,
    )


def _next_snapshots(
    feed: Feed[ItemT, Any],
    previous: Mapping[str, Snapshot[ItemT]],
    unchanged: Mapping[str, Snapshot[ItemT]],
    items: Sequence[ItemT],
    records: Mapping[str, Mapping[str, Any]],
    now: datetime,
) -> tuple[dict[str, Snapshot[ItemT]], bool]:
    """Snapshots after this poll (unchanged ones kept as they were), and whether any changed.

    ``unchanged``: snapshots whose item Graph sent again to the byte; ``records``: what
    Graph sent for the others, by id (for a feed that stores it).
    """
    snapshots: dict[str, Snapshot[ItemT]] = {}
    changed = False
    for item_id, kept in unchanged.items():
        if kept.missing_since is not None:
            kept, changed = replace(kept, missing_since=None), True
        snapshots[item_id] = kept
    for item in items:
        item_id = feed.item_id(item)
        old = previous.get(item_id)
        raw = records.get(item_id)
        record = feed.record_for(item, raw) if raw is not None else None
        if old is not None and feed.same(old.item, item):
            if old.missing_since is not None:
                old, changed = replace(old, missing_since=None), True
            if record is not None and old.record != record:
                # Kept from now on as Graph sends it (a new lastModifiedDateTime, a record
                # written before records were Graph's JSON), so later polls compare it
                # unparsed; not a change: it is written with the next change, if any.
                old = replace(old, value=item, record=record)
            snapshots[item_id] = old
        else:
            snapshots[item_id], changed = Snapshot(item, record=record), True
    for item_id, old in previous.items():
        if item_id in snapshots:
            continue
        if old.missing_since is None:
            snapshots[item_id], changed = replace(old, missing_since=now), True
        elif now - old.missing_since < FORGET_AFTER:
            snapshots[item_id] = old
        else:
            changed = True  # forgotten: not in the feed for 90 days
    return snapshots, changed


def plan_poll(
    state: State,
    fetched: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    feeds: Sequence[Feed[Any, Any]],
    poll: PollSettings,
    targets: Sequence[TargetSettings],
    now: datetime,
    notify_existing: bool = False,
) -> Plan:
    """The whole poll's plan: each feed's changes, the next state, and its outbox.

    New outbox entries carry the next generation, the state's, so that a poll killed
    between writing the outbox and the state file leaves entries the load ignores.
    """
    plans = tuple(
        plan_feed(
            feed,
            state.items(feed.name),
            fetched.get(feed.name, ()),
            baseline=feed.name not in state.meta.baselines,
            notify_existing=notify_existing or poll.notify_existing,
            poll=poll,
            now=now,
        )
        for feed in feeds
    )
    snapshots_changed = any(p.snapshots_changed for p in plans)
    generation = state.meta.generation + (1 if snapshots_changed else 0)
    baselines = dict(state.meta.baselines)
    baselines.update({p.feed: now for p in plans if p.baseline})
    kept, dropped = _still_owed(state.outbox, targets)
    by_name = {feed.name: feed for feed in feeds}
    new = tuple(
        Entry(p.feed, change.item_id, change, owed, now, generation)
        for p in plans
        for change in p.changes
        if (owed := _owed_for(by_name[p.feed], change, targets))
    )
    snapshots = {**state.snapshots, **{p.feed: p.snapshots for p in plans}}
    meta = replace(state.meta, generation=generation, baselines=baselines)
    next_state = replace(state, meta=meta, snapshots=snapshots, outbox=kept + new)
    return Plan(feeds=plans, state=next_state, dropped=dropped)


def quiet_until(state: State, feeds: Sequence[Feed[Any, Any]]) -> datetime | None:
    """Until when ``state``, polled again with the same items from Graph, changes nothing.

    The earliest of: an item gone from the feed being forgotten, and each feed's
    own next event (a reminder window opening). None: nothing but Graph can change it.
    """
    times: list[datetime] = []
    for feed in feeds:
        snapshots = state.items(feed.name)
        times += (s.missing_since + FORGET_AFTER for s in snapshots.values() if s.missing_since)
        event = feed.next_event(s.item for s in snapshots.values() if s.missing_since is None)
        if event is not None:
            times.append(event)
    return min(times, default=None)


def _owed_for(
    feed: Feed[Any, Any], change: Any, targets: Sequence[TargetSettings]
) -> tuple[Owed, ...]:
    return tuple(
        Owed(unit)
        for t in targets
        if feed.wanted_by(change, t)
        for unit in units_of(t.name, len(t.urls))
    )


def _still_owed(
    outbox: Sequence[Entry[Any]], targets: Sequence[TargetSettings]
) -> tuple[tuple[Entry[Any], ...], tuple[Dropped, ...]]:
    """Queued entries for units still configured; what was owed to the others is dropped.

    A target that gained URLs since owes what it owed on each of them.
    """
    units = {t.name: units_of(t.name, len(t.urls)) for t in targets}
    configured = {u for target_units in units.values() for u in target_units}
    kept: list[Entry[Any]] = []
    dropped: list[Dropped] = []
    for entry in outbox:
        owed: list[Owed] = []
        gone: list[str] = []
        for o in entry.owed:
            if o.unit in configured:
                owed.append(o)
            elif o.unit.url is None and o.unit.target in units:
                owed += [Owed(u) for u in units[o.unit.target]]
            else:
                gone.append(o.unit.label)
        dropped += [Dropped(entry.item_id, label) for label in sorted(gone)]
        if owed:
            kept.append(entry if tuple(owed) == entry.owed else replace(entry, owed=tuple(owed)))
    return tuple(kept), tuple(dropped)


def outgoing(
    outbox: Sequence[Entry[Any]],
    targets: Sequence[TargetSettings],
    feeds: Sequence[Feed[Any, Any]],
) -> list[Outgoing]:
    """The messages owed, per unit, in configuration order, then queue order.

    Queued changes of one item merge into one change; a ``digest`` target gets one
    message per feed holding every item's change.
    """
    out: list[Outgoing] = []
    for target in targets:
        for unit in units_of(target.name, len(target.urls)):
            for feed in feeds:
                out += _unit_outgoing(outbox, feed, unit, digest=target.digest)
    return out


def _unit_outgoing(
    outbox: Sequence[Entry[Any]], feed: Feed[Any, Any], unit: Unit, *, digest: bool
) -> list[Outgoing]:
    by_item: dict[str, tuple[Any, list[int]]] = {}
    for position, entry in enumerate(outbox):
        if entry.feed != feed.name or not entry.owes(unit):
            continue
        if entry.item_id in by_item:
            merged, positions = by_item[entry.item_id]
            by_item[entry.item_id] = (feed.merge(merged, entry.change), [*positions, position])
        else:
            by_item[entry.item_id] = (entry.change, [position])
    groups = list(by_item.values())
    silent = [p for change, positions in groups if change.silent for p in positions]
    groups = [(c, p) for c, p in groups if not c.silent]
    out = [Outgoing(unit, feed.name, (), tuple(silent))] if silent else []
    if digest and len(groups) > 1:
        changes = tuple(change for change, _ in groups)
        out.append(Outgoing(unit, feed.name, changes, tuple(p for _, ps in groups for p in ps)))
    else:
        out += [Outgoing(unit, feed.name, (c,), tuple(ps)) for c, ps in groups]
    return out


def with_fingerprint(state: State, fingerprint: str) -> State:
    """The state once its targets' URLs were checked under ``fingerprint``."""
    return replace(state, meta=replace(state.meta, targets_fingerprint=fingerprint))
