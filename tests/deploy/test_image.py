"""The platform's OCI image (deploy/Containerfile) as Kubernetes will run it.

CI builds it daemonless (`.ci/image.sh build`: Debian's buildah, vfs storage, chroot isolation,
a base image made locally by debootstrap, nothing pulled), then these tests read the built
image itself rather than the Containerfile: its config (user, entrypoint, ports, labels), its
filesystem mounted with `buildah mount` (the virtualenv holds exactly uv.lock's versions, no dev
tools, compiled bytecode), and the `emporium` command run inside it through chroot as uid 10001
on a read-only bind of the root, with only /tmp and the data directory writable, as the chart's
`readOnlyRootFilesystem` and emptyDir volumes leave it. Building needs root and buildah (CI has
both); without them the tests fail with the builder's log, they never skip."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emporium.chassis.catalog import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "image.sh"
SITE = "app/.venv/lib/python3.11/site-packages"
UID = 10001
# Runtime dependencies whose versions must be uv.lock's (native wheels among them).
PINNED = ("grpcio", "protobuf", "sqlalchemy", "pydantic", "fastapi", "chdb", "asyncpg", "aiokafka")
DEV_ONLY = ("pytest", "ruff", "mypy", "import_linter")


def image_sh(*args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if out.returncode != 0:
        raise AssertionError(f".ci/image.sh {' '.join(args)} failed:\n{out.stderr[-4000:]}")
    return out.stdout


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built now or reused from buildah's layer cache (warm: seconds)."""
    image_sh("build", timeout=1500)
    return image_sh("name").strip()


@pytest.fixture(scope="module")
def config(image: str) -> dict[str, Any]:
    info = json.loads(image_sh("buildah", "inspect", "--type", "image", image))
    oci: dict[str, Any] = info["OCIv1"]["config"]
    return oci


@pytest.fixture(scope="module")
def rootfs(image: str) -> Iterator[Path]:
    """The image's filesystem, mounted read-write by buildah (tests only read it)."""
    ctr = image_sh("buildah", "from", "--pull=never", image).strip().splitlines()[-1]
    try:
        yield Path(image_sh("buildah", "mount", ctr).strip())
    finally:
        image_sh("buildah", "rm", ctr)


def locked_versions() -> dict[str, set[str]]:
    """name -> its locked versions (a package may be locked twice, per Python marker)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    found: dict[str, set[str]] = {}
    for p in lock["package"]:
        if "version" in p:
            found.setdefault(p["name"], set()).add(p["version"])
    return found


def dist_infos(rootfs: Path) -> dict[str, str]:
    """Installed distributions: normalised name -> version, from the .dist-info folders."""
    found = {}
    for d in (rootfs / SITE).glob("*.dist-info"):
        name, version = d.name.removesuffix(".dist-info").rsplit("-", 1)
        found[name.lower().replace("_", "-")] = version
    return found


def test_config_runs_as_numeric_non_root_user_with_emporium_entrypoint(
    config: dict[str, Any],
) -> None:
    """Kubernetes' runAsNonRoot can only verify a numeric user; the chart's args pick the
    service, so the entrypoint must be the `emporium` command in exec form."""
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["emporium"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["EMPORIUM_DATA_DIR"] == "/var/lib/emporium"
    assert env["PATH"].startswith("/app/.venv/bin:")
    assert "Healthcheck" not in config, "Kubernetes probes /healthz; no image HEALTHCHECK"


def test_config_exposes_every_service_port(config: dict[str, Any]) -> None:
    """The gateway's 8080, each backend's gRPC port and each service's HTTP port."""
    exposed = set(config["ExposedPorts"])
    wanted = {"8080/tcp"}
    for info in SERVICES:
        if info.grpc_port:
            wanted |= {f"{info.grpc_port}/tcp", f"{info.http_port}/tcp"}
    assert wanted <= exposed, sorted(wanted - exposed)


