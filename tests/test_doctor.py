"""``m365watch doctor``: one line per check with ✓/✗ (or ! for a warning) and the fix."""

from __future__ import annotations

import email.utils
import errno
import os
import re
import stat
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import rsa

from m365watch import files
from m365watch.config import load_settings
from m365watch.doctor import (
    DoctorAdapters,
    Status,
    certificate_check,
    clock_check,
    run_checks,
    state_folder_check,
)
from m365watch.settings import Settings
from m365watch.wiring import build_tokens
from tests.helpers import load_json
from tests.identity import (
    CLIENT_ID,
    GLOBAL_HOST,
    TENANT,
    aad_error,
    cert_pem,
    discovery_url,
    key_pem,
    make_certificate,
    mock_identity,
    openid_configuration,
    token_url,
)
from tests.installation import SENTINEL
from tests.json_hooks import GRAPH_ISSUES, invoke, write_config

HEALTH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/healthOverviews"
LOGIN = "https://login.microsoftonline.com"
SERVICES = [
    {"id": "Exchange", "service": "Exchange Online", "status": "serviceOperational"},
    {"id": "microsoftteams", "service": "Microsoft Teams", "status": "serviceDegradation"},
]


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when.astimezone(timezone.utc), usegmt=True)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def graph_answers(rsps: responses.RequestsMock, *, skew: timedelta = timedelta(0)) -> None:
    rsps.get(
        HEALTH,
        json={"value": SERVICES},
        headers={"Date": http_date(datetime.now(timezone.utc) - skew)},
    )


def graph_calls(rsps: responses.RequestsMock) -> int:
    return sum(1 for c in rsps.calls if c.request.url and c.request.url.startswith(HEALTH))


def lines(output: str) -> list[str]:
    return output.splitlines()


