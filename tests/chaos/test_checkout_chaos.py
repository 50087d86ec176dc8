"""The checkout under fire: the whole platform started as `make up` starts it (embedded
profile, and production: PostgreSQL per service, Redis, Kafka), processes killed with SIGKILL
at chosen points (failpoints) or at random while shoppers buy, then checked from the outside
(REST API, the sandbox provider's ledger, notifications, analytics):

- the orchestrator killed between a reply and its commit;
- payment-service killed after the provider answered, before it recorded the answer;
- a declined payment, with the orchestrator killed during its compensation;
- a compensation that fails (the provider refuses voids) then succeeds, payment killed
  meanwhile;
- a compensation that never succeeds: parked, listed and retried with `emporium sagas`;
- the load test: concurrent shoppers buy a scarce product with mixed tokens while payment,
  order, inventory, notification and relay-running processes are killed and restarted.

Every answered order must exist and end PAID or CANCELLED with a reason; nothing oversold or
left reserved; each paid order captured exactly once and each cancelled one not at all (by
the provider's ledger); one confirmation and one receipt per paid order; analytics' revenue
equal to the paid total. The figures are printed (`-rA` shows them; docs/reliability.md).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emporium.chassis.catalog import service
from tests.chaos.shop import (
    ADMIN_PASSWORD,
    Answer,
    Shop,
    Shopper,
    eventually,
)
from tests.e2e.platform import running_platform, wait_healthy
from tests.e2e.profiles import production_env

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.timeout(900)]


@dataclass
class Placed:
    shopper: Shopper
    answer: Answer
    quantity: int
    token: str


@dataclass
class Run:
    """The platform of one profile and every order the module placed on it."""

    profile: str
    shop: Shop
    placed: list[Placed] = field(default_factory=list)

    def place(self, shopper: Shopper, product_id: str, token: str, quantity: int = 1) -> Answer:
        answer = self.shop.checkout(shopper, product_id, token, quantity)
        self.placed.append(Placed(shopper, answer, quantity, token))
        return answer


@pytest.fixture(scope="module", params=["embedded", "production"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp: Path = tmp_path_factory.mktemp(f"chaos-{request.param}")
    env = {
        "EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "EMPORIUM_GATEWAY_RATE_LIMIT": "1000",
        "EMPORIUM_GATEWAY_RATE_BURST": "2000",
        "EMPORIUM_FAILPOINTS": "1",
        "EMPORIUM_AUTH_LOGIN_LIMIT_PER_ADDRESS": "1000",
        # Park after about half a minute instead of four (the parking test waits for it).
        "EMPORIUM_ORDER_COMPENSATION_ATTEMPTS": "12",
        "EMPORIUM_ORDER_COMPENSATION_MAX_DELAY_SECONDS": "3",
    }
    with production_env(request.param) as extra:
        env.update(extra)
        with running_platform(tmp, env) as platform:
            try:
                wait_healthy()
                shop = Shop(platform)
                yield Run(request.param, shop)
                shop.close()
            except BaseException:
                print(platform.log()[-20_000:])
                raise


# -- checks shared by every scenario --------------------------------------------------------


def check_order(run: Run, placed: Placed) -> dict[str, Any]:
    """The answered order exists, is listed, ends PAID or CANCELLED with a reason, and the
    provider's books agree with it."""
    order_id = placed.answer.order_id
    assert order_id is not None
    order = run.shop.settled(placed.shopper, order_id)
    if order["status"] == "CANCELLED":
        assert order.get("cancel_reason") or order["payment"].get("reason"), order
    listed = {o["id"] for o in run.shop.listed(placed.shopper)}
    assert order_id in listed
    book = run.shop.ledger().get(order_id)
    if order["status"] == "PAID":
        assert book is not None, order
        assert (book["captures"], book["net_minor"]) == (1, order["total_minor"]), book
    elif book is not None:
        assert book["net_minor"] == 0, (order, book)  # cancelled: nothing kept
        assert book["captures"] <= 1, book
    return order


def check_stock(run: Run, sku: str, received: int, orders: list[dict[str, Any]]) -> None:
    paid_units = sum(
        sum(i["quantity"] for i in o["items"]) for o in orders if o["status"] == "PAID"
    )
    level = eventually(
        lambda: (s := run.shop.stock(sku))["reserved"] == 0 and s,
        f"nothing reserved of {sku}",
        60,
    )
    assert paid_units <= received  # never oversold
    assert level["on_hand"] == received - paid_units, (level, paid_units)
    assert level["available"] == level["on_hand"]


