"""A plain one-pair-per-forward scorer written from shared/docs/lychee-reference.md.

It shares no code with the package: the stock processor, ``apply_chat_template`` with
real image parts, a full forward pass computing every logit, and the softmax of the
``yes``/``no`` logits at the last position. The parity tests and the benchmark compare
the engine with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"


class RecipeReference:
    """Scores one pair per forward pass, exactly as the recipe describes."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(
            checkpoint, padding_side="left", min_pixels=4 * 28 * 28, max_pixels=1280 * 28 * 28
        )
        self.model = Qwen2_5_VLForConditionalGeneration.from_pretrained(checkpoint, dtype=dtype).to(device).eval()
        self.device = device
        self.yes = self.processor.tokenizer.convert_tokens_to_ids("yes")
        self.no = self.processor.tokenizer.convert_tokens_to_ids("no")

    def messages(
        self,
        instruction: str,
        q_text: str | None,
        q_images: list[Any],
        d_text: str | None,
        d_images: list[Any],
    ) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = [
            {"type": "text", "text": "<Instruct>: " + instruction},
            {"type": "text", "text": "<Query>:"},
        ]
        content += [{"type": "image", "image": im} for im in q_images]
        if q_text:
            content.append({"type": "text", "text": q_text})
        content.append({"type": "text", "text": "\n<Document>:"})
        content += [{"type": "image", "image": im} for im in d_images]
        if d_text:
            content.append({"type": "text", "text": d_text})
        return [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": content},
        ]

    def score(
        self,
        instruction: str,
        q_text: str | None,
        q_images: list[Any],
        d_text: str | None,
        d_images: list[Any],
    ) -> tuple[float, list[int]]:
        """Return the score and the prompt's token ids."""
        messages = self.messages(instruction, q_text, q_images, d_text, d_images)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images = q_images + d_images
        inputs = self.processor(text=[text], images=images or None, return_tensors="pt").to(self.device)
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1]
        probs = torch.softmax(torch.stack([logits[self.yes], logits[self.no]]).float(), dim=0)
        return float(probs[0]), inputs["input_ids"][0].tolist()
