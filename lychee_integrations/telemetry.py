"""Engine events for metrics and logs, without a metrics dependency.

The engine reports what it does through :func:`emit`; a service (or a user) that wants
metrics registers a listener with :func:`add_listener`. Listeners run in the engine's
thread and must be quick; an exception in one is logged and never reaches the caller.

Events (name: value):
    ``queue_wait_seconds``: how long a call waited for the model (other calls running).
    ``batch_pairs``: pairs in one forward pass.
    ``batch_tokens``: tokens (padding included) in one forward pass; a prefix shared by the pairs
    runs once before their batches and is not counted here.
    ``batch_seconds``: duration of one forward pass.
    ``pairs_scored``: pairs scored by one run of the model.
    ``tokens_scored``: prompt tokens (without padding) scored by one run of the model.

Example:
    >>> seen = []
    >>> remove = add_listener(lambda name, value: seen.append((name, value)))
    >>> emit("batch_pairs", 8)
    >>> seen
    [('batch_pairs', 8.0)]
    >>> remove()

"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Listener", "add_listener", "emit"]

logger = logging.getLogger(__name__)

#: ``(event name, value) -> None``.
Listener = Callable[[str, float], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def add_listener(listener: Listener) -> Callable[[], None]:
    """Call ``listener(name, value)`` on every event; returns a function that removes it."""
    with _lock:
        _listeners.append(listener)

    def remove() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def emit(name: str, value: float) -> None:
    """Send one event to every listener (a no-op when there are none)."""
    if not _listeners:
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(name, float(value))
        except Exception:
            logger.exception("telemetry listener %r failed on %s", listener, name)
