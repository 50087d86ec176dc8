"""Run every benchmark in turn (`make bench`); each prints its own numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ["grpc_roundtrip.py"],
    ["bus_throughput.py"],
    ["outbox_relay.py"],
    ["rest_roundtrip.py", "--start"],
    ["checkout.py", "--start", "--shoppers", "4", "--seconds", "25"],
    ["checkout.py", "--start", "--shoppers", "8", "--seconds", "25"],
    ["floor.py"],
    ["load.py", "--start", "--rate", "5", "--seconds", "60"],
]


def main() -> int:
    failed = 0
    for script, *args in SCRIPTS:
        path = HERE / script
        if not path.exists():
            print(f"# {script}: not present, skipped")
            continue
        print(f"\n## {script} {' '.join(args)}", flush=True)
        failed += subprocess.call([sys.executable, str(path), *args], env=os.environ) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
