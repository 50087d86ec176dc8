"""Wiring of search-service: opens the index and the bus, registers the gRPC servicer, the
`product.updated` consumer and the readiness checks, and closes everything at shutdown.

Only this process writes the index: Tantivy takes a lock file for its single writer, so a
second process pointed at the same directory fails to write instead of corrupting it.
"""

from __future__ import annotations

from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.events.wiring import add_consumer, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.chassis.search.factory import open_search
from emporium.contracts.rpc.search.v1 import search_pb2_grpc
from emporium.services.search.consumers import product_updated_consumer
from emporium.services.search.rpc import SERVICE_NAME, SearchServicer
from emporium.services.search.store import ProductIndex


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything search-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings)
    app.verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(app.verifier.close)
    index = open_search(settings.search_url)
    app.on_stop.append(index.close)
    app.checks["search"] = ping_check(index.ping)
    products = ProductIndex(index)
    bus = await open_service_bus(app)
    add_consumer(app, product_updated_consumer(bus, app.name, products))
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=search_pb2_grpc.add_SearchServiceServicer_to_server,
            servicer=SearchServicer(products),
            service_name=SERVICE_NAME,
        )
    )
    return app
