"""The issues of the state file, read with json alone: what ``status --cached`` and
``show ID --cached`` answer from.

:mod:`m365watch.store` reads the whole state (every feed, the outbox) through TinyDB
under filelock; importing those two costs more than the answer. A cached query needs
only the issues' snapshots, so this reader takes them from the file as
:mod:`m365watch.store` writes it (TinyDB's layout: ``{table: {document id: document}}``,
the meta document saying the schema) and decodes them as :mod:`m365watch.records` does.

It reads only a state it fully understands. Anything else (no file, a damaged or
newer one, a record that does not decode) raises :class:`NotPlain`, and the caller
asks the store, whose answer or error is the last word. It never writes, locks or
reads the outbox, and it does not look at other feeds' tables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from m365watch import files
from m365watch.models import Issue, parse_timestamp

# The schemas of the state file this reader knows (records.STATE_SCHEMA is the newest);
# a newer one goes to the store, which says to upgrade.
SCHEMAS = (1, 2)
LATEST_SCHEMA = SCHEMAS[-1]
DELTA_GONE = "gone"  # the delta's table of items forgotten since the state file
ISSUES_TABLE = "issues"  # feeds.issues.ISSUES.name: the issues' table in the state file
MAX_STATE_BYTES = 256 * 1024 * 1024  # as the store reads it


class NotPlain(Exception):
    """The state file is not one this reader fully understands: ask the store."""


@dataclass(frozen=True)
class IssueSnapshot:
    """An issue as last seen; ``missing_since`` once it left Graph's feed."""

    item: Issue
    missing_since: datetime | None = None


@dataclass(frozen=True)
class Issues:
    """The issues of an existing state file, by id (as the store would load them)."""

    snapshots: Mapping[str, IssueSnapshot]
    exists: bool = True

    def items(self, feed: str) -> Mapping[str, IssueSnapshot]:
        """The snapshots of the issues feed (the only one read)."""
        if feed != ISSUES_TABLE:
            raise ValueError(f"only the {ISSUES_TABLE} table was read, not {feed!r}")
        return self.snapshots


def read_issues(path: Path) -> Issues:
    """The issues of the state file at ``path``; NotPlain for anything unusual."""
    try:
        data, meta = _read(path, path)
    except FileNotFoundError:
        raise NotPlain(path) from None
    schema = meta.get("schema")
    if not (isinstance(schema, int) and not isinstance(schema, bool) and schema in SCHEMAS):
        raise NotPlain(path)
    _check_meta(meta, schema)
    rows = _documents(data.get(ISSUES_TABLE, {}))
    delta = _delta(path, schema, meta.get("generation", 0))
    if delta is not None:
        rows += _documents(delta.get(ISSUES_TABLE, {}))  # later rows win
    snapshots: dict[str, IssueSnapshot] = {}
    for row in rows:
        item_id = row.get("id")
        record = row.get("issue" if schema == 1 else "item")
        missing = row.get("missingSince")
        missing_since = parse_timestamp(missing)
        if not (isinstance(item_id, str) and isinstance(record, Mapping)) or (
            missing is not None and missing_since is None
        ):
            raise NotPlain(path)
        try:
            issue = Issue.from_graph(record)
        except (KeyError, TypeError, ValueError):
            raise NotPlain(path) from None
        snapshots[item_id] = IssueSnapshot(issue, missing_since)
    for gone in _documents(delta.get(DELTA_GONE, {})) if delta is not None else []:
        if gone.get("feed") == ISSUES_TABLE:
            snapshots.pop(str(gone.get("id")), None)
    return Issues(snapshots)


def delta_path(path: Path) -> Path:
    """Where the store writes what changed since the state file (store.StateStore)."""
    return path.with_name(path.stem + ".delta.json")


def _delta(path: Path, schema: int, generation: object) -> dict[str, Any] | None:
    """The store's delta when it applies to this state file; None when there is none."""
    try:
        data, meta = _read(delta_path(path), path)
    except FileNotFoundError:
        return None
    if meta.get("schema") != LATEST_SCHEMA or not isinstance(meta.get("base"), int):
        raise NotPlain(path)  # the store says what is wrong with it
    if schema != LATEST_SCHEMA or meta["base"] != generation:
        return None  # older than the state file, which holds it all
    _check_meta(meta, LATEST_SCHEMA)
    return data


def _read(file: Path, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A TinyDB file of the state (``path``'s own, or its delta) and its meta document.

    NotPlain naming ``path`` for anything but a readable JSON object; a missing file
    stays FileNotFoundError.
    """
    try:
        data = json.loads(files.read_bounded(file, MAX_STATE_BYTES))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        raise NotPlain(path) from None
    if not isinstance(data, dict):
        raise NotPlain(path)
    meta_docs = _documents(data.get("meta", {}))
    return data, (meta_docs[0] if meta_docs else {})


def modified(path: Path) -> float | None:
    """When the state was last confirmed by a poll (its file's or its delta's time), or None."""
    try:
        when = os.stat(path).st_mtime
    except OSError:
        return None
    try:
        return max(when, os.stat(delta_path(path)).st_mtime)
    except OSError:
        return when


def _documents(table: object) -> list[dict[str, Any]]:
    """A TinyDB table's documents in insertion order (by numeric id)."""
    if not isinstance(table, dict):
        raise NotPlain("a table is not an object")
    try:
        ordered = sorted((int(doc_id), doc) for doc_id, doc in table.items())
    except (TypeError, ValueError):
        raise NotPlain("a document id is not a number") from None
    if not all(isinstance(doc, dict) for _, doc in ordered):
        raise NotPlain("a document is not an object")
    return [doc for _, doc in ordered]


def _check_meta(meta: Mapping[str, Any], schema: int) -> None:
    """What records.meta_from_json refuses, refused (the store then says what is wrong)."""
    if schema == 1:
        baselines: object = {"issues": meta.get("baselineAt")} if meta.get("baselineAt") else {}
    else:
        baselines = meta.get("baselines") or {}
    if not isinstance(baselines, Mapping) or any(
        parse_timestamp(stamp) is None for stamp in baselines.values()
    ):
        raise NotPlain("meta baselines")
    generation = meta.get("generation", 0)
    if not (isinstance(generation, int) and not isinstance(generation, bool) and generation >= 0):
        raise NotPlain("meta generation")
