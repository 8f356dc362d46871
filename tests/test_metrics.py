"""Prometheus metrics: the textfile node_exporter reads, /metrics while watching, the counters.

Everything is read back with prometheus_client's own parser, from a real
m365watch run against the loopback Microsoft (tests/loopback.py).
"""

from __future__ import annotations

import json
import re
import signal
import stat
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from m365watch import prometheus, wiring
from m365watch.errors import GraphError
from m365watch.feeds.messages import ServiceMessage
from m365watch.models import STATUSES, Issue
from m365watch.outputs import PollOutcome
from m365watch.outputs.metrics import (
    MetricsRecord,
    families,
    merged_families,
    next_record,
    record_from_json,
    record_to_json,
)
from m365watch.prometheus import render
from m365watch.records import Entry, Meta, Owed, Snapshot, State, Unit
from tests.command_line import invoke, write_config
from tests.helpers import free_port, load_json
from tests.identity import mock_identity
from tests.installation import Installation, reset
from tests.loopback import TENANT, FakeMicrosoft

REPO = Path(__file__).resolve().parents[1]
# Every family m365watch exposes: (type, label names). Counters are named without _total.
SHAPE = {
    "m365watch_service_status": ("gauge", {"tenant", "service", "status"}),
    "m365watch_issues_open": ("gauge", {"tenant", "service", "classification"}),
    "m365watch_last_attempt_timestamp_seconds": ("gauge", {"tenant"}),
    "m365watch_last_success_timestamp_seconds": ("gauge", {"tenant"}),
    "m365watch_poll_duration_seconds": ("gauge", {"tenant"}),
    "m365watch_graph_requests": ("counter", {"tenant", "code"}),
    "m365watch_notifications": ("counter", {"target", "result"}),
    "m365watch_pending_deliveries": ("gauge", {"target"}),
}
QUOTED = 'Odd "quoted"\nservice \\ name'


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMicrosoft]:
    with FakeMicrosoft(tmp_path_factory.mktemp("loopback")).start() as server:
        yield server


def installation(fake: FakeMicrosoft, root: Path, textfile: Path | None = None) -> Installation:
    reset(fake)
    fake.health.append({"id": "Odd", "service": QUOTED, "status": "serviceDegradation"})
    extra = f'[metrics]\ntextfile = "{textfile}"\n' if textfile is not None else ""
    inst = Installation(root, fake, extra=extra)
    inst.baseline()
    return inst


