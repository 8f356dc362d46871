"""The validated settings, as frozen values: pure, standard library only.

:mod:`m365watch.config` builds them from the TOML file; everything else reads them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from m365watch.errors import ConfigError
from m365watch.models import CLASSIFICATIONS

# name -> (authority host, Graph endpoint); tokens of one cloud do not work in another.
CLOUDS: dict[str, tuple[str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

CLOUD_NAMES: tuple[str, ...] = tuple(CLOUDS)
DEFAULT_ALERT_AFTER = 3
# Seconds a poll waits for another one's lock: here, so --help can show it without the store.
DEFAULT_LOCK_WAIT = 10.0
DEFAULT_CONCURRENCY = 8

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class TenantSettings:
    """Who m365watch signs in as, and where."""

    tenant_id: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    certificate_path: Path | None = None
    certificate_password: str | None = field(default=None, repr=False)
    cloud: str = "global"
    authority: str | None = None
    graph_endpoint: str | None = None
    # The [[tenants]] label ("contoso"); None for the single [tenant] of a plain configuration.
    name: str | None = None

    @property
    def admin_consent_url(self) -> str:
        """Where an admin of this tenant grants (or grants again) the app's consent."""
        return f"{self.endpoints[0]}/{self.tenant_id}/adminconsent?client_id={self.client_id}"

    @property
    def endpoints(self) -> tuple[str, str]:
        """(authority host, Graph endpoint): the cloud's, or the overrides."""
        authority_host, graph_endpoint = CLOUDS[self.cloud]
        return self.authority or authority_host, self.graph_endpoint or graph_endpoint


@dataclass(frozen=True)
class PollSettings:
    """Which issues are worth notifying about."""

    services: tuple[str, ...] = ()
    classifications: tuple[str, ...] = CLASSIFICATIONS
    notify_existing: bool = False
    concurrency: int = DEFAULT_CONCURRENCY  # tenants polled at once


@dataclass(frozen=True)
class TargetSettings:
    """One ``[[notify]]`` block: where to send, and which changes."""

    name: str
    urls: tuple[str, ...] = field(repr=False)
    services: tuple[str, ...] = ()
    classifications: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    digest: bool = False
    tenants: tuple[str, ...] = ()  # [[tenants]] names; empty = every tenant
    group_tenants: bool = False  # one message per issue per poll naming every tenant

    def covers(self, tenant: str | None) -> bool:
        """True when this target wants the changes of ``tenant`` (None: the only tenant)."""
        return tenant is None or not self.tenants or tenant in self.tenants

    @property
    def schemes(self) -> tuple[str, ...]:
        """The URL schemes (``slack``, ``mailtos``…): safe to show, unlike the URLs."""
        return tuple(scheme_of(u) for u in self.urls)


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: Prometheus metrics, as a textfile and/or served while watching."""

    textfile: Path | None = None  # for node_exporter's textfile collector
    listen: tuple[str, int] | None = None  # (host, port) that `watch` serves /metrics on


@dataclass(frozen=True)
class FeedSettings:
    """``[feed]``: an Atom feed of the messages sent."""

    path: Path
    max_entries: int = 200


@dataclass(frozen=True)
class PirSettings:
    """``[pir]``: where post-incident reports are kept."""

    directory: Path


# Message center vocabularies (Graph's camelCase words, compared case-insensitively).
MESSAGE_CATEGORIES: tuple[str, ...] = ("preventorfixissue", "planforchange", "stayinformed")
MESSAGE_SEVERITIES: tuple[str, ...] = ("normal", "high", "critical")
DEFAULT_REMIND_BEFORE_DAYS: tuple[float, ...] = (30.0, 7.0)


@dataclass(frozen=True)
class MessagesSettings:
    """``[messages]``: the Message center feed, its filters and act-by reminders.

    Empty filters let everything through; ``remind_before_days`` are the thresholds
    (days before a post's act-by date) at which a reminder is sent, largest first.
    """

    categories: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    major_only: bool = False
    remind_before_days: tuple[float, ...] = DEFAULT_REMIND_BEFORE_DAYS


@dataclass(frozen=True)
class Settings:
    """Everything the configuration file says, validated."""

    tenant: TenantSettings | None
    state_path: Path
    poll: PollSettings = PollSettings()
    targets: tuple[TargetSettings, ...] = ()
    alert_after: int = DEFAULT_ALERT_AFTER
    metrics: MetricsSettings | None = None
    feed: FeedSettings | None = None
    pir: PirSettings | None = None
    messages: MessagesSettings | None = None
    source: Path | None = None
    warnings: tuple[str, ...] = ()
    # [[tenants]]: each one's settings (``tenant`` is then None); empty for one [tenant].
    tenants: tuple[TenantSettings, ...] = ()

    @property
    def many_tenants(self) -> bool:
        """True when the configuration has [[tenants]] (even just one)."""
        return bool(self.tenants)

    @property
    def tenant_name(self) -> str | None:
        """The label of the tenant these settings are for (None: a plain configuration)."""
        return self.tenant.name if self.tenant is not None else None

    def for_tenants(self, names: Sequence[str] = ()) -> list[Settings]:
        """One single-tenant view per tenant (those in ``names``; all when empty).

        A plain configuration is its own one view. With [[tenants]] each view has its
        tenant as ``tenant``, its own state file (so its own lock, outbox, health file
        and token cache) in ``tenants/NAME/`` beside the configured state path, and
        only the targets that cover it. ConfigError for a name that is not configured.
        """
        if not self.tenants:
            if names:
                raise ConfigError(
                    f"--tenant {names[0]!r}: {self.source} has no [[tenants]], only one "
                    "[tenant]; run without --tenant"
                )
            return [self]
        known = {t.name: t for t in self.tenants}
        for name in names:
            if name not in known:
                raise ConfigError(
                    f"no tenant is named {name!r}: the tenants are {', '.join(map(str, known))}"
                )
        return [
            replace(
                self,
                tenant=tenant,
                tenants=(),
                state_path=tenant_state_path(self.state_path, str(tenant.name)),
                targets=tuple(t for t in self.targets if t.covers(tenant.name)),
                # Each tenant's post-incident reports in a folder of its own.
                pir=replace(self.pir, directory=self.pir.directory / str(tenant.name))
                if self.pir is not None
                else None,
            )
            for tenant in self.tenants
            if not names or tenant.name in names
        ]

    @property
    def targets_fingerprint(self) -> str:
        """A hash of the notification targets, to notice when they need checking again."""
        digest = hashlib.sha256()
        for target in self.targets:
            digest.update(target.name.encode() + b"\0")
            for url in target.urls:
                digest.update(url.encode() + b"\0")
        return digest.hexdigest()

    def require_tenant(self) -> TenantSettings:
        """The [tenant] table; ConfigError when the configuration has none."""
        if self.tenant is None and self.tenants:
            raise ConfigError(
                f"{self.source} has [[tenants]]: this needs one tenant (use --tenant NAME)"
            )
        if self.tenant is None:
            raise ConfigError(
                f"{self.source} has no [tenant] table: add tenant_id, client_id and "
                "client_secret or certificate_path (see config.example.toml)"
            )
        return self.tenant


def tenant_state_path(state_path: Path, name: str) -> Path:
    """Where the state of the [[tenants]] entry ``name`` lives: ``tenants/NAME/`` beside it."""
    return state_path.parent / "tenants" / name / state_path.name


def scheme_of(url: str) -> str:
    """The scheme of a notification URL, or ``?``; never the rest (it holds secrets)."""
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else "?"
