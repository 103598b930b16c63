"""Projects: a directory of agents and workflows, discovered by file name.

::

    my-project/
      agents/assistant.py      default = create_agent(...)           → project.agents["assistant"]
      workflows/summarize.py   async def run(ctx): ...               → project.workflows["summarize"]
                               class Payload(BaseModel): ...  (optional, validates ctx.payload)
                               timeout = 60                   (optional, seconds)
                               a module docstring             (optional, the description)
      .pyflue/pyflue.db        sessions and runs (SQLite, created on first use)

``src/agents`` and ``src/workflows`` are found when the top level has neither. Names must match
``[a-z0-9][a-z0-9_-]*``; files starting with ``_`` are helpers and skipped.

Each project's modules are imported once, as submodules of a package private to that project
(``_pyflue_project_<hash>``), so two projects with a ``workflows/summarize.py`` each never clash,
and a workflow can import its project's agents with a relative import
(``from ..agents.assistant import default``). A file that fails to import is reported in
``project.errors`` with its path and line, and never hides the others.

Importing is blocking work (files, module code): :meth:`Project.load` is meant for start-up; from
async code use ``await Project.load_async(path)``, which imports in a worker thread.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import threading
import traceback
import types
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from .agent import AgentDefinition, AgentHarness, init
from .errors import ConfigError, UnknownAgentError, WorkflowError
from .events import Observer
from .runtime import current_runtime
from .skills.documents import LoadError, ProjectDocuments, Role, Skill, load_documents
from .stores.runs import RunRecord, RunStore
from .stores.sessions import SessionStore
from .workflow import RunOptions, WorkflowDefinition, continue_run, run_workflow

__all__ = ["DB_PATH", "LoadError", "Project"]

#: Where a project keeps its SQLite database, relative to the project directory.
DB_PATH = Path(".pyflue") / "pyflue.db"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_KINDS: tuple[Literal["agent", "workflow"], ...] = ("agent", "workflow")


class Project:
    """Agents and workflows of one directory, and its stores.

    ``path`` (resolved), ``agents`` and ``workflows`` (name → definition), ``skills``, ``roles`` and
    ``instructions`` (``AGENTS.md``) as ``documents``, ``errors`` (name →
    :class:`LoadError`; when an agent and a workflow of the same name both fail, the second is
    keyed ``"<kind>:<name>"``), ``db_path``, ``session_store`` and ``run_store`` (SQLite, one file,
    opened lazily). :meth:`run` invokes a workflow.
    """

    _imports: ClassVar[threading.RLock] = threading.RLock()  # one discovery at a time: imports are global
    #: How many agent instances :meth:`instance` keeps loaded.
    max_instances: int = 1_024

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        agents: dict[str, AgentDefinition] | None = None,
        workflows: dict[str, WorkflowDefinition] | None = None,
        errors: dict[str, LoadError] | None = None,
    ) -> None:
        self.path = Path(path).resolve()
        self.agents: dict[str, AgentDefinition] = dict(agents or {})
        self.workflows: dict[str, WorkflowDefinition] = dict(workflows or {})
        self.errors: dict[str, LoadError] = dict(errors or {})
        self._instances: OrderedDict[tuple[str, str], AgentHarness] = OrderedDict()
        #: Its skills (``skills/``), roles (``roles/``) and ``AGENTS.md`` text, found by :meth:`load`.
        self.documents = ProjectDocuments({}, {}, None, [])

    @property
    def skills(self) -> dict[str, Skill]:
        return self.documents.skills

    @property
    def roles(self) -> dict[str, Role]:
        return self.documents.roles

    @property
    def instructions(self) -> str | None:
        """The text of the project's ``AGENTS.md``, added to every agent's instructions."""
        return self.documents.instructions

    # -- discovery ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str] = ".", *, reload: bool = False) -> Project:
        """Discover the project at ``path`` (blocking: call at start-up, or use :meth:`load_async`).

        A project's files are imported once per process (loading it again only looks for files
        added since); ``reload=True`` imports them afresh (for development servers). ``ConfigError``
        if ``path`` is not a directory.
        """
        root = Path(path).resolve()
        if not root.is_dir():
            raise ConfigError(f"project directory {root} does not exist")
        with cls._imports:
            project = cls(root)
            project._discover(reload)
            return project

    @classmethod
    async def load_async(cls, path: str | os.PathLike[str] = ".", *, reload: bool = False) -> Project:
        """:meth:`load` in a worker thread, so the event loop never waits on imports."""
        return await anyio.to_thread.run_sync(functools.partial(cls.load, path, reload=reload))

    @property
    def source(self) -> Path:
        """The directory holding ``agents/`` and ``workflows/``: the project, or its ``src/``."""
        for base in (self.path, self.path / "src"):
            if (base / "agents").is_dir() or (base / "workflows").is_dir():
                return base
        return self.path

    @property
    def package(self) -> str:
        """The private package its modules are imported under."""
        return "_pyflue_project_" + hashlib.sha1(str(self.path).encode()).hexdigest()[:12]

    def _discover(self, reload: bool) -> None:
        source, package = self.source, self.package
        if reload:
            _forget(package, source)
        if package not in sys.modules:
            spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
            spec.submodule_search_locations = [str(source)]
            module = importlib.util.module_from_spec(spec)
            module.__path__ = [str(source)]
            sys.modules[package] = module
        for kind in _KINDS:
            folder = source / f"{kind}s"
            if not folder.is_dir():
                continue
            for file in sorted(folder.glob("*.py")):
                name = file.stem
                if name.startswith("_"):
                    continue
                if not _NAME.match(name):
                    self._error(kind, name, file, f"{kind} name {name!r} must match [a-z0-9][a-z0-9_-]*")
                    continue
                try:
                    module = _import(f"{package}.{kind}s", name, file)
                except BaseException as exc:  # SyntaxError, ImportError, anything its code raises
                    if not isinstance(exc, Exception | SystemExit):
                        raise
                    message, line = _describe(exc, file)
                    self._error(kind, name, file, message, line)
                    continue
                try:
                    if kind == "agent":
                        self.agents[name] = _agent(name, module)
                    else:
                        self.workflows[name] = _workflow(name, module, file)
                except ConfigError as exc:
                    self._error(kind, name, file, str(exc))
        self.documents = load_documents(source)
        for problem in self.documents.errors:
            self._record(problem)

    def _error(
        self,
        kind: Literal["agent", "workflow", "skill", "role", "instructions"],
        name: str,
        path: Path,
        message: str,
        line: int | None = None,
    ) -> None:
        self._record(LoadError(kind, name, path, message, line))

    def _record(self, error: LoadError) -> None:
        key = error.name if error.name not in self.errors else f"{error.kind}:{error.name}"
        self.errors[key] = error

    # -- lookups -----------------------------------------------------------------------------------

    def workflow(self, name: str) -> WorkflowDefinition:
        """The workflow ``name``: ``UnknownAgentError`` listing the available ones when there is
        none, ``WorkflowError`` with the reason when its file failed to load."""
        found = self.workflows.get(name)
        if found is None:
            self._missing("workflow", name, self.workflows)
        return found

    def agent(self, name: str) -> AgentDefinition:
        """The agent ``name`` (``UnknownAgentError`` / ``WorkflowError`` as for :meth:`workflow`)."""
        found = self.agents.get(name)
        if found is None:
            self._missing("agent", name, self.agents)
        return found

    def _missing(self, kind: str, name: str, table: dict[str, Any]) -> NoReturn:
        error = next((e for e in self.errors.values() if e.kind == kind and e.name == name), None)
        if error is not None:
            raise WorkflowError(f"{kind} {name!r} failed to load: {error}")
        available = ", ".join(sorted(table)) or "none"
        raise UnknownAgentError(f"no {kind} named {name!r} in {self.path}; available: {available}")

    # -- stores and runs ---------------------------------------------------------------------------

    @property
    def db_path(self) -> Path:
        return self.path / DB_PATH

    @property
    def session_store(self) -> SessionStore:
        """The project's session store: its SQLite file, or the runtime's PostgreSQL database when
        ``PYFLUE_DATABASE_URL`` (or ``Runtime(database_url=...)``) names one."""
        return current_runtime().session_store_for(self.db_path)

    @property
    def run_store(self) -> RunStore:
        """The project's run store (SQLite file or PostgreSQL, as :attr:`session_store`)."""
        return current_runtime().run_store_for(self.db_path)

    async def instance(self, agent: str, id: str) -> AgentHarness:
        """The instance ``id`` of the project's agent ``agent``, on the project's session store: what
        a server or a dispatcher addresses. Loaded instances are cached (LRU, ``max_instances``); an
        evicted instance is initialised again on its next use and its sessions reload from the
        store, so eviction costs an initializer call, never a conversation."""
        key = (agent, id)
        harness = self._instances.get(key)
        if harness is not None:
            self._instances.move_to_end(key)
            return harness
        harness = await init(
            self.agent(agent),
            id=id,
            session_store=self.session_store,
            documents=self.documents,
            root=self.source,
        )
        self._instances[key] = harness
        while len(self._instances) > self.max_instances:
            self._instances.popitem(last=False)
        return harness

    async def run(self, name: str, payload: Any = None, **kwargs: Any) -> RunRecord:
        """``invoke_workflow(self, name, payload, **kwargs)``: run a workflow, get its record."""
        return await invoke_workflow(self, name, payload, **kwargs)

    def __repr__(self) -> str:
        agents, workflows = sorted(self.agents), sorted(self.workflows)
        return f"Project({str(self.path)!r}, agents={agents}, workflows={workflows})"


