"""The query commands with many tenants: status, show, messages, doctor, test-notify.

The real CLI against the loopback Entra ID and Graph (tests/loopback.py): each tenant
signs in at its own path, its token picks its Graph data, and one tenant can be
refused (consent withdrawn) or answer 403 while the others answer.
"""

from __future__ import annotations

import functools
import json
import os
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from m365watch import wiring
from m365watch.cli import main
from m365watch.errors import ConfigError, GraphError, NotFoundError
from m365watch.tenant_query import ask_in_order, ask_tenants
from tests.helpers import load_json
from tests.installation import SENTINEL, T0, issue, reset, tenants_config
from tests.loopback import FakeMicrosoft

NAMES = ("contoso", "fabrikam", "northwind")
CONSENT = "AADSTS7000229: The client application is missing service principal in the tenant."


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: T0)


@pytest.fixture
def world(fake: FakeMicrosoft) -> FakeMicrosoft:
    """contoso has three open issues, fabrikam none, northwind one of contoso's."""
    reset(fake)
    fake.issues[:] = [issue(0), issue(1), issue(2)]
    fake.tenant_issues["fabrikam.onmicrosoft.com"] = []
    fake.tenant_issues["northwind.onmicrosoft.com"] = [issue(2)]
    fake.health = [
        {"id": "Exchange", "service": "Exchange Online", "status": "serviceDegradation"},
        {"id": "microsoftteams", "service": "Microsoft Teams", "status": "serviceOperational"},
    ]
    posts = load_json("cli-microsoft365-message-list.json")["value"]
    fake.messages[:] = posts
    fake.tenant_messages["northwind.onmicrosoft.com"] = posts[-1:]
    return fake


def run(fake: FakeMicrosoft, config: Path, *args: str, columns: int = 80) -> Result:
    env = {
        "M365WATCH_CLIENT_SECRET": SENTINEL,
        "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
        "COLUMNS": str(columns),
    }
    return CliRunner().invoke(main, ["-c", str(config), *args], env=env)


def targets(fake: FakeMicrosoft) -> str:
    return textwrap.dedent(
        f"""\
        [[notify]]
        name = "noc"
        url = "json://{fake.hook_base}/hooks/noc"
        events = ["watcher"]

        [[notify]]
        name = "contoso-teams"
        url = "json://{fake.hook_base}/hooks/contoso-teams"
        tenants = ["contoso"]
        """
    )


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


# -- status -------------------------------------------------------------------------------

STATUS_80 = textwrap.dedent(
    """\
    Services with problems
    Tenant      Service           Health                Incidents   Advisories
    ──────────────────────────────────────────────────────────────────────────
    contoso     Exchange Online   Service degradation           2            1
    fabrikam    Exchange Online   Service degradation           0            0
    northwind   Exchange Online   Service degradation           1            0

    Open issues (4 in 3 tenants)
    Tenant      ID          Issue: type · service · status · last update
    ────────────────────────────────────────────────────────────────────────────
    contoso     EX1200000   Incident · Exchange Online · Investigating · 2 h ago
                            Users can't reach mailboxes (case 0)
    contoso     EX1200001   Advisory · Exchange Online · Investigating · 2 h ago
                            Users can't reach mailboxes (case 1)
    contoso     EX1200002   Incident · Exchange Online · Investigating · 2 h ago
                            Users can't reach mailboxes (case 2)
    northwind   EX1200002   Incident · Exchange Online · Investigating · 2 h ago
                            Users can't reach mailboxes (case 2)
    """
)


def test_status_is_one_table_with_a_tenant_column_within_80_columns(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "status")

    assert done.exit_code == 0, done.output
    assert done.output == STATUS_80
    assert widest(done.output) <= 80


