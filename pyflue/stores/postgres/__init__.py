"""PostgreSQL storage: many processes on many hosts against one database (extra ``postgres``).

``PostgresDatabase(url)`` is one database (a schema in it) with a connection pool used from worker
threads, so the stores run on asyncio and trio alike; its stores — :meth:`~PostgresDatabase.session_store`,
:meth:`~PostgresDatabase.run_store`, :meth:`~PostgresDatabase.dispatch_store` — implement the session,
run and dispatch protocols and pass their contract suites. The schema is created and migrated by
version (:meth:`~PostgresDatabase.upgrade`, automatic on first use) under an advisory lock. Claims use
``FOR UPDATE SKIP LOCKED`` and leases on the server's clock; followers are woken by ``LISTEN``/``NOTIFY``.
See docs/scaling.md.
"""

from __future__ import annotations

from .database import PostgresDatabase
from .dispatches import PostgresDispatchStore
from .notify import Watch
from .runs import PostgresRunStore
from .schema import SCHEMA_VERSION
from .sessions import PostgresSessionStore

__all__ = [
    "SCHEMA_VERSION",
    "PostgresDatabase",
    "PostgresDispatchStore",
    "PostgresRunStore",
    "PostgresSessionStore",
    "Watch",
]
