"""A small JSON-schema checker for skill arguments and results.

Skills declare their ``args`` and ``result`` as JSON schemas in their frontmatter. Checking values
against them needs only the common keywords, so this module implements those and no more:
``type`` (one or a list), ``enum``, ``const``, ``properties``, ``required``,
``additionalProperties`` (``false`` or a schema), ``items``, ``minLength``/``maxLength``,
``pattern``, ``minimum``/``maximum``, ``exclusiveMinimum``/``exclusiveMaximum``,
``minItems``/``maxItems``, ``anyOf``, ``oneOf`` and ``allOf``. Other keywords (``description``,
``format``, ``default``, ...) are annotations and ignored; ``$ref`` is refused when the schema is
loaded (:func:`check_schema`) rather than silently not checked.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["check_schema", "first_problem"]

_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
_SHOWN = 40


def check_schema(schema: Any) -> None:
    """Raise ``ValueError`` saying what is wrong when ``schema`` is not a schema this module can
    check (not an object, an unknown ``type``, a ``$ref``, a sub-schema that is not an object)."""
    _check(schema, "schema")


def _check(schema: Any, where: str) -> None:
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where} must be a JSON object, got {json.dumps(schema)[:_SHOWN]}")
    if "$ref" in schema:
        raise ValueError(f"{where}: '$ref' is not supported; write the sub-schema in place")
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in _TYPES:
            raise ValueError(f"{where}.type: unknown type {kind!r}; known: {', '.join(_TYPES)}")
    properties = schema.get("properties", {})
    if not isinstance(properties, Mapping):
        raise ValueError(f"{where}.properties must be a JSON object")
    for key, sub in properties.items():
        _check(sub, f"{where}.properties.{key}")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError(f"{where}.required must be a list of property names")
    for key in ("items", "additionalProperties"):
        sub = schema.get(key)
        if sub is not None and not isinstance(sub, bool):
            _check(sub, f"{where}.{key}")
    for key in ("anyOf", "oneOf", "allOf"):
        subs = schema.get(key)
        if subs is not None:
            if not isinstance(subs, list) or not subs:
                raise ValueError(f"{where}.{key} must be a non-empty list of schemas")
            for index, sub in enumerate(subs):
                _check(sub, f"{where}.{key}[{index}]")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise ValueError(f"{where}.enum must be a list")
    if "pattern" in schema:
        try:
            re.compile(schema["pattern"])
        except (re.error, TypeError) as exc:
            raise ValueError(f"{where}.pattern is not a regular expression: {exc}") from None


def first_problem(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    """The first way ``value`` fails ``schema`` as ``"<where.path>: <problem>"``, or ``None`` when it
    conforms. ``schema`` must have passed :func:`check_schema`."""
    kinds = schema.get("type")
    if kinds is not None:
        allowed = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, kind) for kind in allowed):
            return f"{where}: must be {' or '.join(allowed)}, got {_describe(value)}"
    if "const" in schema and not _equal(value, schema["const"]):
        return f"{where}: must be {json.dumps(schema['const'])[:_SHOWN]}"
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        options = ", ".join(json.dumps(o) for o in schema["enum"])
        return f"{where}: must be one of {options[:200]}"
    problem = _specific(value, schema, where)
    if problem is not None:
        return problem
    return _combined(value, schema, where)


def _specific(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return f"{where}: must be at least {schema['minLength']} characters"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return f"{where}: must be at most {schema['maxLength']} characters"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return f"{where}: must match the pattern {schema['pattern']!r}"
    elif _is(value, "number"):
        for key, words in _BOUNDS.items():
            bound: Any = schema.get(key)
            if _is(bound, "number") and not _within(value, key, bound):
                return f"{where}: must be {words} {bound}"
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{where}: must have at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where}: must have at most {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for index, item in enumerate(value):
                problem = first_problem(item, items, f"{where}[{index}]")
                if problem is not None:
                    return problem
        elif items is False and value:
            return f"{where}: must be empty"
    elif isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"{where}.{key}: is required"
        properties: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = properties.get(key)
            if sub is None:
                if extra is False:
                    known = ", ".join(properties) or "none"
                    return f"{where}.{key}: is not expected (known: {known})"
                sub = extra if isinstance(extra, Mapping) else None
            if sub is not None:
                problem = first_problem(item, sub, f"{where}.{key}")
                if problem is not None:
                    return problem
    return None


def _combined(value: Any, schema: Mapping[str, Any], where: str) -> str | None:
    for sub in schema.get("allOf", ()):
        problem = first_problem(value, sub, where)
        if problem is not None:
            return problem
    if "anyOf" in schema:
        problems = [first_problem(value, sub, where) for sub in schema["anyOf"]]
        if all(p is not None for p in problems):
            return f"{problems[0]} (and no other alternative matches)"
    if "oneOf" in schema:
        problems = [first_problem(value, sub, where) for sub in schema["oneOf"]]
        matches = sum(p is None for p in problems)
        if matches == 0:
            return f"{problems[0]} (and no other alternative matches)"
        if matches > 1:
            return f"{where}: matches {matches} alternatives of oneOf, expected exactly one"
    return None


_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}


def _within(value: float, key: str, bound: float) -> bool:
    if key == "minimum":
        return value >= bound
    if key == "maximum":
        return value <= bound
    if key == "exclusiveMinimum":
        return value > bound
    return value < bound


def _is(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "integer":
        return isinstance(value, int) or (math.isfinite(value) and value.is_integer())
    return True  # number


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def _describe(value: Any) -> str:
    for kind in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(value, kind):
            return kind
    return type(value).__name__
