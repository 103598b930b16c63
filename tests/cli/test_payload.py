"""The ``--payload`` parser, in process: strict JSON or one clear line, whatever the text."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyflue_cli.exits import USAGE, CliError
from pyflue_cli.payload import read_payload

from .conftest import assert_one_line_error, cli

_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_not_json = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])


@given(json_values.filter(lambda v: v is not None))
def test_every_json_value_but_null_comes_back_as_it_was(value: Any) -> None:
    assert read_payload(json.dumps(value)) == value
    assert read_payload("-", stdin=io.StringIO(json.dumps(value, indent=2))) == value


@given(st.text(max_size=200))
def test_any_text_is_strict_json_or_one_bounded_line(text: str) -> None:
    try:
        value = read_payload(text, stdin=io.StringIO(""))
    except CliError as exc:
        message = str(exc)
        assert exc.code == USAGE and "\n" not in message and len(message) < 300
        return
    assert value is not None
    json.dumps(value, allow_nan=False)  # whatever is accepted can be written back as valid JSON


_MARK = "\x00mark"
# A JSON value with the marker somewhere in it: alone, in a list among other values, under a key.
_with_mark = st.recursive(
    st.just(_MARK),
    lambda inner: (
        st.tuples(st.lists(json_values, max_size=3), inner).map(lambda t: [*t[0], t[1]])
        | st.tuples(st.dictionaries(st.text(), json_values, max_size=3), st.text(), inner).map(
            lambda t: {**t[0], t[1]: t[2]}
        )
    ),
    max_leaves=5,
)


@given(_with_mark, _not_json)
def test_nan_and_infinity_are_refused_wherever_they_are(value: Any, constant: str) -> None:
    text = json.dumps(value).replace(json.dumps(_MARK), constant)
    with pytest.raises(CliError) as caught:
        read_payload(text)
    assert "JSON has no NaN or Infinity" in str(caught.value) and "\n" not in str(caught.value)


def test_null_is_refused_with_what_to_do_instead() -> None:
    with pytest.raises(CliError, match="leave --payload out"):
        read_payload("null")
    with pytest.raises(CliError, match="standard input is null"):
        read_payload("-", stdin=io.StringIO(" null\n"))


def test_deep_nesting_is_one_line() -> None:
    with pytest.raises(CliError, match="nested too deeply"):
        read_payload("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [("null", "leave --payload out"), ('{"a": NaN}', "NaN is not a JSON value"), ("[-Infinity]", "Infinity")],
)
def test_the_cli_refuses_them_before_anything_runs(payload: str, needle: str, tmp_path: Path) -> None:
    assert_one_line_error(cli("run", "anything", "--payload", payload, cwd=tmp_path), 2, needle)
