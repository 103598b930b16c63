"""The model-facing file and shell tools: ``read``, ``write``, ``edit``, ``grep``, ``glob``, ``bash``.

Each works on the calling agent's sandbox (``ToolContext.sandbox``, or the one the tools were bound
to), through :class:`SandboxFS`, so the checks and the ``fs_write`` / ``shell_exec`` events are the
same as for code. Results are bounded; a cut result says so and how to see the rest. Failures are
``ToolError`` subclasses, which the turn loop hands back to the model as error results.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from ..errors import ConfigError, ToolError
from ..tools import Tool, ToolContext, define_tool
from .fs import SandboxFS, redact
from .protocol import ExecResult, Sandbox

__all__ = ["TOOL_NAMES", "sandbox_tools"]

TOOL_NAMES = ("read", "write", "edit", "grep", "glob", "bash")
#: Characters of one tool result the model reads at most.
MAX_RESULT_CHARS = 30_000
_MAX_LINE_CHARS = 2_000
_GREP_LIMIT = 200
_GLOB_LIMIT = 500


def _bounded(text: str, hint: str) -> str:
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return (
        f"{text[:MAX_RESULT_CHARS]}\n[... truncated: {len(text) - MAX_RESULT_CHARS} more characters; {hint}]"
    )


def sandbox_tools(sandbox: Sandbox | None = None, *, include: Collection[str] | None = None) -> list[Tool]:
    """The file and shell tools, as a list for ``tools=[*sandbox_tools()]``.

    Unbound (the default), they work on the calling agent's sandbox (``ToolContext.sandbox``).
    Bound to ``sandbox``, they always use that one; then ``bash`` is left out when that sandbox
    cannot run commands (no shell, or a policy with the shell off), so the model is not offered a
    tool that can only fail. ``include`` picks tools by name."""
    names = TOOL_NAMES if include is None else tuple(include)
    unknown = [n for n in names if n not in TOOL_NAMES]
    if unknown:
        raise ConfigError(
            f"sandbox_tools(include=...): unknown tools {unknown}; known: {', '.join(TOOL_NAMES)}"
        )
    if sandbox is not None and not isinstance(sandbox, Sandbox):
        raise ConfigError(f"sandbox_tools(sandbox) takes a Sandbox, got {type(sandbox).__name__}")
    if sandbox is not None and not (sandbox.has_shell and sandbox.policy.shell):
        names = tuple(n for n in names if n != "bash")

    def fs(ctx: ToolContext) -> SandboxFS:
        chosen = sandbox if sandbox is not None else ctx.sandbox
        if chosen is None:
            raise ToolError("this agent has no sandbox; give it one with sandbox= in its config")
        if not isinstance(chosen, Sandbox):
            raise ToolError(
                f"this agent's sandbox ({type(chosen).__name__}) does not implement the Sandbox protocol"
            )
        return SandboxFS(chosen, ctx.emit)

    async def read(
        ctx: ToolContext,
        path: str,
        offset: int = 1,
        limit: int = 2000,
    ) -> str:
        """Read a text file from the workspace, with line numbers.

        Args:
            path: File path in the workspace, e.g. "src/app.py" ("/" is the workspace root).
            offset: First line to show (1-based); use it to page through long files.
            limit: How many lines to show (at most 5000).
        """
        if offset < 1 or not 1 <= limit <= 5000:
            raise ToolError("offset must be 1 or more and limit between 1 and 5000")
        text = await fs(ctx).read(path)
        lines = text.splitlines()
        if not lines:
            return "(empty file)"
        chosen = lines[offset - 1 : offset - 1 + limit]
        if not chosen:
            return f"(the file has {len(lines)} lines; offset {offset} is past its end)"
        shown = [f"{offset + i:>6}\t{_cut_line(line)}" for i, line in enumerate(chosen)]
        out: list[str] = []
        size = 0
        for line in shown:
            size += len(line) + 1
            if size > MAX_RESULT_CHARS:
                break
            out.append(line)
        last = offset + len(out) - 1
        if last < len(lines):
            out.append(f"[... truncated: the file has {len(lines)} lines; read again with offset={last + 1}]")
        return "\n".join(out)

    async def write(ctx: ToolContext, path: str, content: str) -> str:
        """Create or overwrite a file in the workspace with the given text (parent directories are
        created). To change part of an existing file, prefer edit.

        Args:
            path: File path in the workspace, e.g. "notes/todo.md".
            content: The file's complete new content.
        """
        written = await fs(ctx).write(path, content)
        return f"wrote {written} bytes to {path}"

    async def edit(
        ctx: ToolContext, path: str, old_string: str, new_string: str, replace_all: bool = False
    ) -> str:
        """Replace exact text in a file. old_string must match the file exactly (whitespace
        included) and occur exactly once, unless replace_all is true; read the file first.

        Args:
            path: File path in the workspace.
            old_string: The exact text to replace; include surrounding lines to make it unique.
            new_string: The text to put in its place.
            replace_all: Replace every occurrence instead of requiring exactly one.
        """
        count = await fs(ctx).edit(path, old_string, new_string, replace_all=replace_all)
        return f"replaced {count} occurrence{'s' if count != 1 else ''} in {path}"

    async def grep(
        ctx: ToolContext, pattern: str, path: str = "/", include: str | None = None, ignore_case: bool = False
    ) -> str:
        """Search file contents with a regular expression (Python syntax); prints path:line: text.

        Args:
            pattern: Regular expression, e.g. "def \\w+_handler".
            path: Directory or file to search, default the whole workspace.
            include: Only files whose path matches this glob, e.g. "*.py".
            ignore_case: Match regardless of case.
        """
        matches = await fs(ctx).grep(
            pattern, path, include=include, ignore_case=ignore_case, limit=_GREP_LIMIT
        )
        if not matches:
            return "no matches"
        text = "\n".join(f"{m.path}:{m.line}: {m.text}" for m in matches)
        if len(matches) >= _GREP_LIMIT:
            text += f"\n[... stopped at {_GREP_LIMIT} matches; narrow the pattern, the path or include]"
        return _bounded(text, "narrow the pattern, the path or include")

    async def glob(ctx: ToolContext, pattern: str, path: str = "/") -> str:
        """Find files and directories by name pattern: * and ? within a name, ** across
        directories (e.g. "**/*.py", "src/*.ts"). A pattern without "/" matches at any depth.

        Args:
            pattern: Glob pattern.
            path: Directory to search under, default the whole workspace.
        """
        found = await fs(ctx).glob(pattern, path, limit=_GLOB_LIMIT + 1)
        if not found:
            return "no files match"
        text = "\n".join(found[:_GLOB_LIMIT])
        if len(found) > _GLOB_LIMIT:
            text += f"\n[... stopped at {_GLOB_LIMIT} paths; use a narrower pattern or path]"
        return _bounded(text, "use a narrower pattern or path")

    async def bash(ctx: ToolContext, command: str, timeout: float | None = None) -> str:
        """Run a command in the workspace directory and return its exit code and output. The
        workspace's policy decides which programs may run and whether pipes, ';', '&&',
        redirections or substitutions are allowed; a refused command says why. Commands see a
        clean environment, no host secrets.

        Args:
            command: The command line, e.g. "ls -la src" or "git status".
            timeout: Seconds before the command is killed (capped by the policy).
        """
        if timeout is not None and not 0 < timeout <= 3600:
            raise ToolError("timeout must be between 0 and 3600 seconds")
        workspace = fs(ctx)
        result = await workspace.shell(command, timeout=timeout)
        return _shell_text(result, workspace.sandbox.policy.secrets)

    functions: dict[str, Callable[..., Any]] = {
        "read": read,
        "write": write,
        "edit": edit,
        "grep": grep,
        "glob": glob,
        "bash": bash,
    }
    return [define_tool(functions[name]) for name in names]


def _cut_line(line: str) -> str:
    return line if len(line) <= _MAX_LINE_CHARS else line[:_MAX_LINE_CHARS] + " [line cut]"


def _shell_text(result: ExecResult, secrets: object) -> str:
    if result.timed_out:
        head = f"timed out after {result.duration_ms / 1000:.1f}s; the command and its children were killed"
    else:
        head = f"exit code: {result.exit_code}"
    parts = [head]
    if result.stdout:
        parts.append("stdout:\n" + result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("stderr:\n" + result.stderr.rstrip("\n"))
    if not result.stdout and not result.stderr:
        parts.append("(no output)")
    if result.truncated:
        parts.append("[output was cut to the policy's limit; redirect to a file and read parts of it]")
    text = redact("\n".join(parts), secrets)
    return _bounded(text, "redirect the output to a file and read parts of it")
