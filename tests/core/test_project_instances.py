"""Project.instance: a bounded LRU of loaded agent instances; eviction never loses a conversation."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from pyflue import Project
from pyflue.errors import UnknownAgentError
from pyflue.models.messages import text_of
from tests.core._workflow_helpers import write_project

AGENT = """
from pyflue import create_agent

STARTS = []


def configure(ctx):
    STARTS.append(ctx.id)
    return {"model": "test", "instructions": f"You help {ctx.id}."}


default = create_agent(configure)
"""


async def test_instances_are_cached_evicted_lru_and_reload_from_the_store(tmp_path: Path) -> None:
    project = Project.load(write_project(tmp_path, {"agents/helper.py": AGENT}))
    project.max_instances = 2
    starts = project.agents["helper"].initialize.__globals__["STARTS"]

    a = await project.instance("helper", "a")
    assert await project.instance("helper", "a") is a  # cached: the initializer ran once
    await (await a.session()).prompt("remember me")
    b = await project.instance("helper", "b")
    await project.instance("helper", "a")  # a is now the most recent, so c evicts b
    await project.instance("helper", "c")
    assert await project.instance("helper", "a") is a
    assert starts == ["a", "b", "c"]

    assert await project.instance("helper", "b") is not b  # evicted: initialised again
    assert starts == ["a", "b", "c", "b"]
    project.max_instances = 1
    await project.instance("helper", "d")  # evicts everything else, a included
    del a, b
    gc.collect()  # nothing of the old instance stays in memory: the reload must read SQLite
    again = await project.instance("helper", "a")
    assert starts[-1] == "a"
    history = (await again.session()).history
    assert text_of(history[0]) == "remember me"  # the conversation came back from the store


async def test_an_unknown_agent_is_a_clear_error(tmp_path: Path) -> None:
    project = Project.load(write_project(tmp_path, {"agents/helper.py": AGENT}))
    with pytest.raises(UnknownAgentError, match="helper"):
        await project.instance("nobody", "a")
