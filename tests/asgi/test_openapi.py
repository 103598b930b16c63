"""The OpenAPI document describes what the routes do: schemathesis drives every operation with
generated requests (valid and invalid) against a real server, and every answer must be documented,
match its schema, and never be a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from pyflue_asgi import create_app
from tests.asgi._live import FILES, serve
from tests.core._workflow_helpers import write_project

OPERATIONS = {
    ("GET", "/health"),
    ("GET", "/skills"),
    ("POST", "/agents/{name}/{id}/dispatch"),
    ("GET", "/dispatches"),
    ("GET", "/dispatches/{dispatch_id}"),
    ("GET", "/dispatches/{dispatch_id}/events"),
    ("GET", "/dispatches/{dispatch_id}/stream"),
    ("POST", "/dispatches/{dispatch_id}/cancel"),
    ("GET", "/openapi.json"),
    ("GET", "/agents"),
    ("POST", "/agents/{name}/{id}"),
    ("POST", "/agents/{name}/{id}/abort"),
    ("GET", "/agents/{name}/instances"),
    ("GET", "/agents/{name}/{id}/sessions"),
    ("GET", "/agents/{name}/{id}/sessions/{session}/messages"),
    ("GET", "/workflows"),
    ("POST", "/workflows/{name}"),
    ("GET", "/runs"),
    ("GET", "/runs/{run_id}"),
    ("GET", "/runs/{run_id}/events"),
    ("GET", "/runs/{run_id}/stream"),
    ("POST", "/runs/{run_id}/cancel"),
}


@pytest.fixture(scope="module")
def fuzz_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A project with nothing that blocks (generated requests must all end)."""
    root = write_project(
        tmp_path_factory.mktemp("fuzz"), {k: FILES[k] for k in ("agents/echo.py", "workflows/hello.py")}
    )
    with serve(create_app(root, poll_interval=0.01, auth="t0ken")) as url:
        yield url


@pytest.fixture
def api_schema(fuzz_url: str) -> Any:
    document = httpx.get(fuzz_url + "/openapi.json", headers={"Authorization": "Bearer t0ken"}).json()
    return schemathesis.openapi.from_dict(document)


def test_the_document_lists_every_route(fuzz_url: str) -> None:
    document = httpx.get(fuzz_url + "/openapi.json", headers={"Authorization": "Bearer t0ken"}).json()
    assert document["openapi"] == "3.1.0"
    operations = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert operations == OPERATIONS
    prompt = document["paths"]["/agents/{name}/{id}"]["post"]
    assert set(prompt["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert prompt["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }


# No 5xx; every status, content type, header and body as documented. (Schema-valid but refused
# input, like an id with a non-printable character or a cursor that is not one, is a documented 4xx.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_generated_requests(api_schema: Any, fuzz_url: str, method: str, path: str) -> None:
    operation = api_schema[path][method]
    modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]

    @given(case=st.one_of(*(operation.as_strategy(generation_mode=m) for m in modes)))
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(base_url=fuzz_url, headers={"Authorization": "Bearer t0ken"}, checks=CHECKS)

    check()
