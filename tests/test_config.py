"""Tests for m365watch.config: TOML + ${ENV} into frozen Settings, every mistake a ConfigError."""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from m365watch import settings as settings_module
from m365watch.config import (
    default_config_path,
    default_state_path,
    load_settings,
    parse_settings,
)
from m365watch.errors import ConfigError
from m365watch.settings import PollSettings, Settings, TargetSettings, TenantSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Never allowed in an error message, a warning or a repr.
SENTINEL = "Zq8~S3NT1NEL.secret-value_do-not-print"
WORKFLOWS_URL = "workflows://prod-00.westus.logic.azure.com:443/abcdef0123456789/signature0123"
MAIL_URL = "mailto://user:pass@127.0.0.1:2525?to=ops@example.com"

EXAMPLE = """\
[tenant]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
client_secret = "${M365WATCH_CLIENT_SECRET}"
cloud = "global"
[state]
path = "state/state.json"
[poll]
services = ["Exchange Online"]
classifications = ["incident", "advisory"]
notify_existing = false
[[notify]]
name = "ops-teams"
url = "workflows://prod-00.westus.logic.azure.com:443/abcdef0123456789/signature0123"
services = []
classifications = []
events = []
[[notify]]
name = "mail"
urls = ["mailto://user:pass@127.0.0.1:2525?to=ops@example.com"]
events = ["new", "resolved"]
"""

ENV = {"M365WATCH_CLIENT_SECRET": SENTINEL}


def write(folder: Path, text: str, mode: int = 0o600) -> Path:
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def example_doc() -> dict[str, Any]:
    """The example as a parsed document, with the sentinel as a literal secret."""
    doc = tomllib.loads(EXAMPLE)
    doc["tenant"]["client_secret"] = SENTINEL
    return doc


def assert_clean(error: ConfigError) -> str:
    message = str(error)
    assert "\n" not in message
    assert SENTINEL not in message
    assert message.strip() == message and message
    return message


# --- a full valid configuration ------------------------------------------------


def test_example_loads_into_settings(tmp_path: Path) -> None:
    path = write(tmp_path, EXAMPLE)
    settings = load_settings(path, env=ENV)
    assert settings == Settings(
        tenant=TenantSettings(
            tenant_id="contoso.onmicrosoft.com",
            client_id="11111111-2222-3333-4444-555555555555",
            client_secret=SENTINEL,
            certificate_path=None,
            certificate_password=None,
            cloud="global",
            authority=None,
            graph_endpoint=None,
        ),
        state_path=tmp_path / "state" / "state.json",
        poll=PollSettings(
            services=("Exchange Online",),
            classifications=("incident", "advisory"),
            notify_existing=False,
        ),
        targets=(
            TargetSettings(name="ops-teams", urls=(WORKFLOWS_URL,)),
            TargetSettings(name="mail", urls=(MAIL_URL,), events=("new", "resolved")),
        ),
        alert_after=3,
        source=path,
        warnings=(),
    )
    assert [t.schemes for t in settings.targets] == [("workflows",), ("mailto",)]


def test_settings_repr_hides_secrets_and_urls(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE), env=ENV)
    text = repr(settings)
    assert SENTINEL not in text
    assert WORKFLOWS_URL not in text and MAIL_URL not in text
    assert "ops-teams" in text