def test_a_failing_tenant_is_one_error_line_the_others_are_shown_and_exit_1(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    world.refused_tenants["fabrikam.onmicrosoft.com"] = CONSENT
    world.tenant_faults["northwind.onmicrosoft.com"] = (403, '{"error": {"code": "Forbidden"}}', {})
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "status")

    assert done.exit_code == 1
    lines = done.output.splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 2
    assert errors[0].startswith(
        "Error: tenant fabrikam: sign-in to 127.0.0.1 failed (AADSTS7000229)"
    )
    assert errors[0].endswith(
        f"(an admin of the tenant grants consent at {world.base_url}/fabrikam.onmicrosoft.com/"
        "adminconsent?client_id=11111111-2222-3333-4444-555555555555)"
    )
    assert errors[1].startswith("Error: tenant northwind: Graph answered 403")
    shown = done.output.split("Error:")[0]
    assert "contoso   EX1200000" in shown
    assert "northwind" not in shown and "fabrikam" not in shown
    assert SENTINEL not in done.output


def test_status_json_names_the_tenant_of_every_service_and_issue(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    world.refused_tenants["fabrikam.onmicrosoft.com"] = CONSENT
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "status", "--json")

    assert done.exit_code == 1
    data = json.loads(done.stdout)
    assert data["tenants"] == ["contoso", "northwind"]
    assert [f["tenant"] for f in data["failed"]] == ["fabrikam"]
    assert "AADSTS7000229" in data["failed"][0]["error"]
    assert [(s["tenant"], s["service"], s["openIncidents"]) for s in data["services"]] == [
        ("contoso", "Exchange Online", 2),
        ("northwind", "Exchange Online", 1),
        ("contoso", "Microsoft Teams", 0),
        ("northwind", "Microsoft Teams", 0),
    ]
    assert [(i["tenant"], i["id"]) for i in data["issues"]] == [
        ("contoso", "EX1200000"),
        ("contoso", "EX1200001"),
        ("contoso", "EX1200002"),
        ("northwind", "EX1200002"),
    ]
    assert list(data["issues"][0])[:2] == ["tenant", "id"]
    assert "Error: tenant fabrikam:" in done.stderr


def test_tenant_option_asks_only_those_tenants(world: FakeMicrosoft, tmp_path: Path) -> None:
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "status", "--json", "--tenant", "northwind")

    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["tenants"] == ["northwind"]
    assert {i["tenant"] for i in data["issues"]} == {"northwind"}
    assert world.counts["graph:contoso.onmicrosoft.com"] == 0
    assert world.counts["graph:fabrikam.onmicrosoft.com"] == 0


def test_cached_status_reads_each_tenant_s_state_and_one_without_is_an_error(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)
    assert run(world, config, "poll", "--tenant", "contoso", "--tenant", "northwind").exit_code == 0
    before = world.counts["graph"]

    done = run(world, config, "status", "--cached")

    assert world.counts["graph"] == before  # no network
    assert done.exit_code == 1
    assert done.output.startswith("From each tenant's local state; the oldest is ")
    assert "contoso     EX1200000" in done.output
    assert "northwind   EX1200002" in done.output
    assert (
        "Error: tenant fabrikam: there is no local state yet "
        f"({tmp_path}/state/tenants/fabrikam/state.json)"
    ) in done.output
    as_json = run(world, config, "status", "--cached", "--json", "--tenant", "northwind")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert (data["source"], data["tenants"]) == ("cache", ["northwind"])
    assert data["cachedAt"] is not None
    assert as_json.stderr.startswith("Note: From the local state, as of the last poll")


# -- show ---------------------------------------------------------------------------------


def test_show_gives_the_issue_in_each_tenant_that_has_it(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "show", "ex1200002")

    assert done.exit_code == 0, done.output
    headings = [line for line in done.output.splitlines() if line.startswith("───")]
    assert [h.strip("─ ") for h in headings] == ["contoso", "northwind"]
    assert done.output.count("EX1200002 · Exchange Online: Investigating") == 2
    assert done.output.rstrip().endswith("EX1200002 is not in: fabrikam.")
    assert widest(done.output.replace(world.base_url, "")) <= 100  # the admin-center URL

    only_contoso = run(world, config, "show", "EX1200000", "--json")
    assert only_contoso.exit_code == 0, only_contoso.output
    data = json.loads(only_contoso.stdout)
    assert isinstance(data, list)
    assert [(d["tenant"], d["id"]) for d in data] == [("contoso", "EX1200000")]
    assert "posts" in data[0]