def check_notifications(run: Run, shopper: Shopper, orders: list[dict[str, Any]]) -> None:
    """Exactly one confirmation and one receipt per paid order; none of either for an order
    refused before it was placed; no receipt for a cancelled one unless the provider took
    money that was then given back."""

    def expected_seen() -> Counter[tuple[str, str]] | None:
        counts = run.shop.notifications(shopper)
        for order in orders:
            if order["status"] == "PAID" and (
                counts[("payment_receipt", order["id"])] < 1
                or counts[("order_confirmation", order["id"])] < 1
            ):
                return None
        return counts

    counts = eventually(expected_seen, "confirmations and receipts", 60)
    time.sleep(1.0)  # anything doubled would have arrived by now too
    counts = run.shop.notifications(shopper)
    books = run.shop.ledger()
    for order in orders:
        oid = order["id"]
        receipts, confirmations = (
            counts[("payment_receipt", oid)],
            counts[("order_confirmation", oid)],
        )
        assert confirmations <= 1, (order, counts)
        if order["status"] == "PAID":
            assert (confirmations, receipts) == (1, 1), (order, counts)
        elif order.get("cancel_reason") == "out_of_stock":
            assert (confirmations, receipts) == (0, 0), (order, counts)
        else:
            given_back = books.get(oid, {}).get("captures", 0) == 1
            assert receipts <= (1 if given_back else 0), (order, counts, books.get(oid))


# -- scenarios ------------------------------------------------------------------------------


def test_orchestrator_killed_between_a_reply_and_its_commit(run: Run) -> None:
    shop = run.shop
    product_id, sku = shop.product(stock=5)
    shopper = shop.shopper()
    marker = shop.arm("checkout.reply_received.Charge")  # the capture happened, not recorded
    answers: list[Answer] = []
    buyer = threading.Thread(
        target=lambda: answers.append(run.place(shopper, product_id, "tok_visa", 2))
    )
    buyer.start()
    killed = shop.kill_at(marker)
    started = time.monotonic()
    buyer.join(180)
    order = check_order(run, run.placed[-1])
    recovered = time.monotonic() - started
    assert order["status"] == "PAID"  # resumed: the same payment answered, captured once
    check_stock(run, sku, 5, [order])
    check_notifications(run, shopper, [order])
    print(
        f"[chaos:{run.profile}] order pid {killed} killed after the Charge reply; PAID "
        f"{recovered:.1f}s later after {answers[0].tries} tries of the same key"
    )


def test_payment_killed_after_the_provider_answered(run: Run) -> None:
    shop = run.shop
    product_id, sku = shop.product(stock=5)
    shopper = shop.shopper()
    marker = shop.arm("payment.provider_answered")  # captured at the provider, not recorded
    buyer = threading.Thread(target=lambda: run.place(shopper, product_id, "tok_visa"))
    buyer.start()
    killed = shop.kill_at(marker)
    buyer.join(180)
    order = check_order(run, run.placed[-1])
    book = shop.ledger()[order["id"]]
    # Either the retry found the capture (PAID) or the saga gave up and the capture was
    # reversed (CANCELLED): never kept money for a cancelled order, never captured twice.
    assert book["captures"] == 1
    check_stock(run, sku, 5, [order])
    check_notifications(run, shopper, [order])
    print(
        f"[chaos:{run.profile}] payment pid {killed} killed after the provider captured; order "
        f"{order['status']} ({order.get('cancel_reason')}), provider net {book['net_minor']}"
    )


def test_a_declined_payment_with_the_orchestrator_killed_while_compensating(run: Run) -> None:
    shop = run.shop
    product_id, sku = shop.product(stock=3)
    shopper = shop.shopper()
    marker = shop.arm("checkout.reply_received.ReleaseStock")
    buyer = threading.Thread(target=lambda: run.place(shopper, product_id, "tok_chargeDeclined", 3))
    buyer.start()
    shop.kill_at(marker)
    buyer.join(180)
    order = check_order(run, run.placed[-1])
    assert (order["status"], order["payment"]["status"]) == ("CANCELLED", "DECLINED")
    check_stock(run, sku, 3, [order])
    check_notifications(run, shopper, [order])


def test_a_compensation_that_fails_then_succeeds(run: Run) -> None:
    shop = run.shop
    product_id, sku = shop.product(stock=2)
    shopper = shop.shopper()
    shop.fault("void", "fail", 6)  # the provider refuses the next six voids
    answer = run.place(shopper, product_id, "tok_timeout")
    assert answer.status_code in (201, 202)
    time.sleep(1.0)
    shop.kill("payment")  # the VOIDING intent survives the crash
    order = check_order(run, run.placed[-1])
    assert (order["status"], order["payment"]["status"]) == ("CANCELLED", "VOIDED")
    book = shop.ledger()[order["id"]]
    # The hung charge may have captured while the voids kept failing: then it was reversed.
    assert (book["status"], book["net_minor"]) == ("voided", 0)
    assert book["captures"] <= 1
    check_stock(run, sku, 2, [order])
    check_notifications(run, shopper, [order])
    shop.clear_faults()
    print(
        f"[chaos:{run.profile}] six voids refused and payment killed: CANCELLED/VOIDED, "
        f"provider captures {book['captures']}, reversed {book['reversed_minor']}, net 0"
    )


