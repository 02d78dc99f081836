"""Settings and ranking shared by the LangChain and LlamaIndex adapters (a pydantic mixin)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import Self

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import resolve_instruction
from lychee_integrations.results import RerankResult
from lychee_integrations.scoring import Scorer, shared_scorer

logger = logging.getLogger(__name__)

_ENGINE_FIELDS = (
    "model",
    "device",
    "dtype",
    "attn_implementation",
    "quantization",
    "max_length",
    "max_pixels",
    "batch_size",
)


class RerankerFields(BaseModel):
    """Which engine to use, how many results to keep, and under which instruction."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    reranker: Scorer | None = Field(
        default=None,
        exclude=True,
        description="A ready reranker (e.g. LycheeReranker); None: the shared engine for the options below.",
    )
    model: str | None = Field(default=None, description="Hub id or local directory (vec-ai/lychee-rerank-mm).")
    device: str | None = Field(default=None, description="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    dtype: str | None = Field(default=None, description="'auto', 'bfloat16', 'float16' or 'float32'.")
    attn_implementation: str | None = Field(default=None, description="'auto', 'sdpa', 'eager' or 'flash_attention_2'")
    quantization: str | None = Field(default=None, description="None, '4bit' or '8bit' (CUDA only).")
    max_length: int | None = Field(default=None, ge=1, description="Most tokens per query-document pair.")
    max_pixels: int | None = Field(default=None, ge=1, description="Largest image area after resizing.")
    batch_size: int | None = Field(default=None, ge=1, description="Most pairs per forward pass.")
    engine_options: dict[str, Any] = Field(
        default_factory=dict, description="Any other LycheeReranker option (e.g. local_files_only)."
    )
    top_n: int | None = Field(default=3, ge=1, description="How many results to keep; None keeps all.")
    score_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Drop results scoring below this (0.4: drop irrelevant ones).",
    )
    task: str | None = Field(default=None, description="Instruction template name (see list_templates()).")
    instruction: str | None = Field(default=None, description="Free instruction text, instead of task.")

    @model_validator(mode="after")
    def _connect_engine(self) -> Self:
        resolve_instruction(self.task, self.instruction)
        options = {name: getattr(self, name) for name in _ENGINE_FIELDS if getattr(self, name) is not None}
        clash = sorted(set(options) & set(self.engine_options))
        if clash:
            raise ConfigurationError(f"{', '.join(clash)} given as a field and in engine_options; give it once")
        options.update(self.engine_options)
        if self.reranker is not None:
            if options:
                raise ConfigurationError(
                    f"engine options ({', '.join(sorted(options))}) cannot be combined with reranker=; "
                    "configure the LycheeReranker you pass in, or drop reranker= to use a shared engine"
                )
        else:
            self.reranker = shared_scorer(**options)
        return self

    @property
    def scorer(self) -> Scorer:
        """The reranker this adapter calls."""
        if self.reranker is None:  # pragma: no cover - set by the validator
            raise ConfigurationError("no reranker is configured")
        return self.reranker

    @property
    def model_name(self) -> str:
        """The reranker's model name (hub id or directory)."""
        return self.scorer.model_name

    def _instruction(self) -> str:
        return resolve_instruction(self.task, self.instruction)

    def _rank(self, query: RerankInput, documents: Sequence[RerankInput], top_n: int | None) -> list[RerankResult]:
        """Rerank under the configured instruction, then apply ``score_threshold``."""
        results = self.scorer.rerank(query, documents, instruction=self._instruction(), top_n=top_n)
        if self.score_threshold is not None:
            results = [r for r in results if r.score >= self.score_threshold]
        logger.debug("reranked %d documents, kept %d", len(documents), len(results))
        return results
