"""gRPC entrypoint of cdn-service: translates requests and delegates to handlers.

Uploads reach 10 MiB, above gRPC's 4 MiB default message size: the server (see app.py,
`GRPC_MAX_MESSAGE_BYTES`) and its clients raise the limit.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from emporium.contracts.rpc.cdn.v1 import cdn_pb2, cdn_pb2_grpc
from emporium.services.cdn import handlers
from emporium.services.cdn.domain import image_url
from emporium.services.cdn.store import ImageStore, StoredImage

SERVICE_NAME: str = cdn_pb2.DESCRIPTOR.services_by_name["CdnService"].full_name


class CdnServicer(cdn_pb2_grpc.CdnServiceServicer):
    """`CdnService` (cdn.proto); `public_url` is where cdn's HTTP port is reachable."""

    def __init__(self, images: ImageStore, public_url: str) -> None:
        self.images = images
        self.public_url = public_url

    async def UploadImage(
        self, request: cdn_pb2.UploadImageRequest, context: Any
    ) -> cdn_pb2.ImageMeta:
        stored = await handlers.upload_image(self.images, request.product_id, request.content)
        return self._meta(stored, request.product_id)

    async def GetImageMeta(
        self, request: cdn_pb2.GetImageMetaRequest, context: Any
    ) -> cdn_pb2.ImageMeta:
        return self._meta(await handlers.image_meta(self.images, request.image_id))

    def _meta(self, stored: StoredImage, product_id: str = "") -> cdn_pb2.ImageMeta:
        info = stored.info
        created = Timestamp()
        created.FromDatetime(stored.stored_at)
        return cdn_pb2.ImageMeta(
            image_id=info.digest,
            url=image_url(self.public_url, info),
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            size_bytes=info.size,
            etag=info.etag,
            product_id=product_id,
            created_at=created,
        )
