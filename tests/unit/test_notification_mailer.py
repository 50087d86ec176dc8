"""The e-mail `build_message` makes, read back by a standards parser (the default policy)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import pytest

from emporium.services.notification.domain import Kind, Notification
from emporium.services.notification.mailer import build_message

SENT_AT = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


def notification(
    subject: str, text: str, html: str, email: str | None = "zoe@example.com"
) -> Notification:
    return Notification(
        id="ntf_42",
        event_id="evt_1",
        user_id="usr_1",
        email=email,
        channel="email",
        kind=Kind.PAYMENT_RECEIPT,
        subject=subject,
        body_text=text,
        body_html=html,
        created_at=SENT_AT,
    )


def parsed(item: Notification, sender: str = "Emporium <no-reply@emporium.local>") -> EmailMessage:
    return message_from_bytes(build_message(item, sender).as_bytes(), policy=policy.default)


def test_headers_and_both_parts_survive_the_round_trip() -> None:
    mail = parsed(notification("Order o-1 received", "Thanks, Zoë.\n", "<p>Thanks</p>\n"))

    assert mail["From"] == "Emporium <no-reply@emporium.local>"
    assert mail["To"] == "zoe@example.com"
    assert mail["Subject"] == "Order o-1 received"
    assert parsedate_to_datetime(mail["Date"]) == SENT_AT
    assert mail["Message-ID"].endswith(".ntf_42@emporium.local>")
    assert mail["X-Emporium-Notification-Id"] == "ntf_42"
    assert mail["X-Emporium-Kind"] == "payment_receipt"
    assert mail.get_content_type() == "multipart/alternative"
    assert mail.get_body(("plain",)).get_content() == "Thanks, Zoë.\n"
    assert mail.get_body(("html",)).get_content() == "<p>Thanks</p>\n"


def test_non_ascii_subject_and_sender_name_are_encoded_words() -> None:
    item = notification("Reçu de paiement, commande o-1 ✓", "Merci.\n", "<p>Merci</p>\n")
    raw = build_message(item, "Boutique Émile <shop@example.com>").as_bytes()

    assert raw.isascii()  # 7-bit safe on the wire: headers as RFC 2047, bodies as QP
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["Subject"] == "Reçu de paiement, commande o-1 ✓"
    (sender,) = mail["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Boutique Émile", "shop@example.com")


def test_a_long_subject_is_folded_and_reads_back_whole() -> None:
    subject = "Payment receipt for order ord_" + "x" * 120
    mail = parsed(notification(subject, "ok\n", "<p>ok</p>\n"))

    assert mail["Subject"] == subject


def test_a_notification_without_an_address_is_not_built() -> None:
    with pytest.raises(ValueError, match="no address"):
        build_message(notification("s", "t", "h", email=None))
