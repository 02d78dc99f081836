"""Shared by the engine tests: concurrent calls that all arrive while the model is busy.

Only public interfaces are used: :func:`lychee_integrations.telemetry.add_listener` holds the
model (a listener of ``queue_wait_seconds`` runs while its call has the model) and counts the
model's runs (``pairs_scored``), and :meth:`LycheeReranker.score_encoded` takes the pairs.
Every wait is on an event, never on the clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from lychee_integrations.telemetry import add_listener

if TYPE_CHECKING:
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.engine.pairs import EncodedPair

__all__ = ["score_concurrently_while_busy"]

#: Seconds any one wait may last before the test fails (a hang, not a timing threshold).
WAIT = 120.0


class _Announced(Sequence["EncodedPair"]):
    """A call's pairs that signal when the engine has read them all (right before it queues the call)."""

    def __init__(self, pairs: list[EncodedPair], read: threading.Semaphore) -> None:
        self._pairs = pairs
        self._read = read

    def __len__(self) -> int:
        return len(self._pairs)

    @overload
    def __getitem__(self, index: int) -> EncodedPair: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[EncodedPair]: ...

    def __getitem__(self, index: int | slice) -> EncodedPair | Sequence[EncodedPair]:
        return self._pairs[index]

    def __iter__(self) -> Iterator[EncodedPair]:
        yield from self._pairs
        self._read.release()


def score_concurrently_while_busy(
    reranker: LycheeReranker, calls: Sequence[list[EncodedPair]]
) -> tuple[list[list[float]], list[int]]:
    """Score each call in its own thread, all of them arriving while the model runs the first.

    The first call is held inside its run (with the model) until every other call has handed
    its pairs to the engine; then it goes on.

    Returns:
        Each call's scores, and the number of pairs of each run of the model, in order.

    """
    holding, release = threading.Event(), threading.Event()
    read = threading.Semaphore(0)
    runs: list[int] = []
    results: list[list[float] | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            pairs = calls[i] if i == 0 else _Announced(calls[i], read)
            results[i] = reranker.score_encoded(pairs)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,), name=f"call-{i}") for i in range(len(calls))]

    def listener(name: str, value: float) -> None:
        if name == "pairs_scored":
            runs.append(int(value))
        elif name == "queue_wait_seconds" and threading.current_thread() is threads[0] and not holding.is_set():
            holding.set()
            release.wait(WAIT)  # the first call keeps the model while the others queue up

    remove = add_listener(listener)
    try:
        threads[0].start()
        assert holding.wait(WAIT), "the first call never got the model"
        for thread in threads[1:]:
            thread.start()
        for _ in threads[1:]:
            assert read.acquire(timeout=WAIT), "a call never reached the engine"
        release.set()
        for thread in threads:
            thread.join(WAIT)
            assert not thread.is_alive(), f"{thread.name} did not finish"
    finally:
        release.set()
        remove()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None], runs
