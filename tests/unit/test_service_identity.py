"""Service identity: each service's own Ed25519 key (chassis/rpc/service_keys.py), proofs
bound to one callee and one minute (service_auth.py), and per-method tables of accepted
callers enforced by the server interceptor (acl.py), over a real gRPC server on loopback."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from emporium.chassis.config import ConfigError
from emporium.chassis.errors import DomainError, ErrorCode, unauthenticated
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.acl import CallerTable
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.health import add_health, check_health
from emporium.chassis.rpc.identity import Caller, current_caller, current_calling_service
from emporium.chassis.rpc.server import create_server
from emporium.chassis.rpc.service_auth import (
    PROOF_TTL_SECONDS,
    SERVICE_PROOF_KEY,
    ServiceIdentity,
    audience_of,
    load_identity,
)
from emporium.chassis.rpc.service_keys import (
    PUBLIC_KEYS_DIR_VAR,
    PublicKeyring,
    ensure_local_keys,
    key_file_var,
    key_var,
    load_private_key,
    private_pem,
    public_pem,
)

SERVICE = "emporium.echo.v1.EchoService"  # audience "echo"
NAMES = ("order", "api_gateway", "cdn", "operator")


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> dict[str, Ed25519PrivateKey]:
    return {name: Ed25519PrivateKey.generate() for name in NAMES}


@pytest.fixture
def keyring(keys: dict[str, Ed25519PrivateKey]) -> PublicKeyring:
    ring = PublicKeyring(None)
    for name, key in keys.items():
        ring.add(name, key.public_key())
    return ring


def identity(name: str, keys: dict[str, Any], ring: PublicKeyring, **kw: Any) -> ServiceIdentity:
    return ServiceIdentity(name, keys[name], ring, **kw)


def refusal(call: Any) -> DomainError:
    with pytest.raises(DomainError) as caught:
        call()
    assert caught.value.code is ErrorCode.UNAUTHENTICATED
    return caught.value


# --- keys -----------------------------------------------------------------------------


def test_embedded_keys_are_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_private_key("order", tmp_path, {})
    again = load_private_key("order", tmp_path, {})
    assert private_pem(first) == private_pem(again)
    folder = tmp_path / "service-keys"
    assert stat.S_IMODE(os.stat(folder / "order.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert (folder / "order.pub").read_bytes() == public_pem(first.public_key())
    ensure_local_keys(tmp_path, ["payment", "operator"], {})
    assert sorted(p.name for p in folder.iterdir()) == [
        "operator.key", "operator.pub", "order.key", "order.pub", "payment.key", "payment.pub",
    ]  # fmt: skip


def test_production_reads_configured_keys_and_never_generates_one(tmp_path: Path) -> None:
    public_dir = tmp_path / "public"
    env = {PUBLIC_KEYS_DIR_VAR: str(public_dir)}
    with pytest.raises(ConfigError, match=key_file_var("payment")):
        load_private_key("payment", tmp_path / "data", env)
    ensure_local_keys(tmp_path / "data", ["payment"], env)
    assert not (tmp_path / "data").exists()

    key = Ed25519PrivateKey.generate()
    (tmp_path / "payment.pem").write_bytes(private_pem(key))
    from_file = load_private_key(
        "payment", tmp_path, {**env, key_file_var("payment"): str(tmp_path / "payment.pem")}
    )
    from_pem = load_private_key(
        "payment", tmp_path, {**env, key_var("payment"): private_pem(key).decode()}
    )
    assert private_pem(from_file) == private_pem(from_pem) == private_pem(key)
    assert key_file_var("api_gateway") == "EMPORIUM_API_GATEWAY_SERVICE_KEY_FILE"


def test_unusable_keys_are_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    rsa_like = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization

    pem = rsa_like.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ConfigError, match="Ed25519"):
        load_private_key("order", tmp_path, {key_var("order"): pem})
    with pytest.raises(ConfigError, match=key_var("order")):
        load_private_key("order", tmp_path, {key_var("order"): "not a key"})
    with pytest.raises(ConfigError, match=key_file_var("order")):
        load_private_key("order", tmp_path, {key_file_var("order"): str(tmp_path / "missing")})
    with pytest.raises(ValueError):
        load_private_key("../etc/passwd", tmp_path, {})


def test_the_keyring_reads_every_key_of_a_file_and_rereads_it_at_most_every_interval(
    tmp_path: Path,
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "order.pub").write_bytes(public_pem(old.public_key()))
    clock = Clock(0.0)
    ring = PublicKeyring(tmp_path, reload_interval=2.0, clock=clock)
    assert [public_pem(k) for k in ring.keys("order")] == [public_pem(old.public_key())]
    (tmp_path / "order.pub").write_bytes(
        public_pem(new.public_key()) + public_pem(old.public_key())
    )
    assert not ring.reload("order")  # read a moment ago
    clock.now += 2.5
    assert ring.reload("order")
    assert len(ring.keys("order")) == 2
    assert ring.keys("nobody") == ()
    assert ring.keys("../order") == ()


# --- proofs ---------------------------------------------------------------------------


def test_a_proof_names_its_caller_and_only_its_callee_accepts_it(keys, keyring) -> None:
    order = identity("order", keys, keyring)
    proof = order.proof_for("payment")
    assert order.verify(proof, "payment") == "order"
    claims = jwt.decode(proof, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["exp"] - claims["iat"]) == ("order", "payment", 60)
    assert jwt.get_unverified_header(proof)["typ"] == "svc+jwt"
    wrong = refusal(lambda: order.verify(proof, "inventory"))
    assert wrong.reason == "service_proof_wrong_audience"
    assert audience_of("/emporium.payment.v1.PaymentService/Charge") == "payment"
    assert audience_of("grpc.health.v1.Health/Check") is None


def test_no_service_can_make_a_proof_that_names_another(keys, keyring) -> None:
    """What one shared secret allowed: the gateway (or cdn) speaking as order."""
    checker = identity("order", keys, keyring, clock=Clock())
    for impostor in ("api_gateway", "cdn"):
        now = int(Clock()())
        claims = {"iss": "order", "sub": "order", "aud": "payment", "iat": now, "exp": now + 60}
        forged = jwt.encode(claims, keys[impostor], "EdDSA", headers={"typ": "svc+jwt"})
        assert (
            refusal(lambda f=forged: checker.verify(f, "payment")).reason == "service_proof_invalid"
        )
    stranger = ServiceIdentity("search", Ed25519PrivateKey.generate(), PublicKeyring(None))
    unknown = stranger.proof_for("payment")
    assert refusal(lambda: checker.verify(unknown, "payment")).reason == "service_proof_invalid"


def test_proofs_expire_after_a_minute_and_are_reissued_at_half_life(keys, keyring) -> None:
    clock = Clock()
    order = identity("order", keys, keyring, clock=clock)
    first = order.proof_for("payment")
    clock.now += PROOF_TTL_SECONDS // 2 - 1
    assert order.proof_for("payment") == first
    clock.now += 2
    second = order.proof_for("payment")
    assert second != first
    assert order.verify(first, "payment") == "order"  # cached as verified...
    clock.now += PROOF_TTL_SECONDS // 2 + 11
    assert refusal(lambda: order.verify(first, "payment")).reason == "service_proof_expired"
    assert order.verify(second, "payment") == "order"


@pytest.mark.parametrize(
    ("header", "lifetime", "reason"),
    [
        ({"typ": "svc+jwt"}, 3600, "service_proof_invalid"),  # longer than a minute
        ({"typ": "at+jwt"}, 60, "service_proof_malformed"),  # an access token is no proof
    ],
)
def test_a_proof_must_be_short_lived_and_of_its_own_type(keys, keyring, header, lifetime, reason):
    now = int(Clock()())
    claims = {"iss": "order", "sub": "order", "aud": "payment", "iat": now, "exp": now + lifetime}
    proof = jwt.encode(claims, keys["order"], "EdDSA", headers=header)
    checker = identity("order", keys, keyring, clock=Clock())
    assert refusal(lambda: checker.verify(proof, "payment")).reason == reason


def test_garbage_and_symmetric_proofs_are_malformed_or_invalid(keys, keyring) -> None:
    checker = identity("order", keys, keyring)
    now = int(Clock()())
    claims = {"iss": "order", "sub": "order", "aud": "payment", "iat": now, "exp": now + 60}
    hs256 = jwt.encode(
        claims, "a shared secret of thirty-two bytes!", "HS256", headers={"typ": "svc+jwt"}
    )
    for proof in ("", "order", "a.b.c", hs256):
        assert refusal(lambda p=proof: checker.verify(p, "payment")).reason.startswith(
            "service_proof_"
        )


def test_a_rotated_key_is_picked_up_from_the_public_keys_directory(tmp_path: Path) -> None:
    env = {PUBLIC_KEYS_DIR_VAR: str(tmp_path / "pub")}
    (tmp_path / "pub").mkdir()
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "pub" / "order.pub").write_bytes(public_pem(old.public_key()))
    payment = load_identity(
        "payment", tmp_path, {**env, key_var("payment"): private_pem(new).decode()}
    )
    signer = ServiceIdentity("order", old, PublicKeyring(None))
    assert payment.verify(signer.proof_for("payment"), "payment") == "order"
    rotated = ServiceIdentity("order", new, PublicKeyring(None))
    (tmp_path / "pub" / "order.pub").write_bytes(
        public_pem(new.public_key()) + public_pem(old.public_key())
    )
    payment.keyring.reload_interval = 0.0
    assert payment.verify(rotated.proof_for("payment"), "payment") == "order"


# --- the interceptors, end to end -----------------------------------------------------


class TableVerifier:
    async def verify(self, token: str) -> Caller:
        if token == "admin-token":
            return Caller("u-admin", frozenset({"admin"}), token)
        raise unauthenticated("invalid token")


async def seen(request: bytes, context: Any) -> bytes:
    caller = current_caller()
    return json.dumps(
        {"user": caller.user_id, "roles": sorted(caller.roles), "via": current_calling_service()}
    ).encode()


ECHO_TABLE = CallerTable(
    SERVICE,
    {
        "WhoAmI": frozenset({"api_gateway", "order"}),
        "Charge": frozenset({"order"}),
        "ListSagas": frozenset({"operator"}),
    },
)


async def start(callers: list[CallerTable] | None) -> tuple[Any, str]:
    server = create_server("echo", TableVerifier(), callers=callers)
    handler = grpc.unary_unary_rpc_method_handler(seen)
    methods = dict.fromkeys(("WhoAmI", "Charge", "ListSagas", "Undeclared"), handler)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, methods),))
    health = add_health(server, [SERVICE])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health.set_serving()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def target() -> AsyncIterator[str]:
    server, address = await start([ECHO_TABLE])
    yield address
    await server.stop(None)


@pytest.fixture
def as_process(keys, keyring) -> Iterator[Any]:
    """Install the identity of one 'process' (client and server share the keyring)."""

    def become(name: str | None) -> None:
        service_auth.install(None if name is None else identity(name, keys, keyring))

    yield become
    service_auth.install(None)


async def call(target: str, method: str, caller: Caller | None = None, **kw: Any) -> Any:
    async with create_channel(target, caller=caller or Caller.anonymous()) as channel:
        answer = await channel.unary_unary(f"/{SERVICE}/{method}")(b"", **kw)
    return json.loads(answer)


async def refused(target: str, method: str, caller: Caller | None = None, **kw: Any) -> DomainError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(target, method, caller, **kw)
    return domain_error_from_rpc(caught.value)


async def test_only_the_declared_services_get_through(target, as_process) -> None:
    as_process("order")
    assert (await call(target, "Charge", Caller.system("order")))["via"] == "order"
    for name in ("api_gateway", "cdn"):
        as_process(name)
        admin = Caller("u-admin", frozenset({"admin"}), "admin-token")
        denied = await refused(target, "Charge", admin)
        assert (denied.code, denied.message) == (
            ErrorCode.PERMISSION_DENIED,
            f"{SERVICE}/Charge does not accept calls from {name}",
        )
    as_process("order")
    undeclared = await refused(target, "Undeclared", Caller.system("order"))
    assert undeclared.code is ErrorCode.PERMISSION_DENIED


async def test_without_a_proof_nothing_but_health_is_reachable(target, as_process) -> None:
    as_process(None)
    for caller in (Caller.anonymous(), Caller("u-admin", frozenset({"admin"}), "admin-token")):
        assert (await refused(target, "WhoAmI", caller)).code is ErrorCode.UNAUTHENTICATED
    assert await check_health(target, service=SERVICE)


async def test_the_proof_travels_with_a_forwarded_user_token(target, as_process) -> None:
    """The token says for whom, the proof says which service forwards it."""
    as_process("api_gateway")
    answer = await call(target, "WhoAmI", Caller("forged-id", frozenset(), "admin-token"))
    assert answer == {"user": "u-admin", "roles": ["admin"], "via": "api_gateway"}


async def test_identity_headers_need_a_token_or_the_callers_own_proof(target, as_process) -> None:
    as_process("api_gateway")
    for claimed in (Caller("mallory", frozenset({"admin"})), Caller.system("order")):
        assert (await refused(target, "WhoAmI", claimed)).code is ErrorCode.UNAUTHENTICATED
    answer = await call(target, "WhoAmI", Caller.system("api_gateway"))
    assert answer == {"user": "service:api_gateway", "roles": ["system"], "via": "api_gateway"}
    server, open_target = await start(None)  # no table: proofs still checked when sent
    try:
        as_process(None)
        forged = await refused(open_target, "WhoAmI", Caller("mallory", frozenset({"admin"})))
        assert forged.code is ErrorCode.UNAUTHENTICATED
    finally:
        await server.stop(None)


async def test_a_proof_for_another_callee_is_refused(target, as_process, keys, keyring) -> None:
    as_process("cdn")  # the explicit proof below replaces cdn's own
    for_payment = identity("order", keys, keyring).proof_for("payment")
    err = await refused(target, "WhoAmI", metadata=[(SERVICE_PROOF_KEY, for_payment)])
    assert (err.code, err.reason) == (ErrorCode.UNAUTHENTICATED, "service_proof_wrong_audience")


async def test_the_operator_is_accepted_only_where_a_method_names_it(target, as_process) -> None:
    as_process("operator")
    assert (await call(target, "ListSagas", Caller.system("operator")))["via"] == "operator"
    for method in ("WhoAmI", "Charge"):
        denied = await refused(target, method, Caller.system("operator"))
        assert denied.code is ErrorCode.PERMISSION_DENIED


def test_caller_tables_refuse_typos_at_import_time() -> None:
    from emporium.contracts.rpc.payment.v1 import payment_pb2

    descriptor = payment_pb2.DESCRIPTOR.services_by_name["PaymentService"]
    with pytest.raises(ValueError, match="no method Chrage"):
        CallerTable.of(descriptor, {"Chrage": {"order"}})
    with pytest.raises(ValueError, match="unknown caller"):
        CallerTable.of(descriptor, {"Charge": {"orders"}})
    assert CallerTable.of(descriptor, {"Charge": {"order"}}).undeclared(descriptor) == [
        "CheckPaymentToken", "GetPayment", "Refund", "Void",
    ]  # fmt: skip
