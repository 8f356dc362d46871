"""Damaged state folders, generated: every one loads, or is one clear StateError; never a crash.

Each case starts from a real state folder (release 0.1's, and one written by this
release with an outbox) and damages it at random: a value of another type, deep
nesting, a cut, bytes of another encoding. Seeded, so a failure names its case.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from m365watch.cli import main
from m365watch.deliver import SendResult
from m365watch.errors import M365WatchError, StateError
from m365watch.messages import Message
from m365watch.poll import issues_from, run_poll
from m365watch.settings import PollSettings, TargetSettings
from m365watch.store import StateStore
from tests.helpers import DATA, timeline_steps

SEED = 20261203
CASES = 300
CLI_CASES = 40
T0 = datetime(2026, 11, 20, 13, 30, tzinfo=timezone.utc)
TARGETS = [
    TargetSettings(name="slack", urls=("json://h/a",)),
    TargetSettings("ops", ("json://h/b", "json://h/c")),
]

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**70,
    1.5,
    float("nan"),
    "",
    "x" * 5000,
    "2026-13-45T99:99:99Z",
    "ops#0",
    [],
    [None],
    {},
    {"target": None},
    {"": {"": []}},
]


class Feed:
    def __init__(self, issues: list[dict[str, Any]]) -> None:
        self.issues = issues

    def list_issues(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.issues)


class Sender:
    def check(self) -> None:
        pass

    def send(self, target: str, message: Message, *, url: int | None = None) -> SendResult:
        return SendResult(target != "ops")


def seed_folders(root: Path) -> list[Path]:
    """Two real state folders: release 0.1's, and one of this release with an owed delivery."""
    old = root / "release-0.1"
    shutil.copytree(DATA / "release-0.1-state", old)
    new = root / "current"
    store = StateStore(new / "state.json")
    steps = timeline_steps()
    for hour, number in enumerate((0, 1, 2)):
        poll(store, steps[number]["issues"], hour)
    assert store.outbox_path.exists() and store.load().outbox
    return [old, new]


def poll(store: StateStore, issues: list[dict[str, Any]], hour: int) -> None:
    run_poll(
        sources=[issues_from(Feed(issues))],
        store=store,
        make_sender=Sender,
        poll=PollSettings(),
        targets=TARGETS,
        targets_fingerprint="fuzz",
        now=T0 + timedelta(hours=hour),
    )


def paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, as a path of keys and indexes."""
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*here, index))
    return found


def replace_at(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


def damage(rng: random.Random, raw: bytes) -> bytes:
    """One random kind of damage to a JSON file."""
    kind = rng.randrange(6)
    if kind == 0:  # a cut
        return raw[: rng.randrange(len(raw) + 1)]
    if kind == 1:  # another encoding, a BOM, a NUL
        return rng.choice(
            [
                raw.decode().encode("utf-16"),
                b"\xef\xbb\xbf" + raw,
                raw.replace(b'"', b'\x00"', 1),
            ]
        )
    document = json.loads(raw)
    path = rng.choice(paths(document))
    if kind == 2:  # deep nesting in place of a value
        deep: Any = "x"
        for _ in range(rng.choice([50, 500, 5000])):
            deep = [deep] if rng.random() < 0.5 else {"k": deep}
        document = replace_at(document, path, deep)
    elif kind == 3 and path:  # a key removed
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:  # a value of another type
        document = replace_at(document, path, copy.deepcopy(rng.choice(ODD_VALUES)))
    try:
        return json.dumps(document).encode()
    except (RecursionError, ValueError):
        return raw[:-1]


def damaged_folder(rng: random.Random, seeds: list[Path], where: Path) -> Path:
    folder = rng.choice(seeds)
    shutil.copytree(folder, where)
    victims = sorted(p for p in where.iterdir() if p.suffix == ".json")
    victim = rng.choice(victims)
    victim.write_bytes(damage(rng, victim.read_bytes()))
    return where


def loads_or_refuses(action: Callable[[], object]) -> str:
    try:
        action()
    except StateError as error:
        message = str(error)
        assert "\n" not in message and message, message
        return "refused"
    except M365WatchError:
        return "other error"
    return "loaded"


def test_damaged_state_folders_load_or_are_refused_in_one_line(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    seeds = seed_folders(tmp_path / "seeds")
    steps = timeline_steps()
    outcomes: dict[str, int] = {}
    for number in range(CASES):
        folder = damaged_folder(rng, seeds, tmp_path / f"case-{number}")
        store = StateStore(folder / "state.json")
        try:
            loaded = loads_or_refuses(store.load)
            polled = loads_or_refuses(
                lambda store=store, hour=5 + number: poll(store, steps[3]["issues"], hour)  # type: ignore[misc]
            )
        except Exception as error:  # what this test is for: name the case
            raise AssertionError(f"case {number} ({folder}): {error!r}") from error
        outcomes[f"{loaded}/{polled}"] = outcomes.get(f"{loaded}/{polled}", 0) + 1
    # Both kinds happened: the damage was not all harmless, nor all fatal.
    assert outcomes.get("loaded/loaded", 0) > 10 and outcomes.get("refused/refused", 0) > 10, (
        outcomes
    )


def test_damaged_state_folders_through_the_cli_exit_1_without_a_traceback(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    seeds = seed_folders(tmp_path / "seeds")
    codes: dict[int, int] = {}
    for number in range(CLI_CASES):
        folder = damaged_folder(rng, seeds, tmp_path / f"case-{number}")
        config = folder / "config.toml"
        config.write_text(f'[state]\npath = "{folder / "state.json"}"\n')
        for args in (["status", "--cached"], ["show", "--cached", "EX1256020"]):
            result = CliRunner().invoke(main, ["-c", str(config), *args])
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                number,
                args,
                result.exception,
            )
            assert "Traceback" not in result.output
            assert result.exit_code in (0, 1, 4), (number, args, result.output)
            if result.exit_code == 1:
                assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
            codes[result.exit_code] = codes.get(result.exit_code, 0) + 1
    assert codes.get(1, 0) > 5 and codes.get(0, 0) > 5, codes


@pytest.mark.parametrize("name", ["state.json", "state.outbox.json"])
def test_a_state_file_nested_too_deep_is_refused(tmp_path: Path, name: str) -> None:
    store = StateStore(tmp_path / "state.json")
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / name).write_text(deep)
    if name == "state.outbox.json":
        (tmp_path / "state.json").write_text('{"meta": {"1": {"schema": 2}}}')
    with pytest.raises(StateError, match="cannot be used"):
        store.load()
