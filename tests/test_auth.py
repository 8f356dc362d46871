"""Tests for m365watch.auth: real MSAL against identity endpoints mocked by `responses`.

The mocked sign-in and the certificate builders it uses are in tests/identity.py.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from m365watch.auth import ADVICE, ClientSecret, TokenProvider, advice_for
from m365watch.certificate import Certificate
from m365watch.deadline import Deadline
from m365watch.errors import AuthError, ConfigError
from m365watch.msal_cache import HTTP_CACHE_FILE, TOKEN_CACHE_FILE
from m365watch.settings import CLOUDS
from tests.identity import (
    CLIENT_ID,
    GLOBAL_GRAPH,
    GLOBAL_HOST,
    PASSWORD,
    SECRET,
    TENANT,
    TENANT_GUID,
    TOKEN,
    aad_error,
    cert_pem,
    discovery_url,
    key_pem,
    make_certificate,
    mock_identity,
    openid_configuration,
    provider,
    token_url,
    write_pem,
)

# -- fixtures and helpers ------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def form(call: Any) -> dict[str, str]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {k: v[0] for k, v in parse_qs(text).items()}


def jwt_header(assertion: str) -> dict[str, Any]:
    segment = assertion.split(".")[0]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


# -- public value objects --------------------------------------------------------


def test_reprs_hide_secrets(tmp_path: Path) -> None:
    assert SECRET not in repr(ClientSecret(SECRET))
    assert PASSWORD not in repr(Certificate(tmp_path / "app.pem", PASSWORD))
    assert SECRET not in repr(provider(tmp_path))


def test_scope_and_no_io_before_first_token(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    cache_dir = tmp_path / "cache"
    tp = provider(cache_dir, cloud="dod")
    assert tp.scope == "https://dod-graph.microsoft.us/.default"
    assert len(rsps.calls) == 0
    assert not cache_dir.exists()


# -- 1. client secret ----------------------------------------------------------------


def test_secret_auth_posts_client_secret_and_returns_token(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    assert provider(tmp_path).get_token() == TOKEN
    assert [c.request.method for c in rsps.calls] == ["GET", "POST"]
    assert rsps.calls[0].request.url == discovery_url(GLOBAL_HOST)
    body = form(rsps.calls[1])
    assert body["client_secret"] == SECRET
    assert body["client_id"] == CLIENT_ID
    assert body["grant_type"] == "client_credentials"
    assert body["scope"].split() == [f"{GLOBAL_GRAPH}/.default"]
    assert "client_assertion" not in body


def test_every_request_carries_the_timeout(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(rsps)
    provider(tmp_path, timeout=7.5).get_token()
    assert [getattr(c.request, "req_kwargs", {}).get("timeout") for c in rsps.calls] == [7.5, 7.5]


def test_same_provider_serves_second_call_from_memory(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    tp = provider(tmp_path)
    assert tp.get_token() == tp.get_token() == TOKEN
    assert len(rsps.calls) == 2


# -- 2. certificate ----------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, PASSWORD], ids=["plain-key", "encrypted-key"])
def test_certificate_auth_posts_signed_assertion(
    tmp_path: Path, rsps: responses.RequestsMock, rsa_key: rsa.RSAPrivateKey, password: str | None
) -> None:
    cert = make_certificate(rsa_key)
    pem_path = write_pem(tmp_path / "app.pem", key_pem(rsa_key, password), cert_pem(cert))
    thumbprint = cert.fingerprint(hashes.SHA1()).hex()
    mock_identity(rsps)

    tp = provider(tmp_path / "cache", credential=Certificate(pem_path, password))
    assert tp.get_token() == TOKEN

    body = form(rsps.calls[1])
    assert "client_secret" not in body
    assert body["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assertion = body["client_assertion"]
    header = jwt_header(assertion)
    assert base64.urlsafe_b64decode(header["x5t"] + "=" * (-len(header["x5t"]) % 4)).hex() == (
        thumbprint
    )
    # The assertion is signed by our key, for our app, addressed to the token endpoint.
    claims = jwt.decode(
        assertion,
        rsa_key.public_key(),
        algorithms=[header["alg"]],
        audience=token_url(GLOBAL_HOST),
    )
    assert claims["iss"] == claims["sub"] == CLIENT_ID


def test_unusable_certificate_fails_get_token_with_config_error(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    tp = provider(tmp_path, credential=Certificate(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match=r"missing\.pem"):
        tp.get_token()
    assert len(rsps.calls) == 0


class _FaultyCertificate:
    """A certificate credential whose loading has a bug (raises KeyError)."""

    password = None

    def load(self) -> Any:
        raise KeyError("a bug in our own code")


def test_only_the_msal_calls_are_translated_into_auth_errors(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    # A KeyError from MSAL means "the server's answer had an odd shape"; from our own
    # code it is a bug, and must not be dressed up as a sign-in failure.
    mock_identity(rsps)
    with pytest.raises(KeyError, match="a bug in our own code"):
        provider(tmp_path, credential=_FaultyCertificate()).get_token()  # type: ignore[arg-type]
    assert len(rsps.calls) == 0


# -- 4. AADSTS errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "expected"),
    [
        (7000215, "invalid_client", "copy the secret's Value (not its ID)"),
        (7000222, "invalid_client", "client secret has expired; create a new one"),
        (700016, "unauthorized_client", "check client_id and tenant_id"),
        (90002, "invalid_request", f"tenant '{TENANT}' was not found"),
        (900023, "invalid_request", f"tenant '{TENANT}' was not found"),
        (700027, "invalid_client", "certificate was rejected"),
        (7000274, "invalid_client", "certificate was rejected"),
        (65001, "invalid_grant", "grant admin consent for ServiceHealth.Read.All"),
        (500011, "invalid_resource", "check that the cloud setting matches"),
        (
            9999999,
            "invalid_request",
            "sign-in to login.microsoftonline.com failed: AADSTS9999999: Something odd happened.",
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
def test_aadsts_errors_become_one_line_auth_errors(
    tmp_path: Path, rsps: responses.RequestsMock, code: int, error: str, expected: str
) -> None:
    body = aad_error(code, error, "Something odd happened.")
    mock_identity(rsps, token_status=400 if code != 700016 else 401, token_body=body)
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token()
    message = str(info.value)
    assert expected in message
    assert f"AADSTS{code}" in message
    assert "\n" not in message and "\r" not in message
    assert "Trace ID" not in message and "Correlation ID" not in message
    assert SECRET not in message
    # No alias lookup at /common/discovery/instance on the error path: two calls only.
    assert [urlsplit(c.request.url).path for c in rsps.calls] == [
        f"/{TENANT}/v2.0/.well-known/openid-configuration",
        f"/{TENANT_GUID}/oauth2/v2.0/token",
    ]


@pytest.mark.parametrize("code", sorted(ADVICE), ids=str)
def test_every_advice_fills_in_and_stays_on_one_line(code: int) -> None:
    fields = {
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "graph_endpoint": GLOBAL_GRAPH,
        "certificate": "the certificate",
    }
    advice = ADVICE[code].format(**fields)
    assert "{" not in advice and "\n" not in advice
    assert "; " in advice or code == 7000112  # what happened; what to do


@pytest.mark.parametrize(
    ("code", "description", "expected"),
    [
        (7000215, "The user has not consented.", ADVICE[7000215]),
        (None, "Admin CONSENT is required.", ADVICE[65001]),
        (1234, "Something else.", None),
        (None, "", None),
    ],
    ids=["code-wins-over-wording", "consent-wording", "unknown-code", "nothing"],
)
def test_advice_for_reads_the_table(
    code: int | None, description: str, expected: str | None
) -> None:
    assert advice_for(code, description) == expected


def test_consent_wording_without_code_is_recognised(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    body = {"error": "invalid_grant", "error_description": "The administrator has not consented."}
    mock_identity(rsps, token_status=400, token_body=body)
    with pytest.raises(AuthError, match="grant admin consent"):
        provider(tmp_path).get_token()


def test_error_without_description_names_the_error(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps, token_status=400, token_body={"error": "temporarily_unavailable"})
    with pytest.raises(AuthError, match=r"failed: temporarily_unavailable$"):
        provider(tmp_path).get_token()


@pytest.mark.parametrize(
    "body", ['"a json string"', "[400, 1]", "null"], ids=["string", "list", "null"]
)
def test_a_token_answer_of_the_wrong_shape_is_one_auth_error(
    tmp_path: Path, rsps: responses.RequestsMock, body: str
) -> None:
    rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    rsps.post(token_url(GLOBAL_HOST), body=body, status=400, content_type="application/json")
    with pytest.raises(AuthError) as caught:
        provider(tmp_path).get_token()
    assert "\n" not in str(caught.value)
    assert SECRET not in str(caught.value)


def test_server_echoing_the_secret_is_redacted(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    body = {"error": "invalid_request", "error_description": f"AADSTS1234: Bad value {SECRET}."}
    mock_identity(rsps, token_status=400, token_body=body)
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token()
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)


def test_certificate_rejection_names_the_thumbprint(
    tmp_path: Path, rsps: responses.RequestsMock, rsa_key: rsa.RSAPrivateKey
) -> None:
    cert = make_certificate(rsa_key)
    pem_path = write_pem(tmp_path / "app.pem", key_pem(rsa_key, PASSWORD), cert_pem(cert))
    body = aad_error(700027, "invalid_client", "Client assertion failed signature validation.")
    mock_identity(rsps, token_status=401, token_body=body)
    with pytest.raises(AuthError) as info:
        provider(tmp_path / "cache", credential=Certificate(pem_path, PASSWORD)).get_token()
    assert cert.fingerprint(hashes.SHA1()).hex().upper() in str(info.value)
    assert PASSWORD not in str(info.value)


def test_secret_never_logged(
    tmp_path: Path, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mock_identity(rsps, token_status=400, token_body=aad_error(7000215, "invalid_client", "Bad."))
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError):
        provider(tmp_path).get_token()
    rsps.replace(
        responses.POST, token_url(GLOBAL_HOST), json={"access_token": TOKEN, "expires_in": 60}
    )
    with caplog.at_level(logging.DEBUG):
        provider(tmp_path / "other").get_token()
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text


# -- discovery failures ---------------------------------------------------------------------


def test_unknown_tenant_at_discovery(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    rsps.get(
        discovery_url(GLOBAL_HOST),
        status=400,
        json=aad_error(90002, "invalid_tenant", f"Tenant '{TENANT}' not found."),
    )
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token()
    assert str(info.value) == (
        f"tenant '{TENANT}' is unknown to login.microsoftonline.com (AADSTS90002); "
        "check tenant_id and that the cloud setting matches the tenant"
    )
    assert len(rsps.calls) == 1


def test_discovery_answered_by_a_proxy_page(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    rsps.get(discovery_url(GLOBAL_HOST), body="<html>Please sign in to the proxy</html>")
    with pytest.raises(AuthError, match="did not answer with JSON"):
        provider(tmp_path).get_token()


@pytest.mark.parametrize("status", [500, 503], ids=["500", "503"])
def test_server_errors_become_auth_error(
    tmp_path: Path, rsps: responses.RequestsMock, status: int
) -> None:
    mock_identity(rsps, token_status=status, token_body={"error": "server_error"})
    with pytest.raises(AuthError, match=f"HTTP Error: {status}.*try again later"):
        provider(tmp_path).get_token()


def test_failed_provider_retries_on_next_call(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    rsps.get(discovery_url(GLOBAL_HOST), body=requests.ConnectionError("down"))
    tp = provider(tmp_path)
    with pytest.raises(AuthError):
        tp.get_token()
    rsps.replace(responses.GET, discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    rsps.post(token_url(GLOBAL_HOST), json={"access_token": TOKEN, "expires_in": 3599})
    assert tp.get_token() == TOKEN


# -- 7. network failures --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "on_post", "expected"),
    [
        (requests.ConnectionError("Name or service not known"), False, "connection failed"),
        (requests.ConnectTimeout("slow"), False, "no answer within 30 s"),
        (requests.ReadTimeout("slow"), True, "no answer within 30 s"),
        (requests.exceptions.SSLError("self-signed"), False, "REQUESTS_CA_BUNDLE"),
        (requests.exceptions.ProxyError("407"), False, "check HTTPS_PROXY"),
    ],
    ids=["dns", "connect-timeout", "read-timeout-on-token", "tls", "proxy"],
)
def test_network_failures_become_one_line_auth_errors(
    tmp_path: Path, rsps: responses.RequestsMock, exc: Exception, on_post: bool, expected: str
) -> None:
    if on_post:
        rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
        rsps.post(token_url(GLOBAL_HOST), body=exc)
    else:
        rsps.get(discovery_url(GLOBAL_HOST), body=exc)
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token()
    message = str(info.value)
    assert message.startswith("cannot reach login.microsoftonline.com: ")
    assert expected in message
    assert "\n" not in message
    assert SECRET not in message


# -- 5. clouds -------------------------------------------------------------------------------


@pytest.mark.parametrize("cloud", sorted(CLOUDS), ids=sorted(CLOUDS))
@pytest.mark.parametrize("fails", [False, True], ids=["ok", "error"])
def test_each_cloud_talks_only_to_its_own_authority(
    tmp_path: Path, rsps: responses.RequestsMock, cloud: str, fails: bool
) -> None:
    host, graph = CLOUDS[cloud]
    if fails:
        mock_identity(
            rsps, host, token_status=401, token_body=aad_error(7000215, "invalid_client", "Bad.")
        )
        with pytest.raises(AuthError, match=urlsplit(host).hostname or ""):
            provider(tmp_path, cloud=cloud).get_token()
    else:
        mock_identity(rsps, host)
        assert provider(tmp_path, cloud=cloud).get_token() == TOKEN
        assert form(rsps.calls[1])["scope"].split() == [f"{graph}/.default"]
    assert len(rsps.calls) == 2
    assert {urlsplit(c.request.url).hostname for c in rsps.calls} == {urlsplit(host).hostname}


def test_custom_authority_host_skips_instance_discovery(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    host = "https://login.example.test"
    mock_identity(rsps, host)
    assert provider(tmp_path, authority_host=host + "/").get_token() == TOKEN
    assert {urlsplit(c.request.url).hostname for c in rsps.calls} == {"login.example.test"}


# -- 6b. caches that parse but hold nonsense ----------------------------------------------

_VALID_AT = {
    "client_id": CLIENT_ID,
    "environment": "login.microsoftonline.com",
    "realm": TENANT_GUID,
    "target": f"{GLOBAL_GRAPH}/.default",
    "credential_type": "AccessToken",
    "home_account_id": None,
    "secret": "stale",
}


@pytest.mark.parametrize(
    "entry",
    [{}, {**_VALID_AT, "expires_on": "soon"}, {**_VALID_AT, "expires_on": None}],
    ids=["empty-entry", "text-expiry", "null-expiry"],
)
def test_token_cache_with_damaged_entries_is_discarded(
    tmp_path: Path, rsps: responses.RequestsMock, entry: dict[str, Any]
) -> None:
    (tmp_path / TOKEN_CACHE_FILE).write_text(json.dumps({"AccessToken": {"k": entry}}))
    mock_identity(rsps)
    assert provider(tmp_path).get_token() == TOKEN
    # Both caches are dropped on the fresh start, so discovery runs again once.
    assert [c.request.method for c in rsps.calls] == ["GET", "GET", "POST"]
    # The replacement file serves the next run.
    rsps.reset()
    assert provider(tmp_path).get_token() == TOKEN
    assert len(rsps.calls) == 0


def test_damaged_cached_discovery_document_is_discarded(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps, token_body={"token_type": "Bearer", "expires_in": 0, "access_token": "x"})
    provider(tmp_path).get_token()
    http_file = tmp_path / HTTP_CACHE_FILE
    cached = json.loads(http_file.read_text())
    for key, value in cached.items():
        if key.startswith("GET "):
            value["text"] = "<html>not json</html>"
    http_file.write_text(json.dumps(cached))
    rsps.reset()
    mock_identity(rsps)

    assert provider(tmp_path).get_token() == TOKEN
    assert [c.request.method for c in rsps.calls] == ["GET", "POST"]


def test_unknown_tenant_with_a_warm_cache_still_fails_cleanly(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    provider(tmp_path).get_token()
    rsps.reset()
    other = "fabrikam.onmicrosoft.com"
    rsps.get(
        discovery_url(GLOBAL_HOST, other),
        status=400,
        json=aad_error(90002, "invalid_tenant", f"Tenant '{other}' not found."),
    )
    tp = TokenProvider(
        tenant_id=other,
        client_id=CLIENT_ID,
        credential=ClientSecret(SECRET),
        authority_host=GLOBAL_HOST,
        graph_endpoint=GLOBAL_GRAPH,
        cache_dir=tmp_path,
    )
    with pytest.raises(AuthError, match=f"tenant '{other}' is unknown"):
        tp.get_token()
    # One retry without the persisted caches, then the error: no loop.
    assert len(rsps.calls) == 2


# -- 8. time and size limits ------------------------------------------------------------------


class SteppedClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_each_request_waits_no_longer_than_the_callers_deadline(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    clock = SteppedClock()
    provider(tmp_path, timeout=7.5).get_token(Deadline(3.0, clock=clock))
    assert [getattr(c.request, "req_kwargs", {}).get("timeout") for c in rsps.calls] == [3.0, 3.0]


def test_a_spent_deadline_fails_the_sign_in_before_any_request(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    clock = SteppedClock()
    deadline = Deadline(4.0, clock=clock)
    clock.now += 4.0
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token(deadline)
    assert str(info.value) == (
        "sign-in to login.microsoftonline.com did not finish within 4 s (the answer came "
        "too slowly); check the network and HTTPS_PROXY"
    )
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("declared", [False, True], ids=["unsized", "content-length"])
def test_a_sign_in_answer_over_1_mib_is_refused(
    tmp_path: Path, rsps: responses.RequestsMock, declared: bool
) -> None:
    huge = '{"access_token": "' + "x" * (1024 * 1024) + '"}'
    headers = {"Content-Length": str(len(huge))} if declared else {}
    rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    rsps.post(token_url(GLOBAL_HOST), body=huge, headers=headers)
    with pytest.raises(AuthError) as info:
        provider(tmp_path).get_token()
    assert str(info.value) == (
        "login.microsoftonline.com sent a sign-in answer larger than 1 MiB; a proxy in the "
        "way? check HTTPS_PROXY and the authority host"
    )
