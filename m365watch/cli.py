"""The command line: the only place that wires adapters, prints, and picks exit codes.

Heavy libraries (msal, requests, apprise, tinydb) are imported inside the
commands that need them, so ``--help`` and cached queries stay fast.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from m365watch import __version__
from m365watch.errors import (
    EXIT_DELIVERY,
    EXIT_LOCKED,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    EXIT_USAGE,
    ConfigError,
    LockedError,
    M365WatchError,
    StateError,
    first_line,
)

if TYPE_CHECKING:
    from m365watch.doctor import Check as DoctorCheck
    from m365watch.query import IssueDetail, StatusReport
    from m365watch.service import PollResult
    from m365watch.settings import Settings, TargetSettings, TenantSettings
    from m365watch.watcher import WatcherReport

log = logging.getLogger("m365watch")

# Seconds a poll waits for another one's lock (m365watch.store is not imported for --help).
DEFAULT_LOCK_WAIT = 10.0

_EXIT_MEANINGS = {
    0: "success",
    EXIT_RUNTIME: "runtime failure (sign-in, Microsoft Graph, state file); a poll commits nothing",
    EXIT_USAGE: "usage or configuration error",
    EXIT_DELIVERY: "the poll finished but a notification failed; it is kept and retried next poll",
    EXIT_NOT_FOUND: "the issue asked for does not exist",
    EXIT_LOCKED: "another poll holds the state lock; try again later",
}


def exit_codes_help(*codes: int, **meanings: str) -> str:
    """The "Exit codes:" block of a command's --help (``meanings`` as c3="…" override)."""
    lines = [f"  {code:<3} {meanings.get(f'c{code}', _EXIT_MEANINGS[code])}" for code in codes]
    return "\b\nExit codes:\n" + "\n".join(lines) + "\n"


EXIT_CODES_HELP = exit_codes_help(*_EXIT_MEANINGS)


class Context:
    """What every command gets: where the config is, how loud to be."""

    def __init__(self, config: Path | None, verbose: int, quiet: bool) -> None:
        self.config_option = config
        self.verbose = verbose
        self.quiet = quiet

    def config_path(self) -> Path:
        """The configuration file: -c, else $M365WATCH_CONFIG, else the user config dir."""
        from m365watch.config import default_config_path

        return self.config_option or default_config_path()

    def settings(self) -> Settings:
        """Load and validate the configuration; print its warnings."""
        from m365watch.config import load_settings

        settings = load_settings(self.config_path())
        for warning in settings.warnings:
            click.echo(f"Warning: {warning}", err=True)
        return settings


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("m365watch: %(levelname)s: %(message)s"))
    # On the handler too: -q must also hide Apprise's own warnings (a failed delivery
    # prints its Warning line anyway), while Apprise still logs them for the reason text.
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Never the libraries' debug output, however verbose: Apprise's and urllib3's carry
    # whole webhook URLs and their tokens. MSAL's errors (with a traceback) become our
    # own one-line AuthError, so it says nothing itself.
    logging.getLogger("apprise").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("msal").setLevel(logging.CRITICAL)


def fail(error: M365WatchError, verbose: int) -> NoReturn:
    """Print ``Error: …`` (a traceback only with -v) and exit with the error's code."""
    if verbose:
        import traceback

        traceback.print_exception(error, file=sys.stderr)
    click.echo(f"Error: {first_line(error)}", err=True)
    sys.exit(error.exit_code)


def run_guarded(ctx: Context, action: Callable[[], int]) -> NoReturn:
    """Run ``action``; turn M365WatchError into ``Error: …`` and its exit code."""
    try:
        code = action()
    except M365WatchError as error:
        fail(error, ctx.verbose)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    sys.exit(code)