def test_targets_fingerprint_follows_urls(tmp_path: Path) -> None:
    first = load_settings(write(tmp_path, EXAMPLE), env=ENV)
    again = load_settings(write(tmp_path, EXAMPLE), env=ENV)
    changed = load_settings(write(tmp_path, EXAMPLE.replace("2525", "2526")), env=ENV)
    assert first.targets_fingerprint == again.targets_fingerprint
    assert first.targets_fingerprint != changed.targets_fingerprint
    assert len(first.targets_fingerprint) == 64


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {},
            Settings(tenant=None, state_path=Path("/var/lib/m365watch/state.json")),
        ),
        (
            {"poll": {"classifications": ["Incident"], "services": "Exchange Online"}},
            Settings(
                tenant=None,
                state_path=Path("/var/lib/m365watch/state.json"),
                poll=PollSettings(services=("Exchange Online",), classifications=("incident",)),
            ),
        ),
        (
            {
                "notify": [{"urls": ["json://127.0.0.1:8080/"], "events": ["PIR"], "digest": True}],
                "health": {"alert_after": 1},
            },
            Settings(
                tenant=None,
                state_path=Path("/var/lib/m365watch/state.json"),
                targets=(
                    TargetSettings(
                        name="notify-1",
                        urls=("json://127.0.0.1:8080/",),
                        events=("pir",),
                        digest=True,
                    ),
                ),
                alert_after=1,
            ),
        ),
    ],
    ids=["empty-document-defaults", "values-normalised", "unnamed-target-and-health"],
)
def test_parse_settings_defaults(document: dict[str, Any], expected: Settings) -> None:
    env = {"STATE_DIRECTORY": "/var/lib/m365watch"}
    assert parse_settings(document, env=env) == expected


