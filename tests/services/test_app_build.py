"""Every backend's `app.build` wires one gRPC service named after its proto, with readiness
checks that pass on the embedded adapters, and a servicer a real gRPC server accepts.

Why: the runtime registers health under `service_name` and the gateway's health endpoint
asks for exactly that name, so a mismatch would report a healthy service as down.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from emporium.chassis.catalog import BACKENDS
from emporium.chassis.config import load_settings
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.server import create_server
from emporium.chassis.rpc.service_auth import SERVICE_PROOF_KEY, load_identity
from emporium.chassis.runtime import ServiceApp, declared_callers, run_checks

NAMES = [b.name for b in BACKENDS]


@pytest.fixture(params=NAMES)
async def built(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServiceApp]:
    name = request.param
    build = importlib.import_module(f"emporium.services.{name}.app").build
    app = await build(load_settings(name, {"EMPORIUM_DATA_DIR": str(tmp_path)}))
    try:
        yield app
    finally:
        for close in reversed(app.on_stop):
            await close()


def proto_service_name(name: str) -> str:
    pb2 = importlib.import_module(f"emporium.contracts.rpc.{name}.v1.{name}_pb2")
    (service,) = pb2.DESCRIPTOR.services_by_name.values()
    return str(service.full_name)


async def test_build_registers_the_proto_service(built: ServiceApp) -> None:
    assert isinstance(built, ServiceApp)
    assert built.name == built.settings.name
    (registration,) = built.grpc_services
    assert registration.service_name == proto_service_name(built.name)
    assert registration.service_name == (
        f"emporium.{built.name}.v1.{built.name.capitalize()}Service"
    )


async def test_readiness_checks_pass(built: ServiceApp) -> None:
    ok, checks = await run_checks(built)
    assert ok, checks
    assert all(result == "ok" for result in checks.values())


async def test_every_rpc_of_the_proto_is_implemented(built: ServiceApp) -> None:
    """Each RPC of the service's proto answers an empty, anonymous request over the chassis
    server with a real verdict (a result, or a validation/authorization/lookup error): never
    UNIMPLEMENTED, and never an unexpected INTERNAL/UNKNOWN error."""
    (registration,) = built.grpc_services
    pb2 = importlib.import_module(f"emporium.contracts.rpc.{built.name}.v1.{built.name}_pb2")
    (service,) = pb2.DESCRIPTOR.services_by_name.values()
    server = create_server(built.name, built.verifier)
    registration.add_to_server(registration.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    verdicts: dict[str, grpc.StatusCode] = {}
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method in service.methods:
                call = channel.unary_unary(f"/{service.full_name}/{method.name}")
                try:
                    await call(b"", timeout=5)
                    verdicts[method.name] = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as exc:
                    verdicts[method.name] = exc.code()
    finally:
        await server.stop(None)
    bad = {grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
    assert {m: c for m, c in verdicts.items() if c in bad} == {}


async def test_relational_services_check_their_database(built: ServiceApp) -> None:
    relational = {"user", "order", "product", "payment", "inventory", "auth"}
    assert ("database" in built.checks) == (built.name in relational)


# --- who may call what (each backend's callers.py, enforced by the runtime's server) ------

MONEY = ("Charge", "Void", "Refund")


def declared(name: str) -> Any:
    (table,) = importlib.import_module(f"emporium.services.{name}.callers").CALLERS
    return table


@pytest.mark.parametrize("name", NAMES)
def test_every_rpc_of_the_proto_names_its_callers(name: str) -> None:
    """A new RPC is refused to everybody until its callers are declared: this fails first."""
    pb2 = importlib.import_module(f"emporium.contracts.rpc.{name}.v1.{name}_pb2")
    (service,) = pb2.DESCRIPTOR.services_by_name.values()
    table = declared(name)
    assert table.service == service.full_name
    assert table.undeclared(service) == []
    assert all(callers for callers in table.methods.values())


def test_only_order_may_move_money_and_the_operator_only_runs_saga_commands() -> None:
    payment = declared("payment")
    assert {m: payment.methods[m] for m in MONEY} == {m: frozenset({"order"}) for m in MONEY}
    for name in NAMES:
        for method, callers in declared(name).methods.items():
            assert "operator" not in callers or method in ("ListSagas", "RetrySaga", "CancelSaga")
            assert "cdn" not in callers or (name, method) == ("auth", "GetJwks")


async def test_the_served_backend_enforces_its_table(built: ServiceApp, tmp_path: Path) -> None:
    """Served as the runtime serves it: every RPC refuses a call without a proof, and one
    from an identity its table does not name (the gateway and cdn at payment's Charge)."""
    (registration,) = built.grpc_services
    server = create_server(built.name, built.verifier, callers=declared_callers(built))
    registration.add_to_server(registration.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    table = declared(built.name)
    keys = tmp_path / "keys"
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method, callers in table.methods.items():
                call = channel.unary_unary(f"/{table.service}/{method}")
                service_auth.install(None)
                with pytest.raises(grpc.aio.AioRpcError) as unproven:
                    await call(b"", timeout=5)
                assert unproven.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
                stranger = next(n for n in ("cdn", "api_gateway", "operator") if n not in callers)
                service_auth.install(load_identity(stranger, keys, {}))
                proof = service_auth.installed().proof_for(built.name)  # type: ignore[union-attr]
                with pytest.raises(grpc.aio.AioRpcError) as denied:
                    await call(b"", timeout=5, metadata=[(SERVICE_PROOF_KEY, proof)])
                assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
                allowed = sorted(callers)[0]
                service_auth.install(load_identity(allowed, keys, {}))
                proof = service_auth.installed().proof_for(built.name)  # type: ignore[union-attr]
                try:
                    await call(b"", timeout=5, metadata=[(SERVICE_PROOF_KEY, proof)])
                except grpc.aio.AioRpcError as exc:  # the handler's own verdict, past the table
                    details = exc.details() or ""
                    assert "accept" not in details, (method, details)
                    assert "service proof" not in details, (method, details)
    finally:
        service_auth.install(None)
        await server.stop(None)
