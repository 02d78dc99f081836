"""Lazy imports of optional dependencies with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from lychee_integrations.errors import MissingDependencyError


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is required for this feature: pip install 'lychee-integrations[{extra}]'"
        ) from exc
