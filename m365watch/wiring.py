"""The wiring: the concrete adapters, built from the settings, for the commands in cli.

Only :mod:`m365watch.cli` imports this module; the use cases receive what it
builds. Each adapter's library (msal, requests, apprise, tinydb) is imported
inside the function that builds it, so ``--help`` and cached queries stay fast.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from m365watch import budget, files
from m365watch.errors import first_line
from m365watch.settings import (
    DEFAULT_LOCK_WAIT,
    FeedSettings,
    PirSettings,
    Settings,
    TargetSettings,
)

if TYPE_CHECKING:
    import requests

    from m365watch.auth import TokenProvider
    from m365watch.certificate import Certificate, CertificateInfo
    from m365watch.deliver import Delivery
    from m365watch.doctor import ClockReading, DoctorAdapters
    from m365watch.graph import GraphClient
    from m365watch.notify import Notifier
    from m365watch.outputs import PollOutcome
    from m365watch.outputs.metrics import Family, MetricsRecord
    from m365watch.query import CachedIssues as CachedState
    from m365watch.store import StateStore, WatcherStore

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The time now, in UTC: the clock every command reads the time from."""
    return datetime.now(timezone.utc)


def default_config_path() -> Path:
    """$M365WATCH_CONFIG, systemd's $CONFIGURATION_DIRECTORY, or the user config dir."""
    from m365watch import config

    return config.default_config_path()


def load_settings(path: Path) -> Settings:
    """Read and validate the configuration file (ConfigError names every mistake)."""
    from m365watch import config

    return config.load_settings(path)


def build_tokens(
    settings: Settings,
    *,
    session: requests.Session | None = None,
    cache_dir: Path | None = None,
) -> TokenProvider:
    """The MSAL token provider for the configured credential (no network until used).

    Its caches live beside the state, or in ``cache_dir``.
    """
    from m365watch.auth import ClientSecret, TokenProvider

    tenant = settings.require_tenant()
    authority_host, graph_endpoint = tenant.endpoints
    credential: ClientSecret | Certificate
    if tenant.certificate_path is not None:
        # cryptography (~50 ms to import) only when a certificate is configured.
        from m365watch.certificate import Certificate

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
        timeout=budget.EXCHANGE_SECONDS,
        time_limit=budget.FETCH_SECONDS,
    )


def build_graph(
    settings: Settings,
    *,
    tokens: TokenProvider | None = None,
    session: requests.Session | None = None,
    max_attempts: int | None = None,
    sleep: Callable[[float], None] | None = None,
) -> GraphClient:
    """The Graph adapter, signed in through MSAL (``tokens`` defaults to a new provider).

    ``max_attempts`` and ``sleep`` default to GraphClient's own.
    """
    import time

    from m365watch.graph import DEFAULT_MAX_ATTEMPTS, GraphClient

    tokens = tokens or build_tokens(settings, session=session)
    return GraphClient(
        graph_endpoint=settings.require_tenant().endpoints[1],
        get_token=tokens.get_token,
        session=session,
        max_attempts=DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts,
        # Read at call time, so a test can shorten the limits for every command at once.
        timeout=budget.EXCHANGE_SECONDS,
        time_limit=budget.FETCH_SECONDS,
        max_bytes=budget.GRAPH_MAX_BYTES,
        sleep=time.sleep if sleep is None else sleep,
    )


def thread_sessions() -> requests.Session:
    """One session for the Graph clients of many tenants: each thread reuses its connection."""
    from m365watch.graph import ThreadSessions

    return ThreadSessions()


def graph_requests_per_poll(settings: Settings | None = None) -> int:
    """The most requests one poll can send Graph (every retry of a one-page read).

    With ``[metrics]`` a poll also reads the health overviews, with ``[messages]`` the
    Message center: one more read each. Counted per tenant (Graph's budget is per tenant).
    """
    from m365watch.graph import DEFAULT_MAX_ATTEMPTS

    reads = 1
    if settings is not None:
        reads += (settings.metrics is not None) + (settings.messages is not None)
    return DEFAULT_MAX_ATTEMPTS * reads


def build_sender(settings: Settings, *, throttle: bool = True) -> Notifier:
    """The Apprise adapter for the configured targets (imports apprise)."""
    from m365watch.notify import Notifier

    return Notifier(
        {t.name: t.urls for t in settings.targets},
        throttle=throttle,
        send_timeout=budget.SEND_SECONDS,
    )


