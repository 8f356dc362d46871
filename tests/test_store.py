"""The TinyDB state file and its outbox: atomic writes, lock, schema versions, typed records."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from m365watch.diff import ChangeKind, IssueChange
from m365watch.errors import EXIT_LOCKED, LockedError, StateError
from m365watch.feeds import FEEDS
from m365watch.models import Issue
from m365watch.records import STATE_SCHEMA, Entry, Meta, Owed, Snapshot, State, Unit
from m365watch.store import StateStore

T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)


def issue(issue_id: str, status: str = "investigating") -> Issue:
    return Issue.from_graph({"id": issue_id, "status": status, "title": "Mail"})


def entry(issue_id: str, *units: Unit, generation: int = 0) -> Entry[IssueChange]:
    change = IssueChange(issue(issue_id), frozenset({ChangeKind.NEW}))
    return Entry("issues", issue_id, change, tuple(Owed(u) for u in units), T0, generation)


def sample_state() -> State:
    return State(
        meta=Meta(generation=1, baselines={"issues": T0}),
        snapshots={
            "issues": {
                "EX1256020": Snapshot(issue("EX1256020")),
                "TM1": Snapshot(issue("TM1", "serviceRestored"), missing_since=T0),
            }
        },
        outbox=(entry("EX1256020", Unit("ops"), generation=1),),
    )


def save(store: StateStore, state: State) -> None:
    """Write both files, outbox first, as a poll does."""
    store.save_outbox(state.outbox)
    store.save(state)


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    state = sample_state()
    save(store, state)
    loaded = store.load()
    assert loaded.exists
    # Every feed this version knows has its table, empty when the state holds none.
    assert loaded.snapshots == {**{name: {} for name in FEEDS}, **state.snapshots}
    assert loaded.outbox == state.outbox
    assert loaded.meta == state.meta


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    loaded = StateStore(tmp_path / "nope" / "state.json").load()
    assert (loaded.exists, loaded.snapshots, loaded.outbox, loaded.meta) == (False, {}, (), Meta())


def test_files_are_tinydb_json_with_private_permissions(tmp_path: Path) -> None:
    path = tmp_path / "private" / "state.json"
    store = StateStore(path)
    save(store, sample_state())
    assert set(json.loads(path.read_text())) == {"meta", "issues"}
    assert set(json.loads(store.outbox_path.read_text())) == {"meta", "entries"}
    for written in (path, store.outbox_path):
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_target_names_may_hold_any_character(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    odd = (Unit("ops#2"), Unit("a b|c\n#", 2), Unit("ünï#cødé"))
    state = State(meta=Meta(generation=1), outbox=(entry("EX1", *odd, generation=1),))
    save(store, state)
    assert [o.unit for o in store.load().outbox[0].owed] == list(odd)


def test_outbox_entries_newer_than_the_state_are_an_unfinished_plan(tmp_path: Path) -> None:
    # Killed after the outbox was written and before the state file: its new entries were
    # never sent, and the next poll finds the same changes again.
    store = StateStore(tmp_path / "state.json")
    old = entry("EX1", Unit("ops"), generation=1)
    store.save(State(meta=Meta(generation=1, baselines={"issues": T0})))
    store.save_outbox([old, entry("EX2", Unit("ops"), generation=2)])
    assert store.load().outbox == (old,)


def test_failed_write_leaves_the_old_file_and_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save(sample_state())
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    changed = State(meta=Meta(generation=9), snapshots=sample_state().snapshots)
    with pytest.raises(StateError, match=r"cannot write state (file|delta)"):
        store.save(changed)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "it is empty"),
        (b'{"meta": {"1": {"schema": 1}}, "issues": {', "not valid JSON"),
        (b"[1, 2]", "does not hold a JSON object"),
        (b'{"issues": {}}', "no m365watch schema version"),
        (b"\xff\xfe garbage", "not valid JSON"),
    ],
    ids=["empty", "truncated", "array", "no-schema", "binary"],
)
def test_corrupt_file_is_an_error_and_left_untouched(
    tmp_path: Path, content: bytes, why: str
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as caught:
        StateStore(path).load()
    message = str(caught.value)
    assert str(path) in message
    assert why in message
    assert "\n" not in message
    assert path.read_bytes() == content


def test_newer_schema_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"meta": {"1": {"schema": STATE_SCHEMA + 1}}}))
    with pytest.raises(StateError, match="newer m365watch"):
        StateStore(path).load()


def test_lock_held_by_another_process_gives_exit_75(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from pathlib import Path
                from m365watch.store import StateStore
                with StateStore(Path({str(path)!r})).locked():
                    print("locked", flush=True)
                    sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError) as caught, StateStore(path, lock_wait=0.2).locked():
            pass
        assert caught.value.exit_code == EXIT_LOCKED == 75
        assert "another m365watch poll is running" in str(caught.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    # Released: now it can be taken.
    with StateStore(path, lock_wait=0.2).locked():
        pass


def test_touch_refreshes_the_time_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.save(sample_state())
    os.utime(path, (1_000_000, 1_000_000))
    content, inode = path.read_bytes(), path.stat().st_ino
    store.touch()
    assert (path.read_bytes(), path.stat().st_ino) == (content, inode)
    assert (store.age_source() or 0) > 1_000_000


def test_a_long_queue_keeps_its_order_across_saves(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save(State(meta=Meta(generation=1)))
    queue = [entry(f"EX{n}", Unit("ops")) for n in range(1, 13)]
    store.save_outbox(queue)
    store.save_outbox(store.load().outbox)  # twice: an order lost once would stay lost
    assert [e.item_id for e in store.load().outbox] == [f"EX{n}" for n in range(1, 13)]


def v1_pending(issue_id: str, targets: list[Any], **more: Any) -> dict[str, Any]:
    """A queued delivery as release 0.1 stored it in the state file."""
    change = IssueChange(issue(issue_id), frozenset({ChangeKind.NEW}))
    return {"key": f"{issue_id}|new", "change": change.to_dict(), "targets": targets, **more}


def test_a_queue_stored_out_of_order_loads_in_insertion_order(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pending = {str(n): v1_pending(f"EX{n}", ["ops"]) for n in (1, 10, 11, 2, 3)}
    path.write_text(json.dumps({"meta": {"1": {"schema": 1}}, "pending": pending}))
    keys = [e.item_id for e in StateStore(path).load().outbox]
    assert keys == ["EX1", "EX2", "EX3", "EX10", "EX11"]


def test_a_release_0_1_queue_loads_with_its_units_and_attempts(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    record = v1_pending(
        "EX1",
        ["ops#2", "mail"],
        attempts={"ops#2": 3},
        lastError={"ops#2": "2026-11-20T13:30:00Z slack: down"},
    )
    path.write_text(json.dumps({"meta": {"1": {"schema": 1}}, "pending": {"1": record}}))
    [loaded] = StateStore(path).load().outbox
    assert loaded.owed == (
        Owed(Unit("ops", 2), 3, "2026-11-20T13:30:00Z slack: down"),
        Owed(Unit("mail")),
    )


@pytest.mark.parametrize(
    ("schema", "record"),
    [
        (1, {"id": "EX1", "issue": None}),
        (1, {"issue": {"id": "EX1"}}),
        (1, {"id": 7, "issue": {}}),
        (STATE_SCHEMA, {"id": "EX1", "item": None}),
        (STATE_SCHEMA, {"id": "EX1", "item": {"id": "EX1"}, "missingSince": 5}),
    ],
    ids=["issue-null", "no-id", "id-not-text", "item-null", "missing-since-not-a-time"],
)
def test_a_malformed_issue_record_is_an_error_not_a_new_issue(
    tmp_path: Path, schema: int, record: dict[str, object]
) -> None:
    path = tmp_path / "state.json"
    content = json.dumps({"meta": {"1": {"schema": schema}}, "issues": {"1": record}})
    path.write_text(content)
    with pytest.raises(StateError, match="issue record 1 is malformed"):
        StateStore(path).load()
    assert path.read_text() == content


@pytest.mark.parametrize(
    "record",
    [
        {"change": {}, "targets": 5},
        {"targets": ["ops"]},
        {"change": {}, "targets": [1]},
        v1_pending("EX1", ["ops"], attempts={"ops": "2"}),
        v1_pending("EX1", ["ops"], lastError={"ops": 5}),
        {**v1_pending("EX1", ["ops"]), "attempts": []},
    ],
    ids=[
        "targets-not-a-list",
        "no-change",
        "target-not-text",
        "attempts-not-a-number",
        "last-error-not-text",
        "attempts-not-an-object",
    ],
)
def test_a_malformed_pending_delivery_is_an_error(
    tmp_path: Path, record: dict[str, object]
) -> None:
    path = tmp_path / "state.json"
    content = json.dumps({"meta": {"1": {"schema": 1}}, "pending": {"1": record}})
    path.write_text(content)
    with pytest.raises(StateError, match="pending delivery 1 is malformed"):
        StateStore(path).load()
    assert path.read_text() == content


@pytest.mark.parametrize(
    "mangle",
    [
        lambda row: row.update(owed=5),
        lambda row: row.update(feed="nosuchfeed"),
        lambda row: row["owed"][0].update(attempts="2"),
        lambda row: row["owed"][0].update(target=None),
        lambda row: row.update(change=[]),
        lambda row: row["change"].update(previousStatus=7),
        lambda row: row["change"].update(previousClassification=["incident"]),
        lambda row: row["change"].update(kinds=["bogus"]),
        lambda row: row["change"].update(kinds="new"),
        lambda row: row["change"].update(newPosts="text"),
        lambda row: row["change"].update(issue=None),
        lambda row: row.update(generation=-1),
        lambda row: row["owed"][0].update(url=0),
    ],
    ids=[
        "owed-not-a-list",
        "unknown-feed",
        "attempts-not-a-number",
        "no-target",
        "no-change",
        "previous-status-a-number",
        "previous-classification-a-list",
        "kinds-unknown",
        "kinds-not-a-list",
        "new-posts-not-a-list",
        "issue-null",
        "generation-negative",
        "url-zero",
    ],
)
def test_a_malformed_outbox_entry_is_an_error(tmp_path: Path, mangle: Any) -> None:
    store = StateStore(tmp_path / "state.json")
    save(store, sample_state())
    document = json.loads(store.outbox_path.read_text())
    mangle(document["entries"]["1"])
    store.outbox_path.write_text(json.dumps(document))
    content = store.outbox_path.read_bytes()
    with pytest.raises(StateError, match="delivery 1 is malformed") as caught:
        store.load()
    assert store.outbox_path.read_bytes() == content
    # One line naming the file and what to do.
    message = str(caught.value)
    assert str(store.outbox_path) in message and "move it aside" in message
    assert "\n" not in message


def test_an_endless_state_file_is_refused_not_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import m365watch.store

    monkeypatch.setattr(m365watch.store, "MAX_STATE_BYTES", 1024)
    with pytest.raises(
        StateError, match="cannot read state file /dev/zero: it is larger than 1 KiB"
    ):
        StateStore(Path("/dev/zero")).load()
