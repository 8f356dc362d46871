"""`m365watch status` and `show` end to end: real MSAL, GraphClient and TinyDB state files.

Graph and the identity platform are mocked with `responses`; every other part is
real. The clock is fixed through ``m365watch.wiring.utc_now``.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result
from responses import matchers

from m365watch import cli, wiring
from m365watch.query import StatusQuery, build_status
from m365watch.tables import render_status
from tests.health_samples import (
    CR275975,
    FM298724,
    ISSUES,
    NOW,
    OVERVIEWS,
    open_issue,
    stamp,
    write_state,
)
from tests.helpers import HEAVY, probe

TENANT = "contoso.onmicrosoft.com"
TENANT_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
LONG_TITLE = (
    "Users may be unable to send or receive email through Exchange Online when they use "
    "Outlook on the web, Outlook for iOS and Android, or any client connecting over EWS"
)


# What `status` prints for the degraded sample, live or (after its note) from the cache.
DEGRADED_TABLES = textwrap.dedent(
    """\
        Services with problems
        Service               Health                 Incidents   Advisories
        ───────────────────────────────────────────────────────────────────
        Microsoft Teams       Service interruption           1            0
        Exchange Online       Service degradation            1            1
        Microsoft 365 suite   brandNewStatus                 0            1

        Open issues (4)
        ID          Issue: type · service · status · last update
        ──────────────────────────────────────────────────────────────────────────
        TM300100    Incident · Microsoft Teams · Service interruption · 30 min ago
                    Users can't join meetings
        EX1256020   Incident · Exchange Online · Service degradation · 5 min ago
                    Users can't send email
        EX1256100   Advisory · Exchange Online · Investigating · 30 min ago
                    Some messages are delayed
        MO226784    Advisory · Microsoft 365 suite · brandNewStatus · 30 min ago
                    Usage reports show old data
    """
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [tenant]
            tenant_id = "{TENANT}"
            client_id = "11111111-2222-3333-4444-555555555555"
            client_secret = "${{M365WATCH_TEST_SECRET}}"

            [state]
            path = "state/state.json"
            """
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: NOW)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    # Nothing registered means any request at all fails the test.
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def mock_sign_in(rsps: responses.RequestsMock) -> None:
    """The two requests MSAL makes for an app-only token (discovery, then the token)."""
    base = f"{LOGIN}/{TENANT_GUID}"
    rsps.get(
        f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
        json={
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        },
    )
    rsps.post(
        f"{base}/oauth2/v2.0/token",
        json={"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0.test.token"},
    )


def mock_status(
    rsps: responses.RequestsMock,
    overviews: list[Any],
    issues: list[Any],
    *,
    open_only: bool = True,
) -> None:
    mock_sign_in(rsps)
    rsps.get(f"{GRAPH}/healthOverviews", json={"value": overviews})
    query = {"$filter": "isResolved eq false"} if open_only else {}
    rsps.get(
        f"{GRAPH}/issues",
        json={"value": [i for i in issues if not (open_only and i["isResolved"])]},
        match=[matchers.query_param_matcher(query)],
    )


def run(config: Path, *args: str, columns: int = 80) -> Result:
    env = {"COLUMNS": str(columns), "M365WATCH_TEST_SECRET": "not-a-real-secret"}
    return CliRunner().invoke(cli.main, ["-c", str(config), *args], env=env)


def state_file(config: Path) -> Path:
    return config.parent / "state" / "state.json"


# -- status, live -------------------------------------------------------------------------------


def test_status_all_healthy(config: Path, rsps: responses.RequestsMock) -> None:
    overviews = [{**o, "status": "serviceOperational"} for o in OVERVIEWS]
    mock_status(rsps, overviews, [CR275975, FM298724])
    result = run(config, "status")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "All services healthy.\n", "")


def test_status_several_degraded_services(config: Path, rsps: responses.RequestsMock) -> None:
    mock_status(rsps, OVERVIEWS, ISSUES)
    result = run(config, "status")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == DEGRADED_TABLES


