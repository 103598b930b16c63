"""Stores: where what must outlive a process lives, behind small protocols.

A store is an object with an async API and a lifetime (``aclose()``; ``async with`` works) that keeps
one kind of durable state. Three protocols, each with a contract test suite any implementation runs
(``tests/stores/``):

- :class:`~pyflue.stores.sessions.SessionStore` (:mod:`pyflue.stores.sessions`): conversation
  histories, append-only, with a version and a turn lease per session so several processes take
  turns on one conversation.
- :class:`~pyflue.stores.runs.RunStore` (:mod:`pyflue.stores.runs`): workflow runs and their event
  logs, readable, followable and cancellable from any process.
- the dispatch store: durable admission of dispatched input, delivered in order per session.

Implementations: :mod:`pyflue.stores.memory` (one process, for tests and ephemeral use) and
:mod:`pyflue.stores.sqlite` (one file shared by the processes of a host). Process liveness, which
stores use to tell a dead owner's work from live work, is :mod:`pyflue.stores.liveness`. Nothing is
imported here, so ``import pyflue`` stays light.
"""
