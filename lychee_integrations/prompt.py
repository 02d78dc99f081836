"""The reference prompt of lychee-rerank-mm, and nothing else.

Builds the two chat messages of the recipe (``shared/docs/lychee-reference.md``),
renders them with the checkpoint's own chat template, expands each image placeholder
to the image's visual tokens exactly as the Qwen2.5-VL processor does, and tokenizes.
Pairs longer than ``max_length`` lose document text first, then query text, at token
boundaries; images, the instruction and the prompt suffix are never cut.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lychee_integrations.errors import InputTooLongError, InvalidInputError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image as PILImage

__all__ = ["SYSTEM_PROMPT", "EncodedPair", "ImageFeatures", "PromptEncoder", "Side", "build_messages"]

#: The system message the model was trained with, byte for byte.
SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
_RESERVED = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
_MAX_CUT_ROUNDS = 8


@dataclass(frozen=True)
class ImageFeatures:
    """One preprocessed image: its patches, its grid and how many tokens it takes."""

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor
    n_tokens: int


@dataclass(frozen=True)
class Side:
    """The query or the document after image preprocessing."""

    text: str | None
    images: tuple[ImageFeatures, ...] = ()


@dataclass(frozen=True)
class EncodedPair:
    """A tokenized query-document pair, ready for batching."""

    input_ids: tuple[int, ...]
    images: tuple[ImageFeatures, ...]
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


def build_messages(
    instruction: str, query_text: str | None, n_query_images: int, doc_text: str | None, n_doc_images: int
) -> list[dict[str, Any]]:
    r"""Return the recipe's chat messages for one pair (images as placeholders).

    Example:
        >>> build_messages("Find it", "cats", 0, "a cat", 1)[1]["content"][3:]
        [{'type': 'text', 'text': '\\n<Document>:'}, {'type': 'image'}, {'type': 'text', 'text': 'a cat'}]

    """
    content: list[dict[str, Any]] = [
        {"type": "text", "text": f"<Instruct>: {instruction}"},
        {"type": "text", "text": "<Query>:"},
    ]
    content += [{"type": "image"}] * n_query_images
    if query_text:
        content.append({"type": "text", "text": query_text})
    content.append({"type": "text", "text": "\n<Document>:"})
    content += [{"type": "image"}] * n_doc_images
    if doc_text:
        content.append({"type": "text", "text": doc_text})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": content},
    ]


class PromptEncoder:
    """Turns pairs into token ids with the checkpoint's processor, under ``max_length``.

    Thread-safe: it only reads the processor and never changes tokenizer settings.
    """

    def __init__(self, processor: Any, max_length: int) -> None:
        self._processor = processor
        self._backend = processor.tokenizer.backend_tokenizer
        if self._backend.truncation is not None or self._backend.padding is not None:
            # A tokenizer.json may carry truncation or padding: never let it cut silently.
            self._backend.no_truncation()
            self._backend.no_padding()
        self._image_token: str = processor.image_token
        self._merge = int(processor.image_processor.merge_size) ** 2
        self.max_length = max_length

    def encode_image(self, image: PILImage) -> ImageFeatures:
        """Preprocess one image (smart resize, patches) with the checkpoint's image processor."""
        out = self._processor.image_processor(images=[image], return_tensors="pt")
        grid = out["image_grid_thw"]
        return ImageFeatures(out["pixel_values"], grid, int(grid.prod().item()) // self._merge)

    def token_ids(self, text: str) -> list[int]:
        """Tokenize exactly as the processor does."""
        return list(self._backend.encode(text).ids)

    def _render(self, instruction: str, query: Side, doc: Side) -> str:
        messages = build_messages(instruction, query.text, len(query.images), doc.text, len(doc.images))
        text: str = self._processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pieces = text.split(self._image_token)
        images = query.images + doc.images
        if len(pieces) != len(images) + 1:
            raise RuntimeError(f"chat template rendered {len(pieces) - 1} image slots for {len(images)} images")
        out = [pieces[0]]
        for features, piece in zip(images, pieces[1:], strict=True):
            out.append(self._image_token * features.n_tokens)
            out.append(piece)
        return "".join(out)

    def check_text(self, text: str | None, item: str, index: int | None = None) -> None:
        """Refuse text holding a vision placeholder token, which would break the image-token count.

        Raises:
            InvalidInputError: Naming ``item`` and the token.

        """
        for token in _RESERVED:
            if text and token in text:
                raise InvalidInputError(item, f"text contains the reserved vision token {token}", index=index)

    def encode(
        self, instruction: str, query: Side, doc: Side, *, item: str = "document", index: int | None = None
    ) -> EncodedPair:
        """Render and tokenize one pair, cutting text if the pair is over ``max_length``.

        The query's text is checked once by the caller (:meth:`check_text`), not per pair.

        Args:
            instruction: The instruction text.
            query: The query side.
            doc: The document side.
            item: How errors name the document.
            index: The document's index, for errors.

        Returns:
            The token ids (images expanded to their visual tokens) and the image features.

        Raises:
            InvalidInputError: The document's text holds a vision placeholder token.
            InputTooLongError: The images and fixed prompt alone exceed ``max_length``.

        """
        self.check_text(doc.text, item, index)
        ids = self.token_ids(self._render(instruction, query, doc))
        truncated = len(ids) > self.max_length
        if truncated:
            doc, ids = self._cut(doc, ids, lambda d: self._render(instruction, query, d))
        if len(ids) > self.max_length:
            query, ids = self._cut(query, ids, lambda q: self._render(instruction, q, doc))
        if len(ids) > self.max_length:
            n_img = sum(f.n_tokens for f in query.images + doc.images)
            raise InputTooLongError(
                item,
                f"needs {len(ids)} tokens with all text removed ({n_img} of them image tokens), over "
                f"max_length={self.max_length}; lower max_pixels, raise max_length or send smaller images",
                index=index,
            )
        return EncodedPair(tuple(ids), query.images + doc.images, truncated)

    def _cut(self, side: Side, ids: list[int], render: Callable[[Side], str]) -> tuple[Side, list[int]]:
        """Cut ``side``'s text at a token boundary until ``render`` fits, or drop it."""
        if not side.text:
            return side, ids
        tokens = self.token_ids(side.text)
        keep = len(tokens) - (len(ids) - self.max_length)
        for _ in range(_MAX_CUT_ROUNDS):
            if keep <= 0:
                break
            cut = replace(side, text=self._backend.decode(tokens[:keep], skip_special_tokens=False).rstrip("\ufffd"))
            ids = self.token_ids(render(cut))
            if len(ids) <= self.max_length:
                return cut, ids
            keep -= len(ids) - self.max_length
        empty = replace(side, text=None)
        return empty, self.token_ids(render(empty))