def test_everything_passes(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    config = write_config(tmp_path)
    mock_identity(rsps)
    graph_answers(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert out[:-3] == [
        f"✓ configuration: {config} is valid (3 notification targets)",
        "✓ credential: client secret is set (its value is not shown)",
        f"✓ sign-in: token for app {CLIENT_ID} from login.microsoftonline.com",
        "✓ Graph permission: ServiceHealth.Read.All works (read the health of 2 services)",
        "✓ notify 'all': json://… accepted by Apprise",
        "✓ notify 'incidents': json://… accepted by Apprise",
        "✓ notify 'watch': json://… accepted by Apprise",
    ]
    assert re.fullmatch(
        re.escape(f"✓ state folder: {tmp_path / 'state'} is writable (")
        + r"[0-9.]+ (B|KiB|MiB|GiB|TiB) free\) and private; no state yet",
        out[-3],
    ), out[-3]
    assert re.fullmatch(r"✓ clock: within [01] s of graph\.microsoft\.com", out[-2])
    assert out[-1] == "All checks passed."
    assert graph_calls(rsps) == 1
    # Doctor changes nothing: no state, no health file, not even MSAL's caches.
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == []


def test_what_doctor_writes_is_the_state_folder_and_a_probe_it_removes(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path)
    folder = tmp_path / "state"
    mock_identity(rsps)
    graph_answers(rsps)
    assert invoke(config, "doctor").exit_code == 0
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # created: the README says so
    assert list(folder.iterdir()) == []

    # An installation in use: doctor leaves its state, health file and caches as they were.
    rsps.get(GRAPH_ISSUES, json={"value": []})
    assert invoke(config, "poll").exit_code == 0
    rsps.replace(responses.GET, GRAPH_ISSUES, status=403, json={})
    assert invoke(config, "poll").exit_code == 1  # writes the health file
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert {"state.json", "state.health.json", "msal_token_cache.json"} <= before.keys()
    assert invoke(config, "doctor").exit_code == 0
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before


def test_sign_in_is_checked_afresh_not_from_a_cached_token(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path)
    mock_identity(rsps)
    graph_answers(rsps)
    assert invoke(config, "doctor").exit_code == 0
    # A poll cached a token; then the secret was rotated and the old one no longer works.
    tokens = build_tokens(load_settings(config, env={"M365WATCH_CLIENT_SECRET": SENTINEL}))
    mock_identity(rsps)
    tokens.get_token()
    rsps.reset()
    rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    refused = aad_error(7000215, "invalid_client", "Invalid client secret provided.")
    rsps.post(token_url(GLOBAL_HOST), json=refused, status=401)
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert "✗ sign-in: " in result.output


def test_invalid_config_is_the_only_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[tenant]\ntenant_id = 'nope'\n")
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert lines(result.output) == [
        "✗ configuration: tenant.tenant_id must be the directory (tenant) GUID or a domain such "
        "as contoso.onmicrosoft.com",
        "1 check(s) failed: fix them and run m365watch doctor again.",
    ]


def test_wrong_secret_fails_sign_in_and_skips_graph(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path)
    mock_identity(
        rsps,
        token_status=401,
        token_body=aad_error(7000215, "invalid_client", "Invalid client secret provided."),
    )
    graph_answers(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    out = lines(result.output)
    assert out[2] == (
        "✗ sign-in: sign-in to login.microsoftonline.com failed (AADSTS7000215): the client "
        "secret is wrong; copy the secret's Value (not its ID) from the app registration"
    )
    assert out[3] == "- Graph permission: not checked: needs a sign-in"
    assert graph_calls(rsps) == 0
    assert SENTINEL not in result.output


@pytest.mark.parametrize(
    ("status", "detail"),
    [
        (
            403,
            "✗ Graph permission: Graph answered 403 Forbidden: grant the application permission "
            "ServiceHealth.Read.All to the app registration and have an admin grant consent",
        ),
        (
            503,
            "✗ Graph permission: Microsoft Graph is unavailable (503 Service Unavailable) after 1 "
            "attempts; run again later",
        ),
    ],
    ids=["403", "503"],
)
def test_graph_failure_is_one_request_and_one_line(
    tmp_path: Path, rsps: responses.RequestsMock, status: int, detail: str
) -> None:
    config = write_config(tmp_path)
    mock_identity(rsps)
    rsps.get(HEALTH, status=status, json={"error": {"code": "x", "message": "no"}})
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert lines(result.output)[3] == detail
    assert graph_calls(rsps) == 1  # doctor never retries: one request, as promised


def test_rejected_url_missing_watcher_and_readable_literal_secret(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [tenant]
            tenant_id = "{TENANT}"
            client_id = "{CLIENT_ID}"
            client_secret = "{SENTINEL}"

            [state]
            path = "{tmp_path / "state" / "state.json"}"

            [[notify]]
            name = "ops"
            urls = ["json://hooks.example/ops", "nosuchservice://token@host"]
            """
        )
    )
    config.chmod(0o644)
    mock_identity(rsps)
    graph_answers(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    out = lines(result.output)
    assert out[1] == (
        f"! configuration: {config} holds a literal client secret and other users can read it: "
        f'run chmod 600 {config}, or use client_secret = "${{M365WATCH_CLIENT_SECRET}}"'
    )
    assert "✓ notify 'ops' URL 1: json://… accepted by Apprise" in out
    assert (
        "✗ notify 'ops' URL 2: Apprise does not accept this nosuchservice://… URL: check it "
        "against the Apprise documentation for that service"
    ) in out
    assert (
        '! self-monitoring: no target has "watcher" in its events: add it to one to hear when '
        "m365watch itself cannot reach Microsoft Graph"
    ) in out
    assert out[-1] == "1 check(s) failed (2 warnings): fix them and run m365watch doctor again."
    assert SENTINEL not in result.output
    assert "token@host" not in result.output


def test_state_folder_problems(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(rsps)
    graph_answers(rsps)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace(str(tmp_path / "state"), str(blocker)))
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert f"✗ state folder: cannot write in {blocker} (" in result.output
    assert "mode 700 (under systemd, StateDirectory= does this)" in result.output

    config = write_config(tmp_path)
    state = tmp_path / "state" / "state.json"
    state.parent.mkdir(mode=0o700)
    state.write_text('{"meta": ')
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert f"✗ state folder: state file {state} cannot be used: it is not valid JSON" in (
        result.output
    )
    assert state.read_text() == '{"meta": '

    state.unlink()
    state.parent.chmod(0o755)
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    assert re.search(
        re.escape(f"! state folder: {state.parent} is writable (")
        + r"[0-9.]+ \w+ free"
        + re.escape(f") but other users can enter it (mode 755): run chmod 700 {state.parent}"),
        result.output,
    ), result.output
    assert lines(result.output)[-1] == "All checks passed (1 warning)."


def test_clock_far_off_fails(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    config = write_config(tmp_path)
    mock_identity(rsps)
    graph_answers(rsps, skew=timedelta(minutes=10))
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert lines(result.output)[-2].startswith(
        "✗ clock: 10 minutes ahead of graph.microsoft.com; sign-in fails beyond 5 minutes: "
        "enable time synchronisation (timedatectl set-ntp true, or chrony/ntpd)"
    )


# -- certificates ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_config(
    tmp_path: Path,
    key: Any,
    not_after: datetime,
    *,
    not_before: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc),
    mode: int = 0o600,
) -> Path:
    cert = make_certificate(key, "m365watch", not_after, not_before)
    pem = tmp_path / "app.pem"
    pem.write_bytes(key_pem(key) + cert_pem(cert))
    pem.chmod(mode)
    config = write_config(tmp_path)
    config.write_text(
        config.read_text().replace(
            'client_secret = "${M365WATCH_CLIENT_SECRET}"', f'certificate_path = "{pem}"'
        )
    )
    return config


def test_certificate_expiring_within_30_days_warns_and_passes(
    tmp_path: Path, rsps: responses.RequestsMock, key: Any
) -> None:
    not_after = datetime.now(timezone.utc) + timedelta(days=10, hours=2)
    config = certificate_config(tmp_path, key, not_after)
    mock_identity(rsps)
    graph_answers(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    line = lines(result.output)[1]
    assert re.fullmatch(
        r"! certificate: CN=m365watch, thumbprint [0-9A-F]{40}, expires on "
        + re.escape(not_after.strftime("%Y-%m-%d %H:%M UTC"))
        + r", in 10 days: create a new certificate, upload it under Certificates & secrets "
        r"in the app registration and point certificate_path at it soon",
        line,
    ), line
    assert "✓ sign-in: token for app" in result.output
    assert lines(result.output)[-1] == "All checks passed (1 warning)."


def test_expired_certificate_fails_and_skips_sign_in(
    tmp_path: Path, rsps: responses.RequestsMock, key: Any
) -> None:
    config = certificate_config(tmp_path, key, datetime(2025, 3, 1, tzinfo=timezone.utc))
    mock_identity(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    out = lines(result.output)
    assert out[1].startswith("✗ certificate: CN=m365watch, thumbprint ")
    assert ", expired on 2025-03-01 00:00 UTC: create a new certificate" in out[1]
    assert out[2:4] == [
        "- sign-in: not checked: needs a working credential",
        "- Graph permission: not checked: needs a sign-in",
    ]
    assert not any(c.request.url == token_url(LOGIN) for c in rsps.calls)


def test_certificate_not_valid_yet_fails_with_its_start_date(
    tmp_path: Path, rsps: responses.RequestsMock, key: Any
) -> None:
    not_before = datetime.now(timezone.utc) + timedelta(days=10, hours=2)
    config = certificate_config(
        tmp_path, key, not_before + timedelta(days=365), not_before=not_before
    )
    mock_identity(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 1, result.output
    out = lines(result.output)
    assert re.fullmatch(
        r"✗ certificate: CN=m365watch, thumbprint [0-9A-F]{40}, not valid until "
        + re.escape(not_before.strftime("%Y-%m-%d %H:%M UTC"))
        + r" \(in 10 days\): Entra ID refuses it before then; wait, or create a certificate "
        r"valid from today, upload it under Certificates & secrets in the app registration and "
        r"point certificate_path at it",
        out[1],
    ), out[1]
    assert out[2] == "- sign-in: not checked: needs a working credential"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644], ids=["group", "others", "world"])
def test_private_key_readable_by_others_warns_with_the_chmod(
    tmp_path: Path, rsps: responses.RequestsMock, key: Any, mode: int
) -> None:
    config = certificate_config(
        tmp_path, key, datetime.now(timezone.utc) + timedelta(days=400), mode=mode
    )
    mock_identity(rsps)
    graph_answers(rsps)
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert out[1].startswith("✓ certificate: CN=m365watch, thumbprint ")
    pem = tmp_path / "app.pem"
    assert out[2] == (
        f"! private key: {pem} holds the app's private key and users other than its owner "
        f"have access to it (mode {mode:03o}): run chmod 600 {pem}"
    )
    assert "✓ sign-in: token for app" in result.output
    assert out[-1] == "All checks passed (1 warning)."


def test_missing_certificate_file(tmp_path: Path, rsps: responses.RequestsMock, key: Any) -> None:
    config = certificate_config(tmp_path, key, datetime(2030, 1, 1, tzinfo=timezone.utc))
    (tmp_path / "app.pem").unlink()
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert lines(result.output)[1] == (
        f"✗ certificate: cannot read certificate file {tmp_path / 'app.pem'}: "
        "No such file or directory"
    )


# -- the judgements themselves ----------------------------------------------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)
GIB = 1024**3


def no_state(path: Path) -> None:
    return None


def test_state_folder_probe_is_a_real_write_of_a_few_kilobytes(tmp_path: Path) -> None:
    written: list[int] = []

    def writer(path: Path, data: bytes) -> None:
        written.append(len(data))
        files.write_private_file(path, data)

    state = tmp_path / "state" / "state.json"
    check = state_folder_check(
        state, write_private_file=writer, load_state=no_state, free_space=lambda f: 3 * GIB
    )
    assert check.status is Status.PASS, check
    assert check.detail == f"{state.parent} is writable (3.0 GiB free) and private; no state yet"
    # An empty probe file needs no data block: it is created even on a full disk.
    assert written and written[0] >= 4096
    assert list(state.parent.iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["disk-full", "quota-exceeded"])
def test_state_folder_on_a_full_disk_fails_and_says_so(tmp_path: Path, code: int) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        if data:
            raise OSError(code, os.strerror(code))
        files.write_private_file(path, data)  # an empty file still fits (no data block)

    state = tmp_path / "state" / "state.json"
    check = state_folder_check(
        state, write_private_file=full_disk, load_state=no_state, free_space=lambda f: 0
    )
    assert check.status is Status.FAIL
    assert check.detail == (
        f"cannot write in {state.parent} ({os.strerror(code)}; 0 B free): free space on that "
        "filesystem (or raise the quota), or set [state] path elsewhere"
    )


@pytest.mark.parametrize(
    ("free", "status", "text"),
    [
        (
            49 * 1024**2,
            Status.WARN,
            "is writable but only 49.0 MiB free is left (less than 50.0 MiB)",
        ),
        (50 * 1024**2, Status.PASS, "is writable (50.0 MiB free) and private"),
        (1536, Status.WARN, "only 1.5 KiB free is left"),
    ],
    ids=["under-50-MiB", "50-MiB", "almost-nothing"],
)
def test_state_folder_warns_when_free_space_is_low(
    tmp_path: Path, free: int, status: Status, text: str
) -> None:
    state = tmp_path / "state" / "state.json"
    check = state_folder_check(
        state,
        write_private_file=files.write_private_file,
        load_state=no_state,
        free_space=lambda folder: free,
    )
    assert check.status is status
    assert text in check.detail


@pytest.mark.parametrize(
    ("not_before", "status", "text"),
    [
        (
            NOW + timedelta(days=10),
            Status.FAIL,
            "not valid until 2026-11-30 12:00 UTC (in 10 days)",
        ),
        (NOW + timedelta(minutes=5), Status.FAIL, "(in less than a day)"),
        (NOW, Status.PASS, "valid until 2027-12-25 12:00 UTC"),
    ],
    ids=["in-10-days", "in-minutes", "from-now"],
)
def test_certificate_not_valid_yet(not_before: datetime, status: Status, text: str) -> None:
    not_after = NOW + timedelta(days=400)
    check = certificate_check("CN=m365watch", "AB" * 20, not_after, NOW, not_before=not_before)
    assert check.status is status
    assert text in check.detail


@pytest.mark.parametrize(
    ("not_after", "status", "text"),
    [
        (NOW + timedelta(days=400), Status.PASS, "valid until 2027-12-25 12:00 UTC (400 days)"),
        (NOW + timedelta(days=31), Status.PASS, "(31 days)"),
        (NOW + timedelta(days=30), Status.WARN, "in 30 days"),
        (NOW + timedelta(hours=3), Status.WARN, "in less than a day"),
        (NOW, Status.FAIL, "expired on 2026-11-20 12:00 UTC"),
    ],
    ids=["far", "31-days", "30-days", "hours", "now"],
)
def test_certificate_expiry(not_after: datetime, status: Status, text: str) -> None:
    check = certificate_check("CN=m365watch", "AB" * 20, not_after, NOW)
    assert check.status is status
    assert text in check.detail


@pytest.mark.parametrize(
    ("local", "server", "status", "text"),
    [
        (NOW, NOW - timedelta(seconds=3), Status.PASS, "within 3 s of login.example"),
        (NOW, NOW + timedelta(seconds=90), Status.WARN, "90 s behind login.example"),
        (NOW, NOW - timedelta(minutes=7), Status.FAIL, "7 minutes ahead of login.example"),
        (datetime(1970, 1, 1, tzinfo=timezone.utc), None, Status.FAIL, "the clock says 1970"),
        (NOW, None, Status.SKIP, "not checked: no answer from Microsoft"),
    ],
    ids=["close", "minute-and-a-half", "far", "never-set", "no-answer"],
)
def test_clock(local: datetime, server: datetime | None, status: Status, text: str) -> None:
    check = clock_check(local, server, "login.example")
    assert check.status is status
    assert text in check.detail


def test_a_terminal_without_check_marks_gets_words(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text(f'[state]\npath = "{tmp_path / "state" / "state.json"}"\n')
    done = subprocess.run(
        [sys.executable, "-m", "m365watch", "-c", str(config), "doctor"],
        env={**os.environ, "PYTHONIOENCODING": "latin-1"},
        capture_output=True,
        cwd=Path(__file__).resolve().parents[1],
        check=False,
    )
    assert done.returncode == 1, done.stderr
    out = done.stdout.decode("latin-1").splitlines()
    assert out[0] == f"OK configuration: {config} is valid (0 notification targets)"
    assert out[1].startswith("FAIL credential: ")


def test_the_checks_run_on_any_adapters_a_missing_tenant_skips_sign_in(tmp_path: Path) -> None:
    # The use case needs no real adapter: doctor.py imports none (test_architecture).
    config = tmp_path / "config.toml"
    settings = Settings(tenant=None, state_path=tmp_path / "state" / "state.json", source=config)

    def no_connection(settings: Settings) -> Any:
        raise AssertionError("sign-in must not be tried without a working credential")

    adapters = DoctorAdapters(
        load_settings=lambda path: settings,
        read_certificate=lambda path, password: pytest.fail("no certificate is configured"),
        connect=no_connection,
        url_accepted=lambda url: True,
        write_private_file=files.write_private_file,
        load_state=lambda path: None,
        now=lambda: NOW,
        free_space=lambda folder: 10 * GIB,
    )
    checks = [(check.status, check.name) for check in run_checks(config, adapters)]
    assert checks == [
        (Status.PASS, "configuration"),
        (Status.FAIL, "credential"),
        (Status.SKIP, "sign-in"),
        (Status.SKIP, "Graph permission"),
        (Status.WARN, "notifications"),
        (Status.PASS, "state folder"),
        (Status.SKIP, "clock"),
    ]


# -- the Message center's permission (only with [messages]) ----------------------------------

MESSAGES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/messages"


def messages_calls(rsps: responses.RequestsMock) -> list[str]:
    return [
        c.request.url for c in rsps.calls if c.request.url and c.request.url.startswith(MESSAGES)
    ]


def test_with_messages_doctor_reads_one_post_and_says_the_permission_works(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path, extra="[messages]\n")
    mock_identity(rsps)
    graph_answers(rsps)
    post = load_json("cli-microsoft365-message-list.json")["value"][0]
    rsps.get(MESSAGES, json={"value": [post], "@odata.nextLink": f"{MESSAGES}?$skiptoken=1"})
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    out = lines(result.output)
    assert out[3:5] == [
        "✓ Graph permission: ServiceHealth.Read.All works (read the health of 2 services)",
        "✓ Message center permission: ServiceMessage.Read.All works (read the Message center)",
    ]
    # One request for one post: the next page is never asked for.
    assert [unquote(u) for u in messages_calls(rsps)] == [f"{MESSAGES}?$top=1"]


def test_a_403_on_messages_names_the_permission_and_admin_consent(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path, extra="[messages]\n")
    mock_identity(rsps)
    graph_answers(rsps)
    rsps.get(MESSAGES, status=403, json={"error": {"code": "Forbidden", "message": "no"}})
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    out = lines(result.output)
    assert out[3].startswith("✓ Graph permission: ServiceHealth.Read.All works")
    assert out[4] == (
        "✗ Message center permission: Graph answered 403 Forbidden: grant the application "
        "permission ServiceMessage.Read.All to the app registration and have an admin grant "
        "consent"
    )
    assert len(messages_calls(rsps)) == 1  # never retried
    assert out[-1] == "1 check(s) failed: fix them and run m365watch doctor again."


def test_without_messages_there_is_no_such_check_and_no_request(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path)
    mock_identity(rsps)
    graph_answers(rsps)
    rsps.get(MESSAGES, status=403, json={})
    result = invoke(config, "doctor")
    assert result.exit_code == 0, result.output
    assert "Message center" not in result.output
    assert messages_calls(rsps) == []


def test_a_failed_sign_in_skips_the_messages_check_too(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = write_config(tmp_path, extra="[messages]\n")
    mock_identity(
        rsps,
        token_status=401,
        token_body=aad_error(7000215, "invalid_client", "Invalid client secret provided."),
    )
    result = invoke(config, "doctor")
    assert result.exit_code == 1
    assert lines(result.output)[3:5] == [
        "- Graph permission: not checked: needs a sign-in",
        "- Message center permission: not checked: needs a sign-in",
    ]
    assert messages_calls(rsps) == []
