"""[[notify]] target validation: mistakes, digest, events, and the targets fingerprint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from m365watch.config import parse_settings
from m365watch.errors import ConfigError
from tests.helpers import SLACK_URL, TEAMS_URL


def settings(*blocks: dict[str, Any], **poll: Any) -> Any:
    document: dict[str, Any] = {"state": {"path": "/tmp/state.json"}, "notify": list(blocks)}
    if poll:
        document["poll"] = poll
    return parse_settings(document, env={}, base_dir=Path("/etc/m365watch"))


@pytest.mark.parametrize(
    ("blocks", "poll", "message"),
    [
        (
            [{"name": "ops", "url": SLACK_URL}, {"name": "ops", "url": TEAMS_URL}],
            {},
            "two [[notify]] blocks are named 'ops': names must be unique",
        ),
        (
            [{"name": "ops", "url": SLACK_URL, "events": ["new", "resolve"]}],
            {},
            "notify target 'ops' events has 'resolve': valid values are new, status, post, "
            "classification, resolved, reopened, pir, message-new, message-updated, message-due, "
            "watcher",
        ),
        (
            [{"name": "ops", "url": SLACK_URL, "classifications": ["outage"]}],
            {},
            "notify target 'ops' classifications has 'outage': valid values are incident, advisory",
        ),
        (
            [],
            {"classifications": ["Incident", "warning"]},
            "poll.classifications has 'warning': valid values are incident, advisory",
        ),
        (
            [{"name": "ops", "url": SLACK_URL, "digest": "yes"}],
            {},
            "notify target 'ops' digest must be true or false",
        ),
        (
            [{"name": "ops", "url": SLACK_URL, "digests": True}],
            {},
            "unknown key 'digests' in notify target 'ops': valid keys are classifications, digest,",
        ),
        (
            [{"name": "ops", "url": "hooks.slack.com/services/T/B/C"}],
            {},
            "notify target 'ops' has a URL without a scheme",
        ),
        (
            [{"name": "ops#2", "url": SLACK_URL}],
            {},
            "[[notify]] block 1: a target name cannot contain '#' ('ops#2')",
        ),
    ],
    ids=[
        "duplicate-names",
        "unknown-event",
        "unknown-classification",
        "unknown-poll-classification",
        "digest-not-bool",
        "typo-key",
        "no-scheme",
        "hash-in-name",
    ],
)
def test_notify_mistakes_are_config_errors(
    blocks: list[dict[str, Any]], poll: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(*blocks, **poll)
    assert message in str(caught.value)


def test_digest_events_and_classifications_are_read() -> None:
    parsed = settings(
        {"name": "ops", "url": TEAMS_URL, "digest": True, "events": ["New", "resolved"]},
        {"name": "mail", "urls": [SLACK_URL], "classifications": ["incident"]},
    )
    ops, mail = parsed.targets
    assert (ops.digest, ops.events, ops.schemes) == (True, ("new", "resolved"), ("workflows",))
    assert (mail.digest, mail.classifications) == (False, ("incident",))
    assert "Sig0123456789abcdefSecret" not in repr(ops)  # URLs hold secrets


def test_fingerprint_changes_with_the_urls_only_when_they_change() -> None:
    one = settings({"name": "ops", "url": SLACK_URL})
    same = settings({"name": "ops", "url": SLACK_URL, "digest": True})
    other = settings({"name": "ops", "url": TEAMS_URL})
    assert one.targets_fingerprint == same.targets_fingerprint
    assert one.targets_fingerprint != other.targets_fingerprint
