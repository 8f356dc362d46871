"""What the state holds, as frozen values, and their JSON form. Pure: standard library only.

Two files hold a state, both TinyDB documents written atomically under one lock:

- the **state file** (``state.json``): the meta (schema, generation, each feed's
  baseline time, the targets' fingerprint) and one table per feed of
  :class:`Snapshot` rows, the items as last seen;
- the **outbox** (``state.outbox.json``): the :class:`Entry` list, each a change
  still owed to some delivery :class:`Unit`. It is small, so recording each
  acceptance as it happens costs in proportion to it, not to the snapshots.

A poll that finds changes writes the outbox first (its new entries carry the
next *generation*), then the state file with that generation. Entries newer
than the state file are the plan of a poll killed between the two writes:
nothing of them was sent (sending starts after both writes), and the same
changes will be found again, so they are dropped at load.

Schema 1 (release 0.1) kept the queue in the state file as ``pending`` with
units spelled ``name#2``; it loads as is, and the next poll (not a dry run)
writes it in the new layout: the outbox first, then the state file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from m365watch.feeds import Feed
from m365watch.models import format_timestamp, parse_timestamp

STATE_SCHEMA = 2
OUTBOX_SCHEMA = 1
LAST_ERROR_LIMIT = 300

ItemT = TypeVar("ItemT")
ChangeT = TypeVar("ChangeT")

# Release 0.1 recorded the URLs of a target with several as "name#1", "name#2" (no "#" in names).
_LEGACY_UNIT = re.compile(r"^(?P<target>[^#]+)#(?P<url>[1-9][0-9]{0,3})$")


class RecordError(ValueError):
    """A stored record cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Unit:
    """Where a delivery is recorded: a target, or one URL of a target that has several.

    A dead URL is then retried alone, and the others never receive a change twice.
    """

    target: str
    url: int | None = None  # position among the target's URLs, from 1

    @property
    def label(self) -> str:
        """How people see it: ``ops``, or ``ops#2`` for the second URL of ``ops``."""
        return self.target if self.url is None else f"{self.target}#{self.url}"

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"target": self.target, "url": self.url}

    @classmethod
    def from_json(cls, data: object) -> Unit:
        """Inverse of :meth:`to_json`; also reads release 0.1's ``name#2`` strings."""
        if isinstance(data, str) and data:
            legacy = _LEGACY_UNIT.match(data)
            if legacy:
                return cls(legacy["target"], int(legacy["url"]))
            return cls(data)
        if isinstance(data, Mapping):
            target, url = data.get("target"), data.get("url")
            if isinstance(target, str) and target and (url is None or _positive_int(url)):
                return cls(target, url)
        raise RecordError(f"a delivery target {_shown(data)} is not a target")


def units_of(name: str, url_count: int) -> tuple[Unit, ...]:
    """The units a target with ``url_count`` URLs is recorded under."""
    if url_count == 1:
        return (Unit(name),)
    return tuple(Unit(name, n) for n in range(1, url_count + 1))


@dataclass(frozen=True)
class Owed:
    """One unit that has not accepted a change yet, with its failed tries."""

    unit: Unit
    attempts: int = 0
    last_error: str = ""

    def failed(self, reason: str, now: datetime) -> Owed:
        """The same, one more failed try later."""
        text = f"{format_timestamp(now)} {reason}"[:LAST_ERROR_LIMIT]
        return replace(self, attempts=self.attempts + 1, last_error=text)


@dataclass(frozen=True)
class Entry(Generic[ChangeT]):
    """A change of one item, still owed to the units in ``owed``."""

    feed: str
    item_id: str
    change: ChangeT
    owed: tuple[Owed, ...]
    queued_at: datetime | None = None
    generation: int = 0

    def owes(self, unit: Unit) -> bool:
        """True while ``unit`` has not accepted this change."""
        return any(o.unit == unit for o in self.owed)

    def settled(self, unit: Unit) -> Entry[ChangeT]:
        """This entry once ``unit`` accepted it."""
        return replace(self, owed=tuple(o for o in self.owed if o.unit != unit))

    def failed(self, unit: Unit, reason: str, now: datetime) -> Entry[ChangeT]:
        """This entry once ``unit`` refused it again."""
        owed = tuple(o.failed(reason, now) if o.unit == unit else o for o in self.owed)
        return replace(self, owed=owed)