@pytest.mark.parametrize(
    ("tenant", "expected"),
    [
        (
            {"cloud": "USGov", "authority": "https://login.microsoftonline.us/"},
            {"cloud": "usgov", "authority": "https://login.microsoftonline.us"},
        ),
        (
            {"graph_endpoint": "https://graph.microsoft.us"},
            {"cloud": "global", "graph_endpoint": "https://graph.microsoft.us"},
        ),
        ({"tenant_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}, {"cloud": "global"}),
    ],
    ids=["cloud-case-and-authority-slash", "graph-endpoint", "tenant-guid"],
)
def test_tenant_options(tenant: dict[str, Any], expected: dict[str, Any]) -> None:
    doc = example_doc()
    doc["tenant"].update(tenant)
    parsed = parse_settings(doc, env={}).tenant
    assert parsed is not None
    for key, value in expected.items():
        assert getattr(parsed, key) == value


# --- ${VAR} expansion -----------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "env", "expected"),
    [
        ("${M365WATCH_CLIENT_SECRET}", ENV, SENTINEL),
        ("pre-${A}-${B}-post", {"A": "one", "B": "two"}, "pre-one-two-post"),
        ("${A}", {"A": "${B}", "B": "not expanded twice"}, "${B}"),
        ("$A and {A}", {"A": "x"}, "$A and {A}"),
        ("${A}", {"A": r"back\slash\1"}, r"back\slash\1"),
    ],
    ids=[
        "whole-value",
        "several-in-one-string",
        "not-recursive",
        "only-braced-form",
        "backslashes",
    ],
)
def test_env_expansion(secret: str, env: dict[str, str], expected: str) -> None:
    doc = example_doc()
    doc["tenant"]["client_secret"] = secret
    tenant = parse_settings(doc, env=env).tenant
    assert tenant is not None
    assert tenant.client_secret == expected


def test_env_expansion_reaches_lists_and_targets() -> None:
    doc = example_doc()
    doc["notify"][1]["urls"] = ["mailto://${MAIL_USER}:${MAIL_PASS}@127.0.0.1:2525"]
    doc["poll"]["services"] = ["${SERVICE}"]
    env = {"MAIL_USER": "ops", "MAIL_PASS": "pw", "SERVICE": "Microsoft Teams"}
    settings = parse_settings(doc, env=env)
    assert settings.targets[1].urls == ("mailto://ops:pw@127.0.0.1:2525",)
    assert settings.poll.services == ("Microsoft Teams",)


# --- mistakes -------------------------------------------------------------------


def set_in(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets ``a.b`` (``notify.0.url`` indexes a list) in the document."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        del target[last]

    return mutate


def both(*mutations: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(doc)

    return mutate


def _nested(depth: int, leaf: Any) -> Any:
    """``{"k0": {"k1": … leaf}}``, ``depth`` tables deep (what ``k0.k1.… = leaf`` parses to)."""
    for level in reversed(range(depth)):
        leaf = {f"k{level}": leaf}
    return leaf


TENANT_KEYS = (
    "authority, certificate_password, certificate_path, client_id, client_secret, cloud, "
    "graph_endpoint, tenant_id"
)
NOTIFY_KEYS = "classifications, digest, events, group_tenants, name, services, tenants, url, urls"
EVENT_VALUES = (
    "new, status, post, classification, resolved, reopened, pir, "
    "message-new, message-updated, message-due, watcher"
)

BAD_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], None], dict[str, str], list[str]]] = [
    (
        "missing-env-var",
        set_in("tenant.client_secret", "${M365WATCH_CLIENT_SECRET}"),
        {},
        ["M365WATCH_CLIENT_SECRET is not set", "tenant.client_secret"],
    ),
    (
        "missing-env-var-in-url-list",
        set_in("notify.1.urls", ["mailto://${MAIL_PASS}@host"]),
        {},
        ["MAIL_PASS is not set", "(used in [[notify]] block 2 urls item 1)"],
    ),
    (
        "missing-env-var-in-notify-url",
        set_in("notify.0.url", "workflows://${TEAMS_URL}"),
        {},
        ["environment variable TEAMS_URL is not set (used in [[notify]] block 1 url)"],
    ),
    (
        "every-missing-env-var-at-once",
        both(
            set_in("tenant.client_secret", "${M365WATCH_CLIENT_SECRET}"),
            set_in("notify.0.url", "${TEAMS_URL}"),
            set_in("notify.1.urls", ["mailtos://${SMTP_USER}:${SMTP_PASSWORD}@host"]),
        ),
        {},
        [
            "environment variables M365WATCH_CLIENT_SECRET, TEAMS_URL, SMTP_USER, SMTP_PASSWORD "
            "are not set (used in tenant.client_secret, [[notify]] block 1 url, "
            "[[notify]] block 2 urls item 1): export them, "
        ],
    ),
    (
        "dotted-key-600-deep",
        set_in("poll.services", _nested(600, ["Exchange Online"])),
        {},
        ["poll.services.k0.k1.k2.k3.k4.k5.k6 is nested too deeply", "three tables or lists deep"],
    ),
    (
        "secret-and-certificate",
        set_in("tenant.certificate_path", "app.pem"),
        {},
        ["[tenant] needs exactly one of client_secret or certificate_path"],
    ),
    (
        "neither-secret-nor-certificate",
        drop("tenant.client_secret"),
        {},
        ["[tenant] needs exactly one of client_secret or certificate_path"],
    ),
    (
        "empty-secret",
        set_in("tenant.client_secret", " "),
        {},
        ["tenant.client_secret must be a non-empty string"],
    ),
    (
        "client-id-not-a-guid",
        set_in("tenant.client_id", "m365watch-app"),
        {},
        ["tenant.client_id", "GUID"],
    ),
    (
        "client-id-short-guid",
        set_in("tenant.client_id", "11111111-2222-3333-4444-55555555555"),
        {},
        ["tenant.client_id", "GUID"],
    ),
    ("tenant-id-bare-word", set_in("tenant.tenant_id", "contoso"), {}, ["tenant.tenant_id"]),
    (
        "tenant-id-url",
        set_in("tenant.tenant_id", "https://login.microsoftonline.com/contoso"),
        {},
        ["tenant.tenant_id", "contoso.onmicrosoft.com"],
    ),
    ("tenant-id-missing", drop("tenant.tenant_id"), {}, ["tenant.tenant_id must be"]),
    (
        "bad-cloud",
        set_in("tenant.cloud", "azure"),
        {},
        ["tenant.cloud must be one of global, usgov, dod, china"],
    ),
    ("cloud-not-a-string", set_in("tenant.cloud", 1), {}, ["tenant.cloud must be one of"]),
    (
        "http-authority",
        set_in("tenant.authority", "http://login.microsoftonline.com"),
        {},
        ["tenant.authority must be an https:// URL"],
    ),
    (
        "http-graph-endpoint",
        set_in("tenant.graph_endpoint", "http://graph.microsoft.com"),
        {},
        ["tenant.graph_endpoint must be an https:// URL"],
    ),
    # The sign-in settings the token provider takes as given (it no longer checks them).
    (
        "authority-without-scheme",
        set_in("tenant.authority", "login.microsoftonline.com"),
        {},
        ["tenant.authority must be an https:// URL"],
    ),
    (
        "authority-with-path",
        set_in("tenant.authority", "https://login.microsoftonline.com/contoso"),
        {},
        [
            "authority host must look like https://host, "
            "got 'https://login.microsoftonline.com/contoso'"
        ],
    ),
    (
        "authority-without-host",
        set_in("tenant.authority", "https://:443"),
        {},
        ["authority host must look like https://host"],
    ),
    (
        "authority-broken-ipv6-host",
        set_in("tenant.authority", "https://[::1"),
        {},
        ["authority host must look like https://host"],
    ),
    (
        "graph-endpoint-broken-ipv6-host",
        set_in("tenant.graph_endpoint", "https://[::1"),
        {},
        ["Graph endpoint must look like https://host"],
    ),
    (
        "authority-port-out-of-range",
        set_in("tenant.authority", "https://127.0.0.1:99999"),
        {},
        [
            "tenant.authority has an invalid port: write a number from 1 to 65535",
            "'https://127.0.0.1:99999'",
        ],
    ),
    (
        "authority-port-zero",
        set_in("tenant.authority", "https://login.example.com:0"),
        {},
        ["tenant.authority has an invalid port"],
    ),
    (
        "graph-endpoint-port-not-a-number",
        set_in("tenant.graph_endpoint", "https://graph.example.com:https"),
        {},
        ["tenant.graph_endpoint has an invalid port"],
    ),
    (
        "graph-endpoint-without-scheme",
        set_in("tenant.graph_endpoint", "graph.microsoft.com"),
        {},
        ["tenant.graph_endpoint must be an https:// URL"],
    ),
    (
        "graph-endpoint-with-path",
        set_in("tenant.graph_endpoint", "https://graph.microsoft.com/v1.0"),
        {},
        ["Graph endpoint must look like https://host"],
    ),
    ("tenant-id-empty", set_in("tenant.tenant_id", ""), {}, ["tenant.tenant_id"]),
    ("tenant-id-with-slash", set_in("tenant.tenant_id", "contoso/extra"), {}, ["tenant.tenant_id"]),
    ("tenant-id-common", set_in("tenant.tenant_id", "common"), {}, ["tenant.tenant_id"]),
    ("client-id-blank", set_in("tenant.client_id", " "), {}, ["tenant.client_id"]),
    (
        "certificate-password-not-a-string",
        both(
            drop("tenant.client_secret"),
            set_in("tenant.certificate_path", "a.pem"),
            set_in("tenant.certificate_password", 1234),
        ),
        {},
        ["tenant.certificate_password must be a string"],
    ),
    ("tenant-not-a-table", set_in("tenant", "contoso"), {}, ["[tenant] must be a table"]),
    (
        "unknown-top-level-key",
        set_in("tenantz", {}),
        {},
        [
            "unknown key 'tenantz' in top level",
            "valid keys are feed, health, messages, metrics, notify, pir, poll, state, tenant, tenants",
        ],
    ),
    (
        "unknown-tenant-key",
        set_in("tenant.secret", "x"),
        {},
        ["unknown key 'secret' in [tenant]", f"valid keys are {TENANT_KEYS}"],
    ),
    (
        "unknown-state-key",
        set_in("state.file", "x"),
        {},
        ["unknown key 'file' in [state]", "valid keys are path"],
    ),
    (
        "unknown-poll-key",
        set_in("poll.service", ["Exchange Online"]),
        {},
        [
            "unknown key 'service' in [poll]",
            "valid keys are classifications, concurrency, notify_existing, services",
        ],
    ),
    (
        "unknown-notify-key",
        set_in("notify.1.event", ["new"]),
        {},
        ["unknown key 'event' in notify target 'mail'", f"valid keys are {NOTIFY_KEYS}"],
    ),
    (
        "unknown-health-key",
        set_in("health", {"alert": 3}),
        {},
        ["unknown key 'alert' in [health]", "valid keys are alert_after"],
    ),
    (
        "notify-url-and-urls",
        set_in("notify.0.urls", [MAIL_URL]),
        {},
        ["notify target 'ops-teams' needs exactly one of url or urls"],
    ),
    (
        "notify-neither-url-nor-urls",
        drop("notify.0.url"),
        {},
        ["notify target 'ops-teams' needs exactly one of url or urls"],
    ),
    (
        "notify-urls-empty",
        set_in("notify.1.urls", []),
        {},
        ["notify target 'mail': urls is empty"],
    ),
    (
        "notify-url-without-scheme",
        set_in("notify.0.url", "prod-00.westus.logic.azure.com/workflows/abc"),
        {},
        ["notify target 'ops-teams' has a URL without a scheme"],
    ),
    (
        "notify-duplicate-names",
        set_in("notify.1.name", "ops-teams"),
        {},
        ["two [[notify]] blocks are named 'ops-teams'", "unique"],
    ),
    (
        "notify-not-an-array",
        set_in("notify", {"name": "x", "url": MAIL_URL}),
        {},
        ["notify must be written as [[notify]] blocks"],
    ),
    (
        "msteams-scheme",
        set_in("notify.0.url", "msteams://TokenA/TokenB/TokenC/"),
        {},
        ["notify target 'ops-teams' uses a retired Office 365 connector URL", "workflows://"],
    ),
    (
        "office-connector-webhook",
        set_in(
            "notify.0.url",
            "https://xyz.webhook.office.com/webhookb2/aaaa@bbbb/IncomingWebhook/cccc/dddd",
        ),
        {},
        ["retired Office 365 connector URL", "workflow"],
    ),
    (
        "legacy-outlook-connector-webhook",
        set_in(
            "notify.0.url",
            "https://outlook.office.com/webhook/aaaa@bbbb/IncomingWebhook/cccc/dddd",
        ),
        {},
        ["retired Office 365 connector URL", "workflow"],
    ),
    (
        "office-connector-in-url-list",
        set_in("notify.1.urls", [MAIL_URL, "MSTEAMS://a/b/c"]),
        {},
        ["notify target 'mail' uses a retired Office 365 connector URL"],
    ),
    (
        "unknown-event",
        set_in("notify.1.events", ["new", "deleted"]),
        {},
        [f"notify target 'mail' events has 'deleted': valid values are {EVENT_VALUES}"],
    ),
    (
        "unknown-notify-classification",
        set_in("notify.0.classifications", ["incident", "outage"]),
        {},
        ["'outage': valid values are incident, advisory"],
    ),
    (
        "unknown-poll-classification",
        set_in("poll.classifications", ["maintenance"]),
        {},
        ["poll.classifications has 'maintenance': valid values are incident, advisory"],
    ),
    (
        "services-not-strings",
        set_in("poll.services", ["Exchange Online", 7]),
        {},
        ["poll.services must be a list of strings"],
    ),
    (
        "notify-existing-not-bool",
        set_in("poll.notify_existing", "yes"),
        {},
        ["poll.notify_existing must be true or false"],
    ),
    ("state-path-empty", set_in("state.path", ""), {}, ["state.path must be a non-empty string"]),
    (
        "state-path-of-an-unknown-user",
        set_in("state.path", "~nobody-at-all/state.json"),
        {},
        ["state.path starts with '~nobody-at-all' but that home directory is unknown"],
    ),
    (
        "certificate-path-with-nul",
        both(drop("tenant.client_secret"), set_in("tenant.certificate_path", "app\0.pem")),
        {},
        ["tenant.certificate_path holds a NUL character"],
    ),
    (
        "key-with-a-newline-in-an-error",
        set_in("poll.services", {"line\nbreak": _nested(10, 1)}),
        {},
        ["poll.services.'line\\nbreak'.k0.k1.k2.k3.k4.k5 is nested too deeply"],
    ),
    (
        "unnamed-notify-block-url-not-a-string",
        both(drop("notify.0.name"), set_in("notify.0.url", 7)),
        {},
        ["[[notify]] block 1 url must be a non-empty string"],
    ),
    ("state-not-a-table", set_in("state", "state.json"), {}, ["[state] must be a table"]),
    ("alert-after-zero", set_in("health", {"alert_after": 0}), {}, ["health.alert_after"]),
    ("alert-after-bool", set_in("health", {"alert_after": True}), {}, ["health.alert_after"]),
    ("alert-after-string", set_in("health", {"alert_after": "3"}), {}, ["health.alert_after"]),
]


