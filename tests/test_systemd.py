"""contrib/systemd: the service and timer pass `systemd-analyze verify`, and are hardened.

The systemd-analyze tests skip cleanly on machines without it (macOS, containers
without systemd); the content checks run everywhere.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from m365watch.budget import FETCH_SECONDS, SEND_SECONDS, SUGGESTED_LOCK_WAIT
from m365watch.cli import main

UNITS = Path(__file__).resolve().parents[1] / "contrib" / "systemd"
ANALYZE = shutil.which("systemd-analyze")
INSTALLED_BINARY = "/opt/m365watch/bin/m365watch"

needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def directives(name: str) -> dict[str, list[str]]:
    """Key -> values of the active (uncommented) lines of a unit file."""
    found: dict[str, list[str]] = collections.defaultdict(list)
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found[key.strip()].append(value.strip())
    return found


def runnable_copies(tmp_path: Path) -> list[Path]:
    """The units, with ExecStart's binary swapped for this interpreter (verify checks it exists)."""
    service = (UNITS / "m365watch.service").read_text()
    assert f"ExecStart={INSTALLED_BINARY} " in service
    (tmp_path / "m365watch.service").write_text(
        service.replace(f"ExecStart={INSTALLED_BINARY}", f"ExecStart={sys.executable} -m m365watch")
    )
    shutil.copy(UNITS / "m365watch.timer", tmp_path / "m365watch.timer")
    return [tmp_path / "m365watch.service", tmp_path / "m365watch.timer"]


@needs_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    assert ANALYZE is not None
    done = subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, runnable_copies(tmp_path))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "m365watch" not in done.stdout + done.stderr, done.stdout + done.stderr


@needs_analyze
def test_service_exposure_is_low(tmp_path: Path) -> None:
    assert ANALYZE is not None
    service = runnable_copies(tmp_path)[0]
    done = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(service)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for m365watch\.service: ([0-9.]+)", done.stdout)
    if match is None and "offline" in done.stderr:
        pytest.skip("this systemd-analyze has no --offline security review (systemd < 250)")
    assert match, done.stdout + done.stderr
    # systemd's scale: 0 = fully locked down, 10 = unprotected; below 2 reads "OK".
    assert float(match.group(1)) <= 2.0


def test_service_is_hardened_and_keeps_secrets_out_of_the_config() -> None:
    service = directives("m365watch.service")
    expected = {
        "Type": ["oneshot"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["m365watch"],
        "StateDirectoryMode": ["0700"],
        "ConfigurationDirectory": ["m365watch"],
        "UMask": ["0077"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "EnvironmentFile": ["-/etc/m365watch/m365watch.env"],
        "SuccessExitStatus": ["75 143"],
    }
    for key, values in expected.items():
        assert service[key] == values, key
    text = (UNITS / "m365watch.service").read_text()
    # The certificate route is documented next to the secret route.
    assert "#LoadCredential=app.pem:/etc/m365watch/app.pem" in text
    assert 'certificate_path = "${CREDENTIALS_DIRECTORY}/app.pem"' in text


def test_timer_runs_every_5_minutes_persistently_with_a_random_delay() -> None:
    timer = directives("m365watch.timer")
    assert timer["OnCalendar"] == ["*:0/5"]
    assert timer["Persistent"] == ["true"]
    assert timer["RandomizedDelaySec"] == ["60"]
    assert timer["Unit"] == ["m365watch.service"]
    assert timer["WantedBy"] == ["timers.target"]


def test_exec_start_is_a_valid_command_line() -> None:
    (exec_start,) = directives("m365watch.service")["ExecStart"]
    binary, *args = exec_start.split()
    assert binary == INSTALLED_BINARY
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert args == ["-q", "poll", "--lock-wait", f"{SUGGESTED_LOCK_WAIT:g}"]


def test_the_service_outlasts_the_lock_wait_and_a_poll_at_its_limits() -> None:
    (timeout,) = directives("m365watch.service")["TimeoutStartSec"]
    assert timeout.endswith("min")
    worst_poll = SUGGESTED_LOCK_WAIT + FETCH_SECONDS + 10 * SEND_SECONDS  # ten stuck messages
    assert float(timeout.removesuffix("min")) * 60 >= worst_poll
