"""The command line: exact messages and exit codes, and one end-to-end poll with only HTTP mocked."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner

from m365watch import __version__
from m365watch.cli import main
from tests.command_line import invoke, write_config
from tests.helpers import (
    SLACK_URL,
    SLACK_WEBHOOK,
    TEAMS_ENDPOINT,
    TEAMS_URL,
    load_json,
    timeline_steps,
    url_of,
)
from tests.identity import SECRET, mock_identity

GRAPH_ISSUES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/issues"
STEPS = timeline_steps()


def graph_returns(rsps: responses.RequestsMock, issues: list[dict[str, Any]]) -> None:
    rsps.get(GRAPH_ISSUES, json={"value": issues})


def test_help_documents_exit_codes() -> None:
    result = invoke(None, "--help")
    assert result.exit_code == 0
    for line in ("0   success", "3   the poll finished but a notification failed", "75  another"):
        assert line in result.output
    assert "143 stopped by SIGTERM" in result.output
    assert "143 stopped by SIGTERM" in invoke(None, "doctor", "--help").output


def test_version() -> None:
    result = invoke(None, "--version")
    assert result.output.strip() == f"m365watch, version {__version__}"


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        (None, "Error: no configuration file at "),
        ("[tenant\n", "is not valid TOML"),
        (
            '[tenant]\ntenant_id = "contoso.onmicrosoft.com"\nclient_id = "x"\nclient_secret = "y"\n',
            "Error: tenant.client_id must be the app registration's Application (client) ID",
        ),
        (
            "[poll]\nnotify_existng = true\n",
            "Error: unknown key 'notify_existng' in [poll]: valid keys are",
        ),
        (
            '[[notify]]\nname = "t"\nurl = "msteams://a/b/c"\n',
            "retired Office 365 connector",
        ),
        (
            '[[notify]]\nname = "t"\nurl = "${NOT_SET_ANYWHERE}"\n',
            "Error: environment variable NOT_SET_ANYWHERE is not set (used in [[notify]] block 1 url)",
        ),
    ],
    ids=["missing", "bad-toml", "bad-client-id", "typo-key", "teams-connector", "missing-env"],
)
def test_config_errors_exit_2_with_one_line(
    tmp_path: Path, config_text: str | None, message: str
) -> None:
    path = tmp_path / "config.toml"
    if config_text is not None:
        path.write_text(config_text)
    result = invoke(path, "poll")
    assert result.exit_code == 2
    assert message in result.output
    assert result.output.count("Error:") == 1
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "missing.toml", "no configuration file at"),
        (lambda tmp: tmp, "[Errno 21] Is a directory"),
        (lambda tmp: _touch(tmp / "file") / "config.toml", "[Errno 20] Not a directory"),
        pytest.param(
            lambda tmp: _touch(tmp / "config.toml", mode=0),
            "[Errno 13] Permission denied",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"),
        ),
    ],
    ids=["missing", "directory", "under-a-file", "no-permission"],
)
def test_an_unreadable_config_is_the_same_line_through_c_and_the_environment(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    path = make(tmp_path)
    through_option = invoke(path, "poll")
    through_env = invoke(None, "poll", env={"M365WATCH_CONFIG": str(path)})
    for result in (through_option, through_env):
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
        assert reason in result.output
    assert through_option.output == through_env.output


@pytest.mark.parametrize("where", ["-c", "M365WATCH_CONFIG", "state"])
def test_a_named_pipe_as_config_or_state_is_refused_not_waited_on(
    tmp_path: Path, where: str
) -> None:
    config = write_config(tmp_path)
    fifo = tmp_path / ("state" if where == "state" else "") / "fifo"
    fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(fifo)
    if where == "state":
        config.write_text(config.read_text().replace("state.json", "fifo"))
    argv = ["-c", str(fifo if where == "-c" else config), "status", "--cached"]
    env = {**os.environ, "M365WATCH_CLIENT_SECRET": SECRET}
    if where == "M365WATCH_CONFIG":
        argv, env["M365WATCH_CONFIG"] = argv[2:], str(fifo)
    # A subprocess: a read that blocks on the pipe fails the test instead of hanging it.
    done = subprocess.run(
        [sys.executable, "-m", "m365watch", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    what = "state file" if where == "state" else "configuration file"
    assert done.stderr == f"Error: cannot read {what} {fifo}: it is a named pipe, not a file\n"
    assert done.returncode == (1 if where == "state" else 2)


def _touch(path: Path, mode: int = 0o600) -> Path:
    path.write_text("")
    path.chmod(mode)
    return path


def test_poll_without_tenant_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'[state]\npath = "{tmp_path / "s.json"}"\n')
    result = invoke(path, "poll")
    assert result.exit_code == 2
    assert "has no [tenant] table" in result.output


def test_end_to_end_poll_with_only_http_mocked(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        graph_returns(rsps, STEPS[0]["issues"])
        first = invoke(config, "poll")
    assert first.exit_code == 0, first.output
    assert first.output.startswith("First poll: recorded 2 issues as the baseline; nothing sent")

    # Second run: the token comes from the persisted cache: no identity-platform request.
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[1]["issues"])
        slack = rsps.post(SLACK_WEBHOOK, body="ok")
        second = invoke(config, "poll")
        hosts = {re.sub(r"^https://([^/]+)/.*", r"\1", url_of(c.request)) for c in rsps.calls}
    assert second.exit_code == 0, second.output
    assert second.output.strip() == (
        "3 issues, 1 change(s), 1 message(s) sent, 0 failed, 0 delivery(ies) pending."
    )
    assert hosts == {"graph.microsoft.com", "hooks.slack.com"}
    payload = json.dumps(json.loads(slack.calls[0].request.body))
    assert "EX1256020" in payload

    # Nothing new: nothing sent, exit 0; -q prints nothing at all (cron mail stays empty).
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[1]["issues"])
        third = invoke(config, "-q", "poll")
    assert (third.exit_code, third.output) == (0, "")


def baseline(config: Path) -> None:
    """The first poll (signing in) over the timeline's first step: records, sends nothing."""
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        graph_returns(rsps, STEPS[0]["issues"])
        assert invoke(config, "poll").exit_code == 0