def test_show_is_exit_4_only_when_no_tenant_has_it(world: FakeMicrosoft, tmp_path: Path) -> None:
    config = tenants_config(world, tmp_path, NAMES)

    missing = run(world, config, "show", "EX1200009")

    assert missing.exit_code == 4
    assert missing.output == (
        "Error: EX1200009 exists in none of the 3 tenants asked (contoso, fabrikam, northwind)\n"
    )
    world.tenant_faults["fabrikam.onmicrosoft.com"] = (403, '{"error": {"code": "Forbidden"}}', {})
    unsure = run(world, config, "show", "EX1200009")
    assert unsure.exit_code == 1  # fabrikam may have it: not "does not exist"
    assert "EX1200009 is not in: contoso, northwind." in unsure.output
    assert "Error: tenant fabrikam: Graph answered 403" in unsure.output
    asked = world.counts["graph"]
    bad = run(world, config, "show", "not-an-id")
    assert bad.exit_code == 2
    assert world.counts["graph"] == asked  # a bad id asks no tenant


def test_show_of_a_message_center_post_in_many_tenants(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)
    post = world.messages[-1]["id"]

    done = run(world, config, "show", post.lower(), "--json")

    assert done.exit_code == 0, done.output
    assert [d["tenant"] for d in json.loads(done.stdout)] == ["contoso", "fabrikam", "northwind"]
    config = tenants_config(world, tmp_path, NAMES, "[messages]\n")
    assert run(world, config, "poll", "--tenant", "contoso").exit_code == 0
    cached = run(world, config, "show", post, "--cached", "--tenant", "contoso")
    assert cached.exit_code == 0, cached.output
    assert cached.output.startswith("─")
    assert "From the local state, as of the last poll" in cached.output
    missing = run(world, config, "show", "MC999999", "--cached", "--tenant", "contoso")
    assert missing.exit_code == 4
    assert missing.output == (
        "Error: MC999999 is not in the local state of the tenant asked (contoso): it may not "
        "exist or be newer than the last poll; leave out --cached to ask Microsoft Graph\n"
    )


# -- messages -----------------------------------------------------------------------------


def test_messages_have_a_tenant_column_and_tenant_keys(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)
    last = world.messages[-1]["id"]

    done = run(world, config, "messages", "--tenant", "contoso", "--tenant", "northwind")

    assert done.exit_code == 0, done.output
    assert widest(done.output) <= 80
    lines = done.output.splitlines()
    assert (
        lines[0] == f"Message center posts, newest first ({len(world.messages) + 1} in 2 tenants)"
    )
    assert lines[1].split()[:3] == ["Tenant", "ID", "Post:"]
    rows = [line.split()[:2] for line in lines[3:] if line[:1].isalpha()]
    at = rows.index(["contoso", last])
    assert rows[at + 1] == ["northwind", last]  # a post's tenants together
    as_json = run(world, config, "messages", "--json", "--tenant", "northwind")
    data = json.loads(as_json.stdout)
    assert data["tenants"] == ["northwind"]
    assert [(m["tenant"], m["id"]) for m in data["messages"]] == [("northwind", last)]


# -- the other commands ---------------------------------------------------------------------


