"""What every event payload model shares.

A payload model is a frozen pydantic model that names its topic, its CloudEvents type
(`com.emporium.<topic>.v<N>`) and the field holding the aggregate id (the Kafka key), so the
outbox can publish a model without a lookup table and a consumer can decode by type.

Compatibility rules (checked against committed schema snapshots by
tests/unit/test_event_contracts.py): a version may gain optional fields; it never drops or
renames a field, changes a field's type or makes an optional field required. Anything else is
a new version (`...V2`, type `...v2`) published next to the old one until every consumer moved.
Unknown fields are ignored on decode, so an older consumer reads a newer producer's payload.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

TYPE_PREFIX = "com.emporium"


def event_type(topic: str, version: int) -> str:
    """The CloudEvents `type` of version `version` of the events on `topic`."""
    return f"{TYPE_PREFIX}.{topic}.v{version}"


class EventModel(BaseModel):
    """Base of every payload; subclasses set TOPIC, VERSION and KEY_FIELD."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    TOPIC: ClassVar[str]
    VERSION: ClassVar[int]
    KEY_FIELD: ClassVar[str]

    @classmethod
    def event_type(cls) -> str:
        return event_type(cls.TOPIC, cls.VERSION)

    def subject(self) -> str:
        """The aggregate id: CloudEvents subject and Kafka message key."""
        return str(getattr(self, self.KEY_FIELD))

    def to_data(self) -> dict[str, Any]:
        """The JSON payload (decimals as strings, datetimes as RFC 3339)."""
        return self.model_dump(mode="json")
