"""`python -m emporium.observability [--check]`: same as `emporium observability generate`."""

import sys

from emporium.observability.generate import add_parser, main

if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m emporium.observability")
    add_parser(parser.add_subparsers(dest="command", required=True))
    sys.exit(main(parser.parse_args(["observability", "generate", *sys.argv[1:]])))
