"""The batching helper: planning under a token budget, order restoration, OOM shrinking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lychee_integrations.engine.batching import plan_batches, run_batched


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=5000), max_size=80),
    st.integers(min_value=1, max_value=32),
    st.integers(min_value=1, max_value=20000),
)
def test_plan_covers_every_item_once_within_limits(lengths: list[int], size: int, tokens: int) -> None:
    batches = plan_batches(lengths, max_batch_size=size, max_batch_tokens=tokens)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= size
        if len(batch) > 1:
            assert max(lengths[i] for i in batch) * len(batch) <= tokens
        assert lengths[batch[0]] == max(lengths[i] for i in batch)
    longest_first = [lengths[i] for i in flat]
    assert longest_first == sorted(longest_first, reverse=True)


class FakeOOM(RuntimeError):
    pass


def test_run_batched_restores_order_and_shrinks_on_oom() -> None:
    rng = random.Random(1)
    items = [rng.randint(1, 100) for _ in range(37)]
    seen_sizes: list[int] = []
    succeeded: list[int] = []
    freed: list[int] = []

    def square_unless_big(batch: list[int]) -> list[int]:
        seen_sizes.append(len(batch))
        if len(batch) > 3:
            raise FakeOOM("CUDA out of memory")
        succeeded.append(len(batch))
        return [x * x for x in batch]

    out = run_batched(
        items,
        items,
        square_unless_big,
        max_batch_size=16,
        max_batch_tokens=10**9,
        is_oom=lambda e: isinstance(e, FakeOOM),
        after_oom=lambda: freed.append(1),
    )
    assert out == [x * x for x in items]
    assert 16 in seen_sizes and max(succeeded) <= 3 and sum(succeeded) == len(items)
    assert len(freed) == len(seen_sizes) - len(succeeded)


def test_run_batched_reraises_other_errors_and_single_item_oom() -> None:
    def boom(batch: list[int]) -> list[int]:
        raise ValueError("bad")

    with pytest.raises(ValueError):
        run_batched([1, 2, 3], [1, 1, 1], boom, max_batch_size=4, max_batch_tokens=100, is_oom=lambda e: True)

    def always_oom(batch: list[int]) -> list[int]:
        raise FakeOOM("out of memory")

    with pytest.raises(FakeOOM):
        run_batched([1, 2], [1, 1], always_oom, max_batch_size=4, max_batch_tokens=100, is_oom=lambda e: True)


def test_progress_counts_every_item() -> None:
    counted: list[int] = []
    run_batched(
        list(range(10)),
        [1] * 10,
        lambda b: b,
        max_batch_size=3,
        max_batch_tokens=100,
        progress=counted.append,
    )
    assert sum(counted) == 10 and len(counted) == 4
