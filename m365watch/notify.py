"""Deliver messages through Apprise, one target at a time, and say which succeeded.

Each configured target gets its own Apprise object (one per URL), so one dead
target never hides another's result. Each URL gets the flavour of the message
its plugin reads natively: HTML for email, Markdown for chat, text otherwise.

Teams (Workflows) and Slack get a message built for them — an Adaptive Card,
a Block Kit attachment with a colour bar — through their plugin's own
``?template=`` option: the URL is loaded once with a template file in a
private temporary folder, and that file is rewritten with the message's
payload before each send (Apprise reads it at send time, and the plugin, its
throttle and its error handling stay Apprise's). A URL the user already gave a
template keeps it and gets Markdown. Notification URLs hold secrets: nothing
here logs or returns one.

Each send runs on a daemon thread and is waited for at most ``send_timeout``
seconds: Apprise's own I/O has only per-read timeouts, which a peer sending a
byte every few seconds never trips. A send that times out counts as failed (the
message stays owed); its thread is left behind without holding up the process's
exit, and its URL is not tried again while that thread still runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import apprise
from apprise.plugins.email import NotifyEmail
from apprise.plugins.slack import NotifySlack, SlackMode
from apprise.plugins.workflows import NotifyWorkflows

from m365watch.budget import SEND_SECONDS
from m365watch.deliver import SendResult
from m365watch.errors import ConfigError
from m365watch.messages import Message
from m365watch.settings import scheme_of

log = logging.getLogger(__name__)

# Sends that outlived their timeout and still run, by a hash of their URL (never the URL):
# that URL is not tried again until its thread ends, so a hanging peer holds one thread.
_STILL_SENDING: dict[str, threading.Thread] = {}
_STILL_SENDING_LOCK = threading.Lock()

_URLISH = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_TOKENISH = re.compile(r"[A-Za-z0-9_\-]{20,}")


class _ScrubApprise(logging.Filter):
    """Apprise logs a URL it cannot parse nearly whole (secrets too): scrub every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        return True


def _guard_apprise_log() -> None:
    """Keep notification URLs out of Apprise's log; safe to call again (one filter only)."""
    logger = logging.getLogger("apprise")
    logger.setLevel(logging.WARNING)  # its DEBUG records print whole webhook URLs
    if not any(isinstance(f, _ScrubApprise) for f in logger.filters):
        logger.addFilter(_ScrubApprise())


def scrub(text: str) -> str:
    """Remove anything that could be part of a notification URL from a log line."""
    text = _URLISH.sub("<url>", text)
    return _TOKENISH.sub("<redacted>", text).strip()


@dataclass
class _Templated:
    """A URL loaded again with ``?template=path``, m365watch writing the payload there."""

    apprise: apprise.Apprise
    kind: str  # the channel whose payload it sends: a key of channels.PAYLOAD_BUILDERS
    path: Path


@dataclass
class _Route:
    """One URL of a target: its Apprise object, and its templated twin for Teams/Slack."""

    plain: apprise.Apprise
    templated: _Templated | None = None


