"""The many-tenant stand-in for Entra ID and Graph (tests/loopback.py FakeTenants), on its own.

Real MSAL signs in against it and `requests` reads Graph from it, so the tests
of many tenants that drive the CLI can trust what it answers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from click.testing import CliRunner

from m365watch.auth import ClientSecret, TokenProvider
from m365watch.cli import main
from m365watch.errors import AuthError
from tests.loopback import (
    CLIENT_ID,
    ISSUES_PATH,
    NO_SERVICE_PRINCIPAL,
    WITHDRAWN,
    FakeTenants,
)

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FABRIKAM = "00000000-0000-0000-0000-0000000000fb"
SECRET = "loopback-secret"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeTenants]:
    with FakeTenants(tmp_path, ["contoso"]) as server:
        server.add_tenant("fabrikam", FABRIKAM)
        server.tenants["contoso"].issues = [{"id": "EX1"}, {"id": "EX2"}]
        server.tenants["fabrikam"].issues = [{"id": "SP3"}]
        yield server


def session(fake: FakeTenants) -> requests.Session:
    s = requests.Session()
    # Not from the environment: REQUESTS_CA_BUNDLE would win over verify, and no proxy.
    s.trust_env = False
    s.verify = str(fake.ca_bundle)
    return s


def sign_in(fake: FakeTenants, tenant_id: str, client_id: str = CLIENT_ID) -> dict[str, Any]:
    """What real MSAL answers for an app-only token from this tenant of the stand-in."""
    app = msal.ConfidentialClientApplication(
        client_id,
        client_credential=SECRET,
        authority=f"{fake.base_url}/{tenant_id}",
        http_client=session(fake),
        instance_discovery=False,
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[f"{fake.base_url}/.default"])
    return result


def graph(fake: FakeTenants, token: str, path: str = ISSUES_PATH, **headers: str) -> Any:
    return session(fake).get(
        fake.base_url + path, headers={"Authorization": f"Bearer {token}", **headers}, timeout=10
    )


def test_each_tenant_signs_in_and_reads_its_own_data(fake: FakeTenants) -> None:
    contoso, fabrikam = fake.tenants["contoso"], fake.tenants["fabrikam"]
    tokens = {t.name: sign_in(fake, t.tenant_id)["access_token"] for t in (contoso, fabrikam)}
    assert tokens == {"contoso": "token-contoso.onmicrosoft.com", "fabrikam": f"token-{FABRIKAM}"}
    assert [i["id"] for i in graph(fake, tokens["contoso"]).json()["value"]] == ["EX1", "EX2"]
    assert [i["id"] for i in graph(fake, tokens["fabrikam"]).json()["value"]] == ["SP3"]
    for tenant in (contoso, fabrikam):
        assert (tenant.counts["openid"], tenant.counts["token"]) == (1, 1)
        assert (tenant.counts["graph"], tenant.counts["issues"]) == (1, 1)
    # A domain tenant's token endpoint is under its directory GUID, as Entra ID answers.
    assert contoso.guid != contoso.tenant_id and fabrikam.guid == FABRIKAM


def test_withdrawn_consent_and_a_missing_service_principal(fake: FakeTenants) -> None:
    fake.tenants["contoso"].sign_in_error = WITHDRAWN
    fake.tenants["fabrikam"].sign_in_error = NO_SERVICE_PRINCIPAL
    withdrawn = sign_in(fake, "contoso.onmicrosoft.com")
    assert withdrawn["error"] == "unauthorized_client"
    assert withdrawn["error_codes"] == [700016]
    assert withdrawn["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{CLIENT_ID}' was not found in the "
        "directory 'contoso.onmicrosoft.com'."
    )
    missing = sign_in(fake, FABRIKAM)
    assert (missing["error"], missing["error_codes"]) == ("invalid_client", [7000229])
    assert "missing service principal in the tenant" in missing["error_description"]
    assert fake.tenants["contoso"].counts["400"] == 1
    assert fake.tenants["fabrikam"].counts["401"] == 1
    # An app that was never consented in the tenant is refused the same way.
    fake.tenants["fabrikam"].sign_in_error = None
    assert sign_in(fake, FABRIKAM, client_id="99999999-2222-3333-4444-555555555555")[
        "error_codes"
    ] == [700016]


def test_an_unknown_tenant_fails_at_discovery(fake: FakeTenants) -> None:
    with pytest.raises(ValueError, match="Unable to get authority configuration") as info:
        sign_in(fake, "nosuch.onmicrosoft.com")
    # MSAL keeps discovery's answer (HTTP 400, AADSTS90002) as the error's cause.
    cause = info.value.__cause__ or info.value.__context__
    assert "AADSTS90002: Tenant 'nosuch.onmicrosoft.com' not found" in str(cause)


def test_m365watch_signs_in_to_each_tenant_by_its_authority_path(
    fake: FakeTenants, tmp_path: Path
) -> None:
    def provider(tenant_id: str) -> TokenProvider:
        return TokenProvider(
            tenant_id=tenant_id,
            client_id=CLIENT_ID,
            credential=ClientSecret(SECRET),
            authority_host=fake.base_url,
            graph_endpoint=fake.base_url,
            cache_dir=tmp_path / tenant_id,
            session=session(fake),
        )

    assert provider(FABRIKAM).get_token() == f"token-{FABRIKAM}"
    fake.tenants["contoso"].sign_in_error = WITHDRAWN
    with pytest.raises(AuthError, match="AADSTS700016"):
        provider("contoso.onmicrosoft.com").get_token()
    with pytest.raises(AuthError, match=r"'nosuch\.onmicrosoft\.com' is unknown .*AADSTS90002"):
        provider("nosuch.onmicrosoft.com").get_token()


def test_todays_single_tenant_poll_reads_one_tenant_of_the_stand_in(
    fake: FakeTenants, tmp_path: Path
) -> None:
    fabrikam = fake.tenants["fabrikam"]
    fabrikam.issues = []
    config = tmp_path / "config.toml"
    notify = f'[[notify]]\nname = "noc"\nurl = "{fake.hook_url("noc")}"\n'
    config.write_text(fake.single_config_text("fabrikam", tmp_path / "state.json", notify))
    config.chmod(0o600)
    env = {"M365WATCH_CLIENT_SECRET": SECRET, "REQUESTS_CA_BUNDLE": str(fake.ca_bundle)}

    def poll() -> int:
        result = CliRunner().invoke(main, ["-c", str(config), "-q", "poll"], env=env)
        return result.exit_code

    assert poll() == 0
    fabrikam.issues = [
        {
            "id": "EX1256020",
            "title": "Mail delayed",
            "service": "Exchange Online",
            "status": "serviceDegradation",
            "classification": "incident",
            "isResolved": False,
            "startDateTime": "2026-11-28T09:00:00Z",
            "lastModifiedDateTime": "2026-11-28T09:05:00Z",
            "posts": [],
        }
    ]
    assert poll() == 0
    assert len(fake.hooks["noc"]) == 1 and "EX1256020" in json.dumps(fake.hooks["noc"][0])
    assert (fabrikam.counts["token"], fabrikam.counts["issues"]) == (1, 2)
    assert sum(fake.tenants["contoso"].counts.values()) == 0


def test_graph_refusals_throttling_and_paging(fake: FakeTenants) -> None:
    contoso, fabrikam = fake.tenants["contoso"], fake.tenants["fabrikam"]
    contoso.graph_status = 403
    fabrikam.throttled, fabrikam.retry_after = 1, "2.5"
    refused = graph(fake, contoso.token)
    assert refused.status_code == 403
    assert "ServiceHealth.Read.All" in refused.json()["error"]["message"]
    throttled = graph(fake, fabrikam.token)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2.5")
    assert graph(fake, fabrikam.token).status_code == 200
    assert graph(fake, "token-of-nobody").status_code == 401
    assert (contoso.counts["403"], fabrikam.counts["429"]) == (1, 1)

    fabrikam.issues = [{"id": f"EX{n}"} for n in range(5)]
    fabrikam.page_size = 2
    seen, url, pages = [], ISSUES_PATH, 0
    while url and pages < 10:
        body = graph(fake, fabrikam.token, url).json()
        seen += [i["id"] for i in body["value"]]
        url = body.get("@odata.nextLink", "").removeprefix(fake.base_url)
        pages += 1
    assert (seen, pages) == ([f"EX{n}" for n in range(5)], 3)
    # Prefer: odata.maxpagesize overrides the server's page size, as Graph does.
    body = graph(fake, fabrikam.token, Prefer="odata.maxpagesize=1000").json()
    assert len(body["value"]) == 5 and "@odata.nextLink" not in body

    assert graph(fake, fabrikam.token, ISSUES_PATH + "/EX3").json() == {"id": "EX3"}
    assert graph(fake, fabrikam.token, ISSUES_PATH + "/EX9").status_code == 404

    # cache_answers keeps each answer's bytes (for benchmarks) until forget_answers().
    fake.cache_answers, fabrikam.page_size = True, None
    assert len(graph(fake, fabrikam.token).json()["value"]) == 5
    fabrikam.issues.append({"id": "EX5"})
    assert len(graph(fake, fabrikam.token).json()["value"]) == 5
    fake.forget_answers()
    assert len(graph(fake, fabrikam.token).json()["value"]) == 6


def test_config_text_lists_the_tenants(fake: FakeTenants, tmp_path: Path) -> None:
    text = fake.config_text(
        tmp_path / "state.json",
        '[[notify]]\nname = "noc"\nurl = "json://127.0.0.1:1/hooks/noc"\ngroup_tenants = true\n',
        "[poll]\nconcurrency = 8\n",
        tenants=["fabrikam", ("typo", "nosuch.onmicrosoft.com")],
        tenant_extra={"typo": 'client_id = "99999999-2222-3333-4444-555555555555"'},
    )
    doc = tomllib.loads(text)
    assert doc["tenant"] == {
        "client_id": CLIENT_ID,
        "client_secret": "${M365WATCH_CLIENT_SECRET}",
        "authority": fake.base_url,
        "graph_endpoint": fake.base_url,
    }
    assert doc["tenants"] == [
        {"name": "fabrikam", "tenant_id": FABRIKAM},
        {
            "name": "typo",
            "tenant_id": "nosuch.onmicrosoft.com",
            "client_id": "99999999-2222-3333-4444-555555555555",
        },
    ]
    assert doc["poll"] == {"concurrency": 8}
    assert doc["notify"][0]["group_tenants"] is True
