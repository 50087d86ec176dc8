"""The gRPC contracts: one proto per backend, compiling, with stubs that match the protos.

Why: services only share `emporium.contracts`; a proto that does not compile, a stub that
drifted from its proto, or a service name that does not follow `emporium.<svc>.v1.<Svc>Service`
would break every caller of that service at once.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import grpc_tools
import pytest
from grpc_tools import protoc

from emporium.chassis.catalog import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
NAMES = [b.name for b in BACKENDS]


def service_class(name: str) -> str:
    return f"{name.capitalize()}Service"


def test_every_backend_has_a_proto() -> None:
    protos = sorted(p.relative_to(ROOT / "proto").as_posix() for p in ROOT.glob("proto/**/*.proto"))
    assert protos == sorted(f"{n}/v1/{n}.proto" for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_proto_compiles(name: str, tmp_path: Path) -> None:
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"-I{well_known}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"{name}/v1/{name}.proto",
        ]
    )
    assert code == 0
    assert (tmp_path / name / "v1" / f"{name}_pb2_grpc.py").is_file()


@pytest.mark.parametrize("name", NAMES)
def test_generated_module_exposes_the_service(name: str) -> None:
    pb2 = importlib.import_module(f"emporium.contracts.rpc.{name}.v1.{name}_pb2")
    pb2_grpc = importlib.import_module(f"emporium.contracts.rpc.{name}.v1.{name}_pb2_grpc")
    svc = service_class(name)

    assert pb2.DESCRIPTOR.package == f"emporium.{name}.v1"
    assert list(pb2.DESCRIPTOR.services_by_name) == [svc]
    assert pb2.DESCRIPTOR.services_by_name[svc].full_name == f"emporium.{name}.v1.{svc}"
    assert isinstance(getattr(pb2_grpc, f"{svc}Servicer"), type)
    assert callable(getattr(pb2_grpc, f"add_{svc}Servicer_to_server"))
    assert isinstance(getattr(pb2_grpc, f"{svc}Stub"), type)


def test_committed_stubs_match_the_protos() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
