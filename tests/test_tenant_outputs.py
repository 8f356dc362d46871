"""The outputs with [[tenants]]: one textfile and one /metrics for every tenant's series,
one Atom feed (a grouped message is one entry), each tenant's post-incident reports in
its own folder, and no secret in any file m365watch writes.

Real polls through the command line (in-process) against the loopback Microsoft
(tests/loopback.py): its token endpoint answers for any tenant and its Graph serves
every tenant the same issues. Read back with prometheus_client's parser and feedparser.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from m365watch.cli import main
from tests.helpers import free_port, resolved_incident
from tests.installation import CHANGED, FEED_AFTER, FEED_BEFORE, SENTINEL, reset
from tests.loopback import CLIENT_ID, FakeMicrosoft

TENANTS = ("contoso", "fabrikam", "northwind")
ROOT = Path(__file__).resolve().parents[1]
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
# What the textfile of a poll of many tenants holds: (type, label names) of each family.
SHAPE = {
    "m365watch_service_status": ("gauge", {"tenant", "service", "status"}),
    "m365watch_issues_open": ("gauge", {"tenant", "service", "classification"}),
    "m365watch_last_attempt_timestamp_seconds": ("gauge", {"tenant"}),
    "m365watch_last_success_timestamp_seconds": ("gauge", {"tenant"}),
    "m365watch_poll_duration_seconds": ("gauge", {"tenant"}),
    "m365watch_graph_requests": ("counter", {"tenant", "code"}),
    "m365watch_notifications": ("counter", {"tenant", "target", "result"}),
    "m365watch_pending_deliveries": ("gauge", {"tenant", "target"}),
}


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


class Tenants:
    """A configuration of three [[tenants]] with every output, in ``root``.

    Targets: ``noc`` (every tenant, grouped) and ``contoso-team`` (contoso only).
    """

    def __init__(self, fake: FakeMicrosoft, root: Path) -> None:
        reset(fake)
        self.fake, self.root = fake, root
        self.prefix = root.name + "-"  # webhook names of their own on the shared server
        self.textfile = root / "textfile" / "m365watch.prom"
        self.feed = root / "www" / "m365watch.atom"
        self.reports = root / "reports"
        self.textfile.parent.mkdir(parents=True)
        tenants = "".join(
            f'[[tenants]]\nname = "{name}"\ntenant_id = "{name}.onmicrosoft.com"\n\n'
            for name in TENANTS
        )
        self.config = root / "config.toml"
        self.config.write_text(
            f'[tenant]\nclient_id = "{CLIENT_ID}"\n'
            'client_secret = "${M365WATCH_CLIENT_SECRET}"\n'
            f'authority = "{fake.base_url}"\ngraph_endpoint = "{fake.base_url}"\n\n'
            f"{tenants}"
            f'[state]\npath = "{root / "state" / "state.json"}"\n\n'
            f'[metrics]\ntextfile = "{self.textfile}"\n\n'
            f'[feed]\npath = "{self.feed}"\n\n'
            f'[pir]\ndirectory = "{self.reports}"\n\n'
            f'[[notify]]\nname = "noc"\nurl = "{self.hook("noc")}"\ngroup_tenants = true\n\n'
            f'[[notify]]\nname = "contoso-team"\nurl = "{self.hook("contoso-team")}"\n'
            'tenants = ["contoso"]\n'
        )
        self.config.chmod(0o600)

    def hook(self, target: str) -> str:
        return self.fake.hook_url(self.prefix + target)

    def titles(self, target: str) -> list[str]:
        return [str(p.get("title")) for p in self.fake.hooks.get(self.prefix + target, [])]

    def poll(self, issues: list[dict[str, Any]], *args: str) -> Any:
        self.fake.issues = copy.deepcopy(issues)
        env = {"M365WATCH_CLIENT_SECRET": SENTINEL, "REQUESTS_CA_BUNDLE": str(self.fake.ca_bundle)}
        result = CliRunner().invoke(main, ["-c", str(self.config), "poll", *args], env=env)
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def tenants(fake: FakeMicrosoft, tmp_path: Path) -> Tenants:
    return Tenants(fake, tmp_path)


def parse(text: str) -> dict[str, Any]:
    """Family name -> parsed family, by prometheus_client's parser."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def series(parsed: dict[str, Any], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value for s in parsed[name].samples}


