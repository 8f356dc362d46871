"""Secrets and files: every command runs with a sentinel secret that must never come out,
and what m365watch writes is private (0600 files in a 0700 folder).
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.installation import SENTINEL, Installation, Target, reset
from tests.loopback import FakeMicrosoft

# A secret inside a notification URL that Apprise cannot parse (it logs such URLs).
HOOK_SECRET = "HookSecret0123456789abcdefXYZ"


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


@pytest.fixture
def loopback(fake: FakeMicrosoft) -> FakeMicrosoft:
    reset(fake)
    return fake


def written_files(root: Path, *, besides: tuple[Path, ...]) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p not in besides]


def watch_one_poll(inst: Installation) -> tuple[str, str]:
    """`watch` until its first poll is reported, then SIGTERM: its stdout and stderr."""
    proc = inst.spawn("-vvv", "watch", "--every", "1h")
    assert proc.stdout is not None
    head = proc.stdout.readline() + proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return head + out, err


def test_no_command_ever_shows_or_stores_the_secret(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path / "install", loopback)
    outputs: list[tuple[str, subprocess.CompletedProcess[str]]] = []

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = inst.run(*args)
        outputs.append((" ".join(args), done))
        return done

    for args in (["--help"], ["--version"], ["poll", "--help"], ["watch", "--help"]):
        assert run(*args).returncode == 0
    assert run("doctor", "--help").returncode == 0
    assert run("-vvv", "doctor").returncode == 0
    loopback.issues = []
    assert run("-vvv", "poll").returncode == 0  # the baseline
    reset(loopback)
    assert run("-vvv", "poll", "--dry-run").returncode == 0
    assert run("-vvv", "poll").returncode == 0  # delivers twelve messages
    loopback.graph_faults.append((401, '{"error": {"message": "token expired"}}', {}))
    assert run("-vvv", "poll").returncode == 1
    loopback.graph_faults.append((403, "{}", {}))
    assert run("-vvv", "doctor").returncode == 1
    assert run("-vvv", "demo").returncode == 0
    watch_out, watch_err = watch_one_poll(inst)

    texts = [(name, done.stdout + done.stderr) for name, done in outputs]
    texts.append(("watch", watch_out + watch_err))
    assert all(SENTINEL not in text for _, text in texts), [n for n, t in texts if SENTINEL in t]
    # Debug logs were really on (so the check above covered them).
    assert any("DEBUG" in text for _, text in texts)
    for path in written_files(inst.root, besides=(inst.config,)):
        assert SENTINEL.encode() not in path.read_bytes(), path
    for payloads in loopback.hooks.values():
        assert SENTINEL not in repr(payloads)


def _client_secret_of(form: str) -> str:
    return parse_qs(form)["client_secret"][0]


# A broken proxy before the token endpoint quotes the request back: all of it, a part of
# the secret, or the secret cut in two across lines.
ECHOES: dict[str, Callable[[str], str]] = {
    "whole": lambda form: f"Bad request: {form}",
    "part": lambda form: f"Bad value {_client_secret_of(form)[5:17]}.",
    "split": lambda form: (
        f"Bad value {_client_secret_of(form)[:19]}\r\n{_client_secret_of(form)[19:]}."
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_a_secret_quoted_back_by_the_identity_endpoint_is_neither_shown_nor_stored(
    loopback: FakeMicrosoft, tmp_path: Path, echo: str
) -> None:
    inst = Installation(tmp_path, loopback)
    loopback.token_echo = ECHOES[echo]
    runs = [inst.run("-vv", "poll"), inst.run("-vv", "doctor")]
    assert [done.returncode for done in runs] == [1, 1]
    assert loopback.counts["token"] == 2  # the echo really was served
    # No run of 8 characters of the secret anywhere: output, logs, or any file written.
    pieces = {SENTINEL[i : i + 8] for i in range(len(SENTINEL) - 7)}
    texts = [done.stdout + done.stderr for done in runs]
    texts += [p.read_text() for p in written_files(inst.root, besides=(inst.config,))]
    assert any("state.health.json" in str(p) for p in inst.root.rglob("*"))
    assert [piece for piece in pieces if any(piece in text for text in texts)] == []
    assert "***" in runs[0].stderr


def test_a_secret_in_a_rejected_notification_url_is_not_shown(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback, [Target("ops")])
    inst.config.write_text(
        inst.config.read_text().replace(
            inst.hook_url("ops"), f"nosuchservice://{HOOK_SECRET}@hooks.example"
        )
    )
    polled = inst.run("-vvv", "poll")
    assert polled.returncode == 2
    assert "Error: notify target 'ops': Apprise does not accept its URL number 1 " in (
        polled.stderr
    )
    doctor = inst.run("doctor")
    assert doctor.returncode == 1
    assert "✗ notify 'ops': Apprise does not accept this nosuchservice://… URL" in doctor.stdout
    for text in (polled.stdout, polled.stderr, doctor.stdout, doctor.stderr):
        assert HOOK_SECRET not in text


def test_doctor_stopped_by_sigterm_leaves_no_token_cache_behind(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path / "install", loopback)
    temp = tmp_path / "tmp"
    temp.mkdir()
    loopback.graph_delay = 10.0  # doctor waits here, signed in, its fresh token cache on disk
    proc = subprocess.Popen(
        inst.argv("doctor"),
        env={**inst.env, "TMPDIR": str(temp)},
        cwd=inst.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not loopback.counts["graph"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loopback.counts["graph"] == 1, "doctor never reached Graph"
    assert [p.name[:17] for p in temp.iterdir()] == ["m365watch-doctor-"]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert err == "Terminated.\n"
    assert "✓ sign-in" in out
    assert list(temp.rglob("*")) == []


def test_world_readable_config_with_a_literal_secret_is_warned_about(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback)
    inst.config.write_text(inst.config.read_text().replace("${M365WATCH_CLIENT_SECRET}", SENTINEL))
    inst.config.chmod(0o644)
    warning = (
        f"{inst.config} holds a literal client secret and other users can read it: run chmod "
        f'600 {inst.config}, or use client_secret = "${{M365WATCH_CLIENT_SECRET}}"'
    )
    polled = inst.run("poll")
    assert polled.returncode == 0
    assert polled.stderr == f"Warning: {warning}\n"
    doctor = inst.run("doctor")
    assert f"! configuration: {warning}\n" in doctor.stdout
    assert SENTINEL not in polled.stdout + polled.stderr + doctor.stdout + doctor.stderr

    inst.config.chmod(0o600)
    assert inst.run("poll").stderr == ""


def test_state_caches_locks_and_health_are_0600_in_a_0700_folder(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    inst = Installation(tmp_path, loopback)
    loose = {"umask": 0o022}  # a permissive umask must not matter
    loopback.issues = []
    assert inst.run("poll", **loose).returncode == 0
    reset(loopback)
    loopback.graph_faults.append((403, "{}", {}))
    assert inst.run("poll", **loose).returncode == 1  # writes the health file
    assert inst.run("poll", **loose).returncode == 0  # delivers; resets the health file
    assert inst.run("doctor", **loose).returncode == 0

    folder = inst.state.parent
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "msal_http_cache.json",
        "msal_token_cache.json",
        "state.delta.json",
        "state.health.json",
        "state.health.json.lock",
        "state.json",
        "state.json.lock",
        "state.outbox.json",
        "state.quiet.json",
    ]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert modes == dict.fromkeys(names, 0o600)
    assert os.stat(inst.config).st_mode & 0o077 == 0  # (the test's own config, for the record)


def test_a_secret_in_an_accepted_notification_url_is_not_shown_even_at_vvv(
    loopback: FakeMicrosoft, tmp_path: Path
) -> None:
    # Library debug logs (urllib3's request lines, Apprise's URLs) would print this path.
    path_secret = "PathSecret0123456789abcdefXYZ"
    inst = Installation(tmp_path, loopback, [Target("ops")])
    inst.config.write_text(
        inst.config.read_text().replace(
            inst.hook_url("ops"), loopback.hook_url(f"ops{path_secret}")
        )
    )
    loopback.issues = []
    assert inst.run("poll").returncode == 0  # the baseline
    reset(loopback)
    polled = inst.run("-vvv", "poll")
    assert polled.returncode == 0, polled.stderr
    assert loopback.hooks[f"ops{path_secret}"]  # delivered through that URL
    assert "DEBUG" in polled.stderr
    assert path_secret not in polled.stdout + polled.stderr
