"""`m365watch messages` and `show MC…` end to end: real MSAL, GraphClient and TinyDB state.

Graph and the identity platform are mocked with `responses`; every other part is
real. The posts are real captures (tests/data/cli-microsoft365-message-*.json, the
CLI for Microsoft 365's docs example MC267581) and Microsoft's PascalCase example
(docs-beta2021-*-message*.json). The clock is fixed through ``m365watch.wiring.utc_now``
at 2021-07-21 12:00 UTC, ten days before MC237349's act-by date.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import responses

from m365watch import wiring
from m365watch.store import StateStore
from tests.command_line import invoke, write_config
from tests.helpers import SLACK_WEBHOOK, load_json, probe, text_of
from tests.identity import mock_identity

GRAPH = "https://graph.microsoft.com/v1.0/admin/serviceAnnouncement"
NOW = datetime(2021, 7, 21, 12, 0, tzinfo=timezone.utc)
ADMIN = "https://admin.microsoft.com/Adminportal/Home#/MessageCenter/:/messages/"


def real_posts() -> list[dict[str, Any]]:
    """Every sample post: four captured, MC267581 (docs), MC172851 (PascalCase, ended)."""
    posts: list[dict[str, Any]] = [
        *load_json("cli-microsoft365-message-list.json")["value"],
        load_json("cli-microsoft365-docs-message-get.json"),
        *load_json("docs-beta2021-list-messages.json")["value"],
    ]
    return copy.deepcopy(posts)


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: NOW)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    # Nothing registered means any request at all fails the test.
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def run(config: Path, *args: str, columns: int = 80) -> Any:
    return invoke(config, *args, env={"COLUMNS": str(columns)})


def mock_messages(rsps: responses.RequestsMock, posts: list[dict[str, Any]]) -> Any:
    mock_identity(rsps)
    return rsps.get(f"{GRAPH}/messages", json={"value": posts})


def ids(result: Any) -> list[str]:
    assert result.exit_code == 0, result.output
    return [m["id"] for m in json.loads(result.stdout)["messages"]]


# -- messages, live --------------------------------------------------------------------------


MESSAGES_TABLE = textwrap.dedent(
    """\
    Message center posts, newest first (6)
    ID         Post: category · services · updated · act by
    ────────────────────────────────────────────────────────────────────────────────
    MC267581   Plan for change · SharePoint Online · 2022-06-07
               (Updated) Microsoft Lists: Custom list templates
    MC248201   Plan for change · SharePoint Online, Power BI · 2022-01-11
               (Updated) Quick Create – Easily Create Power BI Reports from Lists
    MC247825   Plan for change · Microsoft Teams · 2021-03-30
               Teams for your personal life banners
    MC237741   Plan for change · Exchange Online · 2021-02-04
               Basic Authentication and Exchange Online – February 2021 Update
    MC237349   Plan for change · Skype for Business · 2021-02-01 · act by 2021-07-31
               Service reminder: Skype for Business Online retires in 6 months
    MC172851   Stay informed · SharePoint Online, OneDrive for Business · 2021-01-08
               (Updated) New feature: Changes to PowerPoint and Word to open files …
    """
)


def test_messages_table_fits_80_columns_newest_first_with_act_by(
    config: Path, rsps: responses.RequestsMock
) -> None:
    listed = mock_messages(rsps, real_posts())
    result = run(config, "messages")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == MESSAGES_TABLE
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    # Every post, in as few pages as Graph allows, whether [messages] is configured or not.
    assert listed.calls[0].request.headers["Prefer"] == "odata.maxpagesize=1000"


def test_a_wide_terminal_gives_each_field_a_column(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_messages(rsps, real_posts()[:5])
    result = run(config, "messages", "--service", "skype", "--service", "exchange", columns=150)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == textwrap.dedent(
        """\
        Message center posts, newest first (2)
        ID         Category          Services             Updated      Act by       Title
        ───────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────
        MC237741   Plan for change   Exchange Online      2021-02-04                Basic Authentication and Exchange Online – February 2021 Update
        MC237349   Plan for change   Skype for Business   2021-02-01   2021-07-31   Service reminder: Skype for Business Online retires in 6 months
        """
    )


def test_no_post_matching_says_so(config: Path, rsps: responses.RequestsMock) -> None:
    mock_messages(rsps, real_posts())
    result = run(config, "messages", "--category", "preventorfixissue")
    assert (result.exit_code, result.stdout) == (0, "No Message center posts.\n")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["MC267581", "MC248201", "MC247825", "MC237741", "MC237349", "MC172851"]),
        (("--category", "STAYINFORMED"), ["MC172851"]),  # sent as PascalCase StayInformed
        (("--category", "planForChange", "--major"), ["MC248201", "MC247825"]),
        (("--service", "power bi"), ["MC248201"]),
        (("--service", "SharePoint Online"), ["MC267581", "MC248201", "MC172851"]),
        (("--service", "teams", "--service", "Skype for Business"), ["MC247825", "MC237349"]),
        (("--action-required",), ["MC237349"]),
        (("--since", "0.5"), ["MC267581", "MC248201"]),  # edited after "now": still recent
        (("--since", "120"), ["MC267581", "MC248201", "MC247825"]),
        (("--since", "120", "--major", "--service", "teams"), ["MC247825"]),
    ],
    ids=[
        "all",
        "category-any-case",
        "category-and-major",
        "service-part",
        "service-several-posts",
        "services-or",
        "action-required",
        "since-half-a-day",
        "since-120-days",
        "combined",
    ],
)
def test_messages_filters(
    config: Path, rsps: responses.RequestsMock, args: tuple[str, ...], expected: list[str]
) -> None:
    mock_messages(rsps, real_posts())
    assert ids(run(config, "messages", "--json", *args)) == expected


def test_an_act_by_date_that_has_passed_is_not_action_required(
    config: Path, rsps: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wiring, "utc_now", lambda: datetime(2021, 8, 1, tzinfo=timezone.utc))
    mock_messages(rsps, real_posts())
    assert ids(run(config, "messages", "--json", "--action-required")) == []


def test_messages_json_contract(config: Path, rsps: responses.RequestsMock) -> None:
    mock_messages(rsps, real_posts())
    result = run(config, "messages", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert list(data) == ["generated", "source", "cachedAt", "messages"]
    assert (data["generated"], data["source"], data["cachedAt"]) == (
        "2021-07-21T12:00:00Z",
        "graph",
        None,
    )
    by_id = {m["id"]: m for m in data["messages"]}
    assert by_id["MC237349"] == {
        "id": "MC237349",
        "title": "Service reminder: Skype for Business Online retires in 6 months",
        "category": "planForChange",
        "severity": "normal",
        "tags": ["User impact", "Admin impact"],
        "isMajorChange": False,
        "actionRequiredByDateTime": "2021-07-31T07:00:00Z",
        "services": ["Skype for Business"],
        "startDateTime": "2021-02-01T19:23:04Z",
        "endDateTime": "2022-01-31T08:00:00Z",
        "lastModifiedDateTime": "2021-02-01T19:24:37.837Z",
        "url": ADMIN + "MC237349",
    }
    # Microsoft's example sends PascalCase: camelCase out.
    pascal = by_id["MC172851"]
    assert (pascal["category"], pascal["severity"], pascal["isMajorChange"]) == (
        "stayInformed",
        "normal",
        True,
    )


def test_odd_posts_are_listed_as_sent_and_malformed_ones_skipped_with_a_warning(
    config: Path, rsps: responses.RequestsMock
) -> None:
    odd = {
        "id": "MC1085564",
        "title": None,
        "category": "brandNewCategory",
        "severity": "unknownFutureValue",
        "tags": None,
        "isMajorChange": None,
        "actionRequiredByDateTime": "not a date",
        "services": [None, 42, "Microsoft Teams"],
        "details": [{"name": "FeatureStatusJson", "value": None}, "junk", {"value": "no name"}],
        "body": None,
    }
    bare = {"id": "MC54091"}  # everything else missing
    mock_messages(rsps, [odd, bare, {"title": "no id"}, *real_posts()[:1]])
    result = run(config, "messages", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "m365watch: WARNING: 1 messages from Graph had no id and were ignored\n"
    )
    by_id = {m["id"]: m for m in json.loads(result.stdout)["messages"]}
    assert by_id["MC1085564"] == {
        "id": "MC1085564",
        "title": "",
        "category": "brandNewCategory",
        "severity": "unknownFutureValue",
        "tags": [],
        "isMajorChange": None,
        "actionRequiredByDateTime": None,
        "services": ["Microsoft Teams"],
        "startDateTime": None,
        "endDateTime": None,
        "lastModifiedDateTime": None,
        "url": ADMIN + "MC1085564",
    }
    assert by_id["MC54091"]["category"] is None
    # The table shows them too, posts without a date last.
    rsps.get(f"{GRAPH}/messages", json={"value": [odd, bare, *real_posts()[:1]]})
    table = run(config, "messages")
    assert (table.exit_code, table.stderr) == (0, "")
    assert table.stdout.splitlines()[-4:] == [
        "MC1085564   brandNewCategory · Microsoft Teams · unknown",
        "",
        "MC54091     Unknown · none · unknown",
        "",
    ]


def test_an_unknown_service_is_a_usage_error(config: Path, rsps: responses.RequestsMock) -> None:
    mock_messages(rsps, real_posts())
    result = run(config, "messages", "--service", "Skipe for Business")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "Error: --service 'Skipe for Business' matches no service; "
        "the closest: 'Skype for Business', 'OneDrive for Business'\n"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--since", "-1"), "-1 is not a number of days, 0 or more."),
        (("--since", "nan"), "nan is not a number of days, 0 or more."),
        (("--category", "someday"), "'someday' is not one of"),
    ],
    ids=["since-negative", "since-nan", "category-unknown"],
)
def test_bad_options_are_usage_errors_before_any_request(
    config: Path, rsps: responses.RequestsMock, args: tuple[str, ...], said: str
) -> None:
    result = run(config, "messages", *args)
    assert result.exit_code == 2
    assert said in result.stderr
    assert len(rsps.calls) == 0


def test_a_403_names_the_permission_and_exits_1(config: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(rsps)
    rsps.get(f"{GRAPH}/messages", status=403, json={"error": {"code": "Forbidden"}})
    result = run(config, "messages")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "Error: Graph answered 403 Forbidden: grant the application permission "
        "ServiceMessage.Read.All to the app registration and have an admin grant consent\n"
    )


def test_help_lists_the_exit_codes(config: Path) -> None:
    result = run(config, "messages", "--help")
    assert result.exit_code == 0
    assert "Exit codes:\n" in result.stdout and "  1   runtime failure" in result.stdout
    assert "--action-required" in result.stdout and "--tenant NAME" in result.stdout


# -- messages --cached -------------------------------------------------------------------------


def poll_with_messages(tmp_path: Path, posts: list[dict[str, Any]]) -> Path:
    """A real poll with [messages]: the state file the cached answers read."""
    config = write_config(tmp_path, extra="[messages]\n")
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(f"{GRAPH}/issues", json={"value": []})
        rsps.get(f"{GRAPH}/messages", json={"value": posts})
        result = invoke(config, "poll")
    assert result.exit_code == 0, result.output
    return config


def test_cached_messages_read_the_state_and_say_how_old_it_is(
    tmp_path: Path, rsps: responses.RequestsMock
) -> None:
    config = poll_with_messages(tmp_path, real_posts())
    result = run(config, "messages", "--cached")
    assert (result.exit_code, result.stderr) == (0, "")
    note, blank, *table = result.stdout.splitlines(keepends=True)
    assert note.startswith("From the local state, as of the last poll just now (")
    assert (blank, "".join(table)) == ("\n", MESSAGES_TABLE)

    as_json = run(config, "messages", "--cached", "--json", "--action-required")
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    assert (data["source"], [m["id"] for m in data["messages"]]) == ("cache", ["MC237349"])
    assert data["cachedAt"] is not None
    assert as_json.stderr.startswith("Note: From the local state, as of the last poll")


def test_cached_messages_leave_out_posts_gone_from_the_feed(tmp_path: Path) -> None:
    posts = real_posts()
    config = poll_with_messages(tmp_path, posts)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/issues", json={"value": []})
        rsps.get(f"{GRAPH}/messages", json={"value": posts[1:]})  # MC237349 expired
        assert invoke(config, "poll").exit_code == 0
    assert "MC237349" not in ids(run(config, "messages", "--cached", "--json"))
    shown = run(config, "show", "MC237349", "--cached")
    assert shown.exit_code == 0
    assert "Not in Microsoft's feed since 2021-07-21 12:00 UTC" in shown.stdout


def test_cached_messages_without_a_poll_with_messages_say_what_to_do(
    config: Path, rsps: responses.RequestsMock
) -> None:
    state = config.parent / "state" / "state.json"
    missing = run(config, "messages", "--cached")
    assert (missing.exit_code, missing.stdout) == (1, "")
    assert missing.stderr == (
        f"Error: there is no local state yet ({state}): run `m365watch poll` first, "
        "or leave out --cached\n"
    )
    with responses.RequestsMock() as graph:
        mock_identity(graph)
        graph.get(f"{GRAPH}/issues", json={"value": []})
        assert invoke(config, "poll").exit_code == 0  # no [messages]: issues only
    result = run(config, "messages", "--cached")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: the local state ({state}) has no Message center posts: add [messages] to "
        "the configuration and run `m365watch poll`, or leave out --cached\n"
    )


# -- show MC… ------------------------------------------------------------------------------------


MC001337_TEXT = textwrap.dedent(
    """\
    MC001337 · Message center: Plan for change
    Service reminder: Skype for Business Online retires in 6 months

    Category      Plan for change
    Severity      Normal
    Major change  no
    Services      Skype for Business
    Tags          User impact, Admin impact
    Act by        2021-07-31 07:00 UTC (in 9 days)
    Published     2021-02-01 19:23 UTC (169 days ago)
    Ends          2022-01-31 08:00 UTC (in 193 days)
    Last updated  2021-02-01 19:24 UTC (169 days ago)
    Admin center  https://admin.microsoft.com/Adminportal/Home#/MessageCenter/:/messages/MC001337

    Details
    BlogLink: https://techcommunity.microsoft.com/t5/microsoft-teams-blog/skype-for-business-online-will-retire-in-12-months-plan-for-a/ba-p/1554531
    ExternalLink: https://docs.microsoft.com/microsoftteams/skype-for-business-online-retirement

    The post
    Originally announced in MC219641 (July '20), as Microsoft Teams has become the
    core communications client for Microsoft 365, this is a reminder the Skype for
    Business Online service will retire July 31, 2021
    (https://techcommunity.microsoft.com/t5/microsoft-teams-blog/skype-for-business-online-will-retire-in-12-months-plan-for-a/ba-p/1554531).
    At that point, access to the service will end.

    Please click Additional Information to learn more.
    """
)


def test_show_a_post_live(config: Path, rsps: responses.RequestsMock) -> None:
    mock_identity(rsps)
    rsps.get(
        f"{GRAPH}/messages/MC001337", json=load_json("cli-microsoft365-message-get-MC001337.json")
    )
    result = run(config, "show", "mc001337")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == MC001337_TEXT


def test_show_a_post_as_json_adds_text_and_details(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    rsps.get(f"{GRAPH}/messages/MC172851", json=load_json("docs-beta2021-get-message.json"))
    result = run(config, "show", "MC172851", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    data = json.loads(result.stdout)
    assert list(data) == [
        "id",
        "title",
        "category",
        "severity",
        "tags",
        "isMajorChange",
        "actionRequiredByDateTime",
        "services",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "url",
        "text",
        "details",
    ]
    assert (data["category"], data["severity"]) == ("stayInformed", "normal")
    assert data["text"].startswith("Updated January 07, 2021: Based on learnings")
    assert data["details"] == [
        {
            "name": "ExternalLink",
            "value": "https://support.office.com/article/office-document-cache-settings-"
            "4b497318-ae4f-4a99-be42-b242b2e8b692",
        }
    ]


def test_show_a_long_html_post_as_text_with_its_links(
    config: Path, rsps: responses.RequestsMock
) -> None:
    mock_identity(rsps)
    rsps.get(f"{GRAPH}/messages/MC267581", json=load_json("cli-microsoft365-docs-message-get.json"))
    result = run(config, "show", "MC267581", "--json")
    text = json.loads(result.stdout)["text"]
    assert "<" not in text.replace("<at>", "")  # no markup left
    assert "Roadmap ID: 70753 (https://www.microsoft.com/microsoft-365/roadmap?filters=" in text
    assert "\n- Roll-out: tenant level" in text


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, {"error": {"code": "NotFound", "message": "The requested resource doesn't exist."}}),
        # What Graph really answered for a post that does not exist (JSON nested in message).
        (403, load_json("cli-microsoft365-message-get-error-resource-not-exist.json")),
    ],
    ids=["404", "real-unknown-error"],
)
def test_show_of_a_missing_post_is_exit_4_like_a_missing_issue(
    config: Path, rsps: responses.RequestsMock, status: int, body: dict[str, Any]
) -> None:
    mock_identity(rsps)
    rsps.get(f"{GRAPH}/messages/MC9999999", status=status, json=body)
    result = run(config, "show", "MC9999999")
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == "Error: Message center post MC9999999 does not exist in this tenant\n"


def test_show_cached_post_and_a_missing_one(tmp_path: Path) -> None:
    config = poll_with_messages(tmp_path, real_posts())
    result = run(config, "show", "mc237349", "--cached")
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.startswith("From the local state, as of the last poll just now (")
    assert "\nMC237349 · Message center: Plan for change\n" in result.stdout
    assert "\nBlogLink: https://techcommunity.microsoft.com/" in result.stdout
    assert "- Support for the integration of third-party party Audio Conferencing" in (
        result.stdout
    )
    as_json = run(config, "show", "MC237349", "--cached", "--json")
    assert json.loads(as_json.stdout)["details"][1]["name"] == "ExternalLink"
    missing = run(config, "show", "MC9999999", "--cached")
    assert (missing.exit_code, missing.stdout) == (4, "")
    assert missing.stderr.startswith(
        "Error: Message center post MC9999999 is not in the local state"
    )


def test_show_still_shows_issues(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    issue = load_json("cli-microsoft365-healthissue-get-CR275975.json")
    with responses.RequestsMock() as rsps:
        mock_identity(rsps)
        rsps.get(f"{GRAPH}/issues/CR275975", json=issue)
        result = run(config, "show", "CR275975", "--json")
    assert (result.exit_code, json.loads(result.stdout)["id"]) == (0, "CR275975")


# -- poll --notify-existing ----------------------------------------------------------------------


def test_notify_existing_announces_the_posts_on_the_first_poll_with_messages(
    tmp_path: Path,
) -> None:
    issues = load_json("cli-microsoft365-healthissue-list.json")["value"]
    with responses.RequestsMock() as rsps:  # the issues feed has its baseline already
        mock_identity(rsps)
        rsps.get(f"{GRAPH}/issues", json={"value": issues})
        assert invoke(write_config(tmp_path), "poll").exit_code == 0
    config = write_config(tmp_path, extra="[messages]\n")
    with responses.RequestsMock() as rsps:
        rsps.get(f"{GRAPH}/issues", json={"value": issues})
        rsps.get(f"{GRAPH}/messages", json={"value": real_posts()})
        slack = rsps.post(SLACK_WEBHOOK, body="ok")
        result = invoke(config, "poll", "--notify-existing")
    assert result.exit_code == 0, result.output
    sent = sorted({post for c in slack.calls for post in ids_in(text_of(c.request))})
    assert len(slack.calls) == len(sent)  # one message per post
    # Every post not ended yet (MC172851 ended in 2019); no issue is sent again.
    assert sent == ["MC237349", "MC237741", "MC247825", "MC248201", "MC267581"]
    state = StateStore(config.parent / "state" / "state.json").load()
    assert state.outbox == ()


def ids_in(text: str) -> list[str]:
    """The Message center post ids a Slack payload names in its title."""
    return re.findall(r"\[Message center\] (MC[0-9]+)", text)


# -- what the commands load ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (("messages", "--cached"), ["rich", "tinydb"]),
        (("messages", "--cached", "--json"), ["tinydb"]),
        (("show", "MC237349", "--cached", "--json"), ["tinydb"]),
    ],
    ids=["messages-cached", "messages-cached-json", "show-post-cached-json"],
)
def test_cached_message_commands_load_no_network_library(
    tmp_path: Path, args: tuple[str, ...], loaded: list[str]
) -> None:
    config = poll_with_messages(tmp_path, real_posts())
    config.write_text(f'[state]\npath = "{tmp_path / "state" / "state.json"}"\n')
    assert probe("-c", str(config), *args) == {"code": 0, "loaded": loaded}


def test_the_graph_client_asks_only_for_message_ids(rsps: responses.RequestsMock) -> None:
    from m365watch.errors import NotFoundError
    from m365watch.graph import GraphClient

    client = GraphClient(graph_endpoint="https://graph.microsoft.com", get_token=lambda d: "t")
    for bad in ("EX1256020", "MC12/../issues", "MC"):
        with pytest.raises(NotFoundError, match="is not a Message center post id"):
            client.get_message(bad)
    assert len(rsps.calls) == 0
