"""How a notification leaves the building: the `EmailSender` port and its embedded adapter.

The sender loop only knows `EmailSender.send`; which one runs is `app.py`'s choice. The
embedded profile has no mail server, so `DirectoryEmailSender` writes each message as an
RFC 5322 `.eml` file (what a mail client opens, what an SMTP relay would have carried) into
`<data_dir>/outbox-mail/`, named by notification id: sending one notification twice (a crash
after the write, before the status is saved) rewrites the same file instead of adding a
second message. A production sender (SMTP, a provider's API) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import os
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Final, Protocol

from emporium.services.notification.domain import Notification

DEFAULT_FROM: Final = "Emporium <no-reply@emporium.local>"
OUTBOX_DIR: Final = "outbox-mail"


class EmailSender(Protocol):
    """Delivers one e-mail or raises (the loop retries per `DeliveryPolicy`)."""

    async def send(self, notification: Notification) -> None: ...


def build_message(notification: Notification, sender: str = DEFAULT_FROM) -> EmailMessage:
    """The e-mail of `notification`: plain text with an HTML alternative."""
    if notification.email is None:
        raise ValueError(f"notification {notification.id} has no address yet")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notification.email
    message["Subject"] = notification.subject
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = make_msgid(idstring=notification.id, domain="emporium.local")
    message["X-Emporium-Notification-Id"] = notification.id
    message["X-Emporium-Kind"] = notification.kind.value
    message.set_content(notification.body_text)
    message.add_alternative(notification.body_html, subtype="html")
    return message


class DirectoryEmailSender:
    """Writes `<directory>/<notification id>.eml` (atomically: temp file, then rename)."""

    def __init__(self, directory: Path, sender: str = DEFAULT_FROM) -> None:
        self.directory = directory
        self.sender = sender

    async def send(self, notification: Notification) -> None:
        data = build_message(notification, self.sender).as_bytes()
        await asyncio.to_thread(self._write, notification.id, data)

    def path_of(self, notification_id: str) -> Path:
        return self.directory / f"{notification_id}.eml"

    def _write(self, notification_id: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_of(notification_id)
        temporary = final.with_suffix(".eml.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, final)