def build_demo(
    notify_urls: Sequence[str], echo: Callable[[str], None]
) -> tuple[tuple[TargetSettings, ...], Notifier, Callable[[Path], StateStore]]:
    """The demo's targets (``--notify`` URLs, else the terminal), sender and state store."""
    from m365watch.notify import Notifier, console_url
    from m365watch.store import StateStore

    if notify_urls:
        from m365watch.config import parse_settings

        # Reuse the config checks (e.g. retired Teams connector URLs) on --notify URLs.
        doc = {"notify": [{"name": "demo", "urls": list(notify_urls)}]}
        targets = parse_settings(doc, env={}, base_dir=None).targets
    else:
        targets = (TargetSettings(name="terminal", urls=(console_url(echo),)),)
    notifier = Notifier({t.name: t.urls for t in targets}, throttle=False)
    return targets, notifier, StateStore


def build_state_store(settings: Settings, *, lock_wait: float = DEFAULT_LOCK_WAIT) -> StateStore:
    """The state file's store (imports tinydb)."""
    from m365watch.store import StateStore

    return StateStore(settings.state_path, lock_wait=lock_wait)


class CachedIssues:
    """The issues of the state for ``status --cached`` and ``show ID --cached``.

    Read with json alone (:mod:`m365watch.state_reader`: no TinyDB, no filelock); a
    state file that reader does not fully understand (missing, damaged, newer) is
    loaded through the store, whose answer or error is then the one given.
    """

    def __init__(self, settings: Settings) -> None:
        self.path = settings.state_path
        self._settings = settings

    def load(self) -> CachedState:
        """The issues' snapshots (and whether a state exists)."""
        from m365watch import state_reader

        try:
            return state_reader.read_issues(self.path)
        except state_reader.NotPlain:
            return build_state_store(self._settings).load()

    def age_source(self) -> float | None:
        """When a poll last wrote or confirmed the state (its file's time)."""
        from m365watch import state_reader

        return state_reader.modified(self.path)


def build_cached_issues(settings: Settings) -> CachedIssues:
    """What the cached issue queries read the state through (no TinyDB, no lock)."""
    return CachedIssues(settings)


def build_watcher_store(
    settings: Settings, *, lock_wait: float = DEFAULT_LOCK_WAIT
) -> WatcherStore:
    """The self-monitoring's health file, beside the state."""
    from m365watch.store import WatcherStore, watcher_path_for

    return WatcherStore(watcher_path_for(settings.state_path), lock_wait=lock_wait)


def build_doctor_adapters(clock: Callable[[], datetime] = utc_now) -> DoctorAdapters:
    """The real adapters behind ``m365watch doctor``'s checks."""
    from m365watch.doctor import DoctorAdapters

    return DoctorAdapters(
        load_settings=load_settings,
        read_certificate=_read_certificate,
        connect=lambda settings: _doctor_probe(settings, clock),
        url_accepted=_apprise_accepts,
        write_private_file=files.write_private_file,
        load_state=_load_state,
        now=clock,
        free_space=_free_space,
    )


def _free_space(folder: Path) -> int:
    import shutil

    return shutil.disk_usage(folder).free


def _read_certificate(path: Path, password: str | None) -> CertificateInfo:
    from m365watch.certificate import Certificate, load_certificate

    return load_certificate(Certificate(path, password))[1]


def _apprise_accepts(url: str) -> bool:
    from m365watch.errors import ConfigError
    from m365watch.notify import Notifier

    try:
        Notifier({"doctor": (url,)}).check()
    except ConfigError:
        return False
    return True


def _load_state(path: Path) -> object:
    from m365watch.store import StateStore

    return StateStore(path).load()


class _DoctorProbe:
    """Sign-in and Graph for doctor: every answer's Date header is kept for the clock check."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime], cache_dir: Path) -> None:
        import requests

        self._clock = clock
        self._readings: list[ClockReading] = []
        session = requests.Session()
        session.hooks["response"].append(self._remember_date)
        self._tokens = build_tokens(settings, session=session, cache_dir=cache_dir)
        self._settings = settings
        self._session = session

    def _remember_date(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        import email.utils
        from urllib.parse import urlsplit

        from m365watch.doctor import ClockReading

        try:
            server = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError, IndexError):
            return
        host = urlsplit(response.url).hostname or "?"
        self._readings.append(ClockReading(self._clock(), server, host))

    def sign_in(self) -> None:
        """Get a token from Entra ID (the caches are empty: always a real request)."""
        self._tokens.get_token()

    def count_services(self) -> int:
        """One request for the health overviews, never retried."""
        graph = build_graph(
            self._settings, tokens=self._tokens, session=self._session, max_attempts=1
        )
        return len(graph.list_health_overviews())

    def peek_messages(self) -> int:
        """One request for one Message center post, never retried."""
        graph = build_graph(
            self._settings, tokens=self._tokens, session=self._session, max_attempts=1
        )
        return graph.peek_messages()

    def last_clock_reading(self) -> ClockReading | None:
        """The latest answer's Date header, if Microsoft answered at all."""
        return self._readings[-1] if self._readings else None