@pytest.mark.parametrize(
    ("mutate", "env", "fragments"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_is_one_clean_line(
    mutate: Callable[[dict[str, Any]], None], env: dict[str, str], fragments: list[str]
) -> None:
    doc = example_doc()
    mutate(doc)
    with pytest.raises(ConfigError) as caught:
        parse_settings(doc, env=env, base_dir=Path("/etc/m365watch"))
    message = assert_clean(caught.value)
    for fragment in fragments:
        assert fragment in message
    assert caught.value.exit_code == 2


# --- files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        EXAMPLE.replace(
            'client_secret = "${M365WATCH_CLIENT_SECRET}"', f'client_secret = "{SENTINEL}'
        ),
        EXAMPLE.replace(
            'client_secret = "${M365WATCH_CLIENT_SECRET}"', f"client_secret = {SENTINEL}"
        ),
        EXAMPLE + f'[tenant]\nclient_secret = "{SENTINEL}"\n',
        "[tenant\n",
    ],
    ids=["unterminated-secret", "bare-secret", "duplicate-table", "broken-header"],
)
def test_invalid_toml_names_the_path(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=ENV)
    message = assert_clean(caught.value)
    assert message.startswith(f"{path} is not valid TOML: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "config.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=ENV)
    message = assert_clean(caught.value)
    assert message.startswith(f"no configuration file at {path}: ")
    assert "M365WATCH_CONFIG" in message