def _forget(package: str, source: Path) -> None:
    """Make the next import of a project's modules read their files again: drop the modules, and
    their cached bytecode, which Python trusts while a file keeps its size and its mtime second (so
    an edit that keeps the size within a second would otherwise load the old code)."""
    files: set[Path] = set()
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        origin = getattr(sys.modules.pop(name), "__file__", None)
        if origin:
            files.add(Path(origin))
    for kind in _KINDS:
        files.update((source / f"{kind}s").glob("*.py"))
    for file in files:
        if file.suffix == ".py":
            with contextlib.suppress(OSError, NotImplementedError, ValueError):
                Path(importlib.util.cache_from_source(str(file))).unlink(missing_ok=True)
    importlib.invalidate_caches()


def _import(parent: str, name: str, file: Path) -> types.ModuleType:
    """Import ``file`` as ``<parent>.<name>`` once (a workflow may have imported it already)."""
    qualified = f"{parent}.{name}"
    module = sys.modules.get(qualified)
    if module is not None:
        return module
    importlib.import_module(parent)
    if name.isidentifier():
        return importlib.import_module(qualified)
    spec = importlib.util.spec_from_file_location(qualified, file)  # e.g. my-flow.py
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(qualified, None)
        raise
    return module


def _describe(exc: BaseException, file: Path) -> tuple[str, int | None]:
    """A one-line reason and the line of ``file`` where it happened."""
    if isinstance(exc, SyntaxError) and exc.filename and Path(exc.filename) == file:
        return f"SyntaxError: {exc.msg}", exc.lineno
    line = None
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == str(file):
            line = frame.lineno
            break
    text = str(exc)
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__), line


