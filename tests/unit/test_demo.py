"""The demo catalog and the administrator password `emporium up` prepares."""

from __future__ import annotations

import io
import os
import stat
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from emporium.demo import demo_products, product_image
from emporium.supervisor import ensure_admin_password


def test_catalog_is_200_products_in_10_categories_with_unique_skus() -> None:
    products = list(demo_products())

    assert len(products) == 200
    assert len({p.sku for p in products}) == 200
    assert sorted(Counter(p.category for p in products).values()) == [20] * 10
    assert all(p.price_minor > 0 and p.on_hand >= 0 for p in products)


def test_catalog_is_deterministic_and_seeded() -> None:
    assert list(demo_products()) == list(demo_products())
    assert list(demo_products(seed=1)) != list(demo_products(seed=2))


def test_product_image_is_a_png_an_upload_accepts() -> None:
    product = next(demo_products())
    with Image.open(io.BytesIO(product_image(product))) as image:
        assert image.format == "PNG"
        assert image.size == (512, 512)


def test_admin_password_from_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMPORIUM_ADMIN_PASSWORD", "given-password-123")
    assert ensure_admin_password(tmp_path) is None
    assert not (tmp_path / "admin-password").exists()


def test_admin_password_is_generated_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMPORIUM_ADMIN_PASSWORD", raising=False)
    first = ensure_admin_password(tmp_path)
    assert first is not None
    assert len(first) >= 16
    monkeypatch.delenv("EMPORIUM_ADMIN_PASSWORD")

    assert ensure_admin_password(tmp_path) is None  # not printed a second time
    assert os.environ["EMPORIUM_ADMIN_PASSWORD"] == first
    mode = stat.S_IMODE((tmp_path / "admin-password").stat().st_mode)
    assert mode == 0o600