def test_the_textfile_holds_every_tenants_series_once(tenants: Tenants) -> None:
    tenants.poll(FEED_BEFORE)  # each tenant's baseline
    tenants.poll(FEED_AFTER)
    text = tenants.textfile.read_text()
    parsed = parse(text)
    assert {name: f.type for name, f in parsed.items()} == {n: t for n, (t, _) in SHAPE.items()}
    for name, family in parsed.items():
        assert all(set(s.labels) == SHAPE[name][1] for s in family.samples), name
    for name in SHAPE:  # one HELP and one TYPE per family, not one per tenant
        exposed = name + "_total" if SHAPE[name][0] == "counter" else name
        assert text.count(f"# HELP {exposed} ") == 1
        assert text.count(f"# TYPE {exposed} ") == 1
    keys = [(f.name, frozenset(s.labels.items())) for f in parsed.values() for s in f.samples]
    assert [k for k, n in Counter(keys).items() if n > 1] == []  # no two series alike
    attempts = series(parsed, "m365watch_last_attempt_timestamp_seconds")
    assert {dict(labels)["tenant"] for labels in attempts} == set(TENANTS)
    sent = series(parsed, "m365watch_notifications")
    # A grouped message counts in each tenant it names; contoso-team only has contoso's.
    assert {
        (dict(k)["tenant"], dict(k)["target"]): v
        for k, v in sent.items()
        if ("result", "sent") in k
    } == {
        **{(name, "noc"): float(len(CHANGED)) for name in TENANTS},
        ("contoso", "contoso-team"): float(len(CHANGED)),
    }
    assert len(tenants.titles("noc")) == len(CHANGED)  # grouped: one message per issue

    # A poll of one tenant leaves the others' series in the file.
    tenants.poll(FEED_AFTER, "--tenant", "fabrikam")
    again = parse(tenants.textfile.read_text())
    later = series(again, "m365watch_last_attempt_timestamp_seconds")
    assert later[frozenset({("tenant", "contoso")})] == attempts[frozenset({("tenant", "contoso")})]
    assert (
        later[frozenset({("tenant", "fabrikam")})] > attempts[frozenset({("tenant", "fabrikam")})]
    )
    requests = series(again, "m365watch_graph_requests")
    # Issues and health overviews, each poll: three polls of fabrikam, two of the others.
    assert requests == {
        frozenset({("tenant", name), ("code", "200")}): 6.0 if name == "fabrikam" else 4.0
        for name in TENANTS
    }


def test_watch_serves_every_tenants_series(tenants: Tenants) -> None:
    tenants.poll(FEED_BEFORE)
    port = free_port()
    env = {
        **os.environ,
        "M365WATCH_CLIENT_SECRET": SENTINEL,
        "REQUESTS_CA_BUNDLE": str(tenants.fake.ca_bundle),
        "PYTHONPATH": str(ROOT),
    }
    argv = [sys.executable, "-m", "m365watch", "-c", str(tenants.config)]
    proc = subprocess.Popen(
        [*argv, "watch", "--every", "1h", "--metrics-port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Polling every 1h")
        assert proc.stdout.readline().startswith("Serving metrics on")
        assert "message(s) sent" in proc.stdout.readline()  # the first poll is done
        url = f"http://127.0.0.1:{port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            served = answer.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    parsed = parse(served)
    assert parsed == parse(tenants.textfile.read_text())  # what the textfile says
    assert set(parsed) == set(SHAPE)
    attempts = series(parsed, "m365watch_last_attempt_timestamp_seconds")
    assert {dict(labels)["tenant"] for labels in attempts} == set(TENANTS)


def test_one_feed_for_every_tenant_a_grouped_message_is_one_entry(tenants: Tenants) -> None:
    tenants.poll(FEED_BEFORE)
    tenants.poll(FEED_AFTER)
    feed = feedparser.parse(tenants.feed.read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    entries = feed.entries
    assert len({e.id for e in entries}) == len(entries)
    grouped = [e for e in entries if e.title.startswith("3 tenants: ")]
    own = [e for e in entries if e.title.startswith("contoso: ")]
    # noc got one message per issue for the three tenants; contoso-team one per issue.
    assert len(grouped) == len(own) == len(CHANGED)
    assert len(entries) == 2 * len(CHANGED)
    for entry in grouped:
        assert {t.term for t in entry.tags} == set(TENANTS)
        assert "+".join(TENANTS) + "/" in entry.id
    for entry in own:
        assert [t.term for t in entry.tags] == ["contoso"]
        assert ":contoso/EX" in entry.id
    # The same changes, told once for the three tenants and once for contoso.
    assert {e.title.removeprefix("3 tenants: ") for e in grouped} == {
        e.title.removeprefix("contoso: ") for e in own
    }

    tenants.poll(FEED_AFTER)  # nothing new: the feed is as it was
    assert len(feedparser.parse(tenants.feed.read_bytes()).entries) == len(entries)


def test_each_tenant_keeps_its_reports_in_its_own_folder(tenants: Tenants) -> None:
    restored = [resolved_incident("EX1256020", "serviceRestored")]
    published = [resolved_incident("EX1256020", "postIncidentReviewPublished")]
    tenants.poll(restored)
    tenants.fake.reports = {"EX1256020": PDF}
    before = tenants.fake.counts["report"]
    tenants.poll(published)
    for name in TENANTS:  # asked with each tenant's own token, kept in its own folder
        assert (tenants.reports / name / "EX1256020.pdf").read_bytes() == PDF
    assert tenants.fake.counts["report"] - before == len(TENANTS)
    assert not (tenants.reports / "EX1256020.pdf").exists()
    (contoso_message,) = [
        p for p in tenants.fake.hooks[tenants.prefix + "contoso-team"] if "EX1256020" in p["title"]
    ]
    assert "reports/contoso/EX1256020.pdf" in contoso_message["message"]
    tenants.poll(published)  # kept: never asked again
    assert tenants.fake.counts["report"] - before == len(TENANTS)
    tenants.fake.reports = {}


def test_no_file_written_holds_the_secret(tenants: Tenants) -> None:
    tenants.poll(FEED_BEFORE)
    tenants.poll(FEED_AFTER)
    written = [p for p in tenants.root.rglob("*") if p.is_file() and p != tenants.config]
    names = {p.name for p in written}
    assert {"state.metrics.json", "m365watch.atom", "m365watch.prom"} <= names
    for path in written:
        assert SENTINEL.encode() not in path.read_bytes(), path
