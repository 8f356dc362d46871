"""What a command imports, in a fresh interpreter: only what its path needs.

A quiet poll (nothing new, the token still good, a client secret) needs requests
for Graph, the state store and the pipeline; not MSAL, cryptography (certificates),
Apprise or the channel payloads, which only a sign-in, a certificate or a send need.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import probe, resolved_incident
from tests.loopback import FakeMicrosoft

NOT_ON_A_QUIET_POLL = (
    "msal",
    "cryptography",
    "m365watch.certificate",
    "apprise",
    "m365watch.notify",
    "m365watch.channels",
    "rich",
)
WATCHED = ("requests", "tinydb", *NOT_ON_A_QUIET_POLL)


def test_a_quiet_poll_with_a_client_secret_and_a_cached_token_imports_only_what_it_needs(
    tmp_path: Path,
) -> None:
    with FakeMicrosoft(tmp_path).start() as fake:
        fake.issues = [resolved_incident("EX1000001", "serviceRestored")]
        config = tmp_path / "config.toml"
        notify = f'[[notify]]\nname = "hook"\nurl = "{fake.hook_url("ops")}"\n'
        config.write_text(fake.config_text(tmp_path / "state" / "state.json", notify=notify))
        config.chmod(0o600)
        env = {
            "M365WATCH_CLIENT_SECRET": "loopback-secret",
            "REQUESTS_CA_BUNDLE": str(fake.ca_bundle),
        }
        poll = ("-c", str(config), "-q", "poll")

        # The baseline signs in through MSAL and checks the notification URLs with Apprise.
        first = probe(*poll, watched=WATCHED, env=env)
        assert first["code"] == 0
        assert {"msal", "apprise"} <= set(first["loaded"])

        signed_in = fake.counts["token"] + fake.counts["openid"]
        quiet = probe(*poll, watched=WATCHED, env=env)
        assert quiet == {"code": 0, "loaded": ["requests"]}
        assert fake.counts["token"] + fake.counts["openid"] == signed_in  # no sign-in either
        assert fake.hooks == {}
