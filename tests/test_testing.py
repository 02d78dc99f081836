"""The offline checkpoint builder, including the real 7B shapes (on the meta device)."""

from __future__ import annotations

import torch

from lychee_integrations.testing import REAL_VOCAB_SIZE, preset_config


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
    config = preset_config("7b", REAL_VOCAB_SIZE, ids)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    n_params = sum(p.numel() for p in model.parameters())
    assert abs(n_params - 8.29e9) < 0.01e9, n_params


def test_tiny_checkpoint_is_small_and_loads(tiny_checkpoint) -> None:  # type: ignore[no-untyped-def]
    size = sum(f.stat().st_size for f in tiny_checkpoint.iterdir())
    assert size < 2_000_000
    assert (tiny_checkpoint / "chat_template.jinja").exists() or (tiny_checkpoint / "chat_template.json").exists()
