"""Generate the Python gRPC stubs of every proto under `proto/` into
`src/emporium/contracts/rpc/`, or check (`--check`) that the committed stubs are current.

Why the virtual include path: `proto/<svc>/v1/<svc>.proto` is compiled as
`emporium/contracts/rpc/<svc>/v1/<svc>.proto` (`-Iemporium/contracts/rpc=proto`), so the
generated modules import each other absolutely (`from emporium.contracts.rpc.order.v1 import
order_pb2`) and the code lands where the package expects it. The output is a pure function
of the protos and the pinned generator versions (uv.lock), so CI can diff it for drift.

Usage: `python scripts/gen_protos.py` (regenerate) or `python scripts/gen_protos.py --check`.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
SRC_DIR = ROOT / "src"
PACKAGE_PATH = Path("emporium") / "contracts" / "rpc"
OUTPUT_DIR = SRC_DIR / PACKAGE_PATH

PACKAGE_DOC = (
    '"""Generated gRPC stubs (scripts/gen_protos.py): do not edit; regenerate with'
    ' `make proto`."""\n'
)


def proto_files() -> list[Path]:
    """Every proto, relative to `proto/`, in a stable order."""
    return sorted(p.relative_to(PROTO_DIR) for p in PROTO_DIR.rglob("*.proto"))


def plugin(name: str) -> str:
    """A protoc plugin installed next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"gen_protos: {name} not found; install mypy-protobuf into the venv")
    return found


def generate(out_root: Path) -> None:
    """Compile every proto into `out_root/emporium/contracts/rpc/...` and add packages."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    files = proto_files()
    if not files:
        raise SystemExit(f"gen_protos: no .proto files under {PROTO_DIR}")
    out = str(out_root)
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE_PATH.as_posix()}={PROTO_DIR}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *[(PACKAGE_PATH / f).as_posix() for f in files],
    ]
    (out_root / PACKAGE_PATH).mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise SystemExit("gen_protos: protoc failed (see the messages above)")
    write_packages(out_root / PACKAGE_PATH)


def write_packages(package_dir: Path) -> None:
    """An `__init__.py` in every generated folder, so the stubs import as a package."""
    for folder in sorted({package_dir, *(p.parent for p in package_dir.rglob("*.py"))}):
        for parent in [folder, *folder.parents]:
            if parent == package_dir.parent:
                break
            (parent / "__init__.py").write_text(PACKAGE_DOC)


def tree(root: Path) -> dict[str, Path]:
    """Files under `root`, keyed by relative path (caches ignored)."""
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def drift(expected_root: Path, actual_root: Path) -> list[str]:
    """Human-readable differences between freshly generated and committed stubs."""
    expected, actual = tree(expected_root), tree(actual_root)
    problems = [f"missing: {name}" for name in sorted(expected.keys() - actual.keys())]
    problems += [
        f"stale (no proto generates it): {name}" for name in sorted(actual.keys() - expected.keys())
    ]
    for name in sorted(expected.keys() & actual.keys()):
        if not filecmp.cmp(expected[name], actual[name], shallow=False):
            diff = difflib.unified_diff(
                actual[name].read_text().splitlines(),
                expected[name].read_text().splitlines(),
                f"committed/{name}",
                f"generated/{name}",
                lineterm="",
                n=1,
            )
            lines = list(diff)
            shown = "\n".join(lines[:20]) + ("\n  ..." if len(lines) > 20 else "")
            problems.append(f"differs: {name}\n{shown}")
    return problems


def check() -> int:
    with tempfile.TemporaryDirectory(prefix="emporium-protos-") as tmp:
        generate(Path(tmp))
        problems = drift(Path(tmp) / PACKAGE_PATH, OUTPUT_DIR)
    if problems:
        print(f"gen_protos --check: {len(problems)} generated file(s) out of date:")
        for problem in problems:
            print(f"  {problem}")
        print("run `make proto` (python scripts/gen_protos.py) and commit the result")
        return 1
    print(f"gen_protos --check: {len(proto_files())} protos, stubs up to date")
    return 0


def regenerate() -> int:
    """Generate into a temp dir, then replace the output folder (no stale files survive)."""
    with tempfile.TemporaryDirectory(prefix="emporium-protos-") as tmp:
        generate(Path(tmp))
        if OUTPUT_DIR.exists():
            shutil.rmtree(OUTPUT_DIR)
        shutil.copytree(Path(tmp) / PACKAGE_PATH, OUTPUT_DIR)
    print(f"gen_protos: {len(proto_files())} protos -> {OUTPUT_DIR.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args(argv)
    return check() if args.check else regenerate()


if __name__ == "__main__":
    sys.exit(main())