def test_doctor_checks_every_tenant_one_line_per_tenant_per_check(
    world: FakeMicrosoft, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: datetime.now(timezone.utc))  # the clock check
    world.refused_tenants["fabrikam.onmicrosoft.com"] = CONSENT
    config = tenants_config(world, tmp_path, NAMES, "[messages]\n\n" + targets(world))

    done = run(world, config, "doctor")

    assert done.exit_code == 1
    lines = done.output.splitlines()
    assert lines[0] == f"✓ configuration: {config} is valid (3 tenants, 2 notification targets)"
    names = [line.split(":")[0] for line in lines[1:-1]]
    assert names == [
        *(
            f"{mark} {check} ({tenant})"
            for tenant in ("contoso",)
            for mark, check in (
                ("✓", "credential"),
                ("✓", "sign-in"),
                ("✓", "Graph permission"),
                ("✓", "Message center permission"),
                ("✓", "state folder"),
            )
        ),
        "✓ credential (fabrikam)",
        "✗ sign-in (fabrikam)",
        "- Graph permission (fabrikam)",
        "- Message center permission (fabrikam)",
        "✓ state folder (fabrikam)",
        "✓ credential (northwind)",
        "✓ sign-in (northwind)",
        "✓ Graph permission (northwind)",
        "✓ Message center permission (northwind)",
        "✓ state folder (northwind)",
        "✓ notify 'noc'",
        "✓ notify 'contoso-teams'",
        "✓ clock",
    ]
    refused = next(line for line in lines if line.startswith("✗ sign-in (fabrikam)"))
    assert refused.endswith(
        f"(an admin of the tenant grants consent at {world.base_url}/fabrikam.onmicrosoft.com/"
        "adminconsent?client_id=11111111-2222-3333-4444-555555555555)"
    )
    assert f"{tmp_path}/state/tenants/northwind is writable" in done.output
    assert SENTINEL not in done.output

    one = run(world, config, "doctor", "--tenant", "northwind")
    assert one.exit_code == 0, one.output
    assert "(contoso)" not in one.output and "(fabrikam)" not in one.output
    assert "notify 'contoso-teams'" not in one.output  # it does not receive northwind's


def test_test_notify_with_tenant_tests_only_the_targets_receiving_that_tenant(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES, targets(world))

    done = run(world, config, "test-notify", "--tenant", "fabrikam")

    assert done.exit_code == 0, done.output
    assert done.output == "noc: ok (json)\n"
    assert list(world.hooks) == ["noc"]
    mismatch = run(
        world, config, "test-notify", "--tenant", "fabrikam", "--target", "contoso-teams"
    )
    assert mismatch.exit_code == 2
    assert "'contoso-teams' does not receive the messages of fabrikam" in mismatch.output
    both = run(world, config, "test-notify", "--tenant", "contoso")
    assert both.output == "noc: ok (json)\ncontoso-teams: ok (json)\n"


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--cached"),
        ("show", "EX1200000"),
        ("messages",),
        ("doctor",),
        ("test-notify",),
    ],
)
def test_tenant_option_on_a_plain_configuration_is_a_usage_error(
    fake: FakeMicrosoft, tmp_path: Path, args: tuple[str, ...]
) -> None:
    reset(fake)
    config = tmp_path / "config.toml"
    notify = f'[[notify]]\nname = "noc"\nurl = "json://{fake.hook_base}/hooks/noc"\n'
    config.write_text(fake.config_text(tmp_path / "state.json", notify))

    done = run(fake, config, *args, "--tenant", "contoso")

    assert done.exit_code == 2, done.output
    assert "has no [[tenants]], only one [tenant]; run without --tenant" in done.output
    assert fake.counts["token"] == 0


@pytest.mark.parametrize("command", ["status", "show", "messages", "doctor", "test-notify"])
def test_an_unknown_tenant_is_a_usage_error_naming_the_tenants(
    world: FakeMicrosoft, tmp_path: Path, command: str
) -> None:
    config = tenants_config(world, tmp_path, NAMES, targets(world))
    args = [command, "EX1200000"] if command == "show" else [command]

    done = run(world, config, *args, "--tenant", "acme")

    assert done.exit_code == 2, done.output
    assert done.output == (
        "Error: no tenant is named 'acme': the tenants are contoso, fabrikam, northwind\n"
    )


