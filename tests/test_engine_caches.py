"""Caches that outlive a call: bounded, thread-safe, exact against the engine without them."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_image

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.engine.caches import BoundedCache
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.telemetry import add_listener

RED = make_image((220, 20, 20))
BLUE = make_image((20, 20, 220), size=(120, 90), stripe=30)
GREEN = make_image((20, 200, 40), size=(200, 40), stripe=10)
GREY = make_image((120, 120, 120), size=(56, 84), stripe=7)
PAGES = [RED, BLUE, GREEN, GREY]
NO_CACHES: dict[str, Any] = {"vision_cache_bytes": 0, "prefix_cache_bytes": 0, "score_cache_entries": 0}


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _engine(checkpoint: Path, **options: Any) -> LycheeReranker:
    return LycheeReranker(model=str(checkpoint), device="cpu", dtype="float32", batch_size=3, **options).load()


class VisionCounter:
    """Counts the images the vision tower runs on (rows of the grids it is given)."""

    def __init__(self, reranker: LycheeReranker) -> None:
        visual = reranker._get_runtime().model.model.model.visual
        self.images = 0

        def count(module: Any, args: Any, kwargs: Any) -> None:
            grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
            self.images += int(grid.shape[0])

        self._handle = visual.register_forward_pre_hook(count, with_kwargs=True)

    def close(self) -> None:
        self._handle.remove()


class Events:
    """Sums the telemetry events of a block."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __enter__(self) -> Events:
        def listen(name: str, value: float) -> None:
            self.totals[name] = self.totals.get(name, 0.0) + value
            self.last[name] = value

        self._remove = add_listener(listen)
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()


@pytest.fixture(scope="module")
def uncached(tiny_checkpoint: Path) -> Iterator[LycheeReranker]:
    reranker = _engine(tiny_checkpoint, **NO_CACHES)
    yield reranker
    reranker.unload()


# --- the store -----------------------------------------------------------------------------------------


def test_bytes_bound_evicts_least_recently_used() -> None:
    cache = BoundedCache[bytes]("demo", max_bytes=10, size_of=len)
    cache.put("a", b"1234")
    cache.put("b", b"1234")
    assert cache.get("a") == b"1234"  # "a" is now the most recently used
    cache.put("c", b"1234")  # 12 bytes: "b" goes
    assert cache.get("b") is None
    assert cache.get("a") == b"1234" and cache.get("c") == b"1234"
    cache.put("big", b"x" * 11)  # over the bound alone: not stored, nothing evicted
    assert cache.get("big") is None and len(cache) == 2
    stats = cache.stats()
    assert stats.bytes == 8 and stats.entries == 2 and stats.hits == 3 and stats.misses == 2


def test_entries_bound_and_ttl() -> None:
    now = [0.0]
    cache = BoundedCache[int]("demo", max_entries=2, ttl=10.0, clock=lambda: now[0])
    for n, key in enumerate("abc"):
        cache.put(key, n)
    assert len(cache) == 2 and cache.get("a") is None and cache.get("b") == 1
    now[0] = 10.5
    assert cache.get("b") is None and cache.get("c") is None and len(cache) == 0


def test_store_under_threads_keeps_its_bound_and_counts() -> None:
    cache = BoundedCache[int]("demo", max_bytes=50, size_of=lambda v: 5)
    lookups = 8 * 500

    def work(t: int) -> None:
        for n in range(500):
            key = (t * 7 + n) % 23
            if cache.get(key) is None:
                cache.put(key, key)
            assert cache.stats().bytes <= 50

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats()
    assert stats.hits + stats.misses == lookups
    assert stats.entries == 10 and stats.bytes == 50


def test_options_are_validated(tiny_checkpoint: Path) -> None:
    for bad in ({"vision_cache_bytes": -1}, {"score_cache_entries": 1.5}, {"score_cache_ttl": 0}):
        with pytest.raises(ConfigurationError, match=next(iter(bad))):
            LycheeReranker(model=str(tiny_checkpoint), **bad)


