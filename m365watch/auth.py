"""Sign in to Microsoft Entra ID with app-only credentials, through MSAL.

`TokenProvider.get_token` returns a bearer token for Microsoft Graph. MSAL's
token cache and its HTTP (discovery) cache are both persisted under
``cache_dir``, so a run within a token's life makes no request at all to the
identity platform. Library errors are translated here into `AuthError` and
`ConfigError` messages that say what to fix; they never carry a secret.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import msal
import requests
from msal.exceptions import MsalServiceError

from m365watch import files
from m365watch.errors import AuthError, ConfigError
from m365watch.redact import first_line, first_sentence, redact_secrets

logger = logging.getLogger(__name__)

TOKEN_CACHE_FILE = "msal_token_cache.json"
HTTP_CACHE_FILE = "msal_http_cache.json"

# The bookkeeping key of MSAL's _ExpiringMapping inside http_cache (msal/individual_cache.py).
_HTTP_CACHE_INDEX = "_index_"

_AADSTS = re.compile(r"AADSTS(\d+)")
_AADSTS_PREFIX = re.compile(r"^\s*AADSTS\d+:\s*")
# Entra appends these after the description proper; none of it helps the reader.
_TRACE_TAIL = re.compile(r"\s(?:Trace ID|Correlation ID|Timestamp):")
# Entra error codes that mean "no such tenant" and "this certificate is not accepted".
_TENANT_CODES = frozenset({90002, 900023, 50059})
_CERTIFICATE_CODES = frozenset({700027, 7000274, 7000214, 7000277, 1000502})
# What MSAL raises when a persisted cache holds well-formed nonsense.
_CACHE_CORRUPTION_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


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
        timeout: float = 30.0,
    ) -> None:
        """Check the settings' shape (raising `ConfigError`); do no I/O."""
        for name, value in (("tenant_id", tenant_id), ("client_id", client_id)):
            if not value or not re.fullmatch(r"[A-Za-z0-9._-]+", value):
                raise ConfigError(
                    f"{name} must be a GUID or domain name, got {value!r}; "
                    "copy it from the app registration's Overview page"
                )
        for name, url in (("authority host", authority_host), ("Graph endpoint", graph_endpoint)):
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname or parts.path.strip("/"):
                raise ConfigError(f"{name} must look like https://host, got {url!r}")
        if tenant_id.lower() in ("common", "organizations", "consumers"):
            raise ConfigError(
                f"tenant_id must name your tenant (its ID or domain), not {tenant_id!r}"
            )
        if isinstance(credential, ClientSecret) and not credential.value:
            raise ConfigError("the client secret is empty; set the secret's Value")
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._credential = credential
        self._authority_host = authority_host.rstrip("/")
        self._graph_endpoint = graph_endpoint.rstrip("/")
        self._cache_dir = cache_dir
        # requests.Session() keeps trust_env on: HTTPS_PROXY and REQUESTS_CA_BUNDLE apply.
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._host = urlsplit(self._authority_host).hostname or self._authority_host
        self._lock = threading.Lock()
        self._app: Any = None
        self._thumbprint: str | None = None
        self._token_cache = msal.SerializableTokenCache()
        self._http_cache: dict[str, Any] = {}
        self._http_cache_saved = ""
        self._caches_loaded = False

    @property
    def scope(self) -> str:
        """The app-only scope for this cloud's Graph: ``{graph_endpoint}/.default``."""
        return f"{self._graph_endpoint}/.default"

    @property
    def authority(self) -> str:
        """The authority URL MSAL signs in against: ``{authority_host}/{tenant_id}``."""
        return f"{self._authority_host}/{self._tenant_id}"

    def get_token(self) -> str:
        """Return an access token for Graph, from the persisted cache when still valid.

        Raises `AuthError` when Entra ID refuses the credentials or cannot be
        reached, and `ConfigError` when the certificate file cannot be used.
        """
        with self._lock:
            loaded_from_disk = False
            if not self._caches_loaded:
                loaded_from_disk = self._load_caches()
                self._caches_loaded = True
            try:
                with self._translate_errors():
                    result = self._acquire(may_discard_caches=loaded_from_disk)
            finally:
                # Even a failed attempt may have taught MSAL the tenant's discovery document.
                self._save_caches()
        if not isinstance(result, Mapping) or not isinstance(result.get("access_token"), str):
            raise AuthError(self._describe_failure(result if isinstance(result, Mapping) else {}))
        logger.debug("access token for %s from %s", self.scope, result.get("token_source", "?"))
        token: str = result["access_token"]
        return token

    # -- MSAL application ---------------------------------------------------

    def _acquire(self, *, may_discard_caches: bool) -> Any:
        try:
            if self._app is None:
                self._app = self._create_app()
            return self._app.acquire_token_for_client(scopes=[self.scope])
        except _CACHE_CORRUPTION_ERRORS as exc:
            # MSAL trusts its caches; a well-formed file with nonsense inside (a damaged
            # expiry, a discovery document that is not JSON) surfaces here. Start afresh once.
            if not may_discard_caches:
                raise
            logger.debug("discarding the persisted MSAL caches after %s", type(exc).__name__)
            self._token_cache.deserialize(None)
            self._token_cache.has_state_changed = True  # so the damaged file gets replaced
            self._http_cache.clear()
            self._app = None
            return self._acquire(may_discard_caches=False)

    def _client_credential(self) -> str | dict[str, str]:
        if isinstance(self._credential, ClientSecret):
            return self._credential.value
        credential, info = self._credential.load()
        self._thumbprint = info.thumbprint
        return credential

    def _create_app(self) -> Any:
        # The certificate's ConfigError is no ValueError: _translate_errors lets it through.
        client_credential = self._client_credential()
        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=client_credential,
            authority=self.authority,
            token_cache=self._token_cache,
            http_cache=self._http_cache,
            # MSAL applies its own timeout only to a session it creates itself.
            http_client=_TimeoutHttpClient(self._session, self._timeout),
            # Always off: for a host MSAL does not know it would validate the authority
            # at login.microsoftonline.com, and on every error it would look up aliases at
            # a discovery endpoint; neither helps client credentials, and a sovereign-cloud
            # deployment must not depend on (or talk to) another cloud.
            instance_discovery=False,
        )

    @contextlib.contextmanager
    def _translate_errors(self) -> Iterator[None]:
        host = self._host
        try:
            yield
        except requests.Timeout as exc:
            raise AuthError(
                f"cannot reach {host}: no answer within {self._timeout:g} s; "
                "check the network and HTTPS_PROXY"
            ) from exc
        except requests.exceptions.ProxyError as exc:
            raise AuthError(
                f"cannot reach {host}: the proxy refused the connection; check HTTPS_PROXY"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise AuthError(
                f"cannot reach {host}: TLS verification failed; if a proxy inspects TLS, "
                "point REQUESTS_CA_BUNDLE at its CA certificate"
            ) from exc
        except requests.ConnectionError as exc:
            raise AuthError(
                f"cannot reach {host}: connection failed; check DNS, the firewall and HTTPS_PROXY"
            ) from exc
        except requests.RequestException as exc:
            raise AuthError(f"cannot reach {host}: {type(exc).__name__}") from exc
        except MsalServiceError as exc:
            raise AuthError(
                f"{host} answered with an error ({self._redact(str(exc))}); try again later"
            ) from exc
        except ValueError as exc:
            raise AuthError(self._describe_value_error(exc)) from exc
        except (AttributeError, KeyError, TypeError, IndexError) as exc:
            # MSAL trusts the shape of what the server sends (a JSON string or list breaks it).
            raise AuthError(
                f"{host} answered in a shape MSAL cannot read ({type(exc).__name__}); "
                "a proxy in the way? check HTTPS_PROXY, or try again later"
            ) from exc

    def _describe_value_error(self, exc: ValueError) -> str:
        # MSAL raises ValueError for a tenant its discovery endpoint does not know and
        # for a discovery or token answer that is not JSON (a proxy's login page).
        texts = [str(exc)] + [str(e) for e in (exc.__context__, exc.__cause__) if e]
        for text in texts:
            match = _AADSTS.search(text)
            if match and int(match.group(1)) in _TENANT_CODES:
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
        cert = "the certificate"
        if self._thumbprint:
            cert += f" (thumbprint {self._thumbprint})"
        if code == 7000215:
            return (
                "the client secret is wrong; copy the secret's Value "
                "(not its ID) from the app registration"
            )
        if code == 7000222:
            return (
                "the client secret has expired; create a new one under Certificates & "
                "secrets in the app registration and update the configuration"
            )
        if code == 700016:
            return (
                f"application {self._client_id} was not found in tenant {self._tenant_id}; "
                "check client_id and tenant_id, and that the app lives in this cloud"
            )
        if code in _TENANT_CODES:
            return (
                f"tenant {self._tenant_id!r} was not found; "
                "check tenant_id and that the cloud setting matches the tenant"
            )
        if code in _CERTIFICATE_CODES:
            return (
                f"{cert} was rejected; upload it to the app registration under Certificates "
                "& secrets, and check it has not expired or been revoked"
            )
        if code == 700024:
            return "the client assertion is outside its valid time range; check the system clock"
        if code == 7000112:
            return f"application {self._client_id} is disabled in tenant {self._tenant_id}"
        if code == 500011:
            return (
                f"{self._graph_endpoint} is not available to this tenant; "
                "check that the cloud setting matches the tenant"
            )
        if code in (65001, 7000229) or "consent" in description.lower():
            return (
                "admin consent is missing; an administrator must grant admin consent "
                "for ServiceHealth.Read.All in the app registration's API permissions"
            )
        return None

    def _redact(self, text: str) -> str:
        # Belt and braces: nothing from the server should echo a secret, but make sure.
        return redact_secrets(text, self._secrets())

    def _secrets(self) -> list[str]:
        if isinstance(self._credential, ClientSecret):
            return [self._credential.value] if self._credential.value else []
        return [self._credential.password] if self._credential.password else []

    # -- cache persistence ------------------------------------------------------

    def _load_caches(self) -> bool:
        """Fill MSAL's caches from disk; True when either file contributed anything."""
        loaded = False
        token_text = _read_cache_file(self._cache_dir / TOKEN_CACHE_FILE)
        if token_text is not None:
            try:
                state = json.loads(token_text)
                _check_token_cache_shape(state)
                self._token_cache.deserialize(token_text)
                loaded = bool(state)
            except (ValueError, TypeError) as exc:
                logger.debug("ignoring unreadable MSAL token cache: %s", type(exc).__name__)
        http_text = _read_cache_file(self._cache_dir / HTTP_CACHE_FILE)
        if http_text is not None:
            try:
                self._http_cache.update(_http_cache_from_json(json.loads(http_text)))
                loaded = loaded or bool(self._http_cache)
            except (ValueError, TypeError) as exc:
                logger.debug("ignoring unreadable MSAL HTTP cache: %s", type(exc).__name__)
        self._http_cache_saved = _dump_json(_http_cache_to_json(self._http_cache))
        return loaded

    def _save_caches(self) -> None:
        # A cache that cannot be written costs one sign-in next run; it must not fail this one.
        if self._token_cache.has_state_changed:
            try:
                _write_private_file(
                    self._cache_dir / TOKEN_CACHE_FILE, self._token_cache.serialize()
                )
            except OSError as exc:
                self._token_cache.has_state_changed = True  # serialize() cleared it; retry later
                logger.warning("cannot write the MSAL token cache in %s: %s", self._cache_dir, exc)
        http_text = _dump_json(_http_cache_to_json(self._http_cache))
        if http_text != self._http_cache_saved:
            try:
                _write_private_file(self._cache_dir / HTTP_CACHE_FILE, http_text)
                self._http_cache_saved = http_text
            except OSError as exc:
                logger.warning("cannot write the MSAL HTTP cache in %s: %s", self._cache_dir, exc)


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
    """The requests session MSAL talks through, with a timeout on every request."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def get(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(*args, **kwargs)

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(*args, **kwargs)

    def close(self) -> None:
        self._session.close()


class _CachedResponse:
    """A discovery or throttling answer restored from the HTTP cache file.

    It has the shape of MSAL's NormalizedResponse, which is what MSAL stores.
    """

    def __init__(self, status_code: int, text: str, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = headers

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise MsalServiceError(
                f"HTTP Error: {self.status_code}", error=None, error_description=None
            )


def _http_cache_to_json(cache: Mapping[str, Any]) -> dict[str, Any]:
    # JSON rather than pickle: a tampered or corrupt file then cannot run code.
    out: dict[str, Any] = {}
    for key, value in cache.items():
        if key == _HTTP_CACHE_INDEX:
            out[key] = value
        elif all(hasattr(value, name) for name in ("status_code", "text", "headers")):
            out[key] = {
                "status_code": int(value.status_code),
                "text": str(value.text),
                # Cookies are session state, not discovery data; keep them off disk.
                "headers": {
                    str(k): str(v) for k, v in dict(value.headers).items() if k != "set-cookie"
                },
            }
        else:
            logger.debug("not persisting an MSAL HTTP cache entry of type %s", type(value))
    return out


def _http_cache_from_json(data: Any) -> dict[str, Any]:
    """Rebuild MSAL's http_cache from its JSON form; ValueError when the shape is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not an object")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == _HTTP_CACHE_INDEX:
            sequence, timestamps = value
            if not isinstance(sequence, list) or not isinstance(timestamps, dict):
                raise ValueError("bad index")
            for expires_at, created_at, entry_key in sequence:
                if not (
                    isinstance(expires_at, int)
                    and isinstance(created_at, int)
                    and isinstance(entry_key, str)
                ):
                    raise ValueError("bad index entry")
            for stamp in timestamps.values():
                if not (
                    isinstance(stamp, list)
                    and len(stamp) == 2
                    and all(isinstance(n, int) for n in stamp)
                ):
                    raise ValueError("bad index timestamp")
            out[key] = (sequence, timestamps)
        elif (
            isinstance(value, dict)
            and isinstance(value.get("status_code"), int)
            and isinstance(value.get("text"), str)
            and isinstance(value.get("headers"), dict)
        ):
            out[key] = _CachedResponse(value["status_code"], value["text"], value["headers"])
        else:
            raise ValueError("bad entry")
    return out


def _check_token_cache_shape(data: Any) -> None:
    # MSAL trusts whatever deserialize() gets; a wrong shape would crash it later.
    if not isinstance(data, dict) or not all(
        isinstance(section, dict) and all(isinstance(e, dict) for e in section.values())
        for section in data.values()
    ):
        raise ValueError("not an MSAL token cache")


def _dump_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=1)


def _read_cache_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.debug("ignoring unreadable cache file %s: %s", path, type(exc).__name__)
        return None


def _write_private_file(path: Path, text: str) -> None:
    """Atomically replace ``path`` with a 0600 file, creating its folder 0700."""
    files.write_private_file(path, text.encode("utf-8"))
