"""auth-service use cases: register, login, refresh, logout, validate, roles, admin bootstrap.

Each one loads state (credentials in the database, sessions in kv), calls the pure rules of
`domain` with an explicit `now`, and persists what they return. argon2id runs in a worker
thread (argon2-cffi releases the GIL), so one slow hash never stalls the event loop.
The flows, with their diagrams, are in docs/identity.md.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from emporium.chassis.db import Database
from emporium.chassis.errors import (
    DomainError,
    ErrorCode,
    FieldError,
    invalid,
    not_found,
    unauthenticated,
)
from emporium.chassis.kv.base import KeyValueStore
from emporium.chassis.rpc.identity import require_admin
from emporium.services.auth import store
from emporium.services.auth.domain import (
    AccessClaims,
    FamilyStatus,
    Jwks,
    KeySet,
    PasswordHashing,
    Proof,
    RefreshFamily,
    RevocationReason,
    RotationRejected,
    check_password_policy,
    family_id_of,
    normalize_email,
    refresh_rejected,
    revocation_ttl,
    token_rejected,
)

ROLE_USER = "user"
ROLE_ADMIN = "admin"
KNOWN_ROLES = frozenset({ROLE_USER, ROLE_ADMIN})
MAX_NAME_LENGTH = 100
MAX_LOGIN_FAILURES = 5  # per account, whatever the address (API.md: 429 after repeated failures)
MAX_ADDRESS_FAILURES = 20  # per client address, whatever the account (password spraying)
LOGIN_FAILURE_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Registered:
    user_id: str
    email: str
    roles: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: str


@dataclass(frozen=True)
class TokenInfo:
    user_id: str
    roles: tuple[str, ...]
    session_id: str
    expires_at: datetime
    email: str


def invalid_credentials() -> DomainError:
    """One answer for unknown email and wrong password (API.md), so neither leaks."""
    return DomainError(
        "invalid email or password", ErrorCode.UNAUTHENTICATED, "invalid_credentials"
    )


def too_many_attempts(retry_after: float) -> DomainError:
    return DomainError(
        "too many failed logins; try again later",
        ErrorCode.RESOURCE_EXHAUSTED,
        "too_many_login_attempts",
        retry_after=max(1.0, retry_after),
    )


def session_revoked() -> DomainError:
    return token_rejected("session_revoked", "session has ended")


class Auth:
    """The use cases, with their ports; built once by app.py."""

    def __init__(
        self,
        db: Database,
        kv: KeyValueStore,
        keys: KeySet,
        *,
        hashing: PasswordHashing | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_login_failures: int = MAX_LOGIN_FAILURES,
        max_address_failures: int = MAX_ADDRESS_FAILURES,
        login_failure_window: timedelta = LOGIN_FAILURE_WINDOW,
    ) -> None:
        self.db = db
        self.keys = keys
        self.hashing = hashing or PasswordHashing()
        self.clock = clock
        self.sessions = store.SessionStore(kv)
        self.throttle = store.LoginThrottle(
            kv,
            max_per_account=max_login_failures,
            max_per_address=max_address_failures,
            window=login_failure_window,
        )
        self._verifier = keys.verifier()

    # -- register ------------------------------------------------------------------------

    async def register(self, email: str, password: str, name: str) -> Registered:
        canonical = _validated_registration(email, password, name)
        async with self.db.session() as session:
            if await store.credential_by_email(session, canonical) is not None:
                raise _email_taken()
        return await self._create(canonical, password, (ROLE_USER,))

    async def _create(self, email: str, password: str, roles: Iterable[str]) -> Registered:
        password_hash = await asyncio.to_thread(self.hashing.hash, password)
        credential = store.Credential(
            user_id=str(uuid.uuid4()),
            email=email,
            password_hash=password_hash,
            roles=tuple(sorted(set(roles))),
            created_at=self.clock(),
        )
        async with self.db.unit_of_work() as uow:
            if not await store.insert_credential(uow.session, credential):
                raise _email_taken()
            await uow.commit()
        return Registered(credential.user_id, email, credential.roles, credential.created_at)

    # -- login ---------------------------------------------------------------------------

    async def login(self, email: str, password: str, client: str = "") -> IssuedTokens:
        """Counted by the throttle before the password is checked (see LoginThrottle), so
        concurrent guesses cannot all slip under the limit."""
        account = _throttle_account(email)
        admission = await self.throttle.admit(account, client)
        if not admission.admitted:
            raise too_many_attempts(admission.retry_after)
        credential = await self._check_password(email, password)
        if credential is None:
            raise invalid_credentials()
        await self.throttle.succeeded(account, client)
        if self.hashing.needs_rehash(credential.password_hash):
            await self._rehash(credential.user_id, password)
        now = self.clock()
        family, refresh_token = RefreshFamily.start(credential.user_id, now=now)
        await self.sessions.save(family, now=now)
        return self._issue(credential.user_id, credential.roles, family, refresh_token, now)

    async def _check_password(self, email: str, password: str) -> store.Credential | None:
        try:
            canonical: str | None = normalize_email(email)
        except DomainError:
            canonical = None
        credential = None
        if canonical is not None:
            async with self.db.session() as session:
                credential = await store.credential_by_email(session, canonical)
        if credential is None:  # spend the same time as a real check (no email oracle)
            await asyncio.to_thread(self.hashing.verify_nothing, password)
            return None
        ok = await asyncio.to_thread(self.hashing.verify, credential.password_hash, password)
        return credential if ok else None

    async def _rehash(self, user_id: str, password: str) -> None:
        password_hash = await asyncio.to_thread(self.hashing.hash, password)
        async with self.db.unit_of_work() as uow:
            await store.update_password_hash(uow.session, user_id, password_hash, self.clock())
            await uow.commit()

    def _issue(
        self,
        user_id: str,
        roles: Iterable[str],
        family: RefreshFamily,
        refresh_token: str,
        now: datetime,
    ) -> IssuedTokens:
        claims = AccessClaims.new(
            subject=user_id, roles=roles, session_id=family.family_id, now=now
        )
        return IssuedTokens(self.keys.sign(claims), refresh_token, claims.expires_in, user_id)

    # -- refresh -------------------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """Rotate a refresh token. Nothing is decided before the token proved what it is
        (`RefreshFamily.proof`): a token the family never issued changes nothing."""
        family_id = family_id_of(refresh_token)
        family = await self.sessions.load(family_id)
        if family is None:
            raise refresh_rejected("refresh_token_invalid")
        now = self.clock()
        result = family.rotate(refresh_token, now=now)
        if isinstance(result, RotationRejected):
            if result.family.status is FamilyStatus.REVOKED and family.status is not (
                FamilyStatus.REVOKED
            ):
                await self.sessions.revoke(family_id, result.family, now=now)
            raise result.error()
        if await self.sessions.is_revoked(family_id):
            raise refresh_rejected("session_revoked")
        if not await self.sessions.claim_rotation(family, now=now):
            # a concurrent refresh with the same token rotated first: this one is a reuse
            revoked = family.revoke(now=now, reason=RevocationReason.REUSE_DETECTED)
            await self.sessions.revoke(family_id, revoked, now=now)
            raise refresh_rejected("refresh_token_reused")
        await self.sessions.save(result.family, now=now)
        async with self.db.session() as session:
            credential = await store.credential_by_id(session, family.user_id)
        if credential is None:  # the account is gone: so is the session
            await self.sessions.revoke(
                family_id, result.family.revoke(now=now, reason="admin"), now=now
            )
            raise refresh_rejected("session_revoked")
        return self._issue(credential.user_id, credential.roles, result.family, result.token, now)

    # -- logout and validation -----------------------------------------------------------

    async def logout(self, access_token: str = "", refresh_token: str = "") -> None:
        """End the session(s) the given tokens prove; idempotent.

        Either token is enough, so a client whose access token has expired still ends its
        session with the refresh token. A refresh token must prove itself (the family's
        current token, or one it issued before) or nothing is revoked; with a valid refresh
        token an unusable access token is ignored (it cannot do anything anyway). Both are
        checked before anything is written."""
        if not access_token and not refresh_token:
            raise unauthenticated("an access token or a refresh token is required")
        now = self.clock()
        ending: dict[str, RefreshFamily | None] = {}
        if refresh_token:
            family = await self.sessions.load(family_id_of(refresh_token))
            if family is None or family.proof(refresh_token) is Proof.NOTHING:
                raise refresh_rejected("refresh_token_invalid")
            ending[family.family_id] = family
        claims = None
        if access_token:
            try:
                claims = self._verifier.verify(access_token, now=now)
            except DomainError:
                if not refresh_token:
                    raise
        if claims is not None and claims.session_id not in ending:
            ending[claims.session_id] = await self.sessions.load(claims.session_id)
        for session_id, family in ending.items():
            revoked = family.revoke(now=now, reason=RevocationReason.LOGOUT) if family else None
            await self.sessions.revoke(session_id, revoked, now=now)
        if claims is not None:
            await self.sessions.deny_token(claims.token_id, revocation_ttl(claims, now=now))

    async def validate(self, access_token: str, *, with_email: bool = True) -> TokenInfo:
        """Signature, claims and expiry, then the session: alive, not revoked, token not
        denied. A session unknown to kv counts as ended (fail closed)."""
        now = self.clock()
        claims = self._verifier.verify(access_token, now=now)
        if await self.sessions.is_token_denied(claims.token_id):
            raise session_revoked()
        family = await self.sessions.load(claims.session_id)
        if family is None or not family.is_active(now=now):
            raise session_revoked()
        if await self.sessions.is_revoked(claims.session_id):
            raise session_revoked()
        email = ""
        if with_email:
            async with self.db.read() as conn:
                credential = await store.credential_by_id(conn, claims.subject)
            email = credential.email if credential else ""
        return TokenInfo(claims.subject, claims.roles, claims.session_id, claims.expires_at, email)

    def jwks(self) -> Jwks:
        return self.keys.jwks()

    # -- roles and the administrator -----------------------------------------------------

    async def set_roles(self, user_id: str, roles: Iterable[str]) -> tuple[str, ...]:
        """Replace an account's roles (admin only). New tokens carry them; tokens already
        issued keep theirs until they expire (at most 15 minutes)."""
        require_admin()
        wanted = _validated_roles(roles)
        async with self.db.unit_of_work() as uow:
            if not await store.update_roles(uow.session, user_id, wanted, self.clock()):
                raise not_found("account not found")
            await uow.commit()
        return wanted

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Create the administrator on the first start; True when created now. An existing
        account keeps its password (changing EMPORIUM_ADMIN_PASSWORD later does not reset
        it) but gets the admin role back if it lost it."""
        canonical = normalize_email(email)
        async with self.db.session() as session:
            existing = await store.credential_by_email(session, canonical)
        if existing is not None:
            if ROLE_ADMIN not in existing.roles:
                async with self.db.unit_of_work() as uow:
                    roles = (*existing.roles, ROLE_ADMIN)
                    await store.update_roles(uow.session, existing.user_id, roles, self.clock())
                    await uow.commit()
            return False
        check_password_policy(password)
        try:
            await self._create(canonical, password, (ROLE_ADMIN, ROLE_USER))
        except DomainError as exc:
            if exc.reason == "email_taken":  # another replica won the race
                return False
            raise
        return True


