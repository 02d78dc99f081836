"""Settings and ranking shared by the LangChain and LlamaIndex adapters (a pydantic mixin)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from typing_extensions import Self

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.inputs import RerankInput
from lychee_integrations.instructions import resolve_instruction
from lychee_integrations.results import RerankResult
from lychee_integrations.scoring import Scorer

logger = logging.getLogger(__name__)

#: Environment variable that makes a default adapter remote (a URL, or several separated by commas).
BASE_URL_ENV = "LYCHEE_BASE_URL"

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
        description="A ready reranker (any Scorer); None: the shared engine for the options below.",
    )
    base_url: str | list[str] | None = Field(
        default=None,
        description="A lychee serve URL (or replicas' URLs): score there with RemoteReranker instead of in process.",
    )
    api_key: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="API key for base_url (default: $LYCHEE_API_KEY)."
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
        default=None, ge=0.0, le=1.0, description="Drop results scoring below this (0.4: drop irrelevant ones)."
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
            given = sorted(options) + [n for n in ("base_url", "api_key") if getattr(self, n) is not None]
            if given:
                raise ConfigurationError(
                    f"{', '.join(given)} cannot be combined with reranker=; "
                    "configure the reranker you pass in, or drop reranker= to use a shared engine"
                )
            return self
        if self.base_url is None and not options:
            env = [u.strip() for u in os.environ.get(BASE_URL_ENV, "").split(",") if u.strip()]
            if env:
                self.base_url = env[0] if len(env) == 1 else env
        if self.base_url is None:
            if self.api_key is not None:
                raise ConfigurationError(f"api_key= needs base_url= (or the {BASE_URL_ENV} environment variable)")
            from lychee_integrations.engine import LycheeReranker

            self.reranker = LycheeReranker.shared(**options)
            return self
        if options:
            raise ConfigurationError(
                f"engine options ({', '.join(sorted(options))}) cannot be combined with base_url=: "
                "the server's own options apply"
            )
        from lychee_integrations.remote import RemoteReranker

        key = self.api_key.get_secret_value() if self.api_key is not None else None
        self.reranker = RemoteReranker.shared(self.base_url, api_key=key)
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

    def _rank(self, query: RerankInput, documents: Sequence[RerankInput]) -> list[RerankResult]:
        """Rerank under the configured task or instruction and ``top_n``, then apply ``score_threshold``."""
        results = self.scorer.rerank(query, documents, task=self.task, instruction=self.instruction, top_n=self.top_n)
        return self._threshold(results, len(documents))

    async def _arank(self, query: RerankInput, documents: Sequence[RerankInput]) -> list[RerankResult]:
        """Like :meth:`_rank`, on the scorer's native ``arerank``."""
        results = await self.scorer.arerank(
            query, documents, task=self.task, instruction=self.instruction, top_n=self.top_n
        )
        return self._threshold(results, len(documents))

    def _threshold(self, results: list[RerankResult], count: int) -> list[RerankResult]:
        if self.score_threshold is not None:
            results = [r for r in results if r.score >= self.score_threshold]
        logger.debug("reranked %d documents, kept %d", count, len(results))
        return results
