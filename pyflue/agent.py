"""Agents: definitions (``create_agent``), instances (``init``) and their sessions.

An :class:`AgentDefinition` holds an initializer; ``init(definition, id=...)`` runs it for one
instance (``ctx.id`` may shape the config) and returns an :class:`AgentHarness`, whose sessions keep
their histories in a :class:`~pyflue.stores.sessions.SessionStore`. Instance and session ids are data:
any printable text, never a path.
"""

from __future__ import annotations

import inspect
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio.to_thread

from .compaction.compactor import CompactionResult, Compactor, compact_session
from .compaction.estimate import tool_chars
from .compaction.settings import CompactionSettings
from .config import AgentConfig, CompactionConfig, parse_config
from .errors import ConfigError
from .events import EventBus, Observer
from .ids import check_id
from .loop import TurnPlan, run_turns
from .models.base import Model, ModelSettings
from .models.messages import TextPart, UserMessage, user_parts
from .models.registry import resolve_model
from .output import output_spec
from .runtime import current_runtime
from .sandbox.fs import as_sandbox
from .sandbox.protocol import Sandbox
from .sandbox.tools import sandbox_tools
from .session import Operation, PromptResult, Session, describe_input
from .skills.activation import get_skill, prepare_skill_prompt, resolve_skills, skill_tool
from .skills.documents import ProjectDocuments, Role, Skill, compose_instructions
from .stores.sessions import SessionKey, SessionStore
from .tasks import run_task, task_tool
from .tools import Tool, as_tool

__all__ = ["AgentContext", "AgentDefinition", "AgentHarness", "create_agent", "init"]

Initializer = Callable[["AgentContext"], Any]


@dataclass(slots=True)
class AgentContext:
    """What an initializer sees: the instance ``id``, the agent ``name``, ``env``, and inside a
    workflow the ``run_id`` and ``payload``."""

    id: str
    name: str
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    run_id: str | None = None
    payload: Any = None


class AgentDefinition:
    """An agent as defined in code: a name and an initializer returning its config."""

    __slots__ = ("description", "initialize", "name")

    def __init__(self, initialize: Initializer, name: str | None = None) -> None:
        if not callable(initialize):
            raise ConfigError(
                f"create_agent expects a function of ctx returning the config, got {initialize!r}"
            )
        self.initialize = initialize
        self.name = name
        self.description: str | None = None

    async def configure(self, ctx: AgentContext) -> AgentConfig:
        try:
            value = self.initialize(ctx)
            if inspect.isawaitable(value):
                value = await value
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(
                f"agent {ctx.name!r}: its initializer raised {type(exc).__name__}: {exc}"
            ) from exc
        return parse_config(value, ctx.name)

    def __repr__(self) -> str:
        return f"AgentDefinition({self.name!r})"


def create_agent(initialize: Initializer, *, name: str | None = None) -> AgentDefinition:
    """Define an agent. ``initialize(ctx)`` (sync or async) returns a dict or ``AgentConfig``."""
    return AgentDefinition(initialize, name)


_SESSION_CACHE = 256


