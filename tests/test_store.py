"""The TinyDB state file: atomic writes, one write per save, lock, schema version."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from m365watch.errors import EXIT_LOCKED, LockedError, StateError
from m365watch.store import SCHEMA_VERSION, StateData, StateStore


def sample_state() -> StateData:
    return StateData(
        issues={
            "EX1256020": {
                "issue": {"id": "EX1256020", "status": "investigating", "title": "Mail"},
                "missingSince": None,
            },
            "TM1": {"issue": {"id": "TM1", "status": "serviceRestored"}, "missingSince": None},
        },
        pending=[{"key": "EX1256020|new", "change": {}, "targets": ["ops"], "attempts": {}}],
        meta={"baselineAt": "2026-11-20T13:30:00Z"},
    )


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    state = sample_state()
    store.save(state)
    loaded = store.load()
    assert loaded.exists
    assert loaded.issues == state.issues
    assert loaded.pending == state.pending
    assert loaded.meta == {**state.meta, "schema": SCHEMA_VERSION}


def test_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    loaded = StateStore(tmp_path / "nope" / "state.json").load()
    assert (loaded.exists, loaded.issues, loaded.pending, loaded.meta) == (False, {}, [], {})


def test_file_is_tinydb_json_with_private_permissions(tmp_path: Path) -> None:
    path = tmp_path / "private" / "state.json"
    StateStore(path).save(sample_state())
    document = json.loads(path.read_text())
    assert set(document) == {"meta", "issues", "pending"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_one_save_is_one_write(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.save(sample_state())
    assert store.writes == 1
    store.save(sample_state())
    assert store.writes == 2


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
    changed = sample_state()
    changed.meta["baselineAt"] = "2030-01-01T00:00:00Z"
    with pytest.raises(StateError, match="cannot write state file"):
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
    path.write_text(json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION + 1}}}))
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
    content = path.read_bytes()
    store.touch()
    assert path.read_bytes() == content
    assert (store.age_source() or 0) > 1_000_000
    assert store.writes == 1


def test_a_long_queue_keeps_its_order_across_saves(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    state = sample_state()
    state.pending = [{"key": f"change-{n}", "change": {}, "targets": ["ops"]} for n in range(1, 13)]
    store.save(state)
    store.save(store.load())  # twice: an order lost once would stay lost
    assert [r["key"] for r in store.load().pending] == [f"change-{n}" for n in range(1, 13)]


def test_a_queue_stored_out_of_order_loads_in_insertion_order(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    pending = {
        str(n): {"key": f"change-{n}", "change": {}, "targets": ["ops"]} for n in (1, 10, 11, 2, 3)
    }
    path.write_text(json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION}}, "pending": pending}))
    keys = [r["key"] for r in StateStore(path).load().pending]
    assert keys == ["change-1", "change-2", "change-3", "change-10", "change-11"]


@pytest.mark.parametrize(
    "record",
    [{"id": "EX1", "issue": None}, {"issue": {"id": "EX1"}}, {"id": 7, "issue": {}}],
    ids=["issue-null", "no-id", "id-not-text"],
)
def test_a_malformed_issue_record_is_an_error_not_a_new_issue(
    tmp_path: Path, record: dict[str, object]
) -> None:
    path = tmp_path / "state.json"
    content = json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION}}, "issues": {"1": record}})
    path.write_text(content)
    with pytest.raises(StateError, match="issue record 1 is malformed"):
        StateStore(path).load()
    assert path.read_text() == content


@pytest.mark.parametrize(
    "record",
    [{"change": {}, "targets": 5}, {"targets": ["ops"]}, {"change": {}, "targets": [1]}],
    ids=["targets-not-a-list", "no-change", "target-not-text"],
)
def test_a_malformed_pending_delivery_is_an_error(
    tmp_path: Path, record: dict[str, object]
) -> None:
    path = tmp_path / "state.json"
    content = json.dumps({"meta": {"1": {"schema": SCHEMA_VERSION}}, "pending": {"1": record}})
    path.write_text(content)
    with pytest.raises(StateError, match="pending delivery 1 is malformed"):
        StateStore(path).load()
    assert path.read_text() == content


def test_an_endless_state_file_is_refused_not_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import m365watch.store

    monkeypatch.setattr(m365watch.store, "MAX_STATE_BYTES", 1024)
    with pytest.raises(
        StateError, match="cannot read state file /dev/zero: it is larger than 1 KiB"
    ):
        StateStore(Path("/dev/zero")).load()