def baseline_then_a_failed_delivery(config: Path, *args: str) -> Any:
    """A baseline poll, then a poll whose Slack delivery fails: the second poll's result."""
    baseline(config)
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[1]["issues"])
        rsps.post(SLACK_WEBHOOK, status=500, body="oops")
        return invoke(config, *args, "poll")


def test_failed_delivery_exits_3_and_retries_next_time(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    failed = baseline_then_a_failed_delivery(config)
    assert failed.exit_code == 3
    assert "Warning: EX1256020 not delivered to ops-slack: slack:" in failed.output
    assert "(kept; retried next poll)" in failed.output
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[1]["issues"])
        slack = rsps.post(SLACK_WEBHOOK, body="ok")
        retried = invoke(config, "poll")
    assert retried.exit_code == 0
    assert len(slack.calls) == 1


def test_a_failed_delivery_is_one_warning_line_with_apprise_s_reason(tmp_path: Path) -> None:
    failed = baseline_then_a_failed_delivery(write_config(tmp_path))
    assert failed.exit_code == 3
    lines = failed.stderr.splitlines()
    assert lines == [
        line for line in lines if line.startswith("Warning: ") and "not delivered to" in line
    ]
    summary = re.search(r"(\d+) failed", failed.stdout)
    assert summary and len(lines) == int(summary.group(1)) >= 1  # one line per failed delivery
    assert all("slack: Failed to send to Slack: " in line for line in lines), lines


