"""The recipe of ``vec-ai/lychee-rerank-mm`` (Qwen2.5-VL-7B), see shared/docs/lychee-reference.md."""

from __future__ import annotations

from lychee_integrations.recipes.base import JUDGE_SYSTEM_PROMPT, Recipe

__all__ = ["LYCHEE"]

#: Lychee-rerank-mm: 28-pixel image factor, 4 to 1280 visual tokens, 3200 tokens per pair.
LYCHEE = Recipe(
    name="lychee",
    model_types=("qwen2_5_vl",),
    system_prompt=JUDGE_SYSTEM_PROMPT,
    default_instruction="Given a web search query, retrieve relevant passages that answer the query",
    min_pixels=4 * 28 * 28,
    max_pixels=1280 * 28 * 28,
    max_length=3200,
    truncation="lychee",
)
