"""The query commands over many tenants ([[tenants]]): each tenant asked, side by side.

``status``, ``messages``, ``show`` and ``check`` ask every tenant what they ask one
(the functions of :mod:`m365watch.query` and :mod:`m365watch.message_query`), up to
``[poll] concurrency`` tenants at a time. A tenant that cannot answer (sign-in
refused, Graph down, no state yet) is one error beside the others' answers; a
ConfigError (a ``--service`` that names nothing) ends the whole question, as it
would for one tenant. The answers here join the tenants' reports: each row knows
its tenant, and the JSON adds ``"tenant"`` to every object.

Like the modules it joins, nothing here prints, reads the clock or imports an adapter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from m365watch.errors import ConfigError, M365WatchError, NotFoundError, first_line
from m365watch.feeds.messages import ServiceMessage
from m365watch.message_query import (
    MessageDetail,
    MessagesQuery,
    MessagesReport,
    message_json,
    message_order,
)
from m365watch.models import Issue, format_timestamp
from m365watch.query import (
    IssueDetail,
    ServiceStatus,
    StatusQuery,
    StatusReport,
    ago,
    cache_note,
    issue_json,
    issue_order,
)
from m365watch.sections import format_time

T = TypeVar("T")


@dataclass(frozen=True)
class TenantAnswer(Generic[T]):
    """One tenant's answer, or the error that kept it from answering."""

    name: str
    answer: T | None = None
    error: M365WatchError | None = None


def ask_in_order(
    questions: Sequence[tuple[str, Callable[[], T]]],
    *,
    concurrency: int,
    wait_on_exit: bool = False,
) -> Iterator[TenantAnswer[T]]:
    """Ask each tenant (``(name, ask)``), up to ``concurrency`` at once; answers in order.

    Each answer is yielded as soon as it and those before it are in. An M365WatchError
    (NotFoundError too) is that tenant's error; any other exception (a ConfigError, a
    bug, Ctrl-C) is raised once the tenants already being asked are done.

    The askers run in daemon threads: when the caller stops early (an exception, a
    time limit), no new tenant is asked and, unless ``wait_on_exit``, the process may
    exit without waiting for those in flight (``doctor`` waits: its fresh token caches
    are removed as each tenant's check ends).
    """
    count = len(questions)
    answers: list[TenantAnswer[T] | None] = [None] * count
    fatal: list[BaseException] = []
    lock = threading.Lock()
    done = threading.Condition(lock)
    stop = threading.Event()
    upcoming = iter(range(count))

    def work() -> None:
        while not stop.is_set():
            with lock:
                index = next(upcoming, None)
            if index is None:
                return
            name, ask = questions[index]
            answer: TenantAnswer[T] | None = None
            try:
                answer = TenantAnswer(name, answer=ask())
            except ConfigError as error:
                with lock:
                    fatal.append(error)
                stop.set()
            except M365WatchError as error:
                answer = TenantAnswer(name, error=error)
            except BaseException as error:  # a bug: raised in the caller, after the others
                with lock:
                    fatal.append(error)
                stop.set()
            with done:
                answers[index] = answer
                done.notify_all()

    workers = [
        threading.Thread(target=work, name=f"tenant-query-{n}", daemon=True)
        for n in range(max(1, min(concurrency, count)))
    ]
    for worker in workers:
        worker.start()
    try:
        for index in range(count):
            with done:
                while answers[index] is None and not fatal and any(w.is_alive() for w in workers):
                    done.wait(0.1)
                answer = answers[index]
            if fatal:
                break
            if answer is None:  # every worker has stopped (the run is ending)
                break
            yield answer
        if fatal:
            for worker in workers:
                worker.join()
            raise fatal[0]
    finally:
        stop.set()
        if wait_on_exit:
            for worker in workers:
                worker.join()


def ask_tenants(
    questions: Sequence[tuple[str, Callable[[], T]]], *, concurrency: int
) -> tuple[TenantAnswer[T], ...]:
    """Every tenant's answer (or error), in the order asked: see :func:`ask_in_order`."""
    return tuple(ask_in_order(questions, concurrency=concurrency))


def _error_json(answer: TenantAnswer[Any]) -> dict[str, Any]:
    return {"tenant": answer.name, "error": first_line(answer.error or M365WatchError())}


def _oldest(stamps: Sequence[datetime | None]) -> datetime | None:
    known = [s for s in stamps if s is not None]
    return min(known) if known else None


class _Cached(Protocol):
    """A report that says when its tenant was last polled (--cached)."""

    @property
    def cached_at(self) -> datetime | None:
        """The tenant's last poll, or None (live)."""
        ...


R = TypeVar("R", bound=_Cached)


class _Joined(Generic[R]):
    """What the joined answers share: the answered tenants, the failed ones, the cache age."""

    answers: tuple[TenantAnswer[R], ...]

    @property
    def cached_at(self) -> datetime | None:
        """The oldest of the tenants' last polls (--cached)."""
        return _oldest([r.cached_at for _, r in self.answered])

    @property
    def cached_ats(self) -> tuple[tuple[str, datetime | None], ...]:
        """Each answered tenant's last poll (--cached)."""
        return tuple((name, r.cached_at) for name, r in self.answered)

    @property
    def answered(self) -> tuple[tuple[str, R], ...]:
        """(tenant, its report), in the order asked."""
        return tuple((a.name, a.answer) for a in self.answers if a.answer is not None)

    @property
    def failed(self) -> tuple[TenantAnswer[R], ...]:
        """The tenants that could not answer."""
        return tuple(a for a in self.answers if a.error is not None)

    @property
    def tenant_names(self) -> list[str]:
        """The tenants answered, as the JSON's ``tenants`` lists them."""
        return [name for name, _ in self.answered]


