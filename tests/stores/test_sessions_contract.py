"""The SessionStore contract, run by every implementation in ``BACKENDS`` (tests/stores/conftest.py):
histories, ids that are data, versions, fenced writes and turn leases, seen by one client and by
two clients of one storage."""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.models.messages import (
    AssistantMessage,
    ImagePart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    UserMessage,
    text_of,
)
from pyflue.stores.sessions import SessionKey, SessionStore, StaleVersionError, StoredHistory, StoredMessage
from tests.stores.conftest import Backend

KEY = SessionKey("agent", "inst", "default")


def sample_messages() -> list[StoredMessage]:
    return [
        UserMessage([TextPart("Hello ✓ — ünïcode"), ImagePart("image/png", data=b"\x89PNG\x00\xff")]),
        AssistantMessage(
            [
                ThinkingPart("hmm", signature="sig=="),
                TextPart("Let me look."),
                ToolCallPart("c1", "lookup", {"id": 7, "nested": {"a": [1, None, "x"]}}),
            ]
        ),
        UserMessage(
            [ToolResultPart("c1", "lookup", '{"status":"shipped"}'), ToolResultPart("c2", "x", "no", True)]
        ),
        AssistantMessage([TextPart("Shipped.")]),
        UserMessage([ImagePart("image/jpeg", url="https://example.com/a.jpg")]),
    ]


def said(text: str) -> list[StoredMessage]:
    return [UserMessage([TextPart(text)])]


# -- histories -------------------------------------------------------------------------------------


async def test_store_satisfies_the_protocol(session_store: SessionStore) -> None:
    assert isinstance(session_store, SessionStore)


async def test_load_append_round_trip(session_store: SessionStore) -> None:
    assert await session_store.load(KEY) == []
    messages = sample_messages()
    await session_store.append(KEY, messages[:2])
    await session_store.append(KEY, messages[2:])
    await session_store.append(KEY, [])
    loaded = await session_store.load(KEY)
    assert isinstance(loaded, StoredHistory) and loaded == messages
    assert await session_store.load(KEY) == messages  # loading does not consume


async def test_replace_and_delete(session_store: SessionStore) -> None:
    messages = sample_messages()
    await session_store.append(KEY, messages)
    summary = said("Summary of the conversation so far.")
    await session_store.replace(KEY, summary)
    assert await session_store.load(KEY) == summary
    await session_store.append(KEY, messages[:1])
    assert await session_store.load(KEY) == summary + messages[:1]
    await session_store.delete(KEY)
    assert await session_store.load(KEY) == []
    await session_store.delete(KEY)  # deleting twice is fine
    await session_store.append(KEY, messages[:1])
    assert await session_store.load(KEY) == messages[:1]


async def test_caller_lists_are_not_the_stored_history(session_store: SessionStore) -> None:
    batch = sample_messages()[:2]
    await session_store.append(KEY, batch)
    batch.append(AssistantMessage([TextPart("sneaky")]))
    loaded = await session_store.load(KEY)
    loaded.clear()
    assert len(await session_store.load(KEY)) == 2


async def test_keys_are_distinct_and_listed(session_store: SessionStore) -> None:
    ids = ["..", "a/b", "a_b", "a\\b", "../../etc/passwd", "%2e%2e", "A_B", "a b", "ключ", "*", "default"]
    for i, session_id in enumerate(ids):
        await session_store.append(SessionKey("agent", "inst", session_id), said(f"m{i}"))
    await session_store.append(SessionKey("agent", "other", "a/b"), said("other instance"))
    await session_store.append(SessionKey("other", "inst", "a/b"), said("other agent"))
    for i, session_id in enumerate(ids):
        loaded = await session_store.load(SessionKey("agent", "inst", session_id))
        assert [text_of(m) for m in loaded] == [f"m{i}"]
    assert await session_store.list_sessions("agent", "inst") == sorted(ids)
    assert await session_store.list_sessions("agent", "other") == ["a/b"]
    assert await session_store.list_sessions("agent", "nobody") == []
    await session_store.delete(SessionKey("agent", "inst", ".."))
    assert ".." not in await session_store.list_sessions("agent", "inst")
    assert [text_of(m) for m in await session_store.load(SessionKey("agent", "inst", "a/b"))] == ["m1"]


async def test_empty_sessions_are_not_listed(session_store: SessionStore) -> None:
    await session_store.append(KEY, [])
    assert await session_store.list_sessions(KEY.agent, KEY.instance_id) == []
    await session_store.append(KEY, sample_messages()[:1])
    await session_store.replace(KEY, [])
    assert await session_store.list_sessions(KEY.agent, KEY.instance_id) == []
    assert await session_store.load(KEY) == []
    await session_store.acquire(KEY, "owner", 30)  # a lease alone does not make a session
    assert await session_store.list_sessions(KEY.agent, KEY.instance_id) == []


