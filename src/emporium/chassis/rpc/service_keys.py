"""Each service's own Ed25519 key pair: where the private key comes from, and where every
process finds the public keys of the others (to check their proofs, `service_auth`).

Production (`EMPORIUM_SERVICE_PUBLIC_KEYS_DIR` is set):
- this process's private key is `EMPORIUM_<NAME>_SERVICE_KEY_FILE` (a PKCS#8 PEM file that a
  Kubernetes Secret mounts into that service's pods only) or the PEM itself in
  `EMPORIUM_<NAME>_SERVICE_KEY`; it is required, nothing is generated;
- every identity's public key is `<dir>/<name>.pub` (a ConfigMap: public keys are no
  secret). A file may hold several PEM keys: during a rotation, the new one and the old one.

Embedded (the variable is not set): `<data_dir>/service-keys/` holds `<name>.key` (mode 0600)
and `<name>.pub` for every identity; a process creates its own pair on first start, and
`emporium up` creates all of them before starting anything. Every process of the embedded
profile runs as one user on one machine, so there the keys separate identities but not
trust domains; in Kubernetes each pod holds only its own private key.

Names are the catalog's service names plus `operator` (the `emporium` CLI's operator
commands); `<NAME>` is the name upper-cased (`EMPORIUM_API_GATEWAY_SERVICE_KEY_FILE`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from emporium.chassis.catalog import SERVICES
from emporium.chassis.config import ConfigError

OPERATOR: Final = "operator"
IDENTITIES: Final = frozenset({*(s.name for s in SERVICES), OPERATOR})
PUBLIC_KEYS_DIR_VAR: Final = "EMPORIUM_SERVICE_PUBLIC_KEYS_DIR"
LOCAL_DIR: Final = "service-keys"
RELOAD_INTERVAL_SECONDS: Final = 2.0
_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,39}")
_PEM_BLOCK: Final = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)


def key_file_var(name: str) -> str:
    return f"EMPORIUM_{name.replace('-', '_').upper()}_SERVICE_KEY_FILE"


def key_var(name: str) -> str:
    return f"EMPORIUM_{name.replace('-', '_').upper()}_SERVICE_KEY"


def checked_name(name: str) -> str:
    """`name` if it can name an identity (and a file: no path can hide in it)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid identity name {name!r}")
    return name


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def parse_private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"{source}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: must be an Ed25519 key (openssl genpkey -algorithm ed25519)")
    return key


def parse_public_keys(pem: bytes) -> tuple[Ed25519PublicKey, ...]:
    """Every Ed25519 key of a `.pub` file (other blocks and types are skipped)."""
    keys = []
    for block in _PEM_BLOCK.findall(pem):
        with contextlib.suppress(ValueError, UnsupportedAlgorithm):
            key = serialization.load_pem_public_key(block)
            if isinstance(key, Ed25519PublicKey):
                keys.append(key)
    return tuple(keys)


def public_keys_dir(data_dir: Path, environ: Mapping[str, str]) -> Path:
    configured = environ.get(PUBLIC_KEYS_DIR_VAR, "").strip()
    return Path(configured) if configured else Path(data_dir) / LOCAL_DIR


def load_private_key(name: str, data_dir: Path, environ: Mapping[str, str]) -> Ed25519PrivateKey:
    """This identity's key under the rules of the module docstring; ConfigError (one line
    naming the variable) when it is missing or unusable."""
    checked_name(name)
    file_var, pem_var = key_file_var(name), key_var(name)
    if environ.get(file_var, "").strip():
        path = Path(environ[file_var].strip())
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
        return parse_private_key(pem, file_var)
    if environ.get(pem_var, "").strip():
        return parse_private_key(environ[pem_var].strip().encode(), pem_var)
    if environ.get(PUBLIC_KEYS_DIR_VAR, "").strip():
        raise ConfigError(
            f"{file_var}: not set; with {PUBLIC_KEYS_DIR_VAR} set (production) every identity's"
            " private key must be configured, none is generated"
        )
    try:
        return ensure_local_key(Path(data_dir) / LOCAL_DIR, name)
    except OSError as exc:
        where = Path(data_dir) / LOCAL_DIR
        raise ConfigError(f"{file_var}: not set, and {where} is unusable: {exc}") from None


def ensure_local_key(directory: Path, name: str) -> Ed25519PrivateKey:
    """The embedded profile's key of `name`, created on first use: `<name>.key` (0600, linked
    into place atomically, so processes starting together agree on one) and `<name>.pub`."""
    checked_name(name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{name}.key"
    if not path.exists():
        _write_atomically(path, private_pem(Ed25519PrivateKey.generate()), 0o600, replace=False)
    key = parse_private_key(path.read_bytes(), str(path))
    pub = directory / f"{name}.pub"
    wanted = public_pem(key.public_key())
    if not pub.exists() or wanted not in pub.read_bytes():
        _write_atomically(pub, wanted, 0o644, replace=True)
    return key


def ensure_local_keys(data_dir: Path, names: Iterable[str], environ: Mapping[str, str]) -> None:
    """Create the embedded profile's keys of `names` (nothing in production)."""
    if environ.get(PUBLIC_KEYS_DIR_VAR, "").strip():
        return
    for name in names:
        if not environ.get(key_file_var(name)) and not environ.get(key_var(name)):
            ensure_local_key(Path(data_dir) / LOCAL_DIR, name)


def _write_atomically(path: Path, content: bytes, mode: int, *, replace: bool) -> None:
    """Write beside `path`, then link (first writer wins) or rename (last one wins) it into
    place: no reader ever sees a half-written key."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.chmod(temp, mode)
        if replace:
            os.replace(temp, path)
            return
        with contextlib.suppress(FileExistsError):  # another process won: use theirs
            os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


class PublicKeyring:
    """The public keys of the other identities, read from `<directory>/<name>.pub` on first
    need and re-read (at most every `reload_interval` seconds per name) when a proof names
    an identity whose keys are missing or do not match: so a service started later, or a
    rotated key, is picked up without a restart, and a stream of bad proofs cannot turn
    into a stream of file reads."""

    def __init__(
        self,
        directory: Path | None,
        *,
        reload_interval: float = RELOAD_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.reload_interval = reload_interval
        self._clock = clock
        self._keys: dict[str, tuple[Ed25519PublicKey, ...]] = {}
        self._read_at: dict[str, float] = {}

    def add(self, name: str, *keys: Ed25519PublicKey) -> None:
        """Known keys of `name` without a file (a process's own key; tests)."""
        self._keys[name] = (*self._keys.get(name, ()), *keys)
        self._read_at.setdefault(name, self._clock())

    def keys(self, name: str) -> tuple[Ed25519PublicKey, ...]:
        if name not in self._keys:
            self.reload(name)
        return self._keys.get(name, ())

    def reload(self, name: str) -> bool:
        """Re-read `name`'s file unless it was read recently; True when the keys changed."""
        if self.directory is None or not _NAME.fullmatch(name):
            return False
        last = self._read_at.get(name)
        if last is not None and self._clock() - last < self.reload_interval:
            return False
        self._read_at[name] = self._clock()
        try:
            found = parse_public_keys((self.directory / f"{name}.pub").read_bytes())
        except OSError:
            return False
        known = {public_pem(k) for k in self._keys.get(name, ())}
        fresh = [k for k in found if public_pem(k) not in known]
        if found:
            self._keys[name] = found
        return bool(fresh)