def test_verbose_shows_the_library_s_warning_under_its_own_name(tmp_path: Path) -> None:
    failed = baseline_then_a_failed_delivery(write_config(tmp_path), "-v")
    assert failed.exit_code == 3
    assert "\napprise: WARNING: Failed to send to Slack: " in "\n" + failed.stderr
    assert "m365watch: WARNING: Failed" not in failed.stderr
    assert "m365watch: INFO: delivery to ops-slack failed: slack: " in failed.stderr


@pytest.mark.parametrize("verbosity", ["-vv", "-vvv"])
def test_debug_logs_are_m365watch_s_own_never_a_library_s(tmp_path: Path, verbosity: str) -> None:
    failed = baseline_then_a_failed_delivery(write_config(tmp_path), verbosity)
    assert failed.exit_code == 3
    assert "m365watch: DEBUG: " in failed.stderr  # debug logs really were on
    assert "acquire lock" not in failed.stderr  # filelock's debug lines
    sources = {
        line.split(":")[0]
        for line in failed.stderr.splitlines()
        if re.match(r"[\w.]+: (DEBUG|INFO): ", line)
    }
    assert sources == {"m365watch"}


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            403,
            {"error": {"code": "Forbidden", "message": "Access denied"}},
            "ServiceHealth.Read.All",
        ),
        (401, {"error": {"code": "InvalidAuthenticationToken", "message": "x"}}, "401"),
        (200, "<html>proxy login</html>", "not JSON"),
    ],
    ids=["403", "401", "html-page"],
)
def test_graph_faults_exit_1_and_change_nothing(
    tmp_path: Path, status: int, body: Any, message: str
) -> None:
    config = write_config(tmp_path)
    baseline(config)
    state = tmp_path / "state" / "state.json"
    before = state.read_bytes()
    with responses.RequestsMock() as rsps:
        if isinstance(body, dict):
            rsps.get(GRAPH_ISSUES, json=body, status=status)
        else:
            rsps.get(GRAPH_ISSUES, body=body, status=status, content_type="text/html")
        result = invoke(config, "poll")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert state.read_bytes() == before


def test_verbose_error_shows_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(GRAPH_ISSUES, json={"error": {"message": "no"}}, status=403)
        result = invoke(config, "-v", "poll")
    assert result.exit_code == 1
    assert "Traceback" in result.output


