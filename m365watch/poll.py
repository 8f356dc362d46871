"""One poll: fetch → plan → commit the plan → deliver, recording each acceptance as it happens.

Under the state lock:

1. **fetch** every feed (a sign-in or Graph failure ends the poll: nothing written);
2. **plan** (:func:`m365watch.plan.plan_poll`, pure): changes, next snapshots, outbox;
3. **commit the plan**: the outbox first, then the state file (see
   :mod:`m365watch.records` for why that order is safe);
4. **deliver** each outgoing message; as soon as a unit accepts one, the outbox
   is written without it. A process killed mid-delivery re-sends at most the
   message in flight to each unit; nothing accepted before is sent again.

A poll that finds nothing and owes nothing writes nothing (the state file's
time is refreshed instead).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from m365watch import __version__
from m365watch.deliver import Delivery, Sender, SendResult, deliver
from m365watch.diff import IssueChange
from m365watch.errors import GraphError
from m365watch.feeds import Feed
from m365watch.feeds.issues import ISSUES
from m365watch.feeds.messages import NAME as MESSAGES_NAME
from m365watch.feeds.messages import MessageChange, MessagesFeed
from m365watch.messages import Message, render_test
from m365watch.models import format_timestamp, parse_timestamp
from m365watch.plan import (
    Dropped,
    Outgoing,
    Plan,
    outgoing,
    plan_poll,
    quiet_until,
    with_fingerprint,
)
from m365watch.records import STATE_SCHEMA, Entry, State, Unit
from m365watch.settings import MessagesSettings, PollSettings, TargetSettings

log = logging.getLogger(__name__)


class IssueSource(Protocol):
    """Where issues come from: the Graph adapter, or the demo's timeline."""

    def list_issues(self) -> list[dict[str, Any]]:
        """Every issue of the tenant, as Graph's JSON."""
        ...


class StateStorage(Protocol):
    """Where a tenant's state lives (the TinyDB adapter)."""

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the state lock for the whole poll."""
        ...

    def load(self, feeds: Mapping[str, Feed[Any, Any]] = ...) -> State:
        """The state file and outbox, parsed."""
        ...

    def save(self, state: State, feeds: Mapping[str, Feed[Any, Any]] = ...) -> None:
        """Write the state file (meta and snapshots) atomically."""
        ...

    def save_outbox(
        self, entries: Sequence[Entry[Any]], feeds: Mapping[str, Feed[Any, Any]] = ...
    ) -> None:
        """Write the outbox atomically."""
        ...

    def touch(self) -> None:
        """Note a poll that wrote nothing."""
        ...

    def load_quiet(self) -> dict[str, Any] | None:
        """The quiet mark, when it still describes the state file; else None."""
        ...

    def save_quiet(self, mark: Mapping[str, Any]) -> None:
        """Write the quiet mark for the state file as it is now."""
        ...

    def outbox_is_empty(self) -> bool:
        """True when nothing at all is in the outbox."""
        ...

    def release(self) -> None:
        """Forget what the last load read: the plan is committed."""
        ...


class MessageSource(Protocol):
    """Where Message center posts come from: the Graph adapter."""

    def list_messages(self) -> list[dict[str, Any]]:
        """Every Message center post of the tenant, as Graph's JSON."""
        ...


@dataclass(frozen=True)
class FeedSource:
    """A feed, and how to read its items this poll.

    ``optional``: a GraphError while reading skips this feed for this poll (its
    snapshots untouched, the error in :attr:`PollResult.errors`) instead of ending
    the poll, so one feed's missing permission does not stop the others.
    """

    feed: Feed[Any, Any]
    read: Callable[[], Sequence[Mapping[str, Any]]]
    optional: bool = False


def issues_from(source: IssueSource) -> FeedSource:
    """The service-health issues feed, read from ``source``."""
    return FeedSource(ISSUES, source.list_issues)


def messages_from(source: MessageSource, settings: MessagesSettings, now: datetime) -> FeedSource:
    """The Message center feed for a poll at ``now``: optional (it needs its own permission)."""
    return FeedSource(MessagesFeed(settings=settings, now=now), source.list_messages, optional=True)