def test_unreadable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"\xff\xfe[tenant]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=ENV)
    assert assert_clean(caught.value).startswith(f"cannot read configuration file {path}: ")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("certs/app.pem", "{config}/certs/app.pem"),
        ("../shared/app.pem", "{config}/../shared/app.pem"),
        ("/etc/ssl/private/app.pem", "/etc/ssl/private/app.pem"),
        ("~/app.pem", "{home}/app.pem"),
    ],
    ids=["relative", "relative-parent", "absolute", "home"],
)
def test_paths_resolved_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    folder = tmp_path / "etc"
    folder.mkdir()
    text = EXAMPLE.replace(
        'client_secret = "${M365WATCH_CLIENT_SECRET}"', f'certificate_path = "{value}"'
    ).replace('path = "state/state.json"', f'path = "{value}.state"')
    settings = load_settings(write(folder, text), env={})
    want = Path(expected.format(config=folder, home=home))
    assert settings.tenant is not None
    assert settings.tenant.certificate_path == want
    assert settings.state_path == Path(f"{want}.state")


def test_load_settings_keeps_the_output_tables(tmp_path: Path) -> None:
    # load_settings once rebuilt Settings field by field and dropped [metrics], [feed] and [pir].
    text = EXAMPLE + (
        '\n[metrics]\ntextfile = "m365watch.prom"\n'
        '\n[feed]\npath = "www/m365watch.atom"\nmax_entries = 5\n'
        '\n[pir]\ndirectory = "reports"\n'
    )
    settings = load_settings(write(tmp_path, text), env={"M365WATCH_CLIENT_SECRET": "x"})
    assert settings.metrics is not None and settings.metrics.textfile == tmp_path / "m365watch.prom"
    assert settings.feed is not None
    assert (settings.feed.path, settings.feed.max_entries) == (tmp_path / "www/m365watch.atom", 5)
    assert settings.pir is not None and settings.pir.directory == tmp_path / "reports"


