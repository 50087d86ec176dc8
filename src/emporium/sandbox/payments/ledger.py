"""The sandbox provider's rules and its durable ledger (one SQLite file).

What a real card provider gives its merchants, so that payment-service can be written (and
tested) against the hard cases, not only the happy one:

- every payment is keyed by the merchant's idempotency key (payment-service sends its payment
  id): the same request again answers the first outcome and never captures twice; the same
  key with other details is refused;
- `tok_timeout` does not fail: it *hangs*, then captures `hang_seconds` later, after the
  merchant's deadline has passed (a capture the caller gave up on). A void that arrives
  first cancels it; a lookup meanwhile answers `processing`;
- a void of an unknown key fences it (a charge arriving later answers `voided`); a void of a
  capture reverses it; a refund gives a capture back; both are idempotent;
- faults on demand: the next N calls of an operation fail before doing anything (`fail`) or
  do it and then lose the answer (`lost`), which is what a timeout looks like to the caller;
- the ledger records what was really captured, refunded and reversed per key: the thing
  "each paid order charged exactly once" is checked against.

The store is synchronous SQLite (WAL, `synchronous=FULL`: a provider's books survive kill -9);
the HTTP layer calls it from a worker thread, one operation at a time.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

DEFAULT_HANG_SECONDS: Final = 8.0


class Behaviour(StrEnum):
    APPROVE = "approve"
    DECLINE = "decline"
    HANG = "hang"


@dataclass(frozen=True)
class Token:
    token: str
    behaviour: Behaviour
    decline_reason: str | None = None


TOKENS: Final[dict[str, Token]] = {
    t.token: t
    for t in (
        Token("tok_visa", Behaviour.APPROVE),
        Token("tok_chargeDeclined", Behaviour.DECLINE, "card_declined"),
        Token("tok_chargeDeclinedInsufficientFunds", Behaviour.DECLINE, "insufficient_funds"),
        Token("tok_timeout", Behaviour.HANG),
    )
}


class Status(StrEnum):
    PROCESSING = "processing"
    CAPTURED = "captured"
    DECLINED = "declined"
    VOIDED = "voided"
    REFUNDED = "refunded"


class Operation(StrEnum):
    CHARGE = "charge"
    LOOKUP = "lookup"
    VOID = "void"
    REFUND = "refund"
    TOKEN = "token"  # the token check (GET /v1/tokens/{token}): a provider that is down


class FaultMode(StrEnum):
    FAIL = "fail"  # answer an error before doing anything
    LOST = "lost"  # do it, then answer an error (the caller cannot tell it happened)


class SandboxError(Exception):
    """A refusal with an HTTP status and a machine-readable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Entry:
    """One payment as the provider's books have it."""

    id: str
    reference: str  # the merchant's own reference (payment-service sends the order id)
    status: Status
    amount_minor: int
    currency: str
    token: str
    reason: str | None
    captures: int
    captured_minor: int
    refunded_minor: int
    reversed_minor: int
    complete_at: float | None
    created_at: float
    updated_at: float

    @property
    def net_minor(self) -> int:
        """What the customer is out of pocket for this key right now."""
        return self.captured_minor - self.refunded_minor - self.reversed_minor

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["net_minor"] = self.net_minor
        return data


_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY, reference TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    amount_minor INTEGER NOT NULL,
    currency TEXT NOT NULL, token TEXT NOT NULL, reason TEXT,
    captures INTEGER NOT NULL DEFAULT 0, captured_minor INTEGER NOT NULL DEFAULT 0,
    refunded_minor INTEGER NOT NULL DEFAULT 0, reversed_minor INTEGER NOT NULL DEFAULT 0,
    complete_at REAL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS payments_processing ON payments (status, complete_at);
CREATE TABLE IF NOT EXISTS faults (
    operation TEXT PRIMARY KEY, mode TEXT NOT NULL, remaining INTEGER NOT NULL);
