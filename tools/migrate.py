"""Run or write Alembic migrations: `python -m tools.migrate`.

    python -m tools.migrate                      # every service to head
    python -m tools.migrate upgrade auth posts   # some services to head
    python -m tools.migrate bootstrap            # dev/test: database, roles, schemas, then upgrade
    python -m tools.migrate revision auth -m "add avatars" [--autogenerate]

This is what production's migration job runs (each service as its own role,
credentials from AGORA_DB_*); `make up` and the tests go through the same
functions. Alembic is never configured by an ini file: common.migrations
builds the configuration, so the CLI and the code cannot disagree.
"""

from __future__ import annotations

import argparse
import sys

from alembic import command

from common import migrations
from common.settings import DatabaseSettings, load_settings
from common.topology import SERVICES, ServiceSpec, service
from tools import bootstrap


def _services(names: list[str]) -> tuple[ServiceSpec, ...]:
    return tuple(service(name) for name in names) if names else SERVICES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    upgrade = commands.add_parser("upgrade", help="migrate services to head (default: all)")
    upgrade.add_argument("services", nargs="*")
    setup = commands.add_parser("bootstrap", help="create database, roles, schemas; migrate")
    setup.add_argument("services", nargs="*")
    revision = commands.add_parser("revision", help="write a new migration for one service")
    revision.add_argument("service")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)

    settings = load_settings(DatabaseSettings)
    try:
        if args.command == "revision":
            config = migrations.alembic_config(service(args.service), settings)
            command.revision(config, message=args.message, autogenerate=args.autogenerate)
            return 0
        specs = _services(getattr(args, "services", []))
        if args.command == "bootstrap":
            bootstrap.ensure_database(settings, specs)
        bootstrap.migrate(settings, specs)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return 2
    print("migrated: " + ", ".join(spec.name for spec in _services(getattr(args, "services", []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
