"""The Message center feed: parsing, changes, reminders, filters, rendering, one poll end to end.

Every post here is a real captured one (tests/data/cli-microsoft365-message-list.json,
Microsoft's PascalCase example docs-beta2021-list-messages.json), edited where a test
needs an edit.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch.config import parse_settings
from m365watch.errors import ConfigError
from m365watch.feeds import FEEDS
from m365watch.feeds.messages import (
    DUE,
    NEW,
    UPDATED,
    MessageChange,
    MessagesFeed,
    ServiceMessage,
)
from m365watch.notify import Notifier
from m365watch.poll import PollResult, issues_from, messages_from, run_poll
from m365watch.settings import MessagesSettings, PollSettings, TargetSettings
from m365watch.store import StateStore
from tests.command_line import invoke, write_config
from tests.helpers import SLACK_URL, SLACK_WEBHOOK, body_of, load_json, text_of
from tests.identity import TOKEN, mock_identity

GRAPH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
ACT_BY = datetime(2021, 7, 31, 7, 0, tzinfo=timezone.utc)  # MC237349's act-by date
SETTINGS = MessagesSettings()


def real_posts() -> list[dict[str, Any]]:
    posts: list[dict[str, Any]] = load_json("cli-microsoft365-message-list.json")["value"]
    return copy.deepcopy(posts)


def post(post_id: str = "MC237349") -> dict[str, Any]:
    return next(p for p in real_posts() if p["id"] == post_id)


def feed(now: datetime, settings: MessagesSettings = SETTINGS) -> MessagesFeed:
    return MessagesFeed(settings=settings, now=now)


def parsed(raw: dict[str, Any], now: datetime, settings: MessagesSettings = SETTINGS) -> Any:
    items, skipped = feed(now, settings).parse([raw])
    assert skipped == 0
    return items[0]


def change(
    before: dict[str, Any], after: dict[str, Any], now: datetime, **kw: Any
) -> MessageChange | None:
    f = feed(now, kw.pop("settings", SETTINGS))
    then = kw.pop("then", now)
    return f.diff(
        parsed(before, then, f.settings or SETTINGS), parsed(after, now, f.settings or SETTINGS)
    )


def edited(raw: dict[str, Any]) -> dict[str, Any]:
    """MC237349 as Microsoft might edit it: a later act-by date and one more paragraph."""
    out = copy.deepcopy(raw)
    out["actionRequiredByDateTime"] = "2021-09-30T07:00:00Z"
    out["lastModifiedDateTime"] = "2021-03-01T10:00:00.1234567Z"
    out["body"]["content"] = (
        "<p>Updated March 01, 2021: We have updated the retirement timeline below.</p>"
        + out["body"]["content"]
    )
    return out


# ----------------------------------------------------------------------------- parsing


def test_real_posts_parse_in_both_casings_and_malformed_ones_are_counted() -> None:
    docs = load_json("docs-beta2021-list-messages.json")["value"]
    raw = [*real_posts(), *docs, {"title": "no id"}, {"id": None}, {"id": "  "}]
    items, skipped = MessagesFeed().parse(raw)
    assert skipped == 3
    by_id = {p.id: p for p in items}
    assert set(by_id) >= {"MC237349", "MC237741", "MC247825", "MC248201", "MC172851"}
    pascal = by_id["MC172851"]
    assert (pascal.category, pascal.severity) == ("stayInformed", "normal")
    assert (pascal.category_text, pascal.severity_text) == ("Stay informed", "Normal")
    assert by_id["MC237349"].act_by == ACT_BY
    assert by_id["MC248201"].services == ("SharePoint Online", "Power BI")


def test_unknown_enums_are_kept_raw_and_missing_fields_tolerated() -> None:
    item = ServiceMessage.from_graph(
        {"id": "MC1085564", "category": "someNewCategory", "severity": None, "tags": None}
    )
    assert (item.category, item.category_text) == ("someNewCategory", "someNewCategory")
    assert (item.severity_text, item.tags, item.act_by, item.is_major) == (
        "Unknown",
        (),
        None,
        None,
    )


def test_records_round_trip_through_the_registered_feed() -> None:
    item = parsed(post(), ACT_BY - timedelta(days=3))
    assert item.reminded == (30.0, 7.0)
    registered = FEEDS["messages"]
    assert registered.from_record(json.loads(json.dumps(registered.to_record(item)))) == item
    c = change(post(), edited(post()), ACT_BY - timedelta(days=100))
    assert c is not None
    again = registered.change_from_record(json.loads(json.dumps(registered.change_to_record(c))))
    assert again == c


# ----------------------------------------------------------------------------- changes

NOW = ACT_BY - timedelta(days=100)


def test_last_modified_alone_or_markup_only_edits_are_not_an_update() -> None:
    later = post()
    later["lastModifiedDateTime"] = "2021-02-02T00:00:00Z"
    assert change(post(), later, NOW) is None
    markup = copy.deepcopy(later)
    markup["body"]["content"] = markup["body"]["content"].replace(
        "<p>Please note:</p>", "<p><b>Please note:</b></p>"
    )
    assert change(post(), markup, NOW) is None


def test_an_edit_names_the_changed_fields_and_only_the_added_paragraph() -> None:
    c = change(post(), edited(post()), NOW)
    assert c is not None and c.kinds == {UPDATED}
    assert [(f.label, f.old, f.new) for f in c.fields] == [
        ("Act by", "2021-07-31 07:00 UTC", "2021-09-30 07:00 UTC")
    ]
    assert c.added == ("Updated March 01, 2021: We have updated the retirement timeline below.",)
    assert c.removed == ()


def test_a_new_post_and_a_post_passing_the_filters_only_after_an_edit_are_new() -> None:
    assert change_kinds(None, post()) == {NEW}
    teams_only = MessagesSettings(services=("Microsoft Teams",))
    moved = post()
    moved["services"] = ["Skype for Business", "Microsoft Teams"]
    c = change(post(), moved, NOW, settings=teams_only)
    assert c is not None and c.kinds == {NEW}
    assert feed(NOW, teams_only).in_scope(c, PollSettings())
    gone = change(moved, post(), NOW, settings=teams_only)
    assert gone is not None and not feed(NOW, teams_only).in_scope(gone, PollSettings())


def change_kinds(before: dict[str, Any] | None, after: dict[str, Any]) -> set[str]:
    f = feed(NOW)
    c = f.diff(parsed(before, NOW) if before else None, parsed(after, NOW))
    return set(c.kinds) if c else set()


@pytest.mark.parametrize(
    ("settings", "passing"),
    [
        (MessagesSettings(), {"MC237349", "MC237741", "MC247825", "MC248201"}),
        (MessagesSettings(major_only=True), {"MC247825", "MC248201"}),
        (MessagesSettings(services=("power bi",)), {"MC248201"}),
        (MessagesSettings(tags=("Retirement",)), {"MC237741"}),
        (MessagesSettings(categories=("stayinformed",)), set()),
        (
            MessagesSettings(severities=("normal",)),
            {"MC237349", "MC237741", "MC247825", "MC248201"},
        ),
    ],
)
def test_filters(settings: MessagesSettings, passing: set[str]) -> None:
    f = feed(NOW, settings)
    items, _ = f.parse(real_posts())
    changes = [f.diff(None, i) for i in items]
    assert {c.item_id for c in changes if c and f.in_scope(c, PollSettings())} == passing


# ----------------------------------------------------------------------------- reminders


def kinds_over(polls: list[tuple[float, dict[str, Any]]]) -> list[tuple[float, set[str]]]:
    """Poll a post at days-before-ACT_BY; what each poll after the first found."""
    before = None
    out = []
    for days, raw in polls:
        f = feed(ACT_BY - timedelta(days=days))
        item = f.parse([raw])[0][0]
        if before is not None:
            c = f.diff(before, item)
            out.append((days, set(c.kinds) if c else set()))
        before = item
    return out


def test_reminders_at_30_and_7_days_fire_once_each() -> None:
    p = post()
    assert kinds_over(
        [(40, p), (31, p), (29.5, p), (29, p), (8, p), (6.9, p), (2, p), (-1, p)]
    ) == [
        (31, set()),
        (29.5, {DUE}),
        (29, set()),
        (8, set()),
        (6.9, {DUE}),
        (2, set()),
        (-1, set()),
    ]


def test_a_moved_date_re_arms_the_thresholds_still_ahead() -> None:
    p, later = post(), edited(post())  # edited: 61 days later
    result = kinds_over([(40, p), (6, p), (5, later), (-50, later), (-55, later)])
    # 5 days before the old date the new one is 66 days away; 55 after it, 6 days away.
    assert result == [(6, {DUE}), (5, {UPDATED}), (-50, {DUE}), (-55, {DUE})]


def test_a_post_first_seen_inside_a_window_does_not_fire_it_again() -> None:
    p = post()
    f = feed(ACT_BY - timedelta(days=10))
    first = f.parse([p])[0][0]
    assert f.diff(None, first) is not None and first.reminded == (30.0,)
    later = feed(ACT_BY - timedelta(days=9))
    assert later.diff(first, later.parse([p])[0][0]) is None
    fractions = MessagesFeed(
        MessagesSettings(remind_before_days=(0.5,)), ACT_BY - timedelta(hours=11)
    )
    assert fractions.parse([p])[0][0].reminded == (0.5,)


def test_render_of_new_updated_and_due() -> None:
    f = feed(ACT_BY - timedelta(days=6.9))
    new = f.render([MessageChange(post=parsed(post(), NOW), kinds=frozenset({NEW}))])
    assert (
        new.title
        == "[Message center] MC237349: Service reminder: Skype for Business Online retires in 6 months"
    )
    for fact in (
        "Plan for change",
        "Normal",
        "Skype for Business",
        "User impact, Admin impact",
        "2021-07-31 07:00 UTC",
    ):
        assert fact in new.text
    assert "Skype for Business Online customers will experience no change" in new.text
    assert (
        new.url == "https://admin.microsoft.com/Adminportal/Home#/MessageCenter/:/messages/MC237349"
    )
    updated = change(post(), edited(post()), NOW)
    assert updated is not None
    text = f.render([updated]).text
    assert "Act by: 2021-07-31 07:00 UTC → 2021-09-30 07:00 UTC" in text
    assert "Added: Updated March 01, 2021" in text
    assert "Please note" not in text
    p = post()
    due = kinds_over([(8, p), (6.9, p)])
    assert due == [(6.9, {DUE})]
    c = f.diff(feed(ACT_BY - timedelta(days=8)).parse([p])[0][0], f.parse([p])[0][0])
    assert c is not None
    assert "Action required by 2021-07-31 07:00 UTC, 7 days left" in f.render([c]).text
    assert "MC237349" in json.dumps(f.render([c]).payload("slack"))


# ----------------------------------------------------------------------------- config


def test_messages_config(tmp_path: Path) -> None:
    doc = {
        "messages": {
            "services": ["Microsoft Teams"],
            "major_only": True,
            "remind_before_days": [7, 0.5, 30],
        }
    }
    settings = parse_settings(doc, env={}, base_dir=tmp_path).messages
    assert settings == MessagesSettings(
        services=("Microsoft Teams",), major_only=True, remind_before_days=(30.0, 7.0, 0.5)
    )
    assert parse_settings({}, env={}, base_dir=tmp_path).messages is None
    assert (
        parse_settings({"messages": {}}, env={}, base_dir=tmp_path).messages == MessagesSettings()
    )
    for bad in ({"remind_before_days": [-1]}, {"categories": ["nope"]}, {"major": True}):
        with pytest.raises(ConfigError):
            parse_settings({"messages": bad}, env={}, base_dir=tmp_path)


# ----------------------------------------------------------------------------- polls


class Source:
    def __init__(self, issues: list[dict[str, Any]], messages: list[dict[str, Any]]) -> None:
        self.issues, self.messages = issues, messages

    def list_issues(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.issues)

    def list_messages(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.messages)


def run(tmp_path: Path, source: Source, now: datetime, **kw: Any) -> PollResult:
    targets = [TargetSettings(name="slack", urls=(SLACK_URL,), events=kw.pop("events", ()))]
    return run_poll(
        sources=[issues_from(source), messages_from(source, SETTINGS, now)],
        store=StateStore(tmp_path / "state.json"),
        make_sender=lambda: Notifier({t.name: t.urls for t in targets}, throttle=False),
        poll=PollSettings(),
        targets=targets,
        targets_fingerprint="fp",
        now=now,
    )


def slack_texts() -> list[str]:
    return [
        json.dumps(json.loads(body_of(c.request)))
        for c in responses.calls
        if c.request.url and c.request.url.startswith(SLACK_WEBHOOK)
    ]


@responses.activate
def test_polls_baseline_then_new_edit_and_reminders_each_once(tmp_path: Path) -> None:
    responses.post(SLACK_WEBHOOK, body="ok")
    posts = real_posts()
    t = ACT_BY - timedelta(days=40)
    first = run(tmp_path, Source([], posts[1:]), t)
    assert first.changes == () and slack_texts() == []
    run(tmp_path, Source([], posts), t + timedelta(hours=1))  # MC237349 is new
    texts = slack_texts()
    assert len(texts) == 1 and "MC237349" in texts[0] and "Skype for Business" in texts[0]
    run(
        tmp_path,
        Source([], [edited(p) if p["id"] == "MC237349" else p for p in posts]),
        t + timedelta(hours=2),
    )
    texts = slack_texts()
    assert len(texts) == 2 and "2021-09-30 07:00 UTC" in texts[1] and "Please note" not in texts[1]
    # The new date is 101 days away: nothing due; 29 days before it, one reminder.
    later = [edited(p) if p["id"] == "MC237349" else p for p in posts]
    due = datetime(2021, 9, 1, 7, 0, tzinfo=timezone.utc)
    run(tmp_path, Source([], later), due)
    run(tmp_path, Source([], later), due + timedelta(hours=1))
    texts = slack_texts()
    assert len(texts) == 3 and "29 days left" in texts[2]


@responses.activate
def test_messages_events_route_apart_from_issue_events(tmp_path: Path) -> None:
    responses.post(SLACK_WEBHOOK, body="ok")
    posts = real_posts()
    t = ACT_BY - timedelta(days=40)
    run(tmp_path, Source([], posts[1:]), t, events=("new",))
    result = run(tmp_path, Source([], posts), t, events=("new",))
    assert len(result.changes) == 1 and result.deliveries == ()
    assert FEEDS["messages"].wanted_by(
        result.changes[0], TargetSettings("x", (), events=("message-new",))
    )


def test_a_403_on_messages_still_delivers_the_issues_and_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="[messages]\n")
    issues = load_json("cli-microsoft365-healthissue-list.json")["value"]
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(f"{GRAPH}/issues", json={"value": issues[1:]})
        rsps.get(f"{GRAPH}/messages", json={"value": real_posts()})
        assert invoke(config, "poll").exit_code == 0
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/issues", json={"value": issues})
        rsps.get(
            f"{GRAPH}/messages", status=403, json={"error": {"code": "Forbidden", "message": "no"}}
        )
        slack = rsps.post(SLACK_WEBHOOK, body="ok")
        result = invoke(config, "poll")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "ServiceMessage.Read.All" in errors[0] and "consent" in errors[0]
    assert len(slack.calls) == 1 and issues[0]["id"] in text_of(slack.calls[0].request)


def test_the_first_poll_with_messages_is_its_own_baseline(tmp_path: Path) -> None:
    plain = write_config(tmp_path)
    issues = load_json("cli-microsoft365-healthissue-list.json")["value"]
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(f"{GRAPH}/issues", json={"value": issues})
        assert invoke(plain, "poll").exit_code == 0
    with_messages = write_config(tmp_path, extra="[messages]\n")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/issues", json={"value": issues})
        messages = rsps.get(f"{GRAPH}/messages", json={"value": real_posts()})
        result = invoke(with_messages, "poll")
        assert messages.calls[0].request.headers["Prefer"] == "odata.maxpagesize=1000"
    assert result.exit_code == 0, result.output
    assert "0 change(s)" in result.output


def test_list_messages_follows_next_links_and_a_403_names_the_permission() -> None:
    from m365watch.errors import GraphError
    from m365watch.graph import GraphClient

    client = GraphClient(graph_endpoint="https://graph.microsoft.com", get_token=lambda d: TOKEN)
    posts = real_posts()
    with responses.RequestsMock() as rsps:
        first = rsps.get(
            f"{GRAPH}/messages",
            json={"value": posts[:2], "@odata.nextLink": f"{GRAPH}/messages?$skiptoken=2"},
        )
        rsps.get(f"{GRAPH}/messages?$skiptoken=2", json={"value": posts[2:]})
        assert [p["id"] for p in client.list_messages()] == [p["id"] for p in posts]
        assert first.calls[0].request.headers["Prefer"] == "odata.maxpagesize=1000"
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/messages", status=403, json={"error": {"code": "Forbidden"}})
        with pytest.raises(GraphError, match=r"ServiceMessage\.Read\.All .*grant consent"):
            client.list_messages()


@responses.activate
def test_malformed_posts_are_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    posts = real_posts()
    t = ACT_BY - timedelta(days=40)
    with caplog.at_level("WARNING"):
        result = run(tmp_path, Source([], [*posts, {"title": "no id"}, {"id": ""}]), t)
    assert result.changes == ()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["2 messages from Graph had no id and were ignored"]
    assert set(StateStore(tmp_path / "state.json").load().items("messages")) == {
        p["id"] for p in posts
    }


def test_an_unchanged_post_is_compared_without_parsing_its_body(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 5,000 posts of 20 KB: parsing each body twice every poll took minutes (bench_messages.py).
    import m365watch.feeds.messages as feed_module

    def parsed_body(*args: Any) -> Any:
        raise AssertionError("an unchanged body was parsed")

    monkeypatch.setattr(feed_module, "body_changes", parsed_body)
    later = post()
    later["lastModifiedDateTime"] = "2021-02-02T00:00:00Z"
    later["actionRequiredByDateTime"] = "2021-09-30T07:00:00Z"
    assert change(post(), post(), NOW) is None
    moved = change(post(), later, NOW)
    assert moved is not None and [f.label for f in moved.fields] == ["Act by"]