"""
_COLUMNS = (
    "id, reference, status, amount_minor, currency, token, reason, captures, captured_minor, "
    "refunded_minor, reversed_minor, complete_at, created_at, updated_at"
)


def _entry(row: tuple[Any, ...]) -> Entry:
    values = list(row)
    values[2] = Status(values[2])
    return Entry(*values)


class Ledger:
    """The provider's books; every public method is one transaction."""

    def __init__(
        self,
        path: Path,
        *,
        hang_seconds: float = DEFAULT_HANG_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self.hang_seconds = hang_seconds
        self.clock = clock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _get(self, db: sqlite3.Connection, key: str) -> Entry | None:
        row = db.execute(f"SELECT {_COLUMNS} FROM payments WHERE id = ?", (key,)).fetchone()
        return _entry(row) if row else None

    def _set(self, db: sqlite3.Connection, key: str, **values: Any) -> Entry:
        values["updated_at"] = self.clock()
        assignments = ", ".join(f"{name} = ?" for name in values)
        db.execute(f"UPDATE payments SET {assignments} WHERE id = ?", (*values.values(), key))
        entry = self._get(db, key)
        assert entry is not None
        return entry

    # -- faults ------------------------------------------------------------------------------

    def set_fault(self, operation: Operation, mode: FaultMode, count: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO faults (operation, mode, remaining) VALUES (?, ?, ?) "
                "ON CONFLICT (operation) DO UPDATE SET mode = excluded.mode, "
                "remaining = excluded.remaining",
                (operation.value, mode.value, count),
            )

    def clear_faults(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM faults")

    def take_fault(self, operation: Operation) -> FaultMode | None:
        """The fault armed for the next call of `operation`, used up by this call."""
        with self._tx() as db:
            row = db.execute(
                "SELECT mode, remaining FROM faults WHERE operation = ?", (operation.value,)
            ).fetchone()
            if row is None or row[1] <= 0:
                return None
            db.execute(
                "UPDATE faults SET remaining = remaining - 1 WHERE operation = ?",
                (operation.value,),
            )
            return FaultMode(row[0])

    # -- the provider's operations -----------------------------------------------------------

    def charge(
        self, key: str, amount_minor: int, currency: str, token: str, reference: str = ""
    ) -> tuple[Entry, bool]:
        """Authorise and capture once per key (see the module docstring for each token).
        Also says whether this call created the payment (only that call hangs)."""
        known = TOKENS.get(token)
        if known is None:
            raise SandboxError(400, "unknown_token", f"unknown payment token {token!r}")
        if amount_minor <= 0 or len(currency) != 3:
            raise SandboxError(400, "invalid_amount", "amount and currency are required")
        with self._tx() as db:
            existing = self._get(db, key)
            if existing is not None:
                fenced = existing.status is Status.VOIDED and not existing.token
                same = (existing.amount_minor, existing.currency, existing.token) == (
                    amount_minor,
                    currency,
                    token,
                )
                if not (same or fenced):
                    raise SandboxError(409, "idempotency_mismatch", "key reused with other details")
                return existing, False
            now = self.clock()
            status, reason, complete_at = Status.CAPTURED, None, None
            if known.behaviour is Behaviour.DECLINE:
                status, reason = Status.DECLINED, known.decline_reason
            elif known.behaviour is Behaviour.HANG:
                status, complete_at = Status.PROCESSING, now + self.hang_seconds
            captured = amount_minor if status is Status.CAPTURED else 0
            db.execute(
                f"INSERT INTO payments ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, reference, status.value, amount_minor, currency, token, reason,
                 int(captured > 0), captured, 0, 0, complete_at, now, now),
            )  # fmt: skip
            entry = self._get(db, key)
        assert entry is not None
        return entry, True

    def lookup(self, key: str) -> Entry | None:
        with self._tx() as db:
            return self._get(db, key)

    def complete_due(self) -> int:
        """Captures whose hang is over (also after a restart of the provider)."""
        with self._tx() as db:
            due = db.execute(
                "SELECT id FROM payments WHERE status = ? AND complete_at <= ?",
                (Status.PROCESSING.value, self.clock()),
            ).fetchall()
            for (key,) in due:
                entry = self._get(db, key)
                assert entry is not None
                self._set(
                    db,
                    key,
                    status=Status.CAPTURED.value,
                    captures=entry.captures + 1,
                    captured_minor=entry.amount_minor,
                    complete_at=None,
                )
            return len(due)

    def void(self, key: str) -> Entry:
        """Nothing is ever taken for this key: cancel, reverse, or fence an unknown key."""
        with self._tx() as db:
            entry = self._get(db, key)
            if entry is None:
                now = self.clock()
                db.execute(
                    f"INSERT INTO payments ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (key, "", Status.VOIDED.value, 0, "XXX", "", "fenced", 0, 0, 0, 0, None,
                     now, now),
                )  # fmt: skip
                fenced = self._get(db, key)
                assert fenced is not None
                return fenced
            if entry.status is Status.PROCESSING:
                return self._set(db, key, status=Status.VOIDED.value, complete_at=None)
            if entry.status is Status.CAPTURED:
                return self._set(
                    db, key, status=Status.VOIDED.value, reversed_minor=entry.captured_minor
                )
            return entry  # declined, voided, refunded: nothing (more) is held

    def refund(self, key: str) -> Entry:
        """Give a capture back; other final states have nothing to refund."""
        with self._tx() as db:
            entry = self._get(db, key)
            if entry is None:
                raise SandboxError(404, "unknown_payment", f"no payment {key}")
            if entry.status is Status.PROCESSING:
                raise SandboxError(409, "not_captured", "the payment is still processing")
            if entry.status is Status.CAPTURED:
                return self._set(
                    db, key, status=Status.REFUNDED.value, refunded_minor=entry.captured_minor
                )
            return entry

    def entries(self) -> list[Entry]:
        with self._tx() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM payments ORDER BY created_at").fetchall()
        return [_entry(row) for row in rows]
