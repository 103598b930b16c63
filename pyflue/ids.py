"""Time-sortable ids.

All ids are ULIDs (26 Crockford base32 characters): sortable by creation time and, within one
process, strictly increasing even inside one millisecond (the random part is incremented, as the
ULID spec's monotonic mode says). Run ids are ``workflow:<name>:<ulid>``.
"""

from __future__ import annotations

import itertools
import os
import re
import time

from .errors import ConfigError, InvalidIdError

__all__ = [
    "check_id",
    "encode_ulid",
    "new_dispatch_id",
    "new_event_id",
    "new_operation_id",
    "new_run_id",
    "new_ulid",
    "new_ulid_int",
]

_last_ms = 0
_RAND_MAX = (1 << 80) - 1
# Half the space as headroom, so the counter never wraps within a process's lifetime.
_BASE = int.from_bytes(os.urandom(10), "big") >> 1
_counter = itertools.count()


def new_ulid() -> str:
    """A new ULID string, strictly greater than any this process made before."""
    return encode_ulid(new_ulid_int())


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def encode_ulid(value: int) -> str:
    """Crockford base32 of a 128-bit ULID (26 characters)."""
    out = []
    for _ in range(13):
        out.append(_PAIRS[value & 0x3FF])
        value >>= 10
    return "".join(reversed(out))


def new_ulid_int() -> int:
    """A new ULID as an int, strictly greater than any this process made before.

    The 80 "random" bits are a random per-process base plus a process-wide counter (the ULID spec's
    monotonic mode): unique across processes with overwhelming probability, strictly increasing
    within one, and cheap enough to stamp every streamed delta (no lock, no ``urandom`` per call).
    """
    global _last_ms
    ms = time.time_ns() // 1_000_000
    if ms < _last_ms:  # the wall clock stepped back: never let ids go backwards
        ms = _last_ms
    _last_ms = ms
    return (ms << 80) | ((_BASE + next(_counter)) & _RAND_MAX)


def ulid_int_at(timestamp: float, sequence: int) -> int:
    """The ULID of something stamped at ``timestamp`` (seconds) with ``next(_counter)``."""
    return (int(timestamp * 1000) << 80) | ((_BASE + sequence) & _RAND_MAX)


new_event_id = new_ulid
new_operation_id = new_ulid
new_dispatch_id = new_ulid

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def new_run_id(workflow: str) -> str:
    """``workflow:<name>:<ulid>`` for a workflow named by a project file."""
    if not _NAME.match(workflow):
        raise ConfigError(f"workflow name {workflow!r} must match [a-z0-9][a-z0-9_-]*")
    return f"workflow:{workflow}:{new_ulid()}"


_MAX_ID = 256


def check_id(value: object, what: str = "id") -> str:
    """Validate a user-supplied instance/session id. Ids are data, never paths: any printable text
    up to 256 characters is accepted as is (``..`` and ``a/b`` are ordinary, distinct ids)."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{what} must be a string, got {type(value).__name__}")
    if not value or len(value) > _MAX_ID:
        raise InvalidIdError(f"{what} must be 1 to {_MAX_ID} characters, got {len(value)}")
    if not value.isprintable():
        raise InvalidIdError(f"{what} {value!r} contains control characters; use printable text")
    return value
