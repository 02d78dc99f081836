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

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.recipes.base import JUDGE_SYSTEM_PROMPT, Recipe
from lychee_integrations.recipes.lychee import LYCHEE
from lychee_integrations.recipes.qwen3_vl import QWEN3_VL

__all__ = ["JUDGE_SYSTEM_PROMPT", "RECIPES", "Recipe", "get_recipe", "recipe_for", "supported_families"]

#: Every known recipe by name.
RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (LYCHEE, QWEN3_VL)}


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
