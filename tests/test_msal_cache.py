"""Tests for m365watch.msal_cache: MSAL's caches on disk, mostly through a real TokenProvider."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from requests import PreparedRequest

from m365watch.errors import AuthError
from m365watch.msal_cache import (
    HTTP_CACHE_FILE,
    TOKEN_CACHE_FILE,
    TOKEN_MARGIN_SECONDS,
    MsalCaches,
    cached_access_token,
)
from tests.identity import (
    CLIENT_ID,
    GLOBAL_HOST,
    SECRET,
    TENANT,
    TENANT_GUID,
    TOKEN,
    discovery_url,
    mock_identity,
    openid_configuration,
    provider,
    token_url,
)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- persisted caches ------------------------------------------------------------------


def test_second_provider_makes_no_http_request(tmp_path: Path) -> None:
    cache_dir = tmp_path / "state" / "cache"
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        assert provider(cache_dir).get_token() == TOKEN
        assert len(rsps.calls) == 2

    assert mode(cache_dir) == 0o700
    token_file, http_file = cache_dir / TOKEN_CACHE_FILE, cache_dir / HTTP_CACHE_FILE
    assert mode(token_file) == 0o600
    assert mode(http_file) == 0o600
    assert SECRET not in token_file.read_text() + http_file.read_text()
    assert TOKEN not in http_file.read_text()  # tokens live only in the token cache
    before = {p: p.stat().st_ino for p in (token_file, http_file)}
    assert sorted(os.listdir(cache_dir)) == [HTTP_CACHE_FILE, TOKEN_CACHE_FILE]  # no temp left

    # A new process: no mocks registered, so any request at all would fail the test.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        assert provider(cache_dir).get_token() == TOKEN
        assert len(rsps.calls) == 0
    # Nothing changed, so neither file was rewritten (os.replace would give a new inode).
    assert {p: p.stat().st_ino for p in (token_file, http_file)} == before


def test_cached_discovery_saves_the_get_when_the_token_expired(tmp_path: Path) -> None:
    with responses.RequestsMock() as rsps:
        mock_identity(
            rsps, token_body={"token_type": "Bearer", "expires_in": 0, "access_token": "old"}
        )
        assert provider(tmp_path).get_token() == "old"
    with responses.RequestsMock() as rsps:
        rsps.post(
            token_url(GLOBAL_HOST),
            json={"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN},
        )
        assert provider(tmp_path).get_token() == TOKEN
        assert [c.request.method for c in rsps.calls] == ["POST"]


def test_cache_files_replace_wider_permissions(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    cache_file = tmp_path / TOKEN_CACHE_FILE
    cache_file.write_text("{}")
    cache_file.chmod(0o644)
    mock_identity(rsps)
    provider(tmp_path).get_token()
    assert mode(cache_file) == 0o600


# What a broken proxy in front of the token endpoint says back: the request, in full or in part.
ECHOES = {
    "whole": lambda form: f"Bad request: {form}",
    "part": lambda form: f"Bad value {parse_qs(form)['client_secret'][0][3:15]}.",
    "split": lambda form: "Bad value {}\r\n{}.".format(
        parse_qs(form)["client_secret"][0][:20], parse_qs(form)["client_secret"][0][20:]
    ),
}


@pytest.mark.parametrize("echo", list(ECHOES), ids=list(ECHOES))
def test_an_echoed_secret_never_reaches_the_cache_files(
    tmp_path: Path, rsps: responses.RequestsMock, echo: str
) -> None:
    def token_endpoint(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        form = (
            request.body if isinstance(request.body, str) else bytes(request.body or b"").decode()
        )
        said = ECHOES[echo](form)
        return 400, {}, json.dumps({"error": "invalid_request", "error_description": said})

    rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    rsps.add_callback(responses.POST, token_url(GLOBAL_HOST), callback=token_endpoint)
    with pytest.raises(AuthError):
        provider(tmp_path).get_token()

    written = "".join(p.read_text() for p in tmp_path.iterdir())
    runs = {SECRET[i : i + 8] for i in range(len(SECRET) - 7)}
    assert not [run for run in runs if run in written]
    # The discovery answer is still kept: the next run does not fetch it again.
    kept = json.loads((tmp_path / HTTP_CACHE_FILE).read_text())
    assert [key.split()[:2] for key in kept if key != "_index_"] == [
        ["GET", discovery_url(GLOBAL_HOST)]
    ]


def test_a_token_answer_with_retry_after_is_not_written_to_the_http_cache(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    # MSAL caches any token answer that carries Retry-After, access token and all.
    rsps.get(discovery_url(GLOBAL_HOST), json=openid_configuration(GLOBAL_HOST))
    rsps.post(
        token_url(GLOBAL_HOST),
        json={"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN},
        headers={"Retry-After": "30"},
    )
    assert provider(tmp_path).get_token() == TOKEN
    assert TOKEN not in (tmp_path / HTTP_CACHE_FILE).read_text()
    assert "POST" not in (tmp_path / HTTP_CACHE_FILE).read_text()


# -- corrupt caches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token_text", "http_text"),
    [
        ("not json at all", "{{{"),
        ("[]", "[]"),
        ('{"AccessToken": 5}', '{"_index_": 3}'),
        ('{"AccessToken": {"k": "v"}}', '{"GET x": {"status_code": "200"}}'),
        ("", '{"_index_": [[["soon", 0, "k"]], {}]}'),
    ],
    ids=["garbage", "json-list", "wrong-types", "wrong-entries", "empty-and-bad-index"],
)
def test_corrupt_cache_files_are_ignored_and_replaced(
    tmp_path: Path,
    rsps: responses.RequestsMock,
    caplog: pytest.LogCaptureFixture,
    token_text: str,
    http_text: str,
) -> None:
    (tmp_path / TOKEN_CACHE_FILE).write_text(token_text)
    (tmp_path / HTTP_CACHE_FILE).write_text(http_text)
    mock_identity(rsps)
    with caplog.at_level(logging.DEBUG, logger="m365watch.msal_cache"):
        assert provider(tmp_path).get_token() == TOKEN
    assert len(rsps.calls) == 2
    assert "ignoring unreadable" in caplog.text
    # Both files were rewritten with something the next run can use.
    json.loads((tmp_path / TOKEN_CACHE_FILE).read_text())
    json.loads((tmp_path / HTTP_CACHE_FILE).read_text())


def test_binary_cache_file_is_ignored(tmp_path: Path, rsps: responses.RequestsMock) -> None:
    (tmp_path / HTTP_CACHE_FILE).write_bytes(b"\x80\x04\x95pickle\xff")
    mock_identity(rsps)
    assert provider(tmp_path).get_token() == TOKEN


def test_unwritable_cache_dir_does_not_fail_the_sign_in(
    tmp_path: Path, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("")
    mock_identity(rsps)
    with caplog.at_level(logging.WARNING, logger="m365watch.msal_cache"):
        assert provider(blocker / "cache").get_token() == TOKEN
    assert "cannot write the MSAL token cache" in caplog.text


# -- the caches on their own ---------------------------------------------------------------


def test_nothing_to_load_and_nothing_changed_writes_nothing(tmp_path: Path) -> None:
    caches = MsalCaches(tmp_path / "cache")
    assert caches.load() is False
    caches.save()
    assert not (tmp_path / "cache").exists()


def test_http_cache_round_trip_keeps_answers_but_not_cookies(tmp_path: Path) -> None:
    # What MSAL keeps in its http_cache: an object with these three attributes.
    answer = SimpleNamespace(
        status_code=200,
        text='{"issuer": "x"}',
        headers={"content-type": "application/json", "set-cookie": "session=1"},
    )
    caches = MsalCaches(tmp_path)
    caches.load()
    caches.http_cache["GET https://login/x"] = answer
    caches.http_cache["_index_"] = ([[2000000000, 1000000000, "GET https://login/x"]], {})
    caches.save()
    assert "session=1" not in (tmp_path / HTTP_CACHE_FILE).read_text()

    again = MsalCaches(tmp_path)
    assert again.load() is True
    restored = again.http_cache["GET https://login/x"]
    assert (restored.status_code, restored.text, restored.headers) == (
        200,
        '{"issuer": "x"}',
        {"content-type": "application/json"},
    )
    assert again.http_cache["_index_"] == ([[2000000000, 1000000000, "GET https://login/x"]], {})


def test_a_kept_answer_quoting_a_secret_is_written_masked(tmp_path: Path) -> None:
    # Belt and braces: a discovery answer is fetched without the secret, so holds none.
    password = "correct horse battery staple"
    answer = SimpleNamespace(
        status_code=200,
        text=f'{{"issuer": "x", "echo": "{password[4:20]}"}}',
        headers={"x-echo": password},
    )
    caches = MsalCaches(tmp_path, secrets=[password])
    caches.http_cache["GET https://login/x"] = answer
    caches.save()
    kept = json.loads((tmp_path / HTTP_CACHE_FILE).read_text())["GET https://login/x"]
    assert kept["text"] == '{"issuer": "x", "echo": "***"}'
    assert kept["headers"] == {"x-echo": "***"}


def test_discard_empties_both_caches_and_replaces_the_files(tmp_path: Path) -> None:
    (tmp_path / TOKEN_CACHE_FILE).write_text(json.dumps({"AccessToken": {"k": {"secret": "x"}}}))
    (tmp_path / HTTP_CACHE_FILE).write_text(
        json.dumps({"GET x": {"status_code": 200, "text": "{}", "headers": {}}})
    )
    caches = MsalCaches(tmp_path)
    assert caches.load() is True
    caches.discard()
    assert caches.http_cache == {}
    caches.save()
    assert json.loads((tmp_path / HTTP_CACHE_FILE).read_text()) == {}
    assert not any(json.loads((tmp_path / TOKEN_CACHE_FILE).read_text()).values())


@pytest.mark.parametrize("name", [TOKEN_CACHE_FILE, HTTP_CACHE_FILE])
@pytest.mark.parametrize("kind", ["named-pipe", "nested-too-deep"])
def test_a_cache_file_that_is_a_pipe_or_too_deep_is_ignored_without_hanging(
    tmp_path: Path, name: str, kind: str
) -> None:
    path = tmp_path / name
    if kind == "named-pipe":
        os.mkfifo(path)
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)
    loaded: list[bool] = []
    worker = threading.Thread(
        target=lambda: loaded.append(MsalCaches(tmp_path).load()), daemon=True
    )
    worker.start()
    worker.join(timeout=10)
    assert loaded == [False], "loading the caches hung or failed"


# -- a token still good: MSAL is not even built ----------------------------------------------


@pytest.fixture
def msal_apps(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every MSAL app the provider builds (it builds one only when it needs MSAL)."""
    import msal

    made: list[object] = []
    real = msal.ConfidentialClientApplication

    def spy(*args: object, **kwargs: object) -> object:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(msal, "ConfidentialClientApplication", spy)
    return made


