"""Every panel of every generated dashboard asks a real Prometheus for something that
exists: Prometheus (Debian's package) scrapes a running platform (started as `make up`
does) with the generated rules, a shopper buys something, and each panel query must return
at least one series. A renamed metric or label, or a recording rule the dashboards expect
but `rules` no longer makes, fails here."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from emporium.observability import dashboards
from tests.e2e.platform import GATEWAY
from tests.observability.tools import ROOT as OBSERVABILITY
from tests.observability.tools import (
    demo_products,
    fast_prometheus_config,
    instant,
    observed_platform,
    place_order,
    signed_up,
)

ADMIN_EMAIL = "admin@emporium.local"
ADMIN_PASSWORD = "dashboards-admin-pw-1"
# Scrapes and rule evaluations every second, so rates over a few seconds have samples.
FAST = "1s"
WINDOW = "20s"
RULES = OBSERVABILITY / "prometheus" / "rules"


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("dashboards")
    env = {"EMPORIUM_ADMIN_PASSWORD": ADMIN_PASSWORD, "EMPORIUM_GATEWAY_RATE_LIMIT": "1000"}
    config = fast_prometheus_config(FAST, [str(RULES / "*.yml")])
    with observed_platform(tmp, env, config) as (_, url):
        shop()
        time.sleep(8)  # several scrapes and rule evaluations after the traffic
        yield url


def shop() -> None:
    """Some of everything: browse, search, sign up, order with a card that pays."""
    client = httpx.Client(base_url=GATEWAY, timeout=20.0)
    products = demo_products(client)
    client.get("/api/v1/search", params={"q": "shirt"})
    auth = signed_up(client, "dash")
    for product in products[:3]:
        client.get(f"/api/v1/products/{product['id']}")
    client.get("/api/v1/recommendations", headers=auth)
    order = place_order(client, auth, products[0]["id"])
    assert order.status_code in (201, 202), order.text
    order_id = order.json()["id"]
    for _ in range(100):
        status = client.get(f"/api/v1/orders/{order_id}", headers=auth).json()["status"]
        if status != "PENDING":
            break
        time.sleep(0.2)
    assert status == "PAID"
    client.get("/api/v1/notifications", headers=auth)
    client.get(f"/api/v1/inventory/{products[0]['sku']}")
    # The administrator's side: an image (cdn) and the reports (analytics).
    admin_tokens = client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    ).json()
    admin = {"Authorization": f"Bearer {admin_tokens['access_token']}"}
    image = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 90)).save(image, format="PNG")
    uploaded = client.post(
        f"/api/v1/products/{products[0]['id']}/images",
        files={"file": ("p.png", image.getvalue(), "image/png")},
        headers=admin,
    )
    assert uploaded.status_code in (200, 201), uploaded.text
    for report in ("sales", "top-products", "low-stock"):
        assert client.get(f"/api/v1/analytics/{report}", headers=admin).status_code == 200


@pytest.mark.parametrize("name", sorted(dashboards.dashboards()))
def test_every_panel_query_returns_series(prometheus_url: str, name: str) -> None:
    document = dashboards.dashboards()[name]
    empty = []
    for title, expr in dashboards.queries(document):
        if not instant(prometheus_url, expr.replace(dashboards.RATE, WINDOW)):
            empty.append(f"{title}: {expr}")
    assert not empty, "\n".join(empty)
