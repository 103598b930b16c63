"""``pyflue``: argument parsing, and the one place where errors become exit codes.

A command is one module, ``pyflue_cli.commands.<name>``, with ``HELP`` (one line), ``DESCRIPTION``,
``EXAMPLES``, ``add_arguments(parser)`` and ``run(args) -> exit code``; adding a command is adding
its name to :data:`COMMANDS`. Every command module is imported to build the parser, so it imports
only argparse, the standard library and this package's small modules at the top: ``pyflue --help``
must not pay for pydantic, httpx, anyio or rich. The core is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any, NoReturn

from .exits import COMPLETED, INTERRUPTED, USAGE, CliError, exit_code_for, one_line, print_error

__all__ = ["COMMANDS", "build_parser", "main"]

#: The commands, in the order ``pyflue --help`` lists them (module ``pyflue_cli.commands.<name>``).
COMMANDS = (
    "init",
    "run",
    "resume",
    "runs",
    "logs",
    "prompt",
    "agents",
    "workflows",
    "serve",
    "dispatch",
    "dispatches",
    "worker",
    "db",
    "mcp",
)

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

exit codes: 0 completed; 1 the run failed (it is recorded: pyflue logs RUN_ID shows it);
2 nothing ran (usage, input or setup error); 130 interrupted (Ctrl-C).
PYFLUE_MODEL=test runs any project offline. `pyflue COMMAND --help` shows a command's options.
"""


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


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (each command module adds its own arguments)."""
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
    for name in COMMANDS:
        module = _command(name)
        sub = commands.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=f"examples:\n  {module.EXAMPLES}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )
        module.add_arguments(sub)
    return parser


def _command(name: str) -> Any:
    return import_module(f"pyflue_cli.commands.{name.replace('-', '_')}")


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
        return int(_command(args.command).run(args))
    except KeyboardInterrupt:
        # Before the command could arrange its own handling (e.g. while importing): nothing ran.
        print_error("interrupted")
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
    """Print ``exc`` as one line on stderr (its traceback first with ``--verbose``)."""
    line = one_line(exc)
    if not isinstance(exc, CliError) and type(exc).__module__.split(".")[0] != "pyflue" and not verbose:
        line += " (run with --verbose for the traceback)"
    trace = None
    if verbose:
        import traceback

        trace = "".join(traceback.format_exception(exc))
    print_error(line, trace)
    return exit_code_for(exc)


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