@dataclass(frozen=True)
class PollResult:
    """What a poll found and did."""

    baseline: bool
    issues_seen: int
    changes: tuple[Any, ...]  # every feed's: IssueChange, MessageChange
    deliveries: tuple[Delivery, ...] = ()
    pending: int = 0
    state_written: bool = False
    dry_run: bool = False
    previews: tuple[tuple[str, Message], ...] = field(default=())
    dropped: tuple[Dropped, ...] = ()
    errors: tuple[str, ...] = ()  # optional feeds that could not be read this poll
    posts_seen: int | None = None  # Message center posts read; None: that feed was not read
    posts_baseline: bool = False  # this poll recorded the Message center's baseline

    @property
    def issue_changes(self) -> tuple[IssueChange, ...]:
        """The service-health issues' changes."""
        return tuple(c for c in self.changes if isinstance(c, IssueChange))

    @property
    def post_changes(self) -> tuple[MessageChange, ...]:
        """The Message center posts' changes."""
        return tuple(c for c in self.changes if isinstance(c, MessageChange))

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """Deliveries that a target did not accept (kept for the next poll)."""
        return tuple(d for d in self.deliveries if not d.ok)


def run_poll(
    *,
    sources: Sequence[FeedSource],
    store: StateStorage,
    make_sender: Callable[[], Sender],
    poll: PollSettings,
    targets: Sequence[TargetSettings],
    targets_fingerprint: str,
    now: datetime,
    dry_run: bool = False,
    notify_existing: bool = False,
    reports: Callable[[Sequence[Any]], Mapping[str, Path]] | None = None,
) -> PollResult:
    """Run one complete poll under the state lock. Raises M365WatchError on failure.

    ``reports`` (``[pir]``) is asked, once the plan is committed and before anything
    is sent, for the files saved for the changes about to go out (item id -> path);
    the messages say where they are and carry them where they can. It must be quick:
    every notification waits for it.

    Nothing is written when the poll fails before delivery (Graph, auth) or when
    nothing changed and nothing is owed; in that last case the file's time is
    refreshed instead.
    """
    sender = SenderOnce(make_sender)
    with planned_poll(
        sources=sources,
        store=store,
        sender=sender,
        poll=poll,
        targets=targets,
        targets_fingerprint=targets_fingerprint,
        now=now,
        dry_run=dry_run,
        notify_existing=notify_existing,
        reports=reports,
    ) as planned:
        if dry_run:
            return planned.preview()
        sends = [(o, planned.render(o)) for o in planned.sends]
        deliveries = deliver(
            sender.checked() if sends else _NoSender(),
            [(o.unit, message) for o, message in sends],
            on_result=lambda i, result: planned.record(sends[i][0], result),
        )
        return planned.finish(deliveries)


class _NoSender:
    """Stands in for the sender when nothing is to be sent."""

    def check(self) -> None:
        """Nothing to check."""

    def send(self, target: str, message: Message, *, url: int | None = None) -> SendResult:
        raise AssertionError("nothing was to be sent")  # pragma: no cover


class SenderOnce:
    """The sender, made and checked at most once (also across the tenants of one poll)."""

    def __init__(self, make_sender: Callable[[], Sender]) -> None:
        self._make = make_sender
        self._sender: Sender | None = None
        self._lock = threading.Lock()

    def checked(self) -> Sender:
        """The sender, its URLs checked: ConfigError naming a target whose URL is refused."""
        with self._lock:
            if self._sender is None:
                sender = self._make()
                sender.check()
                self._sender = sender
            return self._sender


