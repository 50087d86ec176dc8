"""Service proofs: what a system caller shows instead of a user token (chassis/rpc/service_auth)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from emporium.chassis.config import ConfigError
from emporium.chassis.errors import DomainError, ErrorCode
from emporium.chassis.rpc.service_auth import (
    PROOF_TTL_SECONDS,
    SECRET_ENV,
    SECRET_FILE,
    ServiceProof,
    load_service_secret,
)

SECRET = b"0123456789abcdef-test-secret"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def refusal(proof: ServiceProof, text: str) -> str:
    with pytest.raises(DomainError) as caught:
        proof.verify(text)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED
    return caught.value.message


def test_a_proof_names_its_service() -> None:
    proof = ServiceProof(SECRET)
    assert proof.verify(proof.issue("order")) == "order"
    assert proof.verify(proof.issue("api-gateway")) == "api-gateway"


def test_a_tampered_or_foreign_proof_is_refused() -> None:
    proof = ServiceProof(SECRET)
    genuine = proof.issue("order")
    version, _, expiry, mac = genuine.split(".")
    assert "invalid" in refusal(proof, f"{version}.payment.{expiry}.{mac}")
    assert "invalid" in refusal(proof, ServiceProof(b"another-secret-0123456").issue("order"))
    assert "malformed" in refusal(proof, "order")
    assert "malformed" in refusal(proof, f"{genuine}.extra")
    assert "malformed" in refusal(proof, f"v0.order.{expiry}.{mac}")


def test_a_proof_expires_and_a_fresh_one_is_issued_before_that() -> None:
    clock = Clock()
    proof = ServiceProof(SECRET, clock=clock)
    first = proof.issue("order")
    clock.now += PROOF_TTL_SECONDS // 2 - 1
    assert proof.issue("order") == first  # reused while more than half its life is left
    clock.now += 2
    second = proof.issue("order")
    assert second != first
    clock.now += PROOF_TTL_SECONDS // 2
    assert "expired" in refusal(proof, first)
    assert proof.verify(second) == "order"


def test_short_secrets_and_dotted_names_are_refused() -> None:
    with pytest.raises(ValueError):
        ServiceProof(b"short")
    with pytest.raises(ValueError):
        ServiceProof(SECRET).issue("a.b")


def test_the_secret_comes_from_the_environment_first(tmp_path: Path) -> None:
    assert load_service_secret(tmp_path, {SECRET_ENV: "x" * 20}) == b"x" * 20
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(ConfigError, match=SECRET_ENV):
        load_service_secret(tmp_path, {SECRET_ENV: "short"})


def test_the_secret_file_is_created_once_private_and_then_reused(tmp_path: Path) -> None:
    first = load_service_secret(tmp_path / "var", {})
    path = tmp_path / "var" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_service_secret(tmp_path / "var", {}) == first
    assert [p.name for p in path.parent.iterdir()] == [SECRET_FILE]  # no temp files left


def test_an_unusable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text("tiny")
    with pytest.raises(ConfigError, match="too short"):
        load_service_secret(tmp_path, {})
