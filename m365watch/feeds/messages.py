"""The Message center feed (``/admin/serviceAnnouncement/messages``). Pure.

A :class:`ServiceMessage` is one Message center post; a :class:`MessageChange`
says what happened to it between two polls: ``new``, ``updated`` (field by field,
and the body's paragraphs added and removed) or ``due`` (an act-by reminder).

Reminders need the time of the poll, which :meth:`Feed.diff` is not given: the
wiring builds one :class:`MessagesFeed` per poll with ``now`` and the
``[messages]`` settings. The instance in :data:`m365watch.feeds.FEEDS` has
neither; it only reads stored records (which carry everything). Which reminder
thresholds were given for a post's act-by date is kept in its stored record
(``m365watchReminded``): :meth:`MessagesFeed.parse` marks every threshold the
post is already inside as given, so a post first seen (baseline or new) inside
a window does not fire it again, and :meth:`MessagesFeed.diff` fires a
threshold crossed since the last poll once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from m365watch.messages import Message, render_sections
from m365watch.models import format_timestamp, graph_text, parse_timestamp
from m365watch.posts import Block, clean_text, text_blocks
from m365watch.sections import (
    INFO,
    WARNING,
    Fact,
    Section,
    digest_title,
    format_time,
    with_tenants,
)
from m365watch.settings import MessagesSettings, PollSettings, TargetSettings

NAME = "messages"
NEW, UPDATED, DUE = "new", "updated", "due"
KIND_ORDER: tuple[str, ...] = (NEW, UPDATED, DUE)
ADMIN_URL = "https://admin.microsoft.com/Adminportal/Home#/MessageCenter/:/messages/{id}"
LABEL = "Message center"
ACT_BY_LABEL = "Act by"
# The key in a stored record holding the reminder thresholds (days) already given.
REMINDED_KEY = "m365watchReminded"
_ABSENT = object()

_CATEGORIES = {
    "preventorfixissue": ("preventOrFixIssue", "Prevent or fix issue"),
    "planforchange": ("planForChange", "Plan for change"),
    "stayinformed": ("stayInformed", "Stay informed"),
}
_SEVERITIES = {"normal": "Normal", "high": "High", "critical": "Critical"}


def _text(raw: object) -> str:
    return graph_text(raw) or ""


def _strings(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(t for t in (_text(v).strip() for v in raw) if t)


def _canonical(raw: str, known: Mapping[str, Any]) -> str:
    """Graph's camelCase word for a known enum value (any casing); unknown words kept raw."""
    key = raw.casefold()
    if key in known:
        value = known[key]
        return value[0] if isinstance(value, tuple) else key
    return raw


@dataclass(frozen=True)
class Detail:
    """One of a post's ``details``: a name Microsoft has not documented, and its value."""

    name: str
    value: str


def _details(raw: object) -> tuple[Detail, ...]:
    """``[{name, value}]``; entries that are not objects or have no name are left out."""
    if not isinstance(raw, list):
        return ()
    out = []
    for entry in raw:
        if isinstance(entry, Mapping):
            name = _text(entry.get("name")).strip()
            if name:
                out.append(Detail(name, _text(entry.get("value")).strip()))
    return tuple(out)


