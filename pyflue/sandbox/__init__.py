"""Sandboxes: the workspace an agent's file and shell tools act on, under a policy.

- :func:`virtual` — an in-memory filesystem (no shell); :func:`local` — a host directory the file
  API cannot leave; or any object implementing the :class:`Sandbox` protocol (a container, a
  remote machine).
- :class:`SandboxPolicy` — whether commands run, which programs, which shell syntax, which secrets.
- :func:`sandbox_tools` — ``read``, ``write``, ``edit``, ``grep``, ``glob``, ``bash`` for models;
  :class:`SandboxFS` — the same for code (``session.fs``, ``session.shell``).

See docs/sandbox.md for what is and is not a security boundary.
"""

from __future__ import annotations

from .errors import CommandRefusedError, SandboxError, SandboxNotFoundError, SandboxPathError
from .fs import SandboxFS, as_sandbox
from .local import LocalSandbox, local
from .policy import SandboxPolicy
from .protocol import Entry, ExecResult, GrepMatch, Sandbox
from .tools import sandbox_tools
from .virtual import VirtualSandbox, virtual

__all__ = [
    "CommandRefusedError",
    "Entry",
    "ExecResult",
    "GrepMatch",
    "LocalSandbox",
    "Sandbox",
    "SandboxError",
    "SandboxFS",
    "SandboxNotFoundError",
    "SandboxPathError",
    "SandboxPolicy",
    "VirtualSandbox",
    "as_sandbox",
    "local",
    "sandbox_tools",
    "virtual",
]
