"""The checks behind ``m365watch doctor``: each gives one line, and the fix when it fails.

:func:`run_checks` runs them in order through :class:`DoctorAdapters`, which
the wiring builds from the real adapters; the functions here judge what the
adapters saw. A warning (``!``) passes but asks for attention soon; any ``✗``
makes ``doctor`` exit non-zero.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from m365watch.errors import ConfigError, M365WatchError, StateError, first_line
from m365watch.sections import format_time
from m365watch.settings import Settings, TargetSettings, scheme_of
from m365watch.tenant_query import ask_in_order
from m365watch.watcher import WATCHER_EVENT, looks_like_consent, watcher_targets

CERTIFICATE_WARNING = timedelta(days=30)
# The check of ServiceMessage.Read.All, made only with [messages].
MESSAGES_CHECK = "Message center permission"
# Entra ID refuses client assertions more than 5 minutes off; warn well before.
CLOCK_FAIL = timedelta(minutes=5)
CLOCK_WARN = timedelta(minutes=1)
# A clock before this was never set (1970, or a dead RTC battery).
EARLIEST_SANE = datetime(2025, 1, 1, tzinfo=timezone.utc)
# The state folder's probe: a few KB, written like the state (an empty file passes on a full disk).
PROBE_BYTES = 16 * 1024
# Below this, the next poll's atomic rewrite (a second copy of the state beside the first) and
# the logs, caches and other programs sharing the filesystem are close to running out.
LOW_FREE_SPACE = 50 * 1024 * 1024


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


class CertificateFacts(Protocol):
    """What doctor shows of the app's certificate (never its key)."""

    @property
    def subject(self) -> str: ...

    @property
    def thumbprint(self) -> str: ...

    @property
    def not_after(self) -> datetime: ...

    @property
    def not_before(self) -> datetime: ...


@dataclass(frozen=True)
class ClockReading:
    """A Microsoft answer's Date header, and the local time it arrived at."""

    local: datetime
    server: datetime
    host: str


class SignInProbe(Protocol):
    """Sign-in and Graph, on fresh token caches, each call one real request."""

    def sign_in(self) -> None:
        """Get a token afresh; AuthError (or another M365WatchError) when refused."""

    def count_services(self) -> int:
        """Read the health overviews once (ServiceHealth.Read.All); how many services."""

    def peek_messages(self) -> int:
        """Read at most one Message center post once (ServiceMessage.Read.All); how many."""

    def last_clock_reading(self) -> ClockReading | None:
        """The Date header of the latest answer from Microsoft, if any came."""


@dataclass(frozen=True)
class DoctorAdapters:
    """What the checks need from the world, supplied by the wiring."""

    load_settings: Callable[[Path], Settings]
    read_certificate: Callable[[Path, str | None], CertificateFacts]
    # Entered only when the credential check passes; leaving it removes the fresh caches.
    connect: Callable[[Settings], AbstractContextManager[SignInProbe]]
    url_accepted: Callable[[str], bool]
    write_private_file: Callable[[Path, bytes], None]
    load_state: Callable[[Path], object]
    now: Callable[[], datetime]
    # Free bytes on the filesystem holding a folder (shutil.disk_usage(path).free).
    free_space: Callable[[Path], int]


def run_checks(
    config_path: Path, adapters: DoctorAdapters, *, tenant_names: Sequence[str] = ()
) -> Iterator[Check]:
    """Run doctor's checks in order, yielding each as it completes.

    Configuration, credential, sign-in, Graph permission (and with ``[messages]`` the
    Message center's), each notification URL, the state folder, and the clock against
    Microsoft's. With [[tenants]], the credential, sign-in, permission and state folder
    checks are made for every tenant (or those of ``tenant_names``), ``[poll]
    concurrency`` at a time, each named with its tenant: ``sign-in (contoso)``; the
    others once. A ``tenant_names`` entry that is not configured raises ConfigError.
    """
    now = adapters.now()
    try:
        settings = adapters.load_settings(config_path)
    except ConfigError as error:
        yield Check("configuration", Status.FAIL, first_line(error))
        return
    views = settings.for_tenants(tenant_names)
    tenants = f"{counted(len(settings.tenants), 'tenant')}, " if settings.many_tenants else ""
    yield Check(
        "configuration",
        Status.PASS,
        f"{config_path} is valid ({tenants}"
        f"{counted(len(settings.targets), 'notification target')})",
    )
    for warning in settings.warnings:
        yield Check("configuration", Status.WARN, warning)

    readings: list[ClockReading] = []
    if settings.many_tenants:
        yield from _every_tenant(settings, views, adapters, now, readings)
    else:
        yield from _tenant_checks(settings, adapters, now, readings)

    covered = [t for t in settings.targets if any(t.covers(v.tenant_name) for v in views)]
    yield from notification_checks(covered, adapters.url_accepted)
    if not settings.many_tenants:
        yield _state_check(settings, adapters)
    if not readings:
        yield clock_check(adapters.now(), None, None)
    else:
        reading = readings[-1]
        yield clock_check(reading.local, reading.server, reading.host)


