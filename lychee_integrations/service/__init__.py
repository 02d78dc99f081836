"""The HTTP rerank API (extra ``server``: FastAPI, uvicorn) and the web page (extra ``ui``: Gradio).

* :func:`create_app`: the FastAPI application (``/api/rerank``, ``/v1/rerank``, ``/health``).
* :func:`create_ui_app`: the Gradio web page, alone or mounted on the API.
* :class:`ServiceSettings`: limits and image rules; :func:`service_reranker` builds an
  engine that applies them.

``create_app`` and ``create_ui_app`` are imported on first use, so that importing this
package does not import FastAPI or Gradio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lychee_integrations.config import default_model
from lychee_integrations.service.settings import ServiceSettings

if TYPE_CHECKING:
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.service.app import create_app
    from lychee_integrations.service.webui import build_ui, create_ui_app

__all__ = ["ServiceSettings", "build_ui", "create_app", "create_ui_app", "default_model", "service_reranker"]


def service_reranker(settings: ServiceSettings, model: str | None = None, **options: Any) -> LycheeReranker:
    """Build the engine for a service: its image policy is ``settings.image_policy()``.

    Args:
        settings: The service's limits and image rules.
        model: Hub id or local directory; :func:`default_model` when ``None``.
        **options: Other :class:`~lychee_integrations.engine.LycheeReranker` options
            (``device``, ``dtype``, ``max_length``, ``batch_size``, ...).

    Returns:
        A reranker, not loaded yet (call ``.load()`` to load it now).

    Raises:
        ConfigurationError: An invalid option, or ``image_policy`` among ``options``.

    Example:
        >>> reranker = service_reranker(ServiceSettings(), model="vec-ai/lychee-rerank-mm", device="cpu")
        >>> reranker.image_policy.allow_private_addresses
        False

    """
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.errors import ConfigurationError

    if "image_policy" in options:
        raise ConfigurationError("image_policy comes from the ServiceSettings; set the limits there")
    return LycheeReranker(model or default_model(), image_policy=settings.image_policy(), **options)


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from lychee_integrations.service.app import create_app

        return create_app
    if name in ("build_ui", "create_ui_app"):
        from lychee_integrations.service import webui

        return getattr(webui, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
