"""HTTP API of the sandbox payment provider (`emporium run payment-sandbox`).

Shaped like a card provider's API (JSON, the merchant's key in an `Idempotency-Key` header):

| method | path | what |
|---|---|---|
| GET | /v1/tokens/{token} | 200 `{token, kind}`; 404 `unknown_token` |
| POST | /v1/payments | capture once per `Idempotency-Key`: `{amount_minor, currency, token}` |
| GET | /v1/payments/{key} | the payment (`processing`, `captured`, ...); 404 if never received |
| POST | /v1/payments/{key}/void | never take money for the key (cancel, reverse or fence) |
| POST | /v1/payments/{key}/refund | give a capture back |
| PUT | /v1/sandbox/faults/{operation} | `{mode: fail\\|lost, count}`: the next calls fail |
|  |  | (`charge`, `lookup`, `void`, `refund`, `token`: the token check) |
| DELETE | /v1/sandbox/faults | disarm every fault |
| GET | /v1/sandbox/ledger | every payment with what was captured, refunded, reversed |

Errors are `{"error": code, "message": ...}` with the status a provider would use (400, 404,
409; 503 for an injected fault). It listens on loopback only: it is a test instrument of the
embedded profile, never deployed in production (payment-service then points
`EMPORIUM_PAYMENT_PROVIDER_URL` at the real provider).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import uvicorn
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from emporium.chassis.logging import configure_logging
from emporium.sandbox.payments.ledger import (
    DEFAULT_HANG_SECONDS,
    TOKENS,
    FaultMode,
    Ledger,
    Operation,
    SandboxError,
    Status,
)

log = logging.getLogger("emporium.sandbox.payments")

NAME = "payment-sandbox"
DEFAULT_PORT = 9070
SWEEP_SECONDS = 0.2
T = TypeVar("T")


class ChargeBody(BaseModel):
    amount_minor: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    token: str = Field(min_length=1, max_length=255)
    reference: str = Field(default="", max_length=128)


class FaultBody(BaseModel):
    mode: FaultMode
    count: int = Field(ge=0, le=1_000_000)


def create_app(ledger: Ledger) -> FastAPI:
    """The provider's routes over `ledger`; a background sweep completes hung captures."""

    async def run(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def faulted(operation: Operation) -> FaultMode | None:
        mode = await run(ledger.take_fault, operation)
        if mode is FaultMode.FAIL:
            raise SandboxError(503, "injected_fault", f"{operation} failed on demand")
        return mode

    def lost(mode: FaultMode | None, operation: Operation) -> None:
        if mode is FaultMode.LOST:
            raise SandboxError(503, "injected_fault", f"{operation} done, answer lost")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(ledger))
        yield
        sweeper.cancel()

    app = FastAPI(title="Emporium sandbox payment provider", lifespan=lifespan)

    @app.exception_handler(SandboxError)
    async def refused(_: Request, exc: SandboxError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=exc.status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/tokens/{token}")
    async def token_kind(token: str) -> dict[str, str]:
        lost(await faulted(Operation.TOKEN), Operation.TOKEN)  # a read: lost is a failure too
        if token not in TOKENS:
            raise SandboxError(404, "unknown_token", f"unknown payment token {token!r}")
        return {"token": token, "kind": TOKENS[token].behaviour.value}

    @app.post("/v1/payments")
    async def charge(
        body: ChargeBody, idempotency_key: Annotated[str, Header(min_length=1, max_length=128)]
    ) -> dict[str, Any]:
        mode = await faulted(Operation.CHARGE)
        entry, created = await run(
            ledger.charge,
            idempotency_key,
            body.amount_minor,
            body.currency,
            body.token,
            body.reference,
        )
        if created and entry.status is Status.PROCESSING and entry.complete_at is not None:
            await asyncio.sleep(max(0.0, entry.complete_at - ledger.clock()))
            await run(ledger.complete_due)
            found = await run(ledger.lookup, idempotency_key)
            entry = found or entry
        lost(mode, Operation.CHARGE)
        return entry.view()

    @app.get("/v1/payments/{key}")
    async def lookup(key: str) -> dict[str, Any]:
        mode = await faulted(Operation.LOOKUP)
        entry = await run(ledger.lookup, key)
        if entry is None:
            raise SandboxError(404, "unknown_payment", f"no payment {key}")
        lost(mode, Operation.LOOKUP)
        return entry.view()

    @app.post("/v1/payments/{key}/void")
    async def void(key: str) -> dict[str, Any]:
        mode = await faulted(Operation.VOID)
        entry = await run(ledger.void, key)
        lost(mode, Operation.VOID)
        return entry.view()

    @app.post("/v1/payments/{key}/refund")
    async def refund(key: str) -> dict[str, Any]:
        mode = await faulted(Operation.REFUND)
        entry = await run(ledger.refund, key)
        lost(mode, Operation.REFUND)
        return entry.view()

    @app.put("/v1/sandbox/faults/{operation}", status_code=204)
    async def set_fault(operation: Operation, body: FaultBody) -> None:
        await run(ledger.set_fault, operation, body.mode, body.count)

    @app.delete("/v1/sandbox/faults", status_code=204)
    async def clear_faults() -> None:
        await run(ledger.clear_faults)

    @app.get("/v1/sandbox/ledger")
    async def entries() -> dict[str, Any]:
        return {"payments": [e.view() for e in await run(ledger.entries)]}

    return app


async def _sweep(ledger: Ledger) -> None:
    """Complete hung captures when their time comes, also those begun before a restart."""
    while True:
        try:
            done = await asyncio.to_thread(ledger.complete_due)
            if done:
                log.info("late captures completed", extra={"count": done})
        except Exception:
            log.exception("sandbox sweep failed")
        await asyncio.sleep(SWEEP_SECONDS)


def run_sandbox(environ: dict[str, str] | None = None) -> int:
    """Serve the provider on loopback until SIGTERM/SIGINT (uvicorn's own handling)."""
    env = dict(os.environ if environ is None else environ)
    configure_logging(NAME, env.get("EMPORIUM_LOG_LEVEL", "INFO"))
    try:
        port = int(env.get("EMPORIUM_PAYMENT_SANDBOX_PORT", DEFAULT_PORT))
        hang = float(env.get("EMPORIUM_PAYMENT_SANDBOX_HANG_SECONDS", DEFAULT_HANG_SECONDS))
    except ValueError as exc:
        print(f"emporium {NAME}: configuration error: {exc}", flush=True)
        return 2
    data_dir = Path(env.get("EMPORIUM_DATA_DIR") or "var")
    ledger = Ledger(data_dir / "payment-sandbox.sqlite3", hang_seconds=hang)
    try:
        uvicorn.run(
            create_app(ledger), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    finally:
        ledger.close()
    return 0
