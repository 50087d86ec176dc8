"""`emporium sagas list | retry | cancel`: the operator's commands for checkout sagas.

A saga is PARKED when a compensation (void or refund of the payment, release of the stock)
kept failing; the alert `CheckoutSagaParked` says so. The operator looks (`list`), fixes the
cause (the provider is back, a deploy finished) and `retry`s it, or settles it by hand (at
the provider's dashboard) and `cancel`s it with a note. The command calls order-service over
gRPC as the `operator` system identity, proven with its own key
(`var/service-keys/operator.key` in the embedded profile, `EMPORIUM_OPERATOR_SERVICE_KEY_FILE`
in production); order-service accepts only that identity on these methods.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from emporium.chassis.config import grpc_target
from emporium.chassis.rpc import service_auth
from emporium.chassis.rpc.acl import OPERATOR as OPERATOR_NAME
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller, acting_as
from emporium.chassis.rpc.service_auth import load_identity
from emporium.contracts.rpc.order.v1 import order_pb2, order_pb2_grpc

OPERATOR = Caller.system(OPERATOR_NAME)
COLUMNS = ("order_id", "state", "order_status", "payment", "stock", "attempts", "reason")


def add_parser(sub: Any) -> None:
    sagas = sub.add_parser("sagas", help="list, retry or cancel checkout sagas (operators)")
    verbs = sagas.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="unfinished sagas (default: PARKED ones)")
    listing.add_argument("--state", action="append", default=None, help="repeatable; ALL: any")
    listing.add_argument("--limit", type=int, default=100)
    retry = verbs.add_parser("retry", help="resume a parked saga's compensation")
    retry.add_argument("order_id")
    cancel = verbs.add_parser("cancel", help="close a parked saga settled by hand")
    cancel.add_argument("order_id")
    cancel.add_argument("--note", required=True, help="what was done by hand (kept as reason)")


def _row(saga: Any) -> tuple[str, ...]:
    reason = saga.parked_reason or saga.cancel_reason
    return (
        saga.order_id,
        saga.state,
        saga.order_status,
        saga.payment,
        saga.stock,
        str(saga.attempts),
        reason,
    )


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in [COLUMNS, *rows]
    )


async def _run(args: argparse.Namespace) -> int:
    channel = create_channel(grpc_target("order"), service=OPERATOR_NAME, caller=OPERATOR)
    stub = order_pb2_grpc.OrderServiceStub(channel)
    try:
        if args.verb == "list":
            states = args.state or ["PARKED"]
            states = [] if any(s.upper() == "ALL" for s in states) else states
            rows: list[tuple[str, ...]] = []
            cursor = ""
            while len(rows) < args.limit:
                page = await stub.ListSagas(
                    order_pb2.ListSagasRequest(states=states, limit=100, cursor=cursor)
                )
                rows += [_row(s) for s in page.sagas]
                cursor = page.next_cursor
                if not cursor:
                    break
            print(_table(rows[: args.limit]))
            print(f"{len(rows[: args.limit])} saga(s)")
        elif args.verb == "retry":
            saga = await stub.RetrySaga(order_pb2.RetrySagaRequest(order_id=args.order_id))
            print(_table([_row(saga)]))
        else:
            saga = await stub.CancelSaga(
                order_pb2.CancelSagaRequest(order_id=args.order_id, note=args.note)
            )
            print(_table([_row(saga)]))
    except grpc.aio.AioRpcError as exc:
        error = domain_error_from_rpc(exc)
        print(f"emporium sagas {args.verb}: {exc.code().name}: {error.message}", file=sys.stderr)
        return 1
    finally:
        await channel.close()
    return 0


def main(args: argparse.Namespace) -> int:
    data_dir = Path(os.environ.get("EMPORIUM_DATA_DIR") or "var")
    service_auth.install(load_identity(OPERATOR_NAME, data_dir))
    with acting_as(OPERATOR):
        return asyncio.run(_run(args))
