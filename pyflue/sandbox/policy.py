"""What a sandbox lets commands do: :class:`SandboxPolicy`.

The policy is data on the sandbox (``local(path, policy=...)``), checked before any command runs by
:meth:`SandboxPolicy.check`, which every caller goes through (the ``bash`` tool, ``session.shell``).
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError, shown
from .command import parse_command
from .errors import CommandRefusedError

__all__ = ["INDIRECT_PROGRAMS", "Command", "SandboxPolicy"]

#: Programs that run another command given as an argument or a string. They would turn an allowed
#: command into any command, so they are refused unless named in ``commands=`` explicitly.
INDIRECT_PROGRAMS = frozenset(
    {
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox",
        "env", "xargs", "exec", "eval", "command", "builtin", "source", ".", "trap", "coproc",
        "nohup", "nice", "ionice", "timeout", "setsid", "stdbuf", "chroot", "unshare", "flock",
        "sudo", "su", "doas", "runuser", "script", "watch", "parallel", "strace", "ltrace",
        "mapfile", "readarray", "hash", "enable", "fc",
    }
)  # fmt: skip

_SECRET_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
#: The clean environment's own names: a secret may not replace them.
_BASE_ENV = frozenset({"PATH", "HOME", "LANG"})


@dataclass(frozen=True, slots=True)
class Command:
    """A command the policy allowed: ``argv`` to execute, and whether it is a shell script (then
    ``argv`` is ``[script_shell, "-c", text]``)."""

    argv: tuple[str, ...]
    text: str
    script: bool


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """What commands in a sandbox may do.

    - ``shell``: commands run only when True (default: off).
    - ``commands``: the programs allowed as ``argv[0]`` (exact names, e.g. ``{"ls", "git"}``); None
      allows any program except the indirection ones (:data:`INDIRECT_PROGRAMS`: ``sh -c``,
      ``env``, ``xargs``, ...), which are allowed only when named here.
    - ``compound``: allow shell syntax (pipes, ``;``, ``&&``, ``||``, redirections, subshells,
      newlines, ``$VAR``, globs, ``$(...)``, backticks); the command then runs through
      ``script_shell -c``, and every program in it, nested ones included, must be allowed. Off by
      default: a command is one program and its arguments, executed without any shell.
    - ``secrets``: environment variables granted to commands by name. Nothing else of the host's
      environment reaches a command: it gets ``PATH`` (``path``), ``HOME`` (the sandbox root) and
      ``LANG`` only.
    - ``timeout``: seconds a command may run (a call may ask for less, never more); then its whole
      process group is killed. ``max_output``: bytes of stdout and of stderr kept per command.
    - ``max_file_bytes``: the largest file the file API reads or writes.
    """

    shell: bool = False
    commands: Collection[str] | None = None
    compound: bool = False
    secrets: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 120.0
    max_output: int = 100_000
    max_file_bytes: int = 32 * 1024 * 1024
    path: str = "/usr/local/bin:/usr/bin:/bin"
    lang: str = "C.UTF-8"
    script_shell: str = "bash"

    def __post_init__(self) -> None:
        if self.commands is not None:
            if isinstance(self.commands, str) or not all(
                isinstance(c, str) and c and "\x00" not in c for c in self.commands
            ):
                raise ConfigError("SandboxPolicy(commands=...) takes a collection of program names")
            object.__setattr__(self, "commands", frozenset(self.commands))
        if not isinstance(self.secrets, Mapping):
            raise ConfigError("SandboxPolicy(secrets=...) takes a mapping of variable names to values")
        for name, value in self.secrets.items():
            if (
                not isinstance(name, str)
                or not name
                or not set(name) <= _SECRET_NAME_CHARS
                or name[0].isdigit()
            ):
                raise ConfigError(f"secret name {shown(name)} must be letters, digits and '_'")
            if name in _BASE_ENV:
                raise ConfigError(f"secret name {name} would replace the clean environment's own {name}")
            if not isinstance(value, str) or "\x00" in value:
                raise ConfigError(f"secret {name} must be a string without NUL characters")
        object.__setattr__(self, "secrets", MappingProxyType(dict(self.secrets)))
        for name in ("timeout", "max_output", "max_file_bytes"):
            number: Any = getattr(self, name)
            if (
                isinstance(number, bool)
                or not isinstance(number, int | float)
                or not math.isfinite(number)
                or number <= 0
            ):
                raise ConfigError(f"SandboxPolicy({name}=...) must be a positive number, got {shown(number)}")

    def __repr__(self) -> str:  # never print secret values
        secrets = sorted(self.secrets)
        return (
            f"SandboxPolicy(shell={self.shell}, commands={sorted(self.commands) if self.commands else None}, "
            f"compound={self.compound}, secrets={secrets}, timeout={self.timeout})"
        )

    def base_environment(self, home: str) -> dict[str, str]:
        """The clean environment of a command run with ``HOME`` at ``home``; the sandbox adds the
        granted ``secrets`` to it, and nothing else."""
        return {"PATH": self.path, "HOME": home, "LANG": self.lang}

    def check(self, command: str | Sequence[str]) -> Command:
        """The command as it will run, or :class:`CommandRefusedError` saying why not.

        A string is parsed like a shell would (see :mod:`pyflue.sandbox.command`); a sequence is an
        argv run as is, without a shell."""
        if not self.shell:
            raise CommandRefusedError(
                "the shell is off in this sandbox; use the file tools, or allow commands with "
                "SandboxPolicy(shell=True, commands=[...])"
            )
        if isinstance(command, str):
            parsed = parse_command(command)
            if parsed.features and not self.compound:
                raise CommandRefusedError(
                    f"shell syntax is not allowed here ({', '.join(sorted(parsed.features))}); run one "
                    "program with its arguments, e.g. `ls -la src`, and use the file tools for the rest"
                )
            for program in parsed.programs:
                self._check_program(program.name, program.literal)
            if parsed.features:
                return Command((self.script_shell, "-c", command), command, True)
            self._check_program(parsed.argv[0], True)  # what runs is argv[0], whatever the parse said
            return Command(tuple(parsed.argv), command, False)
        if not isinstance(command, Sequence) or not command:
            raise CommandRefusedError("a command is a string or a non-empty list of strings")
        if not all(isinstance(arg, str) and "\x00" not in arg for arg in command):
            raise CommandRefusedError("every argument must be a string without NUL characters")
        self._check_program(command[0], True)
        return Command(tuple(command), " ".join(command), False)

    def _check_program(self, name: str, literal: bool) -> None:
        if not literal:
            raise CommandRefusedError(
                f"the program name {shown(name)} is computed when the command runs; write it literally"
            )
        allowed = self.commands
        if allowed is not None and name in allowed:
            return
        if posixpath.basename(name) in INDIRECT_PROGRAMS:
            raise CommandRefusedError(
                f"{shown(name)} runs other commands; it is allowed only when named in "
                "SandboxPolicy(commands=...)"
            )
        if allowed is not None:
            names = ", ".join(sorted(allowed)) or "none"
            raise CommandRefusedError(
                f"the program {shown(name)} is not allowed here; allowed: {names}"[:600]
            )
