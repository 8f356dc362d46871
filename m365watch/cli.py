"""The command line: parse options, call one use case, print, choose the exit code.

The adapters come from :mod:`m365watch.wiring`, which imports the heavy
libraries (msal, requests, apprise, tinydb) only in the commands that need
them, so ``--help`` and cached queries stay fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, NoReturn, ParamSpec, TypeVar, cast

import click

from m365watch import __version__, wiring
from m365watch.errors import (
    EXIT_DELIVERY,
    EXIT_LOCKED,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME,
    EXIT_USAGE,
    ConfigError,
    M365WatchError,
    first_line,
)
from m365watch.settings import DEFAULT_LOCK_WAIT, MetricsSettings

if TYPE_CHECKING:
    from nagiosplugin import Range

    from m365watch.check import CheckQuery, CheckResult
    from m365watch.deliver import Delivery
    from m365watch.message_query import MessageDetail, MessagesReport
    from m365watch.messages import Message
    from m365watch.poll import IssueSource, PollResult
    from m365watch.query import IssueDetail, StatusReport
    from m365watch.settings import Settings, TargetSettings
    from m365watch.tenant_query import TenantAnswer, TenantsDetail, TenantsMessages, TenantsStatus
    from m365watch.tenants import TenantsResult
    from m365watch.watcher import WatcherReport

log = logging.getLogger("m365watch")

P = ParamSpec("P")

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM, as shells report a process it stopped

_SUCCESS = "success"
_RUNTIME = "runtime failure (sign-in, Microsoft Graph, state file); what failed commits nothing"
_USAGE = "usage or configuration error"
_DELIVERY = "the poll finished but a notification failed; it is kept and retried next poll"
_NOT_FOUND = "the issue asked for does not exist"
_LOCKED = "another poll holds the state lock; try again later"
_INTERRUPTED = "stopped by Ctrl-C"
_TERMINATED = "stopped by SIGTERM, once its temporary files were removed"

# The one table behind every "Exit codes:" block in --help: command -> (code, meaning) rows.
EXIT_CODES: dict[str, tuple[tuple[int, str], ...]] = {
    "m365watch": (
        (0, _SUCCESS),
        (EXIT_RUNTIME, _RUNTIME),
        (EXIT_USAGE, _USAGE),
        (EXIT_DELIVERY, _DELIVERY),
        (EXIT_NOT_FOUND, _NOT_FOUND),
        (EXIT_LOCKED, _LOCKED),
        (EXIT_INTERRUPTED, _INTERRUPTED),
        (EXIT_TERMINATED, _TERMINATED + " (watch: see its --help)"),
    ),
    "poll": (
        (0, _SUCCESS),
        (EXIT_RUNTIME, _RUNTIME),
        (EXIT_USAGE, _USAGE),
        (EXIT_DELIVERY, _DELIVERY),
        (EXIT_LOCKED, _LOCKED),
    ),
    "demo": (
        (0, _SUCCESS),
        (EXIT_USAGE, _USAGE),
        (EXIT_DELIVERY, "a --notify target did not accept a message"),
    ),
    "status": (
        (0, _SUCCESS),
        (EXIT_RUNTIME, _RUNTIME),
        (EXIT_USAGE, "usage or configuration error, or a --service that names no one service"),
    ),
    "show": (
        (0, _SUCCESS),
        (EXIT_RUNTIME, _RUNTIME),
        (EXIT_USAGE, "usage or configuration error, or not an issue or post id"),
        (EXIT_NOT_FOUND, "the issue or Message center post asked for does not exist"),
    ),
    "messages": (
        (0, _SUCCESS),
        (
            EXIT_RUNTIME,
            _RUNTIME + ";\n      with --cached, also no Message center posts in the state yet",
        ),
        (EXIT_USAGE, "usage or configuration error, or a --service that names no one service"),
    ),
    "pir": (
        (0, "the report was saved"),
        (
            EXIT_RUNTIME,
            "sign-in or Microsoft Graph failed, the answer was no document, or the file\n"
            "      could not be written",
        ),
        (EXIT_USAGE, "usage or configuration error, or not an issue id"),
        (EXIT_NOT_FOUND, "the issue has no post-incident report (or does not exist)"),
    ),
    "test-notify": (
        (0, "every target accepted its test message"),
        (
            EXIT_USAGE,
            "usage or configuration error (an unknown --target, no [[notify]] blocks,\n"
            "      a URL Apprise does not accept: the other targets are still tested)",
        ),
        (EXIT_DELIVERY, "at least one target did not accept it (its line says why)"),
    ),
    "watch": (
        (0, "stopped by SIGTERM or Ctrl-C (a failed poll only prints its Error line)"),
        (EXIT_USAGE, "a bad --every or configuration"),
        (EXIT_INTERRUPTED, "a second signal stopped it at once"),
    ),
    # The Monitoring Plugins API, unlike every other command's codes.
    "check": (
        (0, "OK: nothing open beyond the thresholds"),
        (1, "WARNING: open advisories (or counts outside a --warning-* range)"),
        (2, "CRITICAL: an open incident (or counts outside a --critical-* range)"),
        (
            3,
            "UNKNOWN: the check itself failed (sign-in, Graph, a stale or missing state,\n"
            "      a bad option or configuration)",
        ),
    ),
    "doctor": (
        (0, "every check passes (warnings allowed)"),
        (EXIT_RUNTIME, "any check fails"),
        (EXIT_USAGE, "a --tenant that is not configured (or without [[tenants]])"),
        (EXIT_TERMINATED, "stopped by SIGTERM, once its fresh token cache was removed"),
    ),
}


def exit_codes_help(command: str) -> str:
    """The "Exit codes:" block of ``command``'s --help, from :data:`EXIT_CODES`."""
    rows = "\n".join(f"  {code:<3} {meaning}" for code, meaning in EXIT_CODES[command])
    # "\b" keeps click from re-wrapping the rows into one paragraph.
    return "\b\nExit codes:\n" + rows + "\n"


class Context:
    """What every command gets: where the config is, how loud to be, what time it is."""

    def __init__(
        self, config: Path | None, verbose: int, quiet: bool, clock: Callable[[], datetime]
    ) -> None:
        self.config_option = config
        self.verbose = verbose
        self.quiet = quiet
        self.now = clock

    def config_path(self) -> Path:
        """The configuration file: -c, else $M365WATCH_CONFIG, else the user config dir."""
        return self.config_option or wiring.default_config_path()

    def settings(self) -> Settings:
        """Load and validate the configuration; print its warnings."""
        settings = wiring.load_settings(self.config_path())
        for warning in settings.warnings:
            click.echo(f"Warning: {warning}", err=True)
        return settings


