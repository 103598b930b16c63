"""What the PostgreSQL stores need of their database, as a protocol: the stores sit below
:class:`~pyflue.stores.postgres.database.PostgresDatabase` (which makes them), so they name it only
through this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import psycopg

from .notify import Notifier, Watch

__all__ = ["Conn", "Database"]

T = TypeVar("T")
#: A connection of the pool, in a transaction, rows as tuples.
Conn = psycopg.Connection[tuple[Any, ...]]


class Database(Protocol):
    """A PostgreSQL schema the stores read and write (see ``PostgresDatabase``)."""

    @property
    def schema(self) -> str: ...
    @property
    def where(self) -> str: ...
    @property
    def channel(self) -> str: ...
    @property
    def notifier(self) -> Notifier: ...

    def call(self, fn: Callable[[Conn], T]) -> T: ...
    async def run(self, fn: Callable[[Conn], T]) -> T: ...
    async def in_thread(self, fn: Callable[[], T]) -> T: ...
    async def watch(self, topic: str) -> Watch: ...
