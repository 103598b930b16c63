"""Agents: definitions (``create_agent``), instances (``init``) and their sessions.

An :class:`AgentDefinition` holds an initializer; ``init(definition, id=...)`` runs it for one
instance (``ctx.id`` may shape the config) and returns an :class:`AgentHarness`, whose sessions keep
their histories in a :class:`~pyflue.stores.base.SessionStore`. Instance and session ids are data:
any printable text, never a path.
"""

from __future__ import annotations

import inspect
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import AgentConfig, parse_config
from .errors import ConfigError
from .events import EventBus, Observer
from .ids import check_id
from .models.base import Model
from .models.registry import resolve_model
from .stores.base import SessionKey, SessionStore, StoredMessage
from .tools import Tool, as_tool

if TYPE_CHECKING:
    from .compaction import Compactor
    from .session import Session

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

    Sessions are cached (LRU, ``_SESSION_CACHE``); an evicted session reloads from the store.
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
    ) -> None:
        self.name = name
        self.id = instance_id
        self.config = config
        self._model = model
        self.store = store
        self.bus = bus
        self.context = context
        self.depth = depth
        self.tools: dict[str, Tool] = {}
        for entry in config.tools:
            tool = as_tool(entry, name)
            if tool.name in self.tools:
                raise ConfigError(f"agent {name!r}: two tools are named {tool.name!r}")
            self.tools[tool.name] = tool
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    @property
    def model(self) -> Model:
        """The resolved model; an agent with no model fails here, at its first prompt, so an
        observer-only harness (``init(on_event=...)``) needs none."""
        if self._model is None:
            self._model = _resolve(self.config.model, self.context.env, self.name)
        return self._model

    @property
    def instance_id(self) -> str:
        return self.id

    @property
    def run_id(self) -> str | None:
        return self.context.run_id

    @property
    def task_tool(self) -> Tool | None:
        """The built-in ``task`` tool when this agent has subagents (see :mod:`pyflue.tasks`)."""
        from .tasks import task_tool

        return task_tool(self)

    def compactor(self) -> Compactor | None:
        """Compaction hooks for one operation, ``None`` when disabled (see :mod:`pyflue.compaction`)."""
        from .compaction import compactor_for

        return compactor_for(self)

    def instructions(self) -> str | None:
        value = self.config.instructions
        if callable(value):
            value = value(self.context)
        return value

    async def session(self, session_id: str = "default") -> Session:
        """The session ``session_id`` of this instance, its history loaded from the store."""
        from .session import Session

        check_id(session_id, "session id")
        session = self._sessions.get(session_id)
        if session is not None:
            self._sessions.move_to_end(session_id)
            return session
        key = SessionKey(self.name, self.id, session_id)
        live = _live.get(id(self.store))
        if live is None:
            live = _live[id(self.store)] = weakref.WeakValueDictionary()
        history = live.get(key)
        if history is None:
            loaded = await self.store.load(key)
            history = live.get(key)  # another harness may have loaded it meanwhile
            if history is None:
                history = live[key] = _History(loaded)
        session = self._sessions.get(session_id)  # another task may have loaded it meanwhile
        if session is None:
            session = Session(self, session_id, history, key)
            self._sessions[session_id] = session
            if len(self._sessions) > _SESSION_CACHE:
                self._sessions.popitem(last=False)
        return session

    def __repr__(self) -> str:
        return f"AgentHarness({self.name!r}, id={self.id!r})"


class _History(list[StoredMessage]):
    """A stored session's messages in memory: one list shared by every ``Session`` object of that
    stored session in the process (other harnesses of the instance, or a session still in use after
    the cache evicted it), so none of them prompts with a stale copy. Operations take turns on it."""

    __slots__ = ("__weakref__",)


# Per store object, then per session: one shared SessionKey object serves this registry, the
# Session and the store, so a retained conversation pays for one key.
_live: dict[int, weakref.WeakValueDictionary[SessionKey, _History]] = {}


def _resolve(model: Any, env: Mapping[str, str], agent: str) -> Model:
    """The agent's model; a bad model string or a missing key names the agent and the key."""
    if model is None and not env.get("PYFLUE_MODEL"):
        return resolve_model(model, env)  # "no model configured" says what to do
    try:
        return resolve_model(model, env)
    except ConfigError as exc:
        raise ConfigError(f"agent {agent!r}: config key 'model': {exc}") from None


_default_store: SessionStore | None = None


def default_session_store() -> SessionStore:
    """The process's in-memory store, for harnesses made without a store or a project."""
    global _default_store
    if _default_store is None:
        from .stores.memory import MemorySessionStore

        _default_store = MemorySessionStore()
    return _default_store


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
    **config: Any,
) -> AgentHarness:
    """An agent instance. With no ``agent``, an ad-hoc one built from the keyword ``config``
    (``model``, ``instructions``, ``tools``, ...). ``on_event`` observes this instance's events."""
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
    if on_event is not None:
        bus.subscribe(on_event)
    return AgentHarness(
        name=agent_name,
        instance_id=instance_id,
        config=resolved,
        model=model,
        store=session_store or default_session_store(),
        bus=bus,
        context=context,
    )
