"""Load and validate the TOML configuration into frozen settings; no network.

``${VAR}`` in any string is replaced from the environment. Every mistake is a
:class:`ConfigError` naming the key and saying what to write instead; unknown
keys are rejected so that a typo never silently disables something.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from m365watch import files
from m365watch.diff import EVENTS
from m365watch.errors import ConfigError
from m365watch.models import CLASSIFICATIONS
from m365watch.settings import (
    CLOUD_NAMES,
    DEFAULT_ALERT_AFTER,
    DEFAULT_CONCURRENCY,
    DEFAULT_REMIND_BEFORE_DAYS,
    MESSAGE_CATEGORIES,
    MESSAGE_SEVERITIES,
    FeedSettings,
    MessagesSettings,
    MetricsSettings,
    PirSettings,
    PollSettings,
    Settings,
    TargetSettings,
    TenantSettings,
    scheme_of,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

APP_NAME = "m365watch"
MAX_CONFIG_BYTES = 1024 * 1024

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What a secret in a notification URL looks like: a password in it, or a long token.
_URL_SECRET = re.compile(r"://[^/@\s]*:[^/@\s]+@|[A-Za-z0-9_-]{16,}")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_TENANT = re.compile(
    r"^([0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}|[A-Za-z0-9.-]+\.[A-Za-z]{2,})$"
)
# Office 365 connector URLs (retired by Microsoft): old and new host forms.
_TEAMS_CONNECTOR = re.compile(
    r"^msteams://|webhook\.office(365)?\.com|outlook\.office(365)?\.com/webhook", re.IGNORECASE
)

_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "tenant",
            "tenants",
            "state",
            "poll",
            "notify",
            "health",
            "metrics",
            "feed",
            "pir",
            "messages",
        }
    ),
    "tenant": frozenset(
        {
            "tenant_id",
            "client_id",
            "client_secret",
            "certificate_path",
            "certificate_password",
            "cloud",
            "authority",
            "graph_endpoint",
        }
    ),
    "state": frozenset({"path"}),
    "poll": frozenset({"services", "classifications", "notify_existing", "concurrency"}),
    "notify": frozenset(
        {
            "name",
            "url",
            "urls",
            "services",
            "classifications",
            "events",
            "digest",
            "tenants",
            "group_tenants",
        }
    ),
    "health": frozenset({"alert_after"}),
    "metrics": frozenset({"textfile", "listen"}),
    "feed": frozenset({"path", "max_entries"}),
    "pir": frozenset({"directory"}),
    "messages": frozenset(
        {"categories", "severities", "services", "tags", "major_only", "remind_before_days"}
    ),
}


# A [[tenants]] block: a name, then any [tenant] key (its overrides).
_KEYS["tenants"] = _KEYS["tenant"] | {"name"}


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$M365WATCH_CONFIG``, systemd's ``$CONFIGURATION_DIRECTORY``, or the user config dir."""
    env = os.environ if env is None else env
    if env.get("M365WATCH_CONFIG"):
        return Path(env["M365WATCH_CONFIG"])
    if env.get("CONFIGURATION_DIRECTORY"):
        return Path(env["CONFIGURATION_DIRECTORY"].split(":")[0]) / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_state_path(env: Mapping[str, str] | None = None) -> Path:
    """systemd's ``$STATE_DIRECTORY`` when set, else the platform's user state dir."""
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / "state.json"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME)) / "state.json"


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read, expand and validate the configuration file at ``path``."""
    env = os.environ if env is None else env
    try:
        # utf-8-sig: Windows editors may start the file with a byte-order mark.
        raw_text = files.read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"no configuration file at {path}: copy config.example.toml there, "
            "or pass -c FILE or set M365WATCH_CONFIG"
        ) from None
    except (files.TooLargeError, files.NotAFileError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    try:
        document = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: it is nested too deeply") from None
    settings = parse_settings(document, env=env, base_dir=path.parent)
    warnings = list(settings.warnings)
    warnings += _permission_warnings(path, document)
    # replace(): every other setting ([metrics], [feed], [pir]…) carries over as parsed.
    return dataclasses.replace(settings, source=path, warnings=tuple(warnings))


def _permission_warnings(path: Path, document: Mapping[str, Any]) -> list[str]:
    credentials = _credential_tables(document)
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    warnings = []
    if any(_literal(t.get("client_secret"), whole=True) for t in credentials):
        warnings.append(
            f"{path} holds a literal client secret and other users can read it: "
            f'run chmod 600 {path}, or use client_secret = "${{M365WATCH_CLIENT_SECRET}}"'
        )
    if any(_literal(t.get("certificate_password"), whole=False) for t in credentials):
        warnings.append(
            f"{path} holds a literal certificate password and other users can read it: "
            f'run chmod 600 {path}, or use certificate_password = "${{M365WATCH_CERT_PASSWORD}}"'
        )
    names = [name for name, url in _literal_urls(document) if _URL_SECRET.search(url)]
    if names:
        warnings.append(
            f"{path} holds notification URLs with their tokens or passwords "
            f"({', '.join(names)}) and other users can read it: run chmod 600 {path}, or "
            'write each URL as "${NAME}" and set NAME in the environment'
        )
    return warnings


def _credential_tables(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """[tenant] and every [[tenants]] block: where secrets may be written."""
    tables = [document.get("tenant")]
    blocks = document.get("tenants")
    tables += blocks if isinstance(blocks, list) else []
    return [t for t in tables if isinstance(t, Mapping)]


def _literal(value: Any, *, whole: bool) -> bool:
    """True for a non-empty string that is not (``whole``) / holds no ``${NAME}`` reference."""
    if not isinstance(value, str) or not value:
        return False
    return not (_ENV_REF.fullmatch(value) if whole else _ENV_REF.search(value))


def _literal_urls(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(target name, URL) for every notification URL written out literally in the file."""
    out: list[tuple[str, str]] = []
    blocks = document.get("notify")
    for index, block in enumerate(blocks if isinstance(blocks, list) else [], start=1):
        if not isinstance(block, Mapping):
            continue
        name = str(block.get("name", f"notify-{index}"))
        urls = block.get("urls", [block.get("url")])
        for url in urls if isinstance(urls, list) else []:
            if isinstance(url, str) and not _ENV_REF.search(url):
                out.append((name, url))
    return out