@dataclass(frozen=True)
class ServiceMessage:
    """One Message center post (Graph's serviceUpdateMessage)."""

    id: str
    title: str = ""
    category: str = ""  # preventOrFixIssue, planForChange, stayInformed, or Graph's raw word
    severity: str = ""  # normal, high, critical, or Graph's raw word
    is_major: bool | None = None
    act_by: datetime | None = None
    services: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    last_modified: datetime | None = None
    body: str = ""
    body_type: str = "html"
    reminded: tuple[float, ...] = ()  # thresholds (days) given for ``act_by``; largest first
    details: tuple[Detail, ...] = ()

    @classmethod
    def from_graph(cls, data: Mapping[str, Any]) -> ServiceMessage:
        """Parse Graph's JSON (or a stored record); ValueError when it has no id."""
        post_id = _text(data.get("id")).strip()
        if not post_id:
            raise ValueError("a Message center post without an id")
        body = data.get("body")
        content, content_type = "", "html"
        if isinstance(body, Mapping):
            content = _text(body.get("content"))
            content_type = "text" if _text(body.get("contentType")).lower() == "text" else "html"
        major = data.get("isMajorChange")
        reminded = data.get(REMINDED_KEY)
        return cls(
            id=post_id,
            title=_text(data.get("title")).strip(),
            category=_canonical(_text(data.get("category")).strip(), _CATEGORIES),
            severity=_canonical(_text(data.get("severity")).strip(), _SEVERITIES),
            is_major=major if isinstance(major, bool) else None,
            act_by=parse_timestamp(data.get("actionRequiredByDateTime")),
            services=_strings(data.get("services")),
            tags=_strings(data.get("tags")),
            start=parse_timestamp(data.get("startDateTime")),
            end=parse_timestamp(data.get("endDateTime")),
            last_modified=parse_timestamp(data.get("lastModifiedDateTime")),
            body=content,
            body_type=content_type,
            reminded=tuple(
                sorted(
                    {
                        float(v)
                        for v in (reminded if isinstance(reminded, list) else [])
                        if isinstance(v, (int, float)) and not isinstance(v, bool)
                    },
                    reverse=True,
                )
            ),
            details=_details(data.get("details")),
        )

    def to_graph(self) -> dict[str, Any]:
        """Graph's own shape (camelCase), plus the reminders given."""
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "severity": self.severity,
            "isMajorChange": self.is_major,
            "actionRequiredByDateTime": format_timestamp(self.act_by),
            "services": list(self.services),
            "tags": list(self.tags),
            "startDateTime": format_timestamp(self.start),
            "endDateTime": format_timestamp(self.end),
            "lastModifiedDateTime": format_timestamp(self.last_modified),
            "body": {"contentType": self.body_type, "content": self.body},
            "details": [{"name": d.name, "value": d.value} for d in self.details],
            REMINDED_KEY: list(self.reminded),
        }

    @property
    def url(self) -> str:
        """The post in the Microsoft 365 admin center."""
        return ADMIN_URL.format(id=self.id)

    @property
    def category_text(self) -> str:
        """``Plan for change``, or Graph's raw word."""
        known = _CATEGORIES.get(self.category.casefold())
        return known[1] if known else (self.category or "Unknown")

    @property
    def severity_text(self) -> str:
        """``Normal``, ``High``, ``Critical``, or Graph's raw word."""
        return _SEVERITIES.get(self.severity.casefold(), self.severity or "Unknown")

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The body as paragraphs and list items."""
        return text_blocks(self.body, is_html=self.body_type == "html")

    def content_key(self) -> tuple[Any, ...]:
        """Everything but ``lastModifiedDateTime``: what :meth:`MessagesFeed.same` compares."""
        return (
            self.title,
            self.category,
            self.severity,
            self.is_major,
            self.act_by,
            self.services,
            self.tags,
            self.start,
            self.end,
            self.body,
            self.body_type,
            self.reminded,
            self.details,
        )


def block_text(block: Block) -> str:
    """A block's text as people read it (link text, not URLs), whitespace collapsed."""
    text = "".join(p if isinstance(p, str) else p.text for p in block.parts)
    return " ".join(text.split())


def body_texts(post: ServiceMessage) -> list[str]:
    """The body's paragraphs and list items as text, empty ones left out."""
    return [t for t in (block_text(b) for b in post.blocks) if t]