@dataclass(frozen=True, eq=False)
class Snapshot(Generic[ItemT]):
    """An item as last seen; ``missing_since`` once it left the feed.

    ``record`` is its JSON: as loaded (an unchanged snapshot is written back as it
    was), or what Graph sent (``Feed.record_for``), so that the
    next poll can tell an unchanged item by comparing JSON. A snapshot loaded from
    the state file is parsed (``parse``) only when its item is first asked for: a
    poll in which few items changed parses only those.
    """

    value: ItemT | None = None
    missing_since: datetime | None = None
    record: Mapping[str, Any] | None = field(default=None, repr=False)
    parse: Callable[[Mapping[str, Any]], ItemT] | None = field(default=None, repr=False)

    @property
    def item(self) -> ItemT:
        """The item, parsed from ``record`` on first use."""
        if self.value is None:
            assert self.parse is not None and self.record is not None, "an empty snapshot"
            object.__setattr__(self, "value", self.parse(self.record))
        return self.value  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return (self.item, self.missing_since) == (other.item, other.missing_since)

    def __hash__(self) -> int:
        return hash(self.missing_since)


@dataclass(frozen=True)
class Meta:
    """The state file's own facts."""

    generation: int = 0
    baselines: Mapping[str, datetime] = field(default_factory=dict)
    targets_fingerprint: str | None = None


@dataclass(frozen=True)
class State:
    """One installation's (one tenant's) whole state, as loaded."""

    meta: Meta = Meta()
    snapshots: Mapping[str, Mapping[str, Snapshot[Any]]] = field(default_factory=dict)
    outbox: tuple[Entry[Any], ...] = ()
    exists: bool = False  # the state file exists
    schema: int = STATE_SCHEMA  # as found on disk; an older one is rewritten at the next write

    def items(self, feed: str) -> Mapping[str, Snapshot[Any]]:
        """The snapshots of one feed, by id."""
        return self.snapshots.get(feed, {})


# --- JSON form ---------------------------------------------------------------------------


def meta_to_json(meta: Meta) -> dict[str, Any]:
    """The meta document of the state file."""
    return {
        "schema": STATE_SCHEMA,
        "generation": meta.generation,
        "baselines": {k: format_timestamp(v) for k, v in sorted(meta.baselines.items())},
        "targetsFingerprint": meta.targets_fingerprint,
    }


def meta_from_json(doc: Mapping[str, Any], schema: int) -> Meta:
    """Read the meta document (release 0.1's ``baselineAt`` is the issues feed's baseline)."""
    if schema == 1:
        raw_baselines: object = {"issues": doc.get("baselineAt")} if doc.get("baselineAt") else {}
    else:
        raw_baselines = doc.get("baselines") or {}
    if not isinstance(raw_baselines, Mapping):
        raise RecordError("its meta has baselines that are not an object")
    baselines = {}
    for feed, stamp in raw_baselines.items():
        when = parse_timestamp(stamp)
        if when is None:
            raise RecordError(f"its meta has a baseline time {_shown(stamp)} that is not a time")
        baselines[str(feed)] = when
    generation = doc.get("generation", 0)
    if not _natural(generation):
        raise RecordError("its meta has a generation that is not a whole number")
    fingerprint = doc.get("targetsFingerprint")
    return Meta(
        generation=generation,
        baselines=baselines,
        targets_fingerprint=fingerprint if isinstance(fingerprint, str) else None,
    )


def snapshot_to_json(feed: Feed[Any, Any], item_id: str, snapshot: Snapshot[Any]) -> dict[str, Any]:
    """One row of a feed's table in the state file."""
    record = snapshot.record if snapshot.record is not None else feed.to_record(snapshot.item)
    return {"id": item_id, "item": record, "missingSince": format_timestamp(snapshot.missing_since)}


def snapshot_from_json(
    feed: Feed[Any, Any], row: Mapping[str, Any], schema: int
) -> tuple[str, Snapshot[Any]]:
    """Inverse of :func:`snapshot_to_json` (release 0.1 named the field ``issue``)."""
    item_id = row.get("id")
    record = row.get("issue" if schema == 1 else "item")
    if not (isinstance(item_id, str) and isinstance(record, Mapping)):
        raise RecordError("it has no id or no item")
    missing = row.get("missingSince")
    missing_since = parse_timestamp(missing)
    if missing is not None and missing_since is None:
        raise RecordError(f"its missingSince {_shown(missing)} is not a time")
    return item_id, Snapshot(None, missing_since, record, parse=lambda r: _item(feed, r, item_id))


