"""One file written from many threads: always the newest dump, never an older one over it.

Design decisions:

* The world is saved from several threads (the served ticker, a blocking ``advance``, an action,
  which saves holding the store's lock). Each dump is numbered by ``number()`` under the caller's
  own locks, so numbers follow the order the dumps were taken, whatever order they arrive in.
* ``hand_over``: one thread at a time writes, always the newest dump it has been handed, and a
  saver that finds another writing leaves its dump to it and returns at once. So a slow older save
  never lands over a newer one, and no saver waits for another's file I/O (an action must not wait
  for the ticker's write) unless it asks to (``wait``: the server's last save on stop, for at most
  ``WAIT_SECONDS``).
* The writer stops being the writer in the same locked step that finds nothing newer, so a dump
  handed over at that moment is never left unwritten. A write that fails is raised in the thread
  that wrote; the dump stays handed over, so the next save in any thread writes the newest state.
* The condition guarding the hand-over is held only to read and set a few fields, never during
  file I/O, and nothing else is locked under it.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import attrs

from engine import forksafe

WAIT_SECONDS = 30.0  # the longest a waiting save waits for another thread's write


@attrs.frozen
class Dump:
    """One dump, numbered in the order dumps were taken, with the mark of the state it holds."""

    number: int
    mark: Any
    text: bytes = attrs.field(repr=False)


class NewestWriter:
    """Writes the newest of the dumps handed over by any thread with ``write``."""

    def __init__(self, write: Callable[[bytes], None], written_mark: Any = None) -> None:
        self._write = write
        self._lock = forksafe.condition()  # guards the fields below; never held during file I/O
        self._numbered = self._written = 0
        self._newest: Optional[Dump] = None
        self._busy = False
        self.written_mark = written_mark  # the mark of the newest dump written (or of what is on disk)

    def number(self) -> int:
        """The next dump's number: call it under the lock that orders the dumps."""
        self._numbered += 1
        return self._numbered

    def hand_over(self, dump: Dump, wait: bool = False) -> None:
        """Write ``dump``, or leave it to the thread writing now (see the module docstring)."""
        with self._lock:
            if self._newest is None or dump.number > self._newest.number:
                self._newest = dump
            if self._busy:
                if not wait:
                    return
                finished = self._lock.wait_for(lambda: not self._busy or self._written >= dump.number, WAIT_SECONDS)
                if not finished or self._written >= dump.number:
                    return
            self._busy = True
        while True:
            with self._lock:
                newest = self._newest
                if newest is None or newest.number <= self._written:
                    self._busy = False  # in the step that found nothing newer: nothing slips by
                    self._lock.notify_all()
                    return
            try:
                self._write(newest.text)  # outside the lock: savers hand over and go
            except BaseException:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()
                raise
            with self._lock:
                self._written, self.written_mark = newest.number, newest.mark
