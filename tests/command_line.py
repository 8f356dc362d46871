"""The command line run in-process (click's CliRunner) on a config written to tmp_path.

The config's client secret comes from the environment (``M365WATCH_CLIENT_SECRET``),
which :func:`invoke` sets to the mocked sign-in's secret (tests/identity.py).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from m365watch.cli import main
from tests.helpers import SLACK_URL
from tests.identity import CLIENT_ID, SECRET, TENANT


def write_config(tmp_path: Path, extra: str = "", notify: str = "") -> Path:
    notify = notify or f'[[notify]]\nname = "ops-slack"\nurl = "{SLACK_URL}"\n'
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [tenant]
            tenant_id = "{TENANT}"
            client_id = "{CLIENT_ID}"
            client_secret = "${{M365WATCH_CLIENT_SECRET}}"

            [state]
            path = "{tmp_path / "state" / "state.json"}"
            {extra}
            """
        )
        + notify
    )
    path.chmod(0o600)
    return path


def invoke(config: Path | None, *args: str, env: dict[str, str] | None = None) -> Any:
    runner = CliRunner()
    argv = (["-c", str(config)] if config else []) + list(args)
    return runner.invoke(
        main, argv, env={"M365WATCH_CLIENT_SECRET": SECRET, **(env or {})}, catch_exceptions=False
    )