def test_state_path_defaults_to_state_directory(tmp_path: Path) -> None:
    text = EXAMPLE.replace('[state]\npath = "state/state.json"\n', "")
    env = {**ENV, "STATE_DIRECTORY": "/var/lib/m365watch"}
    settings = load_settings(write(tmp_path, text), env=env)
    assert settings.state_path == Path("/var/lib/m365watch/state.json")


# --- default locations ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/m365watch"}, Path("/var/lib/m365watch/state.json")),
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, Path("/var/lib/a/state.json")),
        ({"STATE_DIRECTORY": ""}, Path(platformdirs.user_state_dir("m365watch")) / "state.json"),
        ({}, Path(platformdirs.user_state_dir("m365watch")) / "state.json"),
    ],
    ids=["systemd", "systemd-several-dirs", "empty-ignored", "user-dir"],
)
def test_default_state_path(env: dict[str, str], expected: Path) -> None:
    assert default_state_path(env) == expected


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"M365WATCH_CONFIG": "/srv/m365watch.toml"}, Path("/srv/m365watch.toml")),
        (
            {
                "M365WATCH_CONFIG": "/srv/m365watch.toml",
                "CONFIGURATION_DIRECTORY": "/etc/m365watch",
            },
            Path("/srv/m365watch.toml"),
        ),
        ({"CONFIGURATION_DIRECTORY": "/etc/m365watch"}, Path("/etc/m365watch/config.toml")),
        ({"CONFIGURATION_DIRECTORY": "/etc/a:/etc/b"}, Path("/etc/a/config.toml")),
        ({"M365WATCH_CONFIG": ""}, Path(platformdirs.user_config_dir("m365watch")) / "config.toml"),
        ({}, Path(platformdirs.user_config_dir("m365watch")) / "config.toml"),
    ],
    ids=[
        "explicit",
        "explicit-beats-systemd",
        "systemd",
        "systemd-several-dirs",
        "empty-ignored",
        "user-dir",
    ],
)
def test_default_config_path(env: dict[str, str], expected: Path) -> None:
    assert default_config_path(env) == expected