def _docstring(module: types.ModuleType) -> str | None:
    return inspect.cleandoc(module.__doc__) if module.__doc__ else None


def _agent(name: str, module: types.ModuleType) -> AgentDefinition:
    definition = getattr(module, "default", None)
    if not isinstance(definition, AgentDefinition):
        raise ConfigError(f"agents/{name}.py must export `default = create_agent(...)`")
    definition.name = name
    if definition.description is None:
        definition.description = _docstring(module)
    return definition


def _workflow(name: str, module: types.ModuleType, file: Path) -> WorkflowDefinition:
    run = getattr(module, "run", None)
    if run is None or not inspect.iscoroutinefunction(run):
        raise ConfigError(f"workflows/{name}.py must define `async def run(ctx)`")
    try:
        return WorkflowDefinition(
            name,
            run,
            payload_type=getattr(module, "Payload", None),
            description=_docstring(module),
            timeout=getattr(module, "timeout", None),
            path=file,
            resumable=getattr(module, "resumable", None),
        )
    except ConfigError:
        raise
    except Exception as exc:  # a Payload pydantic cannot build a validator for
        raise ConfigError(f"workflows/{name}.py: its Payload is not a usable type: {exc}") from exc


async def invoke_workflow(
    project: Project | str | os.PathLike[str],
    name: str,
    payload: Any = None,
    *,
    run_store: RunStore | None = None,
    session_store: SessionStore | None = None,
    on_event: Observer | None = None,
    timeout: float | None = None,
    run_id: str | None = None,
    env: Mapping[str, str] | None = None,
    cancel_poll_interval: float = 0.25,
    resumable: bool | None = None,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> RunRecord:
    """Run workflow ``name`` of ``project`` with ``payload`` and return its final :class:`RunRecord`.

    A run that fails, is cancelled or times out is *returned* with that status and its ``error``;
    what raises is what prevents a run from existing: ``UnknownAgentError`` (no such workflow; the
    message lists them), ``WorkflowError`` (it failed to load), ``PayloadValidationError`` (no run
    record is created), ``ConfigError`` (a ``run_id`` already used). If the *caller* is cancelled
    (or interrupted), the run is recorded ``cancelled`` and the cancellation propagates.

    ``run_store`` / ``session_store`` default to the project's SQLite stores; ``on_event`` observes
    the run's events live; ``timeout`` (seconds) overrides the workflow's own; ``env`` replaces
    ``os.environ`` for the run's agents; the run polls the store for cancel requests from other
    processes every ``cancel_poll_interval`` seconds. With ``task_group.start(...)`` the run id is
    handed back as soon as the record exists.
    """
    if not isinstance(project, Project):
        project = await Project.load_async(project)
    options = RunOptions(
        run_store, session_store, on_event, timeout, run_id, env, cancel_poll_interval, resumable=resumable
    )
    return await run_workflow(project, project.workflow(name), payload, options, task_status)


async def resume_run(
    run_id: str,
    *,
    project: Project | str | os.PathLike[str] = ".",
    run_store: RunStore | None = None,
    session_store: SessionStore | None = None,
    on_event: Observer | None = None,
    env: Mapping[str, str] | None = None,
) -> RunRecord:
    """Continue the ``interrupted`` resumable run ``run_id`` of ``project`` (a :class:`Project` or its
    directory) in this process and return its final record: journaled steps return their recorded
    results, execution goes on live from the first step the journal does not hold (see
    docs/resumable.md). ``ConfigError`` when the run is not resumable or not interrupted."""
    if not isinstance(project, Project):
        project = await Project.load_async(project)
    return await continue_run(
        project, run_id, run_store=run_store, session_store=session_store, on_event=on_event, env=env
    )