@contextlib.contextmanager
def _doctor_probe(settings: Settings, clock: Callable[[], datetime]) -> Iterator[_DoctorProbe]:
    import tempfile

    # Empty caches: a cached token would pass with a secret that no longer works.
    with tempfile.TemporaryDirectory(prefix="m365watch-doctor-") as cache_dir:
        yield _DoctorProbe(settings, clock, Path(cache_dir))


def after_poll(settings: Settings, outcome: PollOutcome, source: object) -> None:
    """Feed the configured outputs ([metrics], [feed], [pir]) from one poll's outcome.

    ``source`` is what the poll read issues from (the Graph client, for outputs that
    ask Graph more). Each output that fails logs one warning; none raises.

    For one tenant of many (a view of [[tenants]]) only that tenant's own outputs
    are fed (its metrics record, its reports): the textfile and the feed are shared
    by every tenant, written once by :func:`after_tenant_polls`.
    """
    if outcome.dry_run:
        return
    shared = settings.tenant_name is None
    if settings.metrics is not None:
        record = _update_metrics(settings, outcome, source)
        if shared and settings.metrics.textfile is not None:
            from m365watch.outputs.metrics import families

            _write_textfile(settings.metrics.textfile, families(record))
    if shared and settings.feed is not None and outcome.result is not None:
        _update_feed(
            settings.feed,
            outcome.result.deliveries,
            {None: outcome.result.changes},
            outcome.finished,
        )
    if settings.pir is not None:
        _keep_reports(settings.pir, outcome, source)


def after_tenant_polls(
    settings: Settings,
    polls: Sequence[tuple[Settings, PollOutcome, object]],
    deliveries: Sequence[Delivery],
) -> None:
    """Feed the outputs once after a poll of many tenants ([[tenants]]).

    ``polls``: each tenant's view (from ``settings.for_tenants``), its outcome and
    its issue source; ``deliveries``: every message the poll sent, once (a grouped
    one names several tenants). Each tenant's own outputs first, as
    :func:`after_poll` feeds them; then the textfile, once, with the series of every
    configured tenant (also those this poll left out: ``--tenant``, a failure);
    then the Atom feed, once, one entry per message.
    """
    if not polls or any(outcome.dry_run for _, outcome, _ in polls):
        return
    for view, outcome, source in polls:
        after_poll(view, outcome, source)
    if settings.metrics is not None and settings.metrics.textfile is not None:
        _write_textfile(settings.metrics.textfile, tenant_families(settings))
    if settings.feed is not None:
        changes = {
            view.tenant_name: outcome.result.changes
            for view, outcome, _ in polls
            if outcome.result is not None
        }
        finished = max(outcome.finished for _, outcome, _ in polls)
        _update_feed(settings.feed, deliveries, changes, finished)


def tenant_families(settings: Settings) -> tuple[Family, ...]:
    """The metric families of every [[tenants]] entry's record, merged (read from disk)."""
    from m365watch import prometheus
    from m365watch.outputs.metrics import merged_families

    return merged_families(
        {
            str(view.tenant_name): _load_metrics_record(
                prometheus.metrics_path_for(view.state_path)
            )
            for view in settings.for_tenants()
        }
    )


def report_hook(
    settings: Settings, source: object
) -> Callable[[Sequence[object]], dict[str, Path]] | None:
    """With ``[pir]``: what ``run_poll`` asks before delivery for the reports to mention.

    One quick try per missing report (``pir.QUICK_SECONDS`` in all, no retries), so a
    slow Graph never holds a notification up for long; None without ``[pir]`` or when
    ``source`` serves no reports.
    """
    if settings.pir is None:
        return None
    from m365watch.graph import GraphClient
    from m365watch.outputs import pir as reports

    if not isinstance(source, GraphClient):
        return None
    graph, directory = source, settings.pir.directory

    def fetch(issue_id: str, seconds: float) -> bytes:
        return graph.get_incident_report(issue_id, time_limit=seconds, retries=False)

    def hook(changes: Sequence[object]) -> dict[str, Path]:
        return reports.reports_before_delivery(directory, changes, fetch)

    return hook


