"""Prefix reuse: the shared prefix runs once, and scores equal the path without reuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_image
from engine_helpers import score_concurrently_while_busy

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.engine.pairs import EncodedPair
from lychee_integrations.engine.prefix import group_by_prefix, shared_prefix_length

RED = make_image((220, 20, 20))
BLUE = make_image((20, 20, 220), size=(120, 90), stripe=30)
GREEN = make_image((20, 200, 40), size=(200, 40), stripe=10)
GREY = make_image((120, 120, 120), size=(56, 84), stripe=7)

QUERIES: dict[str, Any] = {
    "text": "what colour is the object in the picture",
    "image": {"image": BLUE},
    "text+image": {"text": "find this product", "image": RED},
    "two images": {"text": "which is closer", "images": [RED, GREEN]},
}
DOCUMENTS: dict[str, list[Any]] = {
    "text": ["a red square on white", "blue sky with one stripe", "green grass", "nothing at all here"],
    "image": [{"image": GREEN}, {"image": GREY}, {"image": RED}],
    "text+image": [{"text": "red shoes", "image": GREEN}, {"text": "a grey box", "image": GREY}],
    "several images": [{"text": "three photos", "images": [RED, BLUE, GREEN]}, {"images": [GREY, RED]}],
}


@pytest.fixture(scope="module")
def rerankers(tiny_checkpoint: Path) -> Iterator[tuple[LycheeReranker, LycheeReranker]]:
    # Within-call reuse only: the cross-call prefix cache (tests/test_engine_caches.py) would skip repeated prefixes.
    on = LycheeReranker(model=str(tiny_checkpoint), device="cpu", dtype="float32", batch_size=3, prefix_cache_bytes=0)
    off = LycheeReranker(model=str(tiny_checkpoint), device="cpu", dtype="float32", batch_size=3, prefix_reuse=False)
    yield on.load(), off.load()
    on.unload()
    off.unload()


class TokenCounter:
    """Counts the tokens the language model's first decoder layer reads (rows x length)."""

    def __init__(self, reranker: LycheeReranker) -> None:
        layer = reranker._get_runtime().model.model.model.language_model.layers[0]
        self.shapes: list[tuple[int, int]] = []
        self._handle = layer.register_forward_pre_hook(lambda module, args: self.shapes.append(args[0].shape[:2]))

    @property
    def tokens(self) -> int:
        return sum(rows * length for rows, length in self.shapes)

    def __enter__(self) -> TokenCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()


@pytest.mark.parametrize("doc_kind", list(DOCUMENTS))
@pytest.mark.parametrize("query_kind", list(QUERIES))
def test_reuse_matches_no_reuse_for_every_modality_pair(
    query_kind: str, doc_kind: str, rerankers: tuple[LycheeReranker, LycheeReranker]
) -> None:
    on, off = rerankers
    query, docs = QUERIES[query_kind], DOCUMENTS[doc_kind]
    with TokenCounter(on) as with_reuse:
        got = on.score(query, docs)
    with TokenCounter(off) as without:
        expected = off.score(query, docs)
    assert got == pytest.approx(expected, abs=1e-5)
    pairs = on.encode(query, docs)
    [group], alone = group_by_prefix(pairs, on._get_runtime().model.image_token_id)
    assert alone == [] and group.length >= 32
    # The prefix ran once: far fewer language-model tokens than the pairs hold.
    assert with_reuse.tokens <= without.tokens - (len(pairs) - 1) * group.length + 3 * max(len(p) for p in pairs)
    assert with_reuse.shapes[0] == (1, group.length)


def test_reuse_is_batch_size_invariant(tiny_checkpoint: Path, rerankers: tuple[LycheeReranker, LycheeReranker]) -> None:
    query = QUERIES["text+image"]
    docs = DOCUMENTS["text"] + DOCUMENTS["image"] + DOCUMENTS["several images"]
    expected = rerankers[1].score(query, docs)
    for batch_size in (1, 2, 16):
        reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", batch_size=batch_size)
        assert reranker.score(query, docs) == pytest.approx(expected, abs=1e-5), batch_size
        reranker.unload()


def test_exact_token_count_with_single_row_batches(tiny_checkpoint: Path) -> None:
    """Batch size 1 has no padding: the model reads the prefix once plus each pair's remainder."""
    reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", batch_size=1)
    query, docs = QUERIES["image"], DOCUMENTS["text"]
    pairs = reranker.encode(query, docs)
    [group], _ = group_by_prefix(pairs, reranker._get_runtime().model.image_token_id)
    with TokenCounter(reranker) as counter:
        reranker.score(query, docs)
    assert counter.tokens == group.length + sum(len(p) - group.length for p in pairs)
    reranker.unload()


def test_one_document_or_short_prefix_runs_without_reuse(rerankers: tuple[LycheeReranker, LycheeReranker]) -> None:
    on, _ = rerankers
    [pair] = on.encode("cats", ["a cat"])
    with TokenCounter(on) as counter:
        on.score("cats", ["a cat"])
    assert counter.shapes == [(1, len(pair))]
    a = EncodedPair((*tuple(range(31)), 100, 101), ())
    b = EncodedPair((*tuple(range(31)), 200), ())
    assert group_by_prefix([a, b], 99) == ([], [0, 1])
    assert group_by_prefix([a, b], 99, min_tokens=31)[0][0].length == 31


