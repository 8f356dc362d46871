"""Tests for m365watch.posts: Microsoft's post bodies as paragraphs, bullets and links.

Payloads under tests/data/ are copied unchanged from /work/shared/graph-samples
(see its README and tests/test_models.py for provenance).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from m365watch.messages import post_text
from m365watch.models import Post
from m365watch.posts import Block, Link, defuse, shorten_blocks, text_blocks
from tests.helpers import DATA

TAG = re.compile(r"</?[a-zA-Z][^>]*>")
ZWSP = "\u200b"


def html_contents() -> list[tuple[str, str]]:
    """Every HTML post description and Message center body in tests/data."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            if str(value.get("contentType", "")).lower() == "html" and value.get("content"):
                found.append((where, value["content"]))
            for key, inner in value.items():
                walk(inner, f"{where}/{key}")
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                walk(inner, f"{where}[{index}]")

    for path in sorted(DATA.glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")), path.stem)
    return found


def html_post_text(content: str, *, markdown_links: bool = False) -> str:
    """How a post whose HTML content is ``content`` reads as text (or Markdown)."""
    post = Post(created=None, post_type=None, content=content, content_type="html")
    return post_text(post, markdown_links=markdown_links)


# --- post HTML as text ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "markdown_links", "expected"),
    [
        (
            '<p>Use <a href="https://outlook.office.com/mail/">Outlook on the web</a> now.</p>',
            False,
            "Use Outlook on the web (https://outlook.office.com/mail/) now.",
        ),
        (
            '<p>Use <a href="https://outlook.office.com/mail/">Outlook on the web</a> now.</p>',
            True,
            "Use [Outlook on the web](https://outlook.office.com/mail/) now.",
        ),
        (
            '<a href="https://x.test/a?b=1&amp;c=2">https://x.test/a?b=1&amp;c=2</a>',
            False,
            "https://x.test/a?b=1&c=2",
        ),
        ('see <a href="https://x.test/">  </a> here', False, "see https://x.test/ here"),
        ('<a href="javascript:alert(1)">click</a> <a href="#top">top</a>', False, "click top"),
        (
            "<p>Users can&#39;t sign in &amp; we&#8217;re on it</p>",
            False,
            "Users can't sign in & we’re on it",
        ),
        (
            "<p>Status:</p><ul><li>Outlook mobile: affected</li><li>New Outlook for Mac: affected</li></ul><p>Next</p>",
            False,
            "Status:\n\n- Outlook mobile: affected\n- New Outlook for Mac: affected\n\nNext",
        ),
        ("<ol><li>One</li><li>Two</li></ol>", False, "- One\n- Two"),
        (
            "<style>p { color: red }</style><p>Visible</p><script>alert('x')</script>",
            False,
            "Visible",
        ),
        ("line one<br>line two<br/>line three", False, "line one\nline two\nline three"),
        ("<p>a   lot\n  of\tspace</p>", False, "a lot of space"),
        (
            "Title: A\n\nUser Impact: B\n\n\n\nCurrent status: C &amp; D",
            False,
            "Title: A\n\nUser Impact: B\n\nCurrent status: C & D",
        ),
        ("  Title: A  \r\n\r\nMore: B  ", False, "Title: A\n\nMore: B"),
        ("", False, ""),
        ("1 < 2 and 3 > 2", False, "1 < 2 and 3 > 2"),
        ('<p><a href="https://x.test/">unclosed', False, "unclosed (https://x.test/)"),
    ],
    ids=[
        "link-text-and-url",
        "link-markdown",
        "link-text-is-url",
        "link-without-text",
        "script-and-anchor-links-dropped",
        "entities-decoded",
        "list-items-become-dash-lines",
        "ordered-list",
        "script-and-style-dropped",
        "br-is-newline",
        "whitespace-collapsed",
        "plain-text-blank-lines-kept",
        "plain-text-crlf-and-edges",
        "empty",
        "plain-text-with-angle-brackets",
        "unclosed-link",
    ],
)
def test_post_html_as_text(content: str, markdown_links: bool, expected: str) -> None:
    assert html_post_text(content, markdown_links=markdown_links) == expected


HTML_CONTENTS = html_contents()


def test_samples_hold_long_html() -> None:
    assert len(HTML_CONTENTS) >= 20
    assert max(len(c) for _, c in HTML_CONTENTS) > 3000


@pytest.mark.parametrize(("where", "content"), HTML_CONTENTS, ids=[w for w, _ in HTML_CONTENTS])
def test_real_html_bodies_become_text_without_tags(where: str, content: str) -> None:
    for markdown_links in (False, True):
        text = html_post_text(content, markdown_links=markdown_links)
        assert TAG.search(text) is None
        assert "&amp;" not in text and "&#" not in text
        for href in re.findall(r'href="([^"]+)"', content):
            assert href.replace("&amp;", "&") in text