async def test_instances_are_listed_sorted_and_paged(session_store: SessionStore) -> None:
    ids = ["..", "a/b", "a_b", "a\\b", "%2e%2e", "A_B", "ключ", "*", "default", "z" * 300, "🦜"]
    for i, instance_id in enumerate(ids):
        await session_store.append(SessionKey("agent", instance_id, f"s{i % 2}"), said(f"m{i}"))
        await session_store.append(SessionKey("agent", instance_id, "other"), said("again"))
    await session_store.append(SessionKey("other", "elsewhere", "s"), said("another agent's"))
    await session_store.append(SessionKey("agent", "emptied", "s"), said("gone soon"))
    await session_store.replace(SessionKey("agent", "emptied", "s"), [])
    await session_store.append(SessionKey("agent", "deleted", "s"), said("gone soon"))
    await session_store.delete(SessionKey("agent", "deleted", "s"))
    await session_store.acquire(SessionKey("agent", "leased", "s"), "owner", 30)  # no messages
    await session_store.append(SessionKey("agent", "nothing", "s"), [])
    everything = sorted(ids)
    assert await session_store.list_instances("agent") == everything
    assert await session_store.list_instances("other") == ["elsewhere"]
    assert await session_store.list_instances("nobody") == []
    assert await session_store.list_instances("agent", limit=100) == everything
    for size in (1, 3, len(ids)):
        pages: list[list[str]] = []
        after: str | None = None
        while page := await session_store.list_instances("agent", limit=size, after=after):
            assert len(page) <= size
            pages.append(page)
            after = page[-1]
        assert [i for page in pages for i in page] == everything
    assert await session_store.list_instances("agent", after=everything[-1]) == []
    assert await session_store.list_instances("agent", after="") == everything  # "" sorts first
    assert await session_store.list_instances("agent", after="b") == [i for i in everything if i > "b"]


async def test_an_instance_is_listed_while_any_of_its_sessions_holds_messages(
    session_store: SessionStore,
) -> None:
    first, second = SessionKey("agent", "inst", "one"), SessionKey("agent", "inst", "two")
    await session_store.append(first, said("one"))
    await session_store.append(second, said("two"))
    await session_store.delete(first)
    assert await session_store.list_instances("agent") == ["inst"]
    await session_store.replace(second, [])
    assert await session_store.list_instances("agent") == []
    await session_store.replace(first, said("back"))
    assert await session_store.list_instances("agent") == ["inst"]


@pytest.mark.parametrize("limit", [0, -1, 1.5, True])
async def test_an_instance_page_needs_a_positive_limit(session_store: SessionStore, limit: object) -> None:
    with pytest.raises(ConfigError, match="limit"):
        await session_store.list_instances("agent", limit=limit)  # type: ignore[arg-type]


# -- versions --------------------------------------------------------------------------------------


async def test_every_change_moves_the_version_and_no_version_repeats(session_store: SessionStore) -> None:
    assert (await session_store.load(KEY)).version == 0
    seen = [0]
    seen.append(await session_store.append(KEY, said("one")))
    assert await session_store.append(KEY, []) == seen[-1]  # nothing appended, nothing changed
    seen.append(await session_store.append(KEY, said("two")))
    seen.append(await session_store.replace(KEY, said("summary")))
    assert (await session_store.load(KEY)).version == seen[-1]
    await session_store.delete(KEY)
    seen.append((await session_store.load(KEY)).version)
    # A deleted session written again never comes back to a version a reader may hold.
    seen.append(await session_store.append(KEY, said("one")))
    seen.append(await session_store.append(KEY, said("two")))
    assert seen == sorted(set(seen))
    other = SessionKey("agent", "inst", "other")
    assert (await session_store.load(other)).version == 0  # versions are per session
    assert (await session_store.load(KEY)).version == seen[-1]


async def test_fenced_writes_are_refused_when_the_session_moved_on(session_store: SessionStore) -> None:
    start = await session_store.append(KEY, said("one"))
    moved = await session_store.append(KEY, said("two"), expected=start)
    with pytest.raises(StaleVersionError, match="reload"):
        await session_store.append(KEY, said("stale"), expected=start)
    with pytest.raises(StaleVersionError):
        await session_store.replace(KEY, said("stale summary"), expected=start)
    loaded = await session_store.load(KEY)
    assert [text_of(m) for m in loaded] == ["one", "two"] and loaded.version == moved
    assert await session_store.replace(KEY, said("summary"), expected=moved) > moved