class Notifier:
    """Sends messages to named targets, each a list of Apprise URLs."""

    def __init__(
        self,
        targets: Mapping[str, Sequence[str]],
        *,
        throttle: bool = True,
        send_timeout: float = SEND_SECONDS,
    ) -> None:
        """``send_timeout`` bounds each message to each URL, in seconds."""
        if send_timeout <= 0:
            raise ValueError("send_timeout must be positive")
        _guard_apprise_log()
        self._urls = {name: tuple(urls) for name, urls in targets.items()}
        self._throttle = throttle
        self._send_timeout = send_timeout
        self._routes: dict[str, list[_Route]] = {}
        self._template_dir: Path | None = None
        self._template_numbers = itertools.count(1)

    @property
    def targets(self) -> tuple[str, ...]:
        """The target names, in configuration order."""
        return tuple(self._urls)

    def check(self) -> None:
        """Load every URL into Apprise; a URL it rejects is a ConfigError naming the target."""
        for name in self._urls:
            self._target_routes(name)

    def _apprise_objects(self, name: str) -> list[apprise.Apprise]:
        """The Apprise object each of the target's URLs sends through."""
        routes = self._target_routes(name)
        return [r.templated.apprise if r.templated else r.plain for r in routes]

    def _target_routes(self, name: str) -> list[_Route]:
        if name not in self._routes:
            routes = []
            for position, url in enumerate(self._urls[name], start=1):
                obj = apprise.Apprise(asset=_asset())
                with _apprise_log() as said:
                    added = obj.add(url)
                if not added:
                    why = f" ({_redact(said[0])})" if said else ""
                    raise ConfigError(
                        f"notify target {name!r}: Apprise does not accept its URL number "
                        f"{position} ({scheme_of(url)}://…){why}: check it against the Apprise "
                        "documentation for that service"
                    )
                route = self._route(name, position, obj)
                if not self._throttle:
                    for plugin in [
                        *route.plain,
                        *(route.templated.apprise if route.templated else ()),
                    ]:
                        plugin.request_rate_per_sec = 0
                routes.append(route)
            self._routes[name] = routes
        return self._routes[name]

    def _route(self, name: str, position: int, obj: apprise.Apprise) -> _Route:
        """Add the templated twin when m365watch builds this plugin's payload itself."""
        plugin: Any = obj[0]
        kind = _template_kind(plugin)
        if kind is None:
            return _Route(obj)
        path = self._template_folder() / f"{next(self._template_numbers)}-{kind}.json"
        template = quote(f"file://{quote(str(path))}?cache=no", safe="")
        url: str = plugin.url(privacy=False)
        templated = apprise.Apprise(asset=_asset())
        if not templated.add(f"{url}{'&' if '?' in url else '?'}template={template}"):
            log.warning(
                "notify target %s: URL number %d cannot take a message template; "
                "it gets Markdown instead",
                name,
                position,
            )
            return _Route(obj)
        return _Route(obj, _Templated(templated, kind, path))

    def _template_folder(self) -> Path:
        if self._template_dir is None:
            self._template_dir = Path(tempfile.mkdtemp(prefix="m365watch-"))
            weakref.finalize(self, shutil.rmtree, self._template_dir, True)
        return self._template_dir

    def send(self, target: str, message: Message, *, url: int | None = None) -> SendResult:
        """Send ``message`` to every URL of ``target`` (or only its ``url``-th, from 1).

        Ok only when every URL it went to accepted it.
        """
        reasons: list[str] = []
        for position, route in enumerate(self._target_routes(target), start=1):
            if url is not None and position != url:
                continue
            templated = route.templated
            payload = message.payload(templated.kind) if templated else None
            if templated and payload:
                # The template ignores the body: a short one, so ?overflow=split cannot repeat it.
                obj, body, body_format = templated.apprise, message.title, "text"
            else:
                obj = route.plain
                body, body_format = _body_for(obj[0].notify_format, message)
            address = self._urls[target][position - 1]
            scheme = scheme_of(address)
            key = hashlib.sha256(address.encode()).hexdigest()
            if _still_sending(key):
                # Its template file may still be read by that send: leave it alone.
                reasons.append(
                    f"{scheme}: not tried: an earlier send to it timed out after "
                    f"{self._send_timeout:g} s and has not finished"
                )
                continue
            attach = None if templated and payload else _attachments(obj, message)
            try:
                if templated and payload:
                    _write_template(templated.path, payload)
                result = self._notify_within(
                    key,
                    functools.partial(
                        obj.notify,
                        body=body,
                        title=message.title,
                        notify_type=message.notify_type,
                        body_format=body_format,
                        attach=attach,
                    ),
                )
            except Exception as exc:  # Apprise should not raise; never lose the poll if it does
                reasons.append(f"{scheme}: {type(exc).__name__}")
                continue
            if result is _TIMED_OUT:
                reasons.append(f"{scheme}: timed out after {self._send_timeout:g} s")
            elif not result:
                reasons.append(self._reason(target, position, result))
        if reasons:
            # The caller reports the failure (the CLI's Warning line): here only with -v.
            log.info("delivery to %s failed: %s", target, "; ".join(reasons))
            return SendResult(False, "; ".join(reasons))
        return SendResult(True)

    def _notify_within(self, key: str, notify: Callable[[], object]) -> object:
        """``notify()``'s result, or _TIMED_OUT after ``send_timeout``; raises what it raised."""
        outcome: list[object] = []
        failure: list[Exception] = []

        def run() -> None:
            try:
                outcome.append(notify())
            except Exception as exc:  # handed to the waiting thread
                failure.append(exc)

        # A daemon thread: one still stuck in a send must not hold up the process's exit.
        thread = threading.Thread(target=run, name="m365watch-send", daemon=True)
        thread.start()
        thread.join(self._send_timeout)
        if thread.is_alive():
            with _STILL_SENDING_LOCK:
                _STILL_SENDING[key] = thread
            log.debug("a send is still running after %gs; no longer waiting", self._send_timeout)
            return _TIMED_OUT
        if failure:
            raise failure[0]
        return outcome[0]

    def _reason(self, target: str, position: int, result: object) -> str:
        scheme = scheme_of(self._urls[target][position - 1])
        lines: list[str] = []
        logs = getattr(result, "logs", None)
        if callable(logs):
            for entry in logs():
                if entry.level in ("WARNING", "ERROR", "CRITICAL") and entry.message.strip():
                    lines.append(scrub(entry.message))
        status = getattr(getattr(result, "status", None), "name", "FAILURE")
        detail = lines[0] if lines else status.lower()
        return f"{scheme}: {detail[:200]}"