# --- the vision-feature cache --------------------------------------------------------------------------


def test_an_image_seen_again_skips_the_vision_tower_and_scores_the_same(
    tiny_checkpoint: Path, uncached: LycheeReranker
) -> None:
    cached = _engine(tiny_checkpoint, vision_cache_bytes=2**24, prefix_cache_bytes=0)
    counter = VisionCounter(cached)
    try:
        docs = [{"image": page} for page in PAGES]
        expected = uncached.score("which page shows a stripe", docs)
        with Events() as first:
            assert cached.score("which page shows a stripe", docs) == pytest.approx(expected, abs=1e-6)
        assert counter.images == 4 and first.totals["vision_cache_miss"] == 4
        assert "vision_cache_hit" not in first.totals
        # The same pictures as PNG bytes (other objects, other sources), with another query and a new image.
        again = [{"image": _png(page)} for page in PAGES[:3]] + [{"image": make_image((1, 2, 3))}]
        expected = uncached.score("a different query", again)
        with Events() as second:
            assert cached.score("a different query", again) == pytest.approx(expected, abs=1e-6)
        assert counter.images == 5  # only the new image ran
        assert second.totals["vision_cache_hit"] == 3 and second.totals["vision_cache_miss"] == 1
        assert cached._get_runtime().model.vision_cache.stats().entries == 5  # type: ignore[union-attr]
    finally:
        counter.close()
        cached.unload()


def test_an_image_query_hits_across_calls(tiny_checkpoint: Path, uncached: LycheeReranker) -> None:
    cached = _engine(tiny_checkpoint, vision_cache_bytes=2**24, prefix_cache_bytes=0)
    counter = VisionCounter(cached)
    try:
        for docs in (["a red square", "blue sky"], ["green grass", "nothing", "a grey box"]):
            query = {"text": "find this", "image": _png(BLUE)}
            assert cached.score(query, docs) == pytest.approx(uncached.score(query, docs), abs=1e-6)
        assert counter.images == 1
    finally:
        counter.close()
        cached.unload()


def test_vision_cache_bound_is_respected(tiny_checkpoint: Path, uncached: LycheeReranker) -> None:
    probe = _engine(tiny_checkpoint, vision_cache_bytes=2**24, prefix_cache_bytes=0)
    probe.score("q", [{"image": GREY}])
    one = probe._get_runtime().model.vision_cache.stats().bytes  # type: ignore[union-attr]
    probe.unload()
    bound = int(one * 2.5)  # room for two images of GREY's size, not three
    cached = _engine(tiny_checkpoint, vision_cache_bytes=bound, prefix_cache_bytes=0)
    try:
        docs = [{"image": make_image((n * 40, 10, 10), size=(56, 84))} for n in range(5)]
        assert cached.score("q", docs) == pytest.approx(uncached.score("q", docs), abs=1e-6)
        stats = cached._get_runtime().model.vision_cache.stats()  # type: ignore[union-attr]
        assert stats.bytes <= bound and stats.entries == 2
    finally:
        cached.unload()


# --- the score cache -----------------------------------------------------------------------------------


def test_score_cache_is_off_by_default(tiny_reranker: LycheeReranker) -> None:
    assert tiny_reranker._get_runtime().score_cache is None


def test_score_cache_answers_repeated_pairs_without_the_model(tiny_checkpoint: Path, uncached: LycheeReranker) -> None:
    cached = _engine(tiny_checkpoint, score_cache_entries=100)
    try:
        docs: list[Any] = ["a red square", {"image": RED}, {"text": "grey", "image": GREY}]
        expected = uncached.score("colours", docs)
        with Events() as first:
            assert cached.score("colours", docs) == pytest.approx(expected, abs=1e-6)
        assert first.totals["pairs_scored"] == 3 and first.totals["score_cache_miss"] == 3
        more = [*docs, "a new document"]
        expected = uncached.score("colours", more)
        with Events() as second:
            assert cached.score("colours", [*docs[:2], {"text": "grey", "image": _png(GREY)}, more[3]]) == (
                pytest.approx(expected, abs=1e-6)
            )
        assert second.totals["pairs_scored"] == 1  # only the new document ran
        assert second.totals["score_cache_hit"] == 3
        # Another instruction is another key.
        with Events() as third:
            cached.score("colours", docs, instruction="Judge the colour")
        assert third.totals["pairs_scored"] == 3
    finally:
        cached.unload()


