"""The one batching helper: sort by length, cap by a token budget, restore order, shrink on OOM."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["plan_batches", "run_batched"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def plan_batches(lengths: Sequence[int], *, max_batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Group item indices into batches of similar length.

    Items are taken longest first; a batch is closed when one more item would exceed
    ``max_batch_size`` items or ``max_batch_tokens`` padded tokens (the longest length
    times the number of rows). An item longer than the budget gets a batch of its own.

    Example:
        >>> plan_batches([5, 100, 7, 90], max_batch_size=2, max_batch_tokens=1000)
        [[1, 3], [2, 0]]

    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current:
            longest = lengths[current[0]]
            if len(current) >= max_batch_size or longest * (len(current) + 1) > max_batch_tokens:
                batches.append(current)
                current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def run_batched(
    items: Sequence[T],
    lengths: Sequence[int],
    fn: Callable[[list[T]], Sequence[R]],
    *,
    max_batch_size: int,
    max_batch_tokens: int,
    is_oom: Callable[[BaseException], bool] = lambda exc: False,
    after_oom: Callable[[], None] = lambda: None,
    progress: Callable[[int], None] = lambda n: None,
    failures: dict[int, Exception] | None = None,
) -> list[R]:
    """Run ``fn`` over ``items`` in planned batches and return its results in input order.

    When ``fn`` raises an error for which ``is_oom`` is true, ``after_oom`` runs (to free
    memory) and the batch is split in two and retried; a single item that still runs out
    of memory re-raises the error. With ``failures``, every failing batch is split (whatever
    the error) until the items that fail alone are found; their errors are recorded there, by
    item index, their results left ``None``, and the other items' results returned.

    Args:
        items: The work items.
        lengths: Each item's token length, for planning.
        fn: Computes one result per item of a batch, in the batch's order.
        max_batch_size: Most items per batch.
        max_batch_tokens: Most padded tokens per batch.
        is_oom: Says whether an error is an out-of-memory error.
        after_oom: Called after an out-of-memory error, before the retry.
        progress: Called with the number of items each finished batch held.
        failures: Where to record the errors of items that fail alone, instead of raising.

    Returns:
        One result per item, in the order of ``items``.

    """
    results: list[R | None] = [None] * len(items)
    pending = plan_batches(lengths, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens)
    while pending:
        batch = pending.pop(0)
        try:
            out = fn([items[i] for i in batch])
        except Exception as exc:
            oom = is_oom(exc)
            if failures is not None and len(batch) == 1:
                failures[batch[0]] = exc
                progress(1)
                continue
            if len(batch) == 1 or not (oom or failures is not None):
                raise
            if oom:
                after_oom()
            half = len(batch) // 2
            what = "out of memory" if oom else f"{type(exc).__name__}"
            logger.warning("%s on a batch of %d; retrying as %d + %d", what, len(batch), half, len(batch) - half)
            pending[:0] = [batch[:half], batch[half:]]
            continue
        if len(out) != len(batch):
            raise RuntimeError(f"batch function returned {len(out)} results for {len(batch)} items")
        for i, result in zip(batch, out, strict=True):
            results[i] = result
        progress(len(batch))
    return results  # type: ignore[return-value]
