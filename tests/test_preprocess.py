"""Preprocessing in a thread pool: same pairs, same scores, same errors, in input order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import make_image

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.errors import InvalidDocumentsError, InvalidInputError
from lychee_integrations.inputs import map_documents


def test_map_documents_uses_threads_and_keeps_order() -> None:
    seen: set[str] = set()
    barrier = threading.Barrier(3, timeout=10)

    def convert(document: object, item: str, index: int) -> str:
        if index < 3:
            barrier.wait()  # three documents in flight at once, or this times out
        seen.add(threading.current_thread().name)
        return f"{item}:{document}"

    out = map_documents(["a", "b", "c", "d", "e"], convert, workers=3)
    assert out == ["document 0:a", "document 1:b", "document 2:c", "document 3:d", "document 4:e"]
    assert len(seen) >= 3


def test_map_documents_accounts_for_every_failure_with_workers() -> None:
    def convert(document: object, item: str, index: int) -> int:
        if index % 2:
            raise InvalidInputError(item, "odd", index=index)
        return index

    with pytest.raises(InvalidDocumentsError) as info:
        map_documents(list(range(7)), convert, workers=4)
    assert [index for index, _ in info.value.problems] == [1, 3, 5]


def test_engine_scores_and_errors_do_not_depend_on_workers(tiny_checkpoint: Path) -> None:
    documents: list[object] = [
        "a red car",
        {"image": make_image((200, 10, 10))},
        {"text": "blue sky", "image": make_image((10, 10, 200), (96, 64))},
        "x " * 300,
    ] * 3
    scores = {}
    for workers in (1, 4):
        engine = LycheeReranker(str(tiny_checkpoint), device="cpu", dtype="float32", preprocess_workers=workers)
        scores[workers] = engine.score({"text": "red", "image": make_image((200, 10, 10))}, documents)
        bad = [*documents[:2], {"image": "/no/such/file.png"}, "ok", {"text": None}]
        with pytest.raises(InvalidInputError) as info:
            engine.score("red", bad)
        assert "document 2" in str(info.value)
    assert scores[1] == pytest.approx(scores[4], abs=1e-6)
