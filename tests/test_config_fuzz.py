"""A fuzzer for the configuration: any file either loads or is one ConfigError, never a crash.

Hundreds of generated files, from a fixed seed: valid TOML with random values of
random types under every known key, and that text damaged (stray bytes, NUL,
byte-order marks, other encodings, deep nesting, huge strings, ``${VARS}`` set
or not). ``load_settings`` must load each or raise ConfigError; a smaller set goes
through the real command line, which must exit 1 or 2 with no traceback.
"""

from __future__ import annotations

import json
import os
import random
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner

from m365watch.cli import main
from m365watch.config import load_settings
from m365watch.errors import ConfigError
from m365watch.settings import CLOUDS
from tests.helpers import timeline_steps
from tests.identity import mock_identity

SEED = 20_261_120
IN_PROCESS_CASES = 600
COMMAND_LINE_CASES = 120

GUID = "11111111-2222-3333-4444-555555555555"
ISSUES = timeline_steps()[2]["issues"]
VARIABLES = ("M365WATCH_CLIENT_SECRET", "TEAMS_URL", "SMTP_PASSWORD", "EMPTY", "NESTED")

# Plausible and almost-plausible values for each known key (the rest is random).
GOOD: dict[str, dict[str, list[Any]]] = {
    "tenant": {
        "tenant_id": ["contoso.onmicrosoft.com", GUID, "common", "contoso", "${TENANT}"],
        "client_id": [GUID, GUID.upper(), "not-a-guid", "${M365WATCH_CLIENT_SECRET}"],
        "client_secret": ["${M365WATCH_CLIENT_SECRET}", "s3cret", "${EMPTY}", " "],
        "certificate_path": ["app.pem", "~/app.pem", "~nobody-here/app.pem", "/dev/null", "~"],
        "certificate_password": ["${SMTP_PASSWORD}", "pw", ""],
        "cloud": ["global", "usgov", "dod", "china", "CHINA", "azure", ""],
        "authority": [
            "https://login.microsoftonline.com",
            "https://login.microsoftonline.com/",
            "https://[::1",
            "https://[::1]:8443",
            "https://127.0.0.1:99999",
            "https://host:0",
            "https://host:port",
            "https://host/path",
            "https://",
            "http://login.microsoftonline.com",
            "https://user:pw@host",
        ],
        "graph_endpoint": [
            "https://graph.microsoft.com",
            "https://graph.microsoft.com/v1.0",
            "https://[fe80::1%25eth0]",
            "https://[",
            "https://graph.example.com:65536",
        ],
    },
    "state": {"path": ["state.json", "state/state.json", "", ".", "~", "~x/y", "a/../b"]},
    "poll": {
        "services": [["Exchange Online"], "Microsoft Teams", [], [""], ["a", 1]],
        "classifications": [["incident"], ["ADVISORY"], ["outage"], "incident", []],
        "notify_existing": [True, False, "yes", 0],
    },
    "notify": {
        "name": ["ops", "ops#2", "", "notify-1", "${TEAMS_URL}"],
        "url": [
            "json://127.0.0.1:9/hook",
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7",
            "workflows://prod-12.westus.logic.azure.com:443/f0a1b2c3d4e5/Sig0123",
            "mailtos://user:${SMTP_PASSWORD}@smtp.example.com?to=a@example.com",
            "msteams://a/b/c",
            "https://x.webhook.office.com/webhookb2/a",
            "${TEAMS_URL}",
            "json://[::1",
            "json://host:99999/x",
            "slack://onlyonetoken",
            "no scheme at all",
            "://",
            "jsons://",
        ],
        "urls": [["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"], [], ["${TEAMS_URL}"], "x://y"],
        "services": [["Exchange Online"], []],
        "classifications": [["incident"], ["maintenance"]],
        "events": [["new", "resolved"], ["deleted"], "new", []],
        "digest": [True, False, "false"],
    },
    "health": {"alert_after": [3, 0, -1, True, "3", 2**63 - 1, 1.5]},
}


# --- random values --------------------------------------------------------------------

ODD_TEXT = "ÄßЖ漢字🙂\u200b\u202e\t\\\"'${}[]#=.\r\n\x00\x01\x7f\ufeff"