def test_default_paths_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/from-env")
    monkeypatch.setenv("M365WATCH_CONFIG", "/etc/from-env.toml")
    assert default_state_path() == Path("/var/lib/from-env/state.json")
    assert default_config_path() == Path("/etc/from-env.toml")


# --- permissions --------------------------------------------------------------------

LITERAL = EXAMPLE.replace("${M365WATCH_CLIENT_SECRET}", SENTINEL)
CERTIFICATE = EXAMPLE.replace(
    'client_secret = "${M365WATCH_CLIENT_SECRET}"', 'certificate_path = "app.pem"'
)
CERT_PASSWORD = CERTIFICATE.replace(
    'certificate_path = "app.pem"',
    f'certificate_path = "app.pem"\ncertificate_password = "{SENTINEL}"',
)
URLS_FROM_ENV = EXAMPLE.replace(
    'url = "workflows://prod-00.westus.logic.azure.com:443/abcdef0123456789/signature0123"',
    'url = "${TEAMS_URL}"',
).replace(
    'urls = ["mailto://user:pass@127.0.0.1:2525?to=ops@example.com"]', 'urls = ["${MAIL_URL}"]'
)
SAFE = URLS_FROM_ENV  # every secret comes from the environment


def expected_warning(kind: str, path: Path) -> str:
    return {
        "secret": f"{path} holds a literal client secret and other users can read it: "
        f'run chmod 600 {path}, or use client_secret = "${{M365WATCH_CLIENT_SECRET}}"',
        "password": f"{path} holds a literal certificate password and other users can read "
        f'it: run chmod 600 {path}, or use certificate_password = "${{M365WATCH_CERT_PASSWORD}}"',
        "urls": f"{path} holds notification URLs with their tokens or passwords (ops-teams, "
        f"mail) and other users can read it: run chmod 600 {path}, or write each URL as "
        '"${NAME}" and set NAME in the environment',
    }[kind]