def _throttle_account(email: str) -> str:
    """The account a login attempt counts against: the canonical email, so spellings of one
    address (case, Unicode forms, IDNA) share one counter."""
    try:
        return normalize_email(email)
    except DomainError:
        return email.strip().lower()


def _email_taken() -> DomainError:
    return DomainError(
        "email already registered",
        ErrorCode.ALREADY_EXISTS,
        "email_taken",
        [FieldError("email", "is already registered")],
    )


def _validated_registration(email: str, password: str, name: str) -> str:
    """The canonical email; every bad field (email, password, name) reported at once."""
    fields: list[FieldError] = []
    canonical = ""
    try:
        canonical = normalize_email(email)
    except DomainError as exc:
        fields += exc.fields
    try:
        check_password_policy(password, email=email)
    except DomainError as exc:
        fields += exc.fields
    clean_name = name.strip()
    if not clean_name:
        fields.append(FieldError("name", "must not be empty"))
    elif len(clean_name) > MAX_NAME_LENGTH:
        fields.append(FieldError("name", f"must be at most {MAX_NAME_LENGTH} characters long"))
    if fields:
        raise invalid("invalid registration", *fields)
    return canonical


def _validated_roles(roles: Iterable[str]) -> tuple[str, ...]:
    wanted = {r.strip() for r in roles if r.strip()}
    unknown = sorted(wanted - KNOWN_ROLES)
    if unknown:
        raise invalid("unknown role", FieldError("roles", f"unknown: {', '.join(unknown)}"))
    return tuple(sorted(wanted | {ROLE_USER}))
