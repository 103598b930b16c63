"""The journal of a resumable run: every model call, tool call and ``ctx.step`` with its result.

A resumable run records each step in the run store *before* its result is used. When the run's
process dies, ``resume_run`` executes the workflow's code again with the same payload and run id,
and a :class:`RunJournal` made from the recorded steps answers every step the code asks for again
with its recorded result, without calling the model or the tool; the first step the journal does
not hold runs live, and so does everything after it.

Steps are keyed by their place in the code, not by time: the run's steps are ``"0"``, ``"1"``, ...
in the order the code asks for them, and a step made while another runs (a subagent's model call
inside a tool call) is keyed under it (``"4.0"``, ``"4.1"``). The tool calls of one turn get their
keys in the order the model listed them before any of them starts, so concurrent tools replay in
the same places however they were scheduled.

A replayed step must be the step the code asks for (same kind, name and request fingerprint):
anything else raises :class:`ResumeDivergedError`, never a silent mix of two programs. A step that
had started and has no result (the process died inside a tool call) has an unknown outcome: it
runs again only when declared idempotent; otherwise its result is a :class:`StepOutcomeUnknownError`.

The loop and :func:`pyflue.model_calls.call_model` reach the journal through
:func:`current_journal` (a context variable the run sets), so agents a run makes, and their
subagent tasks, are journaled without knowing about runs.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import Any

import anyio
from pydantic import TypeAdapter
from pydantic_core import to_json

from .errors import WorkflowError
from .models.base import Model, ModelRequest, ModelResponse, Usage
from .models.messages import AssistantPart, ToolCallPart, ToolResultPart, messages_adapter
from .recording import EventRecorder
from .stores.runs import JournalStep, RunJournalStore
from .tools import IDEMPOTENT_ATTRIBUTE, idempotent, is_idempotent

__all__ = [
    "IDEMPOTENT_ATTRIBUTE",
    "ResumeDivergedError",
    "RunJournal",
    "StepOutcomeUnknownError",
    "current_journal",
    "idempotent",
    "is_idempotent",
    "request_fingerprint",
]


class ResumeDivergedError(WorkflowError):
    """A resumed run's code asked for a different step than its journal holds at that place: the
    code changed since the run started, or it is not deterministic. The run fails; start a new one."""


class StepOutcomeUnknownError(WorkflowError):
    """A step of a resumed run had started, and its process died before it recorded a result: it
    may or may not have taken effect. Declare the step idempotent to have it run again instead."""


@cache
def _parts_adapter() -> TypeAdapter[list[AssistantPart]]:
    return TypeAdapter(list[AssistantPart])


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def request_fingerprint(request: ModelRequest) -> str:
    """A hash of what a model call asks: messages, instructions, tools, settings, output schema."""
    messages = messages_adapter().dump_json(request.messages, exclude_none=True)
    rest = to_json(
        [
            request.instructions,
            [[t.name, t.description, t.parameters] for t in request.tools],
            dict(request.settings),
            None if request.output is None else repr(request.output),
        ],
        fallback=repr,
    )
    return _digest(messages + b"\0" + rest)


def args_fingerprint(args: Any) -> str:
    return _digest(to_json(args, fallback=repr))


def _response_json(response: ModelResponse) -> dict[str, Any]:
    return {
        "parts": _parts_adapter().dump_python(response.parts, mode="json", exclude_none=True),
        "usage": response.usage.to_dict(),
        "finish_reason": response.finish_reason,
        "response_id": response.response_id,
        "model": response.model,
    }


def _response_of(data: dict[str, Any]) -> ModelResponse:
    return ModelResponse(
        _parts_adapter().validate_python(data["parts"]),
        Usage(**data["usage"]),
        data["finish_reason"],
        data.get("response_id"),
        data.get("model"),
    )


class _Cursor:
    """The next step key at one level of the code (the run's own, or inside one step)."""

    __slots__ = ("count", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.count = 0

    def take(self, n: int = 1) -> list[str]:
        keys = [f"{self.prefix}{self.count + i}" for i in range(n)]
        self.count += n
        return keys


_journal: ContextVar[RunJournal | None] = ContextVar("pyflue_journal", default=None)
_cursor: ContextVar[_Cursor | None] = ContextVar("pyflue_journal_cursor", default=None)


def current_journal() -> RunJournal | None:
    """The journal of the resumable run the calling code runs in, or ``None``."""
    return _journal.get()


class RunJournal:
    """One run's journal: the steps recorded so far (by an earlier attempt of the run, then by this
    one), and where the code is. Made by the run; :meth:`active` makes it the current journal."""

    def __init__(self, store: RunJournalStore, run_id: str, recorded: Sequence[JournalStep] = ()) -> None:
        self.store = store
        self.run_id = run_id
        self._recorded = {step.step: step for step in recorded}
        self._unused = set(self._recorded)
        self._position = max((step.position for step in recorded), default=-1) + 1
        self._root = _Cursor("")
        self._lock = anyio.Lock()
        #: Steps answered from the journal in this attempt (for the ``run_resume`` event's count,
        #: the steps the earlier attempts recorded are ``len(recorded)``).
        self.replayed = 0
        self.recorded_count = len(recorded)
        #: The first divergence found, kept even if the code catches it (the run then fails).
        self.diverged: ResumeDivergedError | None = None
        self._events: EventRecorder | None = None

    def record_events(self, recorder: EventRecorder) -> None:
        """Write each step together with the run's events ``recorder`` holds until then, in one
        transaction: after a crash, every recorded step's events are in the log, and no event of a
        step after the last recorded one is."""
        self._events = recorder

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this the current journal (and its root the current level) for the block."""
        token = _journal.set(self)
        cursor_token = _cursor.set(self._root)
        try:
            yield
        finally:
            _cursor.reset(cursor_token)
            _journal.reset(token)

    def keys(self, n: int = 1) -> list[str]:
        """The keys of the next ``n`` steps at the current level, taken now (concurrent steps take
        theirs together, in a deterministic order, before they start)."""
        cursor = _cursor.get() or self._root
        return cursor.take(n)

    def unused(self) -> list[str]:
        """Recorded steps this attempt never asked for, in recording order."""
        return sorted(self._unused, key=lambda key: self._recorded[key].position)

    def check_finished(self) -> None:
        """``ResumeDivergedError`` when the code finished without asking for steps it recorded
        before: it took a different path this time."""
        left = self.unused()
        if left:
            step = self._recorded[left[0]]
            raise self._diverged(
                f"resumed run {self.run_id} diverged: it finished without asking for its recorded "
                f"step {step.step} ({step.kind} {step.name[:80]!r}) and {len(left) - 1} more; the "
                "workflow's code changed or is not deterministic. Start a new run"
            )

    def _diverged(self, message: str) -> ResumeDivergedError:
        error = ResumeDivergedError(message)
        if self.diverged is None:
            self.diverged = error
        return error

    async def _write(
        self, key: str, kind: str, name: str, fingerprint: str, status: str, result: Any
    ) -> None:
        async with self._lock:
            step = JournalStep(key, self._position, kind, name, fingerprint, status, result)  # type: ignore[arg-type]
            self._position += 1
        if self._events is None:
            await self.store.record_step(self.run_id, step)
        else:
            await self._events.commit(functools.partial(self.store.record_step, self.run_id, step))

    def _consume(self, key: str) -> None:
        """Mark ``key`` and every step inside it as asked for (a replayed result stands for them)."""
        self._unused.discard(key)
        inner = key + "."
        self._unused.difference_update([k for k in self._unused if k.startswith(inner)])

    async def run(
        self,
        key: str,
        kind: str,
        name: str,
        fingerprint: str,
        live: Callable[[], Awaitable[Any]],
        *,
        mark_start: bool,
        retry_unknown: bool,
        unknown: Callable[[str], Any] | None = None,
    ) -> Any:
        """The JSON result of step ``key``: recorded, or from ``live()`` (recorded before it is
        returned). ``mark_start`` records the step as ``started`` before ``live`` runs (side
        effects: a later attempt then knows it may have happened). For a started step with no
        result, ``retry_unknown`` runs it again; otherwise ``unknown()`` is its result (recorded),
        or without ``unknown`` a :class:`StepOutcomeUnknownError` is raised."""
        recorded = self._recorded.get(key)
        if recorded is not None:
            if (recorded.kind, recorded.name, recorded.fingerprint) != (kind, name, fingerprint):
                raise self._diverged(
                    f"resumed run {self.run_id} diverged at step {key}: the journal holds "
                    f"{recorded.kind} {recorded.name[:80]!r} ({recorded.fingerprint[:12]}), the code asked "
                    f"for {kind} {name[:80]!r} ({fingerprint[:12]}); the workflow's code changed or "
                    "is not deterministic. Start a new run"
                )
            if recorded.status == "done":
                self._consume(key)
                self.replayed += 1
                return recorded.result
            if not retry_unknown:
                self._consume(key)
                message = (
                    f"the outcome of {kind} {name[:80]!r} (step {key}) is unknown: the process "
                    "running it stopped before it recorded a result, so it may or may not have taken "
                    "effect; check before doing it again, or declare it idempotent"
                )
                if unknown is None:
                    raise StepOutcomeUnknownError(message)
                result = unknown(message)
                await self._write(key, kind, name, fingerprint, "done", result)
                return result
            self._unused.discard(key)  # run again: the steps inside it replay or run as asked
        if mark_start and recorded is None:
            await self._write(key, kind, name, fingerprint, "started", None)
        token = _cursor.set(_Cursor(key + "."))
        try:
            result = await live()
        finally:
            _cursor.reset(token)
        await self._write(key, kind, name, fingerprint, "done", result)
        return result

    # -- the kinds of step -----------------------------------------------------------------------

    async def model_call(
        self, model: Model, request: ModelRequest, live: Callable[[], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """A model call: replayed from the journal, or made and recorded. Model calls are safe to
        make again, so a call cut short is simply made again."""

        async def call() -> dict[str, Any]:
            return _response_json(await live())

        (key,) = self.keys()
        data = await self.run(
            key,
            "model",
            f"{model.provider}/{model.model_name}",
            request_fingerprint(request),
            call,
            mark_start=False,
            retry_unknown=True,
        )
        return _response_of(data)

    async def tool_call(
        self, key: str, call: ToolCallPart, idempotent: bool, live: Callable[[], Awaitable[ToolResultPart]]
    ) -> ToolResultPart:
        """A tool call: replayed, or run and recorded (started first: its side effects may happen).
        A call whose outcome is unknown runs again only when the tool is idempotent; otherwise its
        result is a :class:`StepOutcomeUnknownError` tool error the model reads."""

        async def run() -> dict[str, Any]:
            part = await live()
            return {"content": part.content, "is_error": part.is_error}

        def unknown(message: str) -> dict[str, Any]:
            return {"content": f"error: StepOutcomeUnknownError: {message}", "is_error": True}

        data = await self.run(
            key,
            "tool",
            call.name,
            args_fingerprint(call.args),
            run,
            mark_start=True,
            retry_unknown=idempotent,
            unknown=unknown,
        )
        return ToolResultPart(call.id, call.name, data["content"], bool(data["is_error"]))