def test_prefix_is_found_from_token_ids_not_from_the_prompt() -> None:
    """The shared part ends where the ids differ (a merge may straddle the boundary)."""
    shared = tuple(range(40))
    a = EncodedPair((*shared, 7, 8, 9), ())
    b = EncodedPair((*shared, 7, 5), ())
    assert shared_prefix_length(a, b, 99) == 41
    # One pair is the other's prefix: each keeps at least one token of its own.
    assert shared_prefix_length(a, EncodedPair((*shared, 7), ()), 99) == 40


def test_prefix_stops_at_an_image_the_pairs_do_not_share(
    rerankers: tuple[LycheeReranker, LycheeReranker],
) -> None:
    """Equal token ids say nothing about pixels: only the call's own query image is shared."""
    on, _ = rerankers
    image_token = on._get_runtime().model.image_token_id
    [red] = on.encode({"image": RED}, ["doc"])
    [other] = on.encode({"image": make_image((220, 20, 21))}, ["doc"])
    [same] = on.encode({"image": RED}, ["other doc"])
    first, second = on.encode({"image": RED}, ["doc", "other doc"])
    assert red.input_ids == other.input_ids
    start = red.input_ids.index(image_token)
    assert shared_prefix_length(red, other, image_token) == start  # different pixels
    assert shared_prefix_length(red, same, image_token) == start  # equal pixels, another call's image
    assert shared_prefix_length(first, second, image_token) > start + first.images[0].n_tokens
    assert not first.images[0].is_ready  # grouping made no patches


def test_concurrent_calls_with_different_queries(rerankers: tuple[LycheeReranker, LycheeReranker]) -> None:
    """Calls combined into one run form one prefix group per query, with unchanged scores."""
    on, off = rerankers
    web = "Given a web search query, retrieve relevant passages that answer the query"
    shop = "Find the product photo that shows exactly the item the shopper is looking for, in any colour"
    calls = [
        (QUERIES["text"], DOCUMENTS["text"], web),
        (QUERIES["image"], DOCUMENTS["text"] + DOCUMENTS["image"], shop),
        (QUERIES["text+image"], DOCUMENTS["several images"], shop),
        (QUERIES["text"], ["one more text document", "and another"], web),
        ("short", ["lonely"], web),
    ]
    expected = [off.score(q, d, instruction=i) for q, d, i in calls]
    encoded = [on.encode(q, d, instruction=i) for q, d, i in calls]
    pairs = [pair for call in encoded for pair in call]
    groups, _ = group_by_prefix(pairs, on._get_runtime().model.image_token_id)
    assert len(groups) >= 2
    with TokenCounter(on) as counter:
        results, runs = score_concurrently_while_busy(on, encoded)
    assert runs == [len(pairs)], runs  # the calls ran together
    for got, want in zip(results, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-5)
    # One prefix pass per group, and the run read far fewer tokens than the pairs hold.
    for group in groups:
        assert (1, group.length) in counter.shapes
    assert counter.tokens < sum(len(p) for p in pairs) - sum((len(g.indices) - 1) * g.length for g in groups) + 400


def test_reuse_survives_out_of_memory_halving(
    tiny_checkpoint: Path, rerankers: tuple[LycheeReranker, LycheeReranker], monkeypatch: pytest.MonkeyPatch
) -> None:
    reranker = LycheeReranker(model=str(tiny_checkpoint), device="cpu", batch_size=8)
    model = reranker._get_runtime().model
    real = model.score_suffix
    sizes: list[int] = []

    def flaky(batch: Any, prefix: Any, cache: Any = None) -> list[float]:
        sizes.append(len(batch))
        if len(batch) > 2:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(batch, prefix, cache)

    monkeypatch.setattr(model, "score_suffix", flaky)
    query, docs = QUERIES["image"], DOCUMENTS["text"] + DOCUMENTS["text+image"]
    got = reranker.score(query, docs)
    assert sizes[0] == len(docs) and max(sizes[1:]) <= 3
    assert got == pytest.approx(rerankers[1].score(query, docs), abs=1e-5)
    reranker.unload()


def test_reuse_with_documents_cut_to_max_length(tiny_checkpoint: Path) -> None:
    long_docs = [" ".join(f"word{i}x{j}" for j in range(200)) for i in range(3)] + [{"text": "x " * 300, "image": RED}]
    kwargs: dict[str, Any] = {"model": str(tiny_checkpoint), "device": "cpu", "max_length": 160}
    on, off = LycheeReranker(**kwargs), LycheeReranker(prefix_reuse=False, **kwargs)
    query = {"text": "find the words", "image": BLUE}
    pairs = on.encode(query, long_docs)
    assert all(p.truncated for p in pairs)
    assert on.score(query, long_docs) == pytest.approx(off.score(query, long_docs), abs=1e-5)
    on.unload()
    off.unload()
