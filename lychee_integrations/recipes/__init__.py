"""Model families as data: what differs between rerankers of the yes/no recipe family.

A :class:`Recipe` holds the prompt strings, image bounds, length limit, how a too-long
pair is cut, what an empty side becomes and the answer tokens of one model family. The
engine picks the recipe from the checkpoint's ``model_type`` (:func:`recipe_for`) or by
name (:func:`get_recipe`); adding a family means adding one module here and one line to
:data:`RECIPES`.

Example:
    >>> recipe_for("qwen3_vl").name
    'qwen3-vl'
    >>> get_recipe("lychee").max_length
    3200

"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lychee_integrations.errors import ConfigurationError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

__all__ = ["RECIPES", "Recipe", "get_recipe", "recipe_for", "supported_families"]

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
        image_factor: Image sides are resized to multiples of this (patch size x merge size).
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
    image_factor: int
    min_pixels: int
    max_pixels: int
    max_length: int
    truncation: Literal["lychee", "qwen3_vl"]
    empty_side_text: str | None = None
    yes_token: str = "yes"
    no_token: str = "no"
    model_class: str = "AutoModelForImageTextToText"
    prepare_image: Callable[[PILImage, int, int], PILImage] | None = None


def _registry() -> dict[str, Recipe]:
    from lychee_integrations.recipes.lychee import LYCHEE
    from lychee_integrations.recipes.qwen3_vl import QWEN3_VL

    return {recipe.name: recipe for recipe in (LYCHEE, QWEN3_VL)}


#: Every known recipe by name.
RECIPES: dict[str, Recipe] = _registry()


def supported_families() -> str:
    """Describe the known families, for error messages (``name (model_type, ...)``)."""
    return ", ".join(f"{r.name} ({', '.join(r.model_types)})" for r in RECIPES.values())


def get_recipe(name: str) -> Recipe:
    """Return the recipe called ``name``.

    Args:
        name: A key of :data:`RECIPES` (``"lychee"``, ``"qwen3-vl"``).

    Returns:
        The recipe.

    Raises:
        ConfigurationError: Unknown name; the message lists the known ones.

    Example:
        >>> get_recipe("qwen3-vl").empty_side_text
        'NULL'

    """
    recipe = RECIPES.get(name)
    if recipe is None:
        raise ConfigurationError(f"unknown recipe {name!r}; known recipes: {supported_families()}")
    return recipe


def recipe_for(model_type: str) -> Recipe:
    """Return the recipe serving checkpoints of ``model_type`` (from ``config.json``).

    Args:
        model_type: The checkpoint's ``model_type``, e.g. ``"qwen2_5_vl"``.

    Returns:
        The recipe.

    Raises:
        ConfigurationError: No recipe serves that model type; the message lists the families.

    Example:
        >>> recipe_for("qwen2_5_vl").name
        'lychee'

    """
    for recipe in RECIPES.values():
        if model_type in recipe.model_types:
            return recipe
    raise ConfigurationError(
        f"no recipe for a {model_type!r} checkpoint; supported model families: {supported_families()}"
    )
