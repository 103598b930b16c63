"""SQLite storage: one file (``.pyflue/pyflue.db`` in a project), WAL mode, stdlib ``sqlite3``.

Every statement runs in a worker thread so the event loop never blocks on disk. A
:class:`SQLiteDatabase` is one connection to one file; the stores of a process share it when their
owner (a runtime) hands them the same object, and each store opens its own when given a path. Other
processes open the same file concurrently: WAL lets readers and one writer proceed together, and the
session store's turn leases make processes take turns on a session.
"""

from __future__ import annotations

from .database import SQLiteDatabase
from .dispatches import SQLiteDispatchStore
from .runs import SQLiteRunStore
from .sessions import SQLiteSessionStore

__all__ = ["SQLiteDatabase", "SQLiteDispatchStore", "SQLiteRunStore", "SQLiteSessionStore"]
