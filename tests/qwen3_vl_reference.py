"""A plain one-pair-per-forward Qwen3-VL-Reranker scorer written from shared/docs/qwen3-vl-reranker.md.

It shares no code with the package: images resized before the processor as the official
code does (RGB on white, smart resize to factor 32, bicubic), ``apply_chat_template`` with
real image parts, the stock processor with ``do_resize=False``, the official cut of long
pairs, a full forward pass computing every logit, and the softmax of the ``yes``/``no``
logits at the last position.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
FACTOR, MIN_PIXELS, MAX_PIXELS, MAX_LENGTH = 32, 4 * 32 * 32, 1800 * 32 * 32, 10240


def resize(image: Any) -> Any:
    """Convert to RGB (alpha on white) and resize with the official smart resize."""
    from PIL import Image

    if image.mode != "RGB":
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.split()[3])
        image = white
    height, width = image.height, image.width
    h_bar = max(FACTOR, round(height / FACTOR) * FACTOR)
    w_bar = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h_bar * w_bar > MAX_PIXELS:
        beta = math.sqrt(height * width / MAX_PIXELS)
        h_bar = math.floor(height / beta / FACTOR) * FACTOR
        w_bar = math.floor(width / beta / FACTOR) * FACTOR
    elif h_bar * w_bar < MIN_PIXELS:
        beta = math.sqrt(MIN_PIXELS / (height * width))
        h_bar = math.ceil(height * beta / FACTOR) * FACTOR
        w_bar = math.ceil(width * beta / FACTOR) * FACTOR
    return image.resize((w_bar, h_bar))


class Qwen3VLReference:
    """Scores one pair per forward pass, as the official Qwen3-VL-Reranker code path does."""

    def __init__(self, checkpoint: str | Path, max_length: int = MAX_LENGTH) -> None:
        from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(checkpoint, padding_side="left")
        self.model = Qwen3VLForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32).eval()
        tokenizer = self.processor.tokenizer
        self.yes = tokenizer.convert_tokens_to_ids("yes")
        self.no = tokenizer.convert_tokens_to_ids("no")
        self.special = set(tokenizer.all_special_ids)
        self.max_length = max_length

    def content(self, prefix: str, text: str | None, images: list[Any]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "text", "text": prefix}]
        parts += [{"type": "image", "image": im} for im in images]
        if text:
            parts.append({"type": "text", "text": text})
        if not text and not images:
            parts.append({"type": "text", "text": "NULL"})
        return parts

    def cut(self, ids: list[int]) -> list[int]:
        body, suffix = ids[:-5], ids[-5:]
        if len(body) <= self.max_length:
            return ids
        keep = self.max_length - sum(1 for t in body if t in self.special)
        out = []
        for token in body:
            if token in self.special:
                out.append(token)
            elif keep > 0:
                out.append(token)
                keep -= 1
        return out + suffix

    def score(
        self, instruction: str, q_text: str | None, q_images: list[Any], d_text: str | None, d_images: list[Any]
    ) -> tuple[float, list[int]]:
        """Return the score and the prompt's token ids."""
        q_images = [resize(im) for im in q_images]
        d_images = [resize(im) for im in d_images]
        content = [{"type": "text", "text": "<Instruct>: " + instruction}]
        content += self.content("<Query>:", q_text, q_images)
        content += self.content("\n<Document>:", d_text, d_images)
        messages = [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
            {"role": "user", "content": content},
        ]
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        images = q_images + d_images
        inputs = self.processor(text=[text], images=images or None, do_resize=False, return_tensors="pt")
        ids = self.cut(inputs["input_ids"][0].tolist())
        inputs["input_ids"] = torch.tensor([ids])
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == self.model.config.image_token_id).int()
        with torch.no_grad():
            logits = self.model(**inputs).logits[0, -1]
        probs = torch.softmax(torch.stack([logits[self.yes], logits[self.no]]).float(), dim=0)
        return float(probs[0]), ids
