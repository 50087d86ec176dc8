"""auth-service's storage: the credentials table, the session records in kv, the login
throttle, and the signing key file. Every SQL statement and kv key of the service is here.

`metadata` is what Alembic compares the migrations against (`migrations/env.py`).

kv keys (all under the store's `auth:` namespace):
- `session:{family_id}`: the refresh-token family (RefreshFamily.to_record JSON), i.e. the
  session; lives as long as its current refresh token.
- `session-revoked:{family_id}`: a revocation marker written by logout and reuse detection.
  A separate key because it is only ever set, never read-modified-written: a rotation racing
  a logout may rewrite `session:` but cannot undo the marker.
- `rotation:{family_id}:{generation}`: claimed with SET NX by the one refresh allowed to
  rotate that generation; a second concurrent refresh loses and counts as reuse.
- `revoked-jti:{jti}`: logged-out access tokens, until they would have expired anyway.
- `login-attempts:account:{sha256(email)}`, `login-attempts:address:{client}`: login
  attempts in the current window, per account and per client address (`LoginThrottle`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, DateTime, String, Table, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from emporium.chassis.db import Database, Reader, insert_unless_taken
from emporium.chassis.kv.base import KeyValueStore
from emporium.chassis.migrations import service_metadata
from emporium.services.auth.domain import (
    ACCESS_TOKEN_TTL,
    CLOCK_SKEW_LEEWAY,
    RefreshFamily,
    SigningKey,
    load_signing_key,
    private_key_pem,
)
from emporium.services.auth.domain.keys import generate_signing_key

metadata = service_metadata()

credentials = Table(
    "credentials",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("roles", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


async def ping(db: Database) -> bool:
    """Readiness: the database answers a trivial query."""
    async with db.session() as session:
        await session.execute(text("SELECT 1"))
    return True


# -- credentials ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    user_id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]
    created_at: datetime


def _roles_text(roles: Iterable[str]) -> str:
    return ",".join(sorted(set(roles)))


def _utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _credential(row: object) -> Credential:
    return Credential(
        user_id=row.user_id,  # type: ignore[attr-defined]
        email=row.email,  # type: ignore[attr-defined]
        password_hash=row.password_hash,  # type: ignore[attr-defined]
        roles=tuple(r for r in row.roles.split(",") if r),  # type: ignore[attr-defined]
        created_at=_utc(row.created_at),  # type: ignore[attr-defined]
    )


async def credential_by_email(session: AsyncSession, email: str) -> Credential | None:
    row = (await session.execute(select(credentials).where(credentials.c.email == email))).first()
    return _credential(row) if row else None


async def credential_by_id(session: Reader, user_id: str) -> Credential | None:
    query = select(credentials).where(credentials.c.user_id == user_id)
    row = (await session.execute(query)).first()
    return _credential(row) if row else None


async def insert_credential(session: AsyncSession, credential: Credential) -> bool:
    """Insert; False when the email (or id) is taken."""
    return await insert_unless_taken(
        session,
        credentials,
        user_id=credential.user_id,
        email=credential.email,
        password_hash=credential.password_hash,
        roles=_roles_text(credential.roles),
        created_at=credential.created_at,
        updated_at=credential.created_at,
    )


async def update_password_hash(
    session: AsyncSession, user_id: str, password_hash: str, now: datetime
) -> None:
    await session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(password_hash=password_hash, updated_at=now)
    )


async def update_roles(
    session: AsyncSession, user_id: str, roles: Iterable[str], now: datetime
) -> bool:
    result = await session.execute(
        update(credentials)
        .where(credentials.c.user_id == user_id)
        .values(roles=_roles_text(roles), updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


# -- sessions (kv) -------------------------------------------------------------------------

_REVOCATION_FLOOR = ACCESS_TOKEN_TTL + CLOCK_SKEW_LEEWAY


class SessionStore:
    """Refresh-token families, revocation markers and the access-token denylist in kv."""

    def __init__(self, kv: KeyValueStore) -> None:
        self.kv = kv

    async def load(self, family_id: str) -> RefreshFamily | None:
        raw = await self.kv.get(f"session:{family_id}")
        if raw is None:
            return None
        return RefreshFamily.from_record(json.loads(raw))

    async def save(self, family: RefreshFamily, *, now: datetime) -> None:
        ttl = family.kv_ttl(now=now).total_seconds()
        await self.kv.set(f"session:{family.family_id}", json.dumps(family.to_record()), ttl)

    async def claim_rotation(self, family: RefreshFamily, *, now: datetime) -> bool:
        """True for exactly one caller per (family, generation): the refresh that may rotate."""
        key = f"rotation:{family.family_id}:{family.generation}"
        return await self.kv.set_if_absent(key, "1", family.kv_ttl(now=now).total_seconds())

    async def revoke(self, family_id: str, revoked: RefreshFamily | None, *, now: datetime) -> None:
        """Mark the session dead for good (marker first, then the family record)."""
        ttl = _REVOCATION_FLOOR
        if revoked is not None:
            ttl = max(ttl, revoked.kv_ttl(now=now))
        await self.kv.set(f"session-revoked:{family_id}", "1", ttl.total_seconds())
        if revoked is not None:
            await self.save(revoked, now=now)

    async def is_revoked(self, family_id: str) -> bool:
        return await self.kv.exists(f"session-revoked:{family_id}")

    async def deny_token(self, token_id: str, ttl: timedelta) -> None:
        if ttl.total_seconds() > 0:
            await self.kv.set(f"revoked-jti:{token_id}", "1", ttl.total_seconds())

    async def is_token_denied(self, token_id: str) -> bool:
        return await self.kv.exists(f"revoked-jti:{token_id}")


@dataclass(frozen=True)
class Admission:
    """The throttle's verdict on one login attempt; `retry_after` is the seconds until the
    window that refused it ends (0 when admitted)."""

    admitted: bool
    retry_after: float = 0.0


class LoginThrottle:
    """Login attempts per account (whatever address they come from) and per client address
    (whatever account they try), each in a fixed window of the kv store.

    Count first, then decide: every attempt increments both counters atomically
    (`incr_with_ttl`) before its password is checked, and goes ahead only if the values it
    got are within the limits. Concurrent attempts therefore get distinct counts and at
    most `max_per_account` of them are ever checked per window, however many arrive at
    once and from however many addresses. A success gives its attempt back: the account's
    window is cleared (its owner proved the password), the address's count drops by one
    (one good login from an address does not clear the failures it made elsewhere)."""

    def __init__(
        self,
        kv: KeyValueStore,
        *,
        max_per_account: int,
        max_per_address: int,
        window: timedelta,
    ) -> None:
        self.kv = kv
        self.max_per_account = max_per_account
        self.max_per_address = max_per_address
        self.window = window

    @staticmethod
    def _account_key(email: str) -> str:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
        return f"login-attempts:account:{account}"

    @staticmethod
    def _address_key(client: str) -> str:
        return f"login-attempts:address:{client or '-'}"

    async def admit(self, email: str, client: str) -> Admission:
        seconds = self.window.total_seconds()
        per_account, account_left = await self.kv.incr_with_ttl(self._account_key(email), seconds)
        per_address, address_left = await self.kv.incr_with_ttl(self._address_key(client), seconds)
        waits = [
            left
            for count, limit, left in (
                (per_account, self.max_per_account, account_left),
                (per_address, self.max_per_address, address_left),
            )
            if count > limit
        ]
        return Admission(False, max(waits)) if waits else Admission(True)

    async def succeeded(self, email: str, client: str) -> None:
        await self.kv.delete(self._account_key(email))
        # with a TTL even if the window ended meanwhile: no counter may outlive its window
        await self.kv.incr_with_ttl(self._address_key(client), self.window.total_seconds(), -1)


# -- signing key ---------------------------------------------------------------------------

SIGNING_KEY_FILE_VAR = "EMPORIUM_AUTH_SIGNING_KEY_FILE"
SIGNING_KEY_VAR = "EMPORIUM_AUTH_SIGNING_KEY"
LOCAL_KEY_FILENAME = "auth-signing-key.pem"


def signing_key_from(env: Mapping[str, str], data_dir: Path) -> SigningKey:
    """The configured key (a PEM file named by EMPORIUM_AUTH_SIGNING_KEY_FILE, or the PEM
    itself in EMPORIUM_AUTH_SIGNING_KEY), else the local key under `data_dir`, created on
    the first start (mode 0600), so tokens survive restarts of the embedded profile. The
    local key is for one machine only: replicas must share a configured key."""
    if env.get(SIGNING_KEY_FILE_VAR):
        return load_signing_key(Path(env[SIGNING_KEY_FILE_VAR]).read_bytes())
    if env.get(SIGNING_KEY_VAR, "").strip():
        return load_signing_key(env[SIGNING_KEY_VAR].encode())
    path = data_dir / LOCAL_KEY_FILENAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key = generate_signing_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_signing_key(path.read_bytes())
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_key_pem(key))
    return load_signing_key(path.read_bytes())
