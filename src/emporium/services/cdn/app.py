"""Wiring of cdn-service: opens the blob store and the bus, registers the gRPC servicer (with
a message limit fit for 10 MiB uploads), the image routes on the HTTP port, the
`product.updated` consumer and the readiness checks, and closes everything at shutdown.

Image URLs are absolute: `EMPORIUM_CDN_PUBLIC_URL` (e.g. an ingress or a real CDN in front
of this service) or, by default, `http://127.0.0.1:<cdn's HTTP port>` for the embedded
profile.
"""

from __future__ import annotations

import os

from emporium.chassis.blob.factory import open_blob
from emporium.chassis.config import ServiceSettings, grpc_target
from emporium.chassis.events.wiring import add_consumer, open_service_bus
from emporium.chassis.rpc.jwks import JwksTokenVerifier
from emporium.chassis.runtime import GrpcRegistration, ServiceApp, ping_check
from emporium.contracts.rpc.cdn.v1 import cdn_pb2_grpc
from emporium.services.cdn.consumers import product_updated_consumer
from emporium.services.cdn.http_routes import image_routes
from emporium.services.cdn.rpc import SERVICE_NAME, CdnServicer
from emporium.services.cdn.store import ImageStore

# 10 MiB of image plus the rest of the request, with room to spare.
GRPC_MAX_MESSAGE_BYTES = 11 * 1024 * 1024
GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
]
PUBLIC_URL_VARIABLE = "EMPORIUM_CDN_PUBLIC_URL"


def public_url(settings: ServiceSettings, environ: dict[str, str] | None = None) -> str:
    """Where clients fetch images from (no trailing slash)."""
    env = os.environ if environ is None else environ
    configured = env.get(PUBLIC_URL_VARIABLE, "").strip()
    return (configured or f"http://127.0.0.1:{settings.http_port}").rstrip("/")


async def build(settings: ServiceSettings) -> ServiceApp:
    """Everything cdn-service runs; nothing is connected before this is called."""
    app = ServiceApp(name=settings.name, settings=settings, grpc_options=list(GRPC_OPTIONS))
    app.verifier = JwksTokenVerifier(grpc_target("auth"), service=settings.name)
    app.on_stop.append(app.verifier.close)
    blobs = open_blob(settings.blob_url)
    app.on_stop.append(blobs.close)
    app.checks["blob"] = ping_check(blobs.ping)
    images = ImageStore(blobs)
    bus = await open_service_bus(app)
    add_consumer(app, product_updated_consumer(bus, app.name, images))
    app.http_app = image_routes(images)
    app.grpc_services.append(
        GrpcRegistration(
            add_to_server=cdn_pb2_grpc.add_CdnServiceServicer_to_server,
            servicer=CdnServicer(images, public_url(settings)),
            service_name=SERVICE_NAME,
        )
    )
    return app
