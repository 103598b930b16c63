"""What the app owns while it serves, with one lifetime: the project's stores, the workflow runs it
started, the run feeds its SSE subscribers share, the sessions its requests are prompting, and the
dispatch worker that delivers input accepted by ``POST /agents/{name}/{id}/dispatch``.

Everything is opened in :meth:`ServerState.lifespan` and closed when it ends, in one place (the
core's runtime object plugs in here). Runs started over HTTP belong to the lifespan's task group,
not to the request that started them: a client that goes away never cancels a run. At shutdown, runs
in flight and deliveries in flight share ``grace_period`` seconds to finish; then runs are stopped
and recorded ``interrupted`` (the process stopped them, so a resumable one is resumed by ``pyflue
resume`` or an ``auto_resume`` server after a restart), and deliveries are cancelled and left for
the next worker to deliver again (their leases expire, as after a crash).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus

from pyflue import Dispatcher, Project, RunRecord, Runtime, invoke_workflow
from pyflue.ids import new_run_id
from pyflue.stores.dispatches import DispatchStore
from pyflue.stores.runs import RunStore

from .errors import ApiError
from .sse import Feeds

__all__ = ["Hold", "RunHandle", "ServerState", "Settings", "not_serving"]

_log = logging.getLogger("pyflue.asgi")


@dataclass(frozen=True, slots=True)
class Settings:
    """The app's tunables (``create_app`` keywords)."""

    debug: bool = False
    max_body: int = 1 << 20
    heartbeat: float = 15.0
    poll_interval: float = 0.05
    feed_window: int = 1_024
    grace_period: float = 10.0


class RunHandle:
    """A run this app started: ``done`` is set once ``record`` (the final record) is there."""

    __slots__ = ("done", "record", "run_id", "started")

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.record: RunRecord | None = None
        self.done = anyio.Event()
        self.started = False


class _Started:
    """The ``task_status`` handed to the core: records that the run exists, then passes it on."""

    def __init__(self, handle: RunHandle, outer: TaskStatus[str]) -> None:
        self._handle = handle
        self._outer = outer

    def started(self, value: str | None = None) -> None:
        self._handle.started = True
        self._outer.started(value if value is not None else self._handle.run_id)


class ServerState:
    """The app's resources. Routes reach the project, the stores, runs and feeds through it."""

    def __init__(self, project: Project, settings: Settings, openapi: dict[str, Any]) -> None:
        self.project = project
        self.settings = settings
        self.openapi = openapi
        self._group: TaskGroup | None = None
        self._store: RunStore | None = None
        self._runs: dict[str, RunHandle] = {}
        self._busy: dict[Hashable, int] = {}
        self._feeds: Feeds | None = None
        self._dispatcher: Dispatcher | None = None
        #: The core runtime the app serves with (open while the lifespan runs).
        self.runtime: Runtime | None = None

    # -- lifetime ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open the stores, mark runs orphaned by a dead process ``interrupted``, start the dispatch
        worker, serve; at the end give runs and deliveries in flight ``grace_period`` seconds, then
        cancel them (runs end ``interrupted``: the runtime is marked closing first)."""
        project = self.project
        async with Runtime() as runtime:
            self.runtime = runtime
            try:
                async with self._serving(project, runtime):
                    yield
            finally:
                self.runtime = None

    @asynccontextmanager
    async def _serving(self, project: Project, runtime: Runtime) -> AsyncIterator[None]:
        store: RunStore = project.run_store
        project.session_store  # noqa: B018 - open both stores of the file now, not on a first request
        recovered = await store.recover_interrupted()
        if recovered:
            _log.warning("marked %d orphaned run(s) interrupted", len(recovered))
        self._store = store
        self._feeds = Feeds(
            store, self.settings.poll_interval, self.settings.feed_window, self.settings.debug
        )
        grace = self.settings.grace_period
        dispatcher = Dispatcher(project, grace_period=grace)
        try:
            async with dispatcher, anyio.create_task_group() as group:
                self._group = group
                self._dispatcher = dispatcher
                try:
                    yield
                finally:
                    self._group = None  # new runs are refused from here on
                    runtime.mark_closing()  # runs cut short from here on end `interrupted`
                    deadline = anyio.current_time() + grace
                    with anyio.move_on_after(grace, shield=True):
                        for handle in list(self._runs.values()):
                            await handle.done.wait()
                    group.cancel_scope.cancel()
                    # what is left of the grace period, for the deliveries in flight
                    dispatcher.grace_period = max(0.0, deadline - anyio.current_time())
        finally:
            self._store = None
            self._feeds = None
            self._dispatcher = None

    @property
    def serving(self) -> bool:
        """Whether the lifespan has started and not yet begun to end."""
        return self._group is not None

    @property
    def run_store(self) -> RunStore:
        if self._store is None:
            raise not_serving()
        return self._store

    @property
    def feeds(self) -> Feeds:
        if self._feeds is None:
            raise not_serving()
        return self._feeds

    @property
    def dispatcher(self) -> Dispatcher:
        """The worker delivering the project's dispatched input while the app serves."""
        if self._dispatcher is None:
            raise not_serving()
        return self._dispatcher

    @property
    def dispatch_store(self) -> DispatchStore:
        """The project's dispatch store: the one the worker claims from."""
        return self.dispatcher.store

    # -- workflow runs -----------------------------------------------------------------------------

    async def start_run(self, workflow: str, payload: Any) -> RunHandle:
        """Start a run in the app's task group; returns once its record exists. What prevents a run
        (an unknown workflow, an invalid payload) raises here."""
        group = self._group
        if group is None:
            raise not_serving()
        self.project.workflow(workflow)
        handle = RunHandle(new_run_id(workflow))
        store = self.run_store

        async def run(*, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED) -> None:
            self._runs[handle.run_id] = handle
            try:
                handle.record = await invoke_workflow(
                    self.project,
                    workflow,
                    payload,
                    run_id=handle.run_id,
                    run_store=store,
                    task_status=_Started(handle, task_status),
                )
            except Exception:
                if not handle.started:
                    raise  # before the record existed: the request that started it reports it
                _log.exception("run %s could not be recorded to its end", handle.run_id)
            finally:
                self._runs.pop(handle.run_id, None)
                handle.done.set()

        await group.start(run)
        return handle

    def run_handle(self, run_id: str) -> RunHandle | None:
        return self._runs.get(run_id)

    # -- sessions ----------------------------------------------------------------------------------

    def busy(self, key: Hashable) -> bool:
        """Whether a request of this app holds or waits for a turn on the session ``key``."""
        return key in self._busy

    def hold(self, key: Hashable) -> Hold:
        """Count a request as using the session ``key`` until the hold is released."""
        self._busy[key] = self._busy.get(key, 0) + 1
        return Hold(self._busy, key)


class Hold:
    """A request's claim on a session (see :meth:`ServerState.hold`); releasing twice is harmless,
    so a streamed answer can release it wherever it ends."""

    __slots__ = ("_busy", "_key")

    def __init__(self, busy: dict[Hashable, int], key: Hashable) -> None:
        self._busy: dict[Hashable, int] | None = busy
        self._key = key

    def release(self) -> None:
        busy, self._busy = self._busy, None
        if busy is None:
            return
        left = busy[self._key] - 1
        if left:
            busy[self._key] = left
        else:
            del busy[self._key]

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def not_serving() -> ApiError:
    return ApiError(
        503,
        "ServiceUnavailable",
        "the app is not serving: its lifespan has not started (when mounting it in another app, "
        "pass lifespan=pyflue_app.lifespan to that app)",
    )