# -- turn leases -----------------------------------------------------------------------------------


async def test_a_lease_is_exclusive_until_released(session_store: SessionStore) -> None:
    version = await session_store.append(KEY, said("one"))
    assert await session_store.acquire(KEY, "a", 30) == version
    assert await session_store.acquire(KEY, "b", 30) is None
    await session_store.release(KEY, "b")  # not the holder: nothing happens
    assert await session_store.acquire(KEY, "b", 30) is None
    await session_store.release(KEY, "a")
    assert await session_store.acquire(KEY, "b", 30) == version
    assert await session_store.acquire(SessionKey("agent", "inst", "other"), "a", 30) == 0  # per session


async def test_the_holder_renews_and_sees_the_current_version(session_store: SessionStore) -> None:
    assert await session_store.acquire(KEY, "a", 30) == 0
    version = await session_store.append(KEY, said("one"))
    assert await session_store.acquire(KEY, "a", 30) == version  # renewed, with the new version
    assert await session_store.acquire(KEY, "b", 30) is None


async def test_an_expired_lease_is_taken_over(session_store: SessionStore) -> None:
    assert await session_store.acquire(KEY, "a", 0.01) == 0
    await anyio.sleep(0.05)
    assert await session_store.acquire(KEY, "b", 30) == 0
    assert await session_store.acquire(KEY, "a", 30) is None  # the old holder lost it
    await session_store.release(KEY, "a")  # and cannot release the new holder's lease
    assert await session_store.acquire(KEY, "c", 30) is None


async def test_the_last_write_of_a_turn_releases_the_lease(session_store: SessionStore) -> None:
    start = await session_store.acquire(KEY, "a", 30)
    assert start == 0
    version = await session_store.append(KEY, said("one"), expected=start, release="b")
    assert await session_store.acquire(KEY, "b", 30) is None  # "b" held nothing to release
    version = await session_store.append(KEY, said("two"), expected=version, release="a")
    assert await session_store.acquire(KEY, "b", 30) == version
    version = await session_store.replace(KEY, said("summary"), release="b")
    assert await session_store.acquire(KEY, "c", 30) == version
    assert await session_store.append(KEY, [], release="c") == version  # release only
    assert await session_store.acquire(KEY, "a", 30) == version


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan")])
async def test_a_lease_needs_a_positive_ttl(session_store: SessionStore, ttl: float) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        await session_store.acquire(KEY, "a", ttl)


async def test_two_clients_of_one_storage_see_each_others_leases_and_versions(backend: Backend) -> None:
    first, second = backend.sessions(), backend.sessions()
    assert await first.acquire(KEY, "process-1", 30) == 0
    assert await second.acquire(KEY, "process-2", 30) is None
    version = await first.append(KEY, said("from one"), expected=0, release="process-1")
    assert await second.acquire(KEY, "process-2", 30) == version
    assert await first.acquire(KEY, "process-1", 30) is None
    loaded = await second.load(KEY)
    assert [text_of(m) for m in loaded] == ["from one"] and loaded.version == version
    later = await second.append(KEY, said("from two"), expected=version, release="process-2")
    with pytest.raises(StaleVersionError):
        await first.append(KEY, said("stale"), expected=version)
    assert (await first.load(KEY)).version == later
    assert await first.list_sessions(KEY.agent, KEY.instance_id) == ["default"]