def _is_ours(logger_name: str) -> bool:
    return logger_name == "m365watch" or logger_name.startswith("m365watch.")


class _LogFilter(logging.Filter):
    """Let through m365watch's own records, and a library's only from ``library_level`` up."""

    def __init__(self, library_level: int) -> None:
        super().__init__()
        self.library_level = library_level

    def filter(self, record: logging.LogRecord) -> bool:
        return _is_ours(record.name) or record.levelno >= self.library_level


class _LogFormatter(logging.Formatter):
    """``source: LEVEL: message``, the source being m365watch or the library that logged."""

    def format(self, record: logging.LogRecord) -> str:
        source = record.name.partition(".")[0] or "m365watch"
        return f"{source}: {record.levelname}: {super().format(record)}"


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbose == 1:
        level = logging.INFO
    elif verbose >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter("%(message)s"))
    handler.setLevel(level)
    # Never a library's debug or info records, however verbose: Apprise's and urllib3's
    # carry whole webhook URLs and their tokens. Its warnings only from -v: the one that
    # matters, Apprise's reason for a failed delivery, is already in our Warning line.
    # (On the handler, not the loggers: Apprise must still log them for that reason text.)
    handler.addFilter(_LogFilter(logging.WARNING if verbose and not quiet else logging.ERROR))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # And not even made: these are chatty below WARNING. MSAL's errors (with a traceback)
    # become our own one-line AuthError, so it says nothing itself.
    for name in ("apprise", "urllib3", "filelock", "requests", "tinydb"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("msal").setLevel(logging.CRITICAL)


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread, like KeyboardInterrupt for Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> NoReturn:
    # A second SIGTERM while the first one's clean-up runs stops at once.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise Terminated


@contextlib.contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """SIGTERM raises `Terminated`, so `with` and `finally` blocks run as for Ctrl-C.

    Killed outright, ``doctor`` would leave its fresh token cache in the temporary folder.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def guarded(
    command: Callable[Concatenate[Context, P], int],
) -> Callable[Concatenate[Context, P], NoReturn]:
    """Make a command exit with the code it returns.

    An M365WatchError becomes ``Error: …`` on stderr (a traceback only with -v)
    and the error's exit code; Ctrl-C becomes ``Interrupted.`` and 130, SIGTERM
    ``Terminated.`` and 143, each once clean-up has run.
    """

    @functools.wraps(command)
    def run(ctx: Context, /, *args: P.args, **kwargs: P.kwargs) -> NoReturn:
        try:
            with _terminate_cleanly():
                code = command(ctx, *args, **kwargs)
        except M365WatchError as error:
            if ctx.verbose:
                import traceback

                traceback.print_exception(error, file=sys.stderr)
            click.echo(f"Error: {first_line(error)}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Terminated:
            click.echo("Terminated.", err=True)
            sys.exit(EXIT_TERMINATED)
        sys.exit(code)

    return run


def _seconds(click_ctx: click.Context, param: click.Parameter, value: float) -> float:
    """Refuse what FloatRange lets through: nan (and inf, which would wait for ever)."""
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{value:g} is not a number of seconds, 0 or more.")
    return value


def tenant_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--tenant NAME`` (repeatable): only these [[tenants]]."""
    return click.option(
        "--tenant",
        "tenant_names",
        multiple=True,
        metavar="NAME",
        help="Only this [[tenants]] entry (repeat for several); default: every tenant.",
    )(function)


def lock_wait_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The ``--lock-wait SECONDS`` option of the commands that poll."""
    return click.option(
        "--lock-wait",
        type=float,
        callback=_seconds,
        default=DEFAULT_LOCK_WAIT,
        show_default=True,
        metavar="SECONDS",
        help=help_text,
    )


@click.group(epilog=exit_codes_help("m365watch"))
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
    help="More output: -v adds the libraries' warnings, -vv m365watch's debug logs "
    "(never the libraries': they hold secrets).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only errors (for cron).")
@click.version_option(__version__, prog_name="m365watch")
@click.pass_context
def main(click_ctx: click.Context, config: Path | None, verbose: int, quiet: bool) -> None:
    """Watch Microsoft 365 service health and notify Teams, Slack, email and more."""
    _setup_logging(verbose, quiet)
    click_ctx.obj = Context(config, verbose, quiet, clock=wiring.utc_now)


@main.command(epilog=exit_codes_help("poll"))
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
@tenant_option
@click.pass_obj
@guarded
def poll(
    ctx: Context,
    dry_run: bool,
    notify_existing: bool,
    lock_wait: float,
    tenant_names: tuple[str, ...],
) -> int:
    """Fetch service-health issues once and send what is new or changed."""
    settings = ctx.settings()
    if settings.many_tenants:
        many, reports = poll_tenants(
            settings,
            names=tenant_names,
            quiet=ctx.quiet,
            dry_run=dry_run,
            notify_existing=notify_existing,
            lock_wait=lock_wait,
        )
        print_tenants_result(many, settings, quiet=ctx.quiet)
        errors = [t for t in many.tenants if t.error or (t.result and t.result.errors)]
        if errors:
            return EXIT_RUNTIME  # the other tenants were polled and delivered
        return EXIT_DELIVERY if many.failed or any(r.failed for r in reports) else 0
    settings.for_tenants(tenant_names)  # --tenant without [[tenants]]: a usage error
    result, watcher = poll_with_health(
        settings,
        quiet=ctx.quiet,
        dry_run=dry_run,
        notify_existing=notify_existing,
        lock_wait=lock_wait,
    )
    print_poll_result(result, quiet=ctx.quiet)
    if result.errors:
        return EXIT_RUNTIME  # the other feeds were polled and delivered
    return EXIT_DELIVERY if result.failed or watcher.failed else 0


def poll_once(
    settings: Settings,
    *,
    dry_run: bool = False,
    notify_existing: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    source: IssueSource | None = None,
    report_source: object | None = None,
    message_source: object | None = None,
) -> PollResult:
    """Wire the real adapters (``source`` defaults to Graph) and run one poll.

    ``report_source`` serves post-incident reports and ``message_source`` the Message
    center posts with ``[messages]`` (both default: ``source``).
    """
    from m365watch.poll import FeedSource, MessageSource, issues_from, messages_from, run_poll

    issues = source if source is not None else wiring.build_graph(settings)
    now = wiring.utc_now()
    sources: list[FeedSource] = [issues_from(issues)]
    if settings.messages is not None:
        posts = cast(MessageSource, message_source if message_source is not None else issues)
        sources.append(messages_from(posts, settings.messages, now))
    return run_poll(
        sources=sources,
        store=wiring.build_state_store(settings, lock_wait=lock_wait),
        make_sender=lambda: wiring.build_sender(settings),
        poll=settings.poll,
        targets=settings.targets,
        targets_fingerprint=settings.targets_fingerprint,
        now=now,
        dry_run=dry_run,
        notify_existing=notify_existing,
        reports=wiring.report_hook(
            settings, report_source if report_source is not None else issues
        ),
    )


def poll_tenants(
    settings: Settings,
    *,
    names: tuple[str, ...] = (),
    quiet: bool = False,
    dry_run: bool = False,
    notify_existing: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
    graphs: dict[str, Any] | None = None,
) -> tuple[TenantsResult, list[WatcherReport]]:
    """One poll of every tenant (or those ``names``): [[tenants]] polled together.

    ``graphs`` (tenant name -> Graph client) keeps each tenant's signed-in client across
    the polls of ``watch``; missing ones are built. Each tenant's watcher counts its own
    failures and alerts naming it.
    """
    from m365watch.outputs import PollOutcome
    from m365watch.poll import (
        FeedSource,
        PlannedPoll,
        SenderOnce,
        issues_from,
        messages_from,
        planned_poll,
    )
    from m365watch.tenants import TenantJob, run_tenant_polls
    from m365watch.watcher import watched_poll

    views = settings.for_tenants(names)
    started = wiring.utc_now()
    one_poll = graphs is None  # watch hands in its clients and keeps their connections
    graphs = {} if graphs is None else graphs
    session = None
    for view in views:
        name = str(view.tenant_name)
        if name not in graphs:
            # Shared by the clients (which watch keeps): a thread reuses its connection.
            session = session or wiring.thread_sessions()
            graphs[name] = wiring.build_graph(
                view, tokens=wiring.build_tokens(view), session=session
            )
    reports: list[WatcherReport] = []
    reports_lock = threading.Lock()

    def collect(report: WatcherReport) -> None:
        with reports_lock:
            reports.append(report)

    def job(view: Settings) -> TenantJob:
        name, graph = str(view.tenant_name), graphs[str(view.tenant_name)]

        def plan(stack: contextlib.ExitStack[Any], sender: SenderOnce) -> PlannedPoll:
            def plan_from(monitored: Any) -> PlannedPoll:
                sources: list[FeedSource] = [issues_from(monitored)]
                if view.messages is not None:
                    sources.append(messages_from(graph, view.messages, started))
                return stack.enter_context(
                    planned_poll(
                        sources=sources,
                        store=wiring.build_state_store(view, lock_wait=lock_wait),
                        sender=sender,
                        poll=view.poll,
                        targets=view.targets,
                        targets_fingerprint=view.targets_fingerprint,
                        now=started,
                        dry_run=dry_run,
                        notify_existing=notify_existing,
                        reports=wiring.report_hook(view, graph),
                        tenant=name,
                    )
                )

            planned, _ = watched_poll(
                plan_from,
                graph,
                wiring.build_watcher_store(view, lock_wait=lock_wait),
                alert_after=view.alert_after,
                targets=view.targets,
                make_sender=lambda: wiring.build_sender(view),
                now=wiring.utc_now,
                on_report=collect,
                record=not dry_run,
                tenant=name,
                consent_url=view.require_tenant().admin_consent_url,
            )
            return planned

        return TenantJob(name, plan)

    try:
        many = run_tenant_polls(
            [job(view) for view in views],
            make_sender=lambda: wiring.build_sender(settings),
            targets=settings.targets,
            concurrency=settings.poll.concurrency,
            dry_run=dry_run,
        )
        for report in reports:
            print_watcher_report(report, quiet=quiet)
        finished = wiring.utc_now()
        by_name = {str(v.tenant_name): v for v in views}
        wiring.after_tenant_polls(
            settings,
            [
                (
                    by_name[outcome.name],
                    PollOutcome(
                        started,
                        finished,
                        result=outcome.result,
                        error=outcome.error,
                        dry_run=dry_run,
                    ),
                    graphs[outcome.name],
                )
                for outcome in many.tenants
            ],
            many.deliveries,
        )
    finally:
        if one_poll and session is not None:
            session.close()  # each thread's kept connection, closed now rather than at exit
    return many, reports


def print_tenants_result(many: TenantsResult, settings: Settings, *, quiet: bool = False) -> None:
    """The summary of a poll of many tenants: one Error line per failed tenant, then totals."""
    for outcome in many.tenants:
        if outcome.error is not None:
            click.echo(tenant_error_line(outcome.name, outcome.error, settings), err=True)
        elif outcome.result is not None:
            for error in outcome.result.errors:
                click.echo(f"Error: tenant {outcome.name}: {error}", err=True)
            for dropped in outcome.result.dropped:
                click.echo(
                    f"Warning: tenant {outcome.name}: undelivered change {dropped.item_id} owed "
                    f"to {dropped.target}, no longer configured for it, dropped",
                    err=True,
                )
    _print_failed_and_previews(many.failed, many.previews if many.dry_run else ())
    if quiet:
        return
    recorded = "would record" if many.dry_run else "recorded"
    for outcome in many.tenants:
        result = outcome.result
        if result is not None and result.baseline:
            click.echo(
                f"{outcome.name}: first poll: {recorded} {result.issues_seen} issues as the "
                "baseline."
            )
        if result is not None and result.posts_baseline:
            click.echo(
                f"{outcome.name}: first Message center poll: {recorded} {result.posts_seen} "
                "posts as the baseline."
            )
    results = [t.result for t in many.tenants if t.result is not None]
    changes = sum(len(r.issue_changes) for r in results)
    issues = sum(r.issues_seen for r in results)
    read_posts = [r for r in results if r.posts_seen is not None]
    posts = (
        f"{sum(len(r.post_changes) for r in read_posts)} of "
        f"{sum(r.posts_seen or 0 for r in read_posts)} Message center posts changed, "
        if read_posts
        else ""
    )
    pending = sum(r.pending for r in results)
    sent = sum(1 for d in many.deliveries if d.ok)
    failed_tenants = len(many.failed_tenants)
    prefix = "Dry run: " if many.dry_run else ""
    tail = f", {len(many.previews)} message(s) would be sent" if many.dry_run else ""
    click.echo(
        f"{prefix}{counted(len(many.tenants), 'tenant')} ({failed_tenants} failed), "
        f"{issues} issues, {changes} change(s), {posts}{sent} message(s) sent, "
        f"{len(many.failed)} failed, "
        f"{pending} delivery(ies) pending{tail}."
    )


def _print_failed_and_previews(
    failed: Sequence[Delivery], previews: Sequence[tuple[str, Message]]
) -> None:
    """A warning per message a target did not accept; a dry run's messages, whole."""
    for delivery in failed:
        click.echo(
            f"Warning: {delivery.issue_id} not delivered to {delivery.target}: "
            f"{delivery.reason or 'failed'} (kept; retried next poll)",
            err=True,
        )
    for target, message in previews:
        click.echo(f"--- would send to {target}: {message.title}")
        click.echo(message.text)
        click.echo()


def counted(number: int, noun: str) -> str:
    """``1 tenant``, ``3 tenants``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def print_poll_result(result: PollResult, *, quiet: bool = False) -> None:
    """The summary of a poll for people (and cron mail)."""
    for error in result.errors:
        # Said even with -q: a feed is not being watched.
        click.echo(f"Error: {error}", err=True)
    if result.dropped:
        # Said even with -q: these messages will never be sent.
        lost = ", ".join(f"{d.item_id} for {d.target}" for d in result.dropped)
        verb = "would be dropped" if result.dry_run else "dropped"
        click.echo(
            f"Warning: undelivered change(s) owed to target(s) no longer configured {verb}: {lost}",
            err=True,
        )
    _print_failed_and_previews(result.failed, result.previews if result.dry_run else ())
    if quiet:
        return
    recorded = "would record" if result.dry_run else "recorded"
    if result.baseline:
        click.echo(
            f"First poll: {recorded} {result.issues_seen} issues as the baseline; "
            + (
                f"{len(result.issue_changes)} open issue(s) queued."
                if result.issue_changes
                else "nothing sent (use --notify-existing to send open issues)."
            )
        )
    if result.posts_baseline:
        click.echo(
            f"First Message center poll: {recorded} {result.posts_seen} posts as the baseline; "
            + (
                f"{len(result.post_changes)} post(s) queued."
                if result.post_changes
                else "nothing sent (use --notify-existing to send the posts not yet ended)."
            )
        )
    sent = sum(1 for d in result.deliveries if d.ok)
    prefix = "Dry run: " if result.dry_run else ""
    tail = f", {len(result.previews)} message(s) would be sent" if result.dry_run else ""
    posts = (
        f"{len(result.post_changes)} of {result.posts_seen} Message center posts changed, "
        if result.posts_seen is not None
        else ""
    )
    click.echo(
        f"{prefix}{result.issues_seen} issues, {len(result.issue_changes)} change(s), {posts}"
        f"{sent} message(s) sent, {len(result.failed)} failed, "
        f"{result.pending} delivery(ies) pending{tail}."
    )


@main.command(epilog="Needs no tenant and no configuration.\n\n" + exit_codes_help("demo"))
@click.option(
    "--notify",
    "notify_urls",
    multiple=True,
    metavar="URL",
    help="Send the demo's notifications to this Apprise URL instead of the terminal.",
)
@click.pass_obj
@guarded
def demo(ctx: Context, notify_urls: tuple[str, ...]) -> int:
    """Replay a bundled incident timeline through the real pipeline."""
    from m365watch.demo import run_demo

    targets, sender, make_store = wiring.build_demo(notify_urls, click.echo)
    failed = run_demo(targets, sender, make_store, echo=click.echo)
    return EXIT_DELIVERY if failed else 0


def _output_style() -> tuple[int, bool]:
    """The width to draw tables at, and whether to colour them (only on a terminal)."""
    import os
    import shutil

    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return shutil.get_terminal_size((80, 24)).columns, color


def _print_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _note_cache_age(ctx: Context, cached_at: datetime | None, now: datetime) -> None:
    """With --json, say on stderr how old cached data is (stdout stays pure JSON)."""
    from m365watch.query import cache_note

    if not ctx.quiet:
        click.echo(f"Note: {cache_note(cached_at, now)}", err=True)


def _print_answer(
    ctx: Context,
    answer: StatusReport | IssueDetail | MessagesReport | MessageDetail,
    *,
    as_json: bool,
    cached: bool,
    now: datetime,
) -> int:
    """Print a query's answer: JSON for scripts, else tables (rich is loaded only then)."""
    if as_json:
        if cached:
            _note_cache_age(ctx, answer.cached_at, now)
        _print_json(answer.to_json())
        return 0
    from m365watch import tables
    from m365watch.query import IssueDetail, StatusReport

    width, color = _output_style()
    if isinstance(answer, StatusReport):
        text = tables.render_status(answer, now=now, width=width, color=color)
    elif isinstance(answer, IssueDetail):
        text = tables.render_issue(answer, now=now, width=width, color=color)
    else:
        from m365watch.message_query import MessagesReport

        if isinstance(answer, MessagesReport):
            text = tables.render_messages(answer, now=now, width=width, color=color)
        else:
            text = tables.render_message(answer, now=now, width=width, color=color)
    click.echo(text, nl=False)
    return 0


T = TypeVar("T")


def _ask_tenants(
    settings: Settings, views: list[Settings], ask: Callable[[Settings], T]
) -> tuple[TenantAnswer[T], ...]:
    """``ask`` each tenant's view, ``[poll] concurrency`` at a time: answers or errors."""
    from m365watch.tenant_query import ask_tenants

    questions = [(str(view.tenant_name), functools.partial(ask, view)) for view in views]
    return ask_tenants(questions, concurrency=settings.poll.concurrency)


def tenant_error_line(name: str, error: BaseException, settings: Settings) -> str:
    """``Error: tenant NAME: …``, with the tenant's admin-consent URL when consent looks
    withdrawn."""
    from m365watch.watcher import looks_like_consent

    text = first_line(error)
    line = f"Error: tenant {name}: {text}"
    tenant = next((t for t in settings.tenants if t.name == name), None)
    if tenant is not None and looks_like_consent(text):
        line += f" (an admin of the tenant grants consent at {tenant.admin_consent_url})"
    return line


def _answer_report(
    ctx: Context,
    settings: Settings,
    views: list[Settings],
    ask: Callable[[Settings], Any],
    join: Literal["TenantsStatus", "TenantsMessages"],
    query: Any,
    *,
    as_json: bool,
    cached: bool,
    now: datetime,
) -> int:
    """``status``/``messages``: one tenant's report, or every tenant's joined, printed.

    ``join`` names the ``tenant_query`` class that joins them (imported only then).
    """
    if not settings.many_tenants:
        return _print_answer(ctx, ask(settings), as_json=as_json, cached=cached, now=now)
    from m365watch import tenant_query
    from m365watch.query import SOURCE_CACHE, SOURCE_GRAPH

    source = SOURCE_CACHE if cached else SOURCE_GRAPH
    joined = getattr(tenant_query, join)(now, source, _ask_tenants(settings, views, ask), query)
    return _print_tenants_answer(ctx, settings, joined, as_json=as_json, cached=cached, now=now)


def _print_tenants_answer(
    ctx: Context,
    settings: Settings,
    answer: TenantsStatus | TenantsMessages | TenantsDetail,
    *,
    as_json: bool,
    cached: bool,
    now: datetime,
) -> int:
    """Print a query's answer over many tenants, then one Error line per tenant that failed.

    Exit 1 when any tenant failed (the others are printed all the same).
    """
    from m365watch.tenant_query import TenantsDetail, TenantsMessages, tenants_cache_note

    if as_json:
        if cached and answer.answered and not ctx.quiet:
            stamps = [(name, report.cached_at) for name, report in answer.answered]
            click.echo(f"Note: {tenants_cache_note(stamps, now)}", err=True)
        _print_json(answer.to_json())
    else:
        from m365watch import tables

        width, color = _output_style()
        if isinstance(answer, TenantsDetail):
            text = tables.render_tenants_detail(answer, now=now, width=width, color=color)
        elif isinstance(answer, TenantsMessages):
            text = tables.render_tenants_messages(answer, now=now, width=width, color=color)
        else:
            text = tables.render_tenants_status(answer, now=now, width=width, color=color)
        click.echo(text, nl=False)
    for failed in answer.failed:
        assert failed.error is not None
        click.echo(tenant_error_line(failed.name, failed.error, settings), err=True)
    return EXIT_RUNTIME if answer.failed else 0


_JSON_HELP = "Print JSON for scripts (the format is in the README)."
_CACHED_HELP = (
    "Answer from the local state written by `m365watch poll`: no network request; "
    "says how old it is."
)


@main.command(epilog=exit_codes_help("status"))
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help=(
        "Only this service: its name or id, in any case, or a part of its name that fits "
        "one service, such as teams (repeatable)."
    ),
)
@click.option("--all", "include_resolved", is_flag=True, help="Include resolved issues.")
@click.option(
    "--classification",
    type=click.Choice(["incident", "advisory"], case_sensitive=False),
    help="Only incidents or only advisories.",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--cached", is_flag=True, help=_CACHED_HELP)
@tenant_option
@click.pass_obj
@guarded
def status(
    ctx: Context,
    services: tuple[str, ...],
    include_resolved: bool,
    classification: str | None,
    as_json: bool,
    cached: bool,
    tenant_names: tuple[str, ...],
) -> int:
    """Show the services that are not healthy and the open issues, now.

    With [[tenants]], every tenant's (or those of --tenant), in one table with a
    Tenant column; a tenant that cannot answer is one Error line (exit 1).
    """
    from m365watch.query import (
        StatusQuery,
        status_from_graph,
        status_from_state,
    )

    settings = ctx.settings()
    views = settings.for_tenants(tenant_names)  # --tenant without [[tenants]]: a usage error
    now = ctx.now()
    query = StatusQuery(
        services=services,
        classification=classification.lower() if classification else None,
        include_resolved=include_resolved,
    )

    def ask(view: Settings) -> StatusReport:
        if cached:
            return status_from_state(wiring.build_cached_issues(view), query, now=now)
        return status_from_graph(wiring.build_graph(view), query, now=now)

    return _answer_report(
        ctx, settings, views, ask, "TenantsStatus", query, as_json=as_json, cached=cached, now=now
    )


@main.command(epilog=exit_codes_help("show"))
@click.argument("issue_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--cached", is_flag=True, help=_CACHED_HELP)
@tenant_option
@click.pass_obj
@guarded
def show(
    ctx: Context, issue_id: str, as_json: bool, cached: bool, tenant_names: tuple[str, ...]
) -> int:
    """Show one issue (facts, impact, every update) or one Message center post, whole.

    ID is the id Microsoft gives it, in any case: an issue's such as EX1256020, or a
    Message center post's such as MC237349 (reading posts needs ServiceMessage.Read.All).
    With [[tenants]], it is shown in each tenant that has it, under a heading naming
    the tenant (--json: a list, one object per tenant); exit 4 only when none has it.
    """
    from m365watch.message_query import (
        is_message_request,
        message_from_graph,
        message_from_state,
    )
    from m365watch.query import issue_from_graph, issue_from_state, normalise_issue_id

    settings = ctx.settings()
    views = settings.for_tenants(tenant_names)  # --tenant without [[tenants]]: a usage error
    now = ctx.now()
    is_message = is_message_request(issue_id)
    # A bad id is a usage error before any tenant is asked.
    item_id = issue_id.strip().upper() if is_message else normalise_issue_id(issue_id)

    def ask(view: Settings) -> IssueDetail | MessageDetail:
        if is_message:
            if cached:
                return message_from_state(wiring.build_state_store(view), item_id, now=now)
            return message_from_graph(wiring.build_graph(view), item_id, now=now)
        if cached:
            return issue_from_state(wiring.build_cached_issues(view), item_id, now=now)
        return issue_from_graph(wiring.build_graph(view), item_id, now=now)

    if settings.many_tenants:
        from m365watch.tenant_query import TenantsDetail, not_found_in_any

        detail = TenantsDetail(item_id, _ask_tenants(settings, views, ask))
        if not detail.answered and not detail.failed:
            raise not_found_in_any(detail, cached=cached)
        return _print_tenants_answer(ctx, settings, detail, as_json=as_json, cached=cached, now=now)
    return _print_answer(ctx, ask(settings), as_json=as_json, cached=cached, now=now)


def _days(click_ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    """A number of days, 0 or more (fractions allowed); never nan or inf."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0:
        raise click.BadParameter(f"{value:g} is not a number of days, 0 or more.")
    return value


@main.command(epilog=exit_codes_help("messages"))
@click.option(
    "--category",
    type=click.Choice(["preventOrFixIssue", "planForChange", "stayInformed"], case_sensitive=False),
    metavar="CATEGORY",
    help="Only posts of this category: preventOrFixIssue, planForChange or stayInformed "
    "(any case).",
)
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Only posts naming this service, matched as `status --service` does (repeatable).",
)
@click.option("--major", "major_only", is_flag=True, help="Only major changes.")
@click.option(
    "--action-required",
    is_flag=True,
    help="Only posts with an act-by date that has not passed yet.",
)
@click.option(
    "--since",
    "since_days",
    type=float,
    callback=_days,
    metavar="DAYS",
    help="Only posts modified within the last DAYS days.",
)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.option("--cached", is_flag=True, help=_CACHED_HELP)
@tenant_option
@click.pass_obj
@guarded
def messages(
    ctx: Context,
    category: str | None,
    services: tuple[str, ...],
    major_only: bool,
    action_required: bool,
    since_days: float | None,
    as_json: bool,
    cached: bool,
    tenant_names: tuple[str, ...],
) -> int:
    """List Message center posts, newest first, with their act-by dates.

    Reads every post (needs ServiceMessage.Read.All), whether [messages] is configured
    or not; with --cached, the posts the last poll with [messages] recorded.
    `m365watch show MC…` shows one whole. With [[tenants]], every tenant's (or those
    of --tenant) in one table with a Tenant column.
    """
    from m365watch.message_query import (
        MessagesQuery,
        messages_from_graph,
        messages_from_state,
    )

    settings = ctx.settings()
    views = settings.for_tenants(tenant_names)  # --tenant without [[tenants]]: a usage error
    now = ctx.now()
    query = MessagesQuery(
        category=category,
        services=services,
        major_only=major_only,
        action_required=action_required,
        since_days=since_days,
    )

    def ask(view: Settings) -> MessagesReport:
        if cached:
            return messages_from_state(wiring.build_state_store(view), query, now=now)
        return messages_from_graph(wiring.build_graph(view), query, now=now)

    return _answer_report(
        ctx, settings, views, ask, "TenantsMessages", query, as_json=as_json, cached=cached, now=now
    )


@main.command("test-notify", epilog=exit_codes_help("test-notify"))
@click.option(
    "--target",
    "target_names",
    multiple=True,
    metavar="NAME",
    help="Test only this [[notify]] target (repeatable); default: all of them.",
)
@tenant_option
@click.pass_obj
@guarded
def test_notify(ctx: Context, target_names: tuple[str, ...], tenant_names: tuple[str, ...]) -> int:
    """Send a clearly-marked test message to each notification target.

    Prints one line per target: ok, or FAILED with the reason (never the URL).
    A URL Apprise does not accept is a configuration error (exit 2), after every
    target was tested. Needs no tenant and changes no state. With [[tenants]],
    --tenant tests only the targets that receive those tenants' messages.
    """
    from m365watch.poll import send_test_messages

    settings = ctx.settings()
    views = settings.for_tenants(tenant_names)  # --tenant without [[tenants]]: a usage error
    targets = select_targets(settings, target_names)
    if tenant_names:
        targets = _covering(targets, views, target_names, tenant_names)
    results = send_test_messages(wiring.build_sender(settings), targets, now=ctx.now())
    for target, result in zip(targets, results, strict=True):
        schemes = ", ".join(target.schemes)
        if result.ok:
            click.echo(f"{target.name}: ok ({schemes})")
        else:
            click.echo(f"{target.name}: FAILED ({schemes}): {result.reason or 'failed'}")
    if any(r.config_error for r in results):
        return EXIT_USAGE  # as poll says it: a URL Apprise refuses is configuration
    return 0 if all(r.ok for r in results) else EXIT_DELIVERY


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


def _covering(
    targets: list[TargetSettings],
    views: list[Settings],
    target_names: tuple[str, ...],
    tenant_names: tuple[str, ...],
) -> list[TargetSettings]:
    """The ``targets`` that receive the messages of the tenants of ``views``.

    A ``--target`` that does not, or no target at all, is a ConfigError.
    """
    covering = {t.name for view in views for t in view.targets}
    tenants = ", ".join(dict.fromkeys(tenant_names))
    for name in target_names:
        if name not in covering:
            raise ConfigError(
                f"the [[notify]] target {name!r} does not receive the messages of {tenants} "
                "(see its tenants)"
            )
    chosen = [t for t in targets if t.name in covering]
    if not chosen:
        raise ConfigError(f"no [[notify]] target receives the messages of {tenants}")
    return chosen


def poll_with_health(
    settings: Settings,
    *,
    quiet: bool = False,
    source: IssueSource | None = None,
    dry_run: bool = False,
    notify_existing: bool = False,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> tuple[PollResult, WatcherReport]:
    """One poll as ``poll`` and ``watch`` run it, counting polls that cannot reach Graph.

    What the watcher sent is printed as soon as it is sent. A dry run records nothing.
    """
    from m365watch.outputs import PollOutcome
    from m365watch.watcher import watched_poll

    graph = source if source is not None else wiring.build_graph(settings)
    started = wiring.utc_now()
    try:
        result, report = watched_poll(
            lambda monitored: poll_once(
                settings,
                dry_run=dry_run,
                notify_existing=notify_existing,
                lock_wait=lock_wait,
                source=monitored,
                report_source=graph,
                message_source=graph,
            ),
            graph,
            wiring.build_watcher_store(settings, lock_wait=lock_wait),
            alert_after=settings.alert_after,
            targets=settings.targets,
            make_sender=lambda: wiring.build_sender(settings),
            now=wiring.utc_now,
            on_report=lambda report: print_watcher_report(report, quiet=quiet),
            record=not dry_run,
        )
    except M365WatchError as error:
        outcome = PollOutcome(started, wiring.utc_now(), error=error, dry_run=dry_run)
        wiring.after_poll(settings, outcome, graph)
        raise
    outcome = PollOutcome(started, wiring.utc_now(), result=result, dry_run=dry_run)
    wiring.after_poll(settings, outcome, graph)
    return result, report


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


@main.command(epilog=exit_codes_help("watch"))
@click.option(
    "--every",
    default="5m",
    show_default=True,
    metavar="DURATION",
    help="Time from one poll's start to the next: 30s, 5m, 1h. Refused when it could "
    "break Graph's budget of 800 requests per hour.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve Prometheus metrics on http://HOST:PORT/metrics while watching (HOST: "
    "[metrics] listen's, else 127.0.0.1). [metrics] listen alone does the same.",
)
@lock_wait_option("How long each poll waits for another running poll before skipping its turn.")
@click.pass_obj
@guarded
def watch(ctx: Context, every: str, metrics_port: int | None, lock_wait: float) -> int:
    """Poll in a loop, for containers and hosts without a timer.

    A failed poll is reported and the loop goes on. SIGTERM or Ctrl-C lets the
    poll in progress finish, then exits 0; a second one stops at once.
    """
    from m365watch.watch import check_interval, format_interval, keep_polling, parse_interval

    seconds = parse_interval(every)
    check_interval(seconds, wiring.graph_requests_per_poll())
    settings = ctx.settings()
    listen = settings.metrics.listen if settings.metrics is not None else None
    if metrics_port is not None:
        host = listen[0] if listen is not None else "127.0.0.1"
        listen = (host, metrics_port)
        # Served metrics need the record each poll writes, as [metrics] does.
        textfile = settings.metrics.textfile if settings.metrics is not None else None
        settings = dataclasses.replace(
            settings, metrics=MetricsSettings(textfile=textfile, listen=listen)
        )
    # With [metrics] each poll also reads the health overviews: count them in the budget.
    requests_per_poll = wiring.graph_requests_per_poll(settings)
    check_interval(seconds, requests_per_poll)
    # One client per tenant for the whole run: MSAL's app and token stay in memory.
    graphs: dict[str, Any] = {}
    if not settings.many_tenants:
        graphs[""] = wiring.build_graph(settings)

    def poll_and_print() -> None:
        if settings.many_tenants:
            many, _ = poll_tenants(settings, quiet=ctx.quiet, lock_wait=lock_wait, graphs=graphs)
            print_tenants_result(many, settings, quiet=ctx.quiet)
            return
        result, _ = poll_with_health(
            settings, quiet=ctx.quiet, source=graphs[""], lock_wait=lock_wait
        )
        print_poll_result(result, quiet=ctx.quiet)

    def requests_made() -> int:
        # Graph's budget is per app per tenant: the busiest tenant's count is what counts.
        return max((g.request_count for g in graphs.values()), default=0)

    if not ctx.quiet:
        click.echo(
            f"Polling every {format_interval(seconds)}; SIGTERM or Ctrl-C stops after the "
            "poll in progress."
        )
    stop = threading.Event()
    with contextlib.ExitStack() as serving:
        if listen is not None:
            serving.enter_context(wiring.serving_metrics(settings, *listen))
            if not ctx.quiet:
                click.echo(f"Serving metrics on http://{_host_port(*listen)}/metrics.")
        serving.enter_context(_stop_on_signals(stop))
        polls = keep_polling(
            poll_and_print,
            requests_made=requests_made,
            report_error=lambda text: click.echo(f"Error: {text}", err=True),
            every=seconds,
            requests_per_poll=requests_per_poll,
            stop=stop,
        )
    if not ctx.quiet:
        click.echo(f"Stopped after {polls} poll(s).")
    return 0


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


class PluginCommand(click.Command):
    """A command whose usage errors are the plugin's UNKNOWN (exit 3), not click's exit 2."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.ClickException as error:
            from m365watch.check import unknown

            _print_check(unknown(error.format_message()))
            raise click.exceptions.Exit(unknown("").exit_code) from None


def _print_check(result: CheckResult) -> None:
    for line in result.lines():
        click.echo(line)


def _range(click_ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A threshold range option, parsed (a bad one is a usage error: UNKNOWN)."""
    from m365watch.check import parse_range

    if value is None:
        return None
    try:
        return parse_range(value)
    except ConfigError as error:
        raise click.BadParameter(str(error)) from None


def _range_option(name: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(name, metavar="RANGE", callback=_range, help=help_text)


@main.command(
    cls=PluginCommand,
    epilog="These exit codes are the Monitoring Plugins API (Nagios, Icinga, Checkmk), "
    "not those of the other commands.\n\n" + exit_codes_help("check"),
)
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Only this service, matched as `status --service` does (repeatable).",
)
@click.option(
    "--classification",
    type=click.Choice(["incident", "advisory"], case_sensitive=False),
    help="Count only incidents or only advisories.",
)
@click.option(
    "--ignore",
    "ignored",
    multiple=True,
    metavar="ISSUE_ID",
    help="Leave out this issue, such as one already acknowledged (repeatable, any case).",
)
@_range_option("--warning-incidents", "WARNING when the number of open incidents is outside RANGE.")
@_range_option(
    "--critical-incidents",
    "CRITICAL when the number of open incidents is outside RANGE (default: 0, any "
    "incident; either --*-incidents option replaces that default).",
)
@_range_option(
    "--warning-advisories",
    "WARNING when the number of open advisories is outside RANGE (default: 0, any "
    "advisory; either --*-advisories option replaces that default).",
)
@_range_option(
    "--critical-advisories", "CRITICAL when the number of open advisories is outside RANGE."
)
@click.option(
    "--tenant",
    metavar="NAME",
    help="The tenant to check: with [[tenants]], a tenant's name or tenant_id (default: "
    "every tenant, judged as one); else the [tenant] tenant_id.",
)
@click.option("--cached", is_flag=True, help="Judge the local state of the last poll: no network.")
@click.option(
    "--max-age",
    default="15m",
    show_default=True,
    metavar="DURATION",
    help="With --cached: UNKNOWN when the last poll is older than this (90s, 15m, 1h).",
)
@click.option(
    "--timeout",
    type=float,
    callback=_seconds,
    default=50.0,
    show_default=True,
    metavar="SECONDS",
    help="UNKNOWN when there is no answer by then (0: no limit); keep it below the "
    "monitoring system's own timeout (often 60 s).",
)
@click.pass_obj
def check(
    ctx: Context,
    services: tuple[str, ...],
    classification: str | None,
    ignored: tuple[str, ...],
    warning_incidents: Range | None,
    critical_incidents: Range | None,
    warning_advisories: Range | None,
    critical_advisories: Range | None,
    tenant: str | None,
    cached: bool,
    max_age: str,
    timeout: float,
) -> NoReturn:
    """Service health as a monitoring plugin: one status line and performance data.

    An open incident is CRITICAL, open advisories only are WARNING. RANGE is the
    Monitoring Plugins syntax: 10 (alert outside 0..10), 10: (below 10), ~:10
    (above 10), 10:20 (outside 10..20), @10:20 (inside 10..20).
    """
    from m365watch import check as plugin

    try:
        with _terminate_cleanly(), _time_limit(timeout):
            result = _run_check(
                ctx,
                plugin.CheckQuery(
                    services=services,
                    classification=classification.lower() if classification else None,
                    ignore=ignored,
                    incidents=plugin.Thresholds.of(
                        warning_incidents, critical_incidents, default=plugin.DEFAULT_INCIDENTS
                    ),
                    advisories=plugin.Thresholds.of(
                        warning_advisories,
                        critical_advisories,
                        default=plugin.DEFAULT_ADVISORIES,
                    ),
                ),
                tenant=tenant,
                cached=cached,
                max_age=max_age,
            )
    except M365WatchError as error:
        if ctx.verbose:
            import traceback

            traceback.print_exception(error, file=sys.stderr)
        result = plugin.unknown(first_line(error))
    except CheckTimeout:
        result = plugin.unknown(f"no answer within --timeout {timeout:g} s")
    except (KeyboardInterrupt, Terminated) as stop:
        name = "Ctrl-C" if isinstance(stop, KeyboardInterrupt) else "SIGTERM"
        result = plugin.unknown(f"stopped by {name} before it could answer")
    except Exception as error:
        # Never Python's exit 1 (WARNING to a monitoring system) for a bug of ours.
        log.debug("check failed", exc_info=True)
        result = plugin.unknown(f"unexpected {type(error).__name__}: {first_line(error)}")
    _print_check(result)
    sys.exit(result.exit_code)


class CheckTimeout(BaseException):
    """``check --timeout`` ran out: raised in the main thread by SIGALRM."""


def _raise_timeout(signum: int, frame: object) -> NoReturn:
    raise CheckTimeout


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Raise CheckTimeout after ``seconds`` (0: never), so a check ends before its monitor's
    own timeout kills it without an answer. Graph's limits are per request and per call."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run_check(
    ctx: Context, query: CheckQuery, *, tenant: str | None, cached: bool, max_age: str
) -> CheckResult:
    from m365watch.check import (
        check_cached,
        check_live,
        check_tenant,
        judge_tenants,
        look_cached,
        look_live,
        pick_tenant,
    )
    from m365watch.watch import parse_duration

    seconds = parse_duration(max_age, "--max-age")
    query.ignored()  # a bad --ignore is UNKNOWN before anything is read
    settings = ctx.settings()
    now = ctx.now()
    if settings.many_tenants and tenant is None:
        # Every tenant judged as one: the worst state, the counts summed.
        def look(view: Settings) -> Any:
            if cached:
                store = wiring.build_state_store(view)
                return look_cached(store, query, now=now, max_age=seconds)
            return look_live(wiring.build_graph(view), query, now=now)

        return judge_tenants(_ask_tenants(settings, settings.for_tenants(), look), query)
    if settings.many_tenants:
        assert tenant is not None
        settings = settings.for_tenants([pick_tenant(tenant, settings.tenants)])[0]
    elif tenant is not None:
        check_tenant(tenant, settings.require_tenant().tenant_id)
    if cached:
        return check_cached(wiring.build_state_store(settings), query, now=now, max_age=seconds)
    return check_live(wiring.build_graph(settings), query, now=now)


@main.command(epilog=exit_codes_help("doctor"))
@tenant_option
@click.pass_obj
@guarded
def doctor(ctx: Context, tenant_names: tuple[str, ...]) -> int:
    """Check the installation, one line per check with the fix.

    Configuration, credential (certificate expiry), sign-in, Graph permission (one
    request; with [messages] one more for ServiceMessage.Read.All), each notification
    URL (nothing is sent), state folder, clock. With [[tenants]], the credential,
    sign-in, permission and state folder checks are made for each tenant (or those of
    --tenant), one line per tenant per check: "✓ sign-in (contoso): …".
    """
    from m365watch.doctor import Status, counted, run_checks

    failed = warned = 0
    marks = {status: status.value for status in Status}
    try:
        "✓✗".encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        # A terminal that cannot show ✓ and ✗ (a latin-1 or C locale) gets words.
        marks = {Status.PASS: "OK", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "-"}
    adapters = wiring.build_doctor_adapters(ctx.now)
    for check in run_checks(ctx.config_path(), adapters, tenant_names=tenant_names):
        failed += check.failed
        warned += check.status is Status.WARN
        if not ctx.quiet or check.status in (Status.FAIL, Status.WARN):
            click.echo(f"{marks[check.status]} {check.name}: {check.detail}")
    if not ctx.quiet:
        warnings = f" ({counted(warned, 'warning')})" if warned else ""
        click.echo(
            f"{failed} check(s) failed{warnings}: fix them and run m365watch doctor again."
            if failed
            else f"All checks passed{warnings}."
        )
    return EXIT_RUNTIME if failed else 0


@main.command("pir", epilog=exit_codes_help("pir"))
@click.argument("issue_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save it here; default: ISSUE_ID.pdf (or .docx) in [pir] directory, else here.",
)
@click.option(
    "--tenant",
    "tenant_name",
    metavar="NAME",
    help="With [[tenants]]: the tenant to ask (required there; the report is the same in each).",
)
@click.pass_obj
@guarded
def pir(ctx: Context, issue_id: str, output: Path | None, tenant_name: str | None) -> int:
    """Download the post-incident report of one issue (a PDF or Word file).

    ISSUE_ID is the id Microsoft gives it, such as EX1256020 (any case). Microsoft
    publishes a report only once the issue's status is postIncidentReviewPublished.
    """
    from m365watch.models import is_message_id
    from m365watch.outputs.pir import fetch_report, save_report
    from m365watch.query import normalise_issue_id

    settings = ctx.settings()
    if is_message_id(issue_id.strip()):
        raise ConfigError(
            f"{issue_id.strip()[:40]} is a Message center post: post-incident reports exist "
            "for service health issues only (see it with m365watch show)"
        )
    issue_id = normalise_issue_id(issue_id)
    if settings.many_tenants and tenant_name is None:
        names = ", ".join(str(t.name) for t in settings.tenants)
        raise ConfigError(f"with [[tenants]], name the tenant to ask: --tenant NAME ({names})")
    (settings,) = settings.for_tenants((tenant_name,) if tenant_name else ())
    data, extension = fetch_report(wiring.build_graph(settings), issue_id)
    if output is None:
        folder = settings.pir.directory if settings.pir is not None else Path.cwd()
        output = folder / f"{issue_id}{extension}"
    try:
        save_report(output, data)
    except OSError as error:
        raise M365WatchError(
            f"cannot write {output}: {error.strerror or error}; choose another file with -o"
        ) from error
    if not ctx.quiet:
        click.echo(f"Saved the post-incident report of {issue_id} ({len(data)} bytes) to {output}")
    return 0


# Allow "python -m m365watch.cli".
if __name__ == "__main__":  # pragma: no cover
    main()
