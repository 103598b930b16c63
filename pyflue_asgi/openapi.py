"""The OpenAPI 3.1 document, built from the route table and the body models: what it says is what
the routes do, because both come from the same entries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pyflue import __version__

from .routing import ApiRoute
from .schemas import ErrorEnvelope

__all__ = ["build"]

_REF = "#/components/schemas/{model}"
_REASONS = {
    400: "The body is not valid JSON",
    401: "A valid bearer token is required",
    404: "No such agent, workflow, run, dispatch or route",
    405: "Method not allowed",
    409: "The session is busy (multitask=reject), the prompt was aborted, or a dispatch key is taken",
    413: "The body is larger than the limit",
    415: "The body is not JSON",
    422: "A name, id, query parameter or body field is invalid",
    500: "Internal error",
    502: "The model provider failed",
    503: "The app is not serving (its lifespan has not started)",
    504: "The model provider timed out",
}


def build(routes: list[ApiRoute], *, auth: bool, title: str = "PyFlue") -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorEnvelope}
    for route in routes:
        if isinstance(route.body, type):
            models.add(route.body)
        models.update(m for m in route.answers.values() if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=_REF)
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, auth)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document


def _ref(model: type[BaseModel], refs: dict[Any, Any]) -> dict[str, Any]:
    return dict(refs[(model, "validation")])


def _operation(route: ApiRoute, refs: dict[Any, Any], auth: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.params:
        operation["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path" or p.required,
                "description": p.description,
                "schema": p.schema,
            }
            for p in route.params
        ]
    if route.body is not None:
        schema = _ref(route.body, refs) if isinstance(route.body, type) else route.body
        operation["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": schema}},
        }
    responses: dict[str, Any] = {}
    for status, model in route.answers.items():
        content: dict[str, Any] = {
            "application/json": {"schema": _ref(model, refs) if model else {"type": "object"}}
        }
        if route.sse and status == 200:
            content["text/event-stream"] = {"schema": {"type": "string"}}
        answer: dict[str, Any] = {"description": _describe(status), "content": content}
        if status in route.answer_headers:
            answer["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in route.answer_headers[status].items()
            }
        responses[str(status)] = answer
    if route.sse == "only" or (route.sse and 200 not in route.answers):
        responses["200"] = {
            "description": "server-sent events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    errors = set(route.errors) | {500}
    if route.body is not None:
        errors |= {400, 413, 415, 422}
    if not route.open:
        errors.add(503)
        if auth:
            errors.add(401)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _REASONS.get(status, "Error"),
            "content": {"application/json": {"schema": _ref(ErrorEnvelope, refs)}},
        }
    operation["responses"] = responses
    if route.open and auth:
        operation["security"] = []
    return operation


def _describe(status: int) -> str:
    return {200: "OK", 202: "Accepted"}.get(status, str(status))
