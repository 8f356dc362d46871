"""The state file's issues read with json alone (m365watch.state_reader), as the store reads them.

Every state the store writes is read the same; anything the reader does not fully
understand goes to the store (wiring.CachedIssues), whose answer or error is given.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import m365watch.store
from m365watch import query, state_reader, wiring
from m365watch.errors import StateError
from m365watch.feeds.issues import ISSUES
from m365watch.models import Issue
from m365watch.records import STATE_SCHEMA, Meta, Snapshot, State
from m365watch.settings import Settings
from m365watch.state_reader import NotPlain, read_issues
from m365watch.store import StateStore

DATA = Path(__file__).parent / "data"
RELEASE_0_1 = DATA / "release-0.1-state"
GONE = datetime(2026, 11, 21, 8, 30, tzinfo=timezone.utc)


def sample_issues() -> list[dict[str, Any]]:
    one = json.loads((DATA / "cli-microsoft365-healthissue-get-CR275975.json").read_text())
    listed = json.loads((DATA / "cli-microsoft365-healthissue-list.json").read_text())["value"]
    return [{**issue, "id": f"{issue['id']}{n}"} for n, issue in enumerate([one, *listed])]


def written_state(path: Path) -> Path:
    """A state as a poll writes it: issues (one gone from the feed), a baseline, a generation."""
    issues = [Issue.from_graph(i) for i in sample_issues()]
    snapshots = {
        issue.id: Snapshot(issue, GONE if n == 1 else None) for n, issue in enumerate(issues)
    }
    meta = Meta(generation=3, baselines={"issues": datetime(2026, 11, 20, tzinfo=timezone.utc)})
    StateStore(path).save(State(meta=meta, snapshots={"issues": snapshots}))
    return path


def as_read(state: Any) -> list[tuple[str, Issue, datetime | None]]:
    return [(k, s.item, s.missing_since) for k, s in state.items("issues").items()]


def test_the_names_and_schemas_are_the_stores() -> None:
    assert state_reader.ISSUES_TABLE == query.ISSUES_FEED == ISSUES.name
    # The newest schema the store writes is one this reader knows (else every cached
    # query quietly takes the slow way through the store).
    assert state_reader.SCHEMAS[-1] == STATE_SCHEMA
    store = StateStore(Path("/x/state.json"))
    assert state_reader.delta_path(store.path) == store.delta_path
    assert state_reader.DELTA_GONE == m365watch.store.DELTA_GONE


def test_a_state_with_a_delta_reads_as_the_store_loads_it(tmp_path: Path) -> None:
    path = written_state(tmp_path / "state.json")
    store = StateStore(path)
    state = store.load()
    rows = dict(state.items("issues"))
    first, second = list(rows)[:2]
    restored = replace(rows[first].item, status="serviceRestored", status_raw="serviceRestored")
    rows[first] = Snapshot(restored)
    del rows[second]
    store.save(replace(state, snapshots={"issues": rows}))
    assert store.delta_path.exists()

    read, loaded = read_issues(path), StateStore(path).load()

    assert as_read(read) == as_read(loaded)
    assert second not in read.items("issues")
    assert read.items("issues")[first].item.status == "serviceRestored"


def test_a_state_the_store_wrote_reads_the_same(tmp_path: Path) -> None:
    path = written_state(tmp_path / "state.json")
    read, loaded = read_issues(path), StateStore(path).load()
    assert read.exists and len(as_read(read)) == len(sample_issues()) > 2
    assert as_read(read) == as_read(loaded)
    assert [s.item.posts for s in read.items("issues").values()] == [
        s.item.posts for s in loaded.items("issues").values()
    ]
    with pytest.raises(ValueError, match="only the issues table"):
        read.items("messages")


def test_a_release_0_1_state_reads_the_same(tmp_path: Path) -> None:
    shutil.copytree(RELEASE_0_1, tmp_path / "state")
    path = tmp_path / "state" / "state.json"
    assert as_read(read_issues(path)) == as_read(StateStore(path).load())
    assert as_read(read_issues(path))


def damage(path: Path, how: str) -> None:
    data = json.loads(path.read_text())
    first = next(iter(data["issues"]))
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_text(" \n")
    elif how == "not-json":
        path.write_text('{"meta": ')
    elif how == "a-list":
        path.write_text("[]")
    elif how == "newer-schema":
        data["meta"]["1"]["schema"] = STATE_SCHEMA + 1
    elif how == "no-schema":
        del data["meta"]["1"]["schema"]
    elif how == "bad-baseline":
        data["meta"]["1"]["baselines"] = {"issues": "yesterday"}
    elif how == "bad-generation":
        data["meta"]["1"]["generation"] = -1
    elif how == "bad-doc-id":
        data["issues"]["x"] = data["issues"].pop(first)
    elif how == "record-not-object":
        data["issues"][first]["item"] = ["EX1"]
    elif how == "no-id":
        del data["issues"][first]["id"]
    elif how == "bad-missing-since":
        data["issues"][first]["missingSince"] = "later"
    elif how == "table-not-object":
        data["issues"] = []
    if how not in ("missing", "empty", "not-json", "a-list"):
        path.write_text(json.dumps(data))


DAMAGE = [
    "missing",
    "empty",
    "not-json",
    "a-list",
    "newer-schema",
    "no-schema",
    "bad-baseline",
    "bad-generation",
    "bad-doc-id",
    "record-not-object",
    "no-id",
    "bad-missing-since",
    "table-not-object",
]


@pytest.mark.parametrize("how", DAMAGE)
def test_anything_unusual_is_left_to_the_store(tmp_path: Path, how: str) -> None:
    path = written_state(tmp_path / "state.json")
    damage(path, how)
    with pytest.raises(NotPlain):
        read_issues(path)

    # Through the wiring: the store's answer, or its error word for word.
    cached = wiring.build_cached_issues(Settings(tenant=None, state_path=path))
    try:
        expected: object = as_read(StateStore(path).load())
    except StateError as error:
        with pytest.raises(StateError) as raised:
            cached.load()
        assert str(raised.value) == str(error)
    else:
        assert as_read(cached.load()) == expected


def test_the_cached_source_says_when_the_state_was_written(tmp_path: Path) -> None:
    path = written_state(tmp_path / "state.json")
    cached = wiring.build_cached_issues(Settings(tenant=None, state_path=path))
    assert cached.path == path
    assert cached.age_source() == StateStore(path).age_source() == path.stat().st_mtime
    path.unlink()
    assert cached.age_source() is None
