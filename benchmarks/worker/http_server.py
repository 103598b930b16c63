"""One HTTP server for ``benchmarks/http_serving.py``, run as a script by a framework's own interpreter.

``python worker/http_server.py KIND PROJECT PORT UVICORN_JSON [PROFILE_OUT]`` serves PROJECT on
127.0.0.1:PORT under ``uvicorn.run(app, **UVICORN_JSON)``; the driver passes the same settings to
every server. KIND says whose app it is:

* ``pyflue``: ``pyflue_asgi.create_app(PROJECT)`` (this repository);
* ``pyflue-0.2.0``: PyFlue 0.2.0's own FastAPI app, ``pyflue.server.create_app(config)``, with the
  project's ``pyflue.config.py`` and the project directory as the working directory (0.2.0 resolves
  its ``.pyflue/`` state and its default config from there).

With PROFILE_OUT the server runs under cProfile (the event loop's thread) and writes the raw stats
there when uvicorn returns (SIGTERM or SIGINT: uvicorn's graceful shutdown). Run as a script, never
``-m benchmarks...``, so the repository root is not on ``sys.path`` (the 0.2.0 venv must import its
own ``pyflue``).
"""

from __future__ import annotations

import json
import os
import resource
import sys


def _app(kind: str, project: str) -> object:
    if kind == "pyflue":
        from pyflue_asgi import create_app

        return create_app(project)
    if kind == "pyflue-0.2.0":
        from pyflue.server import create_app as create_020_app  # type: ignore[import-not-found]

        return create_020_app(os.path.join(project, "pyflue.config.py"))
    raise SystemExit(f"unknown server kind {kind!r}")


def main() -> None:
    kind, project, port, raw_settings = sys.argv[1:5]
    profile_out = sys.argv[5] if len(sys.argv) > 5 else None
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1 000 SSE streams need the sockets
    os.chdir(project)
    import uvicorn

    app = _app(kind, project)
    settings = json.loads(raw_settings)
    if profile_out is None:
        uvicorn.run(app, port=int(port), **settings)  # type: ignore[arg-type]
        return
    import cProfile
    import signal

    # uvicorn re-raises the signal that stopped it once it has shut down; with the default handler
    # that would end the process before the profile is written.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        uvicorn.run(app, port=int(port), **settings)  # type: ignore[arg-type]
    finally:
        profiler.disable()
        profiler.dump_stats(profile_out)


if __name__ == "__main__":
    main()