def test_real_message_body_keeps_links_and_lists() -> None:
    body = json.loads((DATA / "cli-microsoft365-docs-message-get.json").read_text("utf-8"))["body"]
    text = html_post_text(body["content"])
    assert (
        "- Microsoft 365 Roadmap ID: 70753 "
        "(https://www.microsoft.com/microsoft-365/roadmap?filters=&searchterms=70753)"
    ) in text
    assert "- Targeted release (entire org): Complete" in text
    assert text.startswith("Updated June 7, 2022: We have updated the rollout timeline below.")


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [
        (
            "<p>We&#8217;re &ldquo;on it&rdquo;: Q&amp;A&nbsp;&amp; more</p>",
            "html",
            [Block(("We’re “on it”: Q&A & more",))],
        ),
        (
            'Use <a href="https://outlook.office.com/mail/">Outlook on the web</a>.',
            "html",
            [Block(("Use ", Link("Outlook on the web", "https://outlook.office.com/mail/"), "."))],
        ),
        (
            '<p><a href="javascript:alert(1)">click</a> <a href="#top">top</a><script>x()</script></p>',
            "html",
            [Block(("click top",))],
        ),
        (
            "Title: X\nUser impact: Y\n\nMore info: see https://learn.microsoft.com/a_(b).",
            "text",
            [
                Block(("Title: X\nUser impact: Y",)),
                Block(
                    (
                        "More info: see ",
                        Link(
                            "https://learn.microsoft.com/a_%28b%29",
                            "https://learn.microsoft.com/a_%28b%29",
                        ),
                        ".",
                    )
                ),
            ],
        ),
        (
            "Current status: fixing\n\n- Outlook mobile: affected\n- Mac: affected",
            "text",
            [
                Block(("Current status: fixing",)),
                Block(("Outlook mobile: affected",), bullet=True),
                Block(("Mac: affected",), bullet=True),
            ],
        ),
        (
            'Title: X\nImpact: <a href="https://a.example/x">details</a>\n\nNext update: soon',
            "html",
            [
                Block(("Title: X\nImpact: ", Link("details", "https://a.example/x"))),
                Block(("Next update: soon",)),
            ],
        ),
        (
            "<ul><li>one<br>two</li><li>three</li></ul>",
            "html",
            [Block(("one\ntwo",), bullet=True), Block(("three",), bullet=True)],
        ),
        ("a < b & c &gt; d", "text", [Block(("a < b & c > d",))]),
    ],
    ids=[
        "entities-and-quotes",
        "link",
        "unsafe-links-and-script",
        "text-paragraphs-and-bare-url",
        "text-bullets",
        "html-without-block-tags-keeps-newlines",
        "html-list",
        "text-is-not-parsed-as-html",
    ],
)
def test_post_content_becomes_blocks(
    content: str, content_type: str, expected: list[Block]
) -> None:
    assert list(text_blocks(content, is_html=content_type == "html")) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<!channel> and <!here|here>", f"<{ZWSP}!channel> and <{ZWSP}!here|here>"),
        ("<@U024BE7LH> <#C024BE7LR>", f"<{ZWSP}@U024BE7LH> <{ZWSP}#C024BE7LR>"),
        ("<at>Everyone</at>", f"<{ZWSP}at>Everyone<{ZWSP}/at>"),
        ("@everyone @Here @channel @all", f"@{ZWSP}everyone @{ZWSP}Here @{ZWSP}channel @{ZWSP}all"),
        ("admin@here.example and a<b", "admin@here.example and a<b"),
    ],
    ids=[
        "slack-specials",
        "slack-ids",
        "teams-at",
        "plain-mass-mentions",
        "emails-and-lt-untouched",
    ],
)
def test_defuse_breaks_mentions_without_changing_what_people_read(text: str, expected: str) -> None:
    assert defuse(text) == expected
    assert defuse(text).replace(ZWSP, "") == text


def test_shorten_cuts_at_a_word_with_an_ellipsis() -> None:
    blocks = (Block(("one two three four five six",)), Block(("seven",)))
    assert shorten_blocks(blocks, 100) == (blocks, False)
    assert shorten_blocks(blocks, 15) == ((Block(("one two three…",)),), True)


@pytest.mark.parametrize(
    ("markdown_links", "expected"),
    [
        (False, "Use Outlook on the web (https://outlook.office.com/mail/).\n\n- it’s fine"),
        (True, "Use [Outlook on the web](https://outlook.office.com/mail/).\n\n- it’s fine"),
    ],
    ids=["text", "markdown"],
)
def test_post_text_keeps_link_urls(markdown_links: bool, expected: str) -> None:
    content = (
        '<p>Use <a href="https://outlook.office.com/mail/">Outlook on the web</a>.</p>'
        "<ul><li>it&#8217;s fine</li></ul>"
    )
    post = Post(created=None, post_type=None, content=content, content_type="html")
    assert post_text(post, markdown_links=markdown_links) == expected