def _tenant_checks(
    settings: Settings, adapters: DoctorAdapters, now: datetime, readings: list[ClockReading]
) -> Iterator[Check]:
    """One tenant's credential, sign-in and permissions; Microsoft's Date into ``readings``."""
    credential = credential_checks(settings, adapters.read_certificate, now)
    yield from credential
    if any(check.failed for check in credential):
        yield skipped("sign-in", "needs a working credential")
        yield from _skipped_permissions(settings)
        return
    with adapters.connect(settings) as probe:
        yield from _sign_in_checks(settings, probe)
        reading = probe.last_clock_reading()
    if reading is not None:
        readings.append(reading)


def _state_check(settings: Settings, adapters: DoctorAdapters) -> Check:
    return state_folder_check(
        settings.state_path,
        write_private_file=adapters.write_private_file,
        load_state=adapters.load_state,
        free_space=adapters.free_space,
    )


def _every_tenant(
    settings: Settings,
    views: Sequence[Settings],
    adapters: DoctorAdapters,
    now: datetime,
    readings: list[ClockReading],
) -> Iterator[Check]:
    """Each tenant's checks and its state folder's, named with it, in configuration order."""

    def checks_of(view: Settings) -> list[Check]:
        checks = list(_tenant_checks(view, adapters, now, readings))
        return [*checks, _state_check(view, adapters)]

    questions = [(str(view.tenant_name), functools.partial(checks_of, view)) for view in views]
    # Each tenant's fresh token cache is removed when its checks end: wait for them.
    for answer in ask_in_order(questions, concurrency=settings.poll.concurrency, wait_on_exit=True):
        if answer.error is not None:  # not one of the checks' own failures: they are lines
            yield Check(f"sign-in ({answer.name})", Status.FAIL, first_line(answer.error))
            continue
        tenant = next(v.require_tenant() for v in views if v.tenant_name == answer.name)
        for check in answer.answer or ():
            detail = check.detail
            if check.failed and check.name == "sign-in" and looks_like_consent(detail):
                detail += f" (an admin of the tenant grants consent at {tenant.admin_consent_url})"
            yield replace(check, name=f"{check.name} ({answer.name})", detail=detail)


def _sign_in_checks(settings: Settings, probe: SignInProbe) -> Iterator[Check]:
    """Sign-in, then (only when it worked) one Graph request."""
    tenant = settings.require_tenant()

    def sign_in_text() -> str:
        probe.sign_in()
        host = urlsplit(tenant.endpoints[0]).hostname
        return f"token for app {tenant.client_id} from {host}"

    sign_in = attempt("sign-in", sign_in_text)
    yield sign_in
    if sign_in.failed:
        yield from _skipped_permissions(settings)
        return
    yield attempt(
        "Graph permission",
        lambda: (
            "ServiceHealth.Read.All works (read the health of "
            f"{counted(probe.count_services(), 'service')})"
        ),
    )
    if settings.messages is not None:
        # Its own permission and admin consent: a 403 here names ServiceMessage.Read.All.
        yield attempt(MESSAGES_CHECK, lambda: _messages_readable(probe))


def _messages_readable(probe: SignInProbe) -> str:
    probe.peek_messages()
    return "ServiceMessage.Read.All works (read the Message center)"


def _skipped_permissions(settings: Settings) -> Iterator[Check]:
    yield skipped("Graph permission", "needs a sign-in")
    if settings.messages is not None:
        yield skipped(MESSAGES_CHECK, "needs a sign-in")


def credential_checks(
    settings: Settings,
    read_certificate: Callable[[Path, str | None], CertificateFacts],
    now: datetime,
) -> list[Check]:
    """A client secret is set, or the certificate loads, is valid now and not about to expire.

    A certificate file others have access to adds a warning: it holds the private key.
    """
    try:
        tenant = settings.require_tenant()
    except ConfigError as error:
        return [Check("credential", Status.FAIL, first_line(error))]
    if tenant.certificate_path is None:
        return [Check("credential", Status.PASS, "client secret is set (its value is not shown)")]
    try:
        info = read_certificate(tenant.certificate_path, tenant.certificate_password)
    except ConfigError as error:
        return [Check("certificate", Status.FAIL, first_line(error))]
    checks = [
        certificate_check(
            info.subject, info.thumbprint, info.not_after, now, not_before=info.not_before
        )
    ]
    exposed = private_key_check(tenant.certificate_path)
    if exposed is not None:
        checks.append(exposed)
    return checks


