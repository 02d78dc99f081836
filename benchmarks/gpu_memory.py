"""GPU memory of the real Qwen2.5-VL-7B architecture, computed from its config (not measured).

The model is built on PyTorch's ``meta`` device from the 7B shapes (``presets.SEVEN_B``) and the
real vocabulary, so every parameter is counted without allocating one. docs/gpu.md holds the
table this prints; tests/test_gpu_docs.py recomputes it and compares, so the page cannot drift.

    python benchmarks/gpu_memory.py            # the Markdown rows of docs/gpu.md
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import SEVEN_B

#: Bytes per parameter of each way of holding the weights (8- and 4-bit: the quantized linear layers'
#: share; bitsandbytes keeps norms and some layers in 16 bits, so these are lower bounds).
BYTES_PER_PARAMETER = {"float32": 4.0, "bfloat16": 2.0, "8-bit": 1.0, "4-bit": 0.5}
CONTEXT_TOKENS = 32_768


@dataclass(frozen=True)
class Figures:
    parameters: int
    vision_parameters: int
    lm_head_parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    hidden_size: int
    intermediate_size: int

    def weights_gb(self, kind: str) -> float:
        return self.parameters * BYTES_PER_PARAMETER[kind] / 1e9

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values of every layer for one token, in bf16 (2 bytes)."""
        return self.layers * self.kv_heads * self.head_dim * 2 * 2

    @property
    def mlp_bytes_per_token(self) -> int:
        """One layer's MLP gate and up projections of one token, in bf16: live during that layer's pass."""
        return self.intermediate_size * 2 * 2


def compute() -> Figures:
    """Count the parameters of the 7B architecture on the meta device and read the shapes off its config."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from lychee_integrations.real_vocab import SPECIAL_TOKENS
    from lychee_integrations.tiny import REAL_VOCAB_SIZE, preset_config

    ids = {token: 151_643 + i for i, token in enumerate(SPECIAL_TOKENS)}
    config = preset_config(SEVEN_B, REAL_VOCAB_SIZE, ids)
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    text = config.text_config
    return Figures(
        parameters=sum(p.numel() for p in model.parameters()),
        vision_parameters=sum(p.numel() for p in model.model.visual.parameters()),
        lm_head_parameters=model.lm_head.weight.numel(),
        layers=text.num_hidden_layers,
        kv_heads=text.num_key_value_heads,
        head_dim=text.hidden_size // text.num_attention_heads,
        hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size,
    )


def rows(figures: Figures) -> list[str]:
    """The Markdown rows of docs/gpu.md's memory table."""
    kib = figures.kv_bytes_per_token / 1024
    out = [
        f"| parameters | {figures.parameters:,} (vision tower {figures.vision_parameters:,}; "
        f"LM head {figures.lm_head_parameters:,}) |",
    ]
    for kind in BYTES_PER_PARAMETER:
        approx = "~" if kind.endswith("bit") else ""
        out.append(f"| weights, {kind} | {approx}{figures.weights_gb(kind):.2f} GB |")
    out.append(
        f"| KV cache per token, bf16 ({figures.layers} layers x {figures.kv_heads} KV heads x {figures.head_dim} "
        f"x 2 x 2 bytes) | {kib:g} KiB |"
    )
    out.append(
        f"| KV cache of {CONTEXT_TOKENS:,} tokens, bf16 | "
        f"{figures.kv_bytes_per_token * CONTEXT_TOKENS / 2**30:.2f} GiB |"
    )
    out.append(
        f"| MLP activations of one layer per token, bf16 ({figures.intermediate_size:,} x 2 x 2 bytes) | "
        f"{figures.mlp_bytes_per_token / 1024:g} KiB |"
    )
    out.append(
        f"| MLP activations of one layer, {CONTEXT_TOKENS:,} tokens, bf16 | "
        f"{figures.mlp_bytes_per_token * CONTEXT_TOKENS / 2**30:.2f} GiB |"
    )
    return out


if __name__ == "__main__":
    print("\n".join(rows(compute())))
