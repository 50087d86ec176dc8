"""cdn-service with real adapters: uploads over a real gRPC server (identity, error mapping,
the raised message limit), image bytes through the HTTP app cdn mounts next to /metrics
(httpx over ASGI), and the `product.updated` consumer on a real embedded bus. The blob store
is a directory, and for the upload/serve round trip also a real S3 server (moto)."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import grpc
import httpx
import pytest
from PIL import Image

from emporium.chassis.blob.base import BlobStore
from emporium.chassis.blob.factory import open_blob
from emporium.chassis.bus.factory import open_bus
from emporium.chassis.config import ServiceSettings
from emporium.chassis.errors import ErrorCode
from emporium.chassis.events.envelope import to_message
from emporium.chassis.events.outbox import build_event
from emporium.chassis.rpc.client import create_channel, domain_error_from_rpc
from emporium.chassis.rpc.identity import Caller
from emporium.chassis.rpc.server import create_server
from emporium.chassis.runtime import ServiceApp, http_app
from emporium.contracts.events import ProductUpdatedV1
from emporium.contracts.rpc.cdn.v1 import cdn_pb2, cdn_pb2_grpc
from emporium.services.cdn.app import GRPC_OPTIONS, public_url
from emporium.services.cdn.consumers import product_updated_consumer
from emporium.services.cdn.domain import CACHE_CONTROL, MAX_UPLOAD_BYTES
from emporium.services.cdn.http_routes import image_routes
from emporium.services.cdn.rpc import CdnServicer
from emporium.services.cdn.store import ImageStore
from tests.backends import backend_url

PUBLIC = "http://cdn.test"
ADMIN = Caller("admin-1", frozenset({"admin"}))
SHOPPER = Caller("user-1", frozenset({"user"}))


def make_image(fmt: str, size: tuple[int, int] = (600, 400)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(out, format=fmt)
    return out.getvalue()


@dataclass
class Cdn:
    blobs: BlobStore
    images: ImageStore
    target: str
    http: httpx.AsyncClient
    channels: list[Any]

    def stub(self, caller: Caller) -> cdn_pb2_grpc.CdnServiceStub:
        channel = create_channel(self.target, service="test", caller=caller, options=GRPC_OPTIONS)
        self.channels.append(channel)
        return cdn_pb2_grpc.CdnServiceStub(channel)

    async def upload(
        self, data: bytes, product_id: str = "prod-1", caller: Caller = ADMIN
    ) -> cdn_pb2.ImageMeta:
        meta: cdn_pb2.ImageMeta = await self.stub(caller).UploadImage(
            cdn_pb2.UploadImageRequest(
                content=data, content_type="image/png", filename="x.png", product_id=product_id
            )
        )
        return meta

    async def get(self, url: str, **headers: str) -> httpx.Response:
        return await self.http.get(url.removeprefix(PUBLIC), headers=headers)


def s3_url(monkeypatch: pytest.MonkeyPatch) -> str:
    parts = urlsplit(backend_url("s3"))
    # moto accepts any credentials; real ones come from the AWS chain in production.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if not os.environ.get(var):
            monkeypatch.setenv(var, "test")
    query = dict(parse_qsl(parts.query)) | {"create_bucket": "true"}
    bucket = f"emporium-cdn-{uuid.uuid4().hex[:16]}"
    return urlunsplit((parts.scheme, bucket, parts.path, urlencode(query), ""))


async def start_cdn(blob_url: str) -> AsyncIterator[Cdn]:
    blobs = open_blob(blob_url)
    await blobs.ping()
    images = ImageStore(blobs)
    server = create_server("cdn", options=GRPC_OPTIONS)
    cdn_pb2_grpc.add_CdnServiceServicer_to_server(CdnServicer(images, PUBLIC), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    app = ServiceApp(
        name="cdn", settings=ServiceSettings(name="cdn"), http_app=image_routes(images)
    )
    transport = httpx.ASGITransport(app=http_app(app))
    http = httpx.AsyncClient(transport=transport, base_url=PUBLIC)
    cdn = Cdn(blobs, images, f"127.0.0.1:{port}", http, [])
    try:
        yield cdn
    finally:
        for channel in cdn.channels:
            await channel.close()
        await http.aclose()
        await server.stop(None)
        await blobs.close()


@pytest.fixture
async def cdn(tmp_path: Path) -> AsyncIterator[Cdn]:
    async for running in start_cdn(f"file://{tmp_path}/blobs"):
        yield running


@pytest.fixture(params=["directory", "s3"], ids=["directory", "s3"])
async def any_cdn(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cdn]:
    url = f"file://{tmp_path}/blobs" if request.param == "directory" else s3_url(monkeypatch)
    async for running in start_cdn(url):
        yield running


async def test_upload_then_serve_with_etag_304_and_renditions(any_cdn: Cdn) -> None:
    data = make_image("PNG")
    meta = await any_cdn.upload(data)
    assert meta.url == f"{PUBLIC}/images/{meta.image_id}.png"
    assert (meta.content_type, meta.width, meta.height) == ("image/png", 600, 400)
    assert (meta.size_bytes, meta.product_id) == (len(data), "prod-1")
    again = await any_cdn.upload(data)  # content-addressed: same bytes, same image
    assert (again.image_id, again.url) == (meta.image_id, meta.url)

    original = await any_cdn.get(meta.url)
    assert original.status_code == 200
    assert original.content == data
    assert original.headers["content-type"] == "image/png"
    assert original.headers["etag"] == f'"{meta.image_id}"' == meta.etag
    assert original.headers["cache-control"] == CACHE_CONTROL
    unchanged = await any_cdn.get(meta.url, **{"If-None-Match": meta.etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == meta.etag

    small = await any_cdn.get(meta.url + "?w=100")  # snapped up to 128
    assert small.status_code == 200
    assert small.headers["etag"] == f'"{meta.image_id}-w128"'
    with Image.open(io.BytesIO(small.content)) as rendition:
        assert (rendition.format, rendition.size) == ("PNG", (128, 85))
    cached = await any_cdn.blobs.head(f"renditions/{meta.image_id}/w128.png")
    assert cached is not None  # rendered once, then served from the blob store
    assert (await any_cdn.get(meta.url + "?w=100")).content == small.content
    revalidated = await any_cdn.get(meta.url + "?w=128", **{"If-None-Match": small.headers["etag"]})
    assert revalidated.status_code == 304


@pytest.mark.parametrize(
    ("fmt", "content_type", "extension"),
    [("PNG", "image/png", "png"), ("JPEG", "image/jpeg", "jpg"), ("WEBP", "image/webp", "webp")],
)
async def test_png_jpeg_and_webp_are_accepted_by_content(
    cdn: Cdn, fmt: str, content_type: str, extension: str
) -> None:
    meta = await cdn.upload(make_image(fmt))  # declared "image/png" whatever it is
    assert meta.content_type == content_type
    assert meta.url.endswith(f".{extension}")
    served = await cdn.get(meta.url)
    assert served.headers["content-type"] == content_type


async def test_only_admins_upload(cdn: Cdn) -> None:
    for caller, code in (
        (SHOPPER, grpc.StatusCode.PERMISSION_DENIED),
        (Caller.anonymous(), grpc.StatusCode.UNAUTHENTICATED),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await cdn.upload(make_image("PNG"), caller=caller)
        assert caught.value.code() == code
    assert await cdn.blobs.list("images/") == []


async def test_text_is_415_and_over_10_mib_is_413(cdn: Cdn) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as text:
        await cdn.upload(b"definitely not an image\n" * 10)
    error = domain_error_from_rpc(text.value)
    assert (error.code, error.reason) == (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not_an_image")
    with pytest.raises(grpc.aio.AioRpcError) as huge:
        await cdn.upload(b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES)
    error = domain_error_from_rpc(huge.value)
    assert (error.code, error.reason) == (ErrorCode.PAYLOAD_TOO_LARGE, "too_large")
    assert await cdn.blobs.list("") == []


async def test_uploads_above_grpcs_default_4_mib_limit_are_accepted(cdn: Cdn) -> None:
    noise = Image.frombytes("RGB", (1400, 1200), os.urandom(1400 * 1200 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=0)
    data = out.getvalue()
    assert 4 * 1024 * 1024 < len(data) <= MAX_UPLOAD_BYTES
    meta = await cdn.upload(data)
    assert meta.size_bytes == len(data)
    assert (await cdn.get(meta.url)).content == data


async def test_http_errors_are_problem_json(cdn: Cdn) -> None:
    meta = await cdn.upload(make_image("PNG"))
    unknown = await cdn.get(f"{PUBLIC}/images/{'0' * 64}.png")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["status"] == 404
    assert (await cdn.get(f"{PUBLIC}/images/not-a-digest.png")).status_code == 404
    for bad in ("abc", "0", "99999"):
        response = await cdn.get(meta.url + f"?w={bad}")
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == ["w"]
    assert (await cdn.http.get("/healthz")).status_code == 200  # mounted next to /healthz


async def test_get_image_meta(cdn: Cdn) -> None:
    meta = await cdn.upload(make_image("JPEG"))
    found = await cdn.stub(SHOPPER).GetImageMeta(
        cdn_pb2.GetImageMetaRequest(image_id=meta.image_id)
    )
    assert (found.url, found.width, found.etag) == (meta.url, 600, meta.etag)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cdn.stub(SHOPPER).GetImageMeta(cdn_pb2.GetImageMetaRequest(image_id="f" * 64))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_deleted_product_loses_its_links_but_shared_bytes_stay(
    cdn: Cdn, tmp_path: Path
) -> None:
    shared = make_image("PNG")
    meta = await cdn.upload(shared, product_id="prod-a")
    await cdn.upload(shared, product_id="prod-b")
    own = await cdn.upload(make_image("WEBP"), product_id="prod-a")
    assert sorted(await cdn.images.linked("prod-a")) == sorted(
        [f"{meta.image_id}.png", f"{own.image_id}.webp"]
    )
    bus = open_bus(f"embedded://{tmp_path}/bus.sqlite3", client_id="test-cdn")
    await bus.start()
    consumer = product_updated_consumer(bus, "cdn", cdn.images)
    await consumer.start()
    try:
        payload = ProductUpdatedV1(product_id="prod-a", name="A", price=Decimal(1), deleted=True)
        event = build_event(ProductUpdatedV1.TOPIC, payload, "product")
        update = build_event(
            ProductUpdatedV1.TOPIC,
            ProductUpdatedV1(product_id="prod-b", name="B", price=Decimal(2)),
            "product",
        )
        messages = [to_message(ProductUpdatedV1.TOPIC, e) for e in (event, update, event)]
        await bus.publish(messages)  # the deletion is delivered twice
        handled, deadline = 0, time.monotonic() + 15
        while handled < len(messages) and time.monotonic() < deadline:
            handled += await consumer.poll_once()
        assert handled == len(messages)
    finally:
        await consumer.close()
        await bus.close()
    assert await cdn.images.linked("prod-a") == []
    assert await cdn.images.linked("prod-b") == [f"{meta.image_id}.png"]
    assert (await cdn.get(meta.url)).status_code == 200  # bytes shared with prod-b remain
    assert (await cdn.get(own.url)).status_code == 200  # cached pages may still show it


def test_public_url_is_configurable() -> None:
    settings = ServiceSettings(name="cdn", http_port=9061)
    assert public_url(settings, {}) == "http://127.0.0.1:9061"
    configured = {"EMPORIUM_CDN_PUBLIC_URL": "https://img.example.com/"}
    assert public_url(settings, configured) == "https://img.example.com"
