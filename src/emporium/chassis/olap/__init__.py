"""The OLAP port (analytics): ClickHouse in production, chDB in-process in the embedded
profile; both run the same SQL."""

from emporium.chassis.olap.base import OlapError, OlapStore, Row
from emporium.chassis.olap.factory import open_olap

__all__ = ["OlapError", "OlapStore", "Row", "open_olap"]
