"""The one pair encoder of the engine and the vLLM backend: prompt, image planning, tokens.

Builds the two chat messages of a model family's recipe (:mod:`lychee_integrations.recipes`;
``shared/docs/lychee-reference.md``), renders them with the checkpoint's own chat template,
expands each image placeholder to the image's visual tokens exactly as the processor does,
and tokenizes. Too-long pairs are cut the recipe's way: Lychee's (``"lychee"``) loses
document text first, then query text, at token boundaries, never images, the instruction
or the prompt suffix; Qwen3-VL's (``"qwen3_vl"``) keeps every special token and the first
ordinary tokens that fit, then the 5-token suffix.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Executor, Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from lychee_integrations.engine.caches import image_key
from lychee_integrations.errors import InputTooLongError, InvalidInputError
from lychee_integrations.images import (
    ImagePolicy,
    OpenedImage,
    check_image_counts,
    check_request_pixels,
    decode_image,
    decoded_size,
    open_image,
)
from lychee_integrations.inputs import RerankInput, map_documents
from lychee_integrations.recipes import Recipe
from lychee_integrations.recipes.lychee import LYCHEE

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image as PILImage

    from lychee_integrations.scoring import ScoreRequest

__all__ = ["SUFFIX_TOKENS", "EncodedPair", "ImageFeatures", "PromptEncoder", "Side", "build_messages"]

_MAX_CUT_ROUNDS = 8
#: Pixels an image keeps once decoded, at least (see :meth:`PromptEncoder.decoding_policy`).
DECODE_PIXELS = 4_000_000
#: ``<|im_end|>\n<|im_start|>assistant\n``: the tokens the Qwen3-VL cut re-appends.
SUFFIX_TOKENS = 5


class ImageFeatures:
    """One image as the model takes it: its grid and token count now, its patches when needed.

    The grid (and so the number of visual tokens) follows from the image's size alone, so
    pairs can be tokenized and planned into batches at once. The patches (resize, normalize,
    patchify: most of an image's preprocessing) are made on first use of
    :attr:`pixel_values`, or ahead of use in a thread pool after :meth:`prefetch`, so that
    they are made while earlier batches run on the device.

    Args:
        grid_thw: The ``(1, 3)`` grid (frames, patch rows, patch columns).
        n_tokens: Visual tokens the image takes in the prompt.
        pixel_values: The patches, when already made.
        make: Makes ``(pixel_values, grid_thw)``; the grid it returns must equal ``grid_thw``.
        key: A content key of the image and its settings (:func:`~lychee_integrations.engine.caches.image_key`),
            when the engine's caches need one; equal keys mean equal patches.

    """

    __slots__ = ("_future", "_lock", "_make", "_pixels", "grid_thw", "key", "n_tokens")

    def __init__(
        self,
        grid_thw: torch.Tensor,
        n_tokens: int,
        *,
        pixel_values: torch.Tensor | None = None,
        make: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
        key: bytes | None = None,
    ) -> None:
        if pixel_values is None and make is None:
            raise ValueError("ImageFeatures needs pixel_values or make")
        self.grid_thw = grid_thw
        self.n_tokens = n_tokens
        self.key = key
        self._pixels = pixel_values
        self._make = make
        self._future: Future[torch.Tensor] | None = None
        self._lock = threading.Lock()

    def _compute(self) -> torch.Tensor:
        import torch

        assert self._make is not None
        pixels, grid = self._make()
        if not torch.equal(grid.to(self.grid_thw.dtype), self.grid_thw):
            planned = self.grid_thw.tolist()
            raise RuntimeError(f"the image processor made a {grid.tolist()} grid where {planned} was planned")
        return pixels

    @property
    def pixel_values(self) -> torch.Tensor:
        """The patches; made now (or waited for, after :meth:`prefetch`) on first use."""
        pixels = self._pixels
        if pixels is None:
            with self._lock:
                if self._pixels is None:
                    try:
                        self._pixels = self._future.result() if self._future is not None else self._compute()
                    except CancelledError:  # its pool was shut down first
                        self._pixels = self._compute()
                    self._make = self._future = None  # drop the decoded image
                pixels = self._pixels
        return pixels

    @property
    def is_ready(self) -> bool:
        """Whether the patches are made (or being made in a pool)."""
        return self._pixels is not None or self._future is not None

    def prefetch(self, pool: Executor) -> None:
        """Start making the patches in ``pool`` unless they are made or under way."""
        with self._lock:
            if self._pixels is None and self._future is None:
                with contextlib.suppress(RuntimeError):  # a pool shut down: made on use instead
                    self._future = pool.submit(self._compute)

    def __repr__(self) -> str:
        return f"ImageFeatures(grid_thw={self.grid_thw.tolist()}, n_tokens={self.n_tokens})"


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
    #: The images as the processor receives them (query's, then document's), kept only when asked (vLLM reads them).
    sources: tuple[PILImage, ...] = ()

    def __len__(self) -> int:
        return len(self.input_ids)


def build_messages(
    instruction: str,
    query_text: str | None,
    n_query_images: int,
    doc_text: str | None,
    n_doc_images: int,
    *,
    recipe: Recipe = LYCHEE,
) -> list[dict[str, Any]]:
    r"""Return the recipe's chat messages for one pair (images as placeholders).

    Args:
        instruction: The instruction text.
        query_text: The query's text, if any.
        n_query_images: How many images the query holds.
        doc_text: The document's text, if any.
        n_doc_images: How many images the document holds.
        recipe: The model family (system prompt, what an empty side becomes).

    Returns:
        The system and user messages.

    Example:
        >>> build_messages("Find it", "cats", 0, "a cat", 1)[1]["content"][3:]
        [{'type': 'text', 'text': '\n<Document>:'}, {'type': 'image'}, {'type': 'text', 'text': 'a cat'}]

    """
    content: list[dict[str, Any]] = [{"type": "text", "text": f"<Instruct>: {instruction}"}]
    for prefix, text, n_images in (("<Query>:", query_text, n_query_images), ("\n<Document>:", doc_text, n_doc_images)):
        content.append({"type": "text", "text": prefix})
        content += [{"type": "image"}] * n_images
        if text:
            content.append({"type": "text", "text": text})
        elif not n_images and recipe.empty_side_text is not None:
            content.append({"type": "text", "text": recipe.empty_side_text})
    return [
        {"role": "system", "content": [{"type": "text", "text": recipe.system_prompt}]},
        {"role": "user", "content": content},
    ]


class PromptEncoder:
    """Turns pairs into token ids with the checkpoint's processor, under ``max_length``.

    Thread-safe: it only reads the processor and never changes tokenizer settings.
    """

    def __init__(
        self,
        processor: Any,
        max_length: int,
        *,
        recipe: Recipe = LYCHEE,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        hash_images: bool = False,
    ) -> None:
        self._processor = processor
        #: Whether each image gets a content key (:attr:`ImageFeatures.key`), for the engine's caches.
        self.hash_images = hash_images
        self._backend = processor.tokenizer.backend_tokenizer
        if self._backend.truncation is not None or self._backend.padding is not None:
            # A tokenizer.json may carry truncation or padding: never let it cut silently.
            self._backend.no_truncation()
            self._backend.no_padding()
        self._image_token: str = processor.image_token
        self._merge_size = int(processor.image_processor.merge_size)
        self._merge = self._merge_size**2
        self._patch = int(processor.image_processor.patch_size)
        self._special_ids = frozenset(int(i) for i in processor.tokenizer.all_special_ids)
        # Every added token (chat control, vision, tool tokens) is matched in raw text by the tokenizer:
        # user text holding one would write prompt structure, so such text is refused.
        added = sorted(processor.tokenizer.get_added_vocab(), key=len, reverse=True)
        self._control = re.compile("|".join(map(re.escape, added))) if added else None
        self.recipe = recipe
        self.min_pixels = recipe.min_pixels if min_pixels is None else min_pixels
        self.max_pixels = recipe.max_pixels if max_pixels is None else max_pixels
        self.max_length = max_length

    def encode_image(self, image: PILImage, *, item: str = "image", index: int | None = None) -> ImageFeatures:
        """Plan one image: its grid and token count now; its patches, by the checkpoint's processor, on use.

        The recipe's resize (Qwen3-VL's) runs now; the processor's resize and patching run
        when :attr:`ImageFeatures.pixel_values` is first read or after
        :meth:`ImageFeatures.prefetch`.

        Raises:
            InvalidInputError: The image cannot be resized (an aspect ratio over 200).

        """
        import torch

        processor = self._processor.image_processor
        options: dict[str, Any] = {}
        try:
            if self.recipe.prepare_image is None:
                height, width = self._processor_resize(image.height, image.width)
            else:
                image = self.model_image(image)
                height, width, options["do_resize"] = image.height, image.width, False
        except ValueError as exc:
            raise InvalidInputError(item, str(exc), index=index) from exc
        grid = torch.tensor([[1, height // self._patch, width // self._patch]])

        def make() -> tuple[torch.Tensor, torch.Tensor]:
            out = processor(images=[image], return_tensors="pt", **options)
            return out["pixel_values"], out["image_grid_thw"]

        key = None
        if self.hash_images:
            settings = (
                self.recipe.name,
                tuple(grid[0].tolist()),
                self.min_pixels,
                self.max_pixels,
                repr(processor.size),
            )
            key = image_key(image, settings)
        return ImageFeatures(grid, int(grid.prod().item()) // self._merge, make=make, key=key)

    def model_image(self, image: PILImage) -> PILImage:
        """Return ``image`` as the checkpoint's processor receives it: after the recipe's resize, if any.

        Qwen3-VL's images are resized here (:attr:`Recipe.prepare_image`), before the processor;
        Lychee's are returned unchanged (its processor resizes them).

        Raises:
            ValueError: The recipe's resize refuses the image (an aspect ratio over 200).

        """
        if self.recipe.prepare_image is None:
            return image
        return self.recipe.prepare_image(image, self.min_pixels, self.max_pixels)

    def encode_request(
        self,
        request: ScoreRequest,
        instruction: str,
        policy: ImagePolicy,
        *,
        workers: int = 1,
        max_images: int | None = None,
        keep_sources: bool = False,
    ) -> list[EncodedPair]:
        """Encode every pair of a validated request: images read and planned, prompts rendered and cut.

        Args:
            request: The validated call.
            instruction: The instruction text (the caller applies the family default).
            policy: What the image loader may read.
            workers: Threads that encode documents (results and errors are the same).
            max_images: Most images in one pair, both sides together (``None``: no cap).
            keep_sources: Keep each pair's images as the processor receives them
                (:meth:`model_image`) on :attr:`EncodedPair.sources`.

        Returns:
            One pair per document, in order.

        Raises:
            InvalidInputError: Naming each bad item (text holding a vision token, an image
                that cannot be read or resized, too many images, a pair too long).
            LimitExceededError: The request is over one of the policy's budgets (images per
                item or per request before any image is read, summed pixels before any is decoded).

        """
        self.check_text(instruction, "instruction")
        self.check_text(request.query.text, "query")
        policy = self.decoding_policy(policy)
        documents = request.documents
        check_image_counts(
            [("query", None, len(request.query.images))]
            + [(f"document {i}", i, len(d.images)) for i, d in enumerate(documents)],
            policy,
        )
        # Every header first (downloads included), then the request's pixel budget, then decoding.
        query_opened = self._open(request.query, policy, "query", None)
        query_tokens = sum(self.header_tokens(o, policy) for o in query_opened)

        def open_document(document: object, item: str, index: int) -> tuple[OpenedImage, ...]:
            assert isinstance(document, RerankInput)
            pair_images = len(request.query.images) + len(document.images)
            if max_images is not None and pair_images > max_images:
                raise InvalidInputError(
                    item,
                    f"the pair holds {pair_images} images (query and document), over max_images_per_pair={max_images}",
                    index=index,
                )
            own = self._open(document, policy, item, index)
            needed = query_tokens + sum(self.header_tokens(o, policy) for o in own)
            if needed > self.max_length:  # refused before its images are decoded, as the cut would refuse it
                raise InputTooLongError(
                    item,
                    f"its images and the query's need {needed} tokens (from the image headers), over "
                    f"max_length={self.max_length}; lower max_pixels, raise max_length or send smaller images",
                    index=index,
                )
            return own

        opened = map_documents(documents, open_document, workers=workers)
        check_request_pixels(
            [("query", None, query_opened)] + [(f"document {i}", i, o) for i, o in enumerate(opened)], policy
        )
        query_images = tuple(decode_image(o, policy, item="query") for o in query_opened)
        images = tuple(self.encode_image(im, item="query") for im in query_images)
        query = Side(self._query_text(request.query.text), images)
        # encode_image has resized (and so checked) them already.
        query_sources = tuple(self.model_image(im) for im in query_images) if keep_sources else ()

        def encode(entry: object, item: str, index: int) -> EncodedPair:
            assert isinstance(entry, tuple)
            document, own = entry
            images = tuple(decode_image(o, policy, item=item, index=index) for o in own)
            side = Side(document.text, tuple(self.encode_image(im, item=item, index=index) for im in images))
            pair = self.encode(instruction, query, side, item=item, index=index)
            if not keep_sources:
                return pair
            return replace(pair, sources=query_sources + tuple(self.model_image(im) for im in images))

        return map_documents(list(zip(documents, opened, strict=True)), encode, workers=workers)

    def header_tokens(self, opened: OpenedImage, policy: ImagePolicy) -> int:
        """Return the visual tokens ``opened`` will take, from its header (0 where only decoding can tell).

        Exact for a family whose processor resizes (Lychee): the processor's resize of the size
        :func:`~lychee_integrations.images.decode_image` gives. A recipe that resizes the decoded
        image itself (Qwen3-VL) or an image the resize refuses counts 0 here; :meth:`encode_image`
        counts it after decoding.
        """
        if self.recipe.prepare_image is not None:
            return 0
        width, height = decoded_size(opened, policy)
        try:
            height, width = self._processor_resize(height, width)
        except ValueError:
            return 0
        return (height // self._patch) * (width // self._patch) // self._merge

    def _processor_resize(self, height: int, width: int) -> tuple[int, int]:
        """Return the size the Qwen2-VL image processor's own resize picks, within its own bounds."""
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

        bounds = self._processor.image_processor.size
        factor = self._patch * self._merge_size
        resized: tuple[int, int] = smart_resize(
            height, width, factor=factor, min_pixels=bounds["shortest_edge"], max_pixels=bounds["longest_edge"]
        )
        return resized

    def decoding_policy(self, policy: ImagePolicy) -> ImagePolicy:
        """Return ``policy`` with images shrunk as soon as they are decoded, unless it says otherwise.

        An image over :data:`DECODE_PIXELS` (or four times ``max_pixels`` where that is more)
        is shrunk to that size right after decoding: the processor's own resize then starts
        from twice the width and height it keeps, and a large image never lives full-size.
        """
        if policy.downscale_pixels is not None:
            return policy
        return replace(policy, downscale_pixels=max(DECODE_PIXELS, 4 * self.max_pixels))

    def _query_text(self, text: str | None) -> str | None:
        """Cut a query longer than ``max_length`` tokens once per call (every pair would cut it anyway)."""
        if not text or len(text) <= self.max_length:  # a token is at least one character
            return text
        ids = self.token_ids(text)
        if len(ids) <= self.max_length:
            return text
        cut: str = self._backend.decode(ids[: self.max_length], skip_special_tokens=False)
        return cut.rstrip("\ufffd")

    @staticmethod
    def _open(value: RerankInput, policy: ImagePolicy, item: str, index: int | None) -> tuple[OpenedImage, ...]:
        return tuple(open_image(image, policy, item=item, index=index) for image in value.images)

    def token_ids(self, text: str) -> list[int]:
        """Tokenize exactly as the processor does."""
        return list(self._backend.encode(text).ids)

    def _render(self, instruction: str, query: Side, doc: Side) -> str:
        messages = build_messages(
            instruction, query.text, len(query.images), doc.text, len(doc.images), recipe=self.recipe
        )
        text: str = self._processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        pieces = text.split(self._image_token)
        images = query.images + doc.images
        if len(pieces) != len(images) + 1:
            raise RuntimeError(f"chat template rendered {len(pieces) - 1} image slots for {len(images)} images")
        slots = (self._image_token * f.n_tokens + piece for f, piece in zip(images, pieces[1:], strict=True))
        return pieces[0] + "".join(slots)

    def check_text(self, text: str | None, item: str, index: int | None = None) -> None:
        """Refuse user text holding a token of the prompt's own (chat control, vision, tool tokens).

        The tokenizer would read such a string as the special token itself, so a document could
        close its turn and write the answer; user text stays text, or is refused.

        Raises:
            InvalidInputError: Naming ``item`` and the token.

        """
        found = self._control.search(text) if text and self._control is not None else None
        if found is not None:
            raise InvalidInputError(
                item,
                f"text contains {found.group()!r}, a control token of the model's prompt; remove it",
                index=index,
            )

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
        if self.recipe.truncation == "qwen3_vl":
            return self._cut_qwen3_vl(ids, query.images + doc.images, item, index)
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

    def _cut_qwen3_vl(
        self, ids: list[int], images: tuple[ImageFeatures, ...], item: str, index: int | None
    ) -> EncodedPair:
        """Cut as the official Qwen3-VL-Reranker code does: every special token, the first ordinary ones, the suffix."""
        body, suffix = ids[:-SUFFIX_TOKENS], ids[-SUFFIX_TOKENS:]
        if len(body) <= self.max_length:
            return EncodedPair(tuple(ids), images, False)
        n_special = sum(1 for token in body if token in self._special_ids)
        room = self.max_length - n_special
        if room < 0:
            raise InputTooLongError(
                item,
                f"needs {n_special} special and image tokens, over max_length={self.max_length}; lower "
                "max_pixels, raise max_length or send smaller images",
                index=index,
            )
        kept: list[int] = []
        for token in body:
            if token in self._special_ids:
                kept.append(token)
            elif room > 0:
                kept.append(token)
                room -= 1
        return EncodedPair(tuple(kept + suffix), images, True)

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
