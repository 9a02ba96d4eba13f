"""The directory's use cases: entries, imports, SCIM's reads and writes, the kiosk's search,
and open deposit.

Every write to a site's directory takes the site's directory lock first (``_lock``), so an
import, an identity provider and an operator take turns and each sees the others' work;
unique keys per site (external id, email, SCIM userName) hold underneath. Audit events name
entries by id and list the fields that changed, never their values: the audit chain cannot
forget, and a directory holds personal data that must be erasable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from openlocker.access import presence
from openlocker.audit.service import Event, record, record_all, record_event
from openlocker.core import idempotency, pages
from openlocker.core.context import Actor, Context
from openlocker.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyAttempts,
)
from openlocker.core.ids import new_id
from openlocker.core.sql import Row, Tx, insert_rows
from openlocker.directory import search as matching
from openlocker.directory.csvimport import CsvRow, ParsedCsv
from openlocker.directory.schemas import (
    DirectoryMatch,
    DirectorySearch,
    EntryChange,
    EntryIn,
    EntryList,
    EntryOut,
    ImportReport,
    ImportRow,
    OpenDepositIn,
    OpenDepositOut,
    describe,
)
from openlocker.lockers.service import access_site_info
from openlocker.orgs.service import Principal
from openlocker.parcels import service as parcels
from openlocker.parcels.schemas import AnnounceIn, CompartmentRef, Recipient

#: A courier's search answers at most this many entries (``more`` says there were others).
SEARCH_LIMIT = 10
MAX_SEARCH_LIMIT = 25
#: Searches one site's kiosk may make in a minute before it is answered ``429``.
SEARCHES_PER_MINUTE = 120
#: The carrier of parcels deposited by couriers no carrier signed in (created on first use).
OPEN_DEPOSIT_ORG = "org_open_deposit"
OPEN_DEPOSIT_ORG_NAME = "Open deposit (no carrier)"
SYSTEM_IMPORT = Actor("system:directory-import")
#: Entry fields a write sets (the rest of a row follows from them).
FIELDS = (
    "display_name",
    "unit",
    "email",
    "phone",
    "language",
    "external_id",
    "given_name",
    "family_name",
    "user_name",
    "active",
)
#: Rows per INSERT of an import: Python's sqlite3 binds named parameters in a time that grows
#: with the square of their number (500 rows took 0.25 s a statement, 50 rows 4 ms).
_INSERT_CHUNK = 50


@dataclass(slots=True)
class EntryRow:
    """A directory entry as stored (the ``directory_entries`` columns, in order)."""

    id: str
    site_id: str
    display_name: str
    given_name: str | None
    family_name: str | None
    unit: str | None
    email: str | None
    phone: str | None
    language: str | None
    external_id: str | None
    user_name: str | None
    user_name_key: str | None
    active: bool
    source: str
    search_key: str
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def scim_user_name(self) -> str:
        """The SCIM ``userName``: its own, else its email (a CSV entry's), else its id."""
        return self.user_name or self.email or self.id


_COLUMNS = [f.name for f in fields(EntryRow)]
_SELECT = "SELECT " + ", ".join(f"d.{c}" for c in _COLUMNS) + " FROM directory_entries d"
_ACTIVE = _COLUMNS.index("active")


def _entry(tx: Tx, row: Row) -> EntryRow:
    values = list(row)
    values[_ACTIVE] = bool(values[_ACTIVE])
    values[-2], values[-1] = tx.time(values[-2]), tx.time(values[-1])
    return EntryRow(*values)


def entry_view(entry: EntryRow) -> EntryOut:
    return EntryOut.model_validate(
        {c: getattr(entry, c) for c in _COLUMNS if c not in ("user_name_key", "search_key")}
    )


def current_fields(entry: EntryRow) -> dict[str, Any]:
    """The entry's writable fields, as an ``EntryIn`` takes them."""
    return {name: getattr(entry, name) for name in FIELDS}


# --- who may ------------------------------------------------------------------------------


def directory_scope(site_id: str) -> str:
    """The scope of a key that keeps ``site_id``'s directory (SCIM, imports, the entries API)."""
    return f"directory:{site_id}"


def check_directory(principal: Principal, site_id: str) -> None:
    """Raise ``not_site_directory`` unless the key keeps the site's directory (or is admin)."""
    if directory_scope(site_id) not in principal.scopes and not principal.is_admin:
        raise Forbidden(
            "This API key does not keep this site's directory.", code="not_site_directory"
        )


def scim_site(principal: Principal, site_id: str | None) -> str:
    """The site whose directory a SCIM request is about: the one in its path, else the one
    its key keeps (a SCIM key keeps exactly one)."""
    if site_id is not None:
        check_directory(principal, site_id)
        return site_id
    kept = [s.split(":", 1)[1] for s in principal.scopes if s.startswith("directory:")]
    if len(kept) != 1:
        raise Forbidden(
            "This API key keeps no single site's directory; use /scim/v2/sites/{site_id}.",
            code="not_site_directory",
        )
    return kept[0]


def _lock(tx: Tx, site_id: str) -> None:
    """Writes to one site's directory take turns (SQLite's write transaction already does)."""
    digest = hashlib.blake2b(f"directory:{site_id}".encode(), digest_size=8).digest()
    tx.serialize(int.from_bytes(digest, "big", signed=True))


# --- reading and writing entries ----------------------------------------------------------


def access_entry(tx: Tx, site_id: str, entry_id: str) -> EntryRow:
    """The site's entry ``entry_id``; another site's is a 404 like a missing one."""
    row = tx.one(
        _SELECT + " WHERE d.id = :id AND d.site_id = :site", {"id": entry_id, "site": site_id}
    )
    if row is None:
        raise NotFound(f"No directory entry {entry_id!r} at this site.", code="entry_not_found")
    return _entry(tx, row)


def _user_name_key(user_name: str | None) -> str | None:
    return None if user_name is None else user_name.casefold()


def check_unique(tx: Tx, site_id: str, entry: EntryIn, *, other_than: str | None) -> None:
    """Refuse an external id, email or SCIM userName another entry of the site has
    (``duplicate_external_id``, ``duplicate_email``, ``duplicate_user_name``, with its
    ``entry_id``). An entry without a userName of its own answers to its email there."""
    key = _user_name_key(entry.user_name)
    row = tx.one(
        "SELECT id, external_id, email, user_name_key FROM directory_entries"
        " WHERE site_id = :site AND id <> :id AND (external_id = :external_id"
        " OR email = :email OR user_name_key = :key OR (user_name_key IS NULL AND email = :key))"
        " LIMIT 1",
        {
            "site": site_id,
            "id": other_than or "",
            "external_id": entry.external_id,
            "email": entry.email,
            "key": key,
        },
    )
    if row is None:
        return
    taken = (
        ("external_id", "duplicate_external_id")
        if entry.external_id is not None and row[1] == entry.external_id
        else ("email", "duplicate_email")
        if entry.email is not None and row[2] == entry.email
        else ("userName", "duplicate_user_name")
    )
    raise Conflict(
        f"Another entry of this site has this {taken[0]}.",
        code=taken[1],
        extra={"entry_id": row[0]},
    )


def _new_row(site_id: str, entry: EntryIn, source: str, now: datetime) -> EntryRow:
    return EntryRow(
        id=new_id("dir"),
        site_id=site_id,
        display_name=entry.display_name,
        given_name=entry.given_name,
        family_name=entry.family_name,
        unit=entry.unit,
        email=entry.email,
        phone=entry.phone,
        language=entry.language,
        external_id=entry.external_id,
        user_name=entry.user_name,
        user_name_key=_user_name_key(entry.user_name),
        active=entry.active,
        source=source,
        search_key=matching.search_key(entry.display_name, entry.unit),
        version=1,
        created_at=now,
        updated_at=now,
    )


def _insert(tx: Tx, entries: Sequence[EntryRow]) -> None:
    for start in range(0, len(entries), _INSERT_CHUNK):
        chunk = entries[start : start + _INSERT_CHUNK]
        sql, params = insert_rows(
            "directory_entries", {}, [{c: getattr(e, c) for c in _COLUMNS} for e in chunk]
        )
        tx.execute(sql, params)


def _event(name: str, actor: Actor, entry: EntryRow, now: datetime, **data: Any) -> Event:
    """An entry's audit event: its id, and what changed by name (never a value)."""
    return Event(name, actor, now, site_id=entry.site_id, data={"entry_id": entry.id, **data})


def do_create_entry(
    tx: Tx, actor: Actor, site_id: str, entry: EntryIn, source: str, now: datetime
) -> EntryRow:
    """Add an entry to the site's directory (the caller holds the directory lock)."""
    check_unique(tx, site_id, entry, other_than=None)
    row = _new_row(site_id, entry, source, now)
    record_event(tx, _created(actor, row, now))
    _insert(tx, [row])
    return row


def _created(actor: Actor, entry: EntryRow, now: datetime) -> Event:
    return _event(
        "directory.entry_created", actor, entry, now, source=entry.source, active=entry.active
    )


def _changes(entry: EntryRow, new: EntryIn, source: str | None) -> dict[str, Any]:
    """The fields ``new`` changes; with one, ``source`` takes the entry over."""
    changes = {n: getattr(new, n) for n in FIELDS if getattr(new, n) != getattr(entry, n)}
    if changes and source is not None and source != entry.source:
        changes["source"] = source
    return changes


def do_update_entry(
    tx: Tx,
    actor: Actor,
    entry: EntryRow,
    new: EntryIn,
    now: datetime,
    *,
    source: str | None = None,
) -> list[str]:
    """Give the entry ``new``'s fields (and ``source``, who keeps it from now on: an import or
    an identity provider takes it over, the operator's API does not); returns the names of
    the fields that changed, none when nothing did (no write, no event)."""
    changes = _changes(entry, new, source)
    if not changes:
        return []
    check_unique(tx, entry.site_id, new, other_than=entry.id)
    record_event(tx, do_set_entry(tx, actor, entry, changes, now, source=source or entry.source))
    return sorted(changes)


def do_set_entry(
    tx: Tx, actor: Actor, entry: EntryRow, changes: Mapping[str, Any], now: datetime, *, source: str
) -> Event:
    """Write checked ``changes`` to the entry (and ``entry``); returns their audit event, for
    the caller to record."""
    was_active = entry.active
    for name, value in changes.items():
        setattr(entry, name, value)
    entry.user_name_key = _user_name_key(entry.user_name)
    entry.search_key = matching.search_key(entry.display_name, entry.unit)
    entry.version += 1
    entry.updated_at = now
    columns = [*changes, "user_name_key", "search_key", "version", "updated_at"]
    tx.defer(
        f"UPDATE directory_entries SET {', '.join(f'{c} = :{c}' for c in dict.fromkeys(columns))}"
        " WHERE id = :id",
        {**{c: getattr(entry, c) for c in columns}, "id": entry.id},
    )
    event = (
        "directory.entry_deactivated"
        if was_active and not entry.active
        else "directory.entry_updated"
    )
    return _event(event, actor, entry, now, source=source, fields=sorted(changes))


def do_delete_entry(tx: Tx, actor: Actor, entry: EntryRow, now: datetime, *, source: str) -> None:
    """Remove the entry and its personal data (parcels keep the copy they were sent with)."""
    tx.defer("DELETE FROM directory_entries WHERE id = :id", {"id": entry.id})
    record_event(tx, _event("directory.entry_deleted", actor, entry, now, source=source))


def _validated(values: Mapping[str, Any]) -> EntryIn:
    """``values`` as an entry, or ``invalid_input`` naming what is wrong."""
    try:
        return EntryIn.model_validate(values)
    except ValidationError as error:
        raise InvalidInput(describe(error), code="invalid_entry") from None


def create_entry(
    ctx: Context, principal: Principal, site_id: str, entry: EntryIn, *, source: str = "api"
) -> EntryRow:
    """Add an entry (audited). Raises ``not_site_directory``, ``site_not_found``,
    ``duplicate_external_id``, ``duplicate_email``, ``duplicate_user_name``."""
    check_directory(principal, site_id)
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        _lock(tx, site.id)
        return do_create_entry(tx, principal.actor, site.id, entry, source, ctx.clock())


def get_entry(ctx: Context, principal: Principal, site_id: str, entry_id: str) -> EntryRow:
    check_directory(principal, site_id)
    with ctx.db.sql.transaction(write=False) as tx:
        return access_entry(tx, site_id, entry_id)


def modify_entry(
    ctx: Context,
    principal: Principal,
    site_id: str,
    entry_id: str,
    change: Callable[[EntryRow], EntryIn],
    *,
    source: str | None = None,
    version: int | None = None,
) -> EntryRow:
    """Change an entry to what ``change`` makes of it (read and written in one transaction,
    so a PATCH applies to what is stored); with ``version``, only if the entry is still at
    that version (``version_mismatch``). Raises what ``change`` raises, ``entry_not_found``
    and the uniqueness errors of ``create_entry``."""
    check_directory(principal, site_id)
    with ctx.db.sql.transaction() as tx:
        _lock(tx, site_id)
        entry = access_entry(tx, site_id, entry_id)
        _check_version(entry, version)
        do_update_entry(tx, principal.actor, entry, change(entry), ctx.clock(), source=source)
        return entry


def _check_version(entry: EntryRow, version: int | None) -> None:
    if version is not None and version != entry.version:
        raise Conflict(
            "The entry changed since that version was read.",
            code="version_mismatch",
            extra={"version": entry.version},
        )


def merged(entry: EntryRow, change: EntryChange) -> EntryIn:
    """The entry with ``change``'s fields (those it sets) applied, validated."""
    return _validated({**current_fields(entry), **change.model_dump(exclude_unset=True)})


def update_entry(
    ctx: Context, principal: Principal, site_id: str, entry_id: str, change: EntryChange
) -> EntryRow:
    """Change some of an entry's fields (the operator's PATCH); see ``modify_entry``."""
    return modify_entry(ctx, principal, site_id, entry_id, lambda entry: merged(entry, change))


def delete_entry(
    ctx: Context,
    principal: Principal,
    site_id: str,
    entry_id: str,
    *,
    source: str = "api",
    version: int | None = None,
) -> None:
    """Remove an entry (audited); see ``do_delete_entry``."""
    check_directory(principal, site_id)
    with ctx.db.sql.transaction() as tx:
        _lock(tx, site_id)
        entry = access_entry(tx, site_id, entry_id)
        _check_version(entry, version)
        do_delete_entry(tx, principal.actor, entry, ctx.clock(), source=source)


def _name_conditions(query: str | None) -> dict[str, dict[str, Any]]:
    words = matching.query_words(query) if query else []
    return {
        f"d.search_key LIKE :q{i}": {f"q{i}": pattern}
        for i, pattern in enumerate(matching.like_patterns(words))
    }


def list_entries(
    ctx: Context,
    principal: Principal,
    site_id: str,
    *,
    q: str | None = None,
    active: bool | None = None,
    unit: str | None = None,
    external_id: str | None = None,
    email: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> EntryList:
    """The site's entries, newest first; ``q`` matches names and units as the kiosk's search
    does, the others exactly."""
    check_directory(principal, site_id)
    filters = {
        "d.site_id": site_id,
        "d.active": active,
        "d.unit": unit,
        "d.external_id": external_id,
        "d.email": email.lower() if email else None,
    }
    sql, params = pages.newest_first(
        _SELECT, "d.id", filters, cursor, limit, conditions=_name_conditions(q)
    )
    with ctx.db.sql.transaction(write=False) as tx:
        access_site_info(ctx, tx, site_id)
        entries = [_entry(tx, row) for row in tx.all(sql, params)]
    more = len(entries) > limit
    return EntryList(
        items=[entry_view(e) for e in entries[:limit]],
        next_cursor=pages.encode_cursor(entries[limit - 1].id) if more else None,
    )


#: What a SCIM filter may compare (``directory.scim.parse_filter``), and how.
_FIND = {
    "id": "d.id = :{p}",
    "external_id": "d.external_id = :{p}",
    "email": "d.email = :{p}",
    "display_name": "d.display_name = :{p}",
    "active": "d.active = :{p}",
    "user_name": "(d.user_name_key = :{p} OR (d.user_name_key IS NULL AND d.email = :{p}))",
}


def find_entries(
    ctx: Context,
    principal: Principal,
    site_id: str,
    where: Sequence[tuple[str, Any]],
    *,
    offset: int,
    limit: int,
) -> tuple[int, list[EntryRow]]:
    """The site's entries with every ``(field, value)`` of ``where`` (fields of ``_FIND``;
    userName and email compared without case), oldest first: how many in all, and
    ``limit`` of them after ``offset``."""
    check_directory(principal, site_id)
    conditions = ["d.site_id = :site"]
    params: dict[str, Any] = {"site": site_id}
    for i, (name, value) in enumerate(where):
        conditions.append(_FIND[name].format(p=f"w{i}"))
        folded = value.casefold() if name == "user_name" else value
        params[f"w{i}"] = folded.lower() if name == "email" else folded
    clause = " WHERE " + " AND ".join(conditions)
    with ctx.db.sql.transaction(write=False) as tx:
        access_site_info(ctx, tx, site_id)
        total = int(tx.scalar("SELECT COUNT(*) FROM directory_entries d" + clause, params))
        rows = (
            tx.all(
                _SELECT + clause + " ORDER BY d.id LIMIT :limit OFFSET :offset",
                {**params, "limit": limit, "offset": offset},
            )
            if limit > 0
            else []
        )
        return total, [_entry(tx, row) for row in rows]


# --- the kiosk's search -------------------------------------------------------------------

_COUNT_SEARCH = (
    "INSERT INTO directory_searches (site_id, minute, searches) VALUES (:site, :minute, 1)"
    " ON CONFLICT (site_id) DO UPDATE SET searches = CASE WHEN directory_searches.minute ="
    " :minute THEN directory_searches.searches + 1 ELSE 1 END, minute = :minute"
    " WHERE directory_searches.minute <> :minute OR directory_searches.searches <= :limit"
    " RETURNING searches"
)


def search(
    ctx: Context, principal: Principal, site_id: str, query: str, *, limit: int = SEARCH_LIMIT
) -> DirectorySearch:
    """Active entries of the site whose name or unit begin with the query's words (case and
    accents aside), best first (``directory.search.rank_patterns``), at most ``limit``; only their
    names, units and ids. The site's kiosk key only; counted per site and minute, past
    ``SEARCHES_PER_MINUTE`` refused (``too_many_searches``; the first refusal is audited).
    Raises ``not_site_kiosk``, ``site_not_found``, ``invalid_query``."""
    principal.check_kiosk(site_id)
    words = matching.query_words(query)
    if not words:
        raise InvalidInput("Type part of a name or a unit.", code="invalid_query")
    limit = max(1, min(limit, MAX_SEARCH_LIMIT))
    now = ctx.clock()
    minute = presence.minute_of(now)
    refused: DomainError | None = None
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        count = tx.scalar(
            _COUNT_SEARCH, {"site": site.id, "minute": minute, "limit": SEARCHES_PER_MINUTE}
        )
        if count is None or count > SEARCHES_PER_MINUTE:
            if count is not None:
                record(
                    tx,
                    "directory.search_limited",
                    principal.actor,
                    now,
                    site_id=site.id,
                    data={"per_minute": SEARCHES_PER_MINUTE},
                )
            wait = (minute + 1) * presence.ROTATION_S - int(now.timestamp())
            refused = TooManyAttempts(
                "This kiosk searched the directory too often; wait a minute.",
                code="too_many_searches",
                extra={"retry_after": wait},
                headers={"Retry-After": str(wait)},
            )
        else:
            conditions = _name_conditions(query)
            unit_typed, name_typed = matching.rank_patterns(words)
            rows = tx.all(
                "SELECT d.id, d.display_name, d.unit FROM directory_entries d"
                " WHERE d.site_id = :site AND d.active AND "
                + " AND ".join(conditions)
                + " ORDER BY CASE WHEN d.search_key LIKE :unit_typed THEN 0"
                " WHEN d.search_key LIKE :name_typed THEN 1 ELSE 2 END,"
                " d.search_key, d.id LIMIT :limit",
                {
                    "site": site.id,
                    "unit_typed": unit_typed,
                    "name_typed": name_typed,
                    "limit": limit + 1,
                    **{k: v for values in conditions.values() for k, v in values.items()},
                },
            )
    if refused is not None:
        raise refused
    return DirectorySearch(
        items=[
            DirectoryMatch(id=i, display_name=name, unit=unit) for i, name, unit in rows[:limit]
        ],
        more=len(rows) > limit,
    )


# --- open deposit -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenDepositAnswer:
    status_code: int
    deposit: OpenDepositOut
    replayed: bool = False


def _courier_org(tx: Tx, site_id: str, courier_id: str) -> str:
    """The organization of a courier signed in at the site; refuses an unknown courier
    (``courier_not_found``), a deactivated one (``courier_inactive``), one whose code is not
    valid at this site (``courier_not_at_site``) and one of an organization that is not a
    carrier (``open_deposit_not_allowed``: a retailer's staff load orders, an operator's
    clear expired parcels; neither brings parcels for residents)."""
    row = tx.one(
        "SELECT c.org_id, c.active, c.all_sites OR EXISTS (SELECT 1 FROM courier_code_sites s"
        " WHERE s.courier_id = c.id AND s.site_id = :site), o.kind FROM courier_codes c"
        " JOIN organizations o ON o.id = c.org_id WHERE c.id = :id",
        {"id": courier_id, "site": site_id},
    )
    if row is None:
        raise NotFound(f"No courier {courier_id!r}.", code="courier_not_found")
    if not row[1]:
        raise Forbidden("This courier's code was deactivated.", code="courier_inactive")
    if not row[2]:
        raise Forbidden(
            "This courier's code is not valid at this site.", code="courier_not_at_site"
        )
    if row[3] != "carrier":
        raise Forbidden(
            "Only couriers of carriers deposit for the directory's recipients.",
            code="open_deposit_not_allowed",
        )
    org_id: str = row[0]
    return org_id


def _open_deposit_org(tx: Tx, actor: Actor, now: datetime) -> str:
    """The network's carrier for parcels no signed-in courier brought, made on first use."""
    created = tx.scalar(
        "INSERT INTO organizations (id, name, kind, created_at)"
        " VALUES (:id, :name, 'carrier', :at) ON CONFLICT (id) DO NOTHING RETURNING id",
        {"id": OPEN_DEPOSIT_ORG, "name": OPEN_DEPOSIT_ORG_NAME, "at": now},
    )
    if created is not None:
        record(
            tx,
            "org.created",
            actor,
            now,
            data={"org_id": OPEN_DEPOSIT_ORG, "kind": "carrier", "name": OPEN_DEPOSIT_ORG_NAME},
        )
    return OPEN_DEPOSIT_ORG


def recipient_of(entry: EntryRow) -> Recipient:
    """The parcel recipient an entry stands for (validated as any recipient)."""
    return Recipient(
        name=entry.display_name, email=entry.email, phone=entry.phone, language=entry.language
    )


def open_deposit(
    ctx: Context,
    principal: Principal,
    site_id: str,
    request: OpenDepositIn,
    idempotency_key: str | None = None,
) -> OpenDepositAnswer:
    """A courier at the site's kiosk drops a parcel for a directory entry.

    The parcel goes through the lifecycle's announce and deposit (``parcels.do_announce``,
    ``parcels.do_deposit_parcel``) in one transaction: its events carry ``open_deposit``,
    the entry and the courier; the door opens (by a command, or ``door: kiosk`` by the
    kiosk itself), the recipient is sent their credentials
    (``notify: openlocker``), the carrier its webhooks. With ``confirm: door_closed`` only
    the announce (its compartment held): the kiosk's ``deposit`` event deposits it when the
    door shuts on it, as for any announced parcel, and ``cancel_open_deposit`` calls it off.
    The carrier is the signed-in courier's organization, else ``OPEN_DEPOSIT_ORG``. A retry
    with the same ``Idempotency-Key`` answers as the first time, and nothing opens again.

    Raises ``not_site_kiosk``, ``site_not_found``, ``entry_not_found``, ``entry_inactive``,
    ``courier_not_found``, ``courier_inactive``, ``courier_not_at_site``,
    ``open_deposit_not_allowed``, ``unknown_size``,
    ``site_full``, ``compartment_unavailable``, ``duplicate_tracking_number``,
    ``idempotency_key_reused``.
    """
    principal.check_kiosk(site_id)
    digest = idempotency.request_digest(request.model_dump(mode="json"))
    endpoint = f"open_deposit:{site_id}"
    with ctx.db.sql.transaction() as tx:
        if idempotency_key is not None:
            stored = idempotency.stored_answer(
                tx, principal.org_id, endpoint, idempotency_key, digest
            )
            if stored is not None:
                first = OpenDepositOut.model_validate_json(stored.body)
                return OpenDepositAnswer(stored.status_code, first, True)
        site = access_site_info(ctx, tx, site_id)
        entry = access_entry(tx, site.id, request.entry_id)
        if not entry.active:
            raise Conflict("This directory entry is no longer active.", code="entry_inactive")
        now = ctx.clock()
        courier = request.courier_id
        carrier = (
            _courier_org(tx, site.id, courier)
            if courier is not None
            else _open_deposit_org(tx, principal.actor, now)
        )
        later = request.confirm == "door_closed"
        announced = AnnounceIn(
            tracking_number=request.tracking_number or new_id("OD"),
            site_id=site.id,
            size=request.size,
            recipient=recipient_of(entry),
            notify="openlocker",
            reserve=later,
        )
        data: dict[str, Any] = {"open_deposit": True, "entry_id": entry.id, "courier_id": courier}
        parcel = parcels.do_announce(
            ctx,
            tx,
            principal.actor,
            carrier,
            announced,
            compartment_id=request.compartment_id if later else None,
            **data,
        )
        if not later:
            door = parcels.KIOSK_OPENED if request.door == "kiosk" else parcels.commanded(ctx)
            parcels.do_deposit_parcel(
                ctx,
                tx,
                principal.actor,
                site,
                parcel,
                now,
                door=door,
                compartment_id=request.compartment_id,
                **data,
            )
        assert parcel.compartment_id and parcel.compartment_label and parcel.compartment_size
        answer = OpenDepositOut(
            parcel_id=parcel.id,
            tracking_number=parcel.tracking_number,
            status="announced" if later else "deposited",
            compartment=CompartmentRef(
                id=parcel.compartment_id,
                label=parcel.compartment_label,
                size=parcel.compartment_size,
            ),
            recipient=DirectoryMatch(id=entry.id, display_name=entry.display_name, unit=entry.unit),
            carrier_org_id=carrier,
            courier_id=courier,
            dwell_deadline=parcel.dwell_deadline,
            reserved_until=parcel.reserved_until,
        )
        if idempotency_key is not None:
            idempotency.remember_answer(
                tx,
                ctx,
                principal.org_id,
                endpoint,
                idempotency_key,
                digest,
                201,
                answer.model_dump_json(),
            )
    return OpenDepositAnswer(201, answer)


def cancel_open_deposit(ctx: Context, principal: Principal, site_id: str, parcel_id: str) -> None:
    """Call off an open deposit made with ``confirm: door_closed`` that never went in (no door
    opened, the door shut on an empty compartment): the parcel is cancelled and its
    compartment freed (``parcel.cancelled``). Calling it off again does nothing.

    Raises ``not_site_kiosk``, ``parcel_not_found`` (also for a parcel of another site, or one
    that was not an open deposit) and ``parcel_deposited``."""
    principal.check_kiosk(site_id)
    with ctx.db.sql.transaction() as tx:
        found = parcels.select_parcels(
            tx, "p.id = :id AND p.site_id = :site", {"id": parcel_id, "site": site_id}, lock=True
        )
        announced = tx.scalar(
            "SELECT data FROM audit_events WHERE parcel_id = :id AND name = 'parcel.announced'",
            {"id": parcel_id},
        )
        data = announced if isinstance(announced, dict) else orjson.loads(announced or "{}")
        if not found or not data.get("open_deposit"):
            raise NotFound(f"No open deposit {parcel_id!r} at this site.", code="parcel_not_found")
        (parcel,) = found
        if parcel.status == "cancelled":
            return
        if parcel.status != "announced":
            raise Conflict(
                f"This parcel is {parcel.status}; it can no longer be called off.",
                code="parcel_deposited",
                extra={"status": parcel.status},
            )
        parcels.do_cancel(tx, principal.actor, parcel, ctx.clock())


# --- CSV import ---------------------------------------------------------------------------


@dataclass
class _Plan:
    """What an import will do, worked out before anything is written."""

    creates: list[tuple[CsvRow, EntryIn]]
    updates: list[tuple[CsvRow, EntryRow, EntryIn]]
    deactivations: list[EntryRow]
    report: ImportReport


def _rejected(report: ImportReport, line: int, reason: str) -> None:
    report.rows.append(ImportRow(line=line, outcome="rejected", reason=reason))
    report.rejected += 1


def _plan(
    entries: Iterable[EntryRow], parsed: ParsedCsv, report: ImportReport, deactivate_missing: bool
) -> _Plan:
    """Match each row to an entry (by external id, else email) and check it, in memory."""
    existing = list(entries)
    by_external = {e.external_id: e for e in existing if e.external_id is not None}
    by_email = {e.email: e for e in existing if e.email is not None}
    first_line: dict[tuple[str, str], int] = {}
    claimed: dict[str, int] = {}
    plan = _Plan([], [], [], report)
    for line, reason in parsed.rejected:
        _rejected(report, line, reason)
    for row in parsed.rows:
        values = row.change.model_dump(exclude_unset=True)
        external_id, email = values.get("external_id"), values.get("email")
        repeated = next(
            (
                f"repeats the {name} of line {first_line[(name, value)]}"
                for name, value in (("external_id", external_id), ("email", email))
                if value is not None and (name, value) in first_line
            ),
            None,
        )
        for name, value in (("external_id", external_id), ("email", email)):
            if value is not None:
                first_line.setdefault((name, value), row.line)
        if repeated:
            _rejected(report, row.line, repeated)
            continue
        match = by_external.get(external_id) if external_id is not None else None
        owner = by_email.get(email) if email is not None else None
        if match is None and owner is not None:
            if external_id is not None and owner.external_id not in (None, external_id):
                _rejected(
                    report,
                    row.line,
                    f"email belongs to the entry with external_id {owner.external_id!r}",
                )
                continue
            match = owner
        elif match is not None and owner is not None and owner.id != match.id:
            _rejected(report, row.line, f"email belongs to another entry ({owner.id})")
            continue
        if match is not None and match.id in claimed:
            _rejected(report, row.line, f"is the same entry as line {claimed[match.id]}")
            continue
        if external_id is None:
            # An import never takes an entry's external id away.
            values.pop("external_id", None)
        try:
            new = EntryIn.of_valid(values if match is None else {**current_fields(match), **values})
        except ValueError as error:
            _rejected(report, row.line, str(error))
            continue
        if match is None:
            plan.creates.append((row, new))
            continue
        claimed[match.id] = row.line
        plan.updates.append((row, match, new))
    if deactivate_missing:
        plan.deactivations = [
            e for e in existing if e.id not in claimed and e.active and e.source != "scim"
        ]
    return plan


def import_entries(
    ctx: Context,
    actor: Actor,
    site_id: str,
    parsed: ParsedCsv,
    *,
    deactivate_missing: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Bring a site's directory in line with a CSV file (``directory.csvimport``), whole or
    not at all: rows are matched to entries by external id, else by email, and created or
    updated; with ``deactivate_missing`` the active entries no row matched are deactivated
    (except those an identity provider keeps). Any rejected row, with its line and reason,
    and nothing is written; a dry run writes nothing either. One audit event per entry
    changed and ``directory.imported`` for the file."""
    report = ImportReport(site_id=site_id, applied=False, dry_run=dry_run)
    with ctx.db.sql.transaction() as tx:
        site = access_site_info(ctx, tx, site_id)
        _lock(tx, site.id)
        rows = tx.all(_SELECT + " WHERE d.site_id = :site", {"site": site.id})
        plan = _plan((_entry(tx, r) for r in rows), parsed, report, deactivate_missing)
        now = ctx.clock()
        new_rows = [_new_row(site.id, entry, "csv", now) for _, entry in plan.creates]
        report.rows += [
            ImportRow(line=row.line, outcome="created", entry_id=created.id)
            for (row, _), created in zip(plan.creates, new_rows, strict=True)
        ]
        report.created = len(new_rows)
        writes: list[tuple[EntryRow, dict[str, Any]]] = []
        for row, entry, new in plan.updates:
            changes = _changes(entry, new, "csv")
            outcome = (
                "unchanged"
                if not changes
                else "deactivated"
                if entry.active and not new.active
                else "updated"
            )
            report.rows.append(ImportRow(line=row.line, outcome=outcome, entry_id=entry.id))
            setattr(report, outcome, getattr(report, outcome) + 1)
            if changes:
                writes.append((entry, changes))
        for entry in plan.deactivations:
            report.rows.append(ImportRow(outcome="deactivated", entry_id=entry.id))
            report.deactivated += 1
            writes.append((entry, {"active": False}))
        report.rows.sort(key=lambda r: (r.line is None, r.line or 0))
        if report.rejected or dry_run:
            for line in report.rows:
                if line.outcome == "created":
                    line.entry_id = None  # an id is given only when the entry is made
            return report
        _insert(tx, new_rows)
        record_all(
            tx,
            [_created(actor, created, now) for created in new_rows]
            + [do_set_entry(tx, actor, e, changes, now, source="csv") for e, changes in writes],
        )
        record(
            tx,
            "directory.imported",
            actor,
            now,
            site_id=site.id,
            data={
                name: getattr(report, name)
                for name in ("created", "updated", "deactivated", "unchanged")
            },
        )
        report.applied = True
    return report
