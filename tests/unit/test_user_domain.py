"""user-service domain: profile rules, address validation, the default-address rule and the
owner-or-admin access rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.services.user.domain import (
    MAX_ADDRESSES_PER_USER,
    MAX_NAME_LENGTH,
    ROLE_ADMIN,
    ROLE_USER,
    Address,
    AddressBook,
    Profile,
    can_access,
    ensure_can_access,
    normalize_roles,
    validate_name,
)


def field_names(error: DomainError) -> set[str]:
    return {f.field for f in error.fields}


def address(address_id: str = "a1", **overrides: str | None) -> Address:
    values: dict[str, str | None] = {
        "line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    }
    values.update(overrides)
    return Address.create(id=address_id, **values)


# --- profile -----------------------------------------------------------------------------


def test_new_profile_has_the_api_fields_and_always_the_user_role():
    profile = Profile.new(id="u1", email="ada@example.com", name="  Ada Lovelace ")
    assert profile.to_api() == {
        "id": "u1",
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "roles": ["user"],
    }
    assert not profile.is_admin


def test_roles_are_unique_sorted_and_include_user():
    assert normalize_roles(["admin", "admin"]) == (ROLE_ADMIN, ROLE_USER)
    assert Profile.new(id="u", email="e@x.io", name="A", roles=["admin"]).is_admin


def test_update_returns_a_new_profile_and_leaves_the_original():
    profile = Profile.new(id="u1", email="ada@example.com", name="Ada")
    renamed = profile.update(name=" Countess ")
    assert renamed.name == "Countess"
    assert profile.name == "Ada"
    assert (renamed.id, renamed.email, renamed.roles) == (profile.id, profile.email, profile.roles)


def test_update_without_fields_changes_nothing():
    profile = Profile.new(id="u1", email="ada@example.com", name="Ada")
    assert profile.update() == profile


@pytest.mark.parametrize("name", ["", "   ", "x" * (MAX_NAME_LENGTH + 1), "Ada\x00", "A\u200bda"])
def test_invalid_names_name_the_name_field(name):
    profile = Profile.new(id="u1", email="ada@example.com", name="Ada")
    with pytest.raises(DomainError) as info:
        profile.update(name=name)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert field_names(info.value) == {"name"}
    with pytest.raises(DomainError):
        Profile.new(id="u2", email="b@example.com", name=name)


@pytest.mark.parametrize(
    "name", ["A", "Zoë Ørsted-Ñúñez", "x" * MAX_NAME_LENGTH, "李小龙", "O'Neil"]
)
def test_valid_names(name):
    assert validate_name(name) == name


def test_name_is_stored_in_nfc():
    assert validate_name("Zoe\u0308") == "Zo\u00eb"


# --- addresses ---------------------------------------------------------------------------


def test_address_is_normalised_and_has_the_api_fields():
    created = address(
        line1=" 10 Downing Street ",
        line2="   ",
        city=" London",
        postal_code="sw1a 2aa",
        country="gb",
        phone="+44 (20) 7925-0918",
    )
    assert created.to_api() == {
        "id": "a1",
        "line1": "10 Downing Street",
        "line2": None,
        "city": "London",
        "postal_code": "SW1A 2AA",
        "country": "GB",
        "phone": "+442079250918",
        "is_default": False,
    }


def test_optional_fields_are_kept_when_given():
    created = address(line2="Apt 4", phone=None)
    assert created.line2 == "Apt 4"
    assert created.phone is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"line1": ""}, "line1"),
        ({"line1": "x" * 201}, "line1"),
        ({"line2": "x" * 201}, "line2"),
        ({"city": " "}, "city"),
        ({"postal_code": ""}, "postal_code"),
        ({"postal_code": "   "}, "postal_code"),
        ({"postal_code": "12#45"}, "postal_code"),
        ({"postal_code": "-1234"}, "postal_code"),
        ({"postal_code": "1" * 17}, "postal_code"),
        ({"country": "USA"}, "country"),
        ({"country": "U"}, "country"),
        ({"country": "1A"}, "country"),
        ({"country": ""}, "country"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+0123456789"}, "phone"),
        ({"phone": "+1234567890123456"}, "phone"),
        ({"phone": "call me"}, "phone"),
    ],
)
def test_invalid_address_field_is_named(overrides, field):
    with pytest.raises(DomainError) as info:
        address(**overrides)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.http_status == 400
    assert field_names(info.value) == {field}


def test_all_bad_address_fields_are_reported_at_once():
    with pytest.raises(DomainError) as info:
        Address.create(id="a", line1="", city="", postal_code="", country="Narnia")
    assert field_names(info.value) == {"line1", "city", "postal_code", "country"}


# --- address book ------------------------------------------------------------------------


def test_first_address_becomes_the_default():
    book = AddressBook("u1").add(address("a1"))
    assert book.default is not None
    assert book.default.id == "a1"
    book = book.add(address("a2"))
    assert book.default.id == "a1"
    assert [a.id for a in book.addresses] == ["a1", "a2"]


def test_adding_as_default_or_setting_default_moves_it():
    book = AddressBook("u1").add(address("a1")).add(address("a2"), make_default=True)
    assert [a.is_default for a in book.addresses] == [False, True]
    book = book.set_default("a1")
    assert [a.is_default for a in book.addresses] == [True, False]


def test_is_default_on_input_is_ignored():
    book = AddressBook("u1").add(address("a1"))
    book = book.add(replace(address("a2"), is_default=True))
    assert book.default.id == "a1"


def test_removing_the_default_passes_it_to_the_oldest_remaining():
    book = AddressBook("u1").add(address("a1")).add(address("a2")).add(address("a3"))
    book = book.set_default("a2").remove("a2")
    assert book.default.id == "a1"
    assert sum(a.is_default for a in book.addresses) == 1
    assert AddressBook("u1").add(address("a1")).remove("a1").default is None


def test_removing_another_address_keeps_the_default():
    book = AddressBook("u1").add(address("a1")).add(address("a2")).remove("a2")
    assert book.default.id == "a1"


def test_unknown_address_is_not_found():
    book = AddressBook("u1").add(address("a1"))
    for action in (book.get, book.set_default, book.remove):
        with pytest.raises(DomainError) as info:
            action("nope")
        assert info.value.code is ErrorCode.NOT_FOUND


def test_address_limit_is_enforced():
    book = AddressBook("u1")
    for i in range(MAX_ADDRESSES_PER_USER):
        book = book.add(address(f"a{i}"))
    with pytest.raises(DomainError) as info:
        book.add(address("one-too-many"))
    assert info.value.reason == "address_limit_reached"
    assert info.value.http_status == 409


def test_duplicate_address_id_is_refused():
    book = AddressBook("u1").add(address("a1"))
    with pytest.raises(DomainError) as info:
        book.add(address("a1"))
    assert info.value.code is ErrorCode.ALREADY_EXISTS


def test_address_book_operations_do_not_mutate():
    book = AddressBook("u1").add(address("a1"))
    book.add(address("a2"), make_default=True)
    assert [a.id for a in book.addresses] == ["a1"]
    assert book.default.id == "a1"


# --- access rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "roles", "owner", "allowed"),
    [
        ("u1", ["user"], "u1", True),
        ("u2", ["user"], "u1", False),
        ("u2", ["user", "admin"], "u1", True),
        ("admin-1", ("admin",), "u1", True),
        ("", [], "u1", False),
        ("", [], "", False),
        ("u1", [], "u1", True),
    ],
)
def test_owner_or_admin_can_access(caller, roles, owner, allowed):
    assert can_access(caller, roles, owner) is allowed


def test_stranger_gets_not_found_by_default_and_forbidden_when_asked():
    with pytest.raises(DomainError) as info:
        ensure_can_access("u2", ["user"], "u1")
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(DomainError) as info:
        ensure_can_access("u2", ["user"], "u1", conceal=False)
    assert info.value.code is ErrorCode.PERMISSION_DENIED
    ensure_can_access("u1", ["user"], "u1")
    ensure_can_access("boss", ["admin"], "u1")
