"""Sign in to Microsoft Entra ID with app-only credentials, through MSAL.

`TokenProvider.get_token` returns a bearer token for Microsoft Graph. MSAL's
token cache and its HTTP (discovery) cache are both persisted under
``cache_dir`` (see `m365watch.msal_cache`), so a run within a token's life
makes no request at all to the identity platform. MSAL's errors are translated
here into `AuthError` messages that say what to fix; they never carry a secret.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from m365watch.budget import EXCHANGE_SECONDS, FETCH_SECONDS, SIGN_IN_MAX_BYTES
from m365watch.deadline import Deadline, ReadFailed, TimeUp, TooLarge, format_size, read_body
from m365watch.errors import AuthError
from m365watch.msal_cache import CACHE_CORRUPTION_ERRORS, MsalCaches, cached_access_token
from m365watch.redact import first_line, first_sentence, redact_secrets

logger = logging.getLogger(__name__)

_AADSTS = re.compile(r"AADSTS(\d+)")
_AADSTS_PREFIX = re.compile(r"^\s*AADSTS\d+:\s*")
# Entra appends these after the description proper; none of it helps the reader.
_TRACE_TAIL = re.compile(r"\s(?:Trace ID|Correlation ID|Timestamp):")

_TENANT_NOT_FOUND = (
    "tenant {tenant_id!r} was not found; "
    "check tenant_id and that the cloud setting matches the tenant"
)
_CERTIFICATE_REJECTED = (
    "{certificate} was rejected; upload it to the app registration under Certificates "
    "& secrets, and check it has not expired or been revoked"
)
_CONSENT_MISSING = (
    "admin consent is missing; an administrator must grant admin consent "
    "for ServiceHealth.Read.All in the app registration's API permissions"
)
# What to fix for each Entra (AADSTS) error code. The {fields} come from the settings;
# {certificate} names the certificate with its thumbprint when one is in use.
ADVICE: dict[int, str] = {
    7000215: (
        "the client secret is wrong; copy the secret's Value (not its ID) from the app registration"
    ),
    7000222: (
        "the client secret has expired; create a new one under Certificates & "
        "secrets in the app registration and update the configuration"
    ),
    700016: (
        "application {client_id} was not found in tenant {tenant_id}; "
        "check client_id and tenant_id, and that the app lives in this cloud"
    ),
    90002: _TENANT_NOT_FOUND,
    900023: _TENANT_NOT_FOUND,
    50059: _TENANT_NOT_FOUND,
    700027: _CERTIFICATE_REJECTED,
    7000274: _CERTIFICATE_REJECTED,
    7000214: _CERTIFICATE_REJECTED,
    7000277: _CERTIFICATE_REJECTED,
    1000502: _CERTIFICATE_REJECTED,
    700024: "the client assertion is outside its valid time range; check the system clock",
    7000112: "application {client_id} is disabled in tenant {tenant_id}",
    500011: (
        "{graph_endpoint} is not available to this tenant; "
        "check that the cloud setting matches the tenant"
    ),
    65001: _CONSENT_MISSING,
    7000229: _CONSENT_MISSING,
}


def advice_for(code: int | None, description: str) -> str | None:
    """The `ADVICE` template for an Entra error code, or None when there is none.

    A description that mentions consent gets the consent advice even without a known code.
    """
    if code in ADVICE:
        return ADVICE[code]
    return _CONSENT_MISSING if "consent" in description.lower() else None


@dataclass(frozen=True)
class ClientSecret:
    """A client secret of the app registration (its Value, not its ID)."""

    value: str = field(repr=False)


class _CertificateFacts(Protocol):
    @property
    def thumbprint(self) -> str: ...


class CertificateCredential(Protocol):
    """A certificate credential that reads its file only when a token is first needed.

    `m365watch.certificate.Certificate` is one; whoever wires the adapters passes
    it in, so this MSAL adapter does not import the cryptography one.
    """

    @property
    def password(self) -> str | None:
        """The private key's password, if any: redacted from every message."""
        ...

    def load(self) -> tuple[dict[str, str], _CertificateFacts]:
        """MSAL's ``client_credential`` dict and the certificate's thumbprint (ConfigError)."""
        ...