def signed_in(cache_dir: Path) -> dict[str, Any]:
    """Sign in once (the caches land in ``cache_dir``); the cached access-token entry."""
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        assert provider(cache_dir).get_token() == TOKEN
    entries = json.loads((cache_dir / TOKEN_CACHE_FILE).read_text())["AccessToken"]
    assert len(entries) == 1
    entry: dict[str, Any] = next(iter(entries.values()))
    return entry


def rewrite_entry(cache_dir: Path, **changes: object) -> None:
    path = cache_dir / TOKEN_CACHE_FILE
    data = json.loads(path.read_text())
    for entry in data["AccessToken"].values():
        entry.update(changes)
    path.write_text(json.dumps(data))


def test_a_cached_token_still_good_is_served_without_msal(
    tmp_path: Path, msal_apps: list[object], caplog: pytest.LogCaptureFixture
) -> None:
    entry = signed_in(tmp_path)
    # The domain-name tenant is filed under its GUID, found through the cached discovery.
    assert entry["realm"] == TENANT_GUID
    msal_apps.clear()
    before = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    caplog.set_level(logging.DEBUG)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        assert provider(tmp_path).get_token() == TOKEN
        assert len(rsps.calls) == 0
    assert msal_apps == []
    assert {p.name: p.stat().st_ino for p in tmp_path.iterdir()} == before  # nothing written
    assert "from the persisted cache" in caplog.text
    assert TOKEN not in caplog.text and SECRET not in caplog.text


