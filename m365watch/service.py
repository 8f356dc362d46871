"""One poll: fetch, diff, queue, deliver, then commit — given the adapters.

The order is what makes delivery at-least-once: the state (new snapshots and
the queue of deliveries still owed) is written once, at the end, after every
target has been tried, and a delivery leaves the queue only when its target
accepted it. A process killed before the write repeats the whole poll next
time (duplicates are possible, losses are not).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from m365watch import __version__
from m365watch.diff import ChangeKind, IssueChange, diff_issues
from m365watch.errors import ConfigError, StateError
from m365watch.messages import Message, render_digest, render_test
from m365watch.models import (
    CLASSIFICATIONS,
    UNKNOWN,
    Issue,
    format_timestamp,
    parse_issues,
    parse_timestamp,
)
from m365watch.settings import PollSettings, TargetSettings
from m365watch.store import StateData, StateStore

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=90)


class IssueSource(Protocol):
    """Where issues come from: the Graph adapter, or the demo's timeline."""

    def list_issues(self) -> list[dict[str, Any]]: ...


class Sender(Protocol):
    """Delivers a message to a named target (the Apprise adapter)."""

    def check(self) -> None: ...

    def send(self, target: str, message: Message, *, url: int | None = None) -> Any: ...


@dataclass(frozen=True)
class Delivery:
    """One message sent (or tried) to one target; a digest names all its issues."""

    target: str
    issue_id: str  # "EX1256020", or "EX1256020, MO1256311" for a digest
    title: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class Dropped:
    """A change that was still owed to a target the configuration no longer has."""

    issue_id: str
    target: str


@dataclass(frozen=True)
class PollResult:
    """What a poll found and did."""

    baseline: bool
    issues_seen: int
    changes: tuple[IssueChange, ...]
    deliveries: tuple[Delivery, ...] = ()
    pending: int = 0
    state_written: bool = False
    dry_run: bool = False
    previews: tuple[tuple[str, Message], ...] = field(default=())
    skipped_items: int = 0
    dropped: tuple[Dropped, ...] = ()

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """Deliveries that a target did not accept (kept for the next poll)."""
        return tuple(d for d in self.deliveries if not d.ok)


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


def target_wants(target: TargetSettings, change: IssueChange) -> bool:
    """True when ``target``'s filters (services, classifications, events) match ``change``."""
    return in_scope(change.issue, target.services, target.classifications) and change.matches(
        target.events
    )