def test_config_carries_oci_labels(config: dict[str, Any]) -> None:
    labels = config["Labels"]
    for key in ("title", "source", "licenses", "version", "revision", "created"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.revision"] != "unknown"


def test_virtualenv_holds_exactly_the_locked_versions(rootfs: Path) -> None:
    """`uv sync --frozen --no-dev`: every installed distribution is uv.lock's version, and
    the project itself is installed as a wheel (no editable pointer back to /app/src)."""
    installed = dist_infos(rootfs)
    locked = locked_versions()
    for name in PINNED:
        assert installed.get(name) in locked[name], (name, installed.get(name), locked[name])
    wrong = {n: v for n, v in installed.items() if n in locked and v not in locked[n]}
    assert not wrong, wrong
    assert not [n for n in DEV_ONLY if n.replace("_", "-") in installed]
    assert (rootfs / SITE / "emporium" / "cli.py").is_file()
    assert not list((rootfs / SITE).glob("*emporium*.pth")), "installed editable"
    assert not (rootfs / "app" / "src").exists(), "sources left in the runtime stage"


def test_bytecode_was_compiled_at_build(rootfs: Path) -> None:
    """PYTHONDONTWRITEBYTECODE and a read-only root: imports must find .pyc files ready."""
    cache = rootfs / SITE / "emporium" / "chassis" / "__pycache__"
    assert list(cache.glob("config.cpython-311*.pyc"))
    assert list((rootfs / SITE / "emporium" / "__pycache__").glob("cli.cpython-311*.pyc"))


def test_only_the_data_directory_belongs_to_the_service_user(rootfs: Path) -> None:
    """The code is root's and not writable by uid 10001; the data directory is its own."""
    for path in (rootfs / "app" / ".venv", rootfs / SITE / "emporium" / "cli.py"):
        st = path.stat()
        assert st.st_uid == 0
        assert not st.st_mode & 0o022, oct(st.st_mode)
    data = (rootfs / "var" / "lib" / "emporium").stat()
    assert (data.st_uid, data.st_gid) == (UID, UID)


@contextlib.contextmanager
def read_only_root(rootfs: Path) -> Iterator[list[str]]:
    """A command prefix running in a private mount namespace with the image's root bound
    read-only, tmpfs on /tmp and /var/lib/emporium (the chart's emptyDirs), the host's /dev
    and a fresh /proc, chrooted as uid/gid 10001 with the image's environment only."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        setup = " && ".join(
            [
                "mount --make-rprivate /",
                f"mount --bind {rootfs} {root}",
                f"mount -o remount,bind,ro {root}",
                f"mount -t tmpfs -o mode=1777 tmpfs {root}/tmp",
                f"mount -t tmpfs -o uid={UID},gid={UID},mode=0750 tmpfs {root}/var/lib/emporium",
                f"mount --rbind /dev {root}/dev",
                f"mount -t proc proc {root}/proc",
                f'exec chroot --userspec={UID}:{UID} {root} "$@"',
            ]
        )
        yield ["unshare", "--mount", "--pid", "--fork", "sh", "-c", setup, "sh"]


def run_inside(
    rootfs: Path, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    env = ["env", "-i", *config["Env"]]
    with read_only_root(rootfs) as prefix:
        return subprocess.run(
            [*prefix, *env, "sh", "-c", 'cd "$EMPORIUM_DATA_DIR" && exec "$@"', "sh", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def test_emporium_runs_as_10001_on_a_read_only_root(rootfs: Path, config: dict[str, Any]) -> None:
    out = run_inside(rootfs, config, *config["Entrypoint"], "--help")
    assert out.returncode == 0, out.stderr
    assert "run" in out.stdout
    assert "migrate" in out.stdout
    who = run_inside(rootfs, config, "id", "-u")
    assert who.stdout.strip() == str(UID)
    denied = run_inside(rootfs, config, "touch", "/app/x")
    assert denied.returncode != 0
    assert "Read-only file system" in denied.stderr or "Permission denied" in denied.stderr


def test_migrations_write_only_to_the_data_directory(rootfs: Path, config: dict[str, Any]) -> None:
    """The chart's pre-install Job (`emporium migrate`) on the embedded profile: the SQLite
    files land under EMPORIUM_DATA_DIR, the only writable place besides /tmp."""
    script = "emporium migrate user product && find /var/lib/emporium -name '*.sqlite3' | sort"
    out = run_inside(rootfs, config, "sh", "-c", script)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "migrated user" in out.stdout
    files = [line for line in out.stdout.splitlines() if line.startswith("/var/lib/emporium/")]
    assert any("user" in f for f in files), out.stdout
    assert any("product" in f for f in files), out.stdout


def test_running_as_root_is_not_needed_to_read_the_code(rootfs: Path) -> None:
    """Every module of the project is world-readable, so any numeric uid can import it."""
    unreadable = [
        p for p in (rootfs / SITE / "emporium").rglob("*.py") if not p.stat().st_mode & 0o004
    ]
    assert not unreadable, unreadable[:5]
    assert os.access(rootfs / "app" / ".venv" / "bin" / "emporium", os.X_OK)
