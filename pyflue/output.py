"""Typed output: a requested result type as a JSON schema, and the parsing of the model's answer.

Models with native structured output get the schema in the request and answer with JSON text;
others get it in the instructions and their JSON is extracted from the text. Non-object types
(``int``, ``list[str]``) are wrapped as ``{"result": ...}`` because providers want an object root.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from .models.base import OutputSchema

__all__ = ["OutputSpec", "output_spec"]

OUTPUT_NAME = "final_result"
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class OutputSpec:
    __slots__ = ("adapter", "schema", "wrapped")

    def __init__(self, output_type: Any) -> None:
        self.adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        schema = self.adapter.json_schema()
        self.wrapped = schema.get("type") != "object"
        if self.wrapped:
            defs = schema.pop("$defs", None)
            schema = {"type": "object", "properties": {"result": schema}, "required": ["result"]}
            if defs:
                schema["$defs"] = defs
        description = schema.pop("description", "") if not self.wrapped else ""
        self.schema = OutputSchema(OUTPUT_NAME, schema, description)

    def prompt(self) -> str:
        """The instruction for models without native structured output."""
        return (
            "Respond with only a JSON object (no prose, no code fence) that matches this JSON schema:\n"
            + json.dumps(self.schema.schema, separators=(",", ":"))
        )

    def parse(self, text: str) -> Any:
        """The validated value; raises ``ValueError`` (``ValidationError`` included) with the reason."""
        data = _extract_json(text)
        if self.wrapped:
            if not isinstance(data, dict) or "result" not in data:
                raise ValueError('expected a JSON object with a "result" key')
            data = data["result"]
        return self.adapter.validate_python(data)


@lru_cache(maxsize=256)
def _cached(output_type: Any) -> OutputSpec:
    return OutputSpec(output_type)


def output_spec(output_type: Any) -> OutputSpec:
    """The spec of a type, compiled once per type (hashable types are cached)."""
    try:
        return _cached(output_type)
    except TypeError:
        return OutputSpec(output_type)


def _extract_json(text: str) -> Any:
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for candidate in _FENCE.findall(text):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            return json.loads(text[start : end + 1])
        except ValueError:
            pass
    raise ValueError("the answer is not valid JSON")


def describe_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:10]
        )
    return str(exc)