def parse(text: str) -> dict[str, Any]:
    """Family name -> parsed family, by prometheus_client's parser."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(parsed: dict[str, Any], name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset(s.labels.items()): s.value for s in parsed[name.removesuffix("_total")].samples
    }


def value(parsed: dict[str, Any], name: str, **labels: str) -> float:
    return samples(parsed, name)[frozenset(labels.items())]


def test_textfile_has_every_family_with_its_type_and_labels(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    textfile = tmp_path / "m365watch.prom"
    inst = installation(fake, tmp_path / "inst", textfile)

    done = inst.run("-q", "poll")

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644  # node_exporter reads it as itself
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    parsed = parse(textfile.read_text())
    assert {name: f.type for name, f in parsed.items()} == {n: t for n, (t, _) in SHAPE.items()}
    for name, family in parsed.items():
        assert all(set(s.labels) == SHAPE[name][1] for s in family.samples), name
    status = samples(parsed, "m365watch_service_status")
    assert len(status) == 2 * len(STATUSES)  # a state set: every status, for each service
    for service, current in (
        ("Exchange Online", "serviceOperational"),
        (QUOTED, "serviceDegradation"),
    ):
        for each in STATUSES:
            expected = 1.0 if each == current else 0.0
            assert (
                value(
                    parsed, "m365watch_service_status", tenant=TENANT, service=service, status=each
                )
                == expected
            )
    assert value(parsed, "m365watch_notifications_total", target="all", result="sent") == 8
    assert value(parsed, "m365watch_notifications_total", target="incidents", result="sent") == 4
    # One read of the issues and one of the overviews, each answered 200.
    assert samples(parsed, "m365watch_graph_requests_total") == {
        frozenset({("tenant", TENANT), ("code", "200")}): 2.0
    }
    open_issues = samples(parsed, "m365watch_issues_open")
    assert open_issues and all(v > 0 for v in open_issues.values())
    assert samples(parsed, "m365watch_pending_deliveries") == {}
    assert value(parsed, "m365watch_last_success_timestamp_seconds", tenant=TENANT) == value(
        parsed, "m365watch_last_attempt_timestamp_seconds", tenant=TENANT
    )
    record = inst.state.with_name("state.metrics.json")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600


def test_counters_persist_across_processes_and_only_grow(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    textfile = tmp_path / "m365watch.prom"
    inst = installation(fake, tmp_path / "inst", textfile)
    fake.failing_hooks.add("incidents")

    assert inst.run("-q", "poll").returncode != 0  # "incidents" refused: kept in the outbox
    first = parse(textfile.read_text())
    fake.failing_hooks.clear()
    assert inst.run("-q", "poll").returncode == 0
    second = parse(textfile.read_text())

    assert value(first, "m365watch_graph_requests_total", tenant=TENANT, code="200") == 2
    assert value(second, "m365watch_graph_requests_total", tenant=TENANT, code="200") == 4
    assert value(first, "m365watch_notifications_total", target="all", result="sent") == 8
    assert value(second, "m365watch_notifications_total", target="all", result="sent") == 8
    assert value(first, "m365watch_notifications_total", target="incidents", result="failed") == 4
    assert value(second, "m365watch_notifications_total", target="incidents", result="failed") == 4
    assert value(second, "m365watch_notifications_total", target="incidents", result="sent") == 4
    assert samples(first, "m365watch_pending_deliveries") == {
        frozenset({("target", "incidents")}): 4
    }
    assert samples(second, "m365watch_pending_deliveries") == {}


def test_a_failed_poll_writes_last_attempt_but_not_last_success(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    textfile = tmp_path / "m365watch.prom"
    inst = installation(fake, tmp_path / "inst", textfile)
    forbidden = json.dumps({"error": {"code": "Forbidden", "message": "no"}})
    fake.graph_faults.append((403, forbidden, {}))

    done = inst.run("-q", "poll")

    assert done.returncode == GraphError.exit_code, done.stderr  # the poll's own error, as before
    parsed = parse(textfile.read_text())
    assert "m365watch_last_success_timestamp_seconds" not in parsed
    assert value(parsed, "m365watch_last_attempt_timestamp_seconds", tenant=TENANT) > 0
    assert value(parsed, "m365watch_graph_requests_total", tenant=TENANT, code="403") == 1
    assert samples(parsed, "m365watch_service_status") == {}  # not asked: Graph refused the poll


def test_an_unwritable_textfile_logs_one_warning_and_the_poll_exits_as_before(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    textfile = tmp_path / "no-such-folder" / "m365watch.prom"
    inst = installation(fake, tmp_path / "inst", textfile)

    done = inst.run("poll")

    assert done.returncode == 0
    assert "8 change(s), 12 message(s) sent" in done.stdout
    warnings = done.stderr.splitlines()
    assert len(warnings) == 1, done.stderr
    assert warnings[0].startswith("m365watch: WARNING: metrics: ")
    assert "cannot write textfile" in warnings[0] and str(textfile) in warnings[0]
    # The counters were still kept for the next poll.
    assert inst.state.with_name("state.metrics.json").exists()


def test_overviews_refused_logs_one_warning_and_the_poll_goes_on(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    textfile = tmp_path / "m365watch.prom"
    inst = installation(fake, tmp_path / "inst", textfile)
    forbidden = json.dumps({"error": {"code": "Forbidden", "message": "no"}})
    # The issues read answers first; the overviews read (after the poll) gets the 403.
    fake.graph_faults.extend([(200, json.dumps({"value": fake.issues}), {}), (403, forbidden, {})])

    done = inst.run("poll")

    assert done.returncode == 0
    assert "12 message(s) sent" in done.stdout
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "service status not refreshed" in done.stderr
    parsed = parse(textfile.read_text())
    assert samples(parsed, "m365watch_service_status") == {}
    assert value(parsed, "m365watch_graph_requests_total", tenant=TENANT, code="403") == 1


def test_watch_serves_metrics_on_the_given_port(fake: FakeMicrosoft, tmp_path: Path) -> None:
    inst = installation(fake, tmp_path / "inst")  # no [metrics]: --metrics-port alone
    port = free_port()
    proc = inst.spawn("watch", "--every", "1h", "--metrics-port", str(port))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("Polling every 1h")
        assert proc.stdout.readline() == f"Serving metrics on http://127.0.0.1:{port}/metrics.\n"
        assert "message(s) sent" in proc.stdout.readline()  # the first poll is done
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.endswith("Stopped after 1 poll(s).\n")
    parsed = parse(text)
    assert set(parsed) == set(SHAPE)
    assert value(parsed, "m365watch_graph_requests_total", tenant=TENANT, code="200") == 2
    assert (
        value(
            parsed,
            "m365watch_service_status",
            tenant=TENANT,
            service="Exchange Online",
            status="serviceOperational",
        )
        == 1
    )


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


def issue(n: int, *, resolved: bool = False, classification: str = "incident") -> Issue:
    return Issue(
        id=f"EX{n}",
        title="a title that must never become a label",
        service="Exchange Online",
        status="investigating",
        classification=classification,
        is_resolved=resolved,
    )


def test_next_record_counts_open_issues_and_pending_deliveries_from_the_state() -> None:
    gone = T0 - timedelta(hours=1)
    state = State(
        snapshots={
            "issues": {
                "EX1": Snapshot(issue(1)),
                "EX2": Snapshot(issue(2, classification="advisory")),
                "EX3": Snapshot(issue(3, resolved=True)),
                "EX4": Snapshot(issue(4), missing_since=gone),
            }
        },
        outbox=(
            Entry(
                "issues",
                "EX1",
                None,
                (Owed(Unit("ops", 1)), Owed(Unit("ops", 2)), Owed(Unit("mail"))),
            ),
        ),
    )
    outcome = PollOutcome(T0, T0 + timedelta(seconds=3), error=None)

    record = next_record(
        MetricsRecord(),
        outcome,
        tenant="t",
        state=state,
        services={"Teams": "Nonsense"},
        request_codes={},
    )

    assert record.issues_open == {
        ("Exchange Online", "incident"): 1,
        ("Exchange Online", "advisory"): 1,
    }
    assert record.pending == {"ops": 1, "mail": 1}  # an entry counts once per target
    assert record.services == {"Teams": "unknownFutureValue"}
    assert (
        record.last_success is None
        and record.last_attempt == (T0 + timedelta(seconds=3)).timestamp()
    )
    assert record.poll_duration == 3.0
    labels = {v for f in families(record) for labels, _ in f.samples for v in labels}
    assert not any("title" in v or v.startswith("EX") for v in labels)


def test_record_round_trips_and_a_damaged_one_is_refused() -> None:
    record = MetricsRecord(
        tenant="t",
        last_attempt=1.5,
        services={"Teams": "serviceOperational"},
        issues_open={("Teams", "incident"): 2},
        pending={"ops": 1},
        graph_requests={"200": 7, "none": 1},
        notifications={("ops", "sent"): 3},
    )
    assert record_from_json(json.loads(json.dumps(record_to_json(record)))) == record
    assert record_from_json(None) == MetricsRecord()
    with pytest.raises(ValueError):
        record_from_json({"version": 1, "graphRequests": {"200": -1}})


def test_many_tenants_records_merge_into_one_family_each_labelled_by_tenant() -> None:
    def record(stored_as: str, sent: int) -> MetricsRecord:
        return MetricsRecord(
            tenant=stored_as,
            last_attempt=1.0,
            last_success=1.0,
            poll_duration=0.5,
            services={"Teams": "serviceOperational"},
            pending={"noc": 1},
            graph_requests={"200": 2},
            notifications={("noc", "sent"): sent},
        )

    # The tenant label is the [[tenants]] name, whatever a record says; a tenant never
    # polled adds no series.
    merged = merged_families(
        {"fabrikam": record("old", 5), "contoso": record("contoso", 3), "new": MetricsRecord()}
    )
    parsed = parse(render(merged).decode())
    assert set(parsed) == set(SHAPE)
    assert [f.name for f in merged] == list(dict.fromkeys(f.name for f in merged))
    assert (
        value(
            parsed, "m365watch_notifications_total", tenant="fabrikam", target="noc", result="sent"
        )
        == 5
    )
    assert (
        value(
            parsed, "m365watch_notifications_total", tenant="contoso", target="noc", result="sent"
        )
        == 3
    )
    assert samples(parsed, "m365watch_pending_deliveries") == {
        frozenset({("tenant", name), ("target", "noc")}): 1.0 for name in ("contoso", "fabrikam")
    }
    assert len(samples(parsed, "m365watch_last_attempt_timestamp_seconds")) == 2
    # One tenant alone: the target families keep their single-tenant labels.
    assert {f.name: f.labels for f in families(record("contoso", 3))}[
        "m365watch_notifications_total"
    ] == ("target", "result")


def test_alert_rules_are_yaml_with_the_rules_prometheus_needs() -> None:
    import yaml  # PyYAML comes with Apprise

    doc = yaml.safe_load((REPO / "contrib" / "prometheus" / "alerts.yml").read_text())
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    assert all({"alert", "expr", "for", "labels", "annotations"} <= set(rule) for rule in rules)
    exprs = " ".join(rule["expr"] for rule in rules)
    for metric in (
        "m365watch_service_status",
        "m365watch_last_success_timestamp_seconds",
        "m365watch_pending_deliveries",
    ):
        assert metric in exprs
    used = {name.removesuffix("_total") for name in re.findall(r"m365watch_[a-z_]+", exprs)}
    assert used <= set(SHAPE)


def test_watch_counts_the_overviews_read_in_its_request_budget(
    fake: FakeMicrosoft, tmp_path: Path
) -> None:
    with_metrics = installation(fake, tmp_path / "with", tmp_path / "m365watch.prom")

    before = fake.counts["graph"]
    # 20 s is enough for 4 requests a poll (18 s), not for 8 (36 s).
    refused = with_metrics.invoke("watch", "--every", "20s")
    assert refused.exit_code == 2
    assert "8 per poll" in refused.output
    assert fake.counts["graph"] == before  # refused before any poll


# -- Message center: posts whose act-by date is still ahead ------------------------------------


def post(post_id: str, act_by: datetime | None) -> ServiceMessage:
    return ServiceMessage(id=post_id, title="a title that must never become a label", act_by=act_by)


def test_messages_action_required_counts_act_by_dates_still_ahead() -> None:
    gone = T0 - timedelta(hours=1)
    state = State(
        meta=Meta(baselines={"messages": T0 - timedelta(days=1)}),
        snapshots={
            "messages": {
                "MC1": Snapshot(post("MC1", T0 + timedelta(days=30))),
                "MC2": Snapshot(post("MC2", T0 + timedelta(minutes=1))),
                "MC3": Snapshot(post("MC3", T0 - timedelta(days=1))),  # passed
                "MC4": Snapshot(post("MC4", None)),
                "MC5": Snapshot(post("MC5", T0 + timedelta(days=9)), missing_since=gone),
            }
        },
    )
    outcome = PollOutcome(T0 - timedelta(seconds=2), T0)
    record = next_record(
        MetricsRecord(), outcome, tenant="t", state=state, services={}, request_codes={}
    )
    assert record.messages_action_required == 2
    parsed = parse(prometheus.render(families(record)).decode())
    family = parsed["m365watch_messages_action_required"]
    assert family.type == "gauge"
    assert [(s.labels, s.value) for s in family.samples] == [({"tenant": "t"}, 2.0)]
    assert record_from_json(json.loads(json.dumps(record_to_json(record)))) == record

    # A state the Message center was never polled into: no such metric (not a calm 0).
    without = next_record(
        MetricsRecord(), outcome, tenant="t", state=State(), services={}, request_codes={}
    )
    assert without.messages_action_required is None
    names = {
        f.name
        for f in text_string_to_metric_families(prometheus.render(families(without)).decode())
    }
    assert "m365watch_messages_action_required" not in names
    # A record written before this metric existed still loads.
    assert record_from_json({"version": 1}).messages_action_required is None


def test_a_poll_with_messages_writes_the_action_required_gauge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
    # Ten days before MC237349's act-by date; the other captured posts have none.
    monkeypatch.setattr(wiring, "utc_now", lambda: datetime(2021, 7, 21, tzinfo=timezone.utc))
    textfile = tmp_path / "m365watch.prom"
    config = write_config(tmp_path, extra=f'[messages]\n\n[metrics]\ntextfile = "{textfile}"\n')
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(f"{graph}/issues", json={"value": []})
        rsps.get(
            f"{graph}/messages",
            json=load_json("cli-microsoft365-message-list.json"),
        )
        rsps.get(f"{graph}/healthOverviews", json={"value": []})
        result = invoke(config, "poll")
    assert result.exit_code == 0, result.output
    parsed = parse(textfile.read_text())
    assert value(parsed, "m365watch_messages_action_required", tenant=TENANT) == 1
