"""``pyflue agents``: see :mod:`pyflue_cli.commands.listing`."""

from __future__ import annotations

import argparse

from .listing import run_listing

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    return run_listing(args, "agents")
