"""The JSON bodies of the API as pydantic models: they validate requests and, through the route
table, write the OpenAPI document, so the document and the behaviour cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AbortResult",
    "AgentInfo",
    "AgentList",
    "CancelResult",
    "ErrorBody",
    "ErrorEnvelope",
    "EventList",
    "Health",
    "InstanceList",
    "MessageList",
    "PromptBody",
    "PromptReply",
    "PromptResultBody",
    "RunAccepted",
    "RunList",
    "RunRecordBody",
    "SessionList",
    "StoredMessageBody",
    "WorkflowInfo",
    "WorkflowList",
]

#: Instance, session and run ids: any printable text of 1 to 256 characters (data, never paths).
MAX_ID = 256
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
#: The documented form of ids: no control characters (the server also refuses other non-printable ones).
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
MAX_NAME = 128


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(_Body):
    type: str
    message: str
    details: Any = None


class ErrorEnvelope(_Body):
    error: ErrorBody


class Health(_Body):
    status: Literal["ok"]
    version: str


class AgentInfo(_Body):
    name: str
    description: str | None


class AgentList(_Body):
    agents: list[AgentInfo]


class WorkflowInfo(_Body):
    name: str
    description: str | None
    payload_schema: dict[str, Any] | None


class WorkflowList(_Body):
    workflows: list[WorkflowInfo]


class PromptBody(_Body):
    """``message`` (or ``prompt``, PyFlue 0.2.0's name): text, or a list of text/image parts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["message"]}, {"required": ["prompt"]}],
        },
    )

    message: str | list[dict[str, Any]] | None = None
    prompt: str | list[dict[str, Any]] | None = None
    session: str = Field("default", min_length=1, max_length=MAX_ID, pattern=ID_PATTERN)
    result_schema: dict[str, Any] | None = Field(
        None, description="a JSON schema the answer must follow; the reply then carries `output`"
    )

    @model_validator(mode="after")
    def _one_message(self) -> PromptBody:
        if self.message is None and self.prompt is None:
            raise ValueError("give `message` (or its synonym `prompt`)")
        if self.message is not None and self.prompt is not None:
            raise ValueError("give `message` or `prompt`, not both")
        if not self.session.isprintable():
            raise ValueError("session must be printable text")
        return self

    @property
    def input(self) -> str | list[dict[str, Any]]:
        value = self.message if self.message is not None else self.prompt
        assert value is not None
        return value


class UsageBody(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0


class PromptResultBody(_Body):
    text: str
    output: Any = None
    usage: UsageBody
    operation_id: str
    finish_reason: str
    model: str


class PromptReply(_Body):
    result: PromptResultBody


class AbortResult(_Body):
    aborted: bool
    session: str


class RunAccepted(_Body):
    run_id: str
    status: Literal["running", "completed", "failed", "cancelled", "interrupted"]


class RunRecordBody(_Body):
    run_id: str
    workflow: str
    status: Literal["running", "completed", "failed", "cancelled", "interrupted"]
    payload: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    started_at: str
    ended_at: str | None = None
    duration_ms: float | None = None
    usage: UsageBody
    owner_pid: int | None = None
    owner_host: str | None = None


class RunList(_Body):
    runs: list[RunRecordBody]
    next_cursor: str | None


class EventBody(BaseModel):
    type: str
    event_id: str
    ts: str
    seq: int
    run_id: str | None = None
    agent: str | None = None
    instance_id: str | None = None
    session_id: str | None = None
    operation_id: str | None = None
    parent_id: str | None = None
    data: dict[str, Any]


class EventList(_Body):
    events: list[EventBody]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")


class CancelResult(_Body):
    run_id: str
    cancel_requested: bool
    status: Literal["running", "completed", "failed", "cancelled", "interrupted"]


class InstanceList(_Body):
    instances: list[str] = Field(
        description="instance ids holding at least one session with messages, sorted"
    )
    next_after: str | None = Field(description="pass as `after` for the next page; null on the last page")


class SessionList(_Body):
    instance_id: str
    sessions: list[str] = Field(description="ids of the instance's sessions that hold messages, sorted")


class StoredMessageBody(_Body):
    """One message of a session's history: its position (``seq``, from 1) and its JSON form (``role``
    and ``parts``, as in docs/agents.md), plus the summary text when it is a compaction summary."""

    seq: int
    role: Literal["user", "assistant"]
    parts: list[dict[str, Any]]
    compaction_summary: str | None = Field(
        None, description="the summary, when this message is a compaction summary (absent otherwise)"
    )


class MessageList(_Body):
    agent: str
    instance_id: str
    session_id: str
    version: int = Field(description="the history's version; it moves with every change of the session")
    messages: list[StoredMessageBody]
    next_after: int | None = Field(description="pass as `after` for the next page; null on the last page")