def parse_settings(
    document: Mapping[str, Any], *, env: Mapping[str, str], base_dir: Path | None = None
) -> Settings:
    """Validate an already-parsed TOML document (see :func:`load_settings`)."""
    doc = _expand(document, env)
    _check_keys(doc, "", "top level")
    tenants = _tenants(doc, base_dir)
    tenant = _tenant(doc["tenant"], base_dir) if "tenant" in doc and not tenants else None

    state = _table(doc, "state")
    _check_keys(state, "state", "[state]")
    state_path = (
        _path(_string(state, "path", "state"), base_dir, "state.path")
        if "path" in state
        else default_state_path(env)
    )

    poll_table = _table(doc, "poll")
    _check_keys(poll_table, "poll", "[poll]")
    poll = PollSettings(
        services=_string_list(poll_table, "services", "poll"),
        classifications=_choices(
            poll_table, "classifications", "poll", CLASSIFICATIONS, default=CLASSIFICATIONS
        ),
        notify_existing=_bool(poll_table, "notify_existing", "poll", False),
        concurrency=_concurrency(poll_table),
    )

    raw_targets = doc.get("notify", [])
    if not isinstance(raw_targets, list):
        raise ConfigError("notify must be written as [[notify]] blocks (an array of tables)")
    targets: list[TargetSettings] = []
    for index, raw in enumerate(raw_targets, start=1):
        target = _target(raw, index)
        if any(t.name == target.name for t in targets):
            raise ConfigError(
                f"two [[notify]] blocks are named {target.name!r}: names must be unique"
            )
        targets.append(target)
    names = [t.name for t in tenants]
    for target in targets:
        if target.tenants and not tenants:
            raise ConfigError(
                f"notify target {target.name!r} names tenants but the configuration has no "
                "[[tenants]]: remove its tenants key, or add [[tenants]] blocks"
            )
        for name in target.tenants:
            if name not in names:
                raise ConfigError(
                    f"notify target {target.name!r} names the tenant {name!r}, which is not "
                    f"configured: the [[tenants]] are {', '.join(map(str, names))}"
                )

    health = _table(doc, "health")
    _check_keys(health, "health", "[health]")
    alert_after = health.get("alert_after", DEFAULT_ALERT_AFTER)
    if not isinstance(alert_after, int) or isinstance(alert_after, bool) or alert_after < 1:
        raise ConfigError("health.alert_after must be a whole number of failed polls, 1 or more")

    return Settings(
        tenant=tenant,
        tenants=tenants,
        state_path=state_path,
        poll=poll,
        targets=tuple(targets),
        alert_after=alert_after,
        metrics=_metrics(doc, base_dir),
        feed=_feed(doc, base_dir),
        pir=_pir(doc, base_dir),
        messages=_messages(doc),
    )


