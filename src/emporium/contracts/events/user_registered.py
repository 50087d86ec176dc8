"""`user.registered`: produced by user-service when an account is created.

Consumed by notification (welcome message) and recommendation (cold-start profile).
Key: user id.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from emporium.contracts.events.base import EventModel

TOPIC = "user.registered"


class UserRegisteredV1(EventModel):
    """A new account exists; no secrets travel in the event."""

    TOPIC = TOPIC
    VERSION = 1
    KEY_FIELD = "user_id"

    user_id: str = Field(min_length=1, description="The new user's id.")
    email: str = Field(description="Where notifications go.")
    name: str = Field(default="", description="Display name, may be empty.")
    registered_at: datetime = Field(description="When the account was created (UTC).")
