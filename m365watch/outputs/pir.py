"""Post-incident reports kept: each report Microsoft publishes, saved once in ``[pir] directory``.

Before a poll delivers, :func:`reports_before_delivery` makes one quick try
(:data:`QUICK_SECONDS` in all, no retries) at each report its messages announce,
so the ``pir`` message can say where the report is and email can carry it; what
that try misses is saved after the notifications went out (``wiring.after_poll``),
so a slow or failing download never delays them. An issue that reached
``postIncidentReviewPublished`` is *owed* a report until one is saved; what is
owed is remembered in ``pending.json`` in the directory and tried again by later
polls, up to :data:`MAX_ATTEMPTS` times. Reports are saved 0600, atomically.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from m365watch import files
from m365watch.diff import ChangeKind, IssueChange
from m365watch.errors import M365WatchError
from m365watch.models import PIR_STATUS, is_issue_id
from m365watch.redact import one_line

logger = logging.getLogger(__name__)

PENDING_FILE = "pending.json"
# A report still missing after this many polls is given up (each try spends a Graph request).
MAX_ATTEMPTS = 12
# Reports tried per poll, so a backlog cannot eat the hourly request budget in one go.
MAX_PER_POLL = 5
EXTENSIONS = (".pdf", ".docx", ".bin")
_PENDING_MAX_BYTES = 1024 * 1024
# What the quick tries before delivery may spend in all, and the least worth starting one.
QUICK_SECONDS = 10.0
_QUICK_MIN_SECONDS = 1.0


@runtime_checkable
class ReportSource(Protocol):
    """What serves post-incident reports (the Graph client)."""

    def get_incident_report(self, issue_id: str) -> bytes:
        """The report's bytes; NotFoundError when there is none."""
        ...


class NotAReportError(M365WatchError):
    """Graph (or something in the way) answered with something that is no report."""


@dataclass(frozen=True)
class SavedReport:
    """A report written to disk."""

    issue_id: str
    path: Path
    size: int


def report_extension(data: bytes) -> str:
    """The file name extension for a report, from its first bytes.

    ``%PDF`` is a PDF, ``PK\\x03\\x04`` an Office (zip) document; an HTML page (a
    proxy's or portal's error page) is NotAReportError; anything else is ``.bin``.
    """
    if data.startswith(b"%PDF"):
        return ".pdf"
    if data.startswith(b"PK\x03\x04"):
        return ".docx"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not data or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")):
        what = "an empty answer" if not data else "an HTML page"
        raise NotAReportError(
            f"Graph answered with {what} instead of a PDF or Word document; a proxy or "
            "captive portal may be in the way"
        )
    if head.startswith(b"{"):
        raise NotAReportError(
            "Graph answered with JSON instead of a PDF or Word document: "
            + one_line(data[:120].decode("utf-8", "replace"), 120)
        )
    return ".bin"


def saved_report(directory: Path, issue_id: str) -> Path | None:
    """The report already saved for ``issue_id``, if any."""
    for extension in EXTENSIONS:
        path = directory / f"{issue_id}{extension}"
        if path.is_file():
            return path
    return None


def fetch_report(source: ReportSource, issue_id: str) -> tuple[bytes, str]:
    """Download one report: its bytes and extension (NotAReportError for an error page)."""
    data = source.get_incident_report(issue_id)
    return data, report_extension(data)


def save_report(path: Path, data: bytes) -> None:
    """Write a report (0600, atomic: never half a file); raises OSError."""
    files.write_private_file(path, data)


def owed_by(changes: Iterable[IssueChange]) -> list[str]:
    """Issues these changes say have a post-incident report now (``pir`` kind)."""
    return [
        c.issue.id
        for c in changes
        if ChangeKind.PIR in c.kinds or (ChangeKind.NEW in c.kinds and c.issue.status == PIR_STATUS)
    ]