def _metrics(doc: Mapping[str, Any], base_dir: Path | None) -> MetricsSettings | None:
    if "metrics" not in doc:
        return None
    table = _table(doc, "metrics")
    _check_keys(table, "metrics", "[metrics]")
    textfile = (
        _path(_string(table, "textfile", "metrics"), base_dir, "metrics.textfile")
        if "textfile" in table
        else None
    )
    if textfile is not None and textfile.suffix != ".prom":
        raise ConfigError(
            "metrics.textfile must end in .prom (node_exporter's textfile collector reads "
            "only *.prom files)"
        )
    listen = parse_listen(_string(table, "listen", "metrics")) if "listen" in table else None
    if textfile is None and listen is None:
        raise ConfigError("[metrics] needs textfile, listen, or both")
    return MetricsSettings(textfile=textfile, listen=listen)


def parse_listen(text: str, key: str = "metrics.listen") -> tuple[str, int]:
    """``127.0.0.1:9365``, ``[::1]:9365`` or ``9365`` (loopback) as (host, port)."""
    host, _, port_text = text.strip().rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{key} must be HOST:PORT with a port from 1 to 65535, not {text!r}")
    return host, int(port_text)


def _feed(doc: Mapping[str, Any], base_dir: Path | None) -> FeedSettings | None:
    if "feed" not in doc:
        return None
    table = _table(doc, "feed")
    _check_keys(table, "feed", "[feed]")
    if "path" not in table:
        raise ConfigError("[feed] needs path, the Atom file to write (e.g. m365watch.atom)")
    max_entries = table.get("max_entries", 200)
    if (
        not isinstance(max_entries, int)
        or isinstance(max_entries, bool)
        or not (1 <= max_entries <= 10_000)
    ):
        raise ConfigError("feed.max_entries must be a whole number from 1 to 10000")
    path = _path(_string(table, "path", "feed"), base_dir, "feed.path")
    return FeedSettings(path=path, max_entries=max_entries)


def _pir(doc: Mapping[str, Any], base_dir: Path | None) -> PirSettings | None:
    if "pir" not in doc:
        return None
    table = _table(doc, "pir")
    _check_keys(table, "pir", "[pir]")
    if "directory" not in table:
        raise ConfigError("[pir] needs directory, the folder post-incident reports are saved in")
    return PirSettings(_path(_string(table, "directory", "pir"), base_dir, "pir.directory"))


def _messages(doc: Mapping[str, Any]) -> MessagesSettings | None:
    if "messages" not in doc:
        return None
    table = _table(doc, "messages")
    _check_keys(table, "messages", "[messages]")
    return MessagesSettings(
        categories=_choices(table, "categories", "messages", MESSAGE_CATEGORIES),
        severities=_choices(table, "severities", "messages", MESSAGE_SEVERITIES),
        services=_string_list(table, "services", "messages"),
        tags=_string_list(table, "tags", "messages"),
        major_only=_bool(table, "major_only", "messages", False),
        remind_before_days=_remind_days(table),
    )


def _remind_days(table: Mapping[str, Any]) -> tuple[float, ...]:
    value = table.get("remind_before_days", list(DEFAULT_REMIND_BEFORE_DAYS))
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 3650 for v in value
    )
    if not ok:
        raise ConfigError(
            "messages.remind_before_days must be a list of days before the act-by date, "
            "each more than 0 and at most 3650, e.g. [30, 7] or [0.5]"
        )
    return tuple(sorted({float(v) for v in value}, reverse=True))


