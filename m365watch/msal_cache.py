"""MSAL's two caches, persisted: the token cache and the HTTP (discovery) cache.

Both live as JSON files, 0600, in one folder (beside the state by default), so a
run within a token's life makes no request at all to the identity platform.
JSON rather than pickle: a tampered or corrupt file then cannot run code. A file
that cannot be read is ignored and one that cannot be written is logged; either
costs one sign-in, never the run. Only the discovery answers of the HTTP cache are
written: MSAL also keeps error answers of the token endpoint there (to throttle), and
one from a proxy that echoes the request would hold the client secret.

:func:`cached_access_token` reads the token cache with json alone, so a run whose
token is still good never imports MSAL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from m365watch import files
from m365watch.redact import redact_secrets

if TYPE_CHECKING:
    import msal

logger = logging.getLogger(__name__)

TOKEN_CACHE_FILE = "msal_token_cache.json"
HTTP_CACHE_FILE = "msal_http_cache.json"
# A token cache of one app is a few KB; far more is not ours.
MAX_CACHE_BYTES = 16 * 1024 * 1024

# The bookkeeping key of MSAL's _ExpiringMapping inside http_cache (msal/individual_cache.py).
_HTTP_CACHE_INDEX = "_index_"
# What MSAL raises when a persisted cache holds well-formed nonsense.
CACHE_CORRUPTION_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
# A cached token closer than this to its expiry is left to MSAL (which itself takes one
# within five minutes of expiry as expired): it outlives any one poll that uses it.
TOKEN_MARGIN_SECONDS = 10 * 60


def cached_access_token(
    folder: Path, *, client_id: str, authority: str, scope: str, now: float
) -> str | None:
    """An access token of the persisted token cache that MSAL would hand out as it is.

    Read with json alone (no MSAL import, no network): the app-only bearer token for
    ``client_id`` from ``authority`` (``https://host/tenant``) whose scopes include
    ``scope``, valid for at least :data:`TOKEN_MARGIN_SECONDS` after ``now`` (POSIX
    seconds) and not yet due for refresh. MSAL files a token under the tenant's GUID;
    a tenant configured by domain name is found through the cached discovery answer.
    None when there is no such token or a file is missing or unreadable: then MSAL
    decides, as it always did.
    """
    text = _read_cache_file(folder / TOKEN_CACHE_FILE)
    if text is None:
        return None
    try:
        data = json.loads(text)
        _check_token_cache_shape(data)
    except (ValueError, TypeError, RecursionError):
        return None
    parts = urlsplit(authority)
    host, tenant = (parts.hostname or "").lower(), parts.path.strip("/")
    realms = {tenant, _discovered_realm(folder, authority, host)} - {None, ""}
    for entry in data.get("AccessToken", {}).values():
        secret = entry.get("secret")
        if not (
            isinstance(secret, str)
            and secret
            and entry.get("credential_type") == "AccessToken"
            and entry.get("client_id") == client_id
            and entry.get("environment") == host
            and entry.get("realm") in realms
            and not entry.get("home_account_id")
            # Tokens bound to a key (PoP, SSH) or kept apart (FMI paths) are not ours.
            and "key_id" not in entry
            and "ext_cache_key" not in entry
            and str(entry.get("token_type", "Bearer")).lower() == "bearer"
            and scope in str(entry.get("target", "")).split()
        ):
            continue
        try:
            expires_on = int(entry["expires_on"])
            refresh_on = int(entry["refresh_on"]) if "refresh_on" in entry else None
        except (KeyError, TypeError, ValueError):
            continue
        if expires_on - now < TOKEN_MARGIN_SECONDS:
            continue
        if refresh_on is not None and refresh_on <= now:
            continue  # MSAL would refresh it now
        return secret
    return None


def _discovered_realm(folder: Path, authority: str, host: str) -> str | None:
    """The tenant (GUID) in the token endpoint of ``authority``'s cached discovery answer."""
    text = _read_cache_file(folder / HTTP_CACHE_FILE)
    if text is None:
        return None
    prefix = f"GET {authority}/v2.0/.well-known/openid-configuration "
    try:
        data = json.loads(text)
        for key, value in data.items() if isinstance(data, dict) else ():
            if key.startswith(prefix) and value.get("status_code") == 200:
                endpoint = urlsplit(json.loads(value["text"])["token_endpoint"])
                if (endpoint.hostname or "").lower() == host:
                    realm = endpoint.path.strip("/").split("/")[0]
                    return realm or None
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return None
    return None


class MsalCaches:
    """MSAL's token cache and HTTP cache, backed by two files in ``folder``.

    Hand `token_cache` and `http_cache` to MSAL; call `load` once before MSAL's
    first use and `save` after each use. Nothing touches the disk until then.
    """

    def __init__(self, folder: Path, *, secrets: Iterable[str] = ()) -> None:
        """Empty caches for ``folder``; no I/O. No file gets any part of ``secrets``."""
        self.folder = folder
        self._secrets = tuple(s for s in secrets if s)
        self._token_cache: msal.SerializableTokenCache | None = None
        self.http_cache: dict[str, Any] = {}
        self._http_saved = ""

    @property
    def token_cache(self) -> msal.SerializableTokenCache:
        """MSAL's token cache (MSAL is imported on first use)."""
        if self._token_cache is None:
            import msal

            self._token_cache = msal.SerializableTokenCache()
        return self._token_cache

    def load(self) -> bool:
        """Fill both caches from their files; True when either file contributed anything.

        A missing, unreadable or malformed file is ignored: it costs one sign-in.
        """
        loaded = False
        token_text = _read_cache_file(self.folder / TOKEN_CACHE_FILE)
        if token_text is not None:
            try:
                state = json.loads(token_text)
                _check_token_cache_shape(state)
                self.token_cache.deserialize(token_text)
                loaded = bool(state)
            except (ValueError, TypeError, RecursionError) as exc:
                logger.debug("ignoring unreadable MSAL token cache: %s", type(exc).__name__)
        http_text = _read_cache_file(self.folder / HTTP_CACHE_FILE)
        if http_text is not None:
            try:
                self.http_cache.update(_http_cache_from_json(json.loads(http_text)))
                loaded = loaded or bool(self.http_cache)
            except (ValueError, TypeError, RecursionError) as exc:
                logger.debug("ignoring unreadable MSAL HTTP cache: %s", type(exc).__name__)
        self._http_saved = self._http_text()
        return loaded

    def save(self) -> None:
        """Write each cache that changed since `load` or the last save; never raises OSError."""
        # A cache that cannot be written costs one sign-in next run; it must not fail this one.
        if self._token_cache is not None and self._token_cache.has_state_changed:
            try:
                files.write_private_file(
                    self.folder / TOKEN_CACHE_FILE, self.token_cache.serialize().encode("utf-8")
                )
            except OSError as exc:
                self.token_cache.has_state_changed = True  # serialize() cleared it; retry later
                logger.warning("cannot write the MSAL token cache in %s: %s", self.folder, exc)
        http_text = self._http_text()
        if http_text != self._http_saved:
            try:
                files.write_private_file(self.folder / HTTP_CACHE_FILE, http_text.encode("utf-8"))
                self._http_saved = http_text
            except OSError as exc:
                logger.warning("cannot write the MSAL HTTP cache in %s: %s", self.folder, exc)

    def _http_text(self) -> str:
        """What the HTTP cache file holds: the discovery answers, every secret masked."""
        return _dump_json(_http_cache_to_json(self.http_cache, self._secrets))

    def discard(self) -> None:
        """Forget both caches (MSAL choked on them); the next `save` replaces both files."""
        self.token_cache.deserialize(None)
        self.token_cache.has_state_changed = True
        self.http_cache.clear()


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
            from msal.exceptions import MsalServiceError

            raise MsalServiceError(
                f"HTTP Error: {self.status_code}", error=None, error_description=None
            )


def _http_cache_to_json(cache: Mapping[str, Any], secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The successful GET (discovery) answers of MSAL's http_cache, and their index, as JSON.

    Left out, kept in memory for this run only: what MSAL caches of the token endpoint's
    answers (an error, or one with Retry-After), which may quote the request and its secret.
    Belt and braces: any part of ``secrets`` in what is kept is masked too.
    """
    # JSON rather than pickle: a tampered or corrupt file then cannot run code.
    out: dict[str, Any] = {}
    for key, value in cache.items():
        if key == _HTTP_CACHE_INDEX:
            continue
        if not all(hasattr(value, name) for name in ("status_code", "text", "headers")):
            logger.debug("not persisting an MSAL HTTP cache entry of type %s", type(value))
        elif str(key).startswith("GET ") and 200 <= int(value.status_code) < 300:
            out[key] = {
                "status_code": int(value.status_code),
                "text": redact_secrets(str(value.text), secrets),
                # Cookies are session state, not discovery data; keep them off disk.
                "headers": {
                    str(k): redact_secrets(str(v), secrets)
                    for k, v in dict(value.headers).items()
                    if k != "set-cookie"
                },
            }
    index = cache.get(_HTTP_CACHE_INDEX)
    if index is not None:
        sequence, timestamps = index
        out[_HTTP_CACHE_INDEX] = (
            [entry for entry in sequence if entry[2] in out],
            {key: stamp for key, stamp in timestamps.items() if key in out},
        )
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
    # Bounded, and never a pipe: a cache is an optimisation, and must not hang or fill memory.
    try:
        return files.read_bounded(path, MAX_CACHE_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.debug("ignoring unreadable cache file %s: %s", path, type(exc).__name__)
        return None
