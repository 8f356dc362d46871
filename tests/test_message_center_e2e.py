"""The Message center end to end: the real CLI, every captured post, what each channel receives.

``m365watch poll`` runs in-process (click's CliRunner) with ``[messages]`` on
every real post in tests/data (the cli-microsoft365 captures and Microsoft's
PascalCase docs examples, copied unchanged from ../shared/graph-samples) and
takes it through new → updated → due. Four real Apprise targets: Teams
(Workflows) and Slack webhooks and a JSON receiver intercepted by `responses`,
and email to a real SMTP server on 127.0.0.1 (conftest's ``smtp_server``).
The clock is fixed through ``m365watch.wiring.utc_now``; Apprise's throttle is
off, as tests/helpers.py's notifiers have it.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch import wiring
from m365watch.feeds.messages import ServiceMessage, body_texts
from m365watch.sections import format_time
from tests.command_line import invoke, write_config
from tests.helpers import (
    SLACK_URL,
    SLACK_WEBHOOK,
    TEAMS_ENDPOINT,
    TEAMS_URL,
    body_of,
    json_strings,
    load_json,
)
from tests.identity import mock_identity

GRAPH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
JSON_ENDPOINT = "http://receiver.example.com/m365watch"
T0 = datetime(2021, 4, 1, 9, 0, tzinfo=timezone.utc)  # after every sample's start
ACT = T0 + timedelta(days=40)  # the act-by date every edited post gets
ADDED = "Updated April 01, 2021: We have updated the timeline below. Thank you for your patience."
LATER = "Updated May 04, 2021: The rollout is paused while we fix an issue."
SAMPLE_FILES = (
    "cli-microsoft365-message-list.json",
    "cli-microsoft365-message-list-filter-services-teams.json",
    "cli-microsoft365-message-get-MC001337.json",
    "cli-microsoft365-docs-message-list.json",
    "cli-microsoft365-docs-message-get.json",
    "docs-beta2021-list-messages.json",
    "docs-beta2021-get-message.json",
)
CHANNELS = ("teams", "slack", "email", "json")


def sample_posts() -> dict[str, list[dict[str, Any]]]:
    """Every captured post, by id; an id captured twice (list and get) has both versions."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name in SAMPLE_FILES:
        data = load_json(name)
        posts = data["value"] if isinstance(data, dict) and "value" in data else data
        for post in posts if isinstance(posts, list) else [posts]:
            versions = found.setdefault(post["id"], [])
            if post not in versions:
                versions.append(copy.deepcopy(post))
    return found


def first_versions() -> list[dict[str, Any]]:
    return [versions[0] for versions in sample_posts().values()]


def is_html(post: dict[str, Any]) -> bool:
    return str(post["body"]["contentType"]).lower() == "html"


def edited(post: dict[str, Any], paragraph: str, act_by: datetime | None = ACT) -> dict[str, Any]:
    """``post`` as Microsoft edits one: "(Updated)", its tag, a new act-by date, a paragraph."""
    out = copy.deepcopy(post)
    if not out["title"].startswith("(Updated)"):
        out["title"] = f"(Updated) {out['title']}"
    if "Updated message" not in out["tags"]:
        out["tags"] = ["Updated message", *out["tags"]]
    if act_by is not None:
        out["actionRequiredByDateTime"] = act_by.isoformat().replace("+00:00", "Z")
    content = out["body"]["content"]
    out["body"]["content"] = (
        f"<p>{paragraph}</p>{content}" if is_html(out) else f"{paragraph}\n\n{content}"
    )
    out["lastModifiedDateTime"] = "2021-04-01T12:00:00.1234567Z"
    return out


def markup_only(post: dict[str, Any]) -> dict[str, Any]:
    """``post`` with its markup (or, for a text body, its spacing) changed and its text not."""
    out = copy.deepcopy(post)
    content = out["body"]["content"]
    if is_html(out):
        content = re.sub(r"<p>", '<p style="margin:0">', content).replace("</p>", "</p>\n")
    else:
        content = content.replace(" ", "  ").replace("\n\n", "\n\n\n")
    out["body"]["content"] = content
    out["lastModifiedDateTime"] = "2021-04-20T08:00:00Z"
    return out


def unchanged_paragraph(post: dict[str, Any]) -> str:
    """A paragraph of ``post``'s body that no edit here touches (its longest)."""
    return max(body_texts(ServiceMessage.from_graph(post)), key=len)


# ----------------------------------------------------------------------------- harness