def lock_wait_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--lock-wait SECONDS`` option of the commands that poll."""
    return click.option(
        "--lock-wait",
        type=click.FloatRange(min=0),
        default=DEFAULT_LOCK_WAIT,
        show_default=True,
        metavar="SECONDS",
        help=help_text,
    )


@click.group(epilog=EXIT_CODES_HELP)
@click.option(
    "-c",
    "--config",
    # Checked by load_settings, so every mistake with it is the same one-line error.
    type=click.Path(path_type=Path),
    help="Configuration file (default: $M365WATCH_CONFIG, else the user config dir).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More output; -vv for m365watch's debug logs (never the libraries': they hold secrets).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only errors (for cron).")
@click.version_option(__version__, prog_name="m365watch")
@click.pass_context
def main(click_ctx: click.Context, config: Path | None, verbose: int, quiet: bool) -> None:
    """Watch Microsoft 365 service health and notify Teams, Slack, email and more."""
    _setup_logging(verbose, quiet)
    click_ctx.obj = Context(config, verbose, quiet)


@main.command(epilog=exit_codes_help(0, EXIT_RUNTIME, EXIT_USAGE, EXIT_DELIVERY, EXIT_LOCKED))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print what would be sent; send nothing and leave the state as it is.",
)
@click.option(
    "--notify-existing",
    is_flag=True,
    help="On the first run, also send the issues that are already open.",
)
@lock_wait_option("How long to wait for another running poll before exiting 75.")
@click.pass_obj
def poll(ctx: Context, dry_run: bool, notify_existing: bool, lock_wait: float) -> NoReturn:
    """Fetch service-health issues once and send what is new or changed."""

    def action() -> int:
        settings = ctx.settings()
        result, watcher = poll_with_health(
            settings,
            quiet=ctx.quiet,
            dry_run=dry_run,
            notify_existing=notify_existing,
            lock_wait=lock_wait,
        )
        print_poll_result(result, quiet=ctx.quiet)
        return EXIT_DELIVERY if result.failed or watcher.failed else 0

    run_guarded(ctx, action)


def build_tokens(settings: Settings, *, session: Any = None, cache_dir: Path | None = None) -> Any:
    """The MSAL token provider for the configured credential (no network until used).

    Its caches live beside the state, or in ``cache_dir``.
    """
    from m365watch.auth import ClientSecret, TokenProvider
    from m365watch.certificate import Certificate

    tenant = _tenant(settings)
    authority_host, graph_endpoint = _endpoints(settings)
    credential: ClientSecret | Certificate
    if tenant.certificate_path is not None:
        credential = Certificate(tenant.certificate_path, tenant.certificate_password)
    else:
        credential = ClientSecret(tenant.client_secret or "")
    return TokenProvider(
        tenant_id=tenant.tenant_id,
        client_id=tenant.client_id,
        credential=credential,
        authority_host=authority_host,
        graph_endpoint=graph_endpoint,
        cache_dir=cache_dir or settings.state_path.parent,
        session=session,
    )


def _tenant(settings: Settings) -> TenantSettings:
    """The [tenant] table; ConfigError when the configuration has none."""
    if settings.tenant is None:
        raise ConfigError(
            f"{settings.source} has no [tenant] table: add tenant_id, client_id and "
            "client_secret or certificate_path (see config.example.toml)"
        )
    return settings.tenant


def _endpoints(settings: Settings) -> tuple[str, str]:
    """(authority host, Graph endpoint) for the configured cloud and overrides."""
    return _tenant(settings).endpoints


def build_graph(
    settings: Settings, *, tokens: Any = None, session: Any = None, **options: Any
) -> Any:
    """The Graph adapter, signed in through MSAL; ``options`` go to GraphClient."""
    from m365watch.graph import GraphClient

    tokens = tokens or build_tokens(settings, session=session)
    return GraphClient(
        graph_endpoint=_endpoints(settings)[1],
        get_token=tokens.get_token,
        session=session,
        **options,
    )


def build_sender(settings: Settings, *, throttle: bool = True) -> Any:
    """The Apprise adapter for the configured targets (imports apprise)."""
    from m365watch.notify import Notifier

    return Notifier({t.name: t.urls for t in settings.targets}, throttle=throttle)


def poll_once(
    settings: Settings,
    *,
    dry_run: bool = False,
    notify_existing: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    source: Any = None,
) -> PollResult:
    """Wire the real adapters (``source`` defaults to Graph) and run one poll."""
    from m365watch.service import run_poll
    from m365watch.store import StateStore

    return run_poll(
        source=source if source is not None else build_graph(settings),
        store=StateStore(settings.state_path, lock_wait=lock_wait),
        make_sender=lambda: build_sender(settings),
        poll=settings.poll,
        targets=settings.targets,
        targets_fingerprint=settings.targets_fingerprint,
        now=datetime.now(timezone.utc),
        dry_run=dry_run,
        notify_existing=notify_existing,
    )


def print_poll_result(result: PollResult, *, quiet: bool = False) -> None:
    """The summary of a poll for people (and cron mail)."""
    if result.dropped:
        # Said even with -q: these messages will never be sent.
        lost = ", ".join(f"{d.issue_id} for {d.target}" for d in result.dropped)
        verb = "would be dropped" if result.dry_run else "dropped"
        click.echo(
            f"Warning: undelivered change(s) owed to target(s) no longer configured {verb}: {lost}",
            err=True,
        )
    for delivery in result.failed:
        click.echo(
            f"Warning: {delivery.issue_id} not delivered to {delivery.target}: "
            f"{delivery.reason or 'failed'} (kept; retried next poll)",
            err=True,
        )
    if result.dry_run:
        for target, message in result.previews:
            click.echo(f"--- would send to {target}: {message.title}")
            click.echo(message.text)
            click.echo()
    if quiet:
        return
    if result.baseline:
        recorded = "would record" if result.dry_run else "recorded"
        click.echo(
            f"First poll: {recorded} {result.issues_seen} issues as the baseline; "
            + (
                f"{len(result.changes)} open issue(s) queued."
                if result.changes
                else "nothing sent (use --notify-existing to send open issues)."
            )
        )
    sent = sum(1 for d in result.deliveries if d.ok)
    prefix = "Dry run: " if result.dry_run else ""
    tail = f", {len(result.previews)} message(s) would be sent" if result.dry_run else ""
    click.echo(
        f"{prefix}{result.issues_seen} issues, {len(result.changes)} change(s), "
        f"{sent} message(s) sent, {len(result.failed)} failed, "
        f"{result.pending} delivery(ies) pending{tail}."
    )


@main.command(
    epilog="Needs no tenant and no configuration.\n\n"
    + exit_codes_help(0, EXIT_USAGE, EXIT_DELIVERY, c3="a --notify target did not accept a message")
)
@click.option(
    "--notify",
    "notify_urls",
    multiple=True,
    metavar="URL",
    help="Send the demo's notifications to this Apprise URL instead of the terminal.",
)
@click.pass_obj
def demo(ctx: Context, notify_urls: tuple[str, ...]) -> NoReturn:
    """Replay a bundled incident timeline through the real pipeline."""
    from m365watch.demo import run_demo

    def action() -> int:
        failed = run_demo(notify_urls, echo=click.echo)
        return EXIT_DELIVERY if failed else 0

    run_guarded(ctx, action)


# --- status and show (issue 4) ---


def _output_style() -> tuple[int, bool]:
    """The width to draw tables at, and whether to colour them (only on a terminal)."""
    import os
    import shutil

    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return shutil.get_terminal_size((80, 24)).columns, color


def _utcnow() -> datetime:
    """The time a status or show answer is made (tests replace it)."""
    return datetime.now(timezone.utc)


def _print_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _note_cache_age(ctx: Context, cached_at: datetime | None, now: datetime) -> None:
    """With --json, say on stderr how old cached data is (stdout stays pure JSON)."""
    from m365watch.query import cache_note

    if not ctx.quiet:
        click.echo(f"Note: {cache_note(cached_at, now)}", err=True)


def _print_answer(
    ctx: Context, answer: StatusReport | IssueDetail, *, as_json: bool, cached: bool, now: datetime
) -> int:
    """Print a status or show answer: JSON for scripts, else tables (rich is loaded only then)."""
    if as_json:
        if cached:
            _note_cache_age(ctx, answer.cached_at, now)
        _print_json(answer.to_json())
        return 0
    from m365watch import tables
    from m365watch.query import StatusReport

    width, color = _output_style()
    if isinstance(answer, StatusReport):
        text = tables.render_status(answer, now=now, width=width, color=color)
    else:
        text = tables.render_issue(answer, now=now, width=width, color=color)
    click.echo(text, nl=False)
    return 0


_JSON_HELP = "Print JSON for scripts (the format is in the README)."
_CACHED_HELP = (
    "Answer from the local state written by `m365watch poll`: no network request; "
    "says how old it is."
)


@main.command(epilog=exit_codes_help(0, EXIT_RUNTIME, EXIT_USAGE))
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Only this service: its name or id, in any case (repeatable).",
)
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved issues.")
@click.option(
    "--classification",
    type=click.Choice(["incident", "advisory"], case_sensitive=False),
    help="Only incidents or only advisories.",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--cached", is_flag=True, help=_CACHED_HELP)
@click.pass_obj
def status(
    ctx: Context,
    services: tuple[str, ...],
    include_resolved: bool,
    classification: str | None,
    as_json: bool,
    cached: bool,
) -> NoReturn:
    """Show the services that are not healthy and the open issues, now."""

    def action() -> int:
        from m365watch.query import StatusQuery, status_from_graph, status_from_state

        settings = ctx.settings()
        now = _utcnow()
        query = StatusQuery(
            services=services,
            classification=classification.lower() if classification else None,
            include_resolved=include_resolved,
        )
        if cached:
            from m365watch.store import StateStore

            report = status_from_state(StateStore(settings.state_path), query, now=now)
        else:
            report = status_from_graph(build_graph(settings), query, now=now)
        for warning in report.warnings:
            click.echo(f"Warning: {warning}", err=True)
        return _print_answer(ctx, report, as_json=as_json, cached=cached, now=now)

    run_guarded(ctx, action)


@main.command(
    epilog=exit_codes_help(
        0,
        EXIT_RUNTIME,
        EXIT_USAGE,
        EXIT_NOT_FOUND,
        c2="usage or configuration error, or not an issue id",
    )
)
@click.argument("issue_id")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--cached", is_flag=True, help=_CACHED_HELP)
@click.pass_obj
def show(ctx: Context, issue_id: str, as_json: bool, cached: bool) -> NoReturn:
    """Show one issue: facts, impact, every update.

    ISSUE_ID is the id Microsoft gives it, such as EX1256020 (any case).
    """

    def action() -> int:
        from m365watch.query import issue_from_graph, issue_from_state

        settings = ctx.settings()
        now = _utcnow()
        if cached:
            from m365watch.store import StateStore

            detail = issue_from_state(StateStore(settings.state_path), issue_id, now=now)
        else:
            detail = issue_from_graph(build_graph(settings), issue_id, now=now)
        return _print_answer(ctx, detail, as_json=as_json, cached=cached, now=now)

    run_guarded(ctx, action)


# --- test-notify (issue 3) ---
TEST_NOTIFY_HELP = f"""\b
Exit codes:
  0   every target accepted its test message
  {EXIT_USAGE}   usage or configuration error (an unknown --target, no [[notify]] blocks)
  {EXIT_DELIVERY}   at least one target did not accept it (its line says why)