def _item(feed: Feed[ItemT, Any], record: Mapping[str, Any], item_id: str) -> ItemT:
    """A stored record's item (parsed when first needed); RecordError when unreadable."""
    try:
        return feed.from_record(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"the record of {item_id} cannot be read ({exc})") from None


def entry_to_json(feed: Feed[Any, Any], entry: Entry[Any]) -> dict[str, Any]:
    """One row of the outbox."""
    return {
        "feed": entry.feed,
        "item": entry.item_id,
        "change": feed.change_to_record(entry.change),
        "owed": [
            {**o.unit.to_json(), "attempts": o.attempts, "lastError": o.last_error}
            for o in entry.owed
        ],
        "queuedAt": format_timestamp(entry.queued_at),
        "generation": entry.generation,
    }


def entry_from_json(feeds: Mapping[str, Feed[Any, Any]], row: Mapping[str, Any]) -> Entry[Any]:
    """Inverse of :func:`entry_to_json`."""
    feed = feeds.get(row.get("feed"))  # type: ignore[arg-type]
    if feed is None:
        raise RecordError(f"its feed {_shown(row.get('feed'))} is unknown to this m365watch")
    change = _change(feed, row.get("change"))
    owed = []
    for raw in _list(row.get("owed"), "owed"):
        if not isinstance(raw, Mapping):
            raise RecordError("an owed target is not an object")
        attempts, last_error = raw.get("attempts", 0), raw.get("lastError", "")
        if not _natural(attempts) or not isinstance(last_error, str):
            raise RecordError("an owed target has attempts or lastError of the wrong type")
        owed.append(Owed(Unit.from_json(raw), attempts, last_error))
    generation = row.get("generation", 0)
    if not _natural(generation):
        raise RecordError("its generation is not a whole number")
    return _entry(feed, change, owed, row, generation)


def legacy_entry_from_json(feed: Feed[Any, Any], row: Mapping[str, Any]) -> Entry[Any]:
    """A schema-1 ``pending`` record: ``targets`` lists unit labels, as do its attempts."""
    change = _change(feed, row.get("change"))
    targets = _list(row.get("targets"), "targets")
    attempts = row.get("attempts")
    errors = row.get("lastError")
    attempts = {} if attempts is None else attempts
    errors = {} if errors is None else errors
    if not isinstance(attempts, Mapping) or not isinstance(errors, Mapping):
        raise RecordError("its attempts or lastError is not an object")
    owed = []
    for name in targets:
        if not isinstance(name, str):
            raise RecordError(f"a target {_shown(name)} is not a name")
        count, error = attempts.get(name, 0), errors.get(name, "")
        if not _natural(count) or not isinstance(error, str):
            raise RecordError(f"attempts or lastError of {name!r} has the wrong type")
        owed.append(Owed(Unit.from_json(name), count, error))
    return _entry(feed, change, owed, row, 0)


def _entry(
    feed: Feed[Any, Any], change: Any, owed: list[Owed], row: Mapping[str, Any], generation: int
) -> Entry[Any]:
    return Entry(
        feed=feed.name,
        item_id=_item_id(change),
        change=change,
        owed=tuple(owed),
        queued_at=parse_timestamp(row.get("queuedAt")),
        generation=generation,
    )


def current_entries(entries: Iterable[Entry[Any]], generation: int) -> tuple[Entry[Any], ...]:
    """The entries a state of ``generation`` stands behind (newer ones: see the module doc)."""
    return tuple(e for e in entries if e.generation <= generation)


def _change(feed: Feed[Any, Any], record: object) -> Any:
    if not isinstance(record, Mapping):
        raise RecordError("it has no change")
    try:
        return feed.change_from_record(record)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"its change cannot be read ({exc})") from None


def _item_id(change: Any) -> str:
    item_id = change.item_id
    if not isinstance(item_id, str):  # pragma: no cover - every feed's change has a text id
        raise RecordError("its change has no item id")
    return item_id


def _list(value: object, name: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise RecordError(f"its {name} is not a list")
    return value


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _positive_int(value: object) -> bool:
    return _natural(value) and value != 0


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
