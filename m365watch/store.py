"""The local state: TinyDB files written atomically, under a file lock.

TinyDB's own JSONStorage rewrites the file in place, so a process killed
mid-write can leave it unreadable; :class:`AtomicJSONStorage` writes a temp
file beside it and renames it over. TinyDB has no locking, so every poll holds
a ``filelock`` around its read-modify-write. What the files hold, and how the
state file and its outbox stay consistent, is :mod:`m365watch.records`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import filelock

from m365watch import files
from m365watch.errors import LockedError, StateError
from m365watch.feeds import FEEDS, Feed
from m365watch.records import (
    OUTBOX_SCHEMA,
    STATE_SCHEMA,
    Entry,
    RecordError,
    Snapshot,
    State,
    current_entries,
    entry_from_json,
    entry_to_json,
    legacy_entry_from_json,
    meta_from_json,
    meta_to_json,
    snapshot_from_json,
    snapshot_to_json,
)
from m365watch.settings import DEFAULT_LOCK_WAIT

log = logging.getLogger(__name__)

# A state of a few thousand issues is a few MB; far more is not a state file.
MAX_STATE_BYTES = 256 * 1024 * 1024
MAX_HEALTH_BYTES = 1024 * 1024


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing; state, caches and locks live there."""
    try:
        files.make_private_dir(path)
    except OSError as exc:
        raise StateError(f"cannot create state folder {path}: {exc.strerror}") from None


