"""``pyflue serve [PROJECT]``: the project's HTTP API (``pyflue_asgi``) under uvicorn.

It prints the URL and the routes, serves until Ctrl-C (or SIGTERM), then shuts down gracefully:
requests in flight finish, runs get the app's grace period, open streams are closed after it.
``PYFLUE_API_TOKEN`` (one token, or several separated by commas) turns bearer authentication on;
without it the server only binds a loopback address, unless ``--insecure`` says that is meant.
With ``--reload`` or ``--workers N`` uvicorn imports the app itself, through :func:`app_factory`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from ..arguments import positive
from ..core import project_dir
from ..exits import COMPLETED, CliError

__all__ = ["DESCRIPTION", "EXAMPLES", "HELP", "add_arguments", "app_factory", "run"]

HELP = "serve the project over HTTP"
DESCRIPTION = """\
Serve the project's agents, workflows and runs as an HTTP API (pyflue_asgi) under uvicorn.
Prints the URL and the routes; Ctrl-C shuts down gracefully. PYFLUE_API_TOKEN turns on bearer
authentication; a non-loopback --host needs it, or --insecure."""
EXAMPLES = """\
pyflue serve
  pyflue serve path/to/project --port 8080
  PYFLUE_API_TOKEN=s3cret pyflue serve --host 0.0.0.0 --workers 4"""

TOKEN_ENV = "PYFLUE_API_TOKEN"
#: How :func:`app_factory` finds the project in the processes uvicorn starts.
PROJECT_ENV = "PYFLUE_SERVE_PROJECT"
#: How :func:`app_factory` learns ``--auto-resume`` in the processes uvicorn starts.
AUTO_RESUME_ENV = "PYFLUE_SERVE_AUTO_RESUME"
#: Seconds open connections (SSE streams) get at shutdown before they are closed.
SHUTDOWN_TIMEOUT = 15.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path", nargs="?", metavar="PROJECT", help="the project directory (default: --project, else here)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=positive, default=8000, help="port (default 8000)")
    parser.add_argument("--reload", action="store_true", help="restart when the project's files change")
    parser.add_argument(
        "--workers", type=positive, default=1, metavar="N", help="worker processes (default 1)"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback --host without PYFLUE_API_TOKEN"
    )
    parser.add_argument(
        "--auto-resume",
        action="store_true",
        help="resume interrupted resumable workflow runs while serving (default off)",
    )


def run(args: argparse.Namespace) -> int:
    root = project_dir(getattr(args, "path", None) or args.project).resolve()
    tokens = _tokens()
    if tokens is None and not _loopback(args.host) and not args.insecure:
        raise CliError(
            f"refusing to serve on {args.host} without authentication: set {TOKEN_ENV}, or bind "
            "127.0.0.1, or pass --insecure if the network in front of it authenticates"
        )
    if args.workers < 1:
        raise CliError(f"--workers must be at least 1, got {args.workers}")
    if args.reload and args.workers > 1:
        raise CliError("--reload and --workers cannot be combined")
    try:
        import uvicorn

        from pyflue_asgi import create_app
    except ImportError as exc:
        raise CliError(f"serving needs the asgi extra: pip install 'pyflue[asgi]' ({exc})") from None

    auto_resume = bool(getattr(args, "auto_resume", False))
    app = create_app(
        root, auth=tokens, ui=True, auto_resume=auto_resume
    )  # loads the project: its import errors show up now
    _announce(root, app, args)
    config: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "lifespan": "on",
        "log_level": "debug" if args.verbose else "info",
        "timeout_graceful_shutdown": SHUTDOWN_TIMEOUT,
    }
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it
    # found: with the default one the process would die by the signal after a clean shutdown.
    previous = signal.signal(signal.SIGTERM, _after_graceful_shutdown)
    try:
        _serve(uvicorn, app, root, args, config, auto_resume)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return COMPLETED


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    """SIGTERM outside uvicorn's own handling: the server has stopped cleanly; exit normally."""


def _serve(
    uvicorn: Any, app: Any, root: Path, args: argparse.Namespace, config: dict[str, Any], auto_resume: bool
) -> None:
    if args.reload or args.workers > 1:
        os.environ[PROJECT_ENV] = str(root)
        if auto_resume:
            os.environ[AUTO_RESUME_ENV] = "1"
        uvicorn.run(
            "pyflue_cli.commands.serve:app_factory",
            factory=True,
            reload=args.reload,
            reload_dirs=[str(root)] if args.reload else None,
            workers=args.workers if args.workers > 1 else None,
            **config,
        )
    else:
        uvicorn.run(app, **config)


def app_factory() -> Any:
    """The app of the project named by ``PYFLUE_SERVE_PROJECT`` (uvicorn calls it in each worker)."""
    from pyflue_asgi import create_app

    root = os.environ.get(PROJECT_ENV)
    if not root:
        raise CliError(f"{PROJECT_ENV} is not set; start the server with `pyflue serve`")
    return create_app(root, auth=_tokens(), ui=True, auto_resume=os.environ.get(AUTO_RESUME_ENV) == "1")


def _tokens() -> list[str] | None:
    raw = os.environ.get(TOKEN_ENV, "")
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    return tokens or None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _announce(root: Any, app: Any, args: argparse.Namespace) -> None:
    host = f"[{args.host}]" if ":" in args.host else args.host
    lines = [f"pyflue: serving {root} at http://{host}:{args.port} (dashboard: /ui/)"]
    if _tokens() is None:
        lines.append(f"pyflue: no authentication ({TOKEN_ENV} is not set)")
    lines.extend(f"  {r.method:<5} {r.path:<32} {r.summary}" for r in app.routes)
    lines.append("pyflue: Ctrl-C stops the server")
    print("\n".join(lines), flush=True)
