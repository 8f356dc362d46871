"""Many tenants in one configuration ([[tenants]]): the real CLI against the loopback Microsoft.

The loopback Entra ID signs in any tenant path and its Graph serves the same feed to
every tenant: one incident that appears in every tenant, as Microsoft's do.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from m365watch.cli import main
from m365watch.config import parse_settings
from m365watch.errors import ConfigError
from m365watch.store import StateStore
from tests.installation import SENTINEL, issue, reset, tenants_config
from tests.loopback import CLIENT_ID, FakeMicrosoft

NAMES = ("contoso", "fabrikam", "northwind")


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


def write_config(
    fake: FakeMicrosoft, root: Path, names: tuple[str, ...] = NAMES, notify: str = ""
) -> Path:
    notify = notify or textwrap.dedent(
        f"""\
        [[notify]]
        name = "noc"
        url = "json://{fake.hook_base}/hooks/noc"
        group_tenants = true

        [[notify]]
        name = "contoso-teams"
        url = "json://{fake.hook_base}/hooks/contoso-teams"
        tenants = ["contoso"]

        [[notify]]
        name = "each"
        url = "json://{fake.hook_base}/hooks/each"
        """
    )
    return tenants_config(fake, root, names, notify)


def run(fake: FakeMicrosoft, config: Path, *args: str) -> Result:
    env = {"M365WATCH_CLIENT_SECRET": SENTINEL, "REQUESTS_CA_BUNDLE": str(fake.ca_bundle)}
    return CliRunner().invoke(main, ["-c", str(config), *args], env=env)


def titles(fake: FakeMicrosoft, hook: str) -> list[str]:
    return [str(m["title"]) for m in fake.hooks[hook]]


def test_one_incident_in_every_tenant_is_one_grouped_message_and_routed_per_tenant(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = write_config(fake, tmp_path)

    first = run(fake, config, "poll")
    assert first.exit_code == 0, first.output
    assert "contoso: first poll: recorded 1 issues as the baseline." in first.output
    assert not fake.hooks  # no first-run flood, in any tenant

    fake.issues.append(issue(2))
    second = run(fake, config, "poll")

    assert second.exit_code == 0, second.output
    assert titles(fake, "noc") == [
        "3 tenants: [Incident] EX1200002 · Exchange Online: Investigating"
    ]
    noc = fake.hooks["noc"][0]["message"]
    assert "**Tenants:** contoso, fabrikam, northwind" in noc
    assert titles(fake, "contoso-teams") == [
        "contoso: [Incident] EX1200002 · Exchange Online: Investigating"
    ]
    assert sorted(titles(fake, "each")) == [
        f"{n}: [Incident] EX1200002 · Exchange Online: Investigating" for n in NAMES
    ]
    assert "3 tenants (0 failed), 6 issues, 3 change(s), 5 message(s) sent" in second.output
    for name in NAMES:
        state = StateStore(tmp_path / "state" / "tenants" / name / "state.json").load()
        assert "EX1200002" in state.items("issues")
        outbox = tmp_path / "state" / "tenants" / name / "state.outbox.json"
        assert json.loads(outbox.read_text()).get("outbox", {}) in ({}, [])
    assert SENTINEL not in second.output


def test_a_grouped_message_not_accepted_stays_owed_by_every_tenant_and_goes_once_later(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = write_config(fake, tmp_path)
    assert run(fake, config, "poll").exit_code == 0
    fake.issues.append(issue(2))
    fake.failing_hooks.add("noc")

    failed = run(fake, config, "poll")

    assert failed.exit_code == 3, failed.output  # a target did not accept: EXIT_DELIVERY
    assert "3 delivery(ies) pending" in failed.output  # one share per tenant
    fake.failing_hooks.clear()
    again = run(fake, config, "poll")
    assert again.exit_code == 0, again.output
    assert titles(fake, "noc") == [
        "3 tenants: [Incident] EX1200002 · Exchange Online: Investigating"
    ]
    assert len(fake.hooks["each"]) == 3  # sent once, in the first poll
    assert "0 delivery(ies) pending" in again.output


def test_a_tenant_added_later_does_not_flood_and_the_others_are_unaffected(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0), issue(2)]
    assert run(fake, write_config(fake, tmp_path, NAMES[:2]), "poll").exit_code == 0
    config = write_config(fake, tmp_path, NAMES)

    added = run(fake, config, "poll")

    assert added.exit_code == 0, added.output
    assert "northwind: first poll: recorded 2 issues as the baseline." in added.output
    assert "contoso: first poll" not in added.output
    assert not fake.hooks


def test_tenant_option_polls_only_the_named_tenants(fake: FakeMicrosoft, tmp_path: Path) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = write_config(fake, tmp_path)

    done = run(fake, config, "poll", "--tenant", "fabrikam", "--tenant", "northwind")

    assert done.exit_code == 0, done.output
    assert "2 tenants (0 failed)" in done.output
    assert not (tmp_path / "state" / "tenants" / "contoso").exists()
    unknown = run(fake, config, "poll", "--tenant", "acme")
    assert unknown.exit_code == 2
    assert "no tenant is named 'acme': the tenants are contoso, fabrikam, northwind" in (
        unknown.output
    )


def test_a_dry_run_groups_as_the_poll_would_and_writes_nothing(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = write_config(fake, tmp_path)
    assert run(fake, config, "poll").exit_code == 0
    fake.issues.append(issue(2))
    before = {p: p.read_bytes() for p in (tmp_path / "state").rglob("state*.json")}

    dry = run(fake, config, "poll", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert "--- would send to noc: 3 tenants: [Incident] EX1200002" in dry.output
    assert "5 message(s) would be sent" in dry.output
    assert not fake.hooks
    assert {p: p.read_bytes() for p in before} == before


def test_a_plain_configuration_keeps_its_state_path_and_unlabelled_messages(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    reset(fake)
    fake.issues[:] = [issue(0)]
    config = tmp_path / "config.toml"
    config.write_text(
        fake.config_text(
            tmp_path / "state" / "state.json",
            f'[[notify]]\nname = "each"\nurl = "json://{fake.hook_base}/hooks/each"\n',
        )
    )
    assert run(fake, config, "poll").exit_code == 0
    fake.issues.append(issue(2))
    done = run(fake, config, "poll")
    assert done.exit_code == 0, done.output
    assert titles(fake, "each") == ["[Incident] EX1200002 · Exchange Online: Investigating"]
    assert (tmp_path / "state" / "state.json").exists()
    assert not (tmp_path / "state" / "tenants").exists()
    tenant_option = run(fake, config, "poll", "--tenant", "contoso")
    assert tenant_option.exit_code == 2
    assert "has no [[tenants]]" in tenant_option.output


BASE: dict[str, Any] = {
    "tenant": {"client_id": CLIENT_ID, "client_secret": "x"},
    "tenants": [
        {"name": "contoso", "tenant_id": "contoso.onmicrosoft.com"},
        {"name": "fabrikam", "tenant_id": "00000000-0000-0000-0000-0000000000fb"},
    ],
    "state": {"path": "/tmp/m365watch-test/state.json"},
}


def settings_of(**changes: Any) -> Any:
    doc = json.loads(json.dumps(BASE))
    doc.update(changes)
    return parse_settings(doc, env={})


def test_tenants_inherit_the_tenant_defaults_and_override_them_whole() -> None:
    doc = json.loads(json.dumps(BASE))
    doc["tenants"][1].update(certificate_path="/etc/m365watch/fabrikam.pem", cloud="usgov")
    settings = parse_settings(doc, env={})

    contoso, fabrikam = settings.tenants
    assert (contoso.name, contoso.client_secret, contoso.cloud) == ("contoso", "x", "global")
    assert fabrikam.client_secret is None  # its own credential replaces the default one
    assert fabrikam.certificate_path == Path("/etc/m365watch/fabrikam.pem")
    assert fabrikam.admin_consent_url == (
        "https://login.microsoftonline.us/00000000-0000-0000-0000-0000000000fb/adminconsent"
        f"?client_id={CLIENT_ID}"
    )
    views = settings.for_tenants()
    assert [v.state_path for v in views] == [
        Path("/tmp/m365watch-test/tenants/contoso/state.json"),
        Path("/tmp/m365watch-test/tenants/fabrikam/state.json"),
    ]
    assert settings.poll.concurrency == 8


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"notify": [{"name": "x", "url": "json://h/", "tenants": ["acme"]}]},
            "notify target 'x' names the tenant 'acme', which is not configured: "
            "the [[tenants]] are contoso, fabrikam",
        ),
        (
            {"tenants": [{"name": "a", "tenant_id": "a.com"}, {"name": "A", "tenant_id": "b.com"}]},
            "two [[tenants]] blocks are named 'a' and 'A'",
        ),
        ({"tenants": [{"name": "../x", "tenant_id": "a.com"}]}, "must be a short label"),
        ({"tenants": [{"name": "a"}]}, "[[tenants]] 'a' tenant_id must be a non-empty string"),
        (
            {"tenant": {"client_id": CLIENT_ID, "client_secret": "x", "tenant_id": "c.com"}},
            "move tenant_id into a [[tenants]] block",
        ),
        ({"poll": {"concurrency": 0}}, "poll.concurrency must be a whole number"),
        ({"tenants": []}, "tenants is empty"),
    ],
)
def test_bad_tenants_configuration_is_one_clear_error(
    changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(**changes)
    assert expected in str(caught.value)


def test_pir_asks_the_tenant_named(fake: FakeMicrosoft, tmp_path: Path) -> None:
    reset(fake)
    fake.reports["EX1200002"] = b"%PDF-1.7 report"
    config = write_config(fake, tmp_path)

    unnamed = run(fake, config, "pir", "EX1200002")
    named = run(fake, config, "pir", "EX1200002", "--tenant", "fabrikam", "-o", str(tmp_path / "r"))

    assert unnamed.exit_code == 2
    assert "name the tenant to ask: --tenant NAME (contoso, fabrikam, northwind)" in unnamed.output
    assert named.exit_code == 0, named.output
    assert (tmp_path / "r").read_bytes() == b"%PDF-1.7 report"
    assert (tmp_path / "state" / "tenants" / "fabrikam" / "msal_token_cache.json").exists()
