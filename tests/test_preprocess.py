"""Preprocessing in a thread pool: same pairs, same scores, same errors, in input order."""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import patch

import pytest
import torch
from conftest import make_image
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


# --- Image patches: planned at encode time, made lazily or ahead of use in a pool -----------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(width=st.integers(1, 900), height=st.integers(1, 900))
def test_planned_grid_is_the_processors_own(tiny_reranker: LycheeReranker, width: int, height: int) -> None:
    from PIL import Image

    runtime = tiny_reranker._get_runtime()
    encoder, processor = runtime.encoder, runtime.model.processor
    image = Image.new("RGB", (width, height), (width % 256, height % 256, 7))
    try:
        features = encoder.encode_image(image)
    except InvalidInputError as exc:
        assert max(width, height) / min(width, height) > 200  # the only size the processor refuses
        assert "aspect ratio" in str(exc)
        return
    expected = processor.image_processor(images=[image], return_tensors="pt")
    assert not features.is_ready  # nothing made yet
    assert features.grid_thw.tolist() == expected["image_grid_thw"].tolist()
    assert features.n_tokens == int(expected["image_grid_thw"].prod()) // 4
    assert torch.equal(features.pixel_values, expected["pixel_values"])


def test_planned_grid_is_the_processors_own_on_qwen3_vl(tiny_qwen3_vl_checkpoint: Path) -> None:
    engine = LycheeReranker(str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32").load()
    runtime = engine._get_runtime()
    encoder, processor = runtime.encoder, runtime.model.processor
    for size in [(1, 1), (33, 2000), (640, 480), (3000, 17)]:
        image = make_image((10, 200, 30), size)
        features = encoder.encode_image(image)  # type: ignore[arg-type]
        prepared = encoder.recipe.prepare_image(image, encoder.min_pixels, encoder.max_pixels)  # type: ignore[misc]
        expected = processor.image_processor(images=[prepared], do_resize=False, return_tensors="pt")
        assert features.grid_thw.tolist() == expected["image_grid_thw"].tolist(), size
        assert torch.equal(features.pixel_values, expected["pixel_values"])


def test_too_elongated_image_is_refused_naming_the_document(tiny_reranker: LycheeReranker) -> None:
    with pytest.raises(InvalidInputError) as info:
        tiny_reranker.score("red", ["fine", {"image": make_image((1, 2, 3), (1000, 2))}])
    assert "document 1" in str(info.value) and "aspect ratio" in str(info.value)


def test_patches_are_made_in_the_pool_ahead_of_the_batches(tiny_checkpoint: Path) -> None:
    """With workers, patches are made by pool threads, not the model thread; scores stay the same."""
    threads: list[str] = []
    documents: list[object] = [{"image": make_image((i * 20, 10, 10), (40 + 8 * i, 40))} for i in range(6)]
    pooled = LycheeReranker(str(tiny_checkpoint), device="cpu", dtype="float32", preprocess_workers=3, batch_size=2)
    serial = LycheeReranker(str(tiny_checkpoint), device="cpu", dtype="float32", preprocess_workers=1, batch_size=2)
    pairs = pooled.encode("a red square", documents)
    processor_class = type(pooled._get_runtime().model.processor.image_processor)
    original = processor_class.__call__

    def spy(self: object, *args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    assert all(not f.is_ready for pair in pairs for f in pair.images)
    with patch.object(processor_class, "__call__", spy):
        scores = pooled.score_encoded(pairs)
        made_in_pool = list(threads)
        threads.clear()
        expected = serial.score("a red square", documents)
    assert len(made_in_pool) == len(documents)
    assert all(name.startswith("lychee-patch") for name in made_in_pool), made_in_pool
    assert threads and all(name == threading.current_thread().name for name in threads)  # no pool: made on use
    assert scores == pytest.approx(expected, abs=1e-6)


def test_stage_times_are_logged_per_call(tiny_reranker: LycheeReranker, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="lychee_integrations.engine"):
        tiny_reranker.score("red", [{"image": make_image((200, 10, 10))}, "a red car"])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("call of 2 documents")]
    assert len(lines) == 1
    stages = dict(re.findall(r"(encode|model|patches|vision|language model) (\d+\.\d+)s", lines[0]))
    assert set(stages) == {"encode", "model", "patches", "vision", "language model"}
    assert float(stages["vision"]) > 0 and float(stages["language model"]) > 0


def test_patches_survive_their_pool_being_shut_down(tiny_checkpoint: Path) -> None:
    """Patches whose pool was shut down (cancelled, or refused) are made on use; an unloaded engine's pairs score."""
    engine = LycheeReranker(str(tiny_checkpoint), device="cpu", dtype="float32", preprocess_workers=2)
    documents: list[object] = [{"image": make_image((i * 40, 10, 10), (48 + 8 * i, 40))} for i in range(4)]
    pairs = engine.encode("a red square", documents)
    busy, release = threading.Event(), threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)

    def hold() -> None:  # keeps the pool's one worker busy
        busy.set()
        release.wait(60)

    pool.submit(hold)
    assert busy.wait(60)
    for pair in pairs[:2]:
        pair.images[0].prefetch(pool)  # queued behind the held worker
    pool.shutdown(wait=False, cancel_futures=True)  # cancels them
    release.set()
    pairs[3].images[0].prefetch(pool)  # refused by the closed pool: made on use
    assert [pair.images[0].is_ready for pair in pairs] == [True, True, False, False]  # cancelled: still "under way"
    engine.unload()
    assert engine.score_encoded(pairs) == pytest.approx(engine.score("a red square", documents), abs=1e-6)