class TokenProvider:
    """Get app-only access tokens for Microsoft Graph, caching them on disk.

    Nothing touches the network or the disk until `get_token` is first called.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        credential: ClientSecret | CertificateCredential,
        authority_host: str,
        graph_endpoint: str,
        cache_dir: Path,
        session: requests.Session | None = None,
        timeout: float = EXCHANGE_SECONDS,
        time_limit: float = FETCH_SECONDS,
    ) -> None:
        """Keep the settings; do no I/O.

        The values are taken as `m365watch.config` validated them: a tenant GUID or
        domain, a client GUID, a non-empty secret, and ``https://host`` URLs.
        ``timeout`` bounds each exchange with the identity platform (connecting, each
        read, the whole answer); ``time_limit`` a whole sign-in when the caller gives
        no deadline of its own.
        """
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._credential = credential
        self._authority_host = authority_host.rstrip("/")
        self._graph_endpoint = graph_endpoint.rstrip("/")
        # requests.Session() keeps trust_env on: HTTPS_PROXY and REQUESTS_CA_BUNDLE apply.
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._time_limit = time_limit
        self._http = _TimeoutHttpClient(self._session, timeout)
        self._host = urlsplit(self._authority_host).hostname or self._authority_host
        self._lock = threading.Lock()
        self._app: Any = None
        self._thumbprint: str | None = None
        # Nothing MSAL caches on disk may hold the secret or the key's password.
        self._caches = MsalCaches(cache_dir, secrets=self._secrets())
        self._caches_loaded = False

    @property
    def scope(self) -> str:
        """The app-only scope for this cloud's Graph: ``{graph_endpoint}/.default``."""
        return f"{self._graph_endpoint}/.default"

    @property
    def authority(self) -> str:
        """The authority URL MSAL signs in against: ``{authority_host}/{tenant_id}``."""
        return f"{self._authority_host}/{self._tenant_id}"

    def get_token(self, deadline: Deadline | None = None) -> str:
        """Return an access token for Graph, from the persisted cache when still valid.

        Every request to the identity platform ends by ``deadline`` (default: the
        provider's ``time_limit`` from now). Raises `AuthError` when Entra ID refuses
        the credentials or cannot be reached in time, and `ConfigError` when the
        certificate file cannot be used.
        """
        with self._lock:
            if self._app is None:
                # A token still good in the persisted cache: no MSAL (not even imported).
                cached = cached_access_token(
                    self._caches.folder,
                    client_id=self._client_id,
                    authority=self.authority,
                    scope=self.scope,
                    now=time.time(),
                )
                if cached is not None:
                    logger.debug("access token for %s from the persisted cache", self.scope)
                    return cached
            self._http.deadline = deadline or Deadline(self._time_limit)
            loaded_from_disk = False
            if not self._caches_loaded:
                loaded_from_disk = self._caches.load()
                self._caches_loaded = True
            try:
                result = self._acquire(may_discard_caches=loaded_from_disk)
            finally:
                # Even a failed attempt may have taught MSAL the tenant's discovery document.
                self._caches.save()
        if not isinstance(result, Mapping) or not isinstance(result.get("access_token"), str):
            raise AuthError(self._describe_failure(result if isinstance(result, Mapping) else {}))
        logger.debug("access token for %s from %s", self.scope, result.get("token_source", "?"))
        token: str = result["access_token"]
        return token

    # -- MSAL application ---------------------------------------------------

    def _acquire(self, *, may_discard_caches: bool) -> Any:
        """MSAL's answer to a token request, creating its app first if need be.

        Only what the MSAL calls raise becomes `AuthError`; the certificate is read
        before them, so its `ConfigError` (and any bug of ours) passes unchanged.
        """
        from msal.exceptions import MsalServiceError

        client_credential = self._client_credential() if self._app is None else None
        try:
            if client_credential is not None:
                self._app = self._create_app(client_credential)
            return self._app.acquire_token_for_client(scopes=[self.scope])
        except CACHE_CORRUPTION_ERRORS as exc:
            # MSAL trusts its caches; a well-formed file with nonsense inside (a damaged
            # expiry, a discovery document that is not JSON) surfaces here. Start afresh once.
            if not may_discard_caches:
                raise self._auth_error(exc) from exc
            logger.debug("discarding the persisted MSAL caches after %s", type(exc).__name__)
            self._caches.discard()
            self._app = None
            return self._acquire(may_discard_caches=False)
        except (
            requests.RequestException,
            MsalServiceError,
            TimeUp,
            TooLarge,
            ReadFailed,
        ) as exc:
            raise self._auth_error(exc) from exc

    def _client_credential(self) -> str | dict[str, str]:
        if isinstance(self._credential, ClientSecret):
            return self._credential.value
        credential, info = self._credential.load()
        self._thumbprint = info.thumbprint
        return credential

    def _create_app(self, client_credential: str | dict[str, str]) -> Any:
        import msal

        # The constructor already talks to the network: it fetches the discovery document.
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=client_credential,
            authority=self.authority,
            token_cache=self._caches.token_cache,
            http_cache=self._caches.http_cache,
            # MSAL applies its own timeout only to a session it creates itself.
            http_client=self._http,
            # Always off: for a host MSAL does not know it would validate the authority
            # at login.microsoftonline.com, and on every error it would look up aliases at
            # a discovery endpoint; neither helps client credentials, and a sovereign-cloud
            # deployment must not depend on (or talk to) another cloud.
            instance_discovery=False,
        )

    def _auth_error(self, exc: Exception) -> AuthError:
        """What an exception from an MSAL call means for the user, as one `AuthError`."""
        from msal.exceptions import MsalServiceError

        host = self._host
        # Most specific first: ProxyError, SSLError and ConnectTimeout are ConnectionErrors.
        if isinstance(exc, TimeUp):
            message = (
                f"sign-in to {host} did not finish within {exc.deadline.seconds:g} s "
                "(the answer came too slowly); check the network and HTTPS_PROXY"
            )
        elif isinstance(exc, TooLarge):
            message = (
                f"{host} sent a sign-in answer larger than {format_size(exc.limit)}; "
                "a proxy in the way? check HTTPS_PROXY and the authority host"
            )
        elif isinstance(exc, ReadFailed):
            message = (
                f"cannot reach {host}: the connection broke off mid-answer ({exc}); "
                "check the network and HTTPS_PROXY"
            )
        elif isinstance(exc, requests.Timeout):
            message = (
                f"cannot reach {host}: no answer within {self._timeout:g} s; "
                "check the network and HTTPS_PROXY"
            )
        elif isinstance(exc, requests.exceptions.ProxyError):
            message = f"cannot reach {host}: the proxy refused the connection; check HTTPS_PROXY"
        elif isinstance(exc, requests.exceptions.SSLError):
            message = (
                f"cannot reach {host}: TLS verification failed; if a proxy inspects TLS, "
                "point REQUESTS_CA_BUNDLE at its CA certificate"
            )
        elif isinstance(exc, requests.ConnectionError):
            message = (
                f"cannot reach {host}: connection failed; check DNS, the firewall and HTTPS_PROXY"
            )
        elif isinstance(exc, requests.RequestException):
            message = f"cannot reach {host}: {type(exc).__name__}"
        elif isinstance(exc, MsalServiceError):
            message = f"{host} answered with an error ({self._redact(str(exc))}); try again later"
        elif isinstance(exc, ValueError):
            message = self._describe_value_error(exc)
        else:
            # MSAL trusts the shape of what the server sends (a JSON string or list breaks it).
            message = (
                f"{host} answered in a shape MSAL cannot read ({type(exc).__name__}); "
                "a proxy in the way? check HTTPS_PROXY, or try again later"
            )
        return AuthError(message)

    def _describe_value_error(self, exc: ValueError) -> str:
        # MSAL raises ValueError for a tenant its discovery endpoint does not know and
        # for a discovery or token answer that is not JSON (a proxy's login page).
        texts = [str(exc)] + [str(e) for e in (exc.__context__, exc.__cause__) if e]
        for text in texts:
            match = _AADSTS.search(text)
            if match and ADVICE.get(int(match.group(1))) is _TENANT_NOT_FOUND:
                return self._tenant_unknown(int(match.group(1)))
        if any(isinstance(e, json.JSONDecodeError) for e in (exc, exc.__context__)):
            return (
                f"{self._host} did not answer with JSON (a proxy or captive portal?); "
                "check HTTPS_PROXY and the authority host"
            )
        if "authority configuration" in str(exc):
            return self._tenant_unknown(None)
        said = first_line(self._redact(str(exc))) or type(exc).__name__
        return f"MSAL rejected the sign-in settings for {self.authority}: {said}"

    def _tenant_unknown(self, code: int | None) -> str:
        suffix = f" (AADSTS{code})" if code else ""
        return (
            f"tenant {self._tenant_id!r} is unknown to {self._host}{suffix}; "
            "check tenant_id and that the cloud setting matches the tenant"
        )

    # -- error responses ------------------------------------------------------

    def _describe_failure(self, result: Mapping[str, Any]) -> str:
        """Turn MSAL's error dict into one line that says what to fix."""
        error = str(result.get("error") or "no access token in the answer")
        description = str(result.get("error_description") or "")
        code = _aadsts_code(result, description)
        first = _entra_sentence(description)
        prefix = f"sign-in to {self._host} failed"
        advice = self._advice(code, description)
        if advice:
            where = f"{prefix} (AADSTS{code})" if code else prefix
            return self._redact(f"{where}: {advice}")
        if code:
            return self._redact(f"{prefix}: AADSTS{code}: {first}")
        detail = f"{error}: {first}" if first else error
        return self._redact(f"{prefix}: {detail}")

    def _advice(self, code: int | None, description: str) -> str | None:
        template = advice_for(code, description)
        if template is None:
            return None
        certificate = "the certificate"
        if self._thumbprint:
            certificate += f" (thumbprint {self._thumbprint})"
        return template.format(
            tenant_id=self._tenant_id,
            client_id=self._client_id,
            graph_endpoint=self._graph_endpoint,
            certificate=certificate,
        )

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing from the server should echo a secret, but make sure.
        return redact_secrets(text, self._secrets())

    def _secrets(self) -> list[str]:
        if isinstance(self._credential, ClientSecret):
            return [self._credential.value] if self._credential.value else []
        return [self._credential.password] if self._credential.password else []