# -- hypothesis: random operations against a plain list --------------------------------------------

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
parts = st.one_of(
    texts.map(TextPart),
    st.binary(max_size=16).map(lambda b: ImagePart("image/png", data=b)),
    st.tuples(texts, st.booleans()).map(lambda t: ToolResultPart("id", "tool", t[0], t[1])),
)
messages = st.one_of(
    st.lists(parts, min_size=1, max_size=3).map(UserMessage),
    st.lists(
        st.one_of(
            texts.map(TextPart),
            st.tuples(texts, texts).map(lambda t: ThinkingPart(t[0], signature=t[1] or None)),
            st.dictionaries(st.text(max_size=5), st.integers() | texts, max_size=3).map(
                lambda args: ToolCallPart("c", "t", args)
            ),
        ),
        min_size=1,
        max_size=3,
    ).map(AssistantMessage),
)
session_ids = st.sampled_from(["default", "..", "a/b", "a_b"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), session_ids, st.lists(messages, max_size=3)),
        st.tuples(st.just("replace"), session_ids, st.lists(messages, max_size=3)),
        st.tuples(st.just("delete"), session_ids, st.just([])),
    ),
    max_size=12,
)
_instances = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_random_operations_agree_with_a_list(
    module_backend: Backend, ops: list[tuple[str, str, list[StoredMessage]]]
) -> None:
    """Any sequence of appends, replaces and deletes leaves each history equal to a plain list, and
    every session's version only ever grows, moving exactly when its history was written."""
    instance = f"i{next(_instances)}"  # a fresh instance per example in the shared storage
    store = module_backend.sessions()

    async def main() -> None:
        model: dict[str, list[StoredMessage]] = {}
        versions: dict[str, int] = {}
        for op, session_id, batch in ops:
            key = SessionKey("agent", instance, session_id)
            before = (await store.load(key)).version
            if op == "append":
                after = await store.append(key, batch)
                model[session_id] = model.get(session_id, []) + batch
                assert (after > before) if batch else (after == before)
            elif op == "replace":
                after = await store.replace(key, batch)
                model[session_id] = list(batch)
                assert after > before
            else:
                await store.delete(key)
                model.pop(session_id, None)
                after = (await store.load(key)).version
                assert after >= before
            assert after >= versions.get(session_id, 0)
            versions[session_id] = after
        for session_id in ("default", "..", "a/b", "a_b"):
            loaded = await store.load(SessionKey("agent", instance, session_id))
            assert loaded == model.get(session_id, [])
            assert loaded.version == versions.get(session_id, 0)
        listed = await store.list_sessions("agent", instance)
        assert listed == sorted(s for s, history in model.items() if history)

    anyio.run(main)


ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys=st.lists(st.tuples(ids, ids, ids), min_size=1, max_size=6, unique=True))
def test_any_ids_are_data_never_paths_and_never_collide(
    module_backend: Backend, keys: list[tuple[str, str, str]]
) -> None:
    """Ids with ``..``, ``/``, ``\\``, quotes, SQL, any unicode: each key is its own session, listed
    under its own agent and instance, and no file appears for it. (Agents get a prefix per example
    so the examples, which share one storage, list only their own sessions.)"""
    store = module_backend.sessions()
    root = getattr(module_backend, "path", None)
    before = sorted(p.name for p in Path(root).parent.rglob("*")) if root is not None else []
    marker = f"m{next(_instances)}"
    keys = [(marker + agent, instance, session) for agent, instance, session in keys]

    async def main() -> None:
        for i, key in enumerate(keys):
            await store.replace(SessionKey(*key), said(f"{marker}-{i}"))
        for i, key in enumerate(keys):
            assert [text_of(m) for m in await store.load(SessionKey(*key))] == [f"{marker}-{i}"]
        for agent, instance in {(k[0], k[1]) for k in keys}:
            expected = sorted(k[2] for k in keys if (k[0], k[1]) == (agent, instance))
            assert await store.list_sessions(agent, instance) == expected
        for agent in {k[0] for k in keys}:
            expected = sorted({k[1] for k in keys if k[0] == agent})
            assert await store.list_instances(agent) == expected

    anyio.run(main)
    if root is not None:
        after = sorted(p.name for p in Path(root).parent.rglob("*"))
        assert set(after) <= set(before) | {"pyflue.db", "pyflue.db-wal", "pyflue.db-shm"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    instances=st.lists(ids, min_size=1, max_size=8, unique=True),
    others=st.lists(ids, max_size=4),
    size=st.integers(1, 4),
    after=st.none() | ids,
)
def test_instance_pages_of_any_ids_are_exact(
    module_backend: Backend, instances: list[str], others: list[str], size: int, after: str | None
) -> None:
    """Any ids page by keyset, in code-point order, from any starting id (one that exists or not):
    the pages together are exactly the ids after it, each once; another agent's instances, even
    with the same ids or an agent name that extends this one, never show up."""
    store = module_backend.sessions()
    agent = f"p{next(_instances)}q"  # no other example's agent is a prefix or an extension of it

    async def main() -> None:
        for instance in instances:
            await store.append(SessionKey(agent, instance, "s"), said("x"))
        for other in others:
            await store.append(SessionKey(agent + "x", other, "s"), said("y"))
            await store.append(SessionKey(agent[:-1], other, "s"), said("y"))
        seen: list[str] = []
        cursor = after
        while page := await store.list_instances(agent, limit=size, after=cursor):
            assert 1 <= len(page) <= size
            seen += page
            cursor = page[-1]
        assert seen == sorted(i for i in instances if after is None or i > after)

    anyio.run(main)
