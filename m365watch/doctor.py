"""The checks behind ``m365watch doctor``: each gives one line, and the fix when it fails.

The CLI wires the adapters and runs these in order; the functions here judge
what the adapters saw. A warning (``!``) passes but asks for attention soon;
any ``✗`` makes ``doctor`` exit non-zero.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path

from m365watch.errors import M365WatchError, StateError, first_line
from m365watch.sections import format_time
from m365watch.settings import TargetSettings, scheme_of
from m365watch.store import StateStore, write_private_file
from m365watch.watcher import WATCHER_EVENT, watcher_targets

CERTIFICATE_WARNING = timedelta(days=30)
# Entra ID refuses client assertions more than 5 minutes off; warn well before.
CLOCK_FAIL = timedelta(minutes=5)
CLOCK_WARN = timedelta(minutes=1)
# A clock before this was never set (1970, or a dead RTC battery).
EARLIEST_SANE = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Status(str, Enum):
    """How a check went, as the mark printed in front of it."""

    PASS = "✓"
    WARN = "!"
    FAIL = "✗"
    SKIP = "-"


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        """True for ✗ (a warning or a skipped check does not fail doctor by itself)."""
        return self.status is Status.FAIL


def attempt(name: str, action: Callable[[], str]) -> Check:
    """Run ``action``: its text when it works, the error (which says the fix) when not."""
    try:
        return Check(name, Status.PASS, action())
    except M365WatchError as error:
        return Check(name, Status.FAIL, first_line(error))


def skipped(name: str, why: str) -> Check:
    """A check that could not run because an earlier one failed."""
    return Check(name, Status.SKIP, f"not checked: {why}")


def certificate_check(subject: str, thumbprint: str, not_after: datetime, now: datetime) -> Check:
    """Expired: fail; within 30 days: warn; the expiry date is always shown."""
    left = not_after - now
    facts = f"{subject}, thumbprint {thumbprint}"
    renew = (
        "create a new certificate, upload it under Certificates & secrets in the app "
        "registration and point certificate_path at it"
    )
    if left <= timedelta(0):
        return Check(
            "certificate", Status.FAIL, f"{facts}, expired on {format_time(not_after)}: {renew}"
        )
    if left <= CERTIFICATE_WARNING:
        return Check(
            "certificate",
            Status.WARN,
            f"{facts}, expires on {format_time(not_after)}, in {_days(left)}: {renew} soon",
        )
    return Check(
        "certificate", Status.PASS, f"{facts}, valid until {format_time(not_after)} ({_days(left)})"
    )


def clock_check(local: datetime, server: datetime | None, host: str | None) -> Check:
    """Compare the local clock with the time in a Microsoft answer's Date header."""
    ntp = "enable time synchronisation (timedatectl set-ntp true, or chrony/ntpd)"
    if local < EARLIEST_SANE:
        return Check("clock", Status.FAIL, f"the clock says {format_time(local)}: set it and {ntp}")
    if server is None or host is None:
        return skipped("clock", "no answer from Microsoft to compare with")
    skew = local - server
    size = abs(skew)
    side = "ahead of" if skew > timedelta(0) else "behind"
    if size > CLOCK_FAIL:
        return Check(
            "clock",
            Status.FAIL,
            f"{_duration(size)} {side} {host}; sign-in fails beyond 5 minutes: {ntp}",
        )
    if size > CLOCK_WARN:
        return Check("clock", Status.WARN, f"{_duration(size)} {side} {host}: {ntp}")
    return Check("clock", Status.PASS, f"within {_duration(size)} of {host}")


def state_folder_check(state_path: Path) -> Check:
    """The state folder can be written (a probe file), is private, and the state loads."""
    folder = state_path.parent
    probe = folder / f".m365watch-doctor-{os.getpid()}.tmp"
    try:
        write_private_file(probe, b"")
        probe.unlink()
    except (OSError, StateError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return Check(
            "state folder",
            Status.FAIL,
            f"cannot write in {folder} ({reason}): create it, owned by the user that runs "
            "m365watch, mode 700 (under systemd, StateDirectory= does this)",
        )
    try:
        StateStore(state_path).load()
    except StateError as error:
        return Check("state folder", Status.FAIL, first_line(error))
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            "state folder",
            Status.WARN,
            f"{folder} is writable but other users can enter it (mode {mode:03o}): "
            f"run chmod 700 {folder}",
        )
    exposed = sorted(p.name for p in folder.iterdir() if p.is_file() and p.stat().st_mode & 0o077)
    if exposed:
        return Check(
            "state folder",
            Status.WARN,
            f"other users may read {', '.join(exposed)} in {folder}: run chmod 600 on them",
        )
    found = "the state file loads" if state_path.exists() else "no state yet"
    return Check("state folder", Status.PASS, f"{folder} is writable and private; {found}")


def notification_checks(
    targets: Sequence[TargetSettings], accepts: Callable[[str], bool]
) -> list[Check]:
    """One line per notification URL: does Apprise accept it? (Nothing is sent.)"""
    if not targets:
        return [
            Check(
                "notifications",
                Status.WARN,
                "no [[notify]] target: nothing will be sent; add one (see config.example.toml)",
            )
        ]
    checks = []
    for target in targets:
        for position, url in enumerate(target.urls, start=1):
            scheme = scheme_of(url)
            name = f"notify {target.name!r}" + (f" URL {position}" if len(target.urls) > 1 else "")
            if accepts(url):
                checks.append(Check(name, Status.PASS, f"{scheme}://… accepted by Apprise"))
            else:
                checks.append(
                    Check(
                        name,
                        Status.FAIL,
                        f"Apprise does not accept this {scheme}://… URL: check it against the "
                        "Apprise documentation for that service",
                    )
                )
    if not watcher_targets(targets):
        checks.append(
            Check(
                "self-monitoring",
                Status.WARN,
                f'no target has "{WATCHER_EVENT}" in its events: add it to one to hear when '
                "m365watch itself cannot reach Microsoft Graph",
            )
        )
    return checks


def _days(delta: timedelta) -> str:
    days = delta.days
    return "less than a day" if days < 1 else f"{days} day{'s' if days != 1 else ''}"


def _duration(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} minutes"
