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
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import anyio
from pydantic_core import to_jsonable_python

from ._clock import elapsed_ms
from .config import AgentConfig, AgentProfile
from .errors import AbortedError, ConfigError, TaskDepthError, error_payload
from .ids import new_operation_id
from .loop import current_turns
from .model_calls import Emit
from .models.base import Model, Usage
from .models.messages import AssistantMessage, TextPart, UserMessage, user_parts
from .models.registry import resolve_model
from .profiles import find_profile
from .session import Operation, PromptResult, Session, describe_input
from .tools import Tool, ToolContext, define_tool

__all__ = ["TaskParent", "run_task", "task_tool"]

TASK_TOOL = "task"


class TaskParent(Protocol):
    """What a task needs of the agent instance that delegates (the harness implements it)."""

    @property
    def name(self) -> str: ...
    @property
    def depth(self) -> int: ...
    @property
    def config(self) -> AgentConfig: ...
    @property
    def model(self) -> Model: ...
    @property
    def tools(self) -> Mapping[str, Tool]: ...
    @property
    def env(self) -> Mapping[str, str]: ...

    def child(self, config: AgentConfig, model: Model, depth: int) -> TaskParent:
        """A child instance for one task: same store, bus and context, its own config."""
        ...

    async def session(self, session_id: str = "default") -> Session: ...

    async def operate(
        self,
        session: Session,
        kind: str,
        input: str | list[Any],
        *,
        result: Any = None,
        parent_id: str | None = None,
        operation_id: str | None = None,
        started: Callable[[Operation], None] | None = None,
    ) -> PromptResult:
        """Run ``input`` through the turn loop as an operation of ``kind`` on ``session``;
        ``started`` is handed the operation as it begins (to read what it spent if it fails)."""
        ...


async def run_task(
    harness: TaskParent,
    session: Session,
    input: str | list[Any],
    *,
    agent: str | None = None,
    result: Any = None,
    call_id: str | None = None,
    role: Any = None,
) -> PromptResult:
    """Run ``input`` as a task of ``session`` (an instance of ``harness``; see the module docs);
    returns the child's :class:`~pyflue.session.PromptResult` (typed ``.output`` when ``result=``).

    Raises ``UnknownAgentError`` (listing the available subagents) for an unknown ``agent``,
    ``TaskDepthError`` past ``max_task_depth``, and whatever the child's operation raised.
    ``call_id`` names the tool call that started the task (the built-in ``task`` tool passes it), so
    ``task_start`` links the task to that call explicitly. ``role`` (a role name or object) is
    layered on the child's instructions in place of the one it would have.
    """
    profile = find_profile(harness.config.subagents, agent, harness.name) if agent is not None else None
    depth = harness.depth + 1
    if depth > harness.config.max_task_depth:
        raise TaskDepthError(
            f"agent {harness.name!r}: a task at depth {depth} exceeds max_task_depth="
            f"{harness.config.max_task_depth}; raise max_task_depth or delegate less deeply"
        )
    user_parts(input)  # a malformed input fails here, before any event
    running = current_turns()
    if running is not None and running.session.messages is session.messages:
        return await _child(
            harness,
            running.model,
            running.operation_id,
            running.emit,
            running.spend,
            _Task(profile, depth, input, result, call_id, role),
        )

    async with session.operation("task", {"agent": agent, "input": describe_input(input)}) as op:

        def spend(usage: Usage) -> None:
            op.usage = op.usage + usage

        child = await _child(
            harness, None, op.operation_id, op.emit, spend, _Task(profile, depth, input, result, None, role)
        )
        await _record(session, profile, input, child)
        op.text = child.text
    return child


class _Task:
    """One task to run: the subagent (None: the parent's own config), its depth, the input, the
    result type, the tool call that started it, and the role layered on the child (None: its own)."""

    __slots__ = ("call_id", "depth", "input", "profile", "result", "role")

    def __init__(
        self,
        profile: AgentProfile | None,
        depth: int,
        input: str | list[Any],
        result: Any,
        call_id: str | None,
        role: Any = None,
    ) -> None:
        self.role = role
        self.profile = profile
        self.depth = depth
        self.input = input
        self.result = result
        self.call_id = call_id