def private_key_check(path: Path) -> Check | None:
    """A warning when users other than the owner may read the file holding the private key."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return None  # the certificate was just read from it: nothing more to say
    if not mode & 0o077:
        return None
    return Check(
        "private key",
        Status.WARN,
        f"{path} holds the app's private key and users other than its owner have access to it "
        f"(mode {mode:03o}): run chmod 600 {path}",
    )


def attempt(name: str, action: Callable[[], str]) -> Check:
    """Run ``action``: its text when it works, the error (which says the fix) when not."""
    try:
        return Check(name, Status.PASS, action())
    except M365WatchError as error:
        return Check(name, Status.FAIL, first_line(error))


def skipped(name: str, why: str) -> Check:
    """A check that could not run because an earlier one failed."""
    return Check(name, Status.SKIP, f"not checked: {why}")


def certificate_check(
    subject: str,
    thumbprint: str,
    not_after: datetime,
    now: datetime,
    *,
    not_before: datetime | None = None,
) -> Check:
    """Not valid yet or expired: fail; within 30 days: warn; the expiry date is always shown."""
    left = not_after - now
    facts = f"{subject}, thumbprint {thumbprint}"
    renew = (
        "create a new certificate, upload it under Certificates & secrets in the app "
        "registration and point certificate_path at it"
    )
    if not_before is not None and not_before > now:
        return Check(
            "certificate",
            Status.FAIL,
            f"{facts}, not valid until {format_time(not_before)} (in {_days(not_before - now)}): "
            "Entra ID refuses it before then; wait, or create a certificate valid from today, "
            "upload it under Certificates & secrets in the app registration and point "
            "certificate_path at it",
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


def state_folder_check(
    state_path: Path,
    *,
    write_private_file: Callable[[Path, bytes], None],
    load_state: Callable[[Path], object],
    free_space: Callable[[Path], int],
) -> Check:
    """The state folder takes a real write of a few KB, has room, is private; the state loads."""
    folder = state_path.parent
    probe = folder / f".m365watch-doctor-{os.getpid()}.tmp"
    try:
        write_private_file(probe, b"\0" * PROBE_BYTES)
        probe.unlink()
    except (OSError, StateError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            free = _free_text(free_space, folder)
            return Check(
                "state folder",
                Status.FAIL,
                f"cannot write in {folder} ({reason}{'; ' + free if free else ''}): free space "
                "on that filesystem (or raise the quota), or set [state] path elsewhere",
            )
        return Check(
            "state folder",
            Status.FAIL,
            f"cannot write in {folder} ({reason}): create it, owned by the user that runs "
            "m365watch, mode 700 (under systemd, StateDirectory= does this)",
        )
    try:
        load_state(state_path)
    except StateError as error:
        return Check("state folder", Status.FAIL, first_line(error))
    try:
        free_bytes: int | None = free_space(folder)
    except OSError:
        free_bytes = None
    room = "free space unknown" if free_bytes is None else f"{format_size(free_bytes)} free"
    if free_bytes is not None and free_bytes < LOW_FREE_SPACE:
        return Check(
            "state folder",
            Status.WARN,
            f"{folder} is writable but only {room} is left (less than "
            f"{format_size(LOW_FREE_SPACE)}): free space on that filesystem before the state "
            "can no longer be saved",
        )
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        return Check(
            "state folder",
            Status.WARN,
            f"{folder} is writable ({room}) but other users can enter it (mode {mode:03o}): "
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
    return Check("state folder", Status.PASS, f"{folder} is writable ({room}) and private; {found}")


def _free_text(free_space: Callable[[Path], int], folder: Path) -> str:
    """``0 B free`` for the nearest existing folder, or nothing when even that cannot be read."""
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            try:
                return f"{format_size(free_space(candidate))} free"
            except OSError:
                return ""
    return ""


def format_size(size: int) -> str:
    """Bytes for people, in binary units as ``df -h`` counts them: ``512 B``, ``48.0 MiB``."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


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


def counted(number: int, noun: str) -> str:
    """``1 service``, ``2 services``: a number with its noun."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _days(delta: timedelta) -> str:
    days = delta.days
    return "less than a day" if days < 1 else f"{days} day{'s' if days != 1 else ''}"


def _duration(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} minutes"
