"""Contract suite of the objects port: every assertion runs on the directory store and on a
real S3 server (moto's, started by `.ci/backends.sh`)."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from emporium.chassis.blob import BlobNotFound, BlobStore, open_blob
from emporium.chassis.errors import ErrorCode
from tests.backends import backend_url


def _unique_bucket_url(url: str) -> str:
    """The test server's URL with a fresh bucket (servers are shared between runs)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["create_bucket"] = "true"
    bucket = f"emporium-test-{uuid.uuid4().hex[:16]}"
    return urlunsplit((parts.scheme, bucket, parts.path, urlencode(query), ""))


@pytest.fixture(params=["directory", "s3"], ids=["directory", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BlobStore]:
    if request.param == "directory":
        blobs = open_blob(f"file://{tmp_path}/blobs")
    else:
        url = backend_url("s3")
        # moto accepts any credentials; real ones come from the AWS chain in production.
        for var, dummy in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
            if not os.environ.get(var):
                monkeypatch.setenv(var, dummy)
        blobs = open_blob(_unique_bucket_url(url))
    await blobs.ping()
    yield blobs
    await blobs.close()


async def test_put_then_get_returns_bytes_type_and_metadata(store: BlobStore) -> None:
    data = b"\x89PNG fake image bytes"
    info = await store.put(
        "products/p1/main.png", data, "image/png", {"Width": "640", "origin": "upload"}
    )
    assert info.key == "products/p1/main.png"
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.content_type == "image/png"
    assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=5)

    got, got_info = await store.get("products/p1/main.png")
    assert got == data
    assert got_info.content_type == "image/png"
    assert got_info.etag == info.etag
    assert got_info.size == len(data)
    assert got_info.metadata == {"width": "640", "origin": "upload"}


async def test_same_content_same_etag_and_overwrite_replaces(store: BlobStore) -> None:
    a = await store.put("a.jpg", b"same", "image/jpeg")
    b = await store.put("b.jpg", b"same", "image/jpeg")
    assert a.etag == b.etag
    c = await store.put("a.jpg", b"different content", "image/webp")
    assert c.etag != a.etag
    data, info = await store.get("a.jpg")
    assert data == b"different content"
    assert info.content_type == "image/webp"


async def test_head_and_delete(store: BlobStore) -> None:
    assert await store.head("x/y.bin") is None
    await store.put("x/y.bin", b"12345")
    head = await store.head("x/y.bin")
    assert head is not None
    assert head.size == 5
    assert head.content_type == "application/octet-stream"
    await store.delete("x/y.bin")
    assert await store.head("x/y.bin") is None
    await store.delete("x/y.bin")  # deleting a missing key is fine


async def test_missing_key_raises_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound) as caught:
        await store.get("nope/none.png")
    assert caught.value.code is ErrorCode.NOT_FOUND


async def test_list_by_prefix_sorted_with_info(store: BlobStore) -> None:
    await store.put("p/2/thumb.png", b"t2", "image/png")
    await store.put("p/1/main.png", b"m1", "image/png", {"w": "1"})
    await store.put("p/1/thumb.png", b"t1", "image/png")
    await store.put("p/10/main.png", b"m10", "image/png")
    await store.put("q/1.png", b"q", "image/png")
    # an object and a "folder" of the same name coexist, as on S3
    await store.put("p/1", b"object named like a folder", "text/plain")

    keys = [i.key for i in await store.list("p/1/")]
    assert keys == ["p/1/main.png", "p/1/thumb.png"]
    listed = await store.list("p/1")
    assert [i.key for i in listed] == [
        "p/1",
        "p/1/main.png",
        "p/1/thumb.png",
        "p/10/main.png",
    ]
    main = next(i for i in listed if i.key == "p/1/main.png")
    assert (main.size, main.content_type, main.metadata) == (2, "image/png", {"w": "1"})
    assert len(await store.list()) == 6
    assert await store.list("zzz") == []


@pytest.mark.parametrize(
    "bad_key",
    ["", "/abs.png", "../escape.png", "a/../../b", "a//b", "a/./b", "dir/", "tilde~obj", "a\\b"],
)
async def test_bad_keys_are_rejected(store: BlobStore, bad_key: str) -> None:
    for call in (
        store.put(bad_key, b"x"),
        store.get(bad_key),
        store.head(bad_key),
        store.delete(bad_key),
    ):
        with pytest.raises(Exception) as caught:
            await call
        assert getattr(caught.value, "code", None) is ErrorCode.INVALID_ARGUMENT


async def test_bad_metadata_is_rejected(store: BlobStore) -> None:
    with pytest.raises(Exception) as caught:
        await store.put("m.png", b"x", "image/png", {"bad name": "v"})
    assert getattr(caught.value, "code", None) is ErrorCode.INVALID_ARGUMENT
    assert await store.head("m.png") is None
