"""``pyflue agents``: see :mod:`pyflue_cli.commands.listing`."""

from __future__ import annotations

import argparse

from .listing import add_listing_arguments, run_listing

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "run"]

HELP = "list the project's agents"
DESCRIPTION = """\
List the agents of the project (agents/*.py) and the files that failed to import.
Exits 1 when a file failed to import."""
EXAMPLES = "pyflue agents\n  pyflue agents --json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_listing_arguments(parser, "agents")


def run(args: argparse.Namespace) -> int:
    return run_listing(args, "agents")
