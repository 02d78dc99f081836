"""Limits and security settings of the HTTP service, fixed at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.images import ImagePolicy

__all__ = ["ServiceSettings", "default_served_name"]

_MIB = 1024 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    """What the HTTP service accepts; frozen, checked at construction.

    The defaults are safe for a service reachable from a network: images travel in the
    request body (base64 or ``data:`` URIs), image URLs and local paths are refused.

    Attributes:
        max_documents: Most documents one request may carry.
        max_body_bytes: Largest request body, in bytes (answered with 413 above it).
        max_image_bytes: Largest encoded image, from any source.
        max_image_pixels: Largest decoded image (width x height); stops decompression bombs.
        max_images_per_item: Most images one query or one document may carry.
        max_images_per_request: Most images one request may carry, query and documents together.
        max_request_pixels: Most pixels (width x height, read from each image's header) summed
            over every image of one request; a request over it is refused before any image is
            decoded. Image URLs count once fetched.
        max_text_chars: Longest text of a query, document or instruction, in characters
            (more: 413, before anything is tokenized). The model reads at most ``max_length``
            tokens of a pair anyway; a longer query is cut once per call.
        allow_remote_images: Fetch ``http(s)`` image URLs (never from loopback or private
            addresses).
        image_root: A directory the service may read images from; paths outside it are
            refused. ``None`` refuses every local path.
        image_timeout: Seconds allowed for each network operation of an image download.
        max_concurrency: Most engine calls running at once; further requests wait. The
            engine combines concurrent calls into shared batches.
        api_key: When set, every API route (and ``/metrics``) requires
            ``Authorization: Bearer <api_key>``; ``/health``, ``/ready`` and the docs page
            stay open. Never shown in ``repr``.
        served_model_name: The model name used in responses, ``/health`` and metrics;
            :func:`default_served_name` of the engine's model when ``None``.

    Example:
        >>> ServiceSettings(max_documents=50).image_policy().allow_local_files
        False

    """

    max_documents: int = 100
    max_body_bytes: int = 16 * _MIB
    max_image_bytes: int = 8 * _MIB
    max_image_pixels: int = 20_000_000
    max_images_per_item: int = 8
    max_images_per_request: int = 128
    max_request_pixels: int = 100_000_000
    max_text_chars: int = 500_000
    allow_remote_images: bool = False
    image_root: Path | None = None
    image_timeout: float = 10.0
    max_concurrency: int = 32
    api_key: str | None = field(default=None, repr=False)
    served_model_name: str | None = None

    def __post_init__(self) -> None:
        for name in (f.name for f in fields(self) if f.type in ("int", int)):  # the limits, all positive integers
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"ServiceSettings.{name} must be a positive integer, got {value!r}")
        if not self.image_timeout > 0:
            raise ConfigurationError(f"ServiceSettings.image_timeout must be positive, got {self.image_timeout!r}")
        if self.api_key is not None and (not self.api_key or self.api_key != self.api_key.strip()):
            raise ConfigurationError("ServiceSettings.api_key must be non-empty and have no surrounding spaces")
        if self.served_model_name is not None and not self.served_model_name.strip():
            raise ConfigurationError("ServiceSettings.served_model_name must not be empty")
        if self.image_root is not None:
            root = Path(self.image_root).expanduser().resolve()
            if not root.is_dir():
                raise ConfigurationError(f"image root {self.image_root} is not an existing directory")
            object.__setattr__(self, "image_root", root)

    def image_policy(self) -> ImagePolicy:
        """Return the strict image policy these settings describe, for the engine.

        Returns:
            An :class:`~lychee_integrations.images.ImagePolicy` that never fetches from
            loopback or private addresses, fetches URLs only when
            :attr:`allow_remote_images`, and reads local files only inside
            :attr:`image_root`.

        """
        return ImagePolicy.strict(
            allow_remote=self.allow_remote_images,
            local_root=self.image_root,
            timeout=self.image_timeout,
            max_bytes=self.max_image_bytes,
            max_image_pixels=self.max_image_pixels,
            max_images_per_item=self.max_images_per_item,
            max_images_per_request=self.max_images_per_request,
            max_request_pixels=self.max_request_pixels,
        )


def default_served_name(model: str) -> str:
    """Name a model for clients: the hub id as given, or the directory's name for a local path.

    Responses never carry the server's filesystem layout.

    Example:
        >>> default_served_name("vec-ai/lychee-rerank-mm")
        'vec-ai/lychee-rerank-mm'
        >>> default_served_name("/")
        '/'

    """
    path = Path(model).expanduser()
    if path.exists():
        return path.resolve().name or model
    return model