def _json_head(joined: _Joined[Any], generated: datetime, source: str) -> dict[str, Any]:
    """What the joined ``status``/``messages`` JSON starts with (see the README)."""
    return {
        "generated": format_timestamp(generated),
        "source": source,
        "cachedAt": format_timestamp(joined.cached_at),
        "tenants": joined.tenant_names,
        "failed": [_error_json(a) for a in joined.failed],
    }


@dataclass(frozen=True)
class TenantsStatus(_Joined[StatusReport]):
    """The answer to ``m365watch status`` with [[tenants]]: every tenant's report joined."""

    generated: datetime
    source: str  # query.SOURCE_GRAPH or query.SOURCE_CACHE
    answers: tuple[TenantAnswer[StatusReport], ...]
    query: StatusQuery

    @property
    def services(self) -> tuple[tuple[str, ServiceStatus], ...]:
        """Every tenant's services, by name then tenant."""
        rows = [(name, s) for name, r in self.answered for s in r.services]
        return tuple(sorted(rows, key=lambda row: row[1].service.casefold()))

    @property
    def unhealthy_services(self) -> tuple[tuple[str, ServiceStatus], ...]:
        """The services with problems, worst first, a service's tenants together."""
        rows = [(name, s) for name, r in self.answered for s in r.unhealthy_services]
        return tuple(
            sorted(
                rows,
                key=lambda row: (-row[1].rank, -row[1].severity, row[1].service.casefold()),
            )
        )

    @property
    def issues(self) -> tuple[tuple[str, Issue], ...]:
        """Every tenant's issues as ``status`` orders one's, an issue's tenants together."""
        rows = [(name, i) for name, r in self.answered for i in r.issues]
        return tuple(sorted(rows, key=lambda row: issue_order(row[1])))

    def to_json(self) -> dict[str, Any]:
        """The ``status --json`` contract with [[tenants]] (see the README)."""
        return {
            **_json_head(self, self.generated, self.source),
            "services": [{"tenant": name, **s.to_json()} for name, s in self.services],
            "issues": [{"tenant": name, **issue_json(i)} for name, i in self.issues],
        }


@dataclass(frozen=True)
class TenantsMessages(_Joined[MessagesReport]):
    """The answer to ``m365watch messages`` with [[tenants]]: every tenant's posts joined."""

    generated: datetime
    source: str
    answers: tuple[TenantAnswer[MessagesReport], ...]
    query: MessagesQuery

    @property
    def messages(self) -> tuple[tuple[str, ServiceMessage], ...]:
        """Every tenant's posts, newest first, a post's tenants together."""
        rows = [(name, p) for name, r in self.answered for p in r.messages]
        return tuple(sorted(rows, key=lambda row: message_order(row[1])))

    def to_json(self) -> dict[str, Any]:
        """The ``messages --json`` contract with [[tenants]] (see the README)."""
        return {
            **_json_head(self, self.generated, self.source),
            "messages": [{"tenant": name, **message_json(p)} for name, p in self.messages],
        }


@dataclass(frozen=True)
class TenantsDetail(_Joined[IssueDetail | MessageDetail]):
    """The answer to ``m365watch show ID`` with [[tenants]]: the item in each tenant that has it.

    A tenant without it answered NotFoundError: it is in ``missing``, not ``failed``.
    """

    item_id: str
    answers: tuple[TenantAnswer[IssueDetail | MessageDetail], ...]

    @property
    def failed(self) -> tuple[TenantAnswer[IssueDetail | MessageDetail], ...]:
        """The tenants that could not say whether they have it."""
        return tuple(
            a
            for a in self.answers
            if a.error is not None and not isinstance(a.error, NotFoundError)
        )

    @property
    def missing(self) -> tuple[str, ...]:
        """The tenants that answered: no such issue or post."""
        return tuple(a.name for a in self.answers if isinstance(a.error, NotFoundError))

    def to_json(self) -> list[dict[str, Any]]:
        """The ``show --json`` contract with [[tenants]]: a list, one object per tenant that
        has it (in configuration order), each the one-tenant object with ``"tenant"`` first."""
        return [{"tenant": name, **detail.to_json()} for name, detail in self.answered]


def not_found_in_any(detail: TenantsDetail, *, cached: bool) -> NotFoundError:
    """The error (exit 4) for an id that none of the tenants asked has."""
    count = len(detail.missing)
    asked = f"the {count} tenants asked" if count != 1 else "the tenant asked"
    names = ", ".join(detail.missing)
    if cached:
        return NotFoundError(
            f"{detail.item_id} is not in the local state of {asked} ({names}): it may not "
            "exist or be newer than the last poll; leave out --cached to ask Microsoft Graph"
        )
    return NotFoundError(f"{detail.item_id} exists in none of {asked} ({names})")


def tenants_cache_note(cached_ats: Sequence[tuple[str, datetime | None]], now: datetime) -> str:
    """The sentence that says how old the tenants' cached data is: the oldest one's age."""
    if len(cached_ats) == 1:
        return cache_note(cached_ats[0][1], now)
    known = [(stamp, name) for name, stamp in cached_ats if stamp is not None]
    if not known:
        return "From each tenant's local state (times of the last polls unknown)."
    oldest, name = min(known)
    return (
        f"From each tenant's local state; the oldest is {name}'s, as of its last poll "
        f"{ago(oldest, now)} ({format_time(oldest)})."
    )
