"""The one way the package loads a checkpoint's processor (tokenizer and image processor).

The in-process engine and the vLLM backend encode prompts with the same processor
settings, so both load it here: left padding, and the image area bounds the model
resizes images between.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_processor"]


def load_processor(model: str, *, min_pixels: int, max_pixels: int, **hub_options: Any) -> Any:
    """Load ``model``'s processor with left padding and the given image area bounds.

    Args:
        model: Hub id or local checkpoint directory.
        min_pixels: Smallest image area after resizing, in pixels.
        max_pixels: Largest image area after resizing, in pixels.
        **hub_options: Further ``AutoProcessor.from_pretrained`` options (``revision``,
            ``cache_dir``, ``local_files_only``, ``trust_remote_code``).

    Returns:
        The checkpoint's ``transformers`` processor.

    Raises:
        OSError: The checkpoint or its processor files cannot be found or read.

    Example:
        >>> processor = load_processor("/models/lychee", min_pixels=3136, max_pixels=1003520)  # doctest: +SKIP
        >>> processor.tokenizer.padding_side  # doctest: +SKIP
        'left'

    """
    import transformers

    return transformers.AutoProcessor.from_pretrained(
        model,
        padding_side="left",
        size={"shortest_edge": min_pixels, "longest_edge": max_pixels},
        **hub_options,
    )
