"""Developer sessions: ``nox -s tests lint typecheck bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite; every async test runs on asyncio and trio (see tests/conftest.py)."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy", "--strict", "pyflue")


@nox.session
def bench(session: nox.Session) -> None:
    """Side-by-side benchmarks; peers are installed into their own virtualenvs by the driver."""
    session.install("-e", ".[dev]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def bench_stores(session: nox.Session) -> None:
    """The store benchmarks, PostgreSQL beside SQLite in each run (each starts its own throwaway
    PostgreSQL cluster): dispatch acceptance and delivery with 1, 2 and 4 processes, run events and
    session appends, and the journal of resumable runs."""
    session.install("-e", ".[dev]")
    for script in ("dispatch_accept", "dispatch_delivery", "postgres_stores", "journal_cost"):
        session.run("python", f"benchmarks/{script}.py")
