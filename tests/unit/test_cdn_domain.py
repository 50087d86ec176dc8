"""cdn-service image rules: content sniffing, limits, renditions and conditional requests."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from emporium.chassis.errors import DomainError, ErrorCode
from emporium.services.cdn import domain


def make_image(fmt: str, size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")],
)
def test_accepts_the_three_formats_by_content(fmt: str, content_type: str) -> None:
    data = make_image(fmt)

    info = domain.inspect_upload(data)

    assert info.content_type == content_type
    assert (info.width, info.height) == (300, 200)
    assert info.size == len(data)
    assert info.etag == f'"{info.digest}"'


def test_same_bytes_same_key_different_bytes_different_key() -> None:
    a, b = make_image("PNG"), make_image("PNG", (301, 200))
    assert domain.object_key(domain.inspect_upload(a)) == domain.object_key(
        domain.inspect_upload(a)
    )
    assert domain.object_key(domain.inspect_upload(a)) != domain.object_key(
        domain.inspect_upload(b)
    )


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a" + b"\x00" * 64, b"%PDF-1.7 not an image", make_image("PNG")[:60]],
    ids=["empty", "gif-header", "pdf", "truncated-png"],
)
def test_rejects_non_images_as_415(data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        domain.inspect_upload(data)
    assert caught.value.code is ErrorCode.UNSUPPORTED_MEDIA_TYPE
    assert caught.value.http_status == 415
    assert caught.value.fields[0].field == "file"


def test_gif_is_refused_even_though_pillow_reads_it() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, format="GIF")
    with pytest.raises(DomainError) as caught:
        domain.inspect_upload(out.getvalue())
    assert caught.value.http_status == 415


def test_rejects_more_than_10_mib_as_413() -> None:
    with pytest.raises(DomainError) as caught:
        domain.inspect_upload(b"\xff" * (domain.MAX_UPLOAD_BYTES + 1))
    assert caught.value.http_status == 413


@pytest.mark.parametrize(
    ("requested", "original", "expected"),
    [(None, 800, None), ("100", 800, 128), ("128", 800, 128), ("600", 800, None), ("1", 800, 64)],
)
def test_rendition_width_snaps_up_and_never_upscales(
    requested: str | None, original: int, expected: int | None
) -> None:
    assert domain.rendition_width(requested, original) == expected


@pytest.mark.parametrize("requested", ["0", "-5", "abc", "99999"])
def test_bad_width_is_a_400_naming_w(requested: str) -> None:
    with pytest.raises(DomainError) as caught:
        domain.rendition_width(requested, 800)
    assert caught.value.http_status == 400
    assert caught.value.fields[0].field == "w"


def test_render_scales_down_keeping_format_and_ratio() -> None:
    data = make_image("WEBP", (800, 400))
    info = domain.inspect_upload(data)

    small = domain.render(data, info, 128)

    with Image.open(io.BytesIO(small)) as image:
        assert image.format == "WEBP"
        assert image.size == (128, 64)
    assert domain.rendition_etag(info, 128) != domain.rendition_etag(info, None)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ('"abc"', True),
        ('W/"abc"', True),
        ('"x", "abc"', True),
        ("*", True),
        ('"x"', False),
    ],
)
def test_if_none_match(header: str | None, expected: bool) -> None:
    assert domain.not_modified(header, '"abc"') is expected


def test_image_names_urls_and_stored_metadata_round_trip() -> None:
    info = domain.inspect_upload(make_image("WEBP"))
    url = domain.image_url("http://127.0.0.1:9061/", info)
    assert url == f"http://127.0.0.1:9061/images/{info.digest}.webp"
    name = url.rsplit("/", 1)[-1]
    assert domain.parse_image_name(name) == (info.digest, "webp")
    stored = domain.stored_image(info.digest, "webp", info.size, domain.image_metadata(info))
    assert stored == info
    assert domain.stored_image(info.digest, "webp", info.size, {}) is None


@pytest.mark.parametrize(
    "name",
    ["", "abc.png", f"{'0' * 64}.gif", f"{'0' * 64}", f"{'G' * 64}.png", f"{'0' * 63}.png"],
)
def test_names_that_cannot_be_ours_are_rejected(name: str) -> None:
    assert domain.parse_image_name(name) is None


def test_product_ids_must_be_safe_in_keys() -> None:
    assert domain.check_product_id("0b9c-41_a.b") == "0b9c-41_a.b"
    for bad in ("", "a/b", "..", "é", "x" * 129):
        with pytest.raises(DomainError) as caught:
            domain.check_product_id(bad)
        assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    info = domain.inspect_upload(make_image("PNG"))
    assert domain.product_link_key("p1", info) == f"products/p1/{info.digest}.png"
    assert domain.product_link_key("p1") == "products/p1/"