@pytest.mark.parametrize(
    ("changes", "msal_answer"),
    [
        # MSAL itself still serves it (more than 5 minutes left), but that is its call.
        ({"expires_on": f"+{TOKEN_MARGIN_SECONDS - 60}"}, TOKEN),
        ({"expires_on": "+0"}, "fresh"),
        ({"refresh_on": "-1"}, "fresh"),
        ({"realm": "99999999-8888-7777-6666-555555555555"}, "fresh"),
        ({"client_id": "99999999-2222-3333-4444-555555555555"}, "fresh"),
        ({"environment": "login.example.com"}, "fresh"),
        # (MSAL finds this one by its key, which still names the old scope: its call.)
        ({"target": "https://graph.example.com/.default"}, None),
        ({"expires_on": "soon"}, "fresh"),
    ],
    ids=[
        "expiring",
        "expired",
        "refresh-due",
        "other-tenant",
        "other-client",
        "other-host",
        "other-scope",
        "damaged-expiry",
    ],
)
def test_any_doubt_about_the_cached_token_leaves_it_to_msal(
    tmp_path: Path, msal_apps: list[object], changes: dict[str, str], msal_answer: str | None
) -> None:
    import time

    signed_in(tmp_path)
    now = int(time.time())
    rewrite_entry(
        tmp_path,
        **{
            key: str(now + int(value)) if value[0] in "+-" else value
            for key, value in changes.items()
        },
    )
    msal_apps.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps, token="fresh")
        token = provider(tmp_path).get_token()
    assert msal_apps  # (two when MSAL chokes on the entry and starts afresh)
    assert msal_answer is None or token == msal_answer


