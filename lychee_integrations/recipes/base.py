"""The :class:`Recipe` record that every model family module fills in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["JUDGE_SYSTEM_PROMPT", "Recipe"]

#: The system message both families were trained with, byte for byte.
JUDGE_SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)


@dataclass(frozen=True)
class Recipe:
    """What one model family needs to be scored exactly as it was trained.

    Attributes:
        name: The recipe's name (the ``recipe=`` option).
        model_types: ``config.json`` ``model_type`` values this recipe serves.
        system_prompt: The system message, byte for byte.
        default_instruction: The instruction used when the caller gives none.
        min_pixels: Default smallest image area after resizing.
        max_pixels: Default largest image area after resizing.
        max_length: Default most tokens per pair.
        truncation: ``"lychee"`` (cut document text, then query text, at token boundaries, to
            fit ``max_length``) or ``"qwen3_vl"`` (keep every special token and the first
            ``max_length - n_special`` ordinary tokens, then re-append the 5-token suffix).
        empty_side_text: Text given to a side with neither text nor images (``None``: nothing).
        yes_token: The token whose probability is the score.
        no_token: The competing token.
        model_class: The ``transformers`` class that loads the checkpoint.
        prepare_image: Resizing done before the processor (``None``: the processor resizes).
            Called with the image, ``min_pixels`` and ``max_pixels``.

    """

    name: str
    model_types: tuple[str, ...]
    system_prompt: str
    default_instruction: str
    min_pixels: int
    max_pixels: int
    max_length: int
    truncation: Literal["lychee", "qwen3_vl"]
    empty_side_text: str | None = None
    yes_token: str = "yes"
    no_token: str = "no"
    model_class: str = "AutoModelForImageTextToText"
    prepare_image: Callable[[PILImage, int, int], PILImage] | None = None
