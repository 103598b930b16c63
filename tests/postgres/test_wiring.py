"""A database URL moves a project's sessions, runs and dispatches to PostgreSQL: no SQLite file."""

from __future__ import annotations

from pathlib import Path

from pyflue import Dispatcher, Project, Runtime, dispatch, get_run, wait_dispatch

AGENT = "from pyflue import create_agent\ndefault = create_agent(lambda ctx: {'model': 'test'})\n"
WORKFLOW = """\
from pyflue import create_agent

agent = create_agent(lambda ctx: {"model": "test"})

async def run(ctx):
    session = await (await ctx.init(agent)).session()
    return {"answer": (await session.prompt("hi")).text}
"""


async def test_a_database_url_keeps_the_project_in_postgres(tmp_path: Path, postgres_url: str) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "helper.py").write_text(AGENT)
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "hello.py").write_text(WORKFLOW)
    async with Runtime(database_url=postgres_url):
        project = Project.load(tmp_path)
        assert type(project.run_store).__name__ == "PostgresRunStore"
        assert type(project.session_store).__name__ == "PostgresSessionStore"
        record = await project.run("hello", {})
        assert record.status == "completed", record.error
        assert await get_run(record.run_id, project=project) == record

        receipt = await dispatch("helper", id=f"case-{record.run_id}", input="hi", project=project)
        async with Dispatcher(project, poll_interval=0.05):
            delivered = await wait_dispatch(receipt.dispatch_id, timeout=20, project=project)
        assert delivered.status == "delivered"
        session = await (await project.instance("helper", f"case-{record.run_id}")).session()
        assert len(session.history) == 2
    assert not (tmp_path / ".pyflue" / "pyflue.db").exists()