class AtomicJSONStorage:
    """A TinyDB storage that never leaves a half-written file behind.

    TinyDB takes any object with ``read``, ``write`` and ``close``: this one does not
    derive from its ``Storage``, so reading a file (a quiet poll's outbox) imports no
    TinyDB.
    """

    def __init__(self, path: str | Path, *, label: str = "state file") -> None:
        self.path = Path(path)
        self.label = label

    def read(self) -> dict[str, Any] | None:
        try:
            raw = files.read_bounded(self.path, MAX_STATE_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.label} {self.path}: {exc.strerror}") from None
        if not raw.strip():
            raise StateError(_corrupt(self.path, "it is empty"))
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(_corrupt(self.path, f"it is not valid JSON ({exc})")) from None
        except RecursionError:
            raise StateError(_corrupt(self.path, "it is nested too deeply")) from None
        if not isinstance(data, dict):
            raise StateError(_corrupt(self.path, "it does not hold a JSON object"))
        return data

    def write(self, data: dict[str, Any]) -> None:
        # No sort_keys: TinyDB's document ids are strings, and "10" sorts before "2";
        # the pending queue's order is what decides which change is the later one.
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            files.write_private_file(self.path, payload.encode("utf-8"))
        except OSError as exc:
            raise StateError(f"cannot write {self.label} {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Nothing to close: every read and write opens and closes the file."""


def _corrupt(path: Path, why: str) -> str:
    if path.name.endswith(".delta.json"):
        return (
            f"state delta {path} cannot be used: {why}; it was left untouched: restore it "
            "from a backup, or move it aside (the next poll compares with the state file "
            "and may announce again what changed since it was written whole)"
        )
    what = "outbox" if path.name.endswith(".outbox.json") else "state file"
    return (
        f"{what} {path} cannot be used: {why}; it was left untouched: restore it from a "
        "backup, or move it aside to start again with a new baseline (nothing is sent for "
        "issues already open)"
    )


@contextlib.contextmanager
def _held(lock_path: Path, wait: float, busy: str) -> Iterator[None]:
    """Hold a file lock (0600, in a 0700 folder); LockedError(busy) after ``wait`` seconds."""
    ensure_private_dir(lock_path.parent)
    lock = filelock.FileLock(str(lock_path), timeout=wait, mode=0o600)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockedError(busy) from None
    except OSError as exc:
        raise StateError(f"cannot lock {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()


class StateStore:
    """The state of one m365watch installation (one tenant): state file and outbox, one lock.

    The outbox lives beside the state file (``state.outbox.json``), so recording
    one accepted delivery rewrites the small outbox, never the snapshots.
    """

    def __init__(self, path: Path, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        self.path = path
        self.outbox_path = path.with_name(path.stem + ".outbox.json")
        self.quiet_path = path.with_name(path.stem + ".quiet.json")
        self.delta_path = path.with_name(path.stem + ".delta.json")
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_wait = lock_wait
        # What the last load read: the snapshot objects (a snapshot the next state still
        # holds as the very object loaded is unchanged), the delta's ids, the base's.
        self._loaded: _Loaded | None = None

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the state lock; another holder for longer than ``lock_wait`` -> LockedError."""
        return _held(
            self.lock_path,
            self.lock_wait,
            f"another m365watch poll is running (lock {self.lock_path} held for more than "
            f"{self.lock_wait:g}s); this run did nothing: try again later",
        )

    def load(self, feeds: Mapping[str, Feed[Any, Any]] = FEEDS) -> State:
        """Read the state file and the outbox once; a missing state file is an empty state."""
        raw = AtomicJSONStorage(self.path).read()
        if raw is None:
            return State(outbox=self._load_outbox(feeds, None) or ())
        tables = _tables(raw, self.path)
        meta_docs = tables.get("meta", [])
        meta_doc = dict(meta_docs[0][1]) if meta_docs else {}
        schema = meta_doc.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
            raise StateError(_corrupt(self.path, "it has no m365watch schema version"))
        if schema > STATE_SCHEMA:
            raise StateError(
                f"state file {self.path} was written by a newer m365watch (schema {schema}, "
                f"this one knows {STATE_SCHEMA}): upgrade m365watch"
            )
        try:
            meta = meta_from_json(meta_doc, schema)
        except RecordError as exc:
            raise StateError(_corrupt(self.path, str(exc))) from None
        delta = self._read_delta(meta.generation, schema)
        base_generation = meta.generation
        if delta is not None:
            try:
                meta = meta_from_json(delta.meta, STATE_SCHEMA)
            except RecordError as exc:
                raise StateError(_corrupt(self.delta_path, str(exc))) from None
        snapshots: dict[str, dict[str, Snapshot[Any]]] = {}
        base_ids: dict[str, set[str]] = {}
        for name, feed in feeds.items():
            rows: dict[str, Snapshot[Any]] = {}
            changed = delta.tables.get(name, []) if delta is not None else []
            for doc_id, row in [*tables.get(name, []), *changed]:
                # Skipping a malformed record would announce its item again as new: a
                # person decides. Its item is parsed when first needed: the same error then.
                where = f"{name.removesuffix('s')} record {doc_id}"
                try:
                    item_id, snapshot = snapshot_from_json(feed, row, schema)
                except RecordError as exc:
                    raise StateError(_corrupt(self.path, f"{where} is malformed ({exc})")) from None
                rows[item_id] = replace(snapshot, parse=_parser(snapshot, self.path, where))
            base_ids[name] = {str(row.get("id")) for _, row in tables.get(name, [])}
            for gone in delta.gone.get(name, ()) if delta is not None else ():
                rows.pop(gone, None)
            snapshots[name] = rows
        self._loaded = _Loaded(
            snapshots={name: dict(rows) for name, rows in snapshots.items()},
            base_ids=base_ids,
            base_generation=base_generation,
            delta_ids={n: {str(r.get("id")) for _, r in t} for n, t in delta.tables.items()}
            if delta is not None
            else {},
            delta_gone={n: set(g) for n, g in delta.gone.items()} if delta is not None else {},
            schema=schema,
            rows=sum(len(ids) for ids in base_ids.values()),
        )
        outbox = self._load_outbox(feeds, meta.generation)
        if outbox is None:
            # No outbox yet: release 0.1 kept the queue in the state file.
            outbox = self._legacy_queue(tables.get("pending", []), feeds) if schema == 1 else ()
        return State(meta=meta, snapshots=snapshots, outbox=outbox, exists=True, schema=schema)

    def _load_outbox(
        self, feeds: Mapping[str, Feed[Any, Any]], generation: int | None
    ) -> tuple[Entry[Any], ...] | None:
        """The outbox entries the state stands behind; None when there is no outbox file."""
        raw = AtomicJSONStorage(self.outbox_path, label="outbox").read()
        if raw is None:
            return None
        tables = _tables(raw, self.outbox_path)
        meta_docs = tables.get("meta", [])
        schema = meta_docs[0][1].get("schema") if meta_docs else None
        if not isinstance(schema, int) or schema < 1:
            raise StateError(_corrupt(self.outbox_path, "it has no m365watch schema version"))
        if schema > OUTBOX_SCHEMA:
            raise StateError(
                f"outbox {self.outbox_path} was written by a newer m365watch (schema {schema}, "
                f"this one knows {OUTBOX_SCHEMA}): upgrade m365watch"
            )
        entries = []
        for doc_id, row in tables.get("entries", []):
            try:
                entries.append(entry_from_json(feeds, row))
            except RecordError as exc:
                raise StateError(
                    _corrupt(self.outbox_path, f"delivery {doc_id} is malformed ({exc})")
                ) from None
        return current_entries(entries, generation or 0)

    def _legacy_queue(
        self, rows: list[tuple[int, dict[str, Any]]], feeds: Mapping[str, Feed[Any, Any]]
    ) -> tuple[Entry[Any], ...]:
        entries = []
        for doc_id, row in rows:
            try:
                entries.append(legacy_entry_from_json(feeds["issues"], row))
            except RecordError as exc:
                raise StateError(
                    _corrupt(self.path, f"pending delivery {doc_id} is malformed ({exc})")
                ) from None
        return tuple(entries)

    def save(self, state: State, feeds: Mapping[str, Feed[Any, Any]] = FEEDS) -> None:
        """Write the state: what changed since the state file, or the whole state file.

        After a load, the snapshots that changed (not the very objects loaded) and the
        meta go to ``state.delta.json``, replaced atomically: a poll in which one of
        5,000 issues changed writes that one, not 5,000. The whole state file is
        rewritten (and the delta removed) when there is no state file yet, when it
        was of an older schema, and when the delta has grown past a tenth of it.
        The quiet mark goes first: it describes the files it was written beside.
        """
        self._drop_quiet()
        loaded = self._loaded
        if loaded is not None and self.path.exists() and loaded.schema == STATE_SCHEMA:
            delta = _delta_of(loaded, state, feeds)
            size = sum(len(rows) for rows in delta.values())
            if size <= max(DELTA_MIN_ROWS, loaded.rows // DELTA_FRACTION):
                self._write_delta(state, delta, loaded)
                return
        tables: dict[str, list[dict[str, Any]]] = {"meta": [meta_to_json(state.meta)]}
        for name, rows in state.snapshots.items():
            feed = feeds[name]
            tables[name] = [snapshot_to_json(feed, i, s) for i, s in sorted(rows.items())]
        _write_tables(AtomicJSONStorage(self.path), tables)
        # The state file now holds all: a delta left from before is stale (its base
        # generation is not this file's), and goes.
        with contextlib.suppress(FileNotFoundError):
            self.delta_path.unlink()
        self._loaded = None  # a later save without a load writes the whole file again
        log.debug("state written to %s", self.path)

    def _write_delta(
        self,
        state: State,
        delta: Mapping[str, Mapping[str, Snapshot[Any] | None]],
        loaded: _Loaded,
    ) -> None:
        meta = {**meta_to_json(state.meta), "base": loaded.base_generation}
        tables: dict[str, list[dict[str, Any]]] = {"meta": [meta]}
        gone: list[dict[str, Any]] = []
        for name, rows in delta.items():
            feed = FEEDS[name]
            tables[name] = [
                snapshot_to_json(feed, i, s) for i, s in sorted(rows.items()) if s is not None
            ]
            gone += [{"feed": name, "id": i} for i, s in sorted(rows.items()) if s is None]
        tables[DELTA_GONE] = gone
        _write_tables(AtomicJSONStorage(self.delta_path, label="state delta"), tables)
        self._loaded = None  # a later save without a load writes the whole file again
        log.debug("state delta written to %s", self.delta_path)

    def _read_delta(self, base_generation: int, schema: int) -> _Delta | None:
        """The delta written since the state file, or None (none, or already in the file)."""
        raw = AtomicJSONStorage(self.delta_path, label="state delta").read()
        if raw is None:
            return None
        tables = _tables(raw, self.delta_path)
        meta_docs = tables.get("meta", [])
        meta = dict(meta_docs[0][1]) if meta_docs else {}
        if meta.get("schema") != STATE_SCHEMA or not isinstance(meta.get("base"), int):
            raise StateError(_corrupt(self.delta_path, "it has no m365watch schema or base"))
        if schema != STATE_SCHEMA or meta["base"] != base_generation:
            return None  # written before the state file was: the file holds it all
        gone: dict[str, list[str]] = {}
        for _, row in tables.pop(DELTA_GONE, []):
            if isinstance(row.get("feed"), str) and isinstance(row.get("id"), str):
                gone.setdefault(row["feed"], []).append(row["id"])
        tables.pop("meta", None)
        return _Delta(meta=meta, tables=tables, gone=gone)

    def save_outbox(
        self, entries: Sequence[Entry[Any]], feeds: Mapping[str, Feed[Any, Any]] = FEEDS
    ) -> None:
        """Replace the outbox in one atomic write (entries in queue order)."""
        rows = [entry_to_json(feeds[e.feed], e) for e in entries]
        tables = {"meta": [{"schema": OUTBOX_SCHEMA}], "entries": rows}
        _write_tables(AtomicJSONStorage(self.outbox_path, label="outbox"), tables)
        log.debug("outbox written to %s (%d entries)", self.outbox_path, len(rows))

    def release(self) -> None:
        """Forget what the last load read (held only to tell what a save must write)."""
        self._loaded = None

    def load_quiet(self) -> dict[str, Any] | None:
        """The quiet mark, when it still describes the state file beside it; else None.

        The mark says which feed digests the state file was planned from (see
        :mod:`m365watch.poll`); it is dropped before the state file is replaced and
        names the file's inode and size, so a file written any other way is not
        mistaken for the one it described.
        """
        try:
            raw = files.read_bounded(self.quiet_path, MAX_HEALTH_BYTES)
            mark = json.loads(raw)
            stamp = self._stamp()
        except (OSError, ValueError, files.TooLargeError, files.NotAFileError):
            return None
        if not isinstance(mark, dict) or mark.get("file") != stamp:
            return None
        return mark

    def _stamp(self) -> list[int]:
        """The state file's and its delta's inode and size (OSError without a state file)."""
        info = self.path.stat()
        try:
            delta = self.delta_path.stat()
        except FileNotFoundError:
            return [info.st_ino, info.st_size]
        return [info.st_ino, info.st_size, delta.st_ino, delta.st_size]

    def save_quiet(self, mark: Mapping[str, Any]) -> None:
        """Write the quiet mark for the state file as it is now (a failure only logs)."""
        try:
            payload = json.dumps({**mark, "file": self._stamp()}, sort_keys=True)
            files.write_private_file(self.quiet_path, payload.encode("utf-8"))
        except OSError as exc:
            log.debug("quiet mark %s not written: %s", self.quiet_path, exc)

    def _drop_quiet(self) -> None:
        try:
            self.quiet_path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(f"cannot remove {self.quiet_path}: {exc.strerror}") from None

    def outbox_is_empty(self) -> bool:
        """True when no outbox file exists or it lists no entry (read without parsing them)."""
        raw = AtomicJSONStorage(self.outbox_path, label="outbox").read()
        return raw is None or not raw.get("entries")

    def touch(self) -> None:
        """Mark a successful poll that changed nothing (the file's time says when)."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def age_source(self) -> float | None:
        """When the state was last confirmed by a poll (a POSIX time), or None."""
        try:
            when = self.path.stat().st_mtime
        except OSError:
            return None
        with contextlib.suppress(OSError):
            when = max(when, self.delta_path.stat().st_mtime)
        return when


# The delta is folded into the state file once it holds more rows than this, or a
# tenth of the state file's rows, whichever is more.
DELTA_MIN_ROWS = 256
DELTA_FRACTION = 10
DELTA_GONE = "gone"  # the delta's table of items forgotten since the state file


@dataclass
class _Loaded:
    """What a store read last (see StateStore.save)."""

    snapshots: dict[str, dict[str, Snapshot[Any]]]
    base_ids: dict[str, set[str]]
    base_generation: int
    schema: int
    rows: int
    delta_ids: dict[str, set[str]] = field(default_factory=dict)
    delta_gone: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Delta:
    meta: dict[str, Any]
    tables: dict[str, list[tuple[int, dict[str, Any]]]]
    gone: dict[str, list[str]]


def _delta_of(
    loaded: _Loaded, state: State, feeds: Mapping[str, Feed[Any, Any]]
) -> dict[str, dict[str, Snapshot[Any] | None]]:
    """The rows that differ from the state file: changed or new (a snapshot), gone (None)."""
    delta: dict[str, dict[str, Snapshot[Any] | None]] = {}
    for name in set(state.snapshots) | set(loaded.base_ids):
        if name not in feeds:
            continue
        rows = state.snapshots.get(name, {})
        before = loaded.snapshots.get(name, {})
        base = loaded.base_ids.get(name, set())
        earlier = loaded.delta_ids.get(name, set()) | loaded.delta_gone.get(name, set())
        out: dict[str, Snapshot[Any] | None] = {}
        for item_id, snapshot in rows.items():
            if before.get(item_id) is not snapshot or item_id in earlier or item_id not in base:
                out[item_id] = snapshot
        for item_id in base - set(rows):
            out[item_id] = None
        if out:
            delta[name] = out
    return delta


def _parser(snapshot: Snapshot[Any], path: Path, where: str) -> Callable[[Any], Any]:
    """The snapshot's own parser, its RecordError told as the state file's StateError."""
    parse = snapshot.parse
    assert parse is not None

    def parsed(record: Any) -> Any:
        try:
            return parse(record)
        except RecordError as exc:
            raise StateError(_corrupt(path, f"{where} is malformed ({exc})")) from None

    return parsed


def _tables(raw: dict[str, Any], path: Path) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each TinyDB table's documents as (id, document), in insertion order."""
    from tinydb import TinyDB

    db = TinyDB(storage=lambda: _Preloaded(raw))
    try:
        return {
            name: [(int(doc.doc_id), dict(doc)) for doc in _in_id_order(db.table(name).all())]
            for name in db.tables()
        }
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise StateError(_corrupt(path, f"its tables are malformed ({exc})")) from None
    finally:
        db.close()


def _write_tables(storage: AtomicJSONStorage, tables: Mapping[str, list[dict[str, Any]]]) -> None:
    """Write every table through TinyDB in one atomic write."""
    from tinydb import TinyDB
    from tinydb.middlewares import CachingMiddleware

    db = TinyDB(storage=CachingMiddleware(lambda: storage))  # type: ignore[no-untyped-call]
    try:
        db.drop_tables()
        for name, docs in tables.items():
            if docs:
                db.table(name).insert_multiple(docs)
    finally:
        db.close()  # CachingMiddleware writes here, once.


def _in_id_order(docs: list[Any]) -> list[Any]:
    """TinyDB documents in insertion order (by numeric id), whatever order the file has."""
    return sorted(docs, key=lambda doc: int(doc.doc_id))


class _Preloaded:
    """Serves an already-read document to TinyDB, so the file is read only once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def read(self) -> dict[str, Any]:
        return self.data

    def write(self, data: dict[str, Any]) -> None:
        raise StateError("internal error: the loaded state is read-only")

    def close(self) -> None:
        """Nothing to close."""


def watcher_path_for(state_path: Path) -> Path:
    """Where the watcher's health file lives: beside the state (``state.health.json``)."""
    return state_path.with_name(state_path.stem + ".health.json")


class WatcherStore:
    """The watcher's own health (failed polls in a row, who was told): a small JSON file.

    It is kept out of the state file on purpose: a poll that fails at Graph
    must leave the state byte for byte as it was, yet the failure must be
    counted. Damage here costs at most one repeated or missed watcher message,
    so a damaged file is reported in the log and counting starts again.
    """

    def __init__(self, path: Path, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_wait = lock_wait

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the health file's lock (separate from the state lock, which a poll holds)."""
        return _held(
            self.lock_path,
            self.lock_wait,
            f"another m365watch process holds {self.lock_path} for more than "
            f"{self.lock_wait:g}s; the failed-poll count was not updated",
        )

    def load(self) -> dict[str, Any]:
        """The stored record; empty when there is none (or it is damaged: logged)."""
        try:
            raw = files.read_bounded(self.path, MAX_HEALTH_BYTES)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read health file %s (%s); counting from zero", self.path, exc)
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        if not isinstance(data, dict):
            log.warning("health file %s is damaged; counting failed polls from zero", self.path)
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the health file atomically (0600)."""
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
        try:
            files.write_private_file(self.path, payload.encode("utf-8"))
        except OSError as exc:
            raise StateError(f"cannot write health file {self.path}: {exc.strerror}") from None
