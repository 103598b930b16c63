"""Subagent tasks: delegate work to a fresh, isolated child session.

``session.task(input, agent="reviewer")`` runs the subagent ``reviewer`` (a profile in the agent's
``subagents``) in a new child session: its own history, which starts empty, so the child never sees
the parent's conversation; the parent sees only the task's final result. With no ``agent``, the
child runs the parent's own config in a fresh context.

What a child inherits (as TypeScript Flue defines it): its instructions, tools and subagents come
from the profile only; model, model settings, compaction and ``max_turns`` fall back to the parent's
when the profile leaves them unset (the model to the one the parent operation is running with).
Limits that protect the process (``max_task_depth``, ``output_retries``, ``tool_timeout``) are the
parent's.

Correlation: the task is an operation of its own (``kind="task"``) on the child session, with a new
operation id and the parent's operation id as ``parent_id``; its events go to the parent's bus (same
``run_id``, one ``seq`` sequence) with the child's ``session_id``, so a UI nests them under the
parent. ``task_start`` / ``task_end`` are emitted on the parent's operation. Child sessions are
stored under the parent's agent and instance as ``task:<task operation id>``, so the child's whole
conversation can be read back from the store.

Two ways to start a task:

- From a tool of a running operation (the built-in ``task`` tool the model calls, or a user tool
  calling ``ctx.session.task(...)``): the task joins that operation. It runs inside the operation's
  cancel scope (aborting the parent aborts it), its usage rolls up into the operation's usage, and
  the parent's history gets the tool call and its result only. Tasks of one turn run concurrently.
- Called directly, outside any operation of that session: the task is itself an operation of kind
  ``task`` on the parent session. It waits its turn behind the operations queued before it (history
  stays linear), ``session.abort()`` cancels it, and on success the parent's history gets two
  messages: the task's input (marked as a delegated task) and its final result (an assistant
  message), so later prompts can refer to the result. A failed task records nothing.

Depth is limited by ``max_task_depth`` (default 3): a task at a deeper level raises
``TaskDepthError``; the ``task`` tool is not offered to an agent that is already at the limit.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic_core import to_jsonable_python

from .agent import AgentHarness
from .errors import AbortedError, ConfigError, TaskDepthError, error_payload
from .events import Event
from .ids import new_operation_id
from .loop import current_turns
from .models.base import Model, ModelRequest, Usage
from .models.messages import AssistantMessage, TextPart, UserMessage, user_parts
from .models.registry import resolve_model
from .profiles import AgentProfile, find_profile
from .tools import Tool, ToolContext, define_tool

if TYPE_CHECKING:
    from .config import AgentConfig
    from .loop import Turns
    from .session import PromptResult, Session

__all__ = ["run_task", "same_session", "side_operation", "task_tool"]

T = TypeVar("T")
Emit = Callable[[str, dict[str, Any]], Event | None]

TASK_TOOL = "task"


async def run_task(
    session: Session,
    input: str | list[Any],
    *,
    agent: str | None = None,
    result: Any = None,
    call_id: str | None = None,
) -> PromptResult:
    """Run ``input`` as a task of ``session`` (see the module docs); returns the child's
    :class:`~pyflue.session.PromptResult` (typed ``.output`` when ``result=`` is a type).

    Raises ``UnknownAgentError`` (listing the available subagents) for an unknown ``agent``,
    ``TaskDepthError`` past ``max_task_depth``, and whatever the child's operation raised.
    ``call_id`` names the tool call that started the task (the built-in ``task`` tool passes it), so
    ``task_start`` links the task to that call explicitly.
    """
    harness = session.harness
    profile = find_profile(harness.config.subagents, agent, harness.name) if agent is not None else None
    depth = harness.depth + 1
    if depth > harness.config.max_task_depth:
        raise TaskDepthError(
            f"agent {harness.name!r}: a task at depth {depth} exceeds max_task_depth="
            f"{harness.config.max_task_depth}; raise max_task_depth or delegate less deeply"
        )
    user_parts(input)  # a malformed input fails here, before any event
    running = current_turns()
    if running is not None and same_session(running.session, session):
        return await _joined(running, profile, input, result, call_id)

    async def body(emit: Emit, operation_id: str, spent: Spent) -> tuple[PromptResult, str | None]:
        child = await _child(session, profile, depth, None, operation_id, emit, input, result, spent)
        await _record(session, profile, input, child)
        return child, child.text

    return await side_operation(session, "task", _describe(input, agent), body)


async def _joined(
    running: Turns, profile: AgentProfile | None, input: str | list[Any], result: Any, call_id: str | None
) -> PromptResult:
    """A task started by a tool: part of the running operation, its usage rolled up into it."""
    spent = Spent()
    harness = running.session.harness
    try:
        return await _child(
            running.session,
            profile,
            harness.depth + 1,
            running.model,
            running.operation_id,
            running.emit,
            input,
            result,
            spent,
            call_id,
        )
    finally:
        running.usage = running.usage + spent.usage


async def _child(
    parent: Session,
    profile: AgentProfile | None,
    depth: int,
    parent_model: Model | None,
    parent_operation: str,
    emit: Emit,
    input: str | list[Any],
    result: Any,
    spent: Spent,
    call_id: str | None = None,
) -> PromptResult:
    """Run the child operation, reporting ``task_start`` / ``task_end`` through ``emit`` (the parent
    operation's correlation) and its usage in ``spent`` whatever the outcome."""
    harness = parent.harness
    if profile is not None and profile.model is not None:
        model = _profile_model(harness, profile)
    else:
        model = parent_model or harness.model  # the model the parent runs with
    child_harness = _TaskHarness(
        name=harness.name,
        instance_id=harness.id,
        config=_child_config(harness.config, profile),
        model=model,
        store=harness.store,
        bus=harness.bus,
        context=harness.context,
        depth=depth,
    )
    task_id = new_operation_id()
    name = profile.name if profile is not None else None
    start: dict[str, Any] = {"agent": name, "task_operation_id": task_id}
    if call_id is not None:
        start["call_id"] = call_id
    emit("task_start", start)
    started = time.perf_counter()
    try:
        child = await child_harness.session(f"task:{task_id}")
        res = await child._operate(
            "task", input, result, None, None, stream=False, parent_id=parent_operation, operation_id=task_id
        )
    except BaseException as exc:
        spent.usage = child_harness.usage()
        emit(
            "task_end",
            {
                "agent": name,
                "task_operation_id": task_id,
                "status": _status(exc),
                "usage": spent.usage.to_dict(),
                "error": error_payload(exc),
                "duration_ms": _ms(started),
            },
        )
        raise
    spent.usage = res.usage
    data: dict[str, Any] = {
        "agent": name,
        "task_operation_id": task_id,
        "status": "completed",
        "text": res.text,
        "usage": res.usage.to_dict(),
        "duration_ms": _ms(started),
    }
    if result is not None:
        data["result"] = to_jsonable_python(res.output, fallback=str)
    emit("task_end", data)
    return res


def same_session(a: Session, b: Session) -> bool:
    """Whether two session objects are one stored session (two harnesses of one instance share it)."""
    return a is b or (a.harness.store is b.harness.store and a.key == b.key)


def _status(exc: BaseException) -> str:
    if isinstance(exc, AbortedError):
        return "aborted"
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "failed"


def _child_config(parent: AgentConfig, profile: AgentProfile | None) -> AgentConfig:
    """The child's config: the parent's as is for a plain task; for a profile, its instructions,
    tools and subagents only, the rest defaulting to the parent's."""
    if profile is None:
        return parent
    return parent.model_copy(
        update={
            "instructions": profile.instructions,
            "tools": list(profile.tools),
            "subagents": list(profile.subagents),
            "model": profile.model if profile.model is not None else parent.model,
            "model_settings": (
                dict(profile.model_settings) if profile.model_settings is not None else parent.model_settings
            ),
            "compaction": profile.compaction if profile.compaction is not None else parent.compaction,
            "max_turns": profile.max_turns if profile.max_turns is not None else parent.max_turns,
            "description": profile.description,
            "profile": None,
        }
    )


def _profile_model(harness: AgentHarness, profile: AgentProfile) -> Model:
    """The profile's own model (providers share one pooled HTTP client, so resolving is cheap)."""
    try:
        return resolve_model(profile.model, harness.context.env)
    except ConfigError as exc:
        raise ConfigError(f"subagent {profile.name!r}: field 'model': {exc}") from None


async def _record(
    session: Session, profile: AgentProfile | None, input: str | list[Any], res: PromptResult
) -> None:
    """A direct task's trace in the parent's history: the delegated input, then the result."""
    who = (
        f"subagent {profile.name!r}" if profile is not None else "a subagent with this agent's configuration"
    )
    request = UserMessage([TextPart(f"[Delegated as a task to {who}]"), *user_parts(input)])
    answer = AssistantMessage([TextPart(f"[Result of the task]\n{res.text}")])
    await session.harness.store.append(session.key, [request, answer])
    session._history.extend((request, answer))


def _describe(input: str | list[Any], agent: str | None) -> dict[str, Any]:
    from .session import _describe as describe_input

    return {"agent": agent, "input": describe_input(input)}


class _Tap:
    """Wraps a child's compaction hooks to see its running operation, so a task that fails still
    reports (and rolls up) the usage it spent."""

    __slots__ = ("inner", "turns")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.turns: Turns | None = None

    async def before_call(self, turns: Turns, request: ModelRequest) -> None:
        self.turns = turns
        if self.inner is not None:
            await self.inner.before_call(turns, request)

    async def on_overflow(self, turns: Turns, request: ModelRequest) -> bool:
        return self.inner is not None and bool(await self.inner.on_overflow(turns, request))

    def observe_usage(self, turns: Turns, usage: Usage) -> None:
        self.turns = turns
        if self.inner is not None:
            self.inner.observe_usage(turns, usage)


class _TaskHarness(AgentHarness):
    """A child's harness: one per task, sharing the parent's store, bus and context."""

    _tap: _Tap | None = None

    def compactor(self) -> Any:
        self._tap = _Tap(super().compactor())
        return self._tap

    def usage(self) -> Usage:
        turns = self._tap.turns if self._tap is not None else None
        return turns.usage if turns is not None else Usage()


# -- the built-in task tool ------------------------------------------------------------------------

_tools: weakref.WeakKeyDictionary[AgentHarness, Tool | None] = weakref.WeakKeyDictionary()

_TOOL_DESCRIPTION = (
    "Delegate a self-contained piece of work to a subagent. The subagent starts with a fresh context: it "
    "sees only `prompt`, not this conversation, so put everything it needs in it. It returns its final "
    "answer. Several task calls in one turn run in parallel."
)


def task_tool(harness: AgentHarness) -> Tool | None:
    """The ``task`` tool of an agent with subagents (``None`` without, or at ``max_task_depth``):
    ``agent`` is an enum of the profiles' names, described with their descriptions."""
    if harness in _tools:
        return _tools[harness]
    tool = _build_task_tool(harness)
    _tools[harness] = tool
    return tool


def _build_task_tool(harness: AgentHarness) -> Tool | None:
    profiles = harness.config.subagents
    if not profiles or harness.depth >= harness.config.max_task_depth:
        return None
    if TASK_TOOL in harness.tools:
        raise ConfigError(
            f"agent {harness.name!r}: a tool is named {TASK_TOOL!r}, the name of the built-in tool that "
            "delegates to subagents; rename it"
        )
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"agent {harness.name!r}: two subagents are named {duplicate!r}")
    listing = "\n".join(f"- {p.name}: {p.description or '(no description)'}" for p in profiles)
    parameters = {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": names, "description": "The subagent to run."},
            "prompt": {
                "type": "string",
                "description": "The complete task: what to do, the material to work on, and what to return.",
            },
        },
        "required": ["agent", "prompt"],
        "additionalProperties": False,
    }

    async def task(ctx: ToolContext, agent: str, prompt: str) -> str:
        if ctx.session is None:
            raise ConfigError("the task tool needs the calling session (ToolContext.session)")
        res = await run_task(ctx.session, prompt, agent=agent, call_id=ctx.call_id)
        return res.text

    return define_tool(
        TASK_TOOL, task, description=f"{_TOOL_DESCRIPTION}\n\nSubagents:\n{listing}", parameters=parameters
    )


# -- operations that are not a turn loop -----------------------------------------------------------


@dataclass(slots=True)
class Spent:
    """What an operation's body has spent so far (reported even when it fails)."""

    usage: Usage = field(default_factory=Usage)


Body = Callable[[Emit, str, Spent], Awaitable[tuple[T, str | None]]]


async def side_operation(session: Session, kind: str, input: Any, body: Body[T]) -> T:
    """Run ``body`` as an operation of ``session`` that is not a prompt (a direct task, a manual
    compaction), with the lifecycle every operation has (:func:`pyflue.session.operation`): it takes
    the session's turn, emits ``operation_start`` / ``operation_end``, and ``session.abort()`` cancels
    it. ``body(emit, operation_id, spent)`` returns ``(value, text or None)``."""
    from .session import operation

    spent = Spent()
    async with operation(session, kind, input, lambda: spent.usage) as op:
        value, op.text = await body(op.emit, op.operation_id, spent)
    return value


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