@dataclass
class PlannedPoll:
    """A tenant's poll once its plan is committed: what it owes, until delivery is done.

    Lives inside :func:`planned_poll` (the state lock held); :meth:`record` writes
    each unit's answer to the outbox as soon as it is known.
    """

    found: PollResult
    sends: list[Outgoing]
    feeds: Mapping[str, Feed[Any, Any]]
    outbox: _Outbox
    state_written: bool
    dry_run: bool = False
    tenant: str | None = None  # the [[tenants]] name its messages are labelled with
    reports: Callable[[Sequence[Any]], Mapping[str, Path]] | None = None
    _saved: Mapping[str, Path] | None = None

    def saved(self) -> Mapping[str, Path]:
        """The files ``reports`` saved for the changes about to be sent (asked once)."""
        if self.dry_run:
            return {}
        if self._saved is None:
            self._saved = _saved_reports(self.reports, [c for o in self.sends for c in o.changes])
        return self._saved

    def render(self, item: Outgoing, tenants: Mapping[str, Sequence[str]] | None = None) -> Message:
        """The message for one outgoing item, naming ``tenants`` by item id (default: its own)."""
        if tenants is None and self.tenant is not None:
            tenants = {c.item_id: (self.tenant,) for c in item.changes}
        return self.feeds[item.feed].render(item.changes, self.saved(), tenants)

    def record(self, item: Outgoing, result: SendResult) -> None:
        """One unit's answer to one message, written to the outbox at once."""
        self.outbox.record(item, result)

    def preview(self, previews: Sequence[tuple[str, Message]] | None = None) -> PollResult:
        """A dry run's result: what would be sent (default: its own sends), nothing written."""
        if previews is None:
            previews = [(o.unit.label, self.render(o)) for o in self.sends]
        return replace(self.found, pending=len(previews), dry_run=True, previews=tuple(previews))

    def finish(self, deliveries: Sequence[Delivery]) -> PollResult:
        """Write what is left of the outbox; the poll's result."""
        self.outbox.flush()
        if not self.state_written:
            self.outbox.store.touch()
        return replace(
            self.found,
            deliveries=tuple(deliveries),
            pending=self.outbox.pending,
            state_written=self.state_written,
        )


@contextlib.contextmanager
def planned_poll(
    *,
    sources: Sequence[FeedSource],
    store: StateStorage,
    sender: SenderOnce,
    poll: PollSettings,
    targets: Sequence[TargetSettings],
    targets_fingerprint: str,
    now: datetime,
    dry_run: bool = False,
    notify_existing: bool = False,
    reports: Callable[[Sequence[Any]], Mapping[str, Path]] | None = None,
    tenant: str | None = None,
) -> Iterator[PlannedPoll]:
    """Fetch, plan and commit the plan under the state lock, held while inside.

    What is owed is in :attr:`PlannedPoll.sends`; a dry run previews it (named with
    ``tenant``, when given) and writes nothing.
    """
    with store.locked():
        # Planned in a function of its own: the feed, the state and the plan are gone
        # by the time this waits for delivery (with many tenants waiting at once,
        # keeping them would hold every tenant's feed in memory).
        yield _plan_and_commit(
            sources=sources,
            store=store,
            sender=sender,
            poll=poll,
            targets=targets,
            targets_fingerprint=targets_fingerprint,
            now=now,
            dry_run=dry_run,
            notify_existing=notify_existing,
            reports=reports,
            tenant=tenant,
        )


