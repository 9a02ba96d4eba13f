"""The kiosk's own SQLite: what it needs to decide alone, and what it has to tell the server.

One file, ``kiosk.db`` under ``--data``, in WAL mode. A transaction is committed before the
door it allows is pulsed, so a killed process loses nothing. The commit does not wait for the
disk: a flusher thread syncs the write-ahead log (fsync) right after each commit, beside the
pulse, and checkpoints it; a disk's fsync can take tens of milliseconds under load, a door
should not, and neither should the next recipient
(``docs/decisions/0013-kiosk-journal-and-overlays.md``). Nothing here holds a plain code:
credentials and courier codes are the server's kiosk digests.

Local changes the server has not heard of yet are overlays: a used credential, a compartment
emptied or filled, a parcel deposited. Each names the queued event that reports it and wins
over what a pull says for as long as that event is queued; once the server has answered the
event, the next pull's word is the truth (see ``docs/kiosk.md``, "Offline").
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from openlocker.core.clock import as_utc
from openlocker.core.ids import new_id

#: Bumped when the schema changes; an older file is rebuilt by a full sync.
SCHEMA_VERSION = 1
#: Credentials used here and no longer active are kept this long to answer ``code_used``.
TOMBSTONE_DAYS = 7
#: The flusher checkpoints the write-ahead log into the database file beyond this size.
CHECKPOINT_BYTES = 4 * 2**20
#: Commands already run are remembered this long, so a late repeat is not run again.
COMMAND_MEMORY_DAYS = 7

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS public_keys (version INTEGER PRIMARY KEY, public_key TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sizes (
    code TEXT PRIMARY KEY, width_mm INTEGER NOT NULL, height_mm INTEGER NOT NULL,
    depth_mm INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS compartments (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, label TEXT NOT NULL, size TEXT NOT NULL,
    temperature TEXT NOT NULL, state TEXT NOT NULL, door TEXT NOT NULL,
    board INTEGER, lock INTEGER,
    local_state TEXT, local_event TEXT);
CREATE TABLE IF NOT EXISTS credentials (
    id TEXT PRIMARY KEY, parcel_id TEXT NOT NULL, order_id TEXT,
    pin TEXT, qr TEXT, phone TEXT, expires_at TEXT NOT NULL, compartments TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1, used_at TEXT, used_event TEXT,
    age_restricted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS ix_credentials_pin ON credentials (pin);
CREATE INDEX IF NOT EXISTS ix_credentials_qr ON credentials (qr);
CREATE TABLE IF NOT EXISTS couriers (
    id TEXT PRIMARY KEY, org_id TEXT NOT NULL, name TEXT NOT NULL, code TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_couriers_code ON couriers (code);
CREATE TABLE IF NOT EXISTS expected (
    parcel_id TEXT PRIMARY KEY, tracking_number TEXT NOT NULL, org_id TEXT NOT NULL,
    size TEXT, temperature TEXT NOT NULL, compartment_id TEXT, deposited_event TEXT,
    order_id TEXT);
CREATE INDEX IF NOT EXISTS ix_expected_tracking ON expected (tracking_number);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    at TEXT NOT NULL, body TEXT NOT NULL, held INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS pulses (
    id TEXT PRIMARY KEY, compartment_id TEXT NOT NULL, board INTEGER NOT NULL,
    lock INTEGER NOT NULL, event_id TEXT, state TEXT NOT NULL, intended_at TEXT NOT NULL,
    settled_at TEXT);
CREATE INDEX IF NOT EXISTS ix_pulses_state ON pulses (state);
CREATE TABLE IF NOT EXISTS door_tasks (
    compartment_id TEXT PRIMARY KEY, purpose TEXT NOT NULL, parcel_id TEXT,
    courier_id TEXT, opened_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    bucket TEXT PRIMARY KEY, failures INTEGER NOT NULL, last_failure_at TEXT,
    locked_until TEXT);
CREATE TABLE IF NOT EXISTS commands (id TEXT PRIMARY KEY, result TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alarms (
    kind TEXT NOT NULL, subject TEXT NOT NULL, raised_at TEXT NOT NULL,
    PRIMARY KEY (kind, subject));
"""