"""


@main.command("test-notify", epilog=TEST_NOTIFY_HELP)
@click.option(
    "--target",
    "target_names",
    multiple=True,
    metavar="NAME",
    help="Test only this [[notify]] target (repeatable); default: all of them.",
)
@click.pass_obj
def test_notify(ctx: Context, target_names: tuple[str, ...]) -> NoReturn:
    """Send a clearly-marked test message to each notification target.

    Prints one line per target: ok, or FAILED with the reason (never the URL).
    Needs no tenant and changes no state.
    """

    def action() -> int:
        from m365watch.service import send_test_messages

        settings = ctx.settings()
        targets = select_targets(settings, target_names)
        results = send_test_messages(
            build_sender(settings), targets, now=datetime.now(timezone.utc)
        )
        for target, result in zip(targets, results, strict=True):
            schemes = ", ".join(target.schemes)
            if result.ok:
                click.echo(f"{target.name}: ok ({schemes})")
            else:
                click.echo(f"{target.name}: FAILED ({schemes}): {result.reason or 'failed'}")
        return 0 if all(r.ok for r in results) else EXIT_DELIVERY

    run_guarded(ctx, action)


def select_targets(settings: Settings, names: tuple[str, ...]) -> list[TargetSettings]:
    """The configured targets named in ``names`` (all when empty); ConfigError for others."""
    if not settings.targets:
        raise ConfigError(
            f"{settings.source} has no [[notify]] blocks: add one (see config.example.toml)"
        )
    by_name = {t.name: t for t in settings.targets}
    for name in names:
        if name not in by_name:
            raise ConfigError(
                f"no [[notify]] target is named {name!r}: the targets are {', '.join(by_name)}"
            )
    return [t for t in settings.targets if not names or t.name in names]


# --- watch and doctor (issue 5) ---


def poll_with_health(
    settings: Settings,
    *,
    quiet: bool = False,
    source: Any = None,
    dry_run: bool = False,
    notify_existing: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> tuple[PollResult, WatcherReport]:
    """One poll as ``poll`` and ``watch`` run it, counting polls that cannot reach Graph.

    A sign-in or Graph error is recorded in the health file (and, after
    ``[health] alert_after`` in a row, sent to "watcher" targets) before it is
    raised on; a poll that reaches Graph sends "working again" where it is owed.
    What the watcher sent is printed here. A dry run records nothing.
    """
    from m365watch.store import WatcherStore, watcher_path_for
    from m365watch.watcher import MonitoredSource, WatcherReport, record_failure, record_success

    monitored = MonitoredSource(source if source is not None else build_graph(settings))
    health = WatcherStore(watcher_path_for(settings.state_path), lock_wait=lock_wait)
    try:
        result = poll_once(
            settings,
            dry_run=dry_run,
            notify_existing=notify_existing,
            lock_wait=lock_wait,
            source=monitored,
        )
    except M365WatchError as error:
        if monitored.failure is error and not dry_run:
            reason = first_line(error)
            report = _record_health(
                lambda: record_failure(
                    health,
                    reason=reason,
                    alert_after=settings.alert_after,
                    targets=settings.targets,
                    make_sender=lambda: build_sender(settings),
                    now=datetime.now(timezone.utc),
                )
            )
            print_watcher_report(report, quiet=quiet)
        raise
    if dry_run:
        return result, WatcherReport()
    report = _record_health(
        lambda: record_success(
            health,
            targets=settings.targets,
            make_sender=lambda: build_sender(settings),
            now=datetime.now(timezone.utc),
        )
    )
    print_watcher_report(report, quiet=quiet)
    return result, report


def _record_health(record: Callable[[], WatcherReport]) -> WatcherReport:
    """Run a health update; one that cannot be made is a warning, never the poll's failure."""
    from m365watch.watcher import WatcherReport

    try:
        return record()
    except (LockedError, StateError) as error:
        log.warning("%s", first_line(error))
        return WatcherReport()