def test_status_in_a_wide_terminal_gives_titles_a_column(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_status(rsps, OVERVIEWS, ISSUES, open_only=False)
    result = run(config, "status", "--all", "--service", "exchange online", columns=110)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == textwrap.dedent(
        """\
        Services with problems
        Service           Health                Incidents   Advisories
        ──────────────────────────────────────────────────────────────
        Exchange Online   Service degradation           1            1

        Issues, open and resolved (2)
        ID          Type       Service           Status                Title                          Updated
        ─────────────────────────────────────────────────────────────────────────────────────────────────────
        EX1256020   Incident   Exchange Online   Service degradation   Users can't send email       5 min ago
        EX1256100   Advisory   Exchange Online   Investigating         Some messages are delayed   30 min ago
        """
    )


def test_an_operational_service_listed_for_its_open_advisory_says_so(
    config: Path, rsps: responses.RequestsMock
) -> None:
    overviews = [
        {**o, "status": "serviceOperational"} if o["id"] == "OSDPPlatform" else o for o in OVERVIEWS
    ]
    mock_status(rsps, overviews, ISSUES)
    result = run(config, "status", "--classification", "advisory")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(
        textwrap.dedent(
            """\
            Services with problems
            Service               Health                       Incidents   Advisories
            ─────────────────────────────────────────────────────────────────────────
            Microsoft Teams       Service interruption                 1            0
            Exchange Online       Service degradation                  1            1
            Microsoft 365 suite   Operational, advisory open           0            1

            Open advisories (2)
            """
        )
    )
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_very_long_titles_are_shortened_to_80_columns(
    config: Path, rsps: responses.RequestsMock
) -> None:
    long = open_issue("EX1300000", "Exchange Online", "restoringService", "incident")
    mock_status(rsps, OVERVIEWS, [{**long, "title": LONG_TITLE}, *ISSUES])
    result = run(config, "status")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    title_line = next(line for line in lines if "Users may be unable" in line)
    assert title_line.endswith("…")
    assert title_line.strip()[:-1] in LONG_TITLE
    assert len(title_line) == 80


@pytest.mark.parametrize(
    ("args", "open_only", "expected"),
    [
        ((), True, ["TM300100", "EX1256020", "EX1256100", "MO226784"]),
        (
            ("--all",),
            False,
            ["TM300100", "EX1256020", "EX1256100", "MO226784", "FM298724", "CR275975"],
        ),
        (("--service", "EXCHANGE ONLINE"), True, ["EX1256020", "EX1256100"]),
        (
            ("--service", "exchange", "--service", "Microsoft Teams"),
            True,
            ["TM300100", "EX1256020", "EX1256100"],
        ),
        (("--classification", "INCIDENT"), True, ["TM300100", "EX1256020"]),
        (("--classification", "advisory", "--all"), False, ["EX1256100", "MO226784", "CR275975"]),
    ],
    ids=["open", "all", "service-any-case", "service-id-and-name", "incidents", "advisories-all"],
)
def test_status_json_filters(
    config: Path,
    rsps: responses.RequestsMock,
    args: tuple[str, ...],
    open_only: bool,
    expected: list[str],
) -> None:
    mock_status(rsps, OVERVIEWS, ISSUES, open_only=open_only)
    result = run(config, "status", "--json", *args)
    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert [i["id"] for i in data["issues"]] == expected


def test_status_json_contract(config: Path, rsps: responses.RequestsMock) -> None:
    mock_status(rsps, OVERVIEWS, ISSUES)
    result = run(config, "status", "--json")
    data = json.loads(result.stdout)
    assert list(data) == ["generated", "source", "cachedAt", "services", "issues"]
    assert (data["generated"], data["source"], data["cachedAt"]) == (
        "2026-11-20T21:00:00Z",
        "graph",
        None,
    )
    assert data["services"][0] == {
        "id": "DynamicsCRM",
        "service": "Dynamics 365 Apps",
        "status": "serviceOperational",
        "openIncidents": 0,
        "openAdvisories": 0,
    }
    # PascalCase in, camelCase out; unknown values kept as sent.
    assert {s["service"]: s["status"] for s in data["services"]}["Microsoft Teams"] == (
        "serviceInterruption"
    )
    assert {i["id"]: i["status"] for i in data["issues"]} == {
        "TM300100": "serviceInterruption",
        "EX1256020": "serviceDegradation",
        "EX1256100": "investigating",
        "MO226784": "brandNewStatus",
    }
    assert data["issues"][1] == {
        "id": "EX1256020",
        "title": "Users can't send email",
        "service": "Exchange Online",
        "feature": "Other",
        "featureGroup": "Other",
        "classification": "incident",
        "origin": "microsoft",
        "status": "serviceDegradation",
        "isResolved": False,
        "startDateTime": "2021-08-02T14:36:00Z",
        "endDateTime": None,
        "lastModifiedDateTime": "2026-11-20T20:55:00Z",
        "impactDescription": CR275975["impactDescription"],
        "url": "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1256020",
    }


@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
def test_unknown_service_name_is_a_usage_error(
    config: Path, rsps: responses.RequestsMock, cached: bool
) -> None:
    if cached:
        write_state(state_file(config), ISSUES)
    else:
        mock_status(rsps, OVERVIEWS, ISSUES)
    args = ["--cached"] if cached else []
    result = run(config, "status", *args, "--service", "Exchange Onlien")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: --service 'Exchange Onlien' matches no service; the closest: 'Exchange Online'\n"
    )