# The deepest setting is a URL in a [[notify]] block's urls: three containers down.
_MAX_DEPTH = 8
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_NOTIFY_BLOCK = re.compile(r"\[\[notify\]\] block \d+")


def _expand(document: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``document`` with every ``${VAR}`` replaced; one ConfigError naming every unset VAR.

    Iterative and depth-limited, so a 600-deep dotted key is an error naming it, not a crash.
    """
    unset: dict[str, list[str]] = {}  # variable -> where it is used, in file order

    def expand_string(text: str, where: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                places = unset.setdefault(name, [])
                if where not in places:
                    places.append(where)
                return ""
            return env[name]

        return _ENV_REF.sub(replace, text)

    root: dict[str, Any] = {}
    # (container to fill, key or index in it, value to copy, where it is, depth)
    todo: list[tuple[Any, Any, Any, str, int]] = [
        (root, key, value, _key_text(key), 1) for key, value in reversed(list(document.items()))
    ]
    while todo:
        parent, slot, value, where, depth = todo.pop()
        if isinstance(value, (Mapping, list)) and depth > _MAX_DEPTH:
            raise ConfigError(
                f"{_shorten(where)} is nested too deeply: no m365watch setting is more than "
                "three tables or lists deep (see config.example.toml)"
            )
        if isinstance(value, str):
            copy: Any = expand_string(value, where)
        elif isinstance(value, Mapping):
            copy = {}
            todo += [
                (copy, k, v, _child_key(where, _key_text(k)), depth + 1)
                for k, v in reversed(list(value.items()))
            ]
        elif isinstance(value, list):
            copy = [None] * len(value)
            todo += [
                (copy, i, v, _child_item(where, i), depth + 1)
                for i, v in reversed(list(enumerate(value)))
            ]
        else:
            copy = value
        parent[slot] = copy
    if unset:
        raise ConfigError(_unset_message(unset))
    return root


def _child_key(where: str, key: str) -> str:
    # As the other errors say it: "[[notify]] block 1 url", "tenant.client_secret".
    return f"{where} {key}" if _NOTIFY_BLOCK.fullmatch(where) else f"{where}.{key}"


def _key_text(key: object) -> str:
    """A key as an error names it: quoted when it is not a plain word (a newline in it)."""
    text = str(key)
    return text if _BARE_KEY.fullmatch(text) else repr(text)


def _child_item(where: str, index: int) -> str:
    return f"[[notify]] block {index + 1}" if where == "notify" else f"{where} item {index + 1}"


def _unset_message(unset: Mapping[str, list[str]]) -> str:
    names = list(unset)
    places = ", ".join(dict.fromkeys(_shorten(place) for name in names for place in unset[name]))
    if len(names) == 1:
        return (
            f"environment variable {names[0]} is not set (used in {places}): "
            "export it, or put it in the service's EnvironmentFile"
        )
    return (
        f"environment variables {', '.join(names)} are not set (used in {places}): "
        "export them, or put them in the service's EnvironmentFile"
    )


def _shorten(text: str, limit: int = 80) -> str:
    """A key or path cut to ``limit`` characters for an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_keys(table: Mapping[str, Any], section: str, label: str) -> None:
    allowed = _KEYS[section]
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {label}: valid keys are {', '.join(sorted(allowed))}"
        )


def _key_in(section: str, key: str) -> str:
    """``tenant.client_id``; in a [[notify]] block, ``[[notify]] block 1 url`` (or by name)."""
    return (
        f"{section} {key}"
        if section.startswith(("[[notify]]", "notify ", "[[tenants]]"))
        else f"{section}.{key}"
    )


def _table(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{key}] must be a table")
    return value


