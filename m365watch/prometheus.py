"""The prometheus_client adapter: render metric families, write the textfile, serve /metrics.

Each use has its own :class:`CollectorRegistry` (never the process-global one).
The metrics record beside the state (``state.metrics.json``, 0600) is read and
written here too, so the textfile and the served endpoint say the same thing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from m365watch import files
from m365watch.errors import StateError

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1024 * 1024


class Family(Protocol):
    """One metric family as the use case describes it (``outputs.metrics.Family``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...  # "gauge" or "counter"
    @property
    def help(self) -> str: ...
    @property
    def labels(self) -> tuple[str, ...]: ...
    @property
    def samples(self) -> Sequence[tuple[tuple[str, ...], float]]: ...


def metrics_path_for(state_path: Path) -> Path:
    """Where the metrics record lives: beside the state (``state.metrics.json``)."""
    return state_path.with_name(state_path.stem + ".metrics.json")


def load_record(path: Path) -> Any:
    """The stored JSON; None when there is none or it cannot be read (logged)."""
    try:
        raw = files.read_bounded(path, MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read metrics file %s (%s); counting from zero", path, exc)
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        log.warning("metrics file %s is damaged; counting from zero", path)
        return None


def save_record(path: Path, record: Any) -> None:
    """Replace the stored JSON atomically (0600); StateError when it cannot be written."""
    payload = json.dumps(record, ensure_ascii=False, sort_keys=True, indent=1)
    try:
        files.write_private_file(path, payload.encode("utf-8"))
    except OSError as exc:
        raise StateError(f"cannot write metrics file {path}: {exc.strerror or exc}") from None


class _FamiliesCollector(Collector):
    """Yields whatever ``read`` returns at collection time."""

    def __init__(self, read: Callable[[], Iterable[Family]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        for family in self._read():
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.kind == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)
            for labels, value in family.samples:
                metric.add_metric(list(labels), value)
            yield metric


def _registry(read: Callable[[], Iterable[Family]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_FamiliesCollector(read))
    return registry


def render(families: Iterable[Family]) -> bytes:
    """The text exposition format of ``families`` (label values escaped by prometheus_client)."""
    fixed = tuple(families)
    return generate_latest(_registry(lambda: fixed))


def write_textfile(path: Path, families: Iterable[Family]) -> None:
    """Replace ``path`` atomically, mode 0644 so node_exporter (another user) can read it.

    The folder must exist (it is node_exporter's, not ours); raises OSError.
    """
    # Metrics are not secret; the collector runs as its own user.
    files.replace_atomically(path, render(families), 0o644)


@contextlib.contextmanager
def serving(host: str, port: int, read: Callable[[], Iterable[Family]]) -> Iterator[None]:
    """Serve ``/metrics`` on ``host:port`` while inside; ``read`` runs at every scrape.

    Raises OSError when the address cannot be bound.
    """
    server, thread = start_http_server(port, addr=host, registry=_registry(read))
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