def test_the_readme_example_finds_teams(config: Path, rsps: responses.RequestsMock) -> None:
    mock_status(rsps, OVERVIEWS, ISSUES)
    result = run(config, "status", "--json", "--service", "Exchange Online", "--service", "teams")
    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert [s["service"] for s in data["services"]] == ["Exchange Online", "Microsoft Teams"]


def test_classification_with_nothing_open(config: Path, rsps: responses.RequestsMock) -> None:
    mock_status(rsps, OVERVIEWS[:1], ISSUES[:1])
    result = run(config, "status", "--classification", "advisory")
    assert result.stdout.endswith("\n\nNo open advisories.\n")


def test_piped_output_has_no_colour_codes(
    config: Path, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    mock_status(rsps, OVERVIEWS, ISSUES)
    result = run(config, "status")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout


def test_terminal_output_is_coloured(
    config: Path, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_output_style", lambda: (80, True))
    mock_status(rsps, OVERVIEWS, ISSUES)
    env = {"M365WATCH_TEST_SECRET": "x", "TERM": "xterm-256color"}
    result = CliRunner().invoke(cli.main, ["-c", str(config), "status"], env=env, color=True)
    assert "\x1b[1;31mService interruption\x1b[0m" in result.stdout


class _Terminal:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "no_color", "expected"),
    [(True, None, True), (True, "1", False), (False, None, False)],
    ids=["terminal", "terminal-NO_COLOR", "pipe"],
)
def test_colour_only_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, tty: bool, no_color: str | None, expected: bool
) -> None:
    monkeypatch.setattr(sys, "stdout", _Terminal(tty))
    monkeypatch.setenv("COLUMNS", "132")
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    assert cli._output_style() == (132, expected)


def test_render_without_colour_has_no_escape_codes() -> None:
    from m365watch.models import Issue, ServiceHealth

    report = build_status(
        [ServiceHealth.from_graph(o) for o in OVERVIEWS],
        [Issue.from_graph(i) for i in ISSUES],
        StatusQuery(),
        now=NOW,
        source="graph",
    )
    plain = render_status(report, now=NOW, width=80, color=False)
    coloured = render_status(report, now=NOW, width=80, color=True)
    assert "\x1b" not in plain
    assert "\x1b[" in coloured


def test_text_from_microsoft_is_not_rich_markup(config: Path, rsps: responses.RequestsMock) -> None:
    tricky = {**ISSUES[0], "title": "[bold red]Fake[/] outage :warning:"}
    mock_status(rsps, OVERVIEWS, [tricky])
    result = run(config, "status")
    assert "[bold red]Fake[/] outage :warning:" in result.stdout


def test_status_without_tenant_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[state]\npath = "state.json"\n')
    result = run(config, "status")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {config} has no [tenant] table")


# -- status --cached ----------------------------------------------------------------------------


def test_cached_status_without_state_says_run_poll_first(
    config: Path, rsps: responses.RequestsMock
) -> None:
    result = run(config, "status", "--cached")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: there is no local state yet ({state_file(config)}): run `m365watch poll` "
        "first, or leave out --cached\n"
    )


def test_cached_status(config: Path, rsps: responses.RequestsMock) -> None:
    write_state(state_file(config), ISSUES)
    result = run(config, "status", "--cached")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        "From the local state, as of the last poll 12 min ago (2026-11-20 20:48 UTC).\n\n"
        + DEGRADED_TABLES
    )


