"""Locks that a forked child gets back unlocked.

Design decisions:

* ``fork()`` copies a lock in whatever state it had, and no thread but the forking one exists in
  the child: a lock another thread held at that instant stays held there for good, and the child's
  first use of it waits forever. Prefork servers, Celery and ``multiprocessing`` fork processes whose
  other threads are busy with the engine (a callback being claimed, a call inside the in-process
  sandbox), so every threading lock of the package is made here, and ``os.register_at_fork``
  re-initialises each live one in the child, as the standard library's ``logging`` does for its
  handlers' locks. The data such a lock guarded may be half-updated in the child; that is the price
  of a child that runs at all, and what the lock guards is memory the child owns alone from then on.
* Locks are tracked weakly: tracking keeps nothing alive.
* ``engine.runtime`` is not built on this: after a fork it drops its loops and threads altogether
  and makes a fresh lock with them.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, TypeVar

T = TypeVar("T")
_LIVE: "weakref.WeakSet[Any]" = weakref.WeakSet()


def lock() -> threading.Lock:
    """A ``threading.Lock`` that is unlocked again in a forked child."""
    return _tracked(threading.Lock())


def rlock() -> threading.RLock:
    """A ``threading.RLock`` that is unlocked again in a forked child."""
    return _tracked(threading.RLock())


def condition() -> threading.Condition:
    """A ``threading.Condition`` (over an ``RLock``) that is unlocked again in a forked child."""
    return _tracked(threading.Condition())


def _tracked(made: T) -> T:
    _LIVE.add(made)
    return made


def _reinit_in_child() -> None:
    for made in list(_LIVE):
        made._at_fork_reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)