class AgentHarness:
    """One agent instance: its resolved config, model, tools, event bus and sessions.

    It owns what its operations share: sessions are cached (LRU, ``_SESSION_CACHE``; an evicted
    session reloads from the store), the built-in ``task`` tool, the size of its tool definitions and
    the compaction settings per model, its sandbox, skills and role, and the instructions composed
    from its project's ``AGENTS.md``, its own and its role's. It runs the turn loop, tasks and
    compaction on its sessions
    (it is their :class:`~pyflue.session.SessionOwner` and the :class:`~pyflue.tasks.TaskParent` of
    its tasks).
    """

    def __init__(
        self,
        *,
        name: str,
        instance_id: str,
        config: AgentConfig,
        model: Model | None,
        store: SessionStore,
        bus: EventBus,
        context: AgentContext,
        depth: int = 0,
        documents: ProjectDocuments | None = None,
        root: Path | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.name = name
        self.id = instance_id
        self.config = config
        self._model = model
        self.store = store
        self.bus = bus
        self.context = context
        self.depth = depth
        #: The project's skills, roles and ``AGENTS.md`` (None for an agent made without a project).
        self.documents = documents
        #: The directory relative skill paths are read from (the project's; default: the cwd).
        self.root = root
        self._sandbox = sandbox
        self.tools: dict[str, Tool] = {}
        for entry in config.tools:
            tool = as_tool(entry, name)
            if tool.name in self.tools:
                raise ConfigError(f"agent {name!r}: two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self.task_tool: Tool | None = task_tool(self)
        #: The tools the model is offered: the agent's own, the sandbox tools with
        #: ``sandbox_tools: True``, ``task`` when it has subagents, and after :meth:`prepare`
        #: ``activate_skill`` and the MCP servers' tools.
        self.offered: dict[str, Tool] = dict(self.tools)
        if config.sandbox_tools:
            self._offer(sandbox_tools(self.sandbox), "sandbox_tools: True")
        if self.task_tool is not None:
            self.offered[self.task_tool.name] = self.task_tool
        #: The agent's skills by name (resolved by :meth:`prepare`).
        self.skills: dict[str, Skill] = {}
        self._role: Role | None = None
        self._prepared = False
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._tool_chars: int | None = None
        self._compaction: dict[int, tuple[Model, CompactionSettings]] = {}

    @property
    def model(self) -> Model:
        """The resolved model; an agent with no model fails here, at its first prompt, so an
        observer-only harness (``init(on_event=...)``) needs none."""
        if self._model is None:
            self._model = _resolve(self.config.model, self.context.env, self.name)
        return self._model

    @property
    def sandbox(self) -> Sandbox:
        """The agent's sandbox, resolved once per instance from its config's ``sandbox`` (a new
        in-memory one when it has none): what its tools, ``session.fs`` and ``session.shell`` use."""
        if self._sandbox is None:
            self._sandbox = as_sandbox(self.config.sandbox, f"agent {self.name!r}: config key 'sandbox'")
        return self._sandbox

    def _offer(self, tools: list[Tool], source: str) -> None:
        for tool in tools:
            if tool.name in self.offered:
                raise ConfigError(
                    f"agent {self.name!r}: {source} adds a tool named {tool.name!r}, and the agent "
                    "already has one; rename its own tool"
                )
            self.offered[tool.name] = tool
        self._tool_chars = None

    async def prepare(self) -> None:
        """Resolve what needs IO once per instance: the skills (files read in a worker thread), the
        role, and the tools of the MCP servers (started in the runtime's shared connections; one
        that fails to start raises its ``MCPServerError`` naming it). Called by :func:`init` and
        before the first operation; idempotent."""
        if self._prepared:
            return
        config = self.config
        available = self.documents.skills if self.documents is not None else {}
        entries = config.skills or ()
        if entries:
            try:
                if any(not isinstance(entry, Skill) for entry in entries):
                    skills = await anyio.to_thread.run_sync(
                        lambda: resolve_skills(entries, available, base=self.root)
                    )
                else:
                    skills = resolve_skills(entries, available, base=self.root)
            except ConfigError as exc:
                raise ConfigError(f"agent {self.name!r}: config key 'skills': {exc}") from None
        else:
            skills = {}
        self.role()
        mcp_tools = await current_runtime().mcp().tools(config.mcp_servers) if config.mcp_servers else []
        if self._prepared:  # another operation prepared it meanwhile
            return
        if skills:
            self._offer([skill_tool(skills)], "its skills")
        self._offer(mcp_tools, "config key 'mcp_servers'")
        self.skills = skills
        self._prepared = True

    def role(self) -> Role | None:
        """The config's role as a :class:`~pyflue.skills.Role`: a name is looked up in the
        project's ``roles/`` (``ConfigError`` listing them when there is none of that name)."""
        value = self.config.role
        if value is None or isinstance(value, Role):
            return value
        if self._role is not None and self._role.name == value:
            return self._role
        roles = self.documents.roles if self.documents is not None else {}
        found = roles.get(value) if isinstance(value, str) else None
        if found is None:
            available = ", ".join(sorted(roles)) or "none (add roles/<name>.md to the project)"
            raise ConfigError(
                f"agent {self.name!r}: config key 'role': no role {value!r:.80}; available: {available}"
            )
        self._role = found
        return found

    @property
    def instance_id(self) -> str:
        return self.id

    @property
    def run_id(self) -> str | None:
        return self.context.run_id

    @property
    def env(self) -> Mapping[str, str]:
        return self.context.env

    def instructions(self) -> str | None:
        """The agent's instructions now: the project's ``AGENTS.md`` (unless the config says
        ``project_instructions: False``), then its own (a callable is called with the agent's
        context), then its role's. A callable that fails or returns something other than text is a
        ``ConfigError`` naming the key."""
        documents = self.documents
        project = None
        if documents is not None and self.config.project_instructions:
            project = documents.instructions
        return compose_instructions(self._own_instructions(), project=project, role=self.role())

    def _own_instructions(self) -> str | None:
        value = self.config.instructions
        if callable(value):
            try:
                value = value(self.context)
            except Exception as exc:
                raise ConfigError(
                    f"agent {self.name!r}: config key 'instructions': the callable raised "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"agent {self.name!r}: config key 'instructions': the callable returned a "
                    f"{type(value).__name__}, not a string"
                )
        return value

    async def session(self, session_id: str = "default") -> Session:
        """The session ``session_id`` of this instance, its history loaded from the store."""
        check_id(session_id, "session id")
        session = self._sessions.get(session_id)
        if session is not None:
            self._sessions.move_to_end(session_id)
            return session
        history = await current_runtime().history(self.store, SessionKey(self.name, self.id, session_id))
        session = self._sessions.get(session_id)  # another task may have loaded it meanwhile
        if session is None:
            session = Session(self, session_id, history)
            self._sessions[session_id] = session
            if len(self._sessions) > _SESSION_CACHE:
                self._sessions.popitem(last=False)
        return session

    # -- running operations on its sessions --------------------------------------------------------

    async def run_prompt(
        self,
        session: Session,
        input: str | list[Any],
        *,
        result: Any,
        model: str | Model | None,
        model_settings: ModelSettings | None,
        stream: bool,
    ) -> PromptResult:
        return await self.operate(
            session, "prompt", input, result=result, model=model, model_settings=model_settings, stream=stream
        )

    async def operate(
        self,
        session: Session,
        kind: str,
        input: str | list[Any],
        *,
        result: Any = None,
        model: str | Model | None = None,
        model_settings: ModelSettings | None = None,
        stream: bool = False,
        parent_id: str | None = None,
        operation_id: str | None = None,
        started: Callable[[Operation], None] | None = None,
    ) -> PromptResult:
        """Run ``input`` through the turn loop as an operation of ``kind`` on ``session``."""
        parts = user_parts(input)
        if not any(not isinstance(part, TextPart) or part.text.strip() for part in parts):
            raise ConfigError(
                f"agent {self.name!r}: the input is empty; send some text or an image "
                "(a model answers a prompt, and an empty one breaks the conversation)"
            )
        await self.prepare()
        spec = output_spec(result) if result is not None else None
        if spec is not None and spec.schema.name in self.tools:
            raise ConfigError(
                f"agent {self.name!r}: a tool is named {spec.schema.name!r}, the name typed output uses; "
                "rename the tool to ask for result=..."
            )
        chosen = resolve_model(model, self.context.env) if model is not None else self.model
        config = self.config
        settings: ModelSettings = {**config.model_settings, **(model_settings or {})}  # type: ignore[typeddict-item]
        async with session.operation(
            kind, describe_input(input), parent_id=parent_id, operation_id=operation_id
        ) as op:
            if started is not None:
                started(op)
            plan = TurnPlan(
                model=chosen,
                instructions=self.instructions(),
                tools=self.offered,
                settings=settings,
                output=spec,
                max_turns=config.max_turns,
                output_retries=config.output_retries,
                stream=stream,
                tool_timeout=config.tool_timeout,
                compaction=self.compactor(chosen),
                run_id=self.context.run_id,
                env=self.context.env,
                sandbox=self.sandbox,
            )
            res = await run_turns(session, op, plan, UserMessage(parts))
        return res

    async def run_task(
        self,
        session: Session,
        input: str | list[Any],
        *,
        agent: str | None,
        result: Any,
        role: Any = None,
    ) -> PromptResult:
        return await run_task(self, session, input, agent=agent, result=result, role=role)

    async def run_skill(self, session: Session, name: str, *, args: Any, result: Any) -> PromptResult:
        """Run the skill ``name`` (one of this agent's) as an operation of kind ``skill``."""
        await self.prepare()
        skill = get_skill(self.skills, name)
        text, result_type = prepare_skill_prompt(skill, args, result)
        return await self.operate(session, "skill", text, result=result_type)

    async def run_compaction(
        self, session: Session, keep_recent: int | None, instructions: str | None
    ) -> CompactionResult:
        model = self.model
        return await compact_session(
            session,
            self._compaction_settings(model),
            model,
            self.instructions(),
            self._tool_sizes(),
            keep_recent=keep_recent,
            instructions=instructions,
        )

    def child(self, config: AgentConfig, model: Model, depth: int) -> AgentHarness:
        """A child instance for one task: same store, bus, context and project documents, its own
        config; it works in the parent's sandbox unless its config names another."""
        return AgentHarness(
            name=self.name,
            instance_id=self.id,
            config=config,
            model=model,
            store=self.store,
            bus=self.bus,
            context=self.context,
            depth=depth,
            documents=self.documents,
            root=self.root,
            sandbox=self.sandbox if config.sandbox is self.config.sandbox else None,
        )

    # -- what its operations share -----------------------------------------------------------------

    def compactor(self, model: Model | None = None) -> Compactor | None:
        """Compaction hooks for one operation on ``model`` (default: the agent's); ``None`` when the
        config says ``compaction: False``."""
        model = model or self.model
        config = self.config.compaction
        if config is False or (isinstance(config, CompactionConfig) and not config.enabled):
            return None
        return Compactor(self._compaction_settings(model), self._tool_sizes())

    def _compaction_settings(self, model: Model) -> CompactionSettings:
        known = self._compaction.get(id(model))
        if known is not None and known[0] is model:
            return known[1]
        config = self.config.compaction
        settings = CompactionSettings.resolve(
            config if isinstance(config, CompactionConfig) else None, model, self.context.env
        )
        self._compaction[id(model)] = (model, settings)
        return settings

    def _tool_sizes(self) -> int:
        if self._tool_chars is None:
            self._tool_chars = tool_chars([tool.definition for tool in self.offered.values()])
        return self._tool_chars

    def __repr__(self) -> str:
        return f"AgentHarness({self.name!r}, id={self.id!r})"


def _resolve(model: Any, env: Mapping[str, str], agent: str) -> Model:
    """The agent's model; a bad model string or a missing key names the agent and the key."""
    if model is None and not env.get("PYFLUE_MODEL"):
        return resolve_model(model, env)  # "no model configured" says what to do
    try:
        return resolve_model(model, env)
    except ConfigError as exc:
        raise ConfigError(f"agent {agent!r}: config key 'model': {exc}") from None


async def init(
    agent: AgentDefinition | None = None,
    *,
    id: str | None = None,
    on_event: Observer | None = None,
    session_store: SessionStore | None = None,
    env: Mapping[str, str] | None = None,
    bus: EventBus | None = None,
    run_id: str | None = None,
    payload: Any = None,
    name: str | None = None,
    documents: ProjectDocuments | None = None,
    root: str | os.PathLike[str] | None = None,
    **config: Any,
) -> AgentHarness:
    """An agent instance. With no ``agent``, an ad-hoc one built from the keyword ``config``
    (``model``, ``instructions``, ``tools``, ...). ``on_event`` observes this instance's events.

    ``documents`` are the skills, roles and ``AGENTS.md`` of the agent's project, and ``root`` the
    directory relative skill paths are read from (a project passes both; without them, skills are
    ``Skill`` objects or paths, and a role a ``Role``)."""
    instance_id = check_id("default" if id is None else id, "instance id")
    if agent is None:
        agent_name = name or "agent"
        definition = AgentDefinition(lambda ctx: dict(config), agent_name)
    elif isinstance(agent, AgentDefinition):
        if config:
            raise ConfigError(
                f"init(agent, ...) takes no agent config keywords ({', '.join(config)}); "
                "put them in the agent's initializer"
            )
        definition = agent
        agent_name = name or agent.name or "agent"
    else:
        raise ConfigError(f"init() expects an agent made by create_agent, got {type(agent).__name__}")
    environment = dict(os.environ) if env is None else env
    context = AgentContext(instance_id, agent_name, environment, run_id, payload)
    resolved = await definition.configure(context)
    model = (
        _resolve(resolved.model, environment, agent_name)
        if resolved.model or environment.get("PYFLUE_MODEL")
        else None
    )
    bus = bus or EventBus(run_id=run_id)
    harness = AgentHarness(
        name=agent_name,
        instance_id=instance_id,
        config=resolved,
        model=model,
        store=session_store or current_runtime().session_store,
        bus=bus,
        context=context,
        documents=documents,
        root=None if root is None else Path(root),
    )
    await harness.prepare()
    if on_event is not None:
        bus.subscribe(on_event)
    return harness
