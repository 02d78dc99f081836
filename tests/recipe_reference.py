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

    def inputs(
        self,
        instruction: str,
        q_text: str | None,
        q_images: list[Any],
        d_text: str | None,
        d_images: list[Any],
    ) -> Any:
        """Return the processor's inputs of a pair's prompt."""
        messages = self.messages(instruction, q_text, q_images, d_text, d_images)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images = q_images + d_images
        return self.processor(text=[text], images=images or None, return_tensors="pt").to(self.device)

    def kept_text(
        self,
        instruction: str,
        q_text: str | None,
        q_images: list[Any],
        d_text: str,
        d_images: list[Any],
        max_length: int,
    ) -> str:
        """Return the longest token prefix of the document text whose pair fits ``max_length`` tokens.

        The recipe's cut: the document text is cut first, at token boundaries, never the images or
        the prompt's frame. A bisection over the document's own tokens; a prefix that ends inside a
        character (an emoji's bytes) counts as the shorter one that does not.
        """
        tokenizer = self.processor.tokenizer
        doc_ids = tokenizer.encode(d_text, add_special_tokens=False)

        def text_of(k: int) -> str:
            text = tokenizer.decode(doc_ids[:k])
            while "\ufffd" in text and k > 0:
                k -= 1
                text = tokenizer.decode(doc_ids[:k])
            return str(text)

        low, high = 0, len(doc_ids)
        while low < high:
            middle = (low + high + 1) // 2
            kept = self.inputs(instruction, q_text, q_images, text_of(middle), d_images)
            if kept["input_ids"].shape[1] <= max_length:
                low = middle
            else:
                high = middle - 1
        return text_of(low)

    def score(
        self,
        instruction: str,
        q_text: str | None,
        q_images: list[Any],
        d_text: str | None,
        d_images: list[Any],
    ) -> tuple[float, list[int]]:
        """Return the score and the prompt's token ids."""
        inputs = self.inputs(instruction, q_text, q_images, d_text, d_images)
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1]
        probs = torch.softmax(torch.stack([logits[self.yes], logits[self.no]]).float(), dim=0)
        return float(probs[0]), inputs["input_ids"][0].tolist()
