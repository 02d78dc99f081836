"""A pair that fails alone fails only the call that owns it; the other pairs, and other calls, get their scores."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lychee_integrations import InputTooLongError, InvalidDocumentsError
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.engine.batching import run_batched
from lychee_integrations.engine.model import is_out_of_memory

CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"
)
GOOD = ["a cat on a mat", "the stock market fell", "a dog in the park"]
HUGE = "word " * 120  # the one pair over the simulated memory limit


def test_the_cpu_allocators_message_counts_as_out_of_memory() -> None:
    assert is_out_of_memory(RuntimeError(CPU_OOM))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_run_batched_isolates_the_items_that_fail_alone() -> None:
    failures: dict[int, Exception] = {}

    def fn(batch: list[int]) -> list[int]:
        if 3 in batch:
            raise ValueError("item 3 is broken")
        return [x * 10 for x in batch]

    out = run_batched(list(range(6)), [1] * 6, fn, max_batch_size=8, max_batch_tokens=100, failures=failures)
    assert list(failures) == [3] and isinstance(failures[3], ValueError)
    assert [out[i] for i in (0, 1, 2, 4, 5)] == [0, 10, 20, 40, 50]


@pytest.fixture()
def limited(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> LycheeReranker:
    """An engine whose forward runs out of CPU memory on any batch holding a pair over 300 tokens."""
    reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", dtype="float32", batch_size=8)
    model = reranker._get_runtime().model
    limit = 300
    assert max(len(p) for p in reranker.encode("q", GOOD)) < limit < len(reranker.encode("q", [HUGE])[0])
    plain, suffix = model.score_batch, model.score_suffix

    def score_batch(batch: Any, cache: Any = None) -> list[float]:
        if max(len(p) for p in batch) > limit:
            raise RuntimeError(CPU_OOM)
        return plain(batch, cache)

    def score_suffix(batch: Any, state: Any, cache: Any = None) -> list[float]:
        if max(len(p) for p in batch) > limit:
            raise RuntimeError(CPU_OOM)
        return suffix(batch, state, cache)

    monkeypatch.setattr(model, "score_batch", score_batch)
    monkeypatch.setattr(model, "score_suffix", score_suffix)
    return reranker


def test_a_pair_out_of_memory_alone_is_named(limited: LycheeReranker, tiny_reranker: LycheeReranker) -> None:
    with pytest.raises(InputTooLongError) as caught:
        limited.score("q", [GOOD[0], HUGE, GOOD[1]])
    assert caught.value.index == 1 and "document 1" in str(caught.value) and "memory" in str(caught.value)
    with pytest.raises(InvalidDocumentsError) as several:
        limited.score("q", [HUGE, GOOD[0], HUGE])
    assert [i for i, _ in several.value.problems] == [0, 2]
    assert limited.score("q", GOOD) == pytest.approx(tiny_reranker.score("q", GOOD), abs=1e-5)


def test_a_failing_pair_fails_only_its_own_call_in_a_combined_run(
    limited: LycheeReranker, tiny_reranker: LycheeReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = limited._get_runtime().model
    gate, entered = threading.Event(), threading.Event()
    forward = model.score_batch

    def held(batch: Any, cache: Any = None) -> list[float]:
        if not gate.is_set():  # the first run holds the model until both other calls are queued
            entered.set()
            gate.wait(60)
        return forward(batch, cache)

    monkeypatch.setattr(model, "score_batch", held)
    results: dict[str, Any] = {}

    def call(name: str, documents: list[str]) -> None:
        try:
            results[name] = limited.score(f"query {name}", documents)
        except Exception as exc:
            results[name] = exc

    first = threading.Thread(target=call, args=("first", ["warm up"]))
    first.start()
    assert entered.wait(60)
    good = threading.Thread(target=call, args=("good", GOOD))
    bad = threading.Thread(target=call, args=("bad", [GOOD[2], HUGE]))
    good.start()
    bad.start()
    deadline = time.monotonic() + 60
    while limited.waiting_calls < 2:  # both calls wait to be combined into the next run
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gate.set()
    for thread in (first, good, bad):
        thread.join(120)
    assert isinstance(results["bad"], InputTooLongError) and results["bad"].index == 1
    assert results["good"] == pytest.approx(tiny_reranker.score("query good", GOOD), abs=1e-5)