def run_poll(
    *,
    source: IssueSource,
    store: StateStore,
    make_sender: Callable[[], Sender],
    poll: PollSettings,
    targets: Sequence[TargetSettings],
    targets_fingerprint: str,
    now: datetime,
    dry_run: bool = False,
    notify_existing: bool = False,
) -> PollResult:
    """Run one complete poll under the state lock. Raises M365WatchError on failure.

    Nothing is written when the poll fails before delivery (Graph, auth) or when
    nothing changed; in that last case the file's time is refreshed instead.
    """
    with store.locked():
        state = store.load()
        items = source.list_issues()
        issues, skipped = parse_issues(items)
        if skipped:
            log.warning("%d issues from Graph had no id and were ignored", skipped)
        previous = _previous_issues(state)
        baseline = not state.meta.get("baselineAt")

        if baseline:
            changes = [
                IssueChange(issue=i, kinds=frozenset({ChangeKind.NEW}), new_posts=i.posts)
                for i in issues
                if (notify_existing or poll.notify_existing) and not i.is_resolved
            ]
        else:
            changes = diff_issues(previous, issues)
        changes = [c for c in changes if in_scope(c.issue, poll.services, poll.classifications)]

        pending, dropped = _queue(state.pending, changes, targets, now)
        new_state = StateData(
            issues=_next_snapshots(state, previous, issues, now),
            pending=pending,
            meta=dict(state.meta),
            exists=state.exists,
        )
        if baseline:
            new_state.meta["baselineAt"] = format_timestamp(now)

        # Apprise checks the URLs when they changed (loading it costs ~0.4 s, so a quiet poll
        # with unchanged targets never does), and on every dry run.
        sender: Sender | None = None
        changed_targets = new_state.meta.get("targetsFingerprint") != targets_fingerprint
        if targets and (changed_targets or dry_run):
            sender = make_sender()
            sender.check()
            new_state.meta["targetsFingerprint"] = targets_fingerprint

        outgoing = _outgoing(new_state.pending, targets)
        if dry_run:
            previews = tuple((o.unit, render_digest(o.changes)) for o in outgoing if o.changes)
            return PollResult(
                baseline=baseline,
                issues_seen=len(issues),
                changes=tuple(changes),
                pending=sum(1 for o in outgoing if o.changes),
                dry_run=True,
                previews=previews,
                skipped_items=skipped,
                dropped=tuple(dropped),
            )

        deliveries: list[Delivery] = []
        if outgoing:
            if sender is None and any(item.changes for item in outgoing):
                # Checked before anything is sent: a URL Apprise no longer accepts must not
                # stop the poll halfway, after other targets got what they will get again.
                sender = make_sender()
                sender.check()
            for item in outgoing:
                if not item.changes:
                    # Nothing left to say (a change that cancelled out): settled unsent.
                    for record in item.records:
                        _record_attempt(record, item.unit, True, "", now)
                    continue
                assert sender is not None  # made above, as some item has changes
                message = render_digest(item.changes)
                if item.url is None:
                    outcome = sender.send(item.target, message)
                else:
                    outcome = sender.send(item.target, message, url=item.url)
                ok, reason = accepted(outcome)
                issue_ids = ", ".join(message.issue_ids)  # a digest's, most severe first
                deliveries.append(Delivery(item.unit, issue_ids, message.title, ok, reason))
                # A digest covers all its records: accepted clears them all, refused keeps them all.
                for record in item.records:
                    _record_attempt(record, item.unit, ok, reason, now)
            new_state.pending = [r for r in new_state.pending if r["targets"]]

        written = False
        if new_state.as_tables() != state.as_tables() or not state.exists:
            store.save(new_state)
            written = True
        else:
            store.touch()
        return PollResult(
            baseline=baseline,
            issues_seen=len(issues),
            changes=tuple(changes),
            deliveries=tuple(deliveries),
            pending=sum(len(r["targets"]) for r in new_state.pending),
            state_written=written,
            skipped_items=skipped,
            dropped=tuple(dropped),
        )