async def _child(
    harness: TaskParent,
    parent_model: Model | None,
    parent_operation: str,
    emit: Emit,
    spend: Callable[[Usage], None],
    task: _Task,
) -> PromptResult:
    """Run the child operation, reporting ``task_start`` / ``task_end`` through ``emit`` (the parent
    operation's correlation) and its usage through ``spend`` whatever the outcome."""
    profile = task.profile
    if profile is not None and profile.model is not None:
        model = _profile_model(harness, profile)
    else:
        model = parent_model or harness.model  # the model the parent runs with
    child_harness = harness.child(_child_config(harness.config, profile, task.role), model, task.depth)
    task_id = new_operation_id()
    name = profile.name if profile is not None else None
    start: dict[str, Any] = {"agent": name, "task_operation_id": task_id}
    if task.call_id is not None:
        start["call_id"] = task.call_id
    emit("task_start", start)
    started = time.perf_counter()
    operations: list[Operation] = []
    try:
        child = await child_harness.session(f"task:{task_id}")
        res = await child_harness.operate(
            child,
            "task",
            task.input,
            result=task.result,
            parent_id=parent_operation,
            operation_id=task_id,
            started=operations.append,
        )
    except BaseException as exc:
        usage = operations[0].usage if operations else Usage()
        spend(usage)
        emit(
            "task_end",
            {
                "agent": name,
                "task_operation_id": task_id,
                "status": _status(exc),
                "usage": usage.to_dict(),
                "error": error_payload(exc),
                "duration_ms": elapsed_ms(started),
            },
        )
        raise
    spend(res.usage)
    data: dict[str, Any] = {
        "agent": name,
        "task_operation_id": task_id,
        "status": "completed",
        "text": res.text,
        "usage": res.usage.to_dict(),
        "duration_ms": elapsed_ms(started),
    }
    if task.result is not None:
        data["result"] = to_jsonable_python(res.output, fallback=str)
    emit("task_end", data)
    return res


def _status(exc: BaseException) -> str:
    if isinstance(exc, AbortedError):
        return "aborted"
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    return "failed"


def _child_config(parent: AgentConfig, profile: AgentProfile | None, role: Any = None) -> AgentConfig:
    """The child's config: the parent's as is for a plain task; for a profile, its instructions,
    tools, subagents and role only, the rest defaulting to the parent's. A task's ``role`` replaces
    the role the child would have."""
    if profile is None:
        return parent if role is None else parent.model_copy(update={"role": role})
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
            "role": role if role is not None else profile.role,
            "profile": None,
        }
    )


def _profile_model(harness: TaskParent, profile: AgentProfile) -> Model:
    """The profile's own model (providers share one pooled HTTP client, so resolving is cheap)."""
    try:
        return resolve_model(profile.model, harness.env)
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
    await session.messages.append([request, answer])


# -- the built-in task tool ------------------------------------------------------------------------

_TOOL_DESCRIPTION = (
    "Delegate a self-contained piece of work to a subagent. The subagent starts with a fresh context: it "
    "sees only `prompt`, not this conversation, so put everything it needs in it. It returns its final "
    "answer. Several task calls in one turn run in parallel."
)


def task_tool(harness: TaskParent) -> Tool | None:
    """The ``task`` tool of an agent with subagents (``None`` without, or at ``max_task_depth``):
    ``agent`` is an enum of the profiles' names, described with their descriptions."""
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
        res = await run_task(harness, ctx.session, prompt, agent=agent, call_id=ctx.call_id)
        return res.text

    # Idempotent for resumable runs: a task cut short runs again, and the steps inside it that
    # finished (its model and tool calls, journaled one by one) replay instead of running twice.
    return define_tool(
        TASK_TOOL,
        task,
        description=f"{_TOOL_DESCRIPTION}\n\nSubagents:\n{listing}",
        parameters=parameters,
        idempotent=True,
    )
