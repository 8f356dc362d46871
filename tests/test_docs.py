"""The README's channel examples are what the code renders today."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from m365watch import budget
from m365watch.deadline import format_size

ROOT = Path(__file__).resolve().parents[1]


def test_readme_channel_examples_are_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "channel_examples", ROOT / "bench" / "channel_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert module.examples() in readme, "run: python bench/channel_examples.py --write"


def test_readme_states_the_time_limits_of_m365watch_budget() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = [
        f"| sign-in and every Graph page of one poll, retries and their waits included "
        f"| {budget.FETCH_SECONDS:g} s |",
        f"| one exchange with Entra ID or Graph, from connecting to the last byte "
        f"| {budget.EXCHANGE_SECONDS:g} s |",
        f"| one message to one notification URL | {budget.SEND_SECONDS:g} s |",
        f"| one answer from Graph (from the sign-in: {format_size(budget.SIGN_IN_MAX_BYTES)}) "
        f"| {format_size(budget.GRAPH_MAX_BYTES)} |",
    ]
    for row in rows:
        assert row in readme
    # Every --lock-wait the README suggests is the one that fits those limits.
    suggested = set(re.findall(r"--lock-wait (\d+)", readme))
    assert suggested == {f"{budget.SUGGESTED_LOCK_WAIT:g}"}