@dataclass(frozen=True)
class Received:
    """One message a channel received: its title and everything a person reads in it."""

    channel: str
    title: str
    text: str

    @property
    def post_id(self) -> str:
        match = re.search(r"\bMC\d+\b", self.title)
        assert match, self.title
        return match.group(0)


def readable(strings: list[str]) -> str:
    """The strings of a payload as read: Markdown escapes and Slack's entities undone."""
    text = html.unescape("\n".join(strings))
    return " ".join(re.sub(r"\\([\\`*_\]\[<>])", r"\1", text).split())


class Tenant:
    """A config with ``[messages]`` and four targets, polled through the CLI at a set time."""

    def __init__(self, tmp_path: Path, smtp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        handler, port = smtp
        self.smtp = handler
        email = f"mailto://127.0.0.1:{port}?from=m365watch@example.com&to=ops@example.com"
        notify = "".join(
            f'[[notify]]\nname = "{name}"\nurl = "{url}"\n\n'
            for name, url in (
                ("teams", TEAMS_URL),
                ("slack", SLACK_URL),
                ("email", email),
                ("json", JSON_ENDPOINT.replace("http://", "json://")),
            )
        )
        self.config = write_config(tmp_path, extra="[messages]\n", notify=notify)
        self.now = T0
        monkeypatch.setattr(wiring, "utc_now", lambda: self.now)
        build_sender = wiring.build_sender
        monkeypatch.setattr(wiring, "build_sender", functools.partial(build_sender, throttle=False))
        self.taken = dict.fromkeys(CHANNELS, 0)
        self.rsps = responses.RequestsMock(assert_all_requests_are_fired=False)

    def __enter__(self) -> Tenant:
        self.rsps.start()
        mock_identity(self.rsps)
        self.issues = self.rsps.get(f"{GRAPH}/issues", json={"value": []})
        self.messages = self.rsps.get(f"{GRAPH}/messages", json={"value": []})
        self.teams = self.rsps.post(TEAMS_ENDPOINT, status=202)
        self.slack = self.rsps.post(SLACK_WEBHOOK, body="ok")
        self.json = self.rsps.post(JSON_ENDPOINT)
        return self

    def __exit__(self, *exc: object) -> None:
        self.rsps.stop()
        self.rsps.reset()

    def poll(self, posts: list[dict[str, Any]], at: datetime, status: int = 200) -> Any:
        """One ``m365watch poll`` at ``at`` with the Message center serving ``posts``."""
        self.now = at
        body: Any = {"value": posts}
        self.rsps.replace(responses.GET, f"{GRAPH}/messages", json=body, status=status)
        return invoke(self.config, "poll")

    def received(self) -> dict[str, list[Received]]:
        """What each channel received since the last call."""
        everything = {
            "teams": [self._teams(c.request) for c in self.teams.calls],
            "slack": [self._slack(c.request) for c in self.slack.calls],
            "email": [self._email(m) for m in self.smtp.messages()],
            "json": [self._json(c.request) for c in self.json.calls],
        }
        new = {k: v[self.taken[k] :] for k, v in everything.items()}
        self.taken = {k: len(v) for k, v in everything.items()}
        return new

    def _teams(self, request: Any) -> Received:
        card = json.loads(body_of(request))["attachments"][0]["content"]
        shown = json_strings([card["body"], card.get("actions", [])])
        return Received("teams", card["fallbackText"], readable(shown))

    def _slack(self, request: Any) -> Received:
        [attachment] = json.loads(body_of(request))["attachments"]
        return Received("slack", attachment["fallback"], readable(json_strings(attachment)))

    def _email(self, message: Any) -> Received:
        text = message.get_body(preferencelist=("plain",)).get_content()
        return Received("email", str(message["Subject"]), " ".join(text.split()))

    def _json(self, request: Any) -> Received:
        body = json.loads(body_of(request))
        return Received("json", body["title"], readable([body["message"]]))


@pytest.fixture
def tenant(tmp_path: Path, smtp_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenant]:
    with Tenant(tmp_path, smtp_server, monkeypatch) as t:
        yield t


def by_post(received: dict[str, list[Received]]) -> dict[str, dict[str, str]]:
    """Each post's message text, per channel; fails unless every channel got one per post."""
    ids = {ch: sorted(r.post_id for r in got) for ch, got in received.items()}
    assert len({tuple(v) for v in ids.values()}) == 1, ids
    for channel, posts in ids.items():
        assert len(posts) == len(set(posts)), f"{channel} got a post twice: {posts}"
    out: dict[str, dict[str, str]] = {}
    for channel, got in received.items():
        for r in got:
            out.setdefault(r.post_id, {})[channel] = r.text
    return out


def summary(result: Any) -> str:
    """The poll's last line: its summary."""
    lines: list[str] = result.output.strip().splitlines()
    return lines[-1]


# ----------------------------------------------------------------------------- the walk


def test_every_captured_post_new_updated_due_in_every_channel(tenant: Tenant) -> None:
    posts = first_versions()
    ids = sorted(p["id"] for p in posts)
    assert ids == [
        "MC001337",
        "MC172851",
        "MC237349",
        "MC237741",
        "MC247825",
        "MC248201",
        "MC267581",
    ]

    # 1. The baseline: nothing sent.
    first = tenant.poll([], T0)
    assert first.exit_code == 0, first.output
    assert "First Message center poll: recorded 0 posts as the baseline" in first.output
    assert all(not got for got in tenant.received().values())

    # 2. Every captured post appears: one message-new per post in every channel.
    new = tenant.poll(posts, T0 + timedelta(hours=1))
    assert new.exit_code == 0, new.output
    assert summary(new) == (
        "0 issues, 0 change(s), 7 of 7 Message center posts changed, "
        "28 message(s) sent, 0 failed, 0 delivery(ies) pending."
    )
    messages = by_post(tenant.received())
    assert sorted(messages) == ids
    for post in posts:
        for channel, text in messages[post["id"]].items():
            where = f"{post['id']} in {channel}"
            assert "New Message center post" in text, where
            assert f"/MessageCenter/:/messages/{post['id']}" in text, where
            assert "<p>" not in text and "<li>" not in text, where  # the body as text
            assert unchanged_paragraph(post)[:60] in text, where
            if post["actionRequiredByDateTime"]:
                assert "Action required by 2021-07-31 07:00 UTC" in text, where

    # 3. Microsoft edits every post: what changed, and only that.
    updates = {p["id"]: edited(p, ADDED) for p in posts}
    # Microsoft's two examples of MC172851 differ in their text: the later one is the edit.
    docs_versions = sample_posts()["MC172851"]
    assert len(docs_versions) == 2
    updates["MC172851"] = edited(docs_versions[1], ADDED)
    updated = tenant.poll(list(updates.values()), T0 + timedelta(hours=2))
    assert updated.exit_code == 0, updated.output
    messages = by_post(tenant.received())
    assert sorted(messages) == ids
    for post in posts:
        old_act = post["actionRequiredByDateTime"]
        old_date = "none" if old_act is None else "2021-07-31 07:00 UTC"
        for channel, text in messages[post["id"]].items():
            where = f"{post['id']} in {channel}"
            assert "Updated by Microsoft:" in text, where
            assert f"Act by: {old_date} → {format_time(ACT)}" in text, where
            assert f"Added: {ADDED}" in text, where
            if post["title"].startswith("(Updated)"):
                assert "Title:" not in text, where
            else:
                assert f"Title: {post['title']} → (Updated) {post['title']}" in text, where
            assert "New Message center post" not in text, where
            # Not the whole body again: a paragraph no edit touched is left out (MC172851's
            # one paragraph is the one Microsoft's second example changed).
            if post["id"] != "MC172851":
                assert unchanged_paragraph(post)[:60] not in text, where
            # The act-by date is said once (not again as a fact or a line of its own).
            assert text.count(format_time(ACT)) == 1, where
            assert text.count("Act by") == 1, where
    mc172851 = messages["MC172851"]["email"]
    assert "Removed: Updated January 07, 2021" in mc172851
    assert "Thank you for your patience........" in mc172851

    # 4. Markup-only edits (and a new lastModifiedDateTime) are not updates.
    quiet = [markup_only(p) for p in updates.values()]
    again = tenant.poll(quiet, T0 + timedelta(days=1))
    assert again.exit_code == 0, again.output
    assert "0 of 7 Message center posts changed, 0 message(s) sent" in summary(again)
    assert all(not got for got in tenant.received().values())

    # 5. 29 days before the act-by date: one 30-day reminder per post, then none.
    due = tenant.poll(quiet, ACT - timedelta(days=29))
    assert due.exit_code == 0, due.output
    messages = by_post(tenant.received())
    assert sorted(messages) == ids
    for post_id, texts in messages.items():
        for channel, text in texts.items():
            assert f"Action required by {format_time(ACT)}, 29 days left" in text, (
                post_id,
                channel,
            )
            assert "Updated by Microsoft" not in text
    assert all(not got for got in tenant.received().values())
    tenant.poll(quiet, ACT - timedelta(days=28))
    assert all(not got for got in tenant.received().values())

    # 6. An edit and the 7-day reminder in the same poll: one message per post and channel.
    both = [edited(p, LATER, act_by=None) for p in quiet]
    last = tenant.poll(both, ACT - timedelta(days=6.9))
    assert last.exit_code == 0, last.output
    assert "7 of 7 Message center posts changed, 28 message(s) sent" in summary(last)
    for post_id, texts in by_post(tenant.received()).items():
        for channel, text in texts.items():
            where = f"{post_id} in {channel}"
            assert f"Added: {LATER}" in text, where
            assert f"Action required by {format_time(ACT)}, 7 days left" in text, where


# ----------------------------------------------------------------------------- reminders

ACT_BY = datetime(2021, 7, 31, 7, 0, tzinfo=timezone.utc)  # MC237349's act-by date


def mc237349() -> dict[str, Any]:
    return next(p for p in first_versions() if p["id"] == "MC237349")


def said(tenant: Tenant) -> list[str]:
    """The lines about MC237349 each channel got since the last call (the same in each)."""
    messages = by_post(tenant.received())
    assert set(messages) <= {"MC237349"}
    texts = messages.get("MC237349", {})
    found = [
        sorted(
            set(
                re.findall(
                    r"(New Message center post|Updated by Microsoft:|Act by: [^→]*→ "
                    r"\d{4}-\d\d-\d\d|Action required by [^,]*?UTC(?:, \d+ days? left)?)",
                    t,
                )
            )
        )
        for t in texts.values()
    ]
    assert all(f == found[0] for f in found), texts
    return found[0] if found else []


@pytest.mark.parametrize("in_baseline", [False, True], ids=["first-seen-new", "in-the-baseline"])
def test_a_post_first_seen_inside_a_window_gets_no_reminder_for_it(
    tenant: Tenant, in_baseline: bool
) -> None:
    post = mc237349()
    tenant.poll([post] if in_baseline else [], ACT_BY - timedelta(days=10))
    if not in_baseline:
        tenant.poll([post], ACT_BY - timedelta(days=10, hours=-1))
        # Its message-new is the 30-day reminder: it says the days left.
        assert said(tenant) == [
            "Action required by 2021-07-31 07:00 UTC, 10 days left",
            "New Message center post",
        ]
    assert said(tenant) == []
    tenant.poll([post], ACT_BY - timedelta(days=9))
    assert said(tenant) == []  # no 30-day reminder: it was inside that window when first seen
    tenant.poll([post], ACT_BY - timedelta(days=6.9))
    assert said(tenant) == ["Action required by 2021-07-31 07:00 UTC, 7 days left"]


def test_a_moved_act_by_date_re_arms_the_reminders(tenant: Tenant) -> None:
    post = mc237349()
    tenant.poll([post], ACT_BY - timedelta(days=40))
    for days in (29, 6.9):
        tenant.poll([post], ACT_BY - timedelta(days=days))
        assert said(tenant) == [f"Action required by 2021-07-31 07:00 UTC, {round(days)} days left"]
    moved_to = ACT_BY + timedelta(days=30)
    moved = edited(post, ADDED, act_by=moved_to)
    tenant.poll([moved], ACT_BY - timedelta(days=6))
    assert said(tenant) == ["Act by: 2021-07-31 07:00 UTC → 2021-08-30", "Updated by Microsoft:"]
    for days in (29, 6.9):
        tenant.poll([moved], moved_to - timedelta(days=days))
        assert said(tenant) == [f"Action required by 2021-08-30 07:00 UTC, {round(days)} days left"]
    tenant.poll([moved], moved_to - timedelta(days=1))
    assert said(tenant) == []


def test_a_failed_read_of_the_message_center_loses_nothing(tenant: Tenant) -> None:
    """Graph's captured error body: one readable Error line, exit 1; the next poll is as if
    the failed one had not happened (no post announced again, none missed)."""
    posts = first_versions()
    tenant.poll(posts[1:], T0)
    error = load_json("cli-microsoft365-message-get-error-resource-not-exist.json")
    tenant.rsps.replace(responses.GET, f"{GRAPH}/messages", json=error, status=403)
    tenant.now = T0 + timedelta(hours=1)
    failed = invoke(tenant.config, "poll")
    assert failed.exit_code == 1, failed.output
    [line] = [x for x in failed.stderr.splitlines() if x.startswith("Error:")]
    assert "ServiceMessage.Read.All" in line and "consent" in line
    assert "{" not in line and "Traceback" not in failed.output
    assert "Message center posts" not in failed.stdout  # not read: no count to give
    back = tenant.poll(posts, T0 + timedelta(hours=2))
    assert back.exit_code == 0, back.output
    assert sorted(by_post(tenant.received())) == [posts[0]["id"]]
