"""The `emporium` command: `up` (the whole platform), `run <service>` (one process),
`migrate [service ...]` (apply Alembic migrations), `sagas list|retry|cancel` (operators),
`observability generate [--check]` (Prometheus rules, Alertmanager config), `slo [--prometheus URL]
[--window 1h]` (the SLO table as Prometheus measures it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from emporium.chassis.catalog import PAYMENT_SANDBOX, service
from emporium.chassis.config import ConfigError, load_settings

RELATIONAL = ("user", "order", "product", "payment", "inventory", "auth")


def migrate(names: list[str]) -> int:
    """Upgrade each relational service's database to head; one clear line on bad config."""
    from emporium.chassis.migrations import migrate_sync

    for name in names or list(RELATIONAL):
        if name not in RELATIONAL:
            print(f"emporium migrate: {name} has no relational database", file=sys.stderr)
            return 2
        try:
            settings = load_settings(name)
        except ConfigError as exc:
            print(f"emporium {name}: configuration error: {exc}", file=sys.stderr)
            return 2
        migrate_sync(name, settings.database_url)
        print(f"[emporium] migrated {name}: {_safe_url(settings.database_url)}")
    return 0


def _safe_url(url: str) -> str:
    """The URL without its password, fit for a terminal."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="emporium", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="migrate, then run all twelve services until Ctrl-C")
    up_p.add_argument(
        "--data-dir", type=Path, default=None, help="default: $EMPORIUM_DATA_DIR, else var"
    )
    up_p.add_argument("--only", nargs="*", help="run only these services")
    up_p.add_argument(
        "--no-demo", action="store_true", help="do not load the demo catalog on first start"
    )
    run_p = sub.add_parser(
        "run", help="run one service (or payment-sandbox, the built-in provider) in the foreground"
    )
    run_p.add_argument("service")
    mig_p = sub.add_parser("migrate", help="apply database migrations")
    mig_p.add_argument("services", nargs="*")
    from emporium import operator

    operator.add_parser(sub)
    from emporium.observability import generate

    generate.add_parser(sub)
    from emporium.observability import report

    report.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "sagas":
        return operator.main(args)
    if args.command == "observability":
        return generate.main(args)
    if args.command == "slo":
        return report.main(args)

    if args.command == "run" and args.service.replace("-", "_") == PAYMENT_SANDBOX.name:
        from emporium.sandbox.payments.app import run_sandbox

        return run_sandbox()
    if args.command == "run":
        from emporium.chassis.runtime import run_service

        try:
            service(args.service)
        except KeyError as exc:
            print(f"emporium run: {exc.args[0]}", file=sys.stderr)
            return 2
        return run_service(args.service)
    if args.command == "migrate":
        return migrate(args.services)
    from emporium.supervisor import up

    # One data directory for the supervisor and every service it starts: the flag wins,
    # then the environment, then `var`.
    data_dir = args.data_dir or Path(os.environ.get("EMPORIUM_DATA_DIR") or "var")
    os.environ["EMPORIUM_DATA_DIR"] = str(data_dir)
    code = migrate([])
    if code:
        return code
    return up(data_dir, args.only, demo=not args.no_demo)