def random_text(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(string.ascii_letters) * rng.choice([10_000, 200_000])  # huge
    if roll < 0.2:
        # ${VARS}, set or not, whole or in pieces.
        parts = [f"${{{rng.choice((*VARIABLES, 'UNSET', 'X'))}}}" for _ in range(rng.randint(1, 3))]
        return rng.choice(["", "pre-"]) + "".join(parts) + rng.choice(["", "${", "$}", "${1}"])
    alphabet = string.printable + ODD_TEXT
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(
        ["str", "str", "int", "float", "bool", "date", "list", "table", "deep"]
        if depth < 3
        else ["str", "int", "float", "bool"]
    )
    if kind == "str":
        return random_text(rng)
    if kind == "int":
        return rng.choice([0, 1, -1, 3, 2**63 - 1, -(2**63), rng.randint(-1000, 1000)])
    if kind == "float":
        return rng.choice([0.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf")])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "date":
        return Literal(rng.choice(["1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]))
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "table":
        return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    # Nested lists or tables, deeper than any setting.
    value: Any = random_text(rng)
    for _ in range(rng.randint(5, 60)):
        value = [value] if rng.random() < 0.5 else {"k": value}
    return value


def random_key(rng: random.Random) -> str:
    return rng.choice(["x", "name", "url", "k k", "ä", "", "a.b", "${X}", random_text(rng)[:20]])


def value_for(rng: random.Random, section: str, key: str, care: float) -> Any:
    """The key's first (good) value with probability ``care``, else any value."""
    if rng.random() < care:
        return GOOD[section][key][0]
    return rng.choice(GOOD[section][key]) if rng.random() < 0.75 else random_value(rng)


def random_table(rng: random.Random, section: str, care: float) -> dict[str, Any]:
    table = {k: value_for(rng, section, k, care) for k in GOOD[section] if rng.random() < 0.6}
    if section == "notify" and "url" in table and "urls" in table:
        del table[rng.choice(["url", "urls"])]
    if section == "tenant" and rng.random() < max(care, 0.7):
        # Mostly a tenant that gets past the first checks.
        table.setdefault("tenant_id", "contoso.onmicrosoft.com")
        table.setdefault("client_id", GUID)
        if rng.random() < care:  # one credential, as a valid file has: mostly a secret
            if rng.random() < 0.85:
                table.pop("certificate_path", None)
                table.pop("certificate_password", None)
                table.setdefault("client_secret", "${M365WATCH_CLIENT_SECRET}")
            else:
                table.pop("client_secret", None)
                table.setdefault("certificate_path", "app.pem")
    if rng.random() < 0.1 * (1 - care):
        table[random_key(rng)] = random_value(rng)
    return table


def random_document(rng: random.Random, cares: tuple[float, ...]) -> dict[str, Any]:
    care = rng.choice(cares)  # how close to a valid file it stays
    doc: dict[str, Any] = {}
    for section in ("tenant", "state", "poll", "health"):
        if rng.random() < 0.7:
            whole = rng.random() < max(care, 0.9)
            doc[section] = random_table(rng, section, care) if whole else random_value(rng)
    if rng.random() < 0.8:
        blocks = [random_table(rng, "notify", care) for _ in range(rng.randint(0, 3))]
        for number, block in enumerate(blocks):
            block["name"] = f"target-{number}" if rng.random() < care else block.get("name", "")
        doc["notify"] = blocks if rng.random() < max(care, 0.9) else random_value(rng)
    if rng.random() < 0.05 * (1 - care):
        doc[random_key(rng)] = random_value(rng)
    return doc


# --- TOML out ---------------------------------------------------------------------------


class Literal(str):
    """A TOML value written as it is (a date or a time)."""


def toml_key(key: str) -> str:
    bare = key and all(c in string.ascii_letters + string.digits + "_-" for c in key)
    return key if bare else toml_value(key)


def toml_value(value: Any) -> str:
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        # JSON's escapes are TOML's, but for DEL, which TOML wants escaped too.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not _is_section(v)]
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_key(key)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
        elif _is_section(value):
            for block in value:
                lines.append(f"[[{toml_key(key)}]]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in block.items()]
    return "\n".join(lines) + "\n"


def _is_section(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


# --- damage -----------------------------------------------------------------------------


def damaged(rng: random.Random, text: str) -> bytes:
    """``text`` as bytes, sometimes broken in one to three ways."""
    data = text.encode("utf-8", "surrogatepass")
    mutations: list[Callable[[bytes], bytes]] = [
        lambda d: d[: rng.randint(0, len(d))],  # cut short
        lambda d: _insert(rng, d, bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))),
        lambda d: _insert(rng, d, b"\x00"),
        lambda d: b"\xef\xbb\xbf" + d,  # UTF-8 byte-order mark
        lambda d: b"\xef\xbb\xbf\xef\xbb\xbf" + d,
        lambda d: text.encode("utf-16"),
        lambda d: text.encode("latin-1", "replace"),
        lambda d: d.replace(b"\n", b"\r\n"),
        lambda d: d.replace(b"\n", b"\r"),
        lambda d: _insert(rng, d, rng.choice([b"[tenant", b"[[notify]]\n", b"]]", b"= =", b'"'])),
        lambda d: _insert(rng, d, b"\n" + b".".join(b"k%d" % i for i in range(600)) + b" = 1\n"),
        lambda d: d + b"\nx = " + b"[" * rng.choice([100, 400, 3000]) + b"]" * 50,
        lambda d: d + b"\ny = " + b"{a = " * 200 + b"1" + b"}" * 200 + b"\n",
        lambda d: d + b"\nhuge = '" + b"x" * (1024 * 1024) + b"'\n",  # past the size limit
    ]
    if rng.random() < 0.6:
        return data
    for _ in range(rng.randint(1, 3)):
        data = rng.choice(mutations)(data)
    return data


def _insert(rng: random.Random, data: bytes, piece: bytes) -> bytes:
    at = rng.randint(0, len(data))
    return data[:at] + piece + data[at:]


def random_env(rng: random.Random) -> dict[str, str]:
    values = ["s3cret", "", "${NESTED}", "json://127.0.0.1:9/from-env", " spaced ", "ä🙂"]
    env = {name: rng.choice(values) for name in VARIABLES if rng.random() < 0.6}
    if rng.random() < 0.8:
        env["M365WATCH_CLIENT_SECRET"] = "s3cret"
    if rng.random() < 0.8:
        env["SMTP_PASSWORD"] = "pw"
    return env


def case(
    index: int, cares: tuple[float, ...] = (0.97, 0.9, 0.6, 0.0)
) -> tuple[bytes, dict[str, str]]:
    """The ``index``-th generated configuration file and environment (deterministic)."""
    rng = random.Random(SEED + index)
    return damaged(rng, toml_document(random_document(rng, cares))), random_env(rng)


# --- the tests --------------------------------------------------------------------------


def test_any_config_file_loads_or_is_a_config_error(tmp_path: Path) -> None:
    crashes = []
    loaded = 0
    for index in range(IN_PROCESS_CASES):
        data, env = case(index)
        path = tmp_path / f"case-{index}.toml"
        path.write_bytes(data)
        try:
            load_settings(path, env=env)
            loaded += 1
        except ConfigError as error:
            assert "\n" not in str(error), f"case {index}: {error!r}"
        except Exception as error:  # what the fuzzer is here to find
            crashes.append(f"case {index}: {type(error).__name__}: {str(error)[:200]}")
        path.unlink()
    assert not crashes, "\n".join(crashes)
    assert loaded >= IN_PROCESS_CASES // 20  # the generator still reaches valid files


def test_the_command_line_answers_any_config_with_an_exit_code_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Graph's retries of a host that does not answer wait no real time.
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    runner = CliRunner()
    problems = []
    skipped = 0
    codes: set[int] = set()
    for index in range(COMMAND_LINE_CASES):
        # Closer to valid files than above, so that more of them reach sign-in and Apprise.
        data, env = case(10_000 + index, cares=(0.97, 0.9, 0.6))
        path = tmp_path / f"case-{index}" / "config.toml"
        path.parent.mkdir()
        path.write_bytes(data)
        # Where no state.path is given, and what ~ means: the poll writes only in the case's folder.
        env["STATE_DIRECTORY"] = str(path.parent / "state")
        env["HOME"] = str(path.parent / "home")
        if not _state_stays_in(path, env):
            skipped += 1
            continue
        # No request leaves the process: responses refuses every one it was not given. Every
        # other case has Microsoft answer, so that a valid file reaches its Apprise URLs.
        answered = index % 2 == 1
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            if answered:
                for host in {host for host, _ in CLOUDS.values()}:
                    mock_identity(rsps, host)
                for _, graph in CLOUDS.values():
                    rsps.get(
                        f"{graph}/v1.0/admin/serviceAnnouncement/issues", json={"value": ISSUES}
                    )
            result = runner.invoke(main, ["-c", str(path), "poll", "--dry-run"], env=env)
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        expected = (0, 1, 2) if answered else (1, 2)
        codes.add(result.exit_code)
        if crashed or result.exit_code not in expected or "Traceback" in result.output:
            problems.append(
                f"case {index}: exit {result.exit_code}, {result.exception!r}: "
                f"{result.output[-300:]!r}"
            )
    assert not problems, "\n".join(problems)
    assert skipped < COMMAND_LINE_CASES // 4
    assert codes == {0, 1, 2}  # some files got as far as Microsoft, and past it


def _state_stays_in(config: Path, env: dict[str, str]) -> bool:
    """Whether a poll with this config would write only inside the config's folder."""
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HOME", env["HOME"])
            state = load_settings(config, env=env).state_path
    except ConfigError:
        return True  # the command line stops at the same error
    return Path(os.path.abspath(state)).is_relative_to(config.parent)
