"""The offline checkpoint builder, and the benchmarks' real 7B shapes (on the meta device)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.tiny import REAL_VOCAB_SIZE, preset_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from presets import SEVEN_B


def test_7b_preset_has_the_real_parameter_count() -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    ids = {
        "<|endoftext|>": 151643,
        "<|im_end|>": 151645,
        "<|image_pad|>": 151655,
        "<|video_pad|>": 151656,
        "<|vision_start|>": 151652,
        "<|vision_end|>": 151653,
    }
    config = preset_config(SEVEN_B, REAL_VOCAB_SIZE, ids)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params - 8.29e9) < 0.01e9, n_params


def test_tiny_checkpoint_is_small_and_loads_through_the_real_path(tiny_checkpoint: Path) -> None:
    size = sum(f.stat().st_size for f in tiny_checkpoint.iterdir())
    assert size < 2_000_000
    reranker = LycheeReranker(str(tiny_checkpoint), device="cpu", dtype="float32").load()
    model = reranker._get_runtime().model.model
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    scores = reranker.score("a cat", ["a cat on a mat", "the stock market"])
    assert len(scores) == 2 and all(0.0 < s < 1.0 for s in scores) and scores[0] != scores[1]
