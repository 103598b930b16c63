"""The PostgreSQL schema, as numbered migrations.

``MIGRATIONS[n - 1]`` takes a schema from version ``n - 1`` to ``n``; a database records the versions
it applied in ``schema_version``. A migration is only ever appended, never edited, once released:
:meth:`~pyflue.stores.postgres.PostgresDatabase.upgrade` applies the missing ones in one transaction
under an advisory lock, so processes starting together never race.

Times are integer microseconds since the epoch (:func:`pyflue.stores.dispatches.to_us`): they round-trip
exactly and compare cheaply in indexes. JSON values (payloads, events, messages) are ``bytea``: stored as
written, with key order, any characters and any size kept.
"""

from __future__ import annotations

import hashlib

__all__ = ["DISPATCH_TOPIC", "MIGRATIONS", "NOW_US", "SCHEMA_VERSION", "run_topic", "stable_hash"]

#: The database server's clock in integer microseconds since the epoch: every lease of every host is
#: judged by this one clock.
NOW_US = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"
#: The notification topic of any change of the dispatch tables.
DISPATCH_TOPIC = "d"


def run_topic(run_id: str) -> str:
    """The notification topic of one run's log and record (a digest: run ids are any text)."""
    return "r" + hashlib.md5(run_id.encode()).hexdigest()


def stable_hash(text: str) -> int:
    """A signed 64-bit hash of ``text``, the same in every process (advisory lock keys)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


_V1 = """
CREATE TABLE session_heads (
    agent text NOT NULL,
    instance_id text NOT NULL,
    session_id text NOT NULL,
    version bigint NOT NULL,
    message_count bigint NOT NULL DEFAULT 0,
    lease_owner text,
    lease_expires timestamptz,
    PRIMARY KEY (agent, instance_id, session_id)
);
CREATE TABLE session_messages (
    agent text NOT NULL,
    instance_id text NOT NULL,
    session_id text NOT NULL,
    seq bigint NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (agent, instance_id, session_id, seq)
);

CREATE TABLE runs (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL UNIQUE,
    workflow text NOT NULL,
    status text NOT NULL,
    payload bytea,
    result bytea,
    error bytea,
    usage bytea,
    started_at bigint NOT NULL,
    ended_at bigint,
    duration_ms double precision,
    owner_pid integer,
    owner_host text,
    lease_expires bigint NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    cancel_reason text
);
CREATE INDEX runs_by_workflow ON runs (workflow, position);
CREATE INDEX runs_by_status ON runs (status, position);
CREATE INDEX runs_by_end ON runs (ended_at) WHERE status <> 'running';
CREATE INDEX runs_by_lease ON runs (lease_expires) WHERE status = 'running';
CREATE TABLE run_events (
    run_id text NOT NULL,
    seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    events bytea NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE dispatch_items (
    position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispatch_id text NOT NULL UNIQUE,
    agent text NOT NULL,
    instance_id text NOT NULL,
    session_id text NOT NULL,
    input bytea NOT NULL,
    key text UNIQUE,
    status text NOT NULL,
    accepted_at bigint NOT NULL,
    available_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    worker text,
    lease_expires bigint,
    cancel_requested text,
    outcome bytea,
    traceparent text,
    ready_at bigint
);
CREATE INDEX dispatch_items_ready ON dispatch_items (ready_at, position) WHERE ready_at IS NOT NULL;
CREATE INDEX dispatch_items_pending ON dispatch_items (agent, instance_id, session_id, position)
    WHERE status IN ('queued', 'running');
CREATE INDEX dispatch_items_target ON dispatch_items (agent, instance_id, session_id, position);
CREATE INDEX dispatch_items_status ON dispatch_items (status, position);
CREATE TABLE dispatch_attempts (
    dispatch_id text NOT NULL,
    number integer NOT NULL,
    worker text NOT NULL,
    started_at bigint NOT NULL,
    ended_at bigint,
    status text NOT NULL,
    error bytea,
    PRIMARY KEY (dispatch_id, number)
);
CREATE TABLE dispatch_events (
    dispatch_id text NOT NULL,
    seq bigint NOT NULL,
    event bytea NOT NULL,
    PRIMARY KEY (dispatch_id, seq)
);
"""

# Resumable runs: the journal of each run's steps, and the token of the attempt that owns a running
# run (a reopened run gets a new one, so an earlier owner that lost its lease cannot write to it).
_V2 = """
ALTER TABLE runs ADD COLUMN owner_token text;
CREATE TABLE run_journal (
    run_id text NOT NULL,
    step text NOT NULL,
    position bigint NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    fingerprint text NOT NULL,
    status text NOT NULL,
    result bytea,
    PRIMARY KEY (run_id, step)
);
"""

# Listing an agent's instances in code-point order (decision 0024): an ordered walk over the heads
# with messages, in the "C" collation the listing compares and sorts in.
_V3 = """
CREATE INDEX IF NOT EXISTS session_heads_instances
    ON session_heads (agent, (instance_id COLLATE "C")) WHERE message_count > 0;
"""

#: Every migration, in order: applying ``MIGRATIONS[:n]`` gives schema version ``n``.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)
#: The schema version this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)
