"""The store protocols under the module path they had before the split into
:mod:`pyflue.stores.sessions` and :mod:`pyflue.stores.runs`; import from those."""

from __future__ import annotations

from .runs import (
    RUN_STATUSES,
    RunPage,
    RunRecord,
    RunStatus,
    RunStore,
    decode_cursor,
    encode_cursor,
    interrupted_error,
)
from .sessions import SessionKey, SessionStore, StoredMessage

__all__ = [
    "RUN_STATUSES",
    "RunPage",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "SessionKey",
    "SessionStore",
    "StoredMessage",
    "decode_cursor",
    "encode_cursor",
    "interrupted_error",
]