def test_cached_status_all_healthy(config: Path, rsps: responses.RequestsMock) -> None:
    write_state(state_file(config), [CR275975, FM298724], age_minutes=180)
    result = run(config, "status", "--cached")
    assert result.stdout == (
        "From the local state, as of the last poll 3 h ago (2026-11-20 18:00 UTC).\n"
        "\n"
        "All services healthy.\n"
    )


@pytest.mark.parametrize("quiet", [False, True], ids=["note", "quiet"])
def test_cached_status_json(config: Path, rsps: responses.RequestsMock, quiet: bool) -> None:
    write_state(state_file(config), ISSUES)
    result = run(config, *(["-q"] if quiet else []), "status", "--cached", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["source"], data["cachedAt"]) == ("cache", "2026-11-20T20:48:00Z")
    assert [s["id"] for s in data["services"]] == [None, None, None]
    assert result.stderr == (
        ""
        if quiet
        else "Note: From the local state, as of the last poll 12 min ago (2026-11-20 20:48 UTC).\n"
    )


def test_cached_status_needs_no_tenant(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[state]\npath = "state.json"\n')
    write_state(tmp_path / "state.json", ISSUES)
    result = run(config, "status", "--cached", "--json")
    assert result.exit_code == 0
    assert len(json.loads(result.stdout)["issues"]) == 4


# -- show ----------------------------------------------------------------------------------------


SHOW_ISSUE = open_issue(
    "EX1256020",
    "Exchange Online",
    "ServiceDegradation",
    "Incident",
    title="Users can't send email",
    impactDescription="Users may be unable to send email from Outlook on the web.",
    feature="E-Mail and calendar access",
    featureGroup="E-Mail timely delivery",
    startDateTime=stamp(120),
    lastModifiedDateTime=stamp(5),
    posts=[
        {
            "createdDateTime": stamp(5),
            "postType": "regular",
            "description": {
                "contentType": "html",
                "content": (
                    "<p>Current status: We've rolled back the update; see "
                    '<a href="https://status.cloud.microsoft/">the status page</a>.</p>'
                    "<ul><li>Next update by: 22:00 UTC</li></ul>"
                ),
            },
        },
        {
            "createdDateTime": stamp(110),
            "postType": "quick",
            "description": {
                "contentType": "text",
                "content": "Title: Users can't send email\n\nCurrent status: We're investigating.",
            },
        },
    ],
)


def test_show_live(config: Path, rsps: responses.RequestsMock) -> None:
    mock_sign_in(rsps)
    rsps.get(f"{GRAPH}/issues/EX1256020", json=SHOW_ISSUE)
    result = run(config, "show", "ex1256020")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == textwrap.dedent(
        """\
        EX1256020 · Exchange Online: Service degradation
        Users can't send email

        Classification  Incident
        Status          Service degradation (open)
        Service         Exchange Online
        Feature         E-Mail and calendar access
        Feature group   E-Mail timely delivery
        Origin          microsoft
        Started         2026-11-20 19:00 UTC (2 h ago)
        Last updated    2026-11-20 20:55 UTC (5 min ago)
        Admin center    https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/EX1256020

        Impact
        Users may be unable to send email from Outlook on the web.

        Updates from Microsoft (2 updates, oldest first)

        2026-11-20 19:10 UTC · quick
        Title: Users can't send email

        Current status: We're investigating.

        2026-11-20 20:55 UTC · regular
        Current status: We've rolled back the update; see the status page
        (https://status.cloud.microsoft/).

        - Next update by: 22:00 UTC
        """
    )


def test_show_json(config: Path, rsps: responses.RequestsMock) -> None:
    mock_sign_in(rsps)
    rsps.get(f"{GRAPH}/issues/EX1256020", json=SHOW_ISSUE)
    result = run(config, "show", "EX1256020", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert (data["status"], data["classification"]) == ("serviceDegradation", "incident")
    assert data["posts"] == [
        {
            "createdDateTime": "2026-11-20T19:10:00Z",
            "postType": "quick",
            "text": "Title: Users can't send email\n\nCurrent status: We're investigating.",
        },
        {
            "createdDateTime": "2026-11-20T20:55:00Z",
            "postType": "regular",
            "text": (
                "Current status: We've rolled back the update; see the status page "
                "(https://status.cloud.microsoft/).\n\n- Next update by: 22:00 UTC"
            ),
        },
    ]


def test_show_of_a_missing_id(config: Path, rsps: responses.RequestsMock) -> None:
    mock_sign_in(rsps)
    rsps.get(
        f"{GRAPH}/issues/EX9999999",
        status=404,
        json={"error": {"code": "NotFound", "message": "The requested resource doesn't exist."}},
    )
    result = run(config, "show", "EX9999999")
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == "Error: issue EX9999999 does not exist in this tenant\n"


@pytest.mark.parametrize(
    ("issue_id", "shown"),
    [
        ("../../me", "'../../me'"),
        ("EX1\nsecond line", "'EX1\\nsecond line'"),
        ("\x1b[31mRED", "'\\x1b[31mRED'"),
        ("X" * 100_000, "'" + "X" * 40 + "'…"),
    ],
    ids=["path", "newline", "escape-sequence", "huge"],
)
@pytest.mark.parametrize("cached", [False, True], ids=["live", "cached"])
def test_show_of_something_that_is_not_an_id(
    config: Path, rsps: responses.RequestsMock, issue_id: str, shown: str, cached: bool
) -> None:
    write_state(state_file(config), ISSUES)
    result = run(config, "show", issue_id, *(["--cached"] if cached else []))
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {shown} is not a service health issue id: expected two to four letters "
        "followed by digits, such as EX1256020\n"
    )
    assert len(rsps.calls) == 0


def test_show_cached(config: Path, rsps: responses.RequestsMock) -> None:
    write_state(state_file(config), [SHOW_ISSUE, *ISSUES[1:]], missing=("EX1256020",))
    result = run(config, "show", "EX1256020", "--cached")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith(
        "From the local state, as of the last poll 12 min ago (2026-11-20 20:48 UTC).\n"
        "Not in Microsoft's feed since 2026-11-20 20:00 UTC (1 h ago); this is its last\n"
        "known state.\n"
        "\n"
        "EX1256020 · Exchange Online: Service degradation\n"
    )
    assert "(https://status.cloud.microsoft/)" in result.stdout


def test_show_cached_of_a_missing_id(config: Path, rsps: responses.RequestsMock) -> None:
    write_state(state_file(config), ISSUES)
    result = run(config, "show", "EX9999999", "--cached")
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr.startswith("Error: issue EX9999999 is not in the local state")


def test_show_cached_json_notes_the_age(config: Path, rsps: responses.RequestsMock) -> None:
    write_state(state_file(config), ISSUES)
    result = run(config, "show", "TM300100", "--cached", "--json")
    assert json.loads(result.stdout)["id"] == "TM300100"
    assert result.stderr.startswith("Note: From the local state, as of the last poll 12 min ago")


def test_show_keeps_long_urls_whole(config: Path, rsps: responses.RequestsMock) -> None:
    mock_sign_in(rsps)
    rsps.get(f"{GRAPH}/issues/CR275975", json=CR275975)
    result = run(config, "show", "CR275975", columns=60)
    url = (
        "(https://docs.microsoft.com/en-us/powershell/module/"
        "microsoft.powerapps.administration.powershell/get-dlppolicy?view=pa-ps-latest)."
    )
    assert url in result.stdout
    assert "https://admin.microsoft.com/Adminportal/Home#/servicehealth/:/alerts/CR275975\n" in (
        result.stdout
    )


# -- what the commands load ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        # The state is read with json alone: no TinyDB (nor filelock) for the issue queries.
        (("--help",), []),
        (("status", "--cached"), ["rich"]),
        (("status", "--cached", "--json"), []),
        (("show", "TM300100", "--cached"), ["rich"]),
        (("show", "TM300100", "--cached", "--json"), []),
    ],
    ids=["help", "status-cached", "status-cached-json", "show-cached", "show-cached-json"],
)
def test_cached_commands_load_no_network_library(
    config: Path, args: tuple[str, ...], loaded: list[str]
) -> None:
    write_state(state_file(config), ISSUES)
    config.write_text('[state]\npath = "state/state.json"\n')
    result = probe("-c", str(config), *args, watched=(*HEAVY, "filelock"))
    assert result == {"code": 0, "loaded": loaded}