def print_watcher_report(report: WatcherReport, *, quiet: bool = False) -> None:
    """What the self-monitoring sent, or failed to send (kept for the next poll)."""
    for delivery in report.deliveries:
        if not delivery.ok:
            click.echo(
                f"Warning: {delivery.title!r} not delivered to {delivery.target}: "
                f"{delivery.reason or 'failed'} (tried again next poll)",
                err=True,
            )
        elif not quiet:
            click.echo(f"Sent {delivery.title!r} to {delivery.target}.")


@main.command(
    epilog="Exit codes: 0 when stopped by SIGTERM or Ctrl-C, 2 for a bad --every or "
    "configuration, 130 after a second signal. Each failed poll prints its Error line."
)
@click.option(
    "--every",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="Time from one poll's start to the next: 30s, 5m, 1h. Refused when it could "
    "break Graph's budget of 800 requests per hour.",
)
@lock_wait_option("How long each poll waits for another running poll before skipping its turn.")
@click.pass_obj
def watch(ctx: Context, every: str, lock_wait: float) -> NoReturn:
    """Poll in a loop, for containers and hosts without a timer.

    A failed poll is reported and the loop goes on. SIGTERM or Ctrl-C lets the
    poll in progress finish, then exits 0; a second one stops at once.
    """

    def action() -> int:
        from m365watch.graph import DEFAULT_MAX_ATTEMPTS
        from m365watch.watch import check_interval, format_interval, parse_interval, run_watch

        seconds = parse_interval(every)
        check_interval(seconds, DEFAULT_MAX_ATTEMPTS)
        settings = ctx.settings()
        # One client for the whole run: MSAL's app and token stay in memory between polls.
        graph = build_graph(settings)

        def one_poll() -> int:
            before = graph.request_count
            try:
                result, _ = poll_with_health(
                    settings, quiet=ctx.quiet, source=graph, lock_wait=lock_wait
                )
                print_poll_result(result, quiet=ctx.quiet)
            except M365WatchError as error:
                click.echo(f"Error: {first_line(error)}", err=True)
            except Exception as error:  # one failed poll must not end the loop, whatever failed
                log.debug("poll failed", exc_info=True)
                click.echo(
                    f"Error: unexpected {type(error).__name__} in this poll: {error}"[:500],
                    err=True,
                )
            return int(graph.request_count - before)

        if not ctx.quiet:
            click.echo(
                f"Polling every {format_interval(seconds)}; SIGTERM or Ctrl-C stops after the "
                "poll in progress."
            )
        stop = threading.Event()
        with _stop_on_signals(stop):
            polls = run_watch(
                one_poll, every=seconds, requests_per_poll=DEFAULT_MAX_ATTEMPTS, stop=stop
            )
        if not ctx.quiet:
            click.echo(f"Stopped after {polls} poll(s).")
        return 0

    run_guarded(ctx, action)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop``; a second signal interrupts at once."""

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@main.command(epilog="Exit codes: 0 when every check passes (warnings allowed), 1 when any fails.")
@click.pass_obj
def doctor(ctx: Context) -> NoReturn:
    """Check the installation, one line per check with the fix.

    Configuration, credential (certificate expiry), sign-in, Graph permission (one
    request), each notification URL (nothing is sent), state folder, clock.
    """
    from m365watch.doctor import Status

    def action() -> int:
        failed = warned = 0
        marks = {status: status.value for status in Status}
        try:
            "✓✗".encode(sys.stdout.encoding or "ascii")
        except (UnicodeEncodeError, LookupError):
            # A terminal that cannot show ✓ and ✗ (a latin-1 or C locale) gets words.
            marks = {Status.PASS: "OK", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "-"}
        for check in doctor_checks(ctx.config_path()):
            failed += check.failed
            warned += check.status is Status.WARN
            if not ctx.quiet or check.status in (Status.FAIL, Status.WARN):
                click.echo(f"{marks[check.status]} {check.name}: {check.detail}")
        if not ctx.quiet:
            warnings = f" ({_count(warned, 'warning')})" if warned else ""
            click.echo(
                f"{failed} check(s) failed{warnings}: fix them and run m365watch doctor again."
                if failed
                else f"All checks passed{warnings}."
            )
        return EXIT_RUNTIME if failed else 0

    run_guarded(ctx, action)


def doctor_checks(config_path: Path) -> Iterator[DoctorCheck]:
    """Run doctor's checks in order, yielding each as it completes."""
    import email.utils
    import tempfile
    from urllib.parse import urlsplit

    import requests

    from m365watch import doctor as checks
    from m365watch.config import load_settings
    from m365watch.doctor import Check, Status

    now = datetime.now(timezone.utc)
    try:
        settings = load_settings(config_path)
    except ConfigError as error:
        yield Check("configuration", Status.FAIL, first_line(error))
        return
    yield Check(
        "configuration",
        Status.PASS,
        f"{config_path} is valid ({_count(len(settings.targets), 'notification target')})",
    )
    for warning in settings.warnings:
        yield Check("configuration", Status.WARN, warning)

    credential = _credential_check(settings, now)
    yield credential

    # Every answer from Microsoft passes here: its Date header is the clock to compare with.
    answers: list[tuple[datetime, datetime, str]] = []

    def remember_date(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        try:
            server = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError, IndexError):
            return
        host = urlsplit(response.url).hostname or "?"
        answers.append((datetime.now(timezone.utc), server, host))

    session = requests.Session()
    session.hooks["response"].append(remember_date)
    if credential.failed:
        yield checks.skipped("sign-in", "needs a working credential")
        yield checks.skipped("Graph permission", "needs a sign-in")
    else:
        # Empty caches: a cached token would pass with a secret that no longer works.
        # (Removed when the generator is done with it, by its finalizer.)
        fresh_cache = tempfile.TemporaryDirectory(prefix="m365watch-doctor-")
        tokens = build_tokens(settings, session=session, cache_dir=Path(fresh_cache.name))

        def sign_in_text() -> str:
            tokens.get_token()
            host = urlsplit(_endpoints(settings)[0]).hostname
            return f"token for app {_tenant(settings).client_id} from {host}"

        sign_in = checks.attempt("sign-in", sign_in_text)
        yield sign_in
        if sign_in.failed:
            yield checks.skipped("Graph permission", "needs a sign-in")
        else:
            graph = build_graph(settings, tokens=tokens, session=session, max_attempts=1)
            yield checks.attempt(
                "Graph permission",
                lambda: (
                    "ServiceHealth.Read.All works (read the health of "
                    f"{_count(len(graph.list_health_overviews()), 'service')})"
                ),
            )

    yield from checks.notification_checks(settings.targets, _apprise_accepts)
    yield checks.state_folder_check(settings.state_path)
    local, server, seen_at = answers[-1] if answers else (datetime.now(timezone.utc), None, None)
    yield checks.clock_check(local, server, seen_at)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _credential_check(settings: Settings, now: datetime) -> DoctorCheck:
    from m365watch.doctor import Check, Status, certificate_check

    try:
        tenant = _tenant(settings)
    except ConfigError as error:
        return Check("credential", Status.FAIL, first_line(error))
    if tenant.certificate_path is None:
        return Check("credential", Status.PASS, "client secret is set (its value is not shown)")
    from m365watch.certificate import Certificate, load_certificate

    try:
        _, info = load_certificate(
            Certificate(tenant.certificate_path, tenant.certificate_password)
        )
    except ConfigError as error:
        return Check("certificate", Status.FAIL, first_line(error))
    return certificate_check(info.subject, info.thumbprint, info.not_after, now)


def _apprise_accepts(url: str) -> bool:
    from m365watch.notify import Notifier

    try:
        Notifier({"doctor": (url,)}).check()
    except ConfigError:
        return False
    return True


# Allow "python -m m365watch.cli".
if __name__ == "__main__":  # pragma: no cover
    main()
