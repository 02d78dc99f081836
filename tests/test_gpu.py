"""GPU path: bf16, SDPA and flash-attention, batch sizes. Skipped cleanly without CUDA."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from lychee_integrations.engine import LycheeReranker

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

DOCS = ["Paris is the capital of France.", "cats and dogs " * 50, "retrieval guide step " * 10, "a"]


def test_auto_picks_cuda_and_bf16(tiny_checkpoint: Path) -> None:
    reranker = LycheeReranker(model=str(tiny_checkpoint)).load()
    runtime = reranker._get_runtime()
    assert runtime.model.device == "cuda"
    assert runtime.model.dtype == torch.bfloat16


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_bf16_close_to_cpu_fp32(tiny_checkpoint: Path, tiny_reranker: LycheeReranker, attention: str) -> None:
    gpu = LycheeReranker(model=str(tiny_checkpoint), device="cuda", dtype="bfloat16", attn_implementation=attention)
    assert gpu.score("capital of France", DOCS) == pytest.approx(
        tiny_reranker.score("capital of France", DOCS), abs=3e-2
    )


def test_fp32_on_gpu_matches_cpu(tiny_checkpoint: Path, tiny_reranker: LycheeReranker) -> None:
    gpu = LycheeReranker(model=str(tiny_checkpoint), device="cuda", dtype="float32")
    assert gpu.score("capital", DOCS) == pytest.approx(tiny_reranker.score("capital", DOCS), abs=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_flash_attention_matches_sdpa(tiny_checkpoint: Path) -> None:
    flash = LycheeReranker(model=str(tiny_checkpoint), device="cuda", attn_implementation="flash_attention_2")
    sdpa = LycheeReranker(model=str(tiny_checkpoint), device="cuda", attn_implementation="sdpa")
    assert flash.score("capital", DOCS) == pytest.approx(sdpa.score("capital", DOCS), abs=3e-2)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_batch_sizes_agree_on_gpu(tiny_checkpoint: Path, batch_size: int) -> None:
    base = LycheeReranker(model=str(tiny_checkpoint), device="cuda", dtype="float32", batch_size=1)
    other = LycheeReranker(model=str(tiny_checkpoint), device="cuda", dtype="float32", batch_size=batch_size)
    assert other.score("q", DOCS * 5) == pytest.approx(base.score("q", DOCS * 5), abs=1e-4)
