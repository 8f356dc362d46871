"""The README says what the code does: its channel examples, its systemd first-run steps."""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import responses

from m365watch import budget
from m365watch.deadline import format_size
from tests.command_line import invoke, write_config
from tests.identity import mock_identity

ROOT = Path(__file__).resolve().parents[1]
GRAPH_ISSUES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/issues"
OPEN_ISSUE = {
    "id": "EX1256020",
    "title": "Users can't reach their mailboxes",
    "classification": "incident",
    "status": "investigating",
    "service": "Exchange Online",
    "isResolved": False,
    "startDateTime": "2026-11-20T13:42:00Z",
    "lastModifiedDateTime": "2026-11-20T13:42:00Z",
    "posts": [],
}


def readme_first_poll() -> list[str]:
    """The m365watch arguments of the README's systemd step marked ``# the baseline``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    [line] = [line for line in readme.splitlines() if line.endswith("# the baseline")]
    words = shlex.split(line, comments=True)
    assert "/opt/m365watch/bin/m365watch" in words, f"the baseline step runs no m365watch: {line}"
    return words[words.index("/opt/m365watch/bin/m365watch") + 1 :]


def unit_poll() -> list[str]:
    """The m365watch arguments of the systemd service's ExecStart."""
    unit = (ROOT / "contrib" / "systemd" / "m365watch.service").read_text(encoding="utf-8")
    match = re.search(r"^ExecStart=\S+/m365watch (.*)$", unit, re.MULTILINE)
    assert match
    return shlex.split(match.group(1))


@pytest.mark.parametrize(
    ("command", "says_baseline"),
    [(readme_first_poll, True), (unit_poll, False)],
    ids=["readme-first-poll-by-hand", "the-service-quiet"],
)
def test_the_systemd_first_poll_says_what_the_readme_promises(
    tmp_path: Path, command: Callable[[], list[str]], says_baseline: bool
) -> None:
    args = command()
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"value": [OPEN_ISSUE]})
        result = invoke(write_config(tmp_path), *args)
    assert result.exit_code == 0, result.output
    baseline = "First poll: recorded 1 issues as the baseline; nothing sent"
    assert (baseline in result.stdout) is says_baseline
    if not says_baseline:
        # So the README must not send people to the service's journal for that line.
        assert result.output == ""


def test_readme_channel_examples_are_current() -> None:
    spec = importlib.util.spec_from_file_location(
        "channel_examples", ROOT / "bench" / "channel_examples.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert module.examples() in readme, "run: python bench/channel_examples.py --write"
    assert module.message_center_example() in readme, (
        "run: python bench/channel_examples.py --write"
    )


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
