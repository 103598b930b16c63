"""PyFlue: persistent agents and observable workflows over a lean model layer.

The public API. Names resolve lazily (PEP 562), so ``import pyflue`` costs little more than its
dependencies: the turn loop, stores, providers and adapters load when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0.dev0"

_EXPORTS: dict[str, str] = {
    # agents
    "create_agent": "pyflue.agent",
    "init": "pyflue.agent",
    "AgentDefinition": "pyflue.agent",
    "AgentContext": "pyflue.agent",
    "AgentConfig": "pyflue.config",
    "AgentHarness": "pyflue.agent",
    "Session": "pyflue.session",
    "PromptResult": "pyflue.session",
    "define_tool": "pyflue.tools",
    "Tool": "pyflue.tools",
    "ToolContext": "pyflue.tools",
    # profiles and compaction
    "define_agent_profile": "pyflue.profiles",
    "extend_agent_profile": "pyflue.profiles",
    "AgentProfile": "pyflue.profiles",
    "CompactionConfig": "pyflue.compaction",
    # workflows and runs
    "FlueContext": "pyflue.workflow",
    "invoke_workflow": "pyflue.project",
    "resume_run": "pyflue.project",
    "Resumer": "pyflue.resuming",
    "Project": "pyflue.project",
    "list_runs": "pyflue.runs",
    "get_run": "pyflue.runs",
    "iter_events": "pyflue.runs",
    "cancel_run": "pyflue.runs",
    "prune_runs": "pyflue.runs",
    "RunRecord": "pyflue.stores.runs",
    # durable dispatch
    "dispatch": "pyflue.dispatching",
    "Dispatcher": "pyflue.dispatching",
    "DispatchReceipt": "pyflue.dispatching",
    "get_dispatch": "pyflue.dispatching",
    "list_dispatches": "pyflue.dispatching",
    "wait_dispatch": "pyflue.dispatching",
    "cancel_dispatch": "pyflue.dispatching",
    "iter_dispatch_events": "pyflue.dispatching",
    # sandboxes and skills
    "Sandbox": "pyflue.sandbox",
    "SandboxPolicy": "pyflue.sandbox",
    "SandboxFS": "pyflue.sandbox",
    "local": "pyflue.sandbox",
    "virtual": "pyflue.sandbox",
    "sandbox_tools": "pyflue.sandbox",
    "Skill": "pyflue.skills",
    "Role": "pyflue.skills",
    # the runtime
    "Runtime": "pyflue.runtime",
    # events
    "Event": "pyflue.events",
    "EventBus": "pyflue.events",
    "observe": "pyflue.events",
    "unobserve": "pyflue.events",
    # models
    "Usage": "pyflue.models.base",
    "Model": "pyflue.models.base",
    "ModelSettings": "pyflue.models.base",
    "register_provider": "pyflue.models.registry",
    "resolve_model": "pyflue.models.registry",
}

__all__ = [
    "AgentConfig",
    "AgentContext",
    "AgentDefinition",
    "AgentHarness",
    "AgentProfile",
    "CompactionConfig",
    "DispatchReceipt",
    "Dispatcher",
    "Event",
    "EventBus",
    "FlueContext",
    "Model",
    "ModelSettings",
    "Project",
    "PromptResult",
    "Resumer",
    "Role",
    "RunRecord",
    "Runtime",
    "Sandbox",
    "SandboxFS",
    "SandboxPolicy",
    "Session",
    "Skill",
    "Tool",
    "ToolContext",
    "Usage",
    "__version__",
    "cancel_dispatch",
    "cancel_run",
    "create_agent",
    "define_agent_profile",
    "define_tool",
    "dispatch",
    "errors",
    "extend_agent_profile",
    "get_dispatch",
    "get_run",
    "init",
    "invoke_workflow",
    "iter_dispatch_events",
    "iter_events",
    "list_dispatches",
    "list_runs",
    "local",
    "observe",
    "prune_runs",
    "register_provider",
    "resolve_model",
    "resume_run",
    "sandbox_tools",
    "unobserve",
    "virtual",
    "wait_dispatch",
]

if TYPE_CHECKING:  # pragma: no cover - names for type checkers and IDEs
    from . import errors
    from .agent import AgentContext, AgentDefinition, AgentHarness, create_agent, init
    from .compaction import CompactionConfig
    from .config import AgentConfig
    from .dispatching import (
        Dispatcher,
        DispatchReceipt,
        cancel_dispatch,
        dispatch,
        get_dispatch,
        iter_dispatch_events,
        list_dispatches,
        wait_dispatch,
    )
    from .events import Event, EventBus, observe, unobserve
    from .models.base import Model, ModelSettings, Usage
    from .models.registry import register_provider, resolve_model
    from .profiles import AgentProfile, define_agent_profile, extend_agent_profile
    from .project import Project, invoke_workflow, resume_run
    from .resuming import Resumer
    from .runs import cancel_run, get_run, iter_events, list_runs, prune_runs
    from .runtime import Runtime
    from .sandbox import Sandbox, SandboxFS, SandboxPolicy, local, sandbox_tools, virtual
    from .session import PromptResult, Session
    from .skills import Role, Skill
    from .stores.runs import RunRecord
    from .tools import Tool, ToolContext, define_tool
    from .workflow import FlueContext


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name == "errors":
            return import_module("pyflue.errors")
        raise AttributeError(f"module 'pyflue' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
