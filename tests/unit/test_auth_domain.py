"""auth-service domain: argon2id passwords, email canonical form, EdDSA access tokens with a
rotating key set verified from a JWKS, refresh token rotation with reuse detection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.services.auth.domain import (
    ACCESS_TOKEN_TTL,
    CLOCK_SKEW_LEEWAY,
    REFRESH_TOKEN_TTL,
    REMEMBERED_GENERATIONS,
    SESSION_MAX_LIFETIME,
    AccessClaims,
    AccessTokenVerifier,
    Argon2Parameters,
    FamilyStatus,
    KeySet,
    PasswordHashing,
    Proof,
    RefreshFamily,
    RotationAccepted,
    RotationRejected,
    check_password_policy,
    family_id_of,
    generate_signing_key,
    hash_refresh_token,
    load_signing_key,
    load_verification_key,
    normalize_email,
    private_key_pem,
    public_key_pem,
    revocation_ttl,
    signing_key_or_ephemeral,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CHEAP = Argon2Parameters(time_cost=1, memory_cost_kib=1024, parallelism=1)


def field_names(error: DomainError) -> set[str]:
    return {f.field for f in error.fields}


# --- passwords ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing(CHEAP)


def test_production_hash_is_argon2id_with_the_documented_parameters():
    hashing = PasswordHashing()
    stored = hashing.hash("correct horse battery")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hashing.verify(stored, "correct horse battery")
    assert not hashing.needs_rehash(stored)


def test_hash_verifies_the_right_password_and_rejects_a_wrong_one(hashing):
    stored = hashing.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert hashing.verify(stored, "correct horse battery")
    assert not hashing.verify(stored, "correct horse batterY")
    assert not hashing.verify(stored, "")


def test_same_password_hashes_differently_each_time(hashing):
    assert hashing.hash("correct horse battery") != hashing.hash("correct horse battery")


def test_unicode_forms_of_one_password_verify_alike(hashing):
    composed, decomposed = "caf\u00e9 au lait!", "cafe\u0301 au lait!"
    assert hashing.verify(hashing.hash(composed), decomposed)


def test_hash_made_with_other_parameters_needs_rehash(hashing):
    old = hashing.hash("correct horse battery")
    stronger = PasswordHashing(Argon2Parameters(time_cost=2, memory_cost_kib=2048, parallelism=1))
    assert stronger.needs_rehash(old)
    assert stronger.verify(old, "correct horse battery")  # old hashes keep working
    assert not stronger.needs_rehash(stronger.hash("correct horse battery"))


def test_corrupt_stored_hash_is_an_internal_error_not_a_wrong_password(hashing):
    with pytest.raises(DomainError) as info:
        hashing.verify("not-a-hash", "whatever12345")
    assert info.value.code is ErrorCode.INTERNAL


def test_dummy_verification_for_unknown_emails_never_succeeds(hashing):
    hashing.verify_nothing("correct horse battery")
    hashing.verify_nothing("")  # repeatable, no exception


@pytest.mark.parametrize(
    "password",
    ["", "short", "123456789", " " * 12, "a" * 12, "x" * 129, "tab\tinside1234"],
)
def test_weak_passwords_are_invalid_and_name_the_password_field(password):
    with pytest.raises(DomainError) as info:
        check_password_policy(password)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert info.value.http_status == 400
    assert field_names(info.value) == {"password"}


def test_password_equal_to_the_email_is_refused():
    with pytest.raises(DomainError) as info:
        check_password_policy("Ada.Lovelace@example.com", email="ada.lovelace@example.com")
    assert field_names(info.value) == {"password"}


@pytest.mark.parametrize(
    "password",
    ["0123456789", "correct horse battery staple", "pässwörd-über-alles", "x" * 127 + "y"],
)
def test_acceptable_passwords_pass(password):
    check_password_policy(password, email="someone@example.com")


def test_every_broken_rule_is_reported():
    with pytest.raises(DomainError) as info:
        check_password_policy("\x00")
    assert len(info.value.fields) >= 2


# --- emails ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("Bob@Example.COM", "bob@example.com"),
        ("  alice+shop@mail.example.org \n", "alice+shop@mail.example.org"),
        ("o'neil@example.ie", "o'neil@example.ie"),
        ("user@b\u00fccher.de", "user@xn--bcher-kva.de"),
        ("first.last@sub-domain.example.co.uk", "first.last@sub-domain.example.co.uk"),
    ],
)
def test_emails_are_canonicalised(raw, canonical):
    assert normalize_email(raw) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plainaddress",
        "@example.com",
        "user@",
        "user@localhost",
        "user@@example.com",
        "us er@example.com",
        ".user@example.com",
        "user.@example.com",
        "us..er@example.com",
        "user@example..com",
        "user@-example.com",
        "user@example-.com",
        "user@example.com.",
        "user@192.168.0.1",
        "user@[192.168.0.1]",
        '"quoted"@example.com',
        "j\u00f6rg@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 64 + ".com",
        "a@" + ".".join(["abcdefghi"] * 26) + ".com",
    ],
)
def test_invalid_emails_name_the_email_field(raw):
    with pytest.raises(DomainError) as info:
        normalize_email(raw)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    assert field_names(info.value) == {"email"}


def test_email_error_can_name_another_field():
    with pytest.raises(DomainError) as info:
        normalize_email("nope", field="contact.email")
    assert field_names(info.value) == {"contact.email"}


# --- keys --------------------------------------------------------------------------------


def test_signing_key_round_trips_through_pem_with_the_same_kid():
    key = generate_signing_key()
    loaded = load_signing_key(private_key_pem(key))
    assert loaded.kid == key.kid
    assert not loaded.ephemeral
    assert load_verification_key(public_key_pem(key.verification_key())).kid == key.kid


def test_key_material_never_shows_in_repr():
    key = generate_signing_key()
    assert "PRIVATE" not in repr(key)
    assert key.kid in repr(key)


def test_non_ed25519_or_garbage_pem_is_refused_with_a_one_line_error():
    p256 = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key(p256)
    with pytest.raises(ValueError) as info:
        load_signing_key(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    assert "\n" not in str(info.value)


def test_without_configured_key_an_ephemeral_one_is_generated():
    assert signing_key_or_ephemeral(None).ephemeral
    assert signing_key_or_ephemeral(b"  \n").ephemeral
    configured = generate_signing_key()
    assert signing_key_or_ephemeral(private_key_pem(configured)).kid == configured.kid


def test_kid_is_the_rfc7638_thumbprint():
    key = generate_signing_key()
    jwk = key.verification_key().to_jwk()
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}, separators=(",", ":")
    ).encode()
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    assert key.kid == expected


# --- access tokens -----------------------------------------------------------------------


@pytest.fixture
def keyset() -> KeySet:
    return KeySet(generate_signing_key())


def claims_at(now: datetime, **overrides) -> AccessClaims:
    values = {"subject": "user-1", "roles": ["user"], "session_id": "sess-1", "now": now}
    values.update(overrides)
    return AccessClaims.new(**values)


def test_token_round_trips_through_the_jwks(keyset):
    claims = claims_at(NOW, roles=["user", "admin", "user"])
    token = keyset.sign(claims)
    served = json.loads(json.dumps(keyset.jwks()))  # as a verifier fetches it over HTTP
    verified = AccessTokenVerifier.from_jwks(served).verify(token, now=NOW)
    assert verified == claims
    assert verified.roles == ("admin", "user")
    assert verified.has_role("admin")
    assert claims.expires_in == ACCESS_TOKEN_TTL.total_seconds() == 900


def test_token_header_and_claims_are_the_documented_ones(keyset):
    token = keyset.sign(claims_at(NOW))
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "typ": "at+jwt", "kid": keyset.current.kid}
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"sub", "roles", "iat", "exp", "jti", "iss", "aud", "sid"}
    assert payload["exp"] - payload["iat"] == 900
    assert (payload["iss"], payload["aud"]) == ("emporium-auth", "emporium")


def test_every_token_gets_its_own_jti():
    assert claims_at(NOW).token_id != claims_at(NOW).token_id


def test_jwks_contains_public_keys_only(keyset):
    jwks = keyset.rotate(generate_signing_key()).jwks()
    assert len(jwks["keys"]) == 2
    for jwk in jwks["keys"]:
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert "d" not in jwk
        assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")


def reason_of(verifier: AccessTokenVerifier, token: str, now: datetime = NOW) -> str:
    with pytest.raises(DomainError) as info:
        verifier.verify(token, now=now)
    assert info.value.code is ErrorCode.UNAUTHENTICATED
    assert info.value.http_status == 401
    return info.value.reason


def test_token_is_valid_until_expiry_plus_leeway_then_rejected(keyset):
    token = keyset.sign(claims_at(NOW))
    verifier = keyset.verifier()
    expiry = NOW + ACCESS_TOKEN_TTL
    verifier.verify(token, now=expiry + CLOCK_SKEW_LEEWAY - timedelta(seconds=1))
    assert reason_of(verifier, token, expiry + CLOCK_SKEW_LEEWAY) == "token_expired"
    assert reason_of(verifier, token, expiry + timedelta(hours=1)) == "token_expired"


def test_token_from_the_future_beyond_leeway_is_rejected(keyset):
    verifier = keyset.verifier()
    verifier.verify(keyset.sign(claims_at(NOW + CLOCK_SKEW_LEEWAY)), now=NOW)
    later = keyset.sign(claims_at(NOW + CLOCK_SKEW_LEEWAY + timedelta(seconds=1)))
    assert reason_of(verifier, later) == "token_not_yet_valid"


def test_tampered_payload_is_rejected(keyset):
    token = keyset.sign(claims_at(NOW))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin", "user"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert reason_of(keyset.verifier(), f"{header}.{forged}.{signature}") == "token_invalid"


def test_tampered_signature_is_rejected(keyset):
    token = keyset.sign(claims_at(NOW))
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert reason_of(keyset.verifier(), flipped) == "token_invalid"


def test_token_signed_by_another_key_with_our_kid_is_rejected(keyset):
    impostor = KeySet(generate_signing_key())
    claims = claims_at(NOW).to_payload()
    token = jwt.encode(
        claims,
        impostor.current.private_key,
        algorithm="EdDSA",
        headers={"kid": keyset.current.kid, "typ": "at+jwt"},
    )
    assert reason_of(keyset.verifier(), token) == "token_invalid"


def test_wrong_audience_or_issuer_is_rejected(keyset):
    verifier = keyset.verifier()
    assert reason_of(verifier, keyset.sign(claims_at(NOW, audience="other"))) == "token_invalid"
    assert reason_of(verifier, keyset.sign(claims_at(NOW, issuer="evil"))) == "token_invalid"


def test_hs256_token_and_alg_none_are_rejected(keyset):
    payload = claims_at(NOW).to_payload()
    headers = {"kid": keyset.current.kid, "typ": "at+jwt"}
    hmac_token = jwt.encode(payload, "secret" * 6, algorithm="HS256", headers=headers)
    none_token = jwt.encode(payload, None, algorithm="none", headers=headers)
    assert reason_of(keyset.verifier(), hmac_token) == "token_invalid"
    assert reason_of(keyset.verifier(), none_token) == "token_invalid"


def test_jwt_of_another_type_is_not_an_access_token(keyset):
    token = jwt.encode(
        claims_at(NOW).to_payload(),
        keyset.current.private_key,
        algorithm="EdDSA",
        headers={"kid": keyset.current.kid, "typ": "JWT"},
    )
    assert reason_of(keyset.verifier(), token) == "token_invalid"


def test_token_missing_a_claim_is_rejected(keyset):
    payload = claims_at(NOW).to_payload()
    del payload["sid"]
    token = jwt.encode(
        payload,
        keyset.current.private_key,
        algorithm="EdDSA",
        headers={"kid": keyset.current.kid, "typ": "at+jwt"},
    )
    assert reason_of(keyset.verifier(), token) == "token_invalid"


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_garbage_is_malformed(keyset, garbage):
    assert reason_of(keyset.verifier(), garbage) == "token_malformed"


def test_rotated_out_key_verifies_while_published_and_fails_after_retirement(keyset):
    old_kid = keyset.current.kid
    old_token = keyset.sign(claims_at(NOW))
    rotated = keyset.rotate(generate_signing_key())
    new_token = rotated.sign(claims_at(NOW))
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.current.kid != old_kid

    published = AccessTokenVerifier.from_jwks(rotated.jwks())
    assert published.verify(old_token, now=NOW).subject == "user-1"
    assert published.verify(new_token, now=NOW).subject == "user-1"

    retired = AccessTokenVerifier.from_jwks(rotated.retire(old_kid).jwks())
    assert reason_of(retired, old_token) == "token_key_unknown"
    assert retired.verify(new_token, now=NOW).subject == "user-1"


def test_current_key_cannot_be_retired_and_rotating_to_itself_is_a_no_op(keyset):
    with pytest.raises(ValueError, match="rotate first"):
        keyset.retire(keyset.current.kid)
    assert keyset.rotate(keyset.current) is keyset


def test_jwks_parsing_skips_foreign_key_types_and_refuses_broken_ed25519_keys(keyset):
    jwks = keyset.jwks()
    foreign = {"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"}
    verifier = AccessTokenVerifier.from_jwks({"keys": [foreign, *jwks["keys"]]})
    assert verifier.kids == {keyset.current.kid}
    broken = dict(jwks["keys"][0], x="AAAA")
    with pytest.raises(ValueError, match="32 bytes"):
        AccessTokenVerifier.from_jwks({"keys": [broken]})
    with pytest.raises(ValueError, match="keys"):
        AccessTokenVerifier.from_jwks({})


def test_naive_clock_is_a_programming_error(keyset):
    with pytest.raises(ValueError, match="timezone"):
        claims_at(datetime(2025, 1, 1))


def test_revocation_entry_lives_until_the_token_is_dead_anyway():
    claims = claims_at(NOW)
    assert revocation_ttl(claims, now=NOW) == ACCESS_TOKEN_TTL + CLOCK_SKEW_LEEWAY
    assert revocation_ttl(claims, now=NOW + timedelta(days=1)) == timedelta(0)


# --- refresh tokens ----------------------------------------------------------------------


def test_login_starts_an_active_family_storing_only_the_hash():
    family, token = RefreshFamily.start("user-1", now=NOW)
    assert family.status is FamilyStatus.ACTIVE
    assert family.is_active(now=NOW)
    assert family.session_id == family.family_id == family_id_of(token)
    assert family.current_hash == hash_refresh_token(token)
    assert token not in json.dumps(family.to_record())
    assert family.expires_at == NOW + REFRESH_TOKEN_TTL
    assert len(token) > 60


def test_rotation_issues_a_new_token_and_the_old_one_becomes_used():
    family, first = RefreshFamily.start("user-1", now=NOW)
    result = family.rotate(first, now=NOW + timedelta(minutes=10))
    assert isinstance(result, RotationAccepted)
    assert result.token != first
    assert result.family.generation == family.generation + 1
    assert result.family.current_hash == hash_refresh_token(result.token)
    assert result.family.expires_at == NOW + timedelta(minutes=10) + REFRESH_TOKEN_TTL

    again = result.family.rotate(result.token, now=NOW + timedelta(minutes=20))
    assert isinstance(again, RotationAccepted)


def test_presenting_a_used_token_revokes_the_whole_family():
    family, first = RefreshFamily.start("user-1", now=NOW)
    rotated = family.rotate(first, now=NOW)
    assert isinstance(rotated, RotationAccepted)

    reuse = rotated.family.rotate(first, now=NOW + timedelta(minutes=1))
    assert isinstance(reuse, RotationRejected)
    assert reuse.reason == "refresh_token_reused"
    assert reuse.family.status is FamilyStatus.REVOKED
    assert reuse.family.revoked_reason == "reuse_detected"
    assert not reuse.family.is_active(now=NOW)
    error = reuse.error()
    assert (error.code, error.http_status, error.reason) == (
        ErrorCode.UNAUTHENTICATED,
        401,
        "refresh_token_reused",
    )

    # the legitimate holder's newest token is dead too
    after = reuse.family.rotate(rotated.token, now=NOW + timedelta(minutes=2))
    assert isinstance(after, RotationRejected)
    assert after.reason == "session_revoked"


def test_expired_refresh_token_is_rejected_without_revoking():
    family, token = RefreshFamily.start("user-1", now=NOW)
    result = family.rotate(token, now=NOW + REFRESH_TOKEN_TTL)
    assert isinstance(result, RotationRejected)
    assert result.reason == "refresh_token_expired"
    assert result.family == family


def test_session_cannot_outlive_its_absolute_lifetime():
    family, token = RefreshFamily.start("user-1", now=NOW)
    now = NOW
    while True:
        now += timedelta(days=13)
        result = family.rotate(token, now=now)
        if isinstance(result, RotationRejected):
            break
        family, token = result.family, result.token
        assert family.expires_at <= NOW + SESSION_MAX_LIFETIME
    assert result.reason == "refresh_token_expired"
    assert now >= NOW + SESSION_MAX_LIFETIME
    assert not family.is_active(now=now)


@pytest.mark.parametrize("token", ["", "nope", "a.b", "x" * 22 + "." + "y" * 42])
def test_malformed_refresh_tokens_are_invalid(token):
    with pytest.raises(DomainError) as info:
        family_id_of(token)
    assert info.value.reason == "refresh_token_invalid"
    family, _ = RefreshFamily.start("user-1", now=NOW)
    result = family.rotate(token, now=NOW)
    assert isinstance(result, RotationRejected)
    assert result.reason == "refresh_token_invalid"
    assert result.family.status is FamilyStatus.ACTIVE


def test_token_of_another_family_does_not_revoke_this_one():
    family, _ = RefreshFamily.start("user-1", now=NOW)
    _, foreign = RefreshFamily.start("user-2", now=NOW)
    result = family.rotate(foreign, now=NOW)
    assert isinstance(result, RotationRejected)
    assert result.reason == "refresh_token_invalid"
    assert result.family.status is FamilyStatus.ACTIVE


def test_logout_revokes_and_revoking_twice_keeps_the_first_reason():
    family, token = RefreshFamily.start("user-1", now=NOW)
    out = family.revoke(now=NOW + timedelta(minutes=5), reason="logout")
    assert not out.is_active(now=NOW + timedelta(minutes=5))
    again = out.revoke(now=NOW + timedelta(hours=1), reason="admin")
    assert (again.revoked_reason, again.revoked_at) == ("logout", NOW + timedelta(minutes=5))
    result = out.rotate(token, now=NOW + timedelta(minutes=6))
    assert isinstance(result, RotationRejected)
    assert result.reason == "session_revoked"


def test_family_record_round_trips_through_json():
    family, token = RefreshFamily.start("user-1", now=NOW)
    revoked = family.revoke(now=NOW, reason="logout")
    for state in (family, revoked):
        restored = RefreshFamily.from_record(json.loads(json.dumps(state.to_record())))
        assert restored == state
    restored = RefreshFamily.from_record(json.loads(json.dumps(family.to_record())))
    assert isinstance(restored.rotate(token, now=NOW), RotationAccepted)


def test_kv_ttl_follows_the_current_token():
    family, _ = RefreshFamily.start("user-1", now=NOW)
    assert family.kv_ttl(now=NOW) == REFRESH_TOKEN_TTL
    assert family.kv_ttl(now=NOW + timedelta(days=100)) == timedelta(seconds=1)


# --- a refresh token must prove itself before anything is decided -----------------------


def forged_from_the_session_id(family: RefreshFamily) -> str:
    """What anyone holding an access token can build: its `sid` plus a made-up secret."""
    return f"{family.session_id}.{secrets.token_urlsafe(32)}"


def test_a_token_built_from_the_session_id_proves_nothing_and_revokes_nothing():
    family, first = RefreshFamily.start("user-1", now=NOW)
    rotated = family.rotate(first, now=NOW)
    assert isinstance(rotated, RotationAccepted)
    for state in (family, rotated.family):
        forged = forged_from_the_session_id(state)
        assert family_id_of(forged) == state.family_id  # well-formed, names the family
        assert state.proof(forged) is Proof.NOTHING
        result = state.rotate(forged, now=NOW + timedelta(minutes=1))
        assert isinstance(result, RotationRejected)
        assert result.reason == "refresh_token_invalid"
        assert result.family == state  # nothing to persist: not revoked
        assert result.family.is_active(now=NOW + timedelta(minutes=1))
    again = rotated.family.rotate(rotated.token, now=NOW + timedelta(minutes=2))
    assert isinstance(again, RotationAccepted)  # the holder of the real token goes on


def test_proof_tells_the_current_token_from_a_used_one_and_from_a_stranger():
    family, first = RefreshFamily.start("user-1", now=NOW)
    tokens = [first]
    for minute in range(3):
        result = family.rotate(tokens[-1], now=NOW + timedelta(minutes=minute))
        assert isinstance(result, RotationAccepted)
        family = result.family
        tokens.append(result.token)
    assert family.proof(tokens[-1]) is Proof.CURRENT
    assert [family.proof(t) for t in tokens[:-1]] == [Proof.USED] * 3
    _, stranger = RefreshFamily.start("user-2", now=NOW)
    assert family.proof(stranger) is Proof.NOTHING
    assert family.proof("garbage") is Proof.NOTHING
    assert all(t not in json.dumps(family.to_record()) for t in tokens)


def test_only_the_last_generations_are_remembered_as_reuse():
    family, token = RefreshFamily.start("user-1", now=NOW)
    oldest = token
    for _ in range(REMEMBERED_GENERATIONS + 1):
        result = family.rotate(token, now=NOW)
        assert isinstance(result, RotationAccepted)
        family, token = result.family, result.token
    assert len(family.previous_hashes) == REMEMBERED_GENERATIONS
    assert family.proof(oldest) is Proof.NOTHING  # forgotten: invalid, never a revocation
    forgotten = family.rotate(oldest, now=NOW)
    assert isinstance(forgotten, RotationRejected)
    assert (forgotten.reason, forgotten.family.status) == (
        "refresh_token_invalid",
        FamilyStatus.ACTIVE,
    )


def test_every_stored_hash_is_compared_whatever_matches(monkeypatch):
    """Constant time: the comparison does not stop at the first match (or the first
    mismatch), so how long it takes says nothing about which hash matched."""
    family, token = RefreshFamily.start("user-1", now=NOW)
    for _ in range(4):
        result = family.rotate(token, now=NOW)
        assert isinstance(result, RotationAccepted)
        family, token = result.family, result.token
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in (token, forged_from_the_session_id(family)):
        calls.clear()
        family.proof(presented)
        assert len(calls) == 1 + len(family.previous_hashes) == 5


def test_records_written_before_previous_hashes_existed_still_load():
    family, token = RefreshFamily.start("user-1", now=NOW)
    record = family.to_record()
    del record["previous_hashes"]
    restored = RefreshFamily.from_record(json.loads(json.dumps(record)))
    assert restored == family
    rotated = restored.rotate(token, now=NOW)
    assert isinstance(rotated, RotationAccepted)
    again = RefreshFamily.from_record(json.loads(json.dumps(rotated.family.to_record())))
    assert again.previous_hashes == (family.current_hash,)