def _plan_and_commit(
    *,
    sources: Sequence[FeedSource],
    store: StateStorage,
    sender: SenderOnce,
    poll: PollSettings,
    targets: Sequence[TargetSettings],
    targets_fingerprint: str,
    now: datetime,
    dry_run: bool,
    notify_existing: bool,
    reports: Callable[[Sequence[Any]], Mapping[str, Path]] | None,
    tenant: str | None,
) -> PlannedPoll:
    """The body of :func:`planned_poll`, under its lock."""
    feeds = [s.feed for s in sources]
    by_name = {feed.name: feed for feed in feeds}
    # A state file with a quiet mark was read and written by a poll like this one: the
    # feeds come first, and when Graph sent the very same bytes the state is not read.
    mark = None if dry_run else store.load_quiet()
    state = store.load() if mark is None else None
    fetched, errors = _read(sources)
    config = _config_key(feeds, poll, targets_fingerprint)
    if mark is not None:
        quiet = _quiet(mark, fetched, config, now, store)
        if quiet is not None:
            found = PollResult(
                baseline=False,
                issues_seen=quiet.get(ISSUES.name, 0),
                changes=(),
                errors=errors,
                posts_seen=quiet.get(MESSAGES_NAME) if MESSAGES_NAME in fetched else None,
            )
            return PlannedPoll(found, [], by_name, _Outbox(store, [], now), state_written=False)
        state = store.load()
    assert state is not None
    plan = plan_poll(
        state,
        fetched,
        feeds=[feed for feed in feeds if feed.name in fetched],
        poll=poll,
        targets=targets,
        now=now,
        notify_existing=notify_existing,
    )
    for feed_plan in plan.feeds:
        if feed_plan.skipped:
            log.warning(
                "%d %s from Graph had no id and were ignored", feed_plan.skipped, feed_plan.feed
            )
    next_state = plan.state
    issues = next((p for p in plan.feeds if p.feed == ISSUES.name), None)
    posts = next((p for p in plan.feeds if p.feed == MESSAGES_NAME), None)
    found = PollResult(
        baseline=bool(issues and issues.baseline),
        issues_seen=issues.seen if issues else 0,
        changes=plan.changes,
        dropped=plan.dropped,
        errors=errors,
        posts_seen=posts.seen if posts else None,
        posts_baseline=bool(posts and posts.baseline),
    )

    # Apprise checks the URLs when they changed (loading it costs ~0.4 s, so a quiet poll
    # with unchanged targets never does), and on every dry run.
    if targets and (state.meta.targets_fingerprint != targets_fingerprint or dry_run):
        sender.checked()
        next_state = with_fingerprint(next_state, targets_fingerprint)
    owed = outgoing(next_state.outbox, targets, feeds)
    sends = [o for o in owed if o.changes]
    outbox = _Outbox(store, list(next_state.outbox), now)
    if dry_run:
        planned = PlannedPoll(found, sends, by_name, outbox, False, dry_run=True, tenant=tenant)
    else:
        if sends:
            # Checked before anything is sent: a URL Apprise no longer accepts must not
            # stop the poll halfway, after other targets got what they will get again.
            sender.checked()
        state_written = _commit_plan(
            store, state, next_state, plan.snapshots_changed, sending=bool(sends)
        )
        outbox.settle_silent([o for o in owed if not o.changes])
        planned = PlannedPoll(
            found, sends, by_name, outbox, state_written, tenant=tenant, reports=reports
        )
        read = [feed for feed in feeds if feed.name in fetched]
        _mark_quiet(store, fetched, plan, quiet_until(next_state, read), config, state_written)
    # Committed: the store need not hold the loaded state while delivery waits (with
    # many tenants waiting, that would be every tenant's state at once).
    store.release()
    return planned


# What the quiet mark holds (beside the state file; see StateStore.load_quiet).
QUIET_SCHEMA = 1


def _config_key(
    feeds: Sequence[Feed[Any, Any]], poll: PollSettings, targets_fingerprint: str
) -> str:
    """What of the configuration a plan depends on, as one hash (filters, targets)."""
    settings = [(feed.name, getattr(feed, "settings", None)) for feed in feeds]
    text = repr((settings, replace(poll, concurrency=0), targets_fingerprint))
    return hashlib.sha256(text.encode()).hexdigest()


def _digests(fetched: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str] | None:
    """Each feed's digest of what Graph sent; None when a source gives none (not Graph)."""
    digests = {name: getattr(items, "digest", None) for name, items in fetched.items()}
    if not digests or not all(isinstance(d, str) for d in digests.values()):
        return None
    return {name: str(d) for name, d in digests.items()}


def _quiet(
    mark: Mapping[str, Any],
    fetched: Mapping[str, Sequence[Mapping[str, Any]]],
    config: str,
    now: datetime,
    store: StateStorage,
) -> Mapping[str, int] | None:
    """The items seen per feed when this poll can change nothing; None when it must plan.

    Quiet when Graph sent the very bytes the state was planned from (every feed read),
    with the same configuration, before any of the state's own events is due (an item
    forgotten, a reminder), and nothing is owed to any target.
    """
    until = parse_timestamp(mark.get("until"))
    if (
        mark.get("schema") != QUIET_SCHEMA
        or mark.get("config") != config
        or _digests(fetched) != mark.get("digests")
        or (mark.get("until") is not None and (until is None or now >= until))
    ):
        return None
    seen = mark.get("seen")
    if not isinstance(seen, dict) or not store.outbox_is_empty():
        return None
    return {str(k): v for k, v in seen.items() if isinstance(v, int)}


