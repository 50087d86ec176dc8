"""user-service use cases: create a profile (with `user.registered`), read and edit it,
manage the address book. One unit of work each; authorization from `current_caller()`.

Who may do what:
- CreateUser: a system caller (the gateway calls it as `Caller.system("api_gateway")` right
  after auth's Register, when the new user has no token yet), an admin, or the user itself.
- Everything else: the owner or an admin (or a system caller). A stranger gets NOT_FOUND,
  as for another user's order: the answer does not even confirm the account exists.

A profile that is missing for an authenticated owner (the administrator, created by auth's
bootstrap; or a registration whose CreateUser never arrived) is created on first use from
the verified token: auth's ValidateToken gives the email, the name defaults to the email's
local part, and `user.registered` is recorded as for any registration (docs/identity.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from emporium.chassis.db import Database, UnitOfWork
from emporium.chassis.errors import DomainError, ErrorCode, FieldError, invalid, not_found
from emporium.chassis.events.outbox import add_event
from emporium.chassis.rpc.identity import Caller, current_caller, require_authenticated
from emporium.contracts.events.user_registered import TOPIC, UserRegisteredV1
from emporium.services.user import store
from emporium.services.user.domain import (
    MAX_NAME_LENGTH,
    Address,
    Profile,
    ensure_can_access,
    normalize_roles,
)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_ID_LENGTH = 64
SERVICE = "user"

EmailLookup = Callable[[str], Awaitable[str]]
"""Given the caller's access token, the account's canonical email (auth's ValidateToken)."""


@dataclass(frozen=True)
class ProfileView:
    stored: store.StoredProfile
    roles: tuple[str, ...]


@dataclass(frozen=True)
class AddressInput:
    line1: str
    city: str
    postal_code: str
    country: str
    line2: str | None = None


@dataclass(frozen=True)
class AddressPage:
    items: list[store.StoredAddress]
    next_cursor: str


def _roles_seen_by(caller: Caller, owner_id: str) -> tuple[str, ...]:
    """Roles come from the caller's verified identity; for somebody else's profile (an
    admin looking) user-service does not know them and shows the baseline `user`."""
    if caller.user_id == owner_id:
        return normalize_roles(r for r in caller.roles if r != "system")
    return normalize_roles(())


def _authorize(owner_id: str) -> Caller:
    caller = require_authenticated()
    if not caller.is_system:
        ensure_can_access(caller.user_id, caller.roles, owner_id)
    return caller


class Users:
    """The use cases, with their ports; built once by app.py."""

    def __init__(
        self,
        db: Database,
        *,
        lookup_email: EmailLookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.lookup_email = lookup_email
        self.clock = clock

    # -- profiles ------------------------------------------------------------------------

    async def create_user(self, user_id: str, email: str, name: str) -> ProfileView:
        """Idempotent by user id: a retry (or a race) returns the stored profile."""
        caller = require_authenticated()
        if not (caller.is_system or caller.is_admin or caller.user_id == user_id):
            raise DomainError(
                "only the account itself may create its profile",
                ErrorCode.PERMISSION_DENIED,
                "permission_denied",
            )
        _check_new_user(user_id, email)
        profile = Profile.new(id=user_id, email=email.strip(), name=name)
        async with self.db.unit_of_work() as uow:
            stored = await self._create(uow, profile)
            await uow.commit()
        return ProfileView(stored, _roles_seen_by(caller, user_id))

    async def _create(self, uow: UnitOfWork, profile: Profile) -> store.StoredProfile:
        existing = await store.get_profile(uow.session, profile.id)
        if existing is not None:
            return existing
        now = self.clock()
        if not await store.insert_profile(uow.session, profile, now):
            raced = await store.get_profile(uow.session, profile.id)
            if raced is None:
                raise DomainError("profile could not be stored", ErrorCode.CONFLICT, "conflict")
            return raced
        event = UserRegisteredV1(
            user_id=profile.id, email=profile.email, name=profile.name, registered_at=now
        )
        await add_event(uow, TOPIC, event, source=SERVICE)  # type: ignore[arg-type]  # ClassVar TOPIC
        return store.StoredProfile(profile, now, now)

    async def get_profile(self, user_id: str) -> ProfileView:
        caller = current_caller()
        owner = user_id or caller.user_id
        caller = _authorize(owner)
        stored = await self._profile_or_lazy(caller, owner)
        return ProfileView(stored, _roles_seen_by(caller, owner))

    async def _profile_or_lazy(self, caller: Caller, owner: str) -> store.StoredProfile:
        async with self.db.session() as session:
            stored = await store.get_profile(session, owner)
        if stored is not None:
            return stored
        if caller.user_id != owner or not caller.token or self.lookup_email is None:
            raise not_found("profile not found")
        email = await self.lookup_email(caller.token)
        if not email:
            raise not_found("profile not found")
        name = email.partition("@")[0][:MAX_NAME_LENGTH] or "user"
        profile = Profile.new(id=owner, email=email, name=name)
        async with self.db.unit_of_work() as uow:
            stored = await self._create(uow, profile)
            await uow.commit()
        return stored

    async def update_profile(self, user_id: str, name: str | None) -> ProfileView:
        caller = current_caller()
        owner = user_id or caller.user_id
        caller = _authorize(owner)
        await self._profile_or_lazy(caller, owner)
        async with self.db.unit_of_work() as uow:
            current = await store.get_profile(uow.session, owner)
            if current is None:
                raise not_found("profile not found")
            changed = current.profile.update(name=name)
            now = self.clock()
            if changed != current.profile:
                await store.update_profile(uow.session, changed, now)
                current = store.StoredProfile(changed, current.created_at, now)
            await uow.commit()
        return ProfileView(current, _roles_seen_by(caller, owner))

    # -- addresses -----------------------------------------------------------------------

    async def list_addresses(self, user_id: str, limit: int, cursor: str) -> AddressPage:
        caller = current_caller()
        owner = user_id or caller.user_id
        _authorize(owner)
        size, offset = _page(limit, cursor)
        async with self.db.session() as session:
            stored = await store.list_addresses(session, owner)
        items = stored[offset : offset + size]
        more = offset + size < len(stored)
        return AddressPage(items, str(offset + size) if more else "")

    async def add_address(
        self, user_id: str, fields: AddressInput, request_id: str = ""
    ) -> store.StoredAddress:
        """Append to the book (the first address becomes the default). With `request_id`
        a retry returns the address the first call added."""
        caller = current_caller()
        owner = user_id or caller.user_id
        caller = _authorize(owner)
        if len(request_id) > MAX_ID_LENGTH:
            raise invalid("invalid request id", FieldError("request_id", "is too long"))
        address = Address.create(
            id=str(uuid.uuid4()),
            line1=fields.line1,
            city=fields.city,
            postal_code=fields.postal_code,
            country=fields.country,
            line2=fields.line2,
        )
        await self._profile_or_lazy(caller, owner)
        async with self.db.unit_of_work() as uow:
            if request_id:
                earlier = await store.address_by_request_id(uow.session, owner, request_id)
                if earlier is not None:
                    return earlier
            book = (await store.address_book(uow.session, owner)).add(address)
            now = self.clock()
            await store.save_address_book(
                uow.session, book, added=address, request_id=request_id or None, now=now
            )
            await uow.commit()
        return store.StoredAddress(book.get(address.id), owner, now, request_id or None)

    async def delete_address(self, user_id: str, address_id: str) -> None:
        caller = current_caller()
        owner = user_id or caller.user_id
        _authorize(owner)
        async with self.db.unit_of_work() as uow:
            book = await store.address_book(uow.session, owner)
            remaining = book.remove(address_id)  # NOT_FOUND when it is not in this book
            await store.delete_address(uow.session, owner, address_id)
            await store.save_address_book(uow.session, remaining, now=self.clock())
            await uow.commit()


def _check_new_user(user_id: str, email: str) -> None:
    fields = []
    if not user_id.strip() or len(user_id) > MAX_ID_LENGTH:
        fields.append(FieldError("user_id", f"must be 1 to {MAX_ID_LENGTH} characters"))
    clean = email.strip()
    if not clean or "@" not in clean or len(clean) > 254:
        fields.append(FieldError("email", "must be the canonical email auth-service returned"))
    if fields:
        raise invalid("invalid user", *fields)


def _page(limit: int, cursor: str) -> tuple[int, int]:
    """(page size, offset); the cursor is the offset of the next page (an address book is
    at most MAX_ADDRESSES_PER_USER long, so an offset is stable enough and cheap)."""
    fields = []
    if limit < 0 or limit > MAX_PAGE_SIZE:
        fields.append(FieldError("limit", f"must be between 1 and {MAX_PAGE_SIZE}"))
    offset = 0
    if cursor:
        if not cursor.isdigit():
            fields.append(FieldError("cursor", "is not a cursor this service issued"))
        else:
            offset = int(cursor)
    if fields:
        raise invalid("invalid page request", *fields)
    return limit or DEFAULT_PAGE_SIZE, offset