def test_concurrent_calls_with_caches_match_uncached(tiny_checkpoint: Path, uncached: LycheeReranker) -> None:
    cached = _engine(tiny_checkpoint, vision_cache_bytes=2**24, score_cache_entries=1000)
    calls = [(f"query {n}", [{"image": PAGES[(n + k) % 4]} for k in range(3)] + [f"text {n % 2}"]) for n in range(6)]
    expected = [uncached.score(q, d) for q, d in calls]
    got: list[list[float] | None] = [None] * (2 * len(calls))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            query, docs = calls[i % len(calls)]
            got[i] = cached.score(query, docs)
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2 * len(calls))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not errors
        for i, scores in enumerate(got):
            assert scores == pytest.approx(expected[i % len(calls)], abs=1e-6)
    finally:
        cached.unload()


# --- /metrics of a real `lychee serve` -------------------------------------------------------------------


def test_lychee_serve_reports_cache_hits_misses_and_sizes(tiny_checkpoint: Path) -> None:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families
    from service_helpers import cli_server, data_uri, free_port

    port = free_port()
    args = ["serve", "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32", "--port", str(port)]
    args += ["--vision-cache-mb", "16", "--score-cache-entries", "100"]
    documents = [{"image": data_uri(page)} for page in PAGES[:3]]

    def samples(base: str) -> dict[tuple[str, str], float]:
        text = httpx.get(f"{base}/metrics", timeout=30).text
        return {
            (sample.name, sample.labels.get("cache", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    with cli_server(args, port=port) as base:
        for query in ("first query", "second query", "second query"):
            response = httpx.post(f"{base}/v1/rerank", json={"query": query, "documents": documents}, timeout=120)
            assert response.status_code == 200, response.text
        metrics = samples(base)
    # Call 1 embeds the three images; call 2 (new query) reuses them; call 3 repeats call 2: all scores cached.
    assert metrics[("lychee_engine_cache_misses_total", "vision")] == 3
    assert metrics[("lychee_engine_cache_hits_total", "vision")] == 3
    assert metrics[("lychee_engine_cache_entries", "vision")] == 3
    assert 0 < metrics[("lychee_engine_cache_bytes", "vision")] <= 16 * 2**20
    assert metrics[("lychee_engine_cache_misses_total", "score")] == 6
    assert metrics[("lychee_engine_cache_hits_total", "score")] == 3
    assert metrics[("lychee_engine_cache_entries", "score")] == 6


# --- the prefix key/value cache --------------------------------------------------------------------------

INSTRUCTION = "Given a product photo or description, find the catalogue entries that show the same product"
PREFIX_CALLS: list[tuple[Any, list[Any]]] = [
    ("red running shoes", ["a red shoe", "a blue bag", "green grass", "nothing"]),
    ("blue canvas bag", ["a red shoe", {"image": BLUE}, "a grey box"]),  # new query, same instruction
    ({"text": "this product", "image": RED}, ["a red shoe", {"image": GREEN}, {"text": "grey", "image": GREY}]),
    ({"text": "this product", "image": _png(RED)}, ["other words", "a red square"]),  # same query image again
    ({"text": "this product", "image": GREEN}, ["a red shoe", "green grass"]),  # same ids, another image
    ({"images": [RED, BLUE]}, [{"images": [GREEN, GREY]}, "two photos"]),
]


def test_reusable_length_stops_at_images_that_differ_or_are_not_whole() -> None:
    from lychee_integrations.engine.prefix import reusable_length

    ids = [1, 2, 9, 9, 9, 3, 4]
    assert reusable_length(ids, [b"a"], [1, 2, 9, 9, 9, 3, 5], [b"a"], 9) == 6  # ids part after the image
    assert reusable_length(ids, [b"a"], [1, 2, 9, 9, 9, 3, 5], [b"b"], 9) == 2  # another picture
    assert reusable_length(ids, [b"a"], [1, 2, 9, 9], [b"a"], 9) == 2  # the cached image is cut
    assert reusable_length(ids, [None], ids, [None], 9) == 2  # no content key: never past the image
    assert reusable_length(ids, [b"a"], ids, [b"a"], 9) == len(ids)
    assert reusable_length(ids, [b"a"], [7, 2], [], 9) == 0


class FirstLayerTokens:
    """Records the (rows, length) of each input to the language model's first decoder layer."""

    def __init__(self, reranker: LycheeReranker) -> None:
        layer = reranker._get_runtime().model.model.model.language_model.layers[0]
        self.shapes: list[tuple[int, int]] = []
        self._handle = layer.register_forward_pre_hook(lambda m, args: self.shapes.append(tuple(args[0].shape[:2])))

    def close(self) -> None:
        self._handle.remove()


def test_prefix_cache_runs_only_what_follows_a_cached_prefix_and_is_exact(
    tiny_checkpoint: Path, uncached: LycheeReranker
) -> None:
    cached = _engine(tiny_checkpoint, vision_cache_bytes=0, prefix_cache_bytes=2**26)
    tokens = FirstLayerTokens(cached)
    try:
        prefix_runs: list[int] = []
        for query, docs in PREFIX_CALLS:
            expected = uncached.score(query, docs, instruction=INSTRUCTION)
            tokens.shapes.clear()
            with Events() as events:
                got = cached.score(query, docs, instruction=INSTRUCTION)
            assert got == pytest.approx(expected, abs=1e-5), query
            assert events.totals.get("prefix_cache_hit", 0) + events.totals.get("prefix_cache_miss", 0) == 1
            first = tokens.shapes[0] if tokens.shapes else (0, 0)
            prefix_runs.append(first[1] if first[0] == 1 else 0)  # the prefix pass is one row
        # Call 2 (new text query, same instruction) runs only from where its tokens leave call 1's.
        first_pair = cached.encode(*PREFIX_CALLS[0], instruction=INSTRUCTION)[0]
        second_pair = cached.encode(*PREFIX_CALLS[1], instruction=INSTRUCTION)[0]
        common = next(
            i for i, (a, b) in enumerate(zip(first_pair.input_ids, second_pair.input_ids, strict=False)) if a != b
        )
        assert common > 40  # the system prompt and the instruction
        assert 0 < prefix_runs[1] <= len(second_pair) - common
        # Call 4 repeats call 3's query image (other bytes, same content): its whole prefix is cached.
        assert prefix_runs[3] == 0
        # Call 5 has the same token ids as call 3 but another image: it reruns from that image on.
        assert prefix_runs[4] > 0
    finally:
        tokens.close()
        cached.unload()


def test_prefix_cache_bound_is_respected(tiny_checkpoint: Path, uncached: LycheeReranker) -> None:
    cached = _engine(tiny_checkpoint, vision_cache_bytes=0, prefix_cache_bytes=200_000)
    try:
        for n in range(4):
            docs = ["a red shoe", "a blue bag", f"document {n}"]
            query = f"query number {n} " * (n + 1)
            assert cached.score(query, docs) == pytest.approx(uncached.score(query, docs), abs=1e-5)
        stats = cached._get_runtime().model.prefix_cache.stats()  # type: ignore[union-attr]
        assert 0 < stats.bytes <= 200_000 and stats.entries < 4
    finally:
        cached.unload()