def _previous_issues(state: StateData) -> dict[str, Issue]:
    previous: dict[str, Issue] = {}
    for issue_id, record in state.issues.items():
        try:
            previous[issue_id] = Issue.from_graph(record["issue"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(
                f"state file holds a malformed record for issue {issue_id}: {exc}"
            ) from None
    return previous


def _next_snapshots(
    state: StateData, previous: dict[str, Issue], issues: Sequence[Issue], now: datetime
) -> dict[str, dict[str, Any]]:
    """Stored issues after this poll; unchanged records are kept as they were (no rewrite)."""
    snapshots: dict[str, dict[str, Any]] = {}
    for issue in issues:
        old = previous.get(issue.id)
        if old is not None and old.same_content(issue):
            snapshots[issue.id] = {**state.issues[issue.id], "missingSince": None}
        else:
            snapshots[issue.id] = {"issue": issue.to_graph(), "missingSince": None}
    seen = {i.id for i in issues}
    for issue_id, record in state.issues.items():
        if issue_id in seen:
            continue
        missing = parse_timestamp(record.get("missingSince"))
        if missing is None:
            snapshots[issue_id] = {**record, "missingSince": format_timestamp(now)}
        elif now - missing < FORGET_AFTER:
            snapshots[issue_id] = record
        else:
            log.info("forgetting issue %s: not in the feed for 90 days", issue_id)
    return snapshots


def delivery_units(target: TargetSettings) -> list[tuple[str, int | None]]:
    """Where deliveries to ``target`` are recorded: the target itself, or each of its URLs.

    A target with several URLs is recorded per URL (``name#1``, ``name#2``…), so a
    dead URL is retried alone and the others never receive a change twice.
    """
    if len(target.urls) == 1:
        return [(target.name, None)]
    return [(f"{target.name}#{n}", n) for n in range(1, len(target.urls) + 1)]


def _queue(
    pending: list[dict[str, Any]],
    changes: Sequence[IssueChange],
    targets: Sequence[TargetSettings],
    now: datetime,
) -> tuple[list[dict[str, Any]], list[Dropped]]:
    """The deliveries still owed: old ones (for targets still configured) plus new ones.

    Also what was owed to targets no longer configured (renamed or removed): dropped.
    """
    units = {t.name: [unit for unit, _ in delivery_units(t)] for t in targets}
    names = {unit for target_units in units.values() for unit in target_units}
    queue = []
    dropped_all: list[Dropped] = []
    for record in pending:
        owed = record.get("targets", [])
        # A target that gained URLs since: what it owed, it now owes on each of them.
        owed = [u for t in owed for u in (units[t] if t in units and t not in names else [t])]
        kept = [t for t in owed if t in names]
        dropped = set(owed) - set(kept)
        if dropped:
            issue_id = str(record.get("key", "?")).split("|")[0]
            dropped_all += [Dropped(issue_id, target) for target in sorted(dropped)]
        if kept:
            # Deep copy: attempts are counted on the copy, and the old state is compared after.
            queue.append({**copy.deepcopy(record), "targets": kept})
    for change in changes:
        wanted = [unit for t in targets if target_wants(t, change) for unit in units[t.name]]
        if wanted:
            queue.append(
                {
                    "key": change.key,
                    "change": change.to_dict(),
                    "targets": wanted,
                    "queuedAt": format_timestamp(now),
                    "attempts": {},
                    "lastError": {},
                }
            )
    return queue, dropped_all


@dataclass(frozen=True)
class Outgoing:
    """One message owed to one delivery unit, and the queue records it settles."""

    unit: str
    target: str
    url: int | None
    changes: list[IssueChange]
    records: list[dict[str, Any]]


def _outgoing(pending: list[dict[str, Any]], targets: Sequence[TargetSettings]) -> list[Outgoing]:
    """The messages owed, per delivery unit and issue, in queue order.

    Several queued changes of one issue merge into one change; a ``digest`` target gets
    one message holding every issue's change and all their records. A merged change
    left with nothing to say (a status that went A → B → A) settles its records unsent.
    """
    out: list[Outgoing] = []
    for target in targets:
        for unit, url in delivery_units(target):
            out += _unit_outgoing(pending, target, unit, url)
    return out


def _unit_outgoing(
    pending: list[dict[str, Any]], target: TargetSettings, unit: str, url: int | None
) -> list[Outgoing]:
    by_issue: dict[str, tuple[IssueChange, list[dict[str, Any]]]] = {}
    for record in pending:
        if unit not in record["targets"]:
            continue
        try:
            change = IssueChange.from_dict(record["change"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"state file holds a malformed pending delivery: {exc}") from None
        if change.issue.id in by_issue:
            merged, records = by_issue[change.issue.id]
            by_issue[change.issue.id] = (merged.merged_with(change), [*records, record])
        else:
            by_issue[change.issue.id] = (change, [record])
    groups = list(by_issue.values())
    silent = [(c, r) for c, r in groups if not c.kinds]
    groups = [(c, r) for c, r in groups if c.kinds]
    out = (
        [Outgoing(unit, target.name, url, [], [r for _, rs in silent for r in rs])]
        if silent
        else []
    )
    if target.digest and len(groups) > 1:
        changes = [change for change, _ in groups]
        records = [r for _, rs in groups for r in rs]
        out.append(Outgoing(unit, target.name, url, changes, records))
    else:
        out += [Outgoing(unit, target.name, url, [c], rs) for c, rs in groups]
    return out


def _record_attempt(
    record: dict[str, Any], target: str, ok: bool, reason: str, now: datetime
) -> None:
    if ok:
        record["targets"] = [t for t in record["targets"] if t != target]
        record.get("lastError", {}).pop(target, None)
        record.get("attempts", {}).pop(target, None)
        return
    attempts = record.setdefault("attempts", {})
    attempts[target] = int(attempts.get(target, 0)) + 1
    record.setdefault("lastError", {})[target] = f"{format_timestamp(now)} {reason}"[:300]


def send_test_messages(
    sender: Sender, targets: Sequence[TargetSettings], now: datetime
) -> list[Delivery]:
    """Send each target a clearly-marked test message; one result per target, in order.

    A URL Apprise rejects fails its own target only, so every target gets its line.
    """
    results: list[Delivery] = []
    for target in targets:
        message = render_test(target.name, now, version=__version__)
        try:
            ok, reason = accepted(sender.send(target.name, message))
        except ConfigError as error:
            ok, reason = False, str(error)
        results.append(Delivery(target.name, "", message.title, ok, reason))
    return results


def accepted(outcome: Any) -> tuple[bool, str]:
    """Whether a sender's result (a DeliveryResult, or a plain bool) is a success, and why not."""
    return bool(getattr(outcome, "ok", outcome)), str(getattr(outcome, "reason", ""))
