"""The frontmatter parser: key/value lines, quoted and JSON values, and strict errors with lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyflue.errors import ConfigError
from pyflue.skills import FrontmatterError
from pyflue.skills.frontmatter import parse_document

PATH = Path("skills/x.md")


def test_keys_values_and_body() -> None:
    doc = parse_document(
        "---\n"
        "name: x\n"
        "# a comment\n"
        "\n"
        'quoted: "a: b \\"c\\""\n'
        "single: 'it''s'\n"
        'args: {"type": "object",\n'
        '  "properties": {"n": {"type": "integer"}}}\n'
        "list: [1, 2]\n"
        "---\n"
        "\nThe body.\n\nSecond paragraph.\n",
        PATH,
    )
    assert doc.meta == {
        "name": "x",
        "quoted": 'a: b "c"',
        "single": "it's",
        "args": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "list": [1, 2],
    }
    assert doc.lines == {"name": 2, "quoted": 5, "single": 6, "args": 7, "list": 9}
    assert doc.body == "The body.\n\nSecond paragraph."


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("name: x\n", 1, "must start with a '---'"),
        ("---\nname: x\n", 1, "never closed"),
        ("---\nname: x\n  indented: y\n---\n", 3, "indented lines"),
        ("---\nname: x\n- item\n---\n", 3, "expected 'key: value'"),
        ("---\nname: x\nname: y\n---\n", 3, "repeated (first on line 2)"),
        ('---\nargs: {"type": \n---\nbody', 2, "JSON value does not parse"),
        ("---\ndescription: >\n---\n", 2, "block values are not supported"),
        ('---\nd: "open\n---\n', 2, "not a valid JSON string"),
        ("---\nd: 'open\n---\n", 2, "quote is not closed"),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(FrontmatterError) as info:
        parse_document(text, PATH)
    assert isinstance(info.value, ConfigError)
    assert info.value.line == line
    assert str(info.value).startswith(f"{PATH}:{line}: ")
    assert words in str(info.value)


def test_frontmatter_may_be_optional() -> None:
    doc = parse_document("Just instructions.\n", PATH, require_frontmatter=False)
    assert doc.meta == {} and doc.body == "Just instructions."


_keys = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)
_texts = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_texts, inner, max_size=3),
    max_leaves=8,
)


_values = st.one_of(_texts, st.dictionaries(_texts, _json, max_size=3))


@given(st.dictionaries(_keys, _values, max_size=6), _texts)
def test_written_values_read_back(meta: dict[str, object], body: str) -> None:
    """Any text (written quoted) and any JSON object (written as JSON) reads back as written."""
    lines = [f"{key}: {json.dumps(value)}" for key, value in meta.items()]
    text = "---\n" + "\n".join(lines) + "\n---\n" + body
    doc = parse_document(text, PATH)
    assert doc.meta == meta
    assert doc.body == "\n".join(body.splitlines()).strip()
