"""Pick the OLAP store a URL names: `chdb://<path>` (embedded) or `clickhouse[s]://...`."""

from __future__ import annotations

from urllib.parse import urlsplit

from emporium.chassis.config import url_path
from emporium.chassis.olap.base import OlapStore


def open_olap(url: str) -> OlapStore:
    """An OLAP store for `url`; nothing is opened or connected until first use."""
    scheme = urlsplit(url).scheme
    if scheme == "chdb":
        from emporium.chassis.olap.chdb_store import ChdbStore

        return ChdbStore(url_path(url))
    if scheme in ("clickhouse", "clickhouses"):
        from emporium.chassis.olap.clickhouse import ClickHouseStore, ClickHouseTarget

        return ClickHouseStore(ClickHouseTarget.from_url(url))
    raise ValueError(
        f"unsupported OLAP URL scheme {scheme!r} in {url!r}; expected chdb or clickhouse[s]"
    )
