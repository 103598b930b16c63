"""``pyflue``: argument parsing, and the one place where errors become exit codes.

Only argparse and this package's small modules are imported here: ``pyflue --help`` must not pay
for pydantic, httpx or rich. A command's module (``pyflue_cli.commands.<name>``) is imported once
the command line has been parsed, and the core only inside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any, NoReturn

from .exits import COMPLETED, INTERRUPTED, USAGE, CliError, exit_code_for, one_line

__all__ = ["build_parser", "main"]

_DESCRIPTION = """\
PyFlue: agents and observable workflows.

Runs the workflows and agents of a project directory (agents/*.py, workflows/*.py) and shows
their events live on a terminal, or as JSON for scripts.
"""

_EPILOG = """\
examples:
  pyflue init my-project && cd my-project
  pyflue run summarize --payload '{"text": "PyFlue runs agents."}'
  pyflue runs --status failed
  pyflue logs workflow:summarize:01J... --follow
  pyflue prompt assistant case-42 "Where is my order?" --session billing

exit codes: 0 completed, 1 the run failed, 2 usage or input error, 130 interrupted (Ctrl-C).
PYFLUE_MODEL=test runs any project offline. Docs: docs/cli.md.
"""

# name -> (one-line help, description, examples)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "init": (
        "create a new example project",
        "Write a small, commented example project into NAME (a new or empty directory): an agent\n"
        "with a tool, a reviewer profile it delegates to, and a workflow that uses both. It runs\n"
        "offline on the `test` model until ANTHROPIC_API_KEY is set.",
        "pyflue init my-project\n  pyflue init .                  # the current directory, if empty",
    ),
    "run": (
        "run a workflow",
        "Run a workflow of the project and record it in the project's run store.\n"
        "On a terminal: a live view of the run (text, tool calls, tasks, logs) and a summary.\n"
        "Otherwise: the result as JSON on stdout; errors on stderr, one line.",
        'pyflue run summarize --payload \'{"text": "..."}\'\n'
        "  pyflue run summarize --payload @payload.json\n"
        '  echo \'{"text": "..."}\' | pyflue run summarize --payload -\n'
        "  pyflue run summarize --payload '{...}' --json      # {run_id, status, result, ...}\n"
        "  pyflue run summarize --payload '{...}' --jsonl     # every event, one JSON per line\n"
        "  PYFLUE_MODEL=test pyflue run summarize --payload '{...}'   # offline",
    ),
    "runs": (
        "list recorded runs",
        "List the runs recorded in the project's run store, newest first.",
        "pyflue runs\n"
        "  pyflue runs --workflow summarize --status failed --limit 20\n"
        "  pyflue runs --cursor <next cursor printed by the previous page>\n"
        "  pyflue runs --json",
    ),
    "logs": (
        "show the event log of a run",
        "Print every recorded event of a run, in order. With --follow, keep printing the events of\n"
        "a live run (started by any process) until it ends. Ctrl-C stops following; it does not\n"
        "cancel the run.",
        "pyflue logs workflow:summarize:01J...\n"
        "  pyflue logs workflow:summarize:01J... --follow\n"
        "  pyflue logs workflow:summarize:01J... --jsonl --types tool_start,tool_end",
    ),
    "prompt": (
        "send a message to an agent",
        "Prompt an agent instance of the project. The conversation is kept in the project's session\n"
        "store, so the next `pyflue prompt` with the same AGENT, INSTANCE and --session goes on\n"
        "from where this one ended.",
        'pyflue prompt assistant case-42 "Where is my order?" --session billing\n'
        '  echo "Summarise our conversation" | pyflue prompt assistant case-42 - --session billing',
    ),
    "agents": (
        "list the project's agents",
        "List the agents of the project (agents/*.py) and the files that failed to import.\n"
        "Exits 1 when a file failed to import.",
        "pyflue agents\n  pyflue agents --json",
    ),
    "workflows": (
        "list the project's workflows",
        "List the workflows of the project (workflows/*.py) and the files that failed to import.\n"
        "Exits 1 when a file failed to import.",
        "pyflue workflows\n  pyflue workflows --json",
    ),
}


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line (and exit 2) instead of usage text plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common() -> _Parser:
    """Options accepted before and after the command name (``pyflue --project p run x`` and
    ``pyflue run x --project p``); SUPPRESS keeps a later default from erasing an earlier value."""
    common = _Parser(add_help=False)
    common.add_argument(
        "--project",
        "-C",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the project directory (default: the current directory)",
    )
    common.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    return common


def _output_flags(parser: argparse.ArgumentParser, *, jsonl: bool = True) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", action="store_true", help="print one JSON object")
    if jsonl:
        group.add_argument("--jsonl", action="store_true", help="print every event as one JSON line")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (cheap: no command module is imported)."""
    common = _common()
    parser = _Parser(
        prog="pyflue",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"pyflue {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str) -> argparse.ArgumentParser:
        summary, description, examples = _COMMANDS[name]
        return commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog=f"examples:\n  {examples}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    init = command("init")
    init.add_argument("name", metavar="NAME", help="directory to create (or an empty one to fill)")

    run = command("run")
    run.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name (workflows/<name>.py)")
    run.add_argument(
        "--payload",
        "-p",
        metavar="JSON",
        help="the payload: inline JSON, @FILE, or - for standard input (default: none)",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--stream",
        action="store_true",
        help="show the live view (text, tool calls, tasks, logs) even when stdout is not a terminal",
    )
    mode.add_argument("--json", action="store_true", help="print one JSON object: run_id, status, result")
    mode.add_argument("--jsonl", action="store_true", help="print every event as one JSON line")
    run.add_argument("--timeout", type=float, metavar="SECONDS", help="cancel the run after SECONDS")

    runs = command("runs")
    runs.add_argument("--workflow", "-w", metavar="NAME", help="only runs of this workflow")
    runs.add_argument(
        "--status",
        "-s",
        choices=["running", "completed", "failed", "cancelled", "interrupted"],
        help="only runs with this status",
    )
    runs.add_argument("--limit", "-n", type=_positive, default=20, metavar="N", help="at most N runs (20)")
    runs.add_argument("--cursor", metavar="CURSOR", help="the page after this cursor")
    _output_flags(runs, jsonl=True)

    logs = command("logs")
    logs.add_argument("run_id", metavar="RUN_ID", help="the run's id (workflow:<name>:<ulid>)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing events until the run ends")
    logs.add_argument("--types", metavar="T1,T2", help="only these event types (comma-separated)")
    logs.add_argument("--after-seq", type=int, default=0, metavar="SEQ", help="only events after SEQ")
    logs.add_argument("--jsonl", action="store_true", help="print every event as one JSON line")

    prompt = command("prompt")
    prompt.add_argument("agent", metavar="AGENT", help="the agent's name (agents/<name>.py)")
    prompt.add_argument("instance", metavar="INSTANCE", help="the agent instance's id, e.g. a customer id")
    prompt.add_argument("message", metavar="MESSAGE", help="the message, or - to read it from standard input")
    prompt.add_argument("--session", "-s", default="default", metavar="ID", help="session id (default)")
    _output_flags(prompt)

    for name in ("agents", "workflows"):
        _output_flags(command(name), jsonl=False)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _version() -> str:
    """The installed distribution's version (importing ``pyflue`` itself costs nothing heavy)."""
    from pyflue import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.project = getattr(args, "project", None)
    args.verbose = bool(getattr(args, "verbose", False))
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    _configure_logging(args.verbose)
    try:
        module: Any = import_module(f"pyflue_cli.commands.{args.command.replace('-', '_')}")
        return int(module.run(args))
    except KeyboardInterrupt:
        # Before the command could arrange its own handling (e.g. while importing): nothing ran.
        print("pyflue: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # `pyflue logs ... | head`: the reader left. Not an error; silence Python's own complaint.
        from .output import silence_stdout

        silence_stdout()
        return COMPLETED
    except Exception as exc:
        return report(_unwrap(exc), verbose=args.verbose)


def _unwrap(exc: BaseException) -> BaseException:
    """The error inside the exception groups a task group wraps it in (one error each)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _configure_logging(verbose: bool) -> None:
    """The core logs what it survives (an observer that raised, a store write retried). Without
    ``--verbose`` that is one line on stderr, never a traceback; with it, the traceback and the
    core's debug messages too."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(verbose))
    logger = logging.getLogger("pyflue")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.propagate = False


def report(exc: BaseException, *, verbose: bool) -> int:
    """Print ``exc`` as one line on stderr (the traceback first with ``--verbose``)."""
    if verbose:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    code = exit_code_for(exc)
    line = one_line(exc)
    if not isinstance(exc, CliError) and type(exc).__module__.split(".")[0] != "pyflue" and not verbose:
        line += " (run with --verbose for the traceback)"
    print(f"pyflue: {line}", file=sys.stderr)
    return code


def _formatter(verbose: bool) -> Any:
    import logging

    if verbose:
        return logging.Formatter("pyflue: %(levelname)s: %(message)s")

    class OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            text = f"pyflue: {record.levelname.lower()}: {record.getMessage()}"
            if record.exc_info and record.exc_info[1] is not None:
                text += f" ({one_line(record.exc_info[1])}; --verbose shows the traceback)"
            return " ".join(text.split())

    return OneLine()
