"""The small JSON-schema checker agrees with the reference implementation on the keywords it
supports, and refuses schemas it cannot check."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyflue.skills.schema import check_schema, first_problem

_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["", "a", "abc", "42", "hello world"]),
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abcd"), inner, max_size=4),
    max_leaves=10,
)
_types = st.sampled_from(["string", "integer", "number", "boolean", "object", "array", "null"])


def _schemas() -> st.SearchStrategy[dict[str, Any]]:
    base = st.fixed_dictionaries(
        {},
        optional={
            "type": _types | st.lists(_types, min_size=1, max_size=3, unique=True),
            "enum": st.lists(_leaf, min_size=1, max_size=3),
            "minLength": st.integers(0, 4),
            "maxLength": st.integers(0, 4),
            "pattern": st.sampled_from(["^a", "[0-9]", "o w"]),
            "minimum": st.integers(-3, 3),
            "exclusiveMaximum": st.integers(-3, 3),
            "minItems": st.integers(0, 3),
            "maxItems": st.integers(0, 3),
        },
    )
    return st.recursive(
        base,
        lambda inner: st.fixed_dictionaries(
            {},
            optional={
                "type": _types,
                "properties": st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
                "required": st.lists(st.sampled_from("abcd"), max_size=2, unique=True),
                "additionalProperties": st.booleans() | inner,
                "items": inner,
                "anyOf": st.lists(inner, min_size=1, max_size=2),
                "oneOf": st.lists(inner, min_size=1, max_size=2),
                "allOf": st.lists(inner, min_size=1, max_size=2),
            },
        ),
        max_leaves=5,
    )


@settings(max_examples=300, deadline=None)
@given(_schemas(), _values)
def test_agrees_with_jsonschema(schema: dict[str, Any], value: Any) -> None:
    check_schema(schema)
    expected = jsonschema.Draft202012Validator(schema).is_valid(value)
    assert (first_problem(value, schema, "args") is None) == expected


def test_problems_name_the_field() -> None:
    schema = {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string"}},
            "depth": {"type": "integer", "minimum": 1},
        },
        "required": ["files"],
        "additionalProperties": False,
    }
    assert first_problem({"files": ["a"], "depth": 2}, schema, "args") is None
    assert first_problem({}, schema, "args") == "args.files: is required"
    assert first_problem({"files": ["a", 3]}, schema, "args") == "args.files[1]: must be string, got integer"
    assert first_problem({"files": [], "depth": 0}, schema, "args") == "args.depth: must be at least 1"
    expected = "args.x: is not expected (known: files, depth)"
    assert first_problem({"files": [], "x": 1}, schema, "args") == expected
    assert first_problem(True, {"type": "integer"}, "v") == "v: must be integer, got boolean"


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ([], "must be a JSON object"),
        ({"type": "text"}, "unknown type 'text'"),
        ({"properties": {"a": {"$ref": "#/x"}}}, "schema.properties.a: '$ref' is not supported"),
        ({"required": "a"}, "required must be a list"),
        ({"anyOf": []}, "non-empty list"),
        ({"pattern": "("}, "not a regular expression"),
        ({"items": 3}, "schema.items must be a JSON object"),
    ],
)
def test_unusable_schemas_are_refused(schema: Any, words: str) -> None:
    with pytest.raises(ValueError) as info:
        check_schema(schema)
    assert words in str(info.value)