def test_a_plain_configuration_s_status_json_has_no_tenant_keys(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = tmp_path / "config.toml"
    config.write_text(fake.config_text(tmp_path / "state.json"))

    done = run(fake, config, "status", "--json")

    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert list(data) == ["generated", "source", "cachedAt", "services", "issues"]
    assert "tenant" not in data["issues"][0]


# -- asking many tenants at once ------------------------------------------------------------


def test_answers_come_in_the_order_asked_at_most_concurrency_at_a_time() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def ask(n: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 * (5 - n % 5))
        with lock:
            running -= 1
        if n == 3:
            raise NotFoundError("no such issue")
        if n == 4:
            raise GraphError("Graph is down")
        return n * 10

    questions = [(f"t{n}", functools.partial(ask, n)) for n in range(8)]
    answers = ask_tenants(questions, concurrency=3)

    assert [a.name for a in answers] == [f"t{n}" for n in range(8)]
    assert [a.answer for a in answers] == [0, 10, 20, None, None, 50, 60, 70]
    assert isinstance(answers[3].error, NotFoundError)
    assert isinstance(answers[4].error, GraphError)
    assert most == 3


def test_a_configuration_error_in_any_tenant_ends_the_question() -> None:
    def refuse() -> int:
        raise ConfigError("--service 'nope' matches no service")

    questions = [("a", lambda: 1), ("b", refuse), ("c", lambda: 3)]
    with pytest.raises(ConfigError, match="matches no service"):
        list(ask_in_order(questions, concurrency=2))


# -- check (the monitoring plugin) -----------------------------------------------------------


def test_check_judges_every_tenant_as_one_naming_each_problem_s_tenant(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    world.refused_tenants["fabrikam.onmicrosoft.com"] = CONSENT
    config = tenants_config(world, tmp_path, NAMES)

    done = run(world, config, "check")

    assert done.exit_code == 2  # CRITICAL: an incident outranks a tenant that is UNKNOWN
    first, *details = done.stdout.splitlines()
    text, _, perfdata = first.partition(" | ")
    assert text == (
        "M365 CRITICAL - 3 incidents, 1 advisory in 2 of 3 tenants (fabrikam UNKNOWN): "
        "EX1200000 Exchange Online (investigating) in contoso, EX1200002 Exchange Online "
        "(investigating) in 2 tenants, EX1200001 Exchange Online (investigating) in contoso"
    )
    assert perfdata == "incidents=3;;0;0 advisories=1;0;;0 unknown_tenants=1;;;0"
    assert details[0].startswith("fabrikam: UNKNOWN - sign-in to 127.0.0.1 failed (AADSTS7000229)")
    assert [d.split(" ")[:2] for d in details[1:]] == [
        ["contoso:", "EX1200000"],
        ["contoso:", "EX1200002"],
        ["northwind:", "EX1200002"],
        ["contoso:", "EX1200001"],
    ]


def test_check_with_only_advisories_and_a_tenant_unchecked_is_unknown(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    world.tenant_issues["contoso.onmicrosoft.com"] = [issue(1)]
    world.tenant_issues["northwind.onmicrosoft.com"] = []
    world.tenant_faults["fabrikam.onmicrosoft.com"] = (403, '{"error": {"code": "Forbidden"}}', {})
    config = tenants_config(world, tmp_path, NAMES)

    assert run(world, config, "check").exit_code == 3
    world.tenant_faults.clear()
    warned = run(world, config, "check")
    assert warned.exit_code == 1
    assert warned.stdout.startswith(
        "M365 WARNING - 0 incidents, 1 advisory in 3 tenants: "
        "EX1200001 Exchange Online (investigating) in contoso | "
    )


def test_check_tenant_takes_a_name_or_tenant_id_and_checks_that_tenant_alone(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)

    by_name = run(world, config, "check", "--tenant", "northwind")
    by_id = run(world, config, "check", "--tenant", "NORTHWIND.onmicrosoft.com")

    assert by_name.exit_code == by_id.exit_code == 2
    assert by_name.stdout == by_id.stdout
    assert by_name.stdout.startswith(
        "M365 CRITICAL - 1 incident, 0 advisories: EX1200002 Exchange Online (investigating) | "
    )
    assert world.counts["graph:contoso.onmicrosoft.com"] == 0
    unknown = run(world, config, "check", "--tenant", "acme")
    assert unknown.exit_code == 3
    assert unknown.stdout == (
        "M365 UNKNOWN - --tenant 'acme' is not configured: the [[tenants]] are contoso, "
        "fabrikam, northwind\n"
    )


def test_cached_check_of_many_tenants_is_unknown_for_a_stale_one(
    world: FakeMicrosoft, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tenants_config(world, tmp_path, NAMES)
    assert run(world, config, "poll").exit_code == 0
    now = datetime.now(timezone.utc)
    monkeypatch.setattr(wiring, "utc_now", lambda: now)
    old = now.timestamp() - 3600
    state = tmp_path / "state" / "tenants" / "fabrikam" / "state.json"
    os.utime(state, (old, old))

    done = run(world, config, "check", "--cached", "--critical-incidents", "5")

    assert done.exit_code == 3  # fabrikam's state is an hour old; the others are OK
    first, *details = done.stdout.splitlines()
    assert " in 2 of 3 tenants (fabrikam UNKNOWN)" in first
    assert "unknown_tenants=1;;;0" in first
    assert details[0].startswith(
        "fabrikam: UNKNOWN - the local state is 1h old, more than --max-age 15m"
    )


def test_check_of_many_tenants_answers_within_its_timeout(
    world: FakeMicrosoft, tmp_path: Path
) -> None:
    config = tenants_config(world, tmp_path, NAMES)
    world.graph_delay = 3.0
    started = time.monotonic()

    done = run(world, config, "check", "--timeout", "0.5")

    assert time.monotonic() - started < 2.5  # not held up by the tenants still being asked
    assert done.exit_code == 3
    assert done.stdout == "M365 UNKNOWN - no answer within --timeout 0.5 s\n"


def test_a_long_tenant_name_folds_and_the_tables_still_fit_80_columns() -> None:
    from m365watch.feeds.messages import parse_messages
    from m365watch.message_query import MessagesQuery, build_messages
    from m365watch.models import ServiceHealth, parse_issues
    from m365watch.query import SOURCE_GRAPH, StatusQuery, build_status
    from m365watch.tables import render_tenants_messages, render_tenants_status
    from m365watch.tenant_query import TenantAnswer, TenantsMessages, TenantsStatus

    long_name = "a-customer-label-of-the-longest-kind-an-msp-might-give-0123456"
    names = (long_name, "short")
    issues, _ = parse_issues([issue(n) for n in range(3)])
    health = [
        ServiceHealth.from_graph(
            {"id": "Exchange", "service": "Exchange Online", "status": "serviceDegradation"}
        )
    ]
    report = build_status(health, issues, StatusQuery(), now=T0, source=SOURCE_GRAPH)
    status = TenantsStatus(
        T0, SOURCE_GRAPH, tuple(TenantAnswer(n, report) for n in names), StatusQuery()
    )
    posts, _ = parse_messages(load_json("cli-microsoft365-message-list.json")["value"])
    listed = build_messages(posts, MessagesQuery(), now=T0, source=SOURCE_GRAPH)
    messages = TenantsMessages(
        T0, SOURCE_GRAPH, tuple(TenantAnswer(n, listed) for n in names), MessagesQuery()
    )

    for text in (
        render_tenants_status(status, now=T0, width=80, color=False),
        render_tenants_messages(messages, now=T0, width=80, color=False),
    ):
        assert widest(text) <= 80
        assert long_name[:16] in text and "short" in text
