"""The one timing helper of the benchmarks: best wall time of a few runs, GPU work included."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def best_of(fn: Callable[[], object], repeat: int, *, warm_up: bool = False) -> float:
    """Return the shortest of ``repeat`` wall times of ``fn()``, after one untimed call if ``warm_up``.

    Work queued on a GPU is waited for before and after each run, so it counts.
    """
    if warm_up:
        fn()
    best = float("inf")
    for _ in range(repeat):
        _synchronize()
        start = time.perf_counter()
        fn()
        _synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def best_interleaved(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Return each function's shortest wall time over ``repeat`` rounds that call them in turn.

    One untimed call of each first. Taking turns spreads the machine's slow spells over all of
    them, so their ratio is fairer than that of back-to-back series on a shared machine.
    """
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for k, fn in enumerate(fns):
            _synchronize()
            start = time.perf_counter()
            fn()
            _synchronize()
            best[k] = min(best[k], time.perf_counter() - start)
    return best