#: Columns added after a table was first made, by table: a file without them gets them and
#: syncs afresh (its rows lack what the columns say).
_ADDED = {
    "credentials": ("age_restricted INTEGER NOT NULL DEFAULT 0",),
    "expected": ("order_id TEXT",),
}

#: The pulse journal's states: written ``intended`` before the pulse, settled after it.
INTENDED, OPENED, STUCK, FAILED, INTERRUPTED = (
    "intended",
    "opened",
    "stuck",
    "failed",
    "interrupted",
)


def _time(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else as_utc(datetime.fromisoformat(text))


@dataclass(frozen=True, slots=True)
class CompartmentRef:
    """A compartment as a credential names it."""

    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Compartment:
    """A compartment of the site as the kiosk sees it: ``state`` is the server's word with the
    kiosk's own changes over it; ``board`` and ``lock`` are None when the map has none."""

    id: str
    label: str
    size: str
    temperature: str
    state: str
    door: str
    board: int | None
    lock: int | None

    @property
    def address(self) -> tuple[int, int] | None:
        return None if self.board is None or self.lock is None else (self.board, self.lock)

    def ref(self) -> dict[str, Any]:
        """What the kiosk's answers show of it."""
        return {"id": self.id, "label": self.label, "size": self.size}


@dataclass(frozen=True, slots=True)
class Credential:
    """An active (or locally used) credential: digests, never codes."""

    id: str
    parcel_id: str
    order_id: str | None
    phone: str | None
    expires_at: datetime
    compartments: tuple[CompartmentRef, ...]
    active: bool
    used_at: datetime | None
    #: An order for adults only (``docs/orders.md``): the pickup answer says so.
    age_restricted: bool = False


@dataclass(frozen=True, slots=True)
class Courier:
    id: str
    org_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Expected:
    """An announced parcel a courier may deposit here; ``deposited`` once done at this kiosk."""

    parcel_id: str
    tracking_number: str
    org_id: str
    size: str | None
    temperature: str
    compartment_id: str | None
    deposited: bool
    #: The order an item belongs to (its tracking number is ``<reference>#<n>``).
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class SizeClass:
    code: str
    width_mm: int
    height_mm: int
    depth_mm: int


@dataclass(frozen=True, slots=True)
class Attempts:
    """Wrong codes in one bucket (as ``access.attempts`` counts them)."""

    failures: int
    last_failure_at: datetime | None
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    seq: int
    id: str
    type: str
    at: datetime
    body: dict[str, Any]

    def wire(self) -> dict[str, Any]:
        """The event as it is pushed: ``id``, ``seq``, ``type``, ``at`` and its fields."""
        return {"id": self.id, "seq": self.seq, "type": self.type, "at": _time(self.at)} | (
            self.body
        )


@dataclass(frozen=True, slots=True)
class Pulse:
    """A journalled unlock: written before the pulse, settled after it."""

    id: str
    compartment_id: str
    address: tuple[int, int]
    event_id: str | None
    state: str


@dataclass(frozen=True, slots=True)
class DoorTask:
    """Why a door the kiosk opened is open, so its closing does the right thing."""

    compartment_id: str
    purpose: str
    parcel_id: str | None
    courier_id: str | None
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Command:
    """A door command from the server (a remote open, a pickup by link)."""

    id: str
    type: str
    compartment_id: str | None
    parcel_id: str | None
    reason: str | None
    expires_at: datetime | None


class Tx:
    """One write transaction on the store (``KioskStore.write()``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def queue(self, kind: str, at: datetime, body: Mapping[str, Any], *, held: bool = False) -> str:
        """Queue an event for the server; ``held`` keeps it (and every later one) back from
        the push until ``release`` (while the doors it reports are being pulsed)."""
        event_id = new_id("kev")
        self.execute(
            "INSERT INTO events (id, type, at, body, held) VALUES (?, ?, ?, ?, ?)",
            (event_id, kind, _time(at), json.dumps(dict(body)), int(held)),
        )
        return event_id

    def queue_refusal(self, at: datetime, method: str, reason: str) -> str:
        """Queue a ``refused`` event, or add one to the count of the newest queued event when
        it is a refusal of the same method and reason (a burst of wrong codes is one event)."""
        row = self.execute(
            "SELECT id, body FROM events WHERE seq = (SELECT max(seq) FROM events)"
            " AND type = 'refused' AND held = 0"
        ).fetchone()
        if row is not None:
            body = json.loads(row[1])
            if body["method"] == method and body["reason"] == reason:
                body["count"] += 1
                body["last_at"] = _time(at)
                self.execute("UPDATE events SET body = ? WHERE id = ?", (json.dumps(body), row[0]))
                return str(row[0])
        return self.queue("refused", at, {"method": method, "reason": reason, "count": 1})

    def update_event(self, event_id: str, changes: Mapping[str, Any]) -> None:
        row = self.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
        body = json.loads(row[0]) | dict(changes)
        self.execute("UPDATE events SET body = ? WHERE id = ?", (json.dumps(body), event_id))

    def drop_event(self, event_id: str) -> None:
        self.execute("DELETE FROM events WHERE id = ?", (event_id,))

    def release(self, event_id: str) -> None:
        self.execute("UPDATE events SET held = 0 WHERE id = ?", (event_id,))

    def intend_pulse(
        self, compartment: Compartment, at: datetime, event_id: str | None = None
    ) -> Pulse:
        """Journal an unlock before it happens (commit before pulsing)."""
        address = compartment.address
        if address is None:
            raise ValueError(f"compartment {compartment.id} has no board and lock")
        pulse = Pulse(new_id("pls"), compartment.id, address, event_id, INTENDED)
        self.execute(
            "INSERT INTO pulses (id, compartment_id, board, lock, event_id, state, intended_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pulse.id, compartment.id, *address, event_id, INTENDED, _time(at)),
        )
        return pulse

    def settle_pulse(self, pulse_id: str, state: str, at: datetime) -> None:
        self.execute(
            "UPDATE pulses SET state = ?, settled_at = ? WHERE id = ?",
            (state, _time(at), pulse_id),
        )

    def set_task(
        self,
        compartment_id: str,
        purpose: str,
        at: datetime,
        *,
        parcel_id: str | None = None,
        courier_id: str | None = None,
    ) -> None:
        self.execute(
            "INSERT INTO door_tasks (compartment_id, purpose, parcel_id, courier_id, opened_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (compartment_id) DO UPDATE SET"
            " purpose = excluded.purpose, parcel_id = excluded.parcel_id,"
            " courier_id = excluded.courier_id, opened_at = excluded.opened_at",
            (compartment_id, purpose, parcel_id, courier_id, _time(at)),
        )

    def drop_task(self, compartment_id: str) -> None:
        self.execute("DELETE FROM door_tasks WHERE compartment_id = ?", (compartment_id,))

    def set_local_state(self, compartment_id: str, state: str, event_id: str) -> None:
        self.execute(
            "UPDATE compartments SET local_state = ?, local_event = ? WHERE id = ?",
            (state, event_id, compartment_id),
        )

    def use_credential(self, credential_id: str, at: datetime, event_id: str | None) -> None:
        self.execute(
            "UPDATE credentials SET used_at = ?, used_event = ? WHERE id = ?",
            (_time(at), event_id, credential_id),
        )

    def unuse_credential(self, credential_id: str) -> None:
        self.execute(
            "UPDATE credentials SET used_at = NULL, used_event = NULL WHERE id = ?",
            (credential_id,),
        )

    def mark_deposited(self, parcel_id: str, event_id: str) -> None:
        self.execute(
            "UPDATE expected SET deposited_event = ? WHERE parcel_id = ?", (event_id, parcel_id)
        )

    def save_attempts(self, bucket: str, attempts: Attempts) -> None:
        self.execute(
            "INSERT INTO attempts (bucket, failures, last_failure_at, locked_until)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (bucket) DO UPDATE SET"
            " failures = excluded.failures, last_failure_at = excluded.last_failure_at,"
            " locked_until = excluded.locked_until",
            (
                bucket,
                attempts.failures,
                None if attempts.last_failure_at is None else _time(attempts.last_failure_at),
                None if attempts.locked_until is None else _time(attempts.locked_until),
            ),
        )

    def remember_command(
        self, command_id: str, result: str, at: datetime, *, replace: bool = False
    ) -> bool:
        """Note a command as run; False when it was run before (nothing written), unless
        ``replace`` (its outcome is now known)."""
        conflict = "DO UPDATE SET result = excluded.result" if replace else "DO NOTHING"
        cursor = self.execute(
            f"INSERT INTO commands (id, result, at) VALUES (?, ?, ?) ON CONFLICT (id) {conflict}",
            (command_id, result, _time(at)),
        )
        return cursor.rowcount == 1

    def raise_alarm(self, kind: str, subject: str, at: datetime) -> bool:
        """Note an alarm as raised; False when it already was (so it is raised once)."""
        cursor = self.execute(
            "INSERT INTO alarms (kind, subject, raised_at) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, subject) DO NOTHING",
            (kind, subject, _time(at)),
        )
        return cursor.rowcount == 1

    def clear_alarm(self, kind: str, subject: str) -> bool:
        """Note an alarm as cleared; False when it was not raised."""
        cursor = self.execute("DELETE FROM alarms WHERE kind = ? AND subject = ?", (kind, subject))
        return cursor.rowcount == 1

    def set_meta(self, key: str, value: Any) -> None:
        self.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )


class KioskStore:
    """The kiosk's SQLite file. One connection, used from the agent's event loop thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # Autocommit mode: every write runs in an explicit BEGIN IMMEDIATE … COMMIT.
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a commit does not sync; the flusher does, off the agent's loop, and runs
        # the checkpoints too (each syncs twice), so neither ever holds up a pickup.
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("PRAGMA wal_autocheckpoint = 0")
        self._conn.execute(f"PRAGMA journal_size_limit = {CHECKPOINT_BYTES}")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(
                f"{path} has schema version {version}, this kiosk knows {SCHEMA_VERSION}:"
                " move the file away and the kiosk starts afresh with a full sync"
            )
        self._conn.executescript(_SCHEMA)
        self._add_columns()
        self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Kept open to fsync the log: SQLite keeps the file while a connection is open.
        self._wal = os.open(f"{path}-wal", os.O_RDONLY | os.O_CREAT, 0o600)
        self._dirty = threading.Event()
        self._closing = False
        # A daemon: a store its owner never closed must not keep the process from exiting.
        # What was committed is in the log already; only a power cut could lose the last
        # commit's fsync then, as it could between a commit and its flush anyway.
        self._flusher = threading.Thread(
            target=self._flush_forever, name="kiosk store flusher", daemon=True
        )
        self._flusher.start()

    def _add_columns(self) -> None:
        added = False
        for table, columns in _ADDED.items():
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
                    added = True
        if added:
            # The rows synced before lack the new columns: the next pull sends them whole.
            self._conn.execute("DELETE FROM meta WHERE key = 'cursor'")

    def close(self) -> None:
        """Sync what was committed, stop the flusher and close the file."""
        self._closing = True
        self._dirty.set()
        self._flusher.join()
        self.flush()
        self._conn.close()
        os.close(self._wal)

    def flush(self) -> None:
        """Sync the write-ahead log to disk now: every transaction committed so far survives
        a power cut."""
        os.fsync(self._wal)

    def _flush_forever(self) -> None:
        checkpoints = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        checkpoints.execute("PRAGMA busy_timeout = 5000")
        try:
            while True:
                self._dirty.wait()
                self._dirty.clear()
                if self._closing:
                    return
                self.flush()
                if os.fstat(self._wal).st_size > CHECKPOINT_BYTES:
                    # PASSIVE: copies what it can without waiting for, or blocking, a writer.
                    checkpoints.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            checkpoints.close()

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """One transaction: committed when the block ends (the flusher syncs it to disk a
        moment later), rolled back on error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(self._conn)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        self._dirty.set()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._conn.execute(sql, params).fetchall()

    # --- what the server sent ----------------------------------------------------------------

    def meta(self, key: str, default: Any = None) -> Any:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if row is None else json.loads(row[0])

    def public_keys(self) -> dict[int, str]:
        """Every valid site key version and its public key (base64url)."""
        return {int(v): str(k) for v, k in self._all("SELECT version, public_key FROM public_keys")}

    def sizes(self) -> list[SizeClass]:
        return [SizeClass(*row) for row in self._all("SELECT * FROM sizes ORDER BY code")]

    _COMPARTMENT = (
        "SELECT id, label, size, temperature, coalesce(local_state, state), door, board, lock"
        " FROM compartments"
    )

    def compartments(self) -> list[Compartment]:
        return [Compartment(*row) for row in self._all(f"{self._COMPARTMENT} ORDER BY position")]

    def compartment(self, compartment_id: str) -> Compartment | None:
        row = self._one(f"{self._COMPARTMENT} WHERE id = ?", (compartment_id,))
        return None if row is None else Compartment(*row)

    _CREDENTIAL = (
        "SELECT id, parcel_id, order_id, phone, expires_at, compartments, active, used_at,"
        " age_restricted FROM credentials"
    )

    def _credential(self, row: Any) -> Credential:
        ident, parcel_id, order_id, phone, expires_at, compartments, active, used_at, adult = row
        refs = tuple(CompartmentRef(c["id"], c["label"]) for c in json.loads(compartments))
        return Credential(
            ident,
            parcel_id,
            order_id,
            phone,
            _parse(expires_at),  # type: ignore[arg-type]
            refs,
            bool(active),
            _parse(used_at),
            bool(adult),
        )

    def credential_by(self, kind: str, digest: str) -> Credential | None:
        """The credential whose ``kind`` (``pin`` or ``qr``) digest is ``digest``: an active
        one if any, else a used one (so a second use answers ``code_used``)."""
        column = {"pin": "pin", "qr": "qr"}[kind]
        row = self._one(
            f"{self._CREDENTIAL} WHERE {column} = ? ORDER BY active DESC, used_at IS NULL DESC"
            " LIMIT 1",
            (digest,),
        )
        return None if row is None else self._credential(row)

    def credential(self, credential_id: str) -> Credential | None:
        row = self._one(f"{self._CREDENTIAL} WHERE id = ?", (credential_id,))
        return None if row is None else self._credential(row)

    def handed_over(self, parcel_id: str) -> bool:
        """True when a credential of ``parcel_id`` was used at this kiosk (not elsewhere)."""
        row = self._one(
            "SELECT 1 FROM credentials WHERE parcel_id = ? AND used_event IS NOT NULL LIMIT 1",
            (parcel_id,),
        )
        return row is not None

    def count_credentials(self) -> int:
        return int(self._one("SELECT count(*) FROM credentials WHERE active")[0])

    def courier_by_code(self, digest: str) -> Courier | None:
        row = self._one("SELECT id, org_id, name FROM couriers WHERE code = ?", (digest,))
        return None if row is None else Courier(*row)

    _EXPECTED = (
        "SELECT parcel_id, tracking_number, org_id, size, temperature, compartment_id,"
        " deposited_event IS NOT NULL, order_id FROM expected"
    )

    def _expected(self, where: str, params: Sequence[Any]) -> list[Expected]:
        return [
            Expected(p, t, o, size, temperature, c, bool(deposited), order)
            for p, t, o, size, temperature, c, deposited, order in self._all(
                f"{self._EXPECTED} WHERE {where}", params
            )
        ]

    def expected_by_tracking(self, tracking_number: str) -> list[Expected]:
        return self._expected("tracking_number = ?", (tracking_number,))

    def order_items(self, org_id: str) -> list[Expected]:
        """The announced items of ``org_id``'s orders here (loaded ones too, while their
        deposit events are queued), by tracking number."""
        return self._expected(
            "order_id IS NOT NULL AND org_id = ? ORDER BY tracking_number", (org_id,)
        )

    # --- the kiosk's own records -------------------------------------------------------------

    def attempts(self, bucket: str) -> Attempts | None:
        row = self._one(
            "SELECT failures, last_failure_at, locked_until FROM attempts WHERE bucket = ?",
            (bucket,),
        )
        return None if row is None else Attempts(row[0], _parse(row[1]), _parse(row[2]))

    def queued(self) -> int:
        return int(self._one("SELECT count(*) FROM events")[0])

    def pushable(self, limit: int) -> list[QueuedEvent]:
        """The oldest queued events, in order, up to the first one still held."""
        held = self._one("SELECT min(seq) FROM events WHERE held")[0]
        rows = self._all(
            "SELECT seq, id, type, at, body FROM events WHERE seq < ? ORDER BY seq LIMIT ?",
            (held if held is not None else 2**62, limit),
        )
        return [
            QueuedEvent(seq, ident, kind, _parse(at), json.loads(body))  # type: ignore[arg-type]
            for seq, ident, kind, at, body in rows
        ]

    def events(self) -> list[QueuedEvent]:
        """Every queued event in order (held ones too); for tests and the operator."""
        return [
            QueuedEvent(seq, ident, kind, _parse(at), json.loads(body))  # type: ignore[arg-type]
            for seq, ident, kind, at, body in self._all(
                "SELECT seq, id, type, at, body FROM events ORDER BY seq"
            )
        ]

    def pulses(self, state: str | None = None) -> list[Pulse]:
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        return [
            Pulse(ident, compartment_id, (board, lock), event_id, pulse_state)
            for ident, compartment_id, board, lock, event_id, pulse_state in self._all(
                "SELECT id, compartment_id, board, lock, event_id, state FROM pulses"
                f" {where} ORDER BY intended_at, id",
                params,
            )
        ]

    def tasks(self) -> dict[str, DoorTask]:
        return {
            row[0]: DoorTask(row[0], row[1], row[2], row[3], _parse(row[4]))  # type: ignore[arg-type]
            for row in self._all(
                "SELECT compartment_id, purpose, parcel_id, courier_id, opened_at FROM door_tasks"
            )
        }

    def command_result(self, command_id: str) -> str | None:
        row = self._one("SELECT result FROM commands WHERE id = ?", (command_id,))
        return None if row is None else str(row[0])

    def raised_alarms(self) -> list[tuple[str, str]]:
        return [(kind, subject) for kind, subject in self._all("SELECT kind, subject FROM alarms")]

    # --- applying a pull ---------------------------------------------------------------------

    def forget_synced(self) -> None:
        """Drop what the server sent and the cursor, for a sync afresh; keep the queue, the
        journal and the credentials used here whose events are queued (their use stands)."""
        with self.write() as tx:
            tx.execute(
                "DELETE FROM credentials WHERE used_event IS NULL"
                " OR used_event NOT IN (SELECT id FROM events)"
            )
            tx.execute("DELETE FROM couriers")
            tx.execute(
                "DELETE FROM expected WHERE deposited_event IS NULL"
                " OR deposited_event NOT IN (SELECT id FROM events)"
            )
            tx.execute("DELETE FROM meta WHERE key = 'cursor'")

    def apply_pull(self, page: Mapping[str, Any], now: datetime) -> None:
        """Apply one page of ``GET …/kiosk/sync`` and its cursor in one transaction.

        Whole lists (site, keys, sizes, compartments) replace what was there; the others are
        changes, applied in order and idempotently (a replayed cursor sends them again).
        Overlays whose event is still queued stay over what the page says.
        """
        with self.write() as tx:
            queued = {row[0] for row in tx.execute("SELECT id FROM events")}
            tx.set_meta("site", page["site"])
            tx.set_meta("digest_key", page["digest_key"])
            tx.execute("DELETE FROM public_keys")
            tx.conn.executemany(
                "INSERT INTO public_keys (version, public_key) VALUES (?, ?)",
                [(k["version"], k["public_key"]) for k in page["public_keys"]],
            )
            if "sizes" in page:
                tx.execute("DELETE FROM sizes")
                tx.conn.executemany(
                    "INSERT INTO sizes VALUES (?, ?, ?, ?)",
                    [
                        (s["code"], s["width_mm"], s["height_mm"], s["depth_mm"])
                        for s in page["sizes"]
                    ],
                )
            if page.get("compartments") is not None:
                # Sent whole with the last page of a run (null while ``more`` is true).
                self._apply_compartments(tx, page["compartments"], queued)
            self._apply_credentials(tx, page.get("credentials", ()), queued, now)
            for courier in page.get("couriers", ()):
                if courier["active"] and courier.get("code"):
                    tx.execute(
                        "INSERT OR REPLACE INTO couriers (id, org_id, name, code)"
                        " VALUES (?, ?, ?, ?)",
                        (courier["id"], courier["org_id"], courier["name"], courier["code"]),
                    )
                else:
                    tx.execute("DELETE FROM couriers WHERE id = ?", (courier["id"],))
            self._apply_expected(tx, page.get("expected", ()), queued)
            tx.set_meta("cursor", page["cursor"])
            tx.set_meta("last_sync", _time(now))
            tx.execute(
                "DELETE FROM credentials WHERE NOT active AND used_at < ?",
                (_time(now - timedelta(days=TOMBSTONE_DAYS)),),
            )
            tx.execute(
                "DELETE FROM commands WHERE at < ?",
                (_time(now - timedelta(days=COMMAND_MEMORY_DAYS)),),
            )

    @staticmethod
    def _apply_compartments(
        tx: Tx, compartments: Iterable[Mapping[str, Any]], queued: set[str]
    ) -> None:
        kept = {
            row[0]: (row[1], row[2])
            for row in tx.execute(
                "SELECT id, local_state, local_event FROM compartments"
                " WHERE local_event IS NOT NULL"
            )
        }
        tx.execute("DELETE FROM compartments")
        rows = []
        for position, c in enumerate(compartments):
            local_state, local_event = kept.get(c["id"], (None, None))
            if local_event not in queued:
                local_state, local_event = None, None
            rows.append(
                (
                    c["id"],
                    position,
                    c["label"],
                    c["size"],
                    c.get("temperature", "ambient"),
                    c["state"],
                    c.get("door", "closed"),
                    c.get("board"),
                    c.get("lock"),
                    local_state,
                    local_event,
                )
            )
        tx.conn.executemany("INSERT INTO compartments VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)

    @staticmethod
    def _apply_credentials(
        tx: Tx, credentials: Iterable[Mapping[str, Any]], queued: set[str], now: datetime
    ) -> None:
        for c in credentials:
            row = tx.execute(
                "SELECT used_at, used_event FROM credentials WHERE id = ?", (c["id"],)
            ).fetchone()
            used_at, used_event = row if row is not None else (None, None)
            if used_at is not None and used_event not in queued and c["active"]:
                # The server heard of the local use and still calls it active: it gave the
                # code back (an order's item left behind), so the use is forgotten.
                used_at = used_event = None
            if not c["active"] and used_at is None:
                if not c.get("used"):
                    tx.execute("DELETE FROM credentials WHERE id = ?", (c["id"],))
                    continue
                # Used elsewhere (a link, another kiosk): kept a while to answer code_used.
                used_at = _time(now)
            tx.execute(
                "INSERT OR REPLACE INTO credentials (id, parcel_id, order_id, pin, qr, phone,"
                " expires_at, compartments, active, used_at, used_event, age_restricted)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c["id"],
                    c["parcel_id"],
                    c.get("order_id"),
                    c.get("pin"),
                    c.get("qr"),
                    c.get("phone"),
                    _time(datetime.fromisoformat(c["expires_at"])),
                    json.dumps([{"id": x["id"], "label": x["label"]} for x in c["compartments"]]),
                    int(bool(c["active"])),
                    used_at,
                    used_event,
                    int(bool(c.get("age_restricted"))),
                ),
            )

    @staticmethod
    def _apply_expected(tx: Tx, expected: Iterable[Mapping[str, Any]], queued: set[str]) -> None:
        for e in expected:
            row = tx.execute(
                "SELECT deposited_event FROM expected WHERE parcel_id = ?", (e["parcel_id"],)
            ).fetchone()
            deposited = row[0] if row is not None and row[0] in queued else None
            if not e["active"] and deposited is None:
                tx.execute("DELETE FROM expected WHERE parcel_id = ?", (e["parcel_id"],))
                continue
            tx.execute(
                "INSERT OR REPLACE INTO expected (parcel_id, tracking_number, org_id, size,"
                " temperature, compartment_id, deposited_event, order_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e["parcel_id"],
                    e["tracking_number"],
                    e["org_id"],
                    e.get("size"),
                    e.get("temperature", "ambient"),
                    e.get("compartment_id"),
                    deposited,
                    e.get("order_id"),
                ),
            )