def keep_reports(
    directory: Path, changes: Iterable[IssueChange], source: ReportSource
) -> list[SavedReport]:
    """Save every report owed (new ones from ``changes``, earlier failures); never raises.

    Each failure is one warning and stays owed for the next poll; a report already
    saved is never fetched again.
    """
    pending = _load_pending(directory)
    for issue_id in owed_by(changes):
        pending.setdefault(issue_id, 0)
    saved: list[SavedReport] = []
    tried = 0
    for issue_id in sorted(pending):
        if saved_report(directory, issue_id) is not None:
            del pending[issue_id]
            continue
        if tried >= MAX_PER_POLL:
            continue
        tried += 1
        try:
            data, extension = fetch_report(source, issue_id)
            path = directory / f"{issue_id}{extension}"
            save_report(path, data)
        except (M365WatchError, OSError) as error:
            pending[issue_id] += 1
            gives_up = pending[issue_id] >= MAX_ATTEMPTS
            then = (
                f"giving up after {pending[issue_id]} tries"
                if gives_up
                else "trying again next poll"
            )
            logger.warning(
                "post-incident report of %s not saved (%s); %s",
                issue_id,
                one_line(str(error), 300),
                then,
            )
            if gives_up:
                del pending[issue_id]
            continue
        del pending[issue_id]
        logger.info("saved the post-incident report of %s to %s", issue_id, path)
        saved.append(SavedReport(issue_id, path, len(data)))
    try:
        _save_pending(directory, pending)
    except OSError as error:
        logger.warning(
            "cannot record the post-incident reports still owed in %s (%s)",
            directory / PENDING_FILE,
            one_line(str(error), 200),
        )
    return saved


def reports_before_delivery(
    directory: Path,
    changes: Sequence[object],
    fetch: Callable[[str, float], bytes],
    *,
    time_limit: float | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> dict[str, Path]:
    """Issue id -> saved report, for the ``pir`` changes about to be sent; never raises.

    A report already saved is used as it is; a missing one gets one quick try,
    ``fetch(issue_id, seconds_left)``, all of them within ``time_limit`` (default
    :data:`QUICK_SECONDS`). A failure is
    one warning: the message goes out without the report, and the poll's
    :func:`keep_reports` (after delivery) tries again as it always does.
    """
    issue_changes = [c for c in changes if isinstance(c, IssueChange)]
    found: dict[str, Path] = {}
    limit = QUICK_SECONDS if time_limit is None else time_limit
    started = monotonic()
    for issue_id in sorted(set(owed_by(issue_changes))):
        path = saved_report(directory, issue_id)
        if path is None:
            left = limit - (monotonic() - started)
            if left < _QUICK_MIN_SECONDS:
                logger.warning(
                    "post-incident report of %s not tried before sending (no time left); "
                    "trying again after",
                    issue_id,
                )
                continue
            try:
                data = fetch(issue_id, left)
                path = directory / f"{issue_id}{report_extension(data)}"
                save_report(path, data)
            except Exception as error:  # never keeps a notification from going out
                logger.warning(
                    "post-incident report of %s not saved before sending (%s); trying again after",
                    issue_id,
                    one_line(str(error), 300),
                )
                continue
            logger.info("saved the post-incident report of %s to %s", issue_id, path)
        found[issue_id] = path
    return found


def _load_pending(directory: Path) -> dict[str, int]:
    """Issue id -> failed tries so far; an unreadable file counts as nothing owed."""
    path = directory / PENDING_FILE
    try:
        raw = json.loads(files.read_bounded(path, _PENDING_MAX_BYTES))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring %s (%s)", path, one_line(str(error), 200))
        return {}
    if not isinstance(raw, dict):
        return {}
    return {
        k: v
        for k, v in raw.items()
        if isinstance(k, str) and is_issue_id(k) and isinstance(v, int) and v >= 0
    }


def _save_pending(directory: Path, pending: dict[str, int]) -> None:
    path = directory / PENDING_FILE
    if not pending and not path.exists():
        return
    data = json.dumps(pending, sort_keys=True, indent=1).encode() + b"\n"
    files.write_private_file(path, data)
