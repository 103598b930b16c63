"""The index that lists an agent's instances in PostgreSQL (decision 0024): the schema migration that
adds it to an existing database, and the listing query's use of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import psycopg
from psycopg import sql

from pyflue.stores.postgres import SCHEMA_VERSION, PostgresDatabase
from pyflue.stores.postgres.schema import MIGRATIONS
from pyflue.stores.postgres.sessions import instances_query

ROOT = Path(__file__).resolve().parents[2]
_HEADS = (
    "INSERT INTO session_heads (agent, instance_id, session_id, version, message_count) "
    "SELECT %s, 'i-' || lpad(n::text, 5, '0'), s, 1, CASE WHEN n %% 10 = 0 THEN 0 ELSE 2 END "
    "FROM generate_series(1, %s) n, unnest(ARRAY['main', 'side']) s"
)


def _version_2(url: str, schema: str, instances: int) -> None:
    """A database as PyFlue's second schema version left it, with ``instances`` instances of the agent
    ``helper`` (every tenth without messages) and as many of the agent ``other``."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE schema_version "
            "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, migration in enumerate(MIGRATIONS[:2], start=1):
            conn.execute(migration.encode())
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        for agent in ("helper", "other"):
            conn.execute(_HEADS, (agent, instances))


def _upgrade(url: str, schema: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "pyflue_cli", "db", "upgrade", "--url", url, "--schema", schema, "--json"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _index(url: str, schema: str) -> str | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = 'session_heads_instances'",
            (schema,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_pyflue_db_upgrade_adds_the_instances_index_to_a_version_2_database(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    schema = new_schema()
    _version_2(postgres_url, schema, 30)
    assert _index(postgres_url, schema) is None
    assert _upgrade(postgres_url, schema)["version"] == SCHEMA_VERSION >= 3
    indexdef = _index(postgres_url, schema)
    assert indexdef is not None
    assert '(agent, instance_id COLLATE "C")' in indexdef
    assert "WHERE (message_count > 0)" in indexdef
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        assert [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")] == list(
            range(1, SCHEMA_VERSION + 1)
        )
    assert _upgrade(postgres_url, schema)["version"] == SCHEMA_VERSION  # a no-op when current

    async def listing() -> None:
        async with PostgresDatabase(postgres_url, schema=schema, auto_upgrade=False) as db:
            store = db.session_store()
            expected = [f"i-{n:05}" for n in range(1, 31) if n % 10]
            assert await store.list_instances("helper") == expected
            assert await store.list_instances("helper", limit=5, after="i-00009") == expected[9:14]

    anyio.run(listing)


def _plan(url: str, schema: str, after: str | None) -> list[dict[str, Any]]:
    """The nodes of the executed plan of one page of ``list_instances`` (its own query text)."""
    query = instances_query(after=after is not None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("ANALYZE session_heads")
        row = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON, COSTS OFF, TIMING OFF) " + query,
            {"agent": "helper", "after": after, "limit": 51},
        ).fetchone()
    assert row is not None
    nodes, todo = [], [row[0][0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", ()))
    return nodes


def test_a_page_of_instances_is_an_ordered_walk_over_the_index(
    postgres_url: str, new_schema: Callable[[], str]
) -> None:
    """5 000 instances of each of two agents, analysed: a page (with and without ``after``) is read
    from ``session_heads_instances`` in order — no sort, and only the page's rows are read."""
    schema = new_schema()
    _version_2(postgres_url, schema, 5000)
    _upgrade(postgres_url, schema)
    for after in (None, "i-02500"):
        nodes = _plan(postgres_url, schema, after)
        scans = [n for n in nodes if "Scan" in n["Node Type"]]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] in (
            [("Index Only Scan", "session_heads_instances")],
            [("Index Scan", "session_heads_instances")],
        ), nodes
        assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
        assert scans[0]["Actual Rows"] <= 2 * 51, nodes  # two sessions an instance: one page's rows
