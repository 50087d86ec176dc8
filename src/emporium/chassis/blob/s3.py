"""Objects in S3 (or any S3-compatible endpoint) through aioboto3: the production blob store.

URL: `s3://<bucket>?endpoint_url=http://127.0.0.1:55000&region=us-east-1&create_bucket=true`;
`endpoint_url` is only needed for non-AWS endpoints (MinIO, moto, Ceph...). Credentials come
from the standard AWS provider chain (environment, shared config, instance/pod role): this
module never supplies any. The client is opened on first use, not at construction, and
closed by `close()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aioboto3
from botocore.exceptions import ClientError

from emporium.chassis.blob.base import (
    BlobInfo,
    BlobNotFound,
    BlobStore,
    check_key,
    check_metadata,
)

_MISSING = {"404", "NoSuchKey", "NotFound"}
_HEADS_IN_FLIGHT = 16


@dataclass(frozen=True)
class S3Location:
    """Where the bucket is, as parsed from an `s3://` URL."""

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    create_bucket: bool = False

    @classmethod
    def from_url(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://<bucket> URL: {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return cls(
            bucket=parts.netloc,
            endpoint_url=query.get("endpoint_url") or None,
            region=query.get("region") or query.get("region_name") or None,
            create_bucket=query.get("create_bucket", "").lower() in ("1", "true", "yes"),
        )


class S3BlobStore(BlobStore):
    """A blob store on one S3 bucket."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._stack: AsyncExitStack | None = None
        self._client: Any = None
        self._opening = asyncio.Lock()

    async def _s3(self) -> Any:
        """The client, opened (and the bucket created, if asked) on first use."""
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                stack = AsyncExitStack()
                session = aioboto3.Session()
                client = await stack.enter_async_context(
                    session.client(
                        "s3",
                        endpoint_url=self.location.endpoint_url,
                        region_name=self.location.region,
                    )
                )
                try:
                    if self.location.create_bucket:
                        await self._ensure_bucket(client)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack, self._client = stack, client
        return self._client

    async def _ensure_bucket(self, client: Any) -> None:
        try:
            await client.head_bucket(Bucket=self.location.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in _MISSING | {"NoSuchBucket"}:
                raise
        kwargs: dict[str, Any] = {"Bucket": self.location.bucket}
        if self.location.region and self.location.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.location.region}
        try:
            await client.create_bucket(**kwargs)
        except ClientError as exc:  # another process won the race: fine
            if _error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def ping(self) -> None:
        client = await self._s3()
        await client.head_bucket(Bucket=self.location.bucket)

    async def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        metadata: Mapping[str, str] | None = None,
    ) -> BlobInfo:
        client = await self._s3()
        await client.put_object(
            Bucket=self.location.bucket,
            Key=check_key(key),
            Body=data,
            ContentType=content_type,
            Metadata=check_metadata(metadata),
        )
        info = await self.head(key)
        if info is None:  # only if someone deleted it in between
            raise BlobNotFound(key)
        return info

    async def get(self, key: str) -> tuple[bytes, BlobInfo]:
        client = await self._s3()
        try:
            response = await client.get_object(Bucket=self.location.bucket, Key=check_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise BlobNotFound(key) from None
            raise
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data, _info(key, response)

    async def head(self, key: str) -> BlobInfo | None:
        client = await self._s3()
        try:
            response = await client.head_object(Bucket=self.location.bucket, Key=check_key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return None
            raise
        return _info(key, response)

    async def delete(self, key: str) -> None:
        client = await self._s3()
        await client.delete_object(Bucket=self.location.bucket, Key=check_key(key))

    async def list(self, prefix: str = "") -> list[BlobInfo]:
        """Listing does not return content types or metadata, so each object is also HEADed
        (a few at a time); fine for the cdn's listings, which are per product."""
        client = await self._s3()
        keys: list[str] = []
        paginator = client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.location.bucket, Prefix=prefix):
            keys.extend(str(item["Key"]) for item in page.get("Contents", []))
        limit = asyncio.Semaphore(_HEADS_IN_FLIGHT)

        async def head_one(key: str) -> BlobInfo | None:
            async with limit:
                return await self.head(key)

        infos = await asyncio.gather(*(head_one(k) for k in keys))
        return sorted((i for i in infos if i is not None), key=lambda i: i.key)

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _info(key: str, response: Mapping[str, Any]) -> BlobInfo:
    return BlobInfo(
        key=key,
        size=int(response["ContentLength"]),
        etag=str(response["ETag"]).strip('"'),
        content_type=str(response.get("ContentType") or "application/octet-stream"),
        last_modified=response["LastModified"],
        metadata={str(k): str(v) for k, v in (response.get("Metadata") or {}).items()},
    )