def _aadsts_code(result: Mapping[str, Any], description: str) -> int | None:
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    match = _AADSTS.search(description)
    return int(match.group(1)) if match else None


def _entra_sentence(description: str) -> str:
    """The first sentence of an Entra error_description, without code, trace and ids."""
    text = _AADSTS_PREFIX.sub("", description)
    return first_sentence(_TRACE_TAIL.split(text, maxsplit=1)[0])


class _TimeoutHttpClient:
    """The requests session MSAL talks through, each exchange within a deadline.

    An exchange ends by ``timeout`` seconds or by ``deadline`` (set for each
    sign-in), whichever comes first: connecting, each read, and the whole answer,
    which is read at once and at most SIGN_IN_MAX_BYTES.
    """

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout
        self.deadline = Deadline(FETCH_SECONDS)

    def get(self, *args: Any, **kwargs: Any) -> requests.Response:
        return self._exchange(self._session.get, *args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        return self._exchange(self._session.post, *args, **kwargs)

    def _exchange(
        self, method: Callable[..., requests.Response], *args: Any, **kwargs: Any
    ) -> requests.Response:
        exchange = self.deadline.within(self._timeout)
        if exchange.expired:
            raise TimeUp(exchange)
        kwargs["timeout"] = self.deadline.wait_limit(self._timeout)
        kwargs["stream"] = True
        response = method(*args, **kwargs)
        try:
            response._content = read_body(response, deadline=exchange, limit=SIGN_IN_MAX_BYTES)
        except BaseException:
            response.close()
            raise
        return response

    def close(self) -> None:
        self._session.close()
