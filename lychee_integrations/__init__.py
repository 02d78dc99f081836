"""Lychee multimodal reranker (``vec-ai/lychee-rerank-mm``) for retrieval pipelines.

One in-process engine, :class:`LycheeReranker`, scores text, image and text+image
documents against text, image or text+image queries under an instruction. The LangChain
compressor lives in :mod:`lychee_integrations.langchain`, the LlamaIndex postprocessor in
:mod:`lychee_integrations.llama_index`, the command line in :mod:`lychee_integrations.cli`;
:class:`RemoteReranker` is the same interface over HTTP, against a shared ``lychee serve``.

Importing this package is cheap: torch, transformers, LangChain and LlamaIndex are
imported only when a reranker is created or an adapter module is imported.

Example:
    >>> from lychee_integrations import LycheeReranker
    >>> reranker = LycheeReranker.shared()  # doctest: +SKIP
    >>> reranker.rerank("red running shoes", ["blue jeans", {"image": "shoe.jpg"}])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    name: f"lychee_integrations.{module}"
    for module, names in {
        "engine": "LycheeReranker",
        "remote": "RemoteReranker",
        "config": "RerankerConfig DEFAULT_MODEL",
        "inputs": "RerankInput",
        "images": "ImagePolicy load_image",
        "results": "RerankResult score_band",
        "instructions": "DEFAULT_INSTRUCTION InstructionRegistry InstructionTemplate get_template list_templates "
        "register_template resolve_instruction",
        "errors": "LycheeError ConfigurationError InvalidInputError InvalidDocumentsError UnsupportedInputError "
        "ImageLoadError InputTooLongError MissingDependencyError ModelUnavailableError ServerUnavailableError "
        "ServerTimeoutError RemoteError AuthenticationError",
    }.items()
    for name in names.split()
}

__all__ = [
    "AuthenticationError",
    "RemoteError",
    "RemoteReranker",
    "ServerTimeoutError",
    "ServerUnavailableError",
    "DEFAULT_INSTRUCTION",
    "DEFAULT_MODEL",
    "ConfigurationError",
    "ImageLoadError",
    "ImagePolicy",
    "InputTooLongError",
    "InstructionRegistry",
    "InstructionTemplate",
    "InvalidDocumentsError",
    "InvalidInputError",
    "LycheeError",
    "LycheeReranker",
    "MissingDependencyError",
    "ModelUnavailableError",
    "RerankInput",
    "RerankResult",
    "RerankerConfig",
    "UnsupportedInputError",
    "__version__",
    "get_template",
    "list_templates",
    "load_image",
    "register_template",
    "resolve_instruction",
    "score_band",
]

if TYPE_CHECKING:
    from lychee_integrations.config import DEFAULT_MODEL, RerankerConfig
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.errors import (
        AuthenticationError,
        ConfigurationError,
        ImageLoadError,
        InputTooLongError,
        InvalidDocumentsError,
        InvalidInputError,
        LycheeError,
        MissingDependencyError,
        ModelUnavailableError,
        RemoteError,
        ServerTimeoutError,
        ServerUnavailableError,
        UnsupportedInputError,
    )
    from lychee_integrations.images import ImagePolicy, load_image
    from lychee_integrations.inputs import RerankInput
    from lychee_integrations.instructions import (
        DEFAULT_INSTRUCTION,
        InstructionRegistry,
        InstructionTemplate,
        get_template,
        list_templates,
        register_template,
        resolve_instruction,
    )
    from lychee_integrations.remote import RemoteReranker
    from lychee_integrations.results import RerankResult, score_band


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lychee_integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
