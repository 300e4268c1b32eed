"""Key material in a box that shows nothing: the APIv3 and APIv2 keys, key settings as given, PEM text.

Design decisions:

* Error trackers (Sentry and the like) record every frame's locals with their ``repr``. A bare
  ``bytes`` APIv3 key or a PEM string passed from frame to frame would be in all of them. So the
  engine wraps such values in ``Secret`` as soon as they arrive (by the wrapper around
  ``Engine.__init__``, before its first line) and passes the box along; only the innermost
  cryptographic call opens it, inline, without binding the plaintext to a local name.
* ``repr``, ``str`` and ``format`` say ``Secret(<hidden>)``; pickling refuses (key material does not
  belong in a Celery result or a queue); equality and hashing are by identity, so a comparison
  cannot be used to probe the value.
* Where a value cannot travel boxed through every frame (a payload's plaintext, walked by the
  field cipher and handed to plugins), the frames are emptied instead: ``forget_frames`` clears the
  locals of every finished frame an exception went through below a given frame (causes, contexts
  and exception-group members too; never the caller's frames, nor a paused coroutine's), and
  leaves the traceback whole (files, lines, functions), so a failure still says where it happened.
* Every constructor that takes ``Engine`` settings as keywords (``Engine``, ``Engine.sandbox``,
  ``Engine.from_env``, the pytest plugin's ``RunningSandbox.engine``) boxes them with the one
  ``hide_settings``, so the list of which settings are secret lives here, once.
"""

from __future__ import annotations

import contextlib
from types import FrameType, TracebackType
from typing import Any, Optional

__all__ = ["SECRET_SETTINGS", "Secret", "forget_frames", "hide", "hide_settings", "reveal"]

SECRET_SETTINGS = ("private_key", "apiv3_key", "apiv2_key", "client_certificate")
SECRET_TEXT_SETTINGS = ("store", "notification_store")  # boxed when text: a store URL may carry a password


class Secret:
    """A value that never shows itself; ``reveal()`` hands it over."""

    __slots__ = ("_value",)
    _value: Any

    def __init__(self, value: Any) -> None:
        object.__setattr__(self, "_value", value)

    def reveal(self) -> Any:
        return self._value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Secret cannot be changed")

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("key material does not pickle")


def hide(value: Any) -> Any:
    """``value`` in a ``Secret`` (``None`` and existing secrets stay as they are)."""
    return value if value is None or isinstance(value, Secret) else Secret(value)


def reveal(value: Any) -> Any:
    """The value inside a ``Secret``, or ``value`` itself."""
    return value.reveal() if isinstance(value, Secret) else value


def hide_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``Engine`` keyword arguments (changed in place) with the key settings, and a store URL, boxed.

    In place, because the caller's frame holds that very dict (``**options``): boxing a copy would
    leave the plain values in view.
    """
    for name in SECRET_SETTINGS:
        if name in settings:
            settings[name] = hide(settings[name])
    for name in SECRET_TEXT_SETTINGS:
        if isinstance(settings.get(name), str):
            settings[name] = hide(settings[name])
    return settings


def forget_frames(error: BaseException, below: FrameType) -> None:
    """Clear the locals of the finished frames ``error`` went through from ``below`` on.

    ``error``'s traceback, and those of its causes, contexts and (for an exception group) members,
    are walked; in each, the frames from the first one ``below`` called (directly or not) to the
    end are cleared: what those calls ran, in this thread, in a worker thread whose exception was
    re-raised here, or in a generator expression. Tracebacks that never pass through a call from
    ``below`` are left alone: the caller's own frames (an exception the caller was handling becomes
    the context), other tasks', and paused generators and coroutines, which ``frame.clear()`` would
    close. The frames stay in the traceback, so it still shows where the call failed; what they held
    (a payload's plaintext, a decrypted field) is gone.
    """
    pending, seen = [error], set()
    while pending:
        exc = pending.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        _clear_from(exc.__traceback__, below)
        pending.extend(linked for linked in (exc.__cause__, exc.__context__) if linked is not None)
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)


def _clear_from(step: Optional[TracebackType], below: FrameType) -> None:
    """Clear every frame of the traceback from the first that is ``below`` or was called from it."""
    reached = False
    while step is not None:
        reached = reached or step.tb_frame is below or _called_from(step.tb_frame, below)
        if reached:
            with contextlib.suppress(RuntimeError):  # "cannot clear an executing frame": below itself
                step.tb_frame.clear()
        step = step.tb_next


def _called_from(frame: FrameType, below: FrameType) -> bool:
    caller = frame.f_back
    while caller is not None:
        if caller is below:
            return True
        caller = caller.f_back
    return False
