"""The project the dashboard tests serve: the quickstart example plus a few workflows and agents that
make the cases the pages must handle (a run that waits for the test, one that never ends, one that
fails, a tool whose result is markup, a run of thousands of events)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"

#: A tool result and a log line that would run script if the page ever parsed data as HTML.
MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b>'

FILES = {
    "agents/marker.py": f'''
        """Returns markup from its tool; the page must show it as text."""
        from pyflue import create_agent, define_tool

        @define_tool
        def fetch_page() -> str:
            """Fetch the page."""
            return {MARKUP!r}

        default = create_agent(lambda ctx: {{"model": "test", "tools": [fetch_page]}})
        ''',
    "workflows/markup.py": f'''
        """Prompts the marker agent, whose tool returns markup."""
        async def run(ctx):
            ctx.log.info({MARKUP!r})
            harness = await ctx.init("marker")
            session = await harness.session()
            answer = await session.prompt("fetch it")
            return {{"answer": answer.text}}
        ''',
    "workflows/hello.py": '''
        """Greets someone."""
        async def run(ctx):
            return {"greeting": "hello " + str(ctx.payload.get("name"))}
        ''',
    "workflows/gated.py": '''
        """Logs `count` lines, waits for the file `release-<tag>` in the project, then logs as many again."""
        import anyio
        from pathlib import Path

        ROOT = Path(__file__).resolve().parent.parent

        async def run(ctx):
            count = ctx.payload.get("count", 3)
            for i in range(count):
                ctx.log.info("before", i=i)
            while not await anyio.Path(ROOT / f"release-{ctx.payload['tag']}").exists():
                await anyio.sleep(0.02)
            for i in range(count):
                ctx.log.info("after", i=i)
            return {"count": count}
        ''',
    "workflows/stuck.py": '''
        """Never ends by itself."""
        import anyio

        async def run(ctx):
            ctx.log.info("waiting")
            await anyio.sleep(3600)
        ''',
    "workflows/boom.py": '''
        """Fails."""
        async def run(ctx):
            raise ValueError("the boom workflow always fails")
        ''',
    "workflows/big.py": '''
        """Logs `count` lines."""
        async def run(ctx):
            for i in range(ctx.payload["count"]):
                ctx.log.info("line", i=i)
            return {"lines": ctx.payload["count"]}
        ''',
}


def make_project(root: Path) -> Path:
    """The quickstart copied to ``root``, with the files above added."""
    shutil.copytree(QUICKSTART, root)
    for name, text in FILES.items():
        path = root / name
        path.write_text(textwrap.dedent(text).lstrip())
    return root