def parse_messages(raw: Sequence[Mapping[str, Any]]) -> tuple[list[ServiceMessage], int]:
    """Posts from Graph's collection, and how many were skipped (no id, not an object)."""
    posts: list[ServiceMessage] = []
    skipped = 0
    for item in raw:
        try:
            if not isinstance(item, Mapping):
                raise TypeError("not an object")
            posts.append(ServiceMessage.from_graph({**item, REMINDED_KEY: []}))
        except (TypeError, ValueError):
            skipped += 1
    return posts, skipped


@dataclass(frozen=True)
class FieldChange:
    """One field of a post, old → new, as people read it."""

    label: str
    old: str
    new: str


@dataclass(frozen=True)
class MessageChange:
    """What happened to one post: new, updated (fields and body), due (a reminder)."""

    post: ServiceMessage
    kinds: frozenset[str]
    fields: tuple[FieldChange, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    due_days: float | None = None  # the reminder threshold crossed
    days_left: float | None = None  # days to the act-by date when it was crossed

    @property
    def item_id(self) -> str:
        """The post's id (MC237349)."""
        return self.post.id

    @property
    def silent(self) -> bool:
        """True when merged changes cancelled out."""
        return not self.kinds

    @property
    def events(self) -> tuple[str, ...]:
        """The ``[[notify]] events`` names of this change."""
        return tuple(f"message-{k}" for k in KIND_ORDER if k in self.kinds)

    def matches(self, events: Iterable[str]) -> bool:
        """True when a target subscribed to ``events`` (empty = everything) wants this change."""
        wanted = set(events)
        return not wanted or any(e in wanted for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored in the outbox."""
        return {
            "kinds": [k for k in KIND_ORDER if k in self.kinds],
            "post": self.post.to_graph(),
            "fields": [[f.label, f.old, f.new] for f in self.fields],
            "added": list(self.added),
            "removed": list(self.removed),
            "dueDays": self.due_days,
            "daysLeft": self.days_left,
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> MessageChange:
        """Inverse of :meth:`to_dict`; ValueError/KeyError/TypeError when malformed."""
        if not isinstance(record, Mapping) or not isinstance(record["post"], Mapping):
            raise TypeError("a message change record is not an object")
        kinds = frozenset(str(k) for k in record["kinds"])
        if not kinds <= set(KIND_ORDER):
            raise ValueError(f"unknown message change kinds: {sorted(kinds)}")
        fields = tuple(FieldChange(str(a), str(b), str(c)) for a, b, c in record.get("fields", []))

        def number(key: str) -> float | None:
            value = record.get(key)
            return float(value) if isinstance(value, (int, float)) else None

        return cls(
            post=ServiceMessage.from_graph(record["post"]),
            kinds=kinds,
            fields=fields,
            added=tuple(str(t) for t in record.get("added", [])),
            removed=tuple(str(t) for t in record.get("removed", [])),
            due_days=number("dueDays"),
            days_left=number("daysLeft"),
        )


def _day(value: datetime | None) -> str:
    return format_time(value) if value else "none"


def _words(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def _major(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def field_changes(before: ServiceMessage, after: ServiceMessage) -> tuple[FieldChange, ...]:
    """The fields people care about that differ, old → new."""
    pairs = [
        ("Title", before.title, after.title),
        (ACT_BY_LABEL, _day(before.act_by), _day(after.act_by)),
        ("Category", before.category_text, after.category_text),
        ("Severity", before.severity_text, after.severity_text),
        ("Major change", _major(before.is_major), _major(after.is_major)),
        ("Services", _words(before.services), _words(after.services)),
        ("Tags", _words(before.tags), _words(after.tags)),
        ("Start", _day(before.start), _day(after.start)),
        ("End", _day(before.end), _day(after.end)),
    ]
    return tuple(FieldChange(label, old, new) for label, old, new in pairs if old != new)


def body_changes(before: ServiceMessage, after: ServiceMessage) -> tuple[list[str], list[str]]:
    """The body's paragraphs and list items added and removed (compared by text)."""
    old, new = body_texts(before), body_texts(after)
    old_set, new_set = set(old), set(new)
    return [t for t in new if t not in old_set], [t for t in old if t not in new_set]


def _casefolded(values: Iterable[str]) -> set[str]:
    return {v.casefold() for v in values}


def passes(post: ServiceMessage, settings: MessagesSettings | None) -> bool:
    """True when ``post`` passes the ``[messages]`` filters (empty filters let all through)."""
    if settings is None:
        return True
    if settings.categories and post.category.casefold() not in _casefolded(settings.categories):
        return False
    if settings.severities and post.severity.casefold() not in _casefolded(settings.severities):
        return False
    if settings.services and not _casefolded(post.services) & _casefolded(settings.services):
        return False
    if settings.tags and not _casefolded(post.tags) & _casefolded(settings.tags):
        return False
    return not (settings.major_only and not post.is_major)


@dataclass(frozen=True)
class MessagesFeed:
    """Message center posts. Built per poll with ``now`` and ``[messages]`` (see above)."""

    settings: MessagesSettings | None = None
    now: datetime | None = None
    name: str = field(default=NAME, init=False)

    @property
    def thresholds(self) -> tuple[float, ...]:
        """``remind_before_days``, largest first."""
        return self.settings.remind_before_days if self.settings else ()

    def inside(self, act_by: datetime | None) -> tuple[float, ...]:
        """The thresholds whose window ``now`` is inside for ``act_by``."""
        if act_by is None or self.now is None:
            return ()
        left = act_by - self.now
        return tuple(t for t in self.thresholds if left <= timedelta(days=t))

    def next_event(self, items: Iterable[ServiceMessage]) -> datetime | None:
        """The first reminder window still ahead of ``now`` among ``items``' act-by dates."""
        if self.now is None:
            return None
        now = self.now
        starts = (
            post.act_by - timedelta(days=days)
            for post in items
            if post.act_by is not None
            for days in self.thresholds
        )
        return min((start for start in starts if start > now), default=None)

    def days_left(self, act_by: datetime | None) -> float | None:
        """Days from ``now`` to ``act_by``."""
        if act_by is None or self.now is None:
            return None
        return (act_by - self.now).total_seconds() / 86400

    def parse(self, raw: Sequence[Mapping[str, Any]]) -> tuple[list[ServiceMessage], int]:
        """Posts from Graph's collection, each marked with the reminder windows it is inside."""
        posts, skipped = parse_messages(raw)
        return [replace(p, reminded=self.inside(p.act_by)) for p in posts], skipped

    def item_id(self, item: ServiceMessage) -> str:
        """The post's id."""
        return item.id

    def to_record(self, item: ServiceMessage) -> dict[str, Any]:
        """Graph's shape, plus the reminders given."""
        return item.to_graph()

    def record_for(self, item: ServiceMessage, raw: Mapping[str, Any]) -> dict[str, Any]:
        """What Graph sent, plus the reminders given."""
        return {**raw, REMINDED_KEY: list(item.reminded)}

    def unchanged(self, record: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
        """The JSON stored, with no reminder window entered since (nor a reminder to undo)."""
        given = record.get(REMINDED_KEY)
        if not isinstance(given, list) or len(record) != len(raw) + 1 or REMINDED_KEY in raw:
            return False
        windows = self.inside(parse_timestamp(raw.get("actionRequiredByDateTime")))
        if {float(v) for v in given} != set(windows):
            return False
        return all(record.get(key, _ABSENT) == value for key, value in raw.items())

    def from_record(self, record: Mapping[str, Any]) -> ServiceMessage:
        """Inverse of :meth:`to_record`."""
        if not isinstance(record, Mapping):
            raise TypeError("a message record is not an object")
        return ServiceMessage.from_graph(record)

    def same(self, before: ServiceMessage, after: ServiceMessage) -> bool:
        """Nothing but ``lastModifiedDateTime`` differs (reminders given included)."""
        return before.content_key() == after.content_key()

    def diff(self, before: ServiceMessage | None, after: ServiceMessage) -> MessageChange | None:
        """New (also: passing the filters only now), updated, and/or a reminder due."""
        if before is None or not passes(before, self.settings):
            return self._new(after)
        if self.same(before, after):
            return None  # most posts, every poll: no field to compare, no body to parse
        kinds: set[str] = set()
        fields = field_changes(before, after)
        # Parsing a body costs ~10 ms per 20 KB: only when its content changed.
        body_edited = (before.body, before.body_type) != (after.body, after.body_type)
        added, removed = body_changes(before, after) if body_edited else ([], [])
        if fields or added or removed:
            kinds.add(UPDATED)
        due_days = None
        if after.act_by is not None and after.act_by == before.act_by:
            crossed = set(after.reminded) - set(before.reminded)
            if crossed:
                kinds.add(DUE)
                due_days = min(crossed)
        if not kinds:
            return None
        return MessageChange(
            post=after,
            kinds=frozenset(kinds),
            fields=fields,
            added=tuple(added),
            removed=tuple(removed),
            due_days=due_days,
            days_left=self.days_left(after.act_by) if due_days is not None else None,
        )

    def existing(self, item: ServiceMessage) -> MessageChange | None:
        """On a first poll with ``notify_existing``: a post not yet ended, as new."""
        if item.end is not None and self.now is not None and item.end <= self.now:
            return None
        return self._new(item)

    def _new(self, post: ServiceMessage) -> MessageChange:
        """A post announced as new; inside a reminder window it says the days left, as the
        reminder it stands for would."""
        left = self.days_left(post.act_by) if post.reminded else None
        return MessageChange(post=post, kinds=frozenset({NEW}), days_left=left)

    def change_to_record(self, change: MessageChange) -> dict[str, Any]:
        """The queued change as stored."""
        return change.to_dict()

    def change_from_record(self, record: Mapping[str, Any]) -> MessageChange:
        """Inverse of :meth:`change_to_record`."""
        return MessageChange.from_dict(record)

    def merge(self, earlier: MessageChange, later: MessageChange) -> MessageChange:
        """Two queued changes of one post as one."""
        due = later if DUE in later.kinds else earlier if DUE in earlier.kinds else None
        due_kind = {DUE} if due else set()
        due_days = due.due_days if due else None
        days_left = due.days_left if due else None
        if NEW in earlier.kinds or NEW in later.kinds:
            if days_left is None:
                days_left = later.days_left if later.days_left is not None else earlier.days_left
            return MessageChange(
                post=later.post, kinds=frozenset({NEW}), due_days=due_days, days_left=days_left
            )
        olds = {f.label: f.old for f in earlier.fields}
        news = {f.label: f.new for f in earlier.fields}
        for f in later.fields:
            olds.setdefault(f.label, f.old)
            news[f.label] = f.new
        fields = tuple(FieldChange(k, olds[k], news[k]) for k in olds if olds[k] != news[k])
        added = [a for a in earlier.added if a not in later.removed]
        added += [a for a in later.added if a not in earlier.removed]
        removed = [r for r in earlier.removed if r not in later.added]
        removed += [r for r in later.removed if r not in earlier.added]
        kinds = set(due_kind)
        if fields or added or removed:
            kinds.add(UPDATED)
        return MessageChange(
            post=later.post,
            kinds=frozenset(kinds),
            fields=fields,
            added=tuple(added),
            removed=tuple(removed),
            due_days=due_days,
            days_left=days_left,
        )

    def in_scope(self, change: MessageChange, poll: PollSettings) -> bool:
        """The ``[messages]`` filters (``[poll]``'s are for issues)."""
        return passes(change.post, self.settings)

    def wanted_by(self, change: MessageChange, target: TargetSettings) -> bool:
        """A target's services (any of the post's) and events filters."""
        if target.services and not _casefolded(change.post.services) & _casefolded(target.services):
            return False
        return change.matches(target.events)

    def render(
        self,
        changes: Sequence[MessageChange],
        reports: Mapping[str, Path] | None = None,
        tenants: Mapping[str, Sequence[str]] | None = None,
    ) -> Message:
        """One message per post, or a digest of several; ``tenants`` as for issues."""
        return render_message_changes(changes, tenants)


MESSAGES = MessagesFeed()


# --------------------------------------------------------------------------
# Rendering: sections written by m365watch.messages and the channel builders.


def days_left_text(days: float | None) -> str:
    """``7 days left``, ``1 day left``, ``overdue by 2 days``."""
    if days is None:
        return ""
    whole = round(days)
    if whole < 0:
        return f"overdue by {-whole} day{'s' if -whole != 1 else ''}"
    if whole == 0:
        return "due today"
    return f"{whole} day{'s' if whole != 1 else ''} left"


def change_lines(change: MessageChange) -> list[str]:
    """What happened, one line each."""
    post = change.post
    lines: list[str] = []
    if NEW in change.kinds:
        lines.append("New Message center post")
    if UPDATED in change.kinds:
        lines.append("Updated by Microsoft:")
        lines += [f"{f.label}: {f.old} → {f.new}" for f in change.fields]
        lines += [f"Added: {t}" for t in change.added]
        lines += [f"Removed: {t}" for t in change.removed]
    # The act-by date is said once: in the reminder, in the update's "Act by: old → new",
    # or on a line of its own (the facts leave it out).
    moved = any(f.label == ACT_BY_LABEL for f in change.fields)
    if post.act_by is not None and (DUE in change.kinds or not moved):
        left = days_left_text(change.days_left)
        lines.append(
            f"Action required by {format_time(post.act_by)}" + (f", {left}" if left else "")
        )
    return lines


def message_facts(post: ServiceMessage) -> list[Fact]:
    """The post's facts (its act-by date is in :func:`change_lines`, where it stands out)."""
    rows = [
        Fact("Message", post.id),
        Fact("Category", post.category_text),
        Fact("Severity", post.severity_text),
        Fact("Major change", _major(post.is_major)),
        Fact("Services", _words(post.services)),
    ]
    if post.tags:
        rows.append(Fact("Tags", ", ".join(post.tags)))
    if post.start is not None:
        rows.append(Fact("Published", format_time(post.start)))
    return rows


def message_section(change: MessageChange) -> Section:
    """The pieces of the message for one post's change."""
    post = change.post
    urgent = DUE in change.kinds or post.severity.casefold() in ("high", "critical")
    body = post.blocks if NEW in change.kinds else ()
    return Section(
        headline=clean_text(f"[{LABEL}] {post.id}: {post.title or 'untitled'}"),
        title=clean_text(post.title or post.id),
        lines=tuple(clean_text(x) for x in change_lines(change)),
        facts=tuple(Fact(f.label, clean_text(f.value)) for f in message_facts(post)),
        url=post.url,
        notify_type=WARNING if urgent or post.is_major else INFO,
        post_heading="The post" if body else "",
        post=body,
        issue_id=post.id,
    )


def render_message_changes(
    changes: Sequence[MessageChange], tenants: Mapping[str, Sequence[str]] | None = None
) -> Message:
    """One message for one post, or a digest listing several (naming ``tenants``)."""
    tenants = tenants or {}
    sections = [
        with_tenants(message_section(c), tenants.get(c.post.id, ()))
        for c in sorted(changes, key=lambda c: c.post.id)
    ]
    if len(sections) == 1:
        return render_sections(sections[0].headline, sections, digest=False)
    ids = [s.issue_id for s in sections]
    shown = ", ".join(ids[:6]) + (f" and {len(ids) - 6} more" if len(ids) > 6 else "")
    title = digest_title(f"Microsoft 365 {LABEL}: {len(ids)} posts ({shown})", sections)
    return render_sections(title, sections, digest=True)