def _mark_quiet(
    store: StateStorage,
    fetched: Mapping[str, Sequence[Mapping[str, Any]]],
    plan: Plan,
    until: datetime | None,
    config: str,
    state_written: bool,
) -> None:
    """Note which feed bytes the state file now stands for (when every feed had a digest)."""
    digests = _digests(fetched)
    if digests is None:
        return
    mark = {
        "schema": QUIET_SCHEMA,
        "digests": digests,
        "seen": {p.feed: p.seen for p in plan.feeds},
        "until": format_timestamp(until),
        "config": config,
    }
    old = None if state_written else store.load_quiet()
    if old is None or {k: v for k, v in old.items() if k != "file"} != mark:
        store.save_quiet(mark)


def _read(
    sources: Sequence[FeedSource],
) -> tuple[dict[str, Sequence[Mapping[str, Any]]], tuple[str, ...]]:
    """Each feed's items; an optional feed's GraphError is kept as its error, not raised."""
    fetched: dict[str, Sequence[Mapping[str, Any]]] = {}
    errors: list[str] = []
    for source in sources:
        try:
            fetched[source.feed.name] = source.read()
        except GraphError as error:
            if not source.optional:
                raise
            log.debug("the %s feed was not read: %s", source.feed.name, error)
            errors.append(f"the {source.feed.name} feed was not read: {error}")
    return fetched, tuple(errors)


def _saved_reports(
    reports: Callable[[Sequence[Any]], Mapping[str, Path]] | None, changes: Sequence[Any]
) -> Mapping[str, Path]:
    """What ``reports`` says was saved for ``changes``; nothing when it fails (one warning)."""
    if reports is None:
        return {}
    try:
        return reports(changes)
    except Exception as error:  # the messages go out without the files
        log.warning("the files saved for these changes were not looked up: %s", error)
        return {}


def _commit_plan(
    store: StateStorage, before: State, after: State, snapshots_changed: bool, *, sending: bool
) -> bool:
    """Write the outbox, then the state file, as far as they changed; True if the state was.

    Before anything is sent the outbox is written even when unchanged: a folder that
    cannot be written (a full disk) then stops the poll before a message goes out that
    could not be recorded, and would be sent again by every later poll. A state file
    of an older schema is rewritten in the new layout, its queue moved to the outbox first.
    """
    migrate = before.exists and before.schema < STATE_SCHEMA
    if after.outbox != before.outbox or migrate or sending:
        store.save_outbox(after.outbox)
    if snapshots_changed or after.meta != before.meta or migrate or not before.exists:
        store.save(after)
        return True
    return False


class _Outbox:
    """The outbox while messages go out: each outcome is written as soon as it is known."""

    def __init__(self, store: StateStorage, entries: list[Entry[Any]], now: datetime) -> None:
        self.store = store
        self.entries = entries  # by position, as Outgoing.entries counts them
        self.now = now
        self.dirty = False

    def settle_silent(self, silent: Sequence[Outgoing]) -> None:
        """Entries whose changes cancelled out settle unsent (written with the next write)."""
        for item in silent:
            self._update(item.unit, item.entries, SendResult(True))

    def record(self, item: Outgoing, result: SendResult) -> None:
        """One unit's answer to one message, written at once."""
        self._update(item.unit, item.entries, result)
        self.flush()

    def _update(self, unit: Unit, positions: Sequence[int], result: SendResult) -> None:
        for position in positions:
            entry = self.entries[position]
            if result.ok:
                self.entries[position] = entry.settled(unit)
            else:
                self.entries[position] = entry.failed(unit, result.reason, self.now)
        self.dirty = True

    def flush(self) -> None:
        """Write the outbox if anything changed since the last write."""
        if self.dirty:
            self.store.save_outbox(self.remaining)
            self.dirty = False

    @property
    def remaining(self) -> list[Entry[Any]]:
        """The entries still owed to some unit."""
        return [e for e in self.entries if e.owed]

    @property
    def pending(self) -> int:
        """How many (entry, unit) deliveries are still owed."""
        return sum(len(e.owed) for e in self.entries)


def send_test_messages(
    sender: Sender, targets: Sequence[TargetSettings], now: datetime
) -> list[Delivery]:
    """Send each target a clearly-marked test message; one result per target, in order.

    A URL Apprise rejects fails its own target only, so every target gets its line.
    """
    messages = [(Unit(t.name), render_test(t.name, now, version=__version__)) for t in targets]
    return deliver(sender, messages)
