"""A mocked Microsoft Entra ID sign-in: tenant and app constants, `responses` mocks, certificates.

Shared by the tests that sign in with real MSAL against identity endpoints
mocked by `responses` (auth, certificate, msal_cache, cli, doctor, faults, watch ...).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from m365watch.auth import ClientSecret, TokenProvider
from m365watch.certificate import Certificate
from m365watch.settings import CLOUDS

TENANT = "contoso.onmicrosoft.com"
TENANT_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "s3cr3t~Value.With-Punctuation_0123456789"
PASSWORD = "correct horse battery staple"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-graph-token.sig"
GLOBAL_HOST, GLOBAL_GRAPH = CLOUDS["global"]
NOT_AFTER = datetime(2031, 5, 17, 12, 30, 45, tzinfo=timezone.utc)


def make_certificate(
    key: Any,
    subject: str = "m365watch test",
    not_after: datetime = NOT_AFTER,
    not_before: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc),
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )


def key_pem(key: Any, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    pem: bytes = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return pem


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_pem(path: Path, *parts: bytes) -> Path:
    path.write_bytes(b"".join(parts))
    return path


def openid_configuration(host: str, tenant: str = TENANT) -> dict[str, Any]:
    """A trimmed but realistic v2.0 discovery document, as Entra ID serves it."""
    base = f"{host}/{TENANT_GUID}"
    return {
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{host}/{TENANT_GUID}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "ver"],
        "kerberos_endpoint": f"{base}/kerberos",
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


def discovery_url(host: str, tenant: str = TENANT) -> str:
    # The URL MSAL 1.39 requests with instance discovery off: {authority}/v2.0/.well-known/...
    return f"{host}/{tenant}/v2.0/.well-known/openid-configuration"


def token_url(host: str) -> str:
    return f"{host}/{TENANT_GUID}/oauth2/v2.0/token"


def mock_identity(
    rsps: responses.RequestsMock,
    host: str = GLOBAL_HOST,
    *,
    token: str = TOKEN,
    token_status: int = 200,
    token_body: dict[str, Any] | None = None,
) -> None:
    rsps.get(discovery_url(host), json=openid_configuration(host))
    body = token_body or {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": token,
    }
    rsps.post(token_url(host), json=body, status=token_status)


def aad_error(code: int, error: str, sentence: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {sentence} More detail follows here.\r\n"
            "Trace ID: 0d1a7a0e-5d3b-4c8e-9f0a-6b1c2d3e4f50\r\n"
            "Correlation ID: 9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0\r\n"
            "Timestamp: 2025-11-28 15:32:00Z"
        ),
        "error_codes": [code],
        "timestamp": "2025-11-28 15:32:00Z",
        "trace_id": "0d1a7a0e-5d3b-4c8e-9f0a-6b1c2d3e4f50",
        "correlation_id": "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0",
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }


def provider(
    cache_dir: Path,
    *,
    credential: ClientSecret | Certificate | None = None,
    cloud: str = "global",
    authority_host: str | None = None,
    timeout: float = 30.0,
) -> TokenProvider:
    host, graph = CLOUDS[cloud]
    return TokenProvider(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        credential=credential or ClientSecret(SECRET),
        authority_host=authority_host or host,
        graph_endpoint=graph,
        cache_dir=cache_dir,
        timeout=timeout,
    )
