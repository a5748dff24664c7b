"""Pages of jobs that tell the truth: full unless they are the last.

The engine filters a search by pending, resolved or rejected only (its rejected pages hold the
canceled and timed-out jobs too) and by no set of states, so the gateway filters its pages
further. Returning what one engine page held after filtering gave short or empty pages while
more jobs matched; instead the gateway reads engine pages until the client's page is full, and
its cursor says where to go on: an engine cursor (the engine's next page, signed by it) and the
last job returned from within that page. Pure: the route (resources.jobs_page) does the reads,
and asks the engine whether a job awaits its approval where the filter names
waiting_for_approval (`JobFilter.asks_approval_of`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from async_api.engine import CANCELED, PENDING, REJECTED, TIMEDOUT, Promise
from async_api.jobs import APPROVAL_TAG, STATES, WAITING_FOR_APPROVAL

# Engine pages read per client page at most: a filter that matches few of many jobs answers a
# short page (with a cursor) rather than reading the whole store in one request.
MAX_ENGINE_PAGES = 20
ENGINE_PAGE_SIZE = 100
_PREFIX = "p1."
# What the engine's filter knows a state by: it tells no kind of rejection, and knows nothing
# of approvals.
_SERVER_STATES = {CANCELED: REJECTED, TIMEDOUT: REJECTED, WAITING_FOR_APPROVAL: PENDING}


class CursorError(ValueError):
    """A cursor this gateway did not issue."""


class OtherFilters(CursorError):
    """A cursor issued for a listing with other filters."""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a listing shows: their states (WAITING_FOR_APPROVAL among them, if wanted),
    function and creation time (ms, inclusive after, exclusive before)."""

    states: frozenset[str]
    function: str | None = None
    created_after: int | None = None
    created_before: int | None = None

    def matches(self, job: Promise, awaits_approval: bool = False) -> bool:
        """Whether the listing shows `job`; `awaits_approval`: the engine said it waits for
        its approval (asked only where `asks_approval_of(job)`)."""
        created = job.created_on or 0
        return ((job.state in self.states
                 or (awaits_approval and WAITING_FOR_APPROVAL in self.states))
                and self.function in (None, job.function)
                and (self.created_after is None or created >= self.created_after)
                and (self.created_before is None or created < self.created_before))

    def past(self, job: Promise) -> bool:
        """Whether `job`, and so every job after it (older: pages are newest first), was
        created before the window: the listing can stop."""
        return self.created_after is not None and (job.created_on or 0) < self.created_after

    def asks_approval_of(self, job: Promise) -> bool:
        """Whether the listing must know if `job` still awaits its approval, which costs an
        engine read: a pending job of approve-and-ship, when the filter names
        waiting_for_approval and would show the job if it waits (it then shows as waiting,
        and, unless every pending job is wanted, only then)."""
        return (WAITING_FOR_APPROVAL in self.states and job.state == PENDING
                and APPROVAL_TAG in job.tags and self.matches(job, awaits_approval=True))


def _server_state(state: str) -> str:
    """The state the engine's filter knows a job's state by."""
    return _SERVER_STATES.get(state, state)


def engine_state(states: frozenset[str]) -> str | None:
    """The one engine state filter that covers `states`, or None (no engine filter)."""
    server_states = {_server_state(state) for state in states}
    return next(iter(server_states)) if len(server_states) == 1 else None


def engine_page_size(wanted: JobFilter, limit: int) -> int:
    """`limit` when the engine's filter is the whole of `wanted` (every job it returns is
    shown): a page then reads and decodes no more jobs than it shows, as many at 1M jobs
    stored as with 20. Else ENGINE_PAGE_SIZE, so that a filter that drops jobs reads few
    engine pages."""
    engine_filter = engine_state(wanted.states)
    returned = {state for state in STATES if engine_filter in (None, _server_state(state))}
    exact = (wanted.function is None and wanted.created_after is None
             and wanted.created_before is None and wanted.states == returned)
    return limit if exact else ENGINE_PAGE_SIZE


def _filters_of(wanted: JobFilter) -> str:
    """What a cursor remembers of the filters it was issued for: the engine's cursor holds
    its own state filter, so the same cursor sent with other filters would list wrongly
    (waiting_for_approval too, whose engine filter is pending's: its cursor, sent with
    state=pending, would skip the pending jobs the first pages left out)."""
    seen = json.dumps([sorted(wanted.states), wanted.function, wanted.created_after,
                       wanted.created_before]).encode()
    return hashlib.sha256(seen).hexdigest()[:16]


def encode_cursor(engine_cursor: str | None, after: str | None, wanted: JobFilter) -> str:
    raw = json.dumps({"c": engine_cursor, "a": after, "f": _filters_of(wanted)},
                     separators=(",", ":")).encode()
    return _PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, wanted: JobFilter) -> tuple[str | None, str | None]:
    """(engine cursor, last job returned) from a cursor this gateway issued for the filters
    `wanted` (AIP-158: a page token with other arguments is an error, not another list)."""
    if not cursor.startswith(_PREFIX):
        raise CursorError(cursor)
    body = cursor[len(_PREFIX):]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        engine_cursor, after, filters = decoded["c"], decoded["a"], decoded["f"]
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise CursorError(cursor) from exc
    if (not all(isinstance(v, str | None) for v in (engine_cursor, after))
            or (engine_cursor is None and after is None)):  # a first page: never issued
        raise CursorError(cursor)
    if filters != _filters_of(wanted):
        raise OtherFilters(cursor)
    return engine_cursor, after


def after_last(page: Iterable[Promise], after: str | None) -> list[Promise]:
    """The jobs of an engine page after the one last returned from it (all if it is gone, e.g.
    settled out of a pending page: a job may then show twice, but none is skipped)."""
    page = list(page)
    if after is None:
        return page
    for index, promise in enumerate(page):
        if promise.id == after:
            return page[index + 1:]
    return page
