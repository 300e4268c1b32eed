"""Reading a file someone named, bounded: a regular file of at most ``limit`` bytes, or why not.

Design decisions:

* One reader for every file a user or a directory names: descriptor files, upload parts given as
  paths, the command line's ``--data @file``. Each caller words its own error around the reason.
* The file is opened with ``O_NONBLOCK``, so opening a FIFO cannot wait for a writer that never
  comes. ``fstat`` runs on the open handle, so the file checked is the file read. Anything but a
  regular file is refused: a device such as ``/dev/zero`` never ends.
* Nothing is read past ``limit + 1`` bytes, so a file that grows underneath is caught and memory
  stays bounded. Reads are sized to the file (``st_size + 1`` first), not to the limit, so a small
  file under a large limit allocates nothing large.
"""

from __future__ import annotations

import os
import stat
from typing import Any, NamedTuple, Union

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class Unread(NamedTuple):
    """Why a file was not read: ``reason`` (short, lower case), and whether it passed the limit."""

    reason: str
    too_large: bool = False


def read_regular_file(path: "os.PathLike[Any] | str", limit: int) -> Union[bytes, Unread]:
    """The content of the regular file at ``path`` if it holds at most ``limit`` bytes; else why not.

    A value, not an exception: each caller turns the reason into its own error, and none escapes.
    """
    try:
        handle = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return Unread(_reason(exc))
    try:
        measured = os.fstat(handle)
        if not stat.S_ISREG(measured.st_mode):
            return Unread("not a regular file")
        if measured.st_size > limit:
            return Unread(f"{measured.st_size} bytes, more than {limit}", too_large=True)
        content = _read_up_to(handle, measured.st_size + 1)
        if len(content) > measured.st_size:  # it grew since fstat: read on, to one byte past the limit
            content += _read_up_to(handle, limit + 1 - len(content))
    except OSError as exc:
        return Unread(_reason(exc))
    finally:
        os.close(handle)
    return content if len(content) <= limit else Unread(f"more than {limit} bytes", too_large=True)


def _read_up_to(handle: int, count: int) -> bytes:
    chunks, size = [], 0
    while size < count and (chunk := os.read(handle, count - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
