"""One poll of many tenants ([[tenants]]): planned concurrently, delivered once, grouped.

1. **plan**, up to ``concurrency`` tenants at a time: each tenant's poll runs as
   :func:`m365watch.poll.planned_poll` does it alone (its own lock, state, outbox
   and sign-in) and stays open, its lock held. A tenant that fails (sign-in
   refused, Graph down, its state locked) is one error; the others go on.
2. **deliver**, once every tenant is planned: each message owed goes out once.
   For a ``group_tenants`` target, the same item owed by several tenants is one
   message naming them all (a digest target: one digest of every tenant's
   changes); its answer is written to each of those tenants' outboxes, so a
   tenant's share is settled only when that message was accepted.
3. **finish** each tenant (what is left of its outbox), releasing the locks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from m365watch.deliver import Delivery, Sender, SendResult, deliver
from m365watch.errors import ConfigError, M365WatchError
from m365watch.messages import Message
from m365watch.plan import Outgoing
from m365watch.poll import PlannedPoll, PollResult, SenderOnce
from m365watch.settings import TargetSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TenantJob:
    """One tenant's share of the poll.

    ``plan(stack, sender)`` enters the tenant's :func:`~m365watch.poll.planned_poll`
    on ``stack`` (which holds its lock until delivery is over) and returns it;
    M365WatchError when the tenant cannot be polled.
    """

    name: str
    plan: Callable[[contextlib.ExitStack[Any], SenderOnce], PlannedPoll]


@dataclass(frozen=True)
class TenantOutcome:
    """What the poll did in one tenant: its result, or the error that stopped it."""

    name: str
    result: PollResult | None = None
    error: M365WatchError | None = None


@dataclass(frozen=True)
class TenantsResult:
    """What a poll of many tenants found and did."""

    tenants: tuple[TenantOutcome, ...]
    deliveries: tuple[Delivery, ...] = ()
    dry_run: bool = False
    previews: tuple[tuple[str, Message], ...] = ()

    @property
    def failed_tenants(self) -> tuple[TenantOutcome, ...]:
        """The tenants that could not be polled."""
        return tuple(t for t in self.tenants if t.error is not None)

    @property
    def failed(self) -> tuple[Delivery, ...]:
        """Messages a target did not accept (kept for the next poll)."""
        return tuple(d for d in self.deliveries if not d.ok)


@dataclass(frozen=True)
class _Share:
    tenant: str
    planned: PlannedPoll
    item: Outgoing


def run_tenant_polls(
    jobs: Sequence[TenantJob],
    *,
    make_sender: Callable[[], Sender],
    targets: Sequence[TargetSettings],
    concurrency: int,
    dry_run: bool = False,
) -> TenantsResult:
    """Poll every tenant of ``jobs`` (in their order), deliver, and say what happened.

    ``targets`` are all the configured targets (for ``group_tenants``). A ConfigError
    (a notification URL Apprise refuses) ends the whole poll, as it would one tenant's.
    """
    sender = SenderOnce(make_sender)
    errors: dict[str, M365WatchError] = {}
    with contextlib.ExitStack() as held:
        planned = _plan_all(jobs, sender, concurrency, held, errors)
        groups = _group([(name, p) for name, p in planned.items()], targets)
        messages = [(shares[0].item.unit, _render(shares)) for shares in groups]
        if dry_run:
            previews = tuple((unit.label, message) for unit, message in messages)
            results = {name: p.preview([]) for name, p in planned.items()}
            return TenantsResult(_outcomes(jobs, results, errors), (), True, previews)

        def record(index: int, result: SendResult) -> None:
            for share in groups[index]:
                share.planned.record(share.item, result)

        deliveries = deliver(sender.checked(), messages, on_result=record) if messages else []
        results = {}
        for name, poll in planned.items():
            own = [
                d
                for d, shares in zip(deliveries, groups, strict=False)
                if any(s.tenant == name for s in shares)
            ]
            results[name] = poll.finish(own)
    return TenantsResult(_outcomes(jobs, results, errors), tuple(deliveries))


def _plan_all(
    jobs: Sequence[TenantJob],
    sender: SenderOnce,
    concurrency: int,
    held: contextlib.ExitStack[Any],
    errors: dict[str, M365WatchError],
) -> dict[str, PlannedPoll]:
    """Each tenant planned (its lock left held on ``held``); failures into ``errors``."""

    def plan(job: TenantJob) -> tuple[PlannedPoll, contextlib.ExitStack[Any]]:
        stack = contextlib.ExitStack()
        try:
            return job.plan(stack, sender), stack
        except BaseException:
            stack.close()
            raise

    planned: dict[str, PlannedPoll] = {}
    fatal: BaseException | None = None
    with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="tenant") as pool:
        futures = [(job.name, pool.submit(plan, job)) for job in jobs]
        for name, future in futures:
            try:
                poll, stack = future.result()
            except ConfigError as error:
                fatal = fatal or error
                continue
            except M365WatchError as error:
                log.debug("tenant %s was not polled: %s", name, error)
                errors[name] = error
                continue
            except BaseException as error:  # a bug, or the run interrupted: after the others
                fatal = fatal or error
                continue
            held.enter_context(stack)
            planned[name] = poll
    if fatal is not None:
        raise fatal
    return planned


def _group(
    planned: Sequence[tuple[str, PlannedPoll]], targets: Sequence[TargetSettings]
) -> list[list[_Share]]:
    """The messages to send, as the tenants' shares each one settles, in first-owed order."""
    grouping = {t.name: t for t in targets if t.group_tenants}
    groups: dict[tuple[Any, ...], list[_Share]] = {}
    for name, poll in planned:
        for index, item in enumerate(poll.sends):
            target = grouping.get(item.unit.target)
            if target is None:
                key: tuple[Any, ...] = (name, index)
            elif target.digest:
                key = (item.unit, item.feed)
            else:
                key = (item.unit, item.feed, tuple(c.item_id for c in item.changes))
            groups.setdefault(key, []).append(_Share(name, poll, item))
    return list(groups.values())


def _render(shares: Sequence[_Share]) -> Message:
    """One message for the shares of one group: each item's change as the first tenant has it."""
    changes: dict[str, Any] = {}
    tenants: dict[str, list[str]] = {}
    for share in shares:
        for change in share.item.changes:
            changes.setdefault(change.item_id, change)
            tenants.setdefault(change.item_id, []).append(share.tenant)
    first = shares[0]
    item = replace(first.item, changes=tuple(changes.values()))
    return first.planned.render(item, tenants)


def _outcomes(
    jobs: Sequence[TenantJob],
    results: Mapping[str, PollResult],
    errors: Mapping[str, M365WatchError],
) -> tuple[TenantOutcome, ...]:
    return tuple(
        TenantOutcome(job.name, results.get(job.name), errors.get(job.name))
        for job in jobs
        if job.name in results or job.name in errors
    )
