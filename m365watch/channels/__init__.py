"""Payloads m365watch builds itself for channels that read more than Markdown: pure.

Each module here writes a message's sections as one channel's payload;
:data:`PAYLOAD_BUILDERS` names them. A new channel is a module here and one
entry below (and, in :mod:`m365watch.notify`, which Apprise plugin gets it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from m365watch.channels import slack, teams
from m365watch.sections import Section

# (title, heading — a digest's title, empty for one change —, sections, notify type) -> payload
PayloadBuilder = Callable[[str, str, Sequence[Section], str], dict[str, Any]]

PAYLOAD_BUILDERS: Mapping[str, PayloadBuilder] = {
    "teams": teams.card,
    "slack": slack.attachment,
}
