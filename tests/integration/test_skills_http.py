"""``GET /skills`` over a real uvicorn, and its place in the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

import httpx

from pyflue_asgi import create_app
from tests.asgi._live import serve


def test_get_skills_lists_the_project_skills(tmp_path: Path) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "echo.py").write_text(
        "from pyflue import create_agent\ndefault = create_agent(lambda ctx: {'model': 'test'})\n"
    )
    (tmp_path / "skills" / "review").mkdir(parents=True)
    (tmp_path / "skills" / "review" / "SKILL.md").write_text(
        "---\ndescription: Review a diff.\n"
        'args: {"type": "object", "properties": {"diff": {"type": "string"}}}\n'
        "---\nCheck every line.\n"
    )
    (tmp_path / "skills" / "summarize.md").write_text("---\ndescription: Summarise.\n---\nThree bullets.\n")
    with serve(create_app(tmp_path)) as url, httpx.Client(base_url=url) as client:
        answer = client.get("/skills")
        document = client.get("/openapi.json").json()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "skills": [
            {
                "name": "review",
                "description": "Review a diff.",
                "args": {"type": "object", "properties": {"diff": {"type": "string"}}},
                "result": None,
            },
            {"name": "summarize", "description": "Summarise.", "args": None, "result": None},
        ]
    }
    operation = document["paths"]["/skills"]["get"]
    assert operation["operationId"] == "listSkills"
    assert "200" in operation["responses"]
