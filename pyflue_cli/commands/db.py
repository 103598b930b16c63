"""``pyflue db upgrade``: create or migrate the PostgreSQL schema before processes start on it.

Stores open a PostgreSQL database with an automatic upgrade, under an advisory lock; this command
does the same upgrade on its own, so a deployment can migrate in one step before it starts new
``serve`` / ``worker`` processes (and see the version it reached). The database is the one
``PYFLUE_DATABASE_URL`` names, or ``--url``. Without either the project's store is SQLite, which has
no schema to migrate: the command says so and exits 0, so a deployment script can always run it.
The URL's password is never printed.
"""

from __future__ import annotations

import argparse
import os

from ..arguments import output_flags
from ..exits import COMPLETED

__all__ = ["DATABASE_ENV", "DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "upgrade the PostgreSQL schema (PYFLUE_DATABASE_URL)"
DESCRIPTION = """\
Database maintenance. `pyflue db upgrade` creates or migrates PyFlue's schema in the PostgreSQL
database named by PYFLUE_DATABASE_URL (or --url) to this version of PyFlue, under a lock (safe
while other processes start), and prints the schema version. Without a URL the store is SQLite,
which needs no upgrade (exit 0)."""
EXAMPLES = """\
PYFLUE_DATABASE_URL=postgresql://pyflue@db.internal:5432/pyflue pyflue db upgrade
  pyflue db upgrade --url postgresql://pyflue@127.0.0.1:5432/pyflue --schema staging --json"""

#: The environment variable naming the PostgreSQL database.
DATABASE_ENV = "PYFLUE_DATABASE_URL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        choices=("upgrade",),
        metavar="ACTION",
        help="upgrade: create or migrate the PostgreSQL schema to this PyFlue's version",
    )
    parser.add_argument(
        "--url", metavar="URL", help=f"postgresql://user@host:port/dbname (default: ${DATABASE_ENV})"
    )
    parser.add_argument(
        "--schema", default="pyflue", metavar="NAME", help="the schema holding PyFlue's tables (pyflue)"
    )
    output_flags(parser, json='print one JSON object: {"backend", "database", "schema", "version"}')


def run(args: argparse.Namespace) -> int:
    from ..jsontext import write_json

    url = args.url if args.url is not None else os.environ.get(DATABASE_ENV) or None
    if url is None:
        if args.json:
            write_json({"backend": "sqlite", "database": None, "schema": None, "version": None})
        else:
            print(
                f"{DATABASE_ENV} is not set (and no --url): the store is SQLite (.pyflue/pyflue.db), "
                "which needs no upgrade"
            )
        return COMPLETED
    import anyio

    where, version = anyio.run(_upgrade, url, args.schema)
    if args.json:
        write_json({"backend": "postgresql", "database": where, "schema": args.schema, "version": version})
    else:
        print(f"PostgreSQL {where}: schema {args.schema!r} is at version {version}")
    return COMPLETED


async def _upgrade(url: str, schema: str) -> tuple[str, int]:
    from pyflue.stores.postgres import PostgresDatabase

    async with PostgresDatabase(url, schema=schema) as database:
        return database.where, await database.upgrade()