def _update_feed(
    feed: FeedSettings,
    deliveries: Sequence[Delivery],
    changes: Mapping[str | None, Sequence[object]],
    now: datetime,
) -> None:
    """Add what was sent to the Atom feed; a failure is one warning.

    ``changes``: the poll's changes by tenant name (None: the one plain tenant).
    """
    from m365watch.outputs import atom

    try:
        added = atom.update_feed(feed.path, feed.max_entries, deliveries, changes, now)
    except (OSError, ValueError) as error:
        log.warning("the Atom feed %s was not updated: %s", feed.path, first_line(error))
        return
    if added:
        log.info("added %d entries to the Atom feed %s", added, feed.path)


def _keep_reports(pir: PirSettings, outcome: PollOutcome, source: object) -> None:
    """Save the post-incident reports owed (after delivery: never delays a notification)."""
    from m365watch.outputs import pir as reports

    if not isinstance(source, reports.ReportSource):
        log.debug("the issue source serves no post-incident reports")
        return
    if outcome.result is None:
        return  # Graph failed this poll: what is owed waits for one that reaches it
    try:
        reports.keep_reports(pir.directory, outcome.result.changes, source)
    except Exception as error:  # an output never breaks the poll (keep_reports logs its own)
        log.warning("post-incident reports were not kept: %s", first_line(error))


def _update_metrics(settings: Settings, outcome: PollOutcome, source: object) -> MetricsRecord:
    """Fold the poll into ``state.metrics.json`` (the new record); warnings, never errors."""
    from m365watch import prometheus
    from m365watch.errors import M365WatchError
    from m365watch.models import ServiceHealth
    from m365watch.outputs.metrics import next_record, record_to_json
    from m365watch.records import State

    services: dict[str, str] | None = None
    list_overviews = getattr(source, "list_health_overviews", None)
    if outcome.succeeded and callable(list_overviews):
        try:
            overviews = [ServiceHealth.from_graph(o) for o in list_overviews()]
            services = {o.service: o.status_raw or "" for o in overviews}
        except M365WatchError as exc:
            log.warning("metrics: service status not refreshed: %s", exc)
    take_codes = getattr(source, "take_request_codes", None)
    codes = take_codes() if callable(take_codes) else {}
    state: State | None = None
    try:
        state = build_state_store(settings).load()
    except M365WatchError as exc:
        log.warning("metrics: open issues and pending deliveries not refreshed: %s", exc)
    record_path = prometheus.metrics_path_for(settings.state_path)
    record = next_record(
        _load_metrics_record(record_path),
        outcome,
        tenant=settings.tenant_name or settings.require_tenant().tenant_id,
        state=state,
        services=services,
        request_codes=codes,
    )
    try:
        prometheus.save_record(record_path, record_to_json(record))
    except M365WatchError as exc:
        log.warning("metrics: %s", exc)
    return record


def _write_textfile(path: Path, families: Iterable[Family]) -> None:
    """Replace node_exporter's textfile; a failure is one warning."""
    from m365watch import prometheus

    try:
        prometheus.write_textfile(path, families)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log.warning("metrics: cannot write textfile %s: %s", path, reason)


def _load_metrics_record(path: Path) -> MetricsRecord:
    """The metrics record beside the state; an empty one when missing or damaged (logged)."""
    from m365watch import prometheus
    from m365watch.outputs.metrics import MetricsRecord, record_from_json

    try:
        return record_from_json(prometheus.load_record(path))
    except ValueError as exc:
        log.warning("metrics file %s is damaged (%s); counting from zero", path, exc)
        return MetricsRecord()


@contextlib.contextmanager
def serving_metrics(settings: Settings, host: str, port: int) -> Iterator[None]:
    """Serve ``/metrics`` from the metrics record beside the state while inside.

    With [[tenants]]: from every tenant's record, merged, read at each scrape.

    Raises ConfigError when the address cannot be bound.
    """
    from m365watch import prometheus
    from m365watch.errors import ConfigError
    from m365watch.outputs.metrics import families

    path = prometheus.metrics_path_for(settings.state_path)

    def read() -> tuple[Family, ...]:
        if settings.many_tenants:  # every tenant's series, as the textfile has them
            return tenant_families(settings)
        return families(_load_metrics_record(path))

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(prometheus.serving(host, port, read))
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
                "(is another process using that port?)"
            ) from None
        yield