def _string(table: Mapping[str, Any], key: str, section: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{_key_in(section, key)} must be a non-empty string")
    return value.strip()


def _bool(table: Mapping[str, Any], key: str, section: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{_key_in(section, key)} must be true or false")
    return value


def _string_list(table: Mapping[str, Any], key: str, section: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(
            f'{_key_in(section, key)} must be a list of strings, e.g. ["Exchange Online"]'
        )
    return tuple(v.strip() for v in value)


def _choices(
    table: Mapping[str, Any],
    key: str,
    section: str,
    valid: tuple[str, ...],
    default: tuple[str, ...] = (),
) -> tuple[str, ...]:
    if key not in table:
        return default
    values = tuple(v.lower() for v in _string_list(table, key, section))
    for value in values:
        if value not in valid:
            raise ConfigError(
                f"{_key_in(section, key)} has {value!r}: valid values are {', '.join(valid)}"
            )
    return values


def _path(value: str, base_dir: Path | None, key: str) -> Path:
    if "\0" in value:
        raise ConfigError(f"{key} holds a NUL character: write the path without it")
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~name of no such user, or no home directory
        user = value.split("/")[0]
        raise ConfigError(
            f"{key} starts with {user!r} but that home directory is unknown: write the full path"
        ) from None
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


_URL_NAMES = {"authority": "authority host", "graph_endpoint": "Graph endpoint"}


def _https_url(table: Mapping[str, Any], key: str, section: str = "tenant") -> str | None:
    if key not in table:
        return None
    value = _string(table, key, section).rstrip("/")
    if not value.lower().startswith("https://"):
        raise ConfigError(f"{_key_in(section, key)} must be an https:// URL")
    # A host only: MSAL appends the tenant to the authority, and Graph paths go after the root.
    try:
        parts = urlsplit(value)
        well_formed = bool(parts.hostname) and not parts.path.strip("/")
    except ValueError:  # an unbalanced [ in an IPv6 host
        well_formed = False
    if not well_formed:
        raise ConfigError(f"{_URL_NAMES[key]} must look like https://host, got {value!r}")
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        port = 0
    if port == 0:
        raise ConfigError(
            f"{_key_in(section, key)} has an invalid port: write a number from 1 to 65535 "
            f"after the host, or none for 443, got {value!r}"
        )
    return value


_CREDENTIAL_KEYS = ("client_secret", "certificate_path", "certificate_password")
# A [[tenants]] name: a label in messages and a folder name under the state directory.
_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _tenants(doc: Mapping[str, Any], base_dir: Path | None) -> tuple[TenantSettings, ...]:
    """The [[tenants]] blocks, each over the [tenant] defaults; () when there are none."""
    if "tenants" not in doc:
        return ()
    blocks = doc["tenants"]
    if not isinstance(blocks, list) or not all(isinstance(b, Mapping) for b in blocks):
        raise ConfigError("tenants must be written as [[tenants]] blocks (an array of tables)")
    if not blocks:
        raise ConfigError("tenants is empty: add [[tenants]] blocks, or remove the key")
    defaults = doc.get("tenant", {})
    if not isinstance(defaults, Mapping):
        raise ConfigError("[tenant] must be a table")
    _check_keys(defaults, "tenant", "[tenant]")
    if "tenant_id" in defaults:
        raise ConfigError(
            "[tenant] has a tenant_id and there are [[tenants]] blocks: with [[tenants]], "
            "[tenant] holds only the defaults every tenant inherits; move tenant_id into a "
            "[[tenants]] block"
        )
    tenants: list[TenantSettings] = []
    seen: dict[str, str] = {}
    for index, block in enumerate(blocks, start=1):
        label = f"[[tenants]] block {index}"
        name = _string(block, "name", label)
        if not _TENANT_NAME.match(name) or name.strip(".") == "":
            raise ConfigError(
                f"{label}: name {name!r} must be a short label of letters, digits, '.', '_' "
                "or '-' (at most 63, starting with a letter or digit)"
            )
        label = f"[[tenants]] {name!r}"
        _check_keys(block, "tenants", label)
        folded = name.casefold()
        if folded in seen:
            raise ConfigError(
                f"two [[tenants]] blocks are named {seen[folded]!r} and {name!r}: names must be "
                "unique (ignoring case: each is a folder name)"
            )
        seen[folded] = name
        merged = dict(defaults)
        if any(key in block for key in _CREDENTIAL_KEYS):
            # A tenant's own credential replaces the default one whole.
            for key in _CREDENTIAL_KEYS:
                merged.pop(key, None)
        merged.update({k: v for k, v in block.items() if k != "name"})
        tenants.append(dataclasses.replace(_tenant(merged, base_dir, label), name=name))
    return tuple(tenants)


def _concurrency(table: Mapping[str, Any]) -> int:
    value = table.get("concurrency", DEFAULT_CONCURRENCY)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
        raise ConfigError("poll.concurrency must be a whole number of tenants from 1 to 64")
    return value


def _tenant(raw: Any, base_dir: Path | None, section: str = "tenant") -> TenantSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError("[tenant] must be a table")
    if section == "tenant":
        _check_keys(raw, "tenant", "[tenant]")
    tenant_id = _string(raw, "tenant_id", section)
    if not _TENANT.match(tenant_id):
        raise ConfigError(
            f"{_key_in(section, 'tenant_id')} must be the directory (tenant) GUID or a domain "
            "such as contoso.onmicrosoft.com"
        )
    client_id = _string(raw, "client_id", section)
    if not _GUID.match(client_id):
        raise ConfigError(
            f"{_key_in(section, 'client_id')} must be the app registration's Application "
            "(client) ID, a GUID"
        )
    has_secret = "client_secret" in raw
    has_cert = "certificate_path" in raw
    if has_secret == has_cert:
        where = "[tenant]" if section == "tenant" else f"{section} (or [tenant])"
        raise ConfigError(f"{where} needs exactly one of client_secret or certificate_path")
    secret = _string(raw, "client_secret", section) if has_secret else None
    cert = (
        _path(
            _string(raw, "certificate_path", section),
            base_dir,
            _key_in(section, "certificate_path"),
        )
        if has_cert
        else None
    )
    password = raw.get("certificate_password")
    if password is not None and not isinstance(password, str):
        raise ConfigError(f"{_key_in(section, 'certificate_password')} must be a string")
    cloud = raw.get("cloud", "global")
    if not isinstance(cloud, str) or cloud.lower() not in CLOUD_NAMES:
        raise ConfigError(f"{_key_in(section, 'cloud')} must be one of {', '.join(CLOUD_NAMES)}")
    return TenantSettings(
        tenant_id=tenant_id,
        client_id=client_id,
        client_secret=secret,
        certificate_path=cert,
        certificate_password=password or None,
        cloud=cloud.lower(),
        authority=_https_url(raw, "authority", section),
        graph_endpoint=_https_url(raw, "graph_endpoint", section),
    )


def _target(raw: Any, index: int) -> TargetSettings:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"[[notify]] block {index} must be a table")
    label = f"[[notify]] block {index}"
    if "name" in raw:
        name = _string(raw, "name", label)
        if "#" in name:
            # name#2 is how deliveries to a target's second URL are recorded.
            raise ConfigError(f"{label}: a target name cannot contain '#' ({name!r})")
        label = f"notify target {name!r}"
    else:
        name = f"notify-{index}"
    _check_keys(raw, "notify", label)
    if ("url" in raw) == ("urls" in raw):
        raise ConfigError(f"{label} needs exactly one of url or urls")
    urls = (_string(raw, "url", label),) if "url" in raw else _string_list(raw, "urls", label)
    if not urls:
        raise ConfigError(f"{label}: urls is empty")
    for url in urls:
        if _TEAMS_CONNECTOR.search(url):
            raise ConfigError(
                f"{label} uses a retired Office 365 connector URL: Microsoft retired Teams "
                "connectors; in Teams add the 'Post to a channel when a webhook request is "
                "received' workflow and use its URL (workflows://… or the https://…"
                "logic.azure.com/… / …api.powerplatform.com/… address it gives)"
            )
        if scheme_of(url) == "?":
            raise ConfigError(f"{label} has a URL without a scheme (like slack:// or mailtos://)")
    return TargetSettings(
        name=name,
        urls=tuple(urls),
        services=_string_list(raw, "services", label),
        classifications=_choices(raw, "classifications", label, CLASSIFICATIONS),
        events=_choices(raw, "events", label, EVENTS),
        digest=_bool(raw, "digest", label, False),
        tenants=_string_list(raw, "tenants", label),
        group_tenants=_bool(raw, "group_tenants", label, False),
    )
