"""Glob patterns and text search shared by the backends: pure functions over names and bytes."""

from __future__ import annotations

import re

from .errors import SandboxError

__all__ = ["compile_glob", "compile_regex", "is_text", "replace_exact", "search_lines"]

#: Bytes looked at to tell text from binary (a NUL in them means binary, as grep and git decide).
_SNIFF = 8192
_MAX_LINE = 500


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex for a glob over ``/``-separated relative paths: ``*`` and ``?`` stay within a name,
    ``[...]`` is a character class, ``**`` matches any number of directories. A pattern without
    ``/`` matches names at any depth (``*.py`` finds ``src/a.py``), as people mean it."""
    if not isinstance(pattern, str) or not pattern or "\x00" in pattern or len(pattern) > 1000:
        raise SandboxError("a glob pattern must be a non-empty string of at most 1000 characters")
    body = pattern.lstrip("/")
    if "/" not in body and "**" not in body:
        body = "**/" + body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if body.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif body.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = body.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
                i += 1
                continue
            inner = body[i + 1 : end]
            negate = inner.startswith("!")
            inner = inner[1:] if negate else inner
            out.append("[" + ("^" if negate else "") + inner.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise SandboxError(f"invalid glob pattern {pattern!r}: {exc}") from None


def compile_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern or len(pattern) > 1000:
        raise SandboxError("a search pattern must be a non-empty string of at most 1000 characters")
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise SandboxError(f"invalid regular expression {pattern!r}: {exc}") from None


def is_text(data: bytes) -> bool:
    return b"\x00" not in data[:_SNIFF]


def search_lines(data: bytes, regex: re.Pattern[str], limit: int) -> list[tuple[int, str]]:
    """``(line number, line)`` for the first ``limit`` lines of ``data`` that ``regex`` matches;
    long lines are cut to 500 characters."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if regex.search(line):
            found.append((number, line if len(line) <= _MAX_LINE else line[:_MAX_LINE] + "..."))
            if len(found) >= limit:
                break
    return found


def replace_exact(data: bytes, path: str, old: str, new: str, replace_all: bool) -> tuple[bytes, int]:
    """``data`` (UTF-8 text) with ``old`` replaced by ``new``, and the number of replacements.
    ``old`` must occur, and exactly once unless ``replace_all``: an edit never lands somewhere the
    caller did not mean."""
    if not isinstance(old, str) or not isinstance(new, str):
        raise SandboxError("edit takes the old and the new text as strings")
    if not old:
        raise SandboxError("the text to replace is empty; use write to create or overwrite a file")
    if old == new:
        raise SandboxError("the old and the new text are the same; nothing to edit")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SandboxError(f"{path} is not UTF-8 text; it cannot be edited by text replacement") from None
    count = text.count(old)
    if count == 0:
        raise SandboxError(f"the text to replace was not found in {path}; read the file and copy it exactly")
    if count > 1 and not replace_all:
        raise SandboxError(
            f"the text to replace occurs {count} times in {path}; include more surrounding lines to make "
            "it unique, or set replace_all"
        )
    return text.replace(old, new).encode("utf-8"), count
