"""The recipe of ``Qwen/Qwen3-VL-Reranker-2B`` and ``-8B`` (model type ``qwen3_vl``).

Same prompt strings and score as Lychee; a 32-pixel image factor, 4 to 1800 visual tokens
per image, 10240 tokens per pair, ``NULL`` for an empty side, and the official cut of
long pairs. Images are resized *before* the processor, as the official code does with
qwen-vl-utils (:func:`prepare_image`), and the processor then leaves their size alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from lychee_integrations.images import to_rgb
from lychee_integrations.recipes.base import JUDGE_SYSTEM_PROMPT, Recipe

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["IMAGE_FACTOR", "MAX_ASPECT_RATIO", "QWEN3_VL", "prepare_image", "smart_resize"]

#: Patch size 16 times spatial merge 2.
IMAGE_FACTOR = 32
#: Images more elongated than this are refused.
MAX_ASPECT_RATIO = 200


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Return the ``(height, width)`` an image is resized to: multiples of ``factor`` within the bounds.

    Each side is rounded to the nearest multiple of ``factor`` (at least ``factor``); an area
    over ``max_pixels`` is scaled down and floored, one under ``min_pixels`` scaled up and ceiled.

    Args:
        height: The image's height.
        width: The image's width.
        factor: The size factor (32 for Qwen3-VL).
        min_pixels: Smallest area.
        max_pixels: Largest area.

    Returns:
        The target height and width.

    Raises:
        ValueError: The aspect ratio is over :data:`MAX_ASPECT_RATIO`.

    Example:
        >>> smart_resize(48, 64, 32, 4 * 32 * 32, 1800 * 32 * 32)
        (64, 64)

    """
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"the image is {width}x{height}, an aspect ratio over {MAX_ASPECT_RATIO}; crop or pad it first"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def prepare_image(image: PILImage, min_pixels: int, max_pixels: int) -> PILImage:
    """Convert to RGB (transparency on white) and resize as the official Qwen3-VL-Reranker code does.

    Args:
        image: A decoded image.
        min_pixels: Smallest area after resizing.
        max_pixels: Largest area after resizing.

    Returns:
        An RGB image whose sides are multiples of 32, resized with PIL's bicubic filter.

    Raises:
        ValueError: The aspect ratio is over :data:`MAX_ASPECT_RATIO`.

    Example:
        >>> from PIL import Image
        >>> prepare_image(Image.new("RGBA", (64, 48)), 4096, 1843200).size
        (64, 64)

    """
    from PIL import Image

    rgb = to_rgb(image)
    height, width = smart_resize(rgb.height, rgb.width, IMAGE_FACTOR, min_pixels, max_pixels)
    return rgb.resize((width, height), Image.Resampling.BICUBIC)


#: Qwen3-VL-Reranker: 32-pixel factor, 4 to 1800 visual tokens per image, 10240 tokens per pair.
QWEN3_VL = Recipe(
    name="qwen3-vl",
    model_types=("qwen3_vl",),
    system_prompt=JUDGE_SYSTEM_PROMPT,
    default_instruction="Given a search query, retrieve relevant candidates that answer the query.",
    min_pixels=4 * 32 * 32,
    max_pixels=1800 * 32 * 32,
    max_length=10240,
    truncation="qwen3_vl",
    empty_side_text="NULL",
    prepare_image=prepare_image,
)