@pytest.mark.parametrize(
    ("text", "mode", "kinds"),
    [
        (LITERAL, 0o644, ["secret", "urls"]),
        (LITERAL, 0o604, ["secret", "urls"]),
        (LITERAL, 0o600, []),
        (LITERAL, 0o400, []),
        (EXAMPLE, 0o644, ["urls"]),
        (CERTIFICATE, 0o644, ["urls"]),
        (CERT_PASSWORD, 0o644, ["password", "urls"]),
        (SAFE, 0o644, []),
        (SAFE.replace("${M365WATCH_CLIENT_SECRET}", SENTINEL), 0o644, ["secret"]),
    ],
    ids=[
        "literal-world-readable",
        "literal-other-readable",
        "literal-chmod-600",
        "literal-chmod-400",
        "literal-urls-world-readable",
        "certificate-world-readable",
        "certificate-password-world-readable",
        "all-from-env-world-readable",
        "only-the-secret-literal",
    ],
)
def test_permission_warning(tmp_path: Path, text: str, mode: int, kinds: list[str]) -> None:
    path = write(tmp_path, text, mode)
    settings = load_settings(path, env={**ENV, "TEAMS_URL": "json://x", "MAIL_URL": "json://y"})
    assert list(settings.warnings) == [expected_warning(kind, path) for kind in kinds]
    assert all(SENTINEL not in warning for warning in settings.warnings)


# --- agreement with the auth adapter -------------------------------------------------


def test_cloud_names_match_the_endpoint_table() -> None:
    assert tuple(settings_module.CLOUDS) == settings_module.CLOUD_NAMES


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, EXAMPLE), env=ENV)
    with pytest.raises(AttributeError):
        settings.alert_after = 5  # type: ignore[misc]
    doc = copy.deepcopy(example_doc())
    parse_settings(doc, env={})
    assert doc == example_doc()  # parsing does not modify the document


def test_the_shipped_example_config_loads_and_apprise_accepts_its_urls() -> None:
    from m365watch.notify import Notifier

    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    env = {
        "M365WATCH_CLIENT_SECRET": "s",
        "M365WATCH_TEAMS_URL": "workflows://prod-12.westus.logic.azure.com:443/abc123/sigXYZ",
        "SMTP_USER": "u",
        "SMTP_PASSWORD": "p",
    }
    settings = load_settings(example, env=env)
    assert settings.tenant is not None and settings.tenant.cloud == "global"
    assert [t.name for t in settings.targets] == ["ops-teams", "oncall-mail"]
    assert settings.targets[1].events == ("new", "status", "resolved", "reopened", "watcher")
    Notifier({t.name: t.urls for t in settings.targets}).check()


def test_the_shipped_example_config_names_every_unset_variable_at_once() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(example, env={"SMTP_USER": "u"})
    assert assert_clean(caught.value) == (
        "environment variables M365WATCH_CLIENT_SECRET, M365WATCH_TEAMS_URL, SMTP_PASSWORD "
        "are not set (used in tenant.client_secret, [[notify]] block 1 url, "
        "[[notify]] block 2 urls item 1): export them, or put them in the service's "
        "EnvironmentFile"
    )


def test_a_600_deep_dotted_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, ".".join(f"k{i}" for i in range(600)) + " = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert assert_clean(caught.value).startswith(
        "k0.k1.k2.k3.k4.k5.k6.k7.k8 is nested too deeply: "
    )


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'\xef\xbb\xbf[poll]\nservices = ["Exchange Online"]\n')
    assert load_settings(path, env={}).poll.services == ("Exchange Online",)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda tmp: Path("/dev/zero"),
            "cannot read configuration file /dev/zero: it is larger than 1024 KiB",
        ),
        (lambda tmp: tmp, "Is a directory"),
        (
            lambda tmp: _write(tmp / "deep.toml", "a = " + "[" * 5000 + "]" * 5000),
            "is not valid TOML: it is nested too deeply",
        ),
    ],
    ids=["endless-file", "directory", "nested-too-deeply"],
)
def test_unreadable_configs_are_one_line_errors(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(make(tmp_path), env={})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
