"""Deliver messages through Apprise, one target at a time, and say which succeeded.

Each configured target gets its own Apprise object (one per URL), so one dead
target never hides another's result. Each URL gets the flavour of the message
its plugin reads natively: HTML for email, Markdown for chat, text otherwise.
Notification URLs hold secrets: nothing here logs or returns one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import apprise

from m365watch.errors import ConfigError
from m365watch.render import Message

log = logging.getLogger(__name__)

# Apprise's DEBUG log prints whole webhook URLs; keep it quiet unless asked twice.
logging.getLogger("apprise").setLevel(logging.WARNING)

_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{20,}")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class DeliveryResult:
    """Whether one target accepted one message, and why not."""

    target: str
    ok: bool
    reason: str = ""


class _ScrubApprise(logging.Filter):
    """Apprise logs a URL it cannot parse nearly whole (secrets too): scrub every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


def _scheme(url: str) -> str:
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else "?"


def scrub(text: str) -> str:
    """Remove anything that could be part of a notification URL from a log line."""
    text = _URLISH.sub("<url>", text)
    return _TOKENISH.sub("<redacted>", text).strip()


logging.getLogger("apprise").addFilter(_ScrubApprise())


class Notifier:
    """Sends messages to named targets, each a list of Apprise URLs."""

    def __init__(self, targets: Mapping[str, Sequence[str]], *, throttle: bool = True) -> None:
        self._urls = {name: tuple(urls) for name, urls in targets.items()}
        self._throttle = throttle
        self._objects: dict[str, list[apprise.Apprise]] = {}

    @property
    def targets(self) -> tuple[str, ...]:
        """The target names, in configuration order."""
        return tuple(self._urls)

    def check(self) -> None:
        """Load every URL into Apprise; a URL it rejects is a ConfigError naming the target."""
        for name in self._urls:
            self._apprise_objects(name)

    def _apprise_objects(self, name: str) -> list[apprise.Apprise]:
        if name not in self._objects:
            objects = []
            for position, url in enumerate(self._urls[name], start=1):
                obj = apprise.Apprise()
                if not obj.add(url):
                    raise ConfigError(
                        f"notify target {name!r}: Apprise does not accept its URL number "
                        f"{position} ({_scheme(url)}://…): check it against the Apprise "
                        "documentation for that service"
                    )
                if not self._throttle:
                    for plugin in obj:
                        plugin.request_rate_per_sec = 0
                objects.append(obj)
            self._objects[name] = objects
        return self._objects[name]

    def send(self, target: str, message: Message) -> DeliveryResult:
        """Send ``message`` to every URL of ``target``; ok only when all accepted it."""
        reasons: list[str] = []
        for position, obj in enumerate(self._apprise_objects(target), start=1):
            plugin = obj[0]
            body, body_format = _body_for(plugin.notify_format, message)
            try:
                result = obj.notify(
                    body=body,
                    title=message.title,
                    notify_type=message.notify_type,
                    body_format=body_format,
                )
            except Exception as exc:  # Apprise should not raise; never lose the poll if it does
                reasons.append(f"{_scheme(self._urls[target][position - 1])}: {type(exc).__name__}")
                continue
            if not result:
                reasons.append(self._reason(target, position, result))
        if reasons:
            log.warning("delivery to %s failed: %s", target, "; ".join(reasons))
            return DeliveryResult(target, False, "; ".join(reasons))
        return DeliveryResult(target, True)

    def _reason(self, target: str, position: int, result: object) -> str:
        scheme = _scheme(self._urls[target][position - 1])
        lines: list[str] = []
        logs = getattr(result, "logs", None)
        if callable(logs):
            for entry in logs():
                if entry.level in ("WARNING", "ERROR", "CRITICAL") and entry.message.strip():
                    lines.append(scrub(entry.message))
        status = getattr(getattr(result, "status", None), "name", "FAILURE")
        detail = lines[0] if lines else status.lower()
        return f"{scheme}: {detail[:200]}"


def _body_for(notify_format: object, message: Message) -> tuple[str, str]:
    if isinstance(notify_format, (tuple, list, set, frozenset)):
        # A plugin that takes several formats (custom ones): Markdown reads well everywhere.
        names = {str(getattr(f, "value", f)).lower() for f in notify_format}
        flavour = "markdown" if "markdown" in names else (sorted(names) or ["text"])[0]
    else:
        flavour = str(getattr(notify_format, "value", notify_format)).lower()
    if flavour == "html":
        return message.html, "html"
    if flavour == "markdown":
        return message.markdown, "markdown"
    return message.text, "text"