_TIMED_OUT = object()


def _still_sending(key: str) -> bool:
    """Whether a send to this URL timed out earlier and its thread still runs."""
    with _STILL_SENDING_LOCK:
        thread = _STILL_SENDING.get(key)
        if thread is not None and not thread.is_alive():
            del _STILL_SENDING[key]
            thread = None
    return thread is not None


def _asset() -> apprise.AppriseAsset:
    """Apprise's settings for one URL: no time limit of its own.

    With one, Apprise moves the send to its shared worker pool, whose threads the
    interpreter waits for at exit: one stuck send would hold up the process. The
    Notifier's own thread and ``send_timeout`` bound the send instead.
    """
    asset = apprise.AppriseAsset()
    asset._service_timeout = 0.0  # absent before Apprise 2.1 (no limit, nothing to turn off)
    return asset


def _attachments(obj: apprise.Apprise, message: Message) -> apprise.AppriseAttachment | None:
    """The message's files (post-incident reports), for an email URL only; None otherwise.

    Chat targets get the line saying where the file is, never the file; a file gone
    from the disk since is left out rather than failing the send.
    """
    paths = [str(p) for p in message.attachments if p.is_file()]
    if not paths or len(obj) != 1:
        return None
    plugin = obj[0]
    if not isinstance(plugin, NotifyEmail) or not getattr(plugin, "attachment_support", False):
        return None
    return apprise.AppriseAttachment(paths)


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


class _Collect(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def _apprise_log() -> Iterator[list[str]]:
    """Collect Apprise's warnings instead of printing them: on a bad URL they quote its tokens."""
    logger = logging.getLogger("apprise")
    lines: list[str] = []
    handler, propagate = _Collect(lines), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _redact(line: str) -> str:
    """Apprise's reason for refusing a URL, every quoted value masked.

    "An invalid Slack (second) Token (T1JJ…) was specified." keeps "(second)", masks the token;
    a value after a final colon goes.
    """
    ordinal = re.compile(r"\((first|second|third|fourth)\)", re.IGNORECASE)
    masked = re.sub(
        r"\([^)]*\)", lambda m: m.group() if ordinal.fullmatch(m.group()) else "(…)", line
    )
    masked = re.sub(r":\s*\S*$", "", masked)  # "… specified: VALUE"
    return scrub(masked).rstrip(".:")[:160]


def _template_kind(plugin: object) -> str | None:
    """The channel (``teams``, ``slack``) whose payload m365watch builds for this plugin, if any."""
    if getattr(plugin, "template", None):
        return None  # the user's own template wins
    if isinstance(plugin, NotifyWorkflows):
        return "teams"
    slack_modes = (SlackMode.WEBHOOK, SlackMode.WEBHOOK_GOV, SlackMode.BOT)
    if isinstance(plugin, NotifySlack) and plugin.mode in slack_modes:
        return "slack"  # Slack Workflow Builder webhooks take variables, not Block Kit
    return None


def _write_template(path: Path, payload: Mapping[str, Any]) -> None:
    # Apprise substitutes {{tokens}} in templates; "{{" only occurs inside JSON strings,
    # where "{\u007b" reads back as the same two braces and matches no token.
    path.write_text(json.dumps(payload).replace("{{", "{\\u007b"), encoding="utf-8")


CONSOLE_SCHEME = "m365console"
_console_echo: list[Callable[[str], None]] = [print]


def console_url(echo: Callable[[str], None]) -> str:
    """An Apprise URL that prints each message through ``echo`` (the demo's terminal target).

    Apprise registers a custom scheme once per process, first wins: the scheme is
    registered once and ``echo`` is swapped behind it.
    """
    import apprise
    from apprise.decorators import notify

    _console_echo[0] = echo
    if CONSOLE_SCHEME not in apprise.Apprise().details().get("schemas", ()):

        @notify(on=CONSOLE_SCHEME, name="m365watch terminal", body_format="text")  # type: ignore[untyped-decorator,no-untyped-call]
        def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
            say, rule = _console_echo[0], "─" * 72
            say(f"  ┌{rule}\n  │ [{notify_type}] {title}\n  ├{rule}")
            for line in body.splitlines():
                say(f"  │ {line}")
            say(f"  └{rule}")
            return True

    return f"{CONSOLE_SCHEME}://"
