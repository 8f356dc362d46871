"""The local state: a TinyDB file written atomically, once per poll, under a file lock.

TinyDB's own JSONStorage rewrites the file in place, so a process killed
mid-write can leave it unreadable; :class:`AtomicJSONStorage` writes a temp
file beside it and renames it over. TinyDB has no locking, so every poll holds
a ``filelock`` around its read-modify-write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock
from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from m365watch import files
from m365watch.errors import LockedError, StateError
from m365watch.settings import DEFAULT_LOCK_WAIT

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A state of a few thousand issues is a few MB; far more is not a state file.
MAX_STATE_BYTES = 256 * 1024 * 1024
MAX_HEALTH_BYTES = 1024 * 1024


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing; state, caches and locks live there."""
    try:
        files.make_private_dir(path)
    except OSError as exc:
        raise StateError(f"cannot create state folder {path}: {exc.strerror}") from None


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600, in a 0700 folder."""
    ensure_private_dir(path.parent)
    files.write_private_file(path, data)


class AtomicJSONStorage(Storage):
    """A TinyDB storage that never leaves a half-written file behind."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.writes = 0

    def read(self) -> dict[str, Any] | None:
        try:
            raw = files.read_bounded(self.path, MAX_STATE_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from None
        if not raw.strip():
            raise StateError(_corrupt(self.path, "it is empty"))
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(_corrupt(self.path, f"it is not valid JSON ({exc})")) from None
        if not isinstance(data, dict):
            raise StateError(_corrupt(self.path, "it does not hold a JSON object"))
        return data

    def write(self, data: dict[str, Any]) -> None:
        # No sort_keys: TinyDB's document ids are strings, and "10" sorts before "2";
        # the pending queue's order is what decides which change is the later one.
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        try:
            write_private_file(self.path, payload.encode("utf-8"))
        except OSError as exc:
            raise StateError(f"cannot write state file {self.path}: {exc.strerror}") from None
        self.writes += 1

    def close(self) -> None:
        pass


def _corrupt(path: Path, why: str) -> str:
    return (
        f"state file {path} cannot be used: {why}; it was left untouched: restore it from a "
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


@dataclass
class StateData:
    """Everything in the state file, as plain JSON-safe values.

    ``issues`` maps an issue id to ``{"issue": <Graph dict>, "missingSince": iso|None}``;
    ``pending`` holds deliveries not yet accepted by every target; ``meta`` holds
    the schema version and the baseline time. (The watcher's failed-poll count
    lives in a separate file: see :class:`WatcherStore`.)
    """

    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    exists: bool = False

    def as_tables(self) -> dict[str, list[dict[str, Any]]]:
        """The TinyDB tables this state is stored as."""
        return {
            "meta": [{**self.meta, "schema": SCHEMA_VERSION}],
            "issues": [{"id": k, **v} for k, v in sorted(self.issues.items())],
            "pending": list(self.pending),
        }


class StateStore:
    """The TinyDB state file of one m365watch installation."""

    def __init__(self, path: Path, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_wait = lock_wait
        self.writes = 0

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """Hold the state lock; another holder for longer than ``lock_wait`` -> LockedError."""
        return _held(
            self.lock_path,
            self.lock_wait,
            f"another m365watch poll is running (lock {self.lock_path} held for more than "
            f"{self.lock_wait:g}s); this run did nothing: try again later",
        )

    def load(self) -> StateData:
        """Read the whole state once; a missing file is an empty, not-yet-existing state."""
        storage = AtomicJSONStorage(self.path)
        raw = storage.read()
        if raw is None:
            return StateData()
        db = TinyDB(storage=lambda: _Preloaded(raw))
        try:
            meta_docs = db.table("meta").all()
            meta = dict(meta_docs[0]) if meta_docs else {}
            schema = meta.get("schema")
            if not isinstance(schema, int) or schema < 1:
                raise StateError(_corrupt(self.path, "it has no m365watch schema version"))
            if schema > SCHEMA_VERSION:
                raise StateError(
                    f"state file {self.path} was written by a newer m365watch (schema {schema}, "
                    f"this one knows {SCHEMA_VERSION}): upgrade m365watch"
                )
            issues: dict[str, dict[str, Any]] = {}
            for doc in _in_id_order(db.table("issues").all()):
                record = dict(doc)
                issue_id = record.pop("id", None)
                if not (isinstance(issue_id, str) and isinstance(record.get("issue"), dict)):
                    # Skipping it would announce the issue again as new: a person decides.
                    raise StateError(_corrupt(self.path, f"issue record {doc.doc_id} is malformed"))
                issues[issue_id] = record
            # Queue order decides which of two changes to one issue is the later one.
            pending = []
            for doc in _in_id_order(db.table("pending").all()):
                record = dict(doc)
                targets = record.get("targets")
                if not (
                    isinstance(record.get("change"), dict)
                    and isinstance(targets, list)
                    and all(isinstance(t, str) for t in targets)
                ):
                    raise StateError(
                        _corrupt(self.path, f"pending delivery {doc.doc_id} is malformed")
                    )
                pending.append(record)
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise StateError(_corrupt(self.path, f"its tables are malformed ({exc})")) from None
        finally:
            db.close()
        return StateData(issues=issues, pending=pending, meta=meta, exists=True)

    def save(self, state: StateData) -> None:
        """Replace the state file with ``state`` in one atomic write."""
        storage = AtomicJSONStorage(self.path)
        db = TinyDB(storage=CachingMiddleware(lambda: storage))  # type: ignore[no-untyped-call]
        try:
            db.drop_tables()
            for name, docs in state.as_tables().items():
                if docs:
                    db.table(name).insert_multiple(docs)
        finally:
            db.close()  # CachingMiddleware writes here, once.
        self.writes += storage.writes
        log.debug("state written to %s", self.path)

    def touch(self) -> None:
        """Mark a successful poll that changed nothing (the file's time says when)."""
        with contextlib.suppress(OSError):
            os.utime(self.path)

    def age_source(self) -> float | None:
        """When the state was last confirmed by a poll (a POSIX time), or None."""
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None


def _in_id_order(docs: list[Any]) -> list[Any]:
    """TinyDB documents in insertion order (by numeric id), whatever order the file has."""
    return sorted(docs, key=lambda doc: int(doc.doc_id))


class _Preloaded(Storage):
    """Serves an already-read document to TinyDB, so the file is read only once."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def read(self) -> dict[str, Any]:
        return self.data

    def write(self, data: dict[str, Any]) -> None:
        raise StateError("internal error: the loaded state is read-only")


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
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            log.warning("health file %s is damaged; counting failed polls from zero", self.path)
            return {}
        return data

    def save(self, data: dict[str, Any]) -> None:
        """Replace the health file atomically (0600)."""
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1)
        try:
            write_private_file(self.path, payload.encode("utf-8"))
        except OSError as exc:
            raise StateError(f"cannot write health file {self.path}: {exc.strerror}") from None
