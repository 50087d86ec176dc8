"""Write docs/asyncapi.json from the event models, or check it is up to date.

python scripts/gen_asyncapi.py           # (re)write docs/asyncapi.json
python scripts/gen_asyncapi.py --check   # exit 1 if the file differs from the models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emporium.contracts.events.asyncapi import build_asyncapi

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"


def render() -> str:
    return json.dumps(build_asyncapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run scripts/gen_asyncapi.py", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