@pytest.mark.parametrize(
    "content",
    ["{not json", "[]", '{"AccessToken": []}', ""],
    ids=["json", "list", "shape", "empty"],
)
def test_a_damaged_token_cache_leaves_the_sign_in_to_msal(
    tmp_path: Path, msal_apps: list[object], content: str
) -> None:
    signed_in(tmp_path)
    (tmp_path / TOKEN_CACHE_FILE).write_text(content)
    msal_apps.clear()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mock_identity(rsps, token="fresh")
        assert provider(tmp_path).get_token() == "fresh"
    assert len(msal_apps) == 1


def test_cached_access_token_matches_tenant_client_scope_and_time(tmp_path: Path) -> None:
    entry = signed_in(tmp_path)
    expires = int(entry["expires_on"])
    authority = f"{GLOBAL_HOST}/{TENANT}"
    ask = dict(client_id=CLIENT_ID, authority=authority, scope=entry["target"])
    assert cached_access_token(tmp_path, now=expires - 3600, **ask) == TOKEN
    assert cached_access_token(tmp_path, now=expires - TOKEN_MARGIN_SECONDS + 1, **ask) is None
    # By GUID directly, and without the discovery answer when the tenant is the GUID.
    (tmp_path / HTTP_CACHE_FILE).unlink()
    by_guid = {**ask, "authority": f"{GLOBAL_HOST}/{TENANT_GUID}"}
    assert cached_access_token(tmp_path, now=expires - 3600, **by_guid) == TOKEN
    assert cached_access_token(tmp_path, now=expires - 3600, **ask) is None
    assert cached_access_token(tmp_path / "nowhere", now=expires - 3600, **by_guid) is None
