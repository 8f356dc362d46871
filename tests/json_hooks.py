"""In-process runs whose targets are json:// webhooks mocked by `responses`.

The fault, watch, watcher and doctor tests share them: a config with the
targets "all", "incidents" and "watch", the in-process command line with the
sentinel as the client secret, and what each webhook received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import responses

from tests import command_line
from tests.helpers import body_of
from tests.installation import SENTINEL

GRAPH_ISSUES = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement/issues"
HOOKS = "http://hooks.example"


# Targets "all", "incidents" and "watch" (watcher messages only), as json:// webhooks.
JSON_TARGETS = """
[[notify]]
name = "all"
url = "json://hooks.example/all"

[[notify]]
name = "incidents"
url = "json://hooks.example/incidents"
classifications = ["incident"]

[[notify]]
name = "watch"
url = "json://hooks.example/watch"
events = ["watcher"]
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """The command line's config (secret from the environment), with the JSON_TARGETS."""
    return command_line.write_config(tmp_path, extra, notify=JSON_TARGETS)


def invoke(config: Path, *args: str) -> Any:
    """The in-process command line, with the sentinel as the client secret."""
    return command_line.invoke(config, *args, env={"M365WATCH_CLIENT_SECRET": SENTINEL})


def mock_hooks(rsps: responses.RequestsMock, *, failing: tuple[str, ...] = ()) -> None:
    for name in ("all", "incidents", "watch"):
        rsps.post(f"{HOOKS}/{name}", status=500 if name in failing else 200, body="{}")


def received(rsps: responses.RequestsMock) -> list[tuple[str, str]]:
    """(target, title) of every webhook request, in order."""
    out = []
    for call in rsps.calls:
        if call.request.url and call.request.url.startswith(HOOKS):
            out.append(
                (call.request.url.rsplit("/", 1)[1], json.loads(body_of(call.request))["title"])
            )
    return out
