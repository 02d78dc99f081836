"""The engine's exact shortcuts: merged prefix attention, the last layer's MLP at read positions only,
the patch embedding as a matrix product. Each must give what the path without it gives (1e-5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import make_image
from torch.nn import functional

from lychee_integrations.engine import LycheeReranker, prefix_attention
from lychee_integrations.engine.prefix_attention import merged_attention
from lychee_integrations.engine.shortcuts import linear_patch_embedding

RED = make_image((220, 20, 20), size=(112, 112), stripe=9)
GREEN = make_image((20, 200, 40), size=(84, 56), stripe=5)


def _reference(query: Any, keys: Any, values: Any, prefix: tuple[Any, Any], lengths: list[int]) -> Any:
    """The path without merging: the prefix copied into every row, one masked SDPA call."""
    rows, heads, width, _ = query.shape
    group = heads // keys.shape[1]
    p_keys, p_values = (t.expand(rows, -1, -1, -1) for t in prefix)
    full_k = torch.cat([p_keys, keys], 2).repeat_interleave(group, 1)
    full_v = torch.cat([p_values, values], 2).repeat_interleave(group, 1)
    start = prefix[0].shape[2]
    mask = torch.zeros(rows, 1, width, start + width, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, 0, :, :start] = True
        mask[row, 0, :, start : start + n] = torch.ones(width, n, dtype=torch.bool).tril()[:, :n]
    return functional.scaled_dot_product_attention(query, full_k, full_v, attn_mask=mask, scale=0.17)


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 4), (8, 2), (6, 3)])
@pytest.mark.parametrize("prefix_length", [1, 7, 300])
def test_merged_attention_equals_copied_prefix_with_a_mask(heads: int, kv_heads: int, prefix_length: int) -> None:
    generator = torch.Generator().manual_seed(heads * 1000 + prefix_length)
    lengths = [11, 3, 17, 1]  # right padding to 17
    rows, width, size = len(lengths), max(lengths), 16

    def randn(*shape: int) -> Any:
        return torch.randn(*shape, generator=generator) * 2

    query = randn(rows, heads, width, size)
    keys, values = randn(rows, kv_heads, width, size), randn(rows, kv_heads, width, size)
    prefix = (randn(1, kv_heads, prefix_length, size), randn(1, kv_heads, prefix_length, size))
    got = merged_attention(query, keys, values, prefix, 0.17)
    expected = _reference(query, keys, values, prefix, lengths)
    for row, n in enumerate(lengths):  # only real tokens count; padded positions are never read
        assert torch.allclose(got[row, :, :n], expected[row, :, :n], atol=1e-5), row


def test_merged_attention_keeps_bfloat16() -> None:
    generator = torch.Generator().manual_seed(7)
    query, keys, values = (torch.randn(2, h, 5, 8, generator=generator) for h in (4, 2, 2))
    prefix = (torch.randn(1, 2, 9, 8, generator=generator), torch.randn(1, 2, 9, 8, generator=generator))
    half = [t.bfloat16() for t in (query, keys, values, *prefix)]
    got = merged_attention(half[0], half[1], half[2], (half[3], half[4]), 0.17)
    assert got.dtype == torch.bfloat16 and got.shape == query.shape
    expected = _reference(query, keys, values, prefix, [5, 5])
    assert torch.allclose(got.float(), expected, atol=0.05)


class _Spy:
    """Counts calls of the real merged attention (and lets them run)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = prefix_attention.merged_attention

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(prefix_attention, "merged_attention", counted)


@pytest.fixture(scope="module")
def engines(tiny_checkpoint: Path) -> Iterator[tuple[LycheeReranker, LycheeReranker]]:
    options: dict[str, Any] = {"device": "cpu", "dtype": "float32", "prefix_cache_bytes": 0, "vision_cache_bytes": 0}
    reuse = LycheeReranker(model=str(tiny_checkpoint), **options).load()
    plain = LycheeReranker(model=str(tiny_checkpoint), prefix_reuse=False, **options).load()
    yield reuse, plain
    reuse.unload()
    plain.unload()


@pytest.mark.parametrize(
    ("query", "documents"),
    [
        ({"image": RED}, ["red", "a green field under the sun", "x"]),
        ({"text": "which", "images": [RED, GREEN]}, [{"image": GREEN}, "short", {"text": "both", "image": RED}]),
    ],
    ids=["image query x text", "two-image query x mixed"],
)
def test_long_prefix_groups_use_merged_attention_with_the_same_scores(
    engines: tuple[LycheeReranker, LycheeReranker], query: Any, documents: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reuse, plain = engines
    spy = _Spy(monkeypatch)
    got = reuse.score(query, documents)
    layers = len(reuse._get_runtime().model.model.model.language_model.layers)
    assert spy.calls == layers  # one suffix batch, every layer merged
    assert got == pytest.approx(plain.score(query, documents), abs=1e-5)


def test_last_layer_mlp_reads_one_position_per_row(engines: tuple[LycheeReranker, LycheeReranker]) -> None:
    shapes: list[tuple[int, ...]] = []
    for engine in engines:
        mlp = engine._get_runtime().model.model.model.language_model.layers[-1].mlp
        handle = mlp.register_forward_hook(lambda module, args, out: shapes.append(tuple(args[0].shape[:2])))
        try:
            engine.score("a query about colours", ["red", "a much longer document about green and blue", "z"])
        finally:
            handle.remove()
    # With reuse: the prefix runs for its keys and values only (no position), then one row per document.
    # Without: one batch of three rows. Either way at most one position per row.
    assert shapes == [(1, 0), (3, 1), (3, 1)]


def test_linear_patch_embedding_equals_the_convolution() -> None:
    class Vision(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch_embed = torch.nn.Module()
            self.patch_embed.proj = torch.nn.Conv3d(3, 24, kernel_size=(2, 14, 14), stride=(2, 14, 14), bias=True)

    class Outer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = torch.nn.Module()
            self.model.visual = Vision()

    model = Outer()
    proj = model.model.visual.patch_embed.proj
    patches = torch.randn(50, 3, 2, 14, 14)
    expected = proj(patches)
    assert linear_patch_embedding(model)
    got = proj(patches)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    assert set(model.state_dict()) == {"model.visual.patch_embed.proj.weight", "model.visual.patch_embed.proj.bias"}


def test_linear_patch_embedding_leaves_other_convolutions() -> None:
    model = torch.nn.Module()
    model.model = torch.nn.Module()
    model.model.visual = torch.nn.Module()
    model.model.visual.patch_embed = torch.nn.Module()
    model.model.visual.patch_embed.proj = torch.nn.Conv3d(3, 8, kernel_size=3, stride=1)
    assert not linear_patch_embedding(model)
    assert not linear_patch_embedding(torch.nn.Linear(2, 2))
