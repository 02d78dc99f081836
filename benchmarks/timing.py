"""The one timing helper of the benchmarks: best wall time of a few runs, GPU work included."""

from __future__ import annotations

import time
from collections.abc import Callable


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