def test_a_compensation_that_never_succeeds_is_parked_for_the_operator(run: Run) -> None:
    shop = run.shop
    product_id, sku = shop.product(stock=2)
    shopper = shop.shopper()
    order_port = service("order").http_port
    parked_before = shop.metric(order_port, "emporium_sagas_parked_total")
    shop.fault("void", "fail", 1_000_000)
    answer = run.place(shopper, product_id, "tok_timeout")
    order_id = answer.order_id
    assert order_id is not None
    sagas = shop.sagas

    def parked_listing() -> str | None:
        out = sagas("list")
        return out if order_id in out else None

    listing = eventually(parked_listing, "the saga parked", 120)
    assert "PARKED" in listing
    assert shop.metric(order_port, "emporium_sagas_parked_total") >= parked_before + 1
    still = shop.order(shopper, order_id)
    assert still["status"] == "PENDING"  # nobody claims the money moved
    shop.clear_faults()  # the provider is fixed; the operator retries
    retried = sagas("retry", order_id)
    assert order_id in retried
    order = check_order(run, run.placed[-1])
    assert (order["status"], order["payment"]["status"]) == ("CANCELLED", "VOIDED")
    assert order_id not in sagas("list")
    check_stock(run, sku, 2, [order])
    print(f"[chaos:{run.profile}] parked saga listed and retried:\n{listing}")


# -- the load test --------------------------------------------------------------------------

SHOPPERS = 6
CHECKOUTS_EACH = 6
STOCK = 12
TOKENS = ["tok_visa"] * 6 + ["tok_chargeDeclined"] * 2 + ["tok_timeout"] * 2
VICTIMS = ["payment", "order", "inventory", "notification", "product", "order", "payment",
           "inventory", "user", "notification"]  # fmt: skip
KILL_EVERY_SECONDS = 2.5


def test_concurrent_shoppers_while_processes_are_killed(run: Run) -> None:
    shop = run.shop
    rng = random.Random(20261202)
    product_id, sku = shop.product(stock=STOCK)
    shoppers = [shop.shopper() for _ in range(SHOPPERS)]
    plans = [
        [(rng.choice(TOKENS), rng.choice([1, 1, 2])) for _ in range(CHECKOUTS_EACH)]
        for _ in shoppers
    ]
    done = threading.Event()
    kills: Counter[str] = Counter()
    errors: list[BaseException] = []

    def shop_for(shopper: Shopper, plan: list[tuple[str, int]]) -> None:
        client = shop.another()
        try:
            for token, quantity in plan:
                answer = client.checkout(shopper, product_id, token, quantity)
                run.placed.append(Placed(shopper, answer, quantity, token))
        except BaseException as exc:
            errors.append(exc)
        finally:
            client.close()

    def killer() -> None:
        for victim in VICTIMS:
            if done.wait(KILL_EVERY_SECONDS):
                return
            shop.kill(victim)
            kills[victim] += 1

    started = time.monotonic()
    threads = [
        threading.Thread(target=shop_for, args=(s, p)) for s, p in zip(shoppers, plans, strict=True)
    ]
    chaos = threading.Thread(target=killer)
    chaos.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    done.set()
    chaos.join()
    load_seconds = time.monotonic() - started
    assert not errors, errors

    mine = [p for p in run.placed if p.shopper in shoppers]
    answered = [p for p in mine if p.answer.status_code in (201, 202)]
    refused = [p for p in mine if p.answer.status_code == 409]
    orders = [check_order(run, p) for p in answered]
    settle_seconds = time.monotonic() - started - load_seconds
    check_stock(run, sku, STOCK, orders)
    for shopper in shoppers:
        check_notifications(
            run, shopper, [o for o in orders if o["user_id"] == shopper_id(run, shopper)]
        )
    replayed = shop.checkout(answered[0].shopper, product_id, "tok_visa", answered[0].quantity,
                             key=answered[0].answer.key)  # fmt: skip
    assert replayed.order_id == answered[0].answer.order_id  # the same key, the same order

    every = [check_order(run, p) for p in run.placed if p.answer.order_id]
    paid_total = sum(o["total_minor"] for o in every if o["status"] == "PAID")
    paid_count = sum(o["status"] == "PAID" for o in every)
    sales = eventually(
        lambda: (s := shop.sales())["revenue_minor"] == paid_total and s,
        f"analytics revenue {paid_total}",
        90,
    )
    assert sales["paid_orders"] == paid_count

    outcomes = Counter(
        o["status"] if o["status"] == "PAID" else f"CANCELLED:{o.get('cancel_reason')}"
        for o in orders
    )
    tries = [p.answer.tries for p in mine]
    print(
        f"[chaos:{run.profile}] load: {len(mine)} checkouts by {SHOPPERS} shoppers in "
        f"{load_seconds:.1f}s; {sum(kills.values())} SIGKILLs {dict(kills)}; "
        f"answers 201/202: {len(answered)}, 409: {len(refused)}; retries of the same key: "
        f"max {max(tries)}, total {sum(tries) - len(tries)}; settled {settle_seconds:.1f}s "
        f"after the load; outcomes {dict(outcomes)}; paid units "
        f"{STOCK - shop.stock(sku)['on_hand']}/{STOCK}; analytics revenue {sales['revenue_minor']} "
        f"= paid total {paid_total} over {paid_count} paid orders"
    )


def shopper_id(run: Run, shopper: Shopper) -> str:
    answer = run.shop.client.get("/users/me", headers=shopper.headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])
