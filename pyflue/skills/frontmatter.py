"""Markdown documents with a small frontmatter: ``key: value`` lines between ``---`` fences.

::

    ---
    name: review
    description: Review a diff for bugs and risky changes.
    args: {"type": "object", "properties": {"diff": {"type": "string"}}, "required": ["diff"]}
    ---
    The instructions (the body).

It is YAML-like on purpose and nothing more: one key per line; a value is plain text to the end of
the line, a quoted string (``"..."`` is JSON, ``'...'`` is literal), or JSON starting with ``{`` or
``[`` (which may continue over the following lines until it parses). Blank lines and lines starting
with ``#`` are skipped. Anything else (indentation, YAML block scalars, lists written with ``-``) is
a :class:`FrontmatterError` naming the file and the line, so a document never means something other
than what it seems to say. No YAML library is needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["Document", "FrontmatterError", "parse_document"]

_FENCE = "---"
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:(.*)$")
_SHOWN = 60


class FrontmatterError(ConfigError):
    """A skill, role or instructions file is not written as expected. ``path`` and ``line`` (1-based,
    or ``None`` for the whole file) say where; ``str()`` starts with ``<path>:<line>:``."""

    def __init__(self, path: Path, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed document: its frontmatter values, the line each key is on, and the body."""

    path: Path
    meta: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)
    body: str = ""

    def error(self, key: str | None, problem: str) -> FrontmatterError:
        """A :class:`FrontmatterError` at ``key``'s line (the whole file when ``key`` is ``None``)."""
        return FrontmatterError(self.path, self.lines.get(key) if key else None, problem)


def parse_document(text: str, path: Path, *, require_frontmatter: bool = True) -> Document:
    """Split ``text`` (the contents of ``path``) into frontmatter and body.

    Raises :class:`FrontmatterError` for a missing or unclosed frontmatter (when
    ``require_frontmatter``), a line that is not ``key: value``, a repeated key, or a JSON value
    that does not parse.
    """
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != _FENCE:
        if require_frontmatter:
            raise FrontmatterError(path, 1, "must start with a '---' line opening the frontmatter")
        return Document(path, {}, {}, text.strip())
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == _FENCE)
    except StopIteration:
        raise FrontmatterError(path, 1, "the frontmatter opened here is never closed by '---'") from None
    meta: dict[str, Any] = {}
    where: dict[str, int] = {}
    index = 1
    while index < end:
        number, line = index + 1, lines[index]
        index += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[:1].isspace():
            raise FrontmatterError(
                path, number, "indented lines are not supported; write one 'key: value' per line"
            )
        match = _KEY.match(line)
        if match is None:
            raise FrontmatterError(path, number, f"expected 'key: value', got {_cut(stripped)}")
        key, raw = match.group(1), match.group(2).strip()
        if key in meta:
            raise FrontmatterError(path, number, f"key {key!r} is repeated (first on line {where[key]})")
        if raw[:1] in ("{", "["):
            value, index = _json(lines, index, end, raw, path, number)
        else:
            value = _scalar(raw, path, number)
        meta[key], where[key] = value, number
    body = "\n".join(lines[end + 1 :]).strip()
    return Document(path, meta, where, body)


def _json(lines: list[str], index: int, end: int, raw: str, path: Path, number: int) -> tuple[Any, int]:
    """A JSON value starting on line ``number``, continued over the next lines until it parses."""
    text = raw
    while True:
        try:
            return json.loads(text), index
        except ValueError as exc:
            if index >= end:
                raise FrontmatterError(path, number, f"the JSON value does not parse: {exc}") from None
        text += "\n" + lines[index]
        index += 1


def _scalar(raw: str, path: Path, number: int) -> str:
    if raw in ("|", ">", "|-", ">-", "|+", ">+"):
        raise FrontmatterError(
            path, number, "YAML block values are not supported; write the value on the same line"
        )
    if raw.startswith('"'):
        try:
            value = json.loads(raw)
        except ValueError:
            problem = f"the quoted value is not a valid JSON string: {_cut(raw)}"
            raise FrontmatterError(path, number, problem) from None
        if not isinstance(value, str):
            raise FrontmatterError(path, number, f"the quoted value is not a string: {_cut(raw)}")
        return value
    if raw.startswith("'"):
        if len(raw) < 2 or not raw.endswith("'"):
            raise FrontmatterError(path, number, f"the quote is not closed: {_cut(raw)}")
        return raw[1:-1].replace("''", "'")
    return raw


def _cut(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")
