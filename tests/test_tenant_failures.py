"""Many tenants: one tenant failing never stops the others (the real CLI, FakeTenants).

Each tenant of the stand-in has its own token endpoint and its own Graph data,
so consent can be withdrawn in one tenant while the others sign in and deliver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from m365watch.cli import main
from tests.installation import SENTINEL, issue
from tests.loopback import CLIENT_ID, NO_SERVICE_PRINCIPAL, WITHDRAWN, FakeTenants

NAMES = ("contoso", "fabrikam", "northwind")


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeTenants]:
    (tmp_path / "loopback").mkdir()
    with FakeTenants(tmp_path / "loopback") as server:
        for name in NAMES:
            server.add_tenant(name, issues=[issue(0)])
        yield server


def configure(fake: FakeTenants, root: Path, extra: str = "") -> Path:
    notify = (
        f'[[notify]]\nname = "noc"\nurl = "json://{fake.hook_base}/hooks/noc"\n'
        'group_tenants = true\nevents = ["new", "status", "watcher"]\n\n'
        f'[[notify]]\nname = "each"\nurl = "json://{fake.hook_base}/hooks/each"\n'
    )
    config = root / "config.toml"
    config.write_text(fake.config_text(root / "state" / "state.json", notify, extra))
    config.chmod(0o600)
    return config


def run(fake: FakeTenants, config: Path, *args: str) -> Result:
    env = {"M365WATCH_CLIENT_SECRET": SENTINEL, "REQUESTS_CA_BUNDLE": str(fake.ca_bundle)}
    return CliRunner().invoke(main, ["-c", str(config), *args], env=env)


def add_incident(fake: FakeTenants) -> None:
    for tenant in fake.tenants.values():
        tenant.issues = [issue(0), issue(2)]


def state_bytes(root: Path, name: str) -> dict[str, bytes]:
    folder = root / "state" / "tenants" / name
    # The state and its outbox (the health file beside them counts the failures).
    return {p.name: p.read_bytes() for p in folder.glob("state*.json") if "health" not in p.name}


@pytest.mark.parametrize("code", [WITHDRAWN, NO_SERVICE_PRINCIPAL])
def test_withdrawn_consent_in_one_tenant_while_the_others_deliver(
    fake: FakeTenants, tmp_path: Path, code: int
) -> None:
    config = configure(fake, tmp_path)
    assert run(fake, config, "poll").exit_code == 0
    # A token cached from the first poll would hide the refusal: the new app's cache is cold.
    for cache in (tmp_path / "state" / "tenants" / "fabrikam").glob("msal_*"):
        cache.unlink()
    fake.tenants["fabrikam"].sign_in_error = code
    add_incident(fake)
    before = state_bytes(tmp_path, "fabrikam")

    done = run(fake, config, "poll")

    assert done.exit_code == 1, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.output
    assert errors[0].startswith("Error: tenant fabrikam: ")
    assert f"AADSTS{code}" in errors[0]
    consent = f"{fake.base_url}/fabrikam.onmicrosoft.com/adminconsent?client_id={CLIENT_ID}"
    assert consent in errors[0]
    noc = [m["title"] for m in fake.hooks["noc"]]
    assert noc == ["2 tenants: [Incident] EX1200002 · Exchange Online: Investigating"]
    assert "**Tenants:** contoso, northwind" in fake.hooks["noc"][0]["message"]
    assert len(fake.hooks["each"]) == 2
    assert state_bytes(tmp_path, "fabrikam") == before  # its state untouched
    assert SENTINEL not in done.output


def test_the_watcher_alert_is_per_tenant_names_it_and_gives_its_consent_url(
    fake: FakeTenants, tmp_path: Path
) -> None:
    config = configure(fake, tmp_path, "[health]\nalert_after = 2\n")
    assert run(fake, config, "poll").exit_code == 0
    fake.tenants["northwind"].graph_status = 403

    first = run(fake, config, "poll")
    second = run(fake, config, "poll")
    third = run(fake, config, "poll")

    assert [first.exit_code, second.exit_code, third.exit_code] == [1, 1, 1]
    alerts = [m for m in fake.hooks["noc"] if "cannot reach" in m["title"]]
    assert [m["title"] for m in alerts] == [
        "northwind: m365watch cannot reach Microsoft Graph"
    ]  # once, after two failures; not again while it lasts
    text = alerts[0]["message"]
    assert "**Tenant:** northwind" in text
    assert f"{fake.base_url}/northwind.onmicrosoft.com/adminconsent?client_id={CLIENT_ID}" in (
        text.replace("\\", "")
    )
    fake.tenants["northwind"].graph_status = None
    healed = run(fake, config, "poll")
    assert healed.exit_code == 0, healed.output
    ups = [m["title"] for m in fake.hooks["noc"] if "working again" in m["title"]]
    assert ups == ["northwind: m365watch is working again"]
    healthy = tmp_path / "state" / "tenants" / "contoso" / "state.health.json"
    health = json.loads(healthy.read_text()) if healthy.exists() else {}
    assert not health.get("failures")  # the healthy tenants counted no failure


def test_a_throttled_tenant_waits_alone(fake: FakeTenants, tmp_path: Path) -> None:
    config = configure(fake, tmp_path, "[poll]\nconcurrency = 3\n")
    assert run(fake, config, "poll").exit_code == 0
    slow = fake.tenants["contoso"]
    slow.throttled = 1
    slow.retry_after = "2"
    add_incident(fake)

    started = time.monotonic()
    done = run(fake, config, "poll")
    took = time.monotonic() - started

    assert done.exit_code == 0, done.output
    assert slow.counts["429"] == 1
    assert took >= 2  # contoso honoured Retry-After …
    noc = fake.hooks["noc"]
    assert [m["title"] for m in noc] == [
        "3 tenants: [Incident] EX1200002 · Exchange Online: Investigating"
    ]
    # … while the others were read at once, not after it (each is one Graph request).
    assert fake.tenants["fabrikam"].counts["issues"] == 2