def test_corrupt_state_exits_1_and_is_left_alone(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state" / "state.json"
    state.parent.mkdir()
    state.write_text('{"meta": ')
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        graph_returns(rsps, STEPS[0]["issues"])
        result = invoke(config, "poll")
    assert result.exit_code == 1
    assert f"Error: state file {state} cannot be used" in result.output
    assert state.read_text() == '{"meta": '


def test_second_poll_while_locked_exits_75(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    state = tmp_path / "state" / "state.json"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from m365watch.store import StateStore\n"
            f"with StateStore(Path({str(state)!r})).locked():\n"
            "    print('locked', flush=True); sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            mock_identity(rsps)
            graph_returns(rsps, STEPS[0]["issues"])
            result = invoke(config, "poll", "--lock-wait", "0.2")
            assert len(rsps.calls) == 0  # gave up before asking anyone anything
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    assert result.exit_code == 75
    assert result.output.startswith("Error: another m365watch poll is running")


def test_dry_run_prints_messages_and_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    baseline(config)
    state = tmp_path / "state" / "state.json"
    before = state.read_bytes()
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[2]["issues"])
        result = invoke(config, "poll", "--dry-run")
    assert result.exit_code == 0
    assert (
        "--- would send to ops-slack: [Advisory] EX1256020 · Exchange Online: Service degradation"
        in result.output
    )
    assert "Dry run: 3 issues, 1 change(s), 0 message(s) sent" in result.output
    assert state.read_bytes() == before


def test_secret_never_printed_even_verbose(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps)
        graph_returns(rsps, STEPS[1]["issues"])
        rsps.post(SLACK_WEBHOOK, status=500)
        invoke(config, "poll")
        result = invoke(config, "-vv", "poll")
    assert SECRET not in result.output
    assert "TIiajkdnlazkcOXrIdevi7" not in result.output
    for path in (tmp_path / "state").iterdir():
        assert SECRET not in path.read_text(errors="replace")


def test_demo_runs_the_bundled_timeline() -> None:
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    titles = re.findall(r"│ \[\w+\] (\[.*)", result.output)
    assert titles == [
        "[Advisory] EX1256020 · Exchange Online: Investigating",
        "[Advisory] EX1256020 · Exchange Online: Service degradation",
        "[Advisory] MO1256311 · Microsoft 365 suite: Investigating",
        "[Incident] EX1256020 · Exchange Online: Service interruption",
        "[Advisory] TM1255871 · Microsoft Teams: Service restored",
        "[Incident] EX1256020 · Exchange Online: Restoring service",
        "[Incident] EX1256020 · Exchange Online: Service restored",
        "[Incident] EX1256020 · Exchange Online: Post-incident report published",
        "[Message center] MC1256500: Exchange Online: Basic authentication for SMTP AUTH "
        "client submission retires",
        "[Message center] MC1256500: (Updated) Exchange Online: Basic authentication for SMTP "
        "AUTH client submission retires",
        "[Message center] MC1256500: (Updated) Exchange Online: Basic authentication for SMTP "
        "AUTH client submission retires",
    ]
    assert "baseline: recorded 2 issues and 1 Message center post, sent nothing" in result.output
    # The Message center post: published, then updated (what changed), then a reminder.
    polls = result.output.split("\n== Poll ")
    assert "New Message center post" in polls[9]
    updated = polls[10]
    assert "Act by: 2027-01-15 08:00 UTC → 2027-03-01 08:00 UTC" in updated
    assert "Added: Updated December 3, 2026: We have moved the retirement" in updated
    assert "Printers, scanners" not in updated  # the changes, not the whole post again
    assert updated.count("2027-03-01") == 1  # the act-by date said once
    assert "Action required by 2027-03-01 08:00 UTC, 30 days left" in polls[11]


@responses.activate
def test_demo_can_send_to_a_real_target() -> None:
    slack = responses.post(SLACK_WEBHOOK, body="ok")
    result = CliRunner().invoke(main, ["demo", "--notify", SLACK_URL])
    assert result.exit_code == 0, result.output
    assert len(slack.calls) == 11


def test_sample_payloads_load() -> None:
    # The real captured list parses through the CLI's path too (sanity for the fixture).
    assert load_json("cli-microsoft365-healthissue-list.json")["value"][0]["id"] == "CR275975"


# --- test-notify ---


def notify_config(tmp_path: Path) -> Path:
    """Two targets and no [tenant]: test-notify needs no sign-in."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[state]\npath = "{tmp_path / "state.json"}"\n\n'
        f'[[notify]]\nname = "ops-slack"\nurl = "{SLACK_URL}"\n\n'
        f'[[notify]]\nname = "ops-teams"\nurl = "{TEAMS_URL}"\ndigest = true\n'
    )
    path.chmod(0o600)  # it holds webhook tokens
    return path


def test_test_notify_prints_one_line_per_target_and_exits_3_on_a_failure(tmp_path: Path) -> None:
    config = notify_config(tmp_path)
    with responses.RequestsMock() as rsps:
        slack = rsps.post(SLACK_WEBHOOK, body="ok")
        rsps.post(TEAMS_ENDPOINT, status=500)
        result = invoke(config, "test-notify")
    assert result.exit_code == 3
    assert result.stdout.splitlines() == [
        "ops-slack: ok (slack)",
        "ops-teams: FAILED (workflows): workflows: Failed to send Workflows notification: "
        "Internal server error., error=500.",
    ]
    for secret in ("TIiajkdnlazkcOXrIdevi7", "Sig0123456789abcdefSecret", "f0a1b2c3d4e5"):
        assert secret not in result.output
    attachment = json.loads(slack.calls[0].request.body)["attachments"][0]
    assert attachment["fallback"] == "[Test] m365watch test notification for ops-slack"
    assert not (tmp_path / "state.json").exists()


def test_test_notify_one_target_exits_0(tmp_path: Path) -> None:
    config = notify_config(tmp_path)
    with responses.RequestsMock() as rsps:
        teams = rsps.post(TEAMS_ENDPOINT, status=202)
        result = invoke(config, "test-notify", "--target", "ops-teams")
    assert (result.exit_code, result.stdout) == (0, "ops-teams: ok (workflows)\n")
    card = json.loads(teams.calls[0].request.body)["attachments"][0]["content"]
    assert card["body"][0]["items"][0]["text"] == "[Test] m365watch test notification"


@pytest.mark.parametrize(
    ("args", "notify", "message"),
    [
        (
            ["--target", "nope"],
            "",
            "Error: no [[notify]] target is named 'nope': the targets are ops-slack, ops-teams",
        ),
        ([], "none", "has no [[notify]] blocks: add one"),
    ],
    ids=["unknown-target", "no-targets"],
)
def test_test_notify_usage_errors_exit_2(
    tmp_path: Path, args: list[str], notify: str, message: str
) -> None:
    config = notify_config(tmp_path)
    if notify == "none":
        config.write_text(f'[state]\npath = "{tmp_path / "state.json"}"\n')
    result = invoke(config, "test-notify", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_test_notify_reports_a_url_apprise_rejects_and_still_tests_the_others(
    tmp_path: Path,
) -> None:
    config = notify_config(tmp_path)
    config.write_text(
        config.read_text() + '\n[[notify]]\nname = "typo"\nurl = "slack://onlyonetokenSECRET"\n'
    )
    with responses.RequestsMock() as rsps:
        rsps.post(SLACK_WEBHOOK, body="ok")
        rsps.post(TEAMS_ENDPOINT, status=202)
        result = invoke(config, "test-notify")
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        "ops-slack: ok (slack)",
        "ops-teams: ok (workflows)",
        "typo: FAILED (slack): notify target 'typo': Apprise does not accept its URL number 1 "
        "(slack://…) (An invalid Slack (second) Token (…) was specified): check it against "
        "the Apprise documentation for that service",
    ]
    assert "onlyonetokenSECRET" not in result.output  # stdout and stderr


def test_cli_lock_wait_default_matches_the_store() -> None:
    import inspect

    from m365watch.store import StateStore

    # What --lock-wait defaults to is what a store built without it waits.
    store_default = inspect.signature(StateStore).parameters["lock_wait"].default
    for command in ("poll", "watch"):
        option = next(p for p in main.commands[command].params if p.name == "lock_wait")
        assert option.default == store_default


@pytest.mark.parametrize("command", ["poll", "watch"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
def test_lock_wait_must_be_a_finite_number_of_seconds(
    tmp_path: Path, command: str, value: str
) -> None:
    result = invoke(write_config(tmp_path), command, f"--lock-wait={value}")
    assert result.exit_code == 2
    assert f"Error: Invalid value for '--lock-wait': {value} is not a number of seconds" in (
        result.output
    )
    assert result.output.count("Error:") == 1
    assert "Traceback" not in result.output


def test_changes_owed_to_a_removed_target_are_reported_even_with_q(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert baseline_then_a_failed_delivery(config, "-q").exit_code == 3
    renamed = write_config(
        tmp_path, notify=f'[[notify]]\nname = "slack-renamed"\nurl = "{SLACK_URL}"\n'
    )
    with responses.RequestsMock() as rsps:
        graph_returns(rsps, STEPS[1]["issues"])
        result = invoke(renamed, "-q", "poll")
    assert result.exit_code == 0
    assert result.output == (
        "Warning: undelivered change(s) owed to target(s) no longer configured dropped: "
        "EX1256020 for ops-slack\n"
    )
