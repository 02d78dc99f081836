"""Validated, frozen engine settings: one configuration, one shared loaded model."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from lychee_integrations.errors import ConfigurationError
from lychee_integrations.images import ImagePolicy

if TYPE_CHECKING:
    from lychee_integrations.recipes import Recipe

__all__ = ["DEFAULT_MODEL", "RerankerConfig", "default_model"]

#: The checkpoint this package is built for.
DEFAULT_MODEL = "vec-ai/lychee-rerank-mm"
#: Default token budget of one forward pass on a CPU (re-checked on the real vocabulary with
#: benchmarks/bench_budget.py: 1024 to 8192 ran alike; docs/engine.md has the run).
CPU_BATCH_TOKENS = 2048
#: Default token budget of one forward pass on a GPU (or MPS), where large passes pay.
ACCELERATOR_BATCH_TOKENS = 32768
#: Default bound of the cross-call vision-feature cache (``vision_cache_bytes``).
DEFAULT_VISION_CACHE_BYTES = 256 * 2**20
#: Default bound of the cross-call prompt-prefix key/value cache (``prefix_cache_bytes``).
DEFAULT_PREFIX_CACHE_BYTES = 256 * 2**20


def default_model() -> str:
    """Return the model the CLI, service and examples use when none is named.

    ``$LYCHEE_MODEL`` when set (a hub id or a local directory, e.g. a tiny offline
    checkpoint), else :data:`DEFAULT_MODEL`. The engine, its shared instances and the
    adapters default to it too.
    """
    return os.environ.get("LYCHEE_MODEL", "").strip() or DEFAULT_MODEL


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = {
    "auto": "auto",
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
ATTENTION = ("auto", "sdpa", "eager", "flash_attention_2")
QUANTIZATION = (None, "4bit", "8bit")


@dataclass(frozen=True)
class RerankerConfig:
    """Everything that decides how the model is loaded and run.

    Attributes:
        model: Hugging Face hub id or local directory of the checkpoint.
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"mps"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"auto"`` (bf16 on a GPU, fp32 on a CPU), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        attn_implementation: ``"auto"`` (flash-attention 2 when installed on a GPU, else SDPA),
            ``"sdpa"``, ``"eager"`` or ``"flash_attention_2"``.
        quantization: ``None``, ``"4bit"`` or ``"8bit"`` (bitsandbytes, CUDA only).
        recipe: The model family's recipe by name (``"lychee"``, ``"qwen3-vl"``); ``None`` picks
            it from the checkpoint's ``model_type`` (see :mod:`lychee_integrations.recipes`).
        max_length: Most tokens per query-document pair; ``None``: the recipe's (3200 for
            Lychee, 10240 for Qwen3-VL).
        min_pixels: Smallest image area after resizing; ``None``: the recipe's (4 visual tokens).
        max_pixels: Largest image area after resizing; ``None``: the recipe's (1280 visual
            tokens for Lychee, 1800 for Qwen3-VL).
        batch_size: Most pairs per forward pass.
        max_batch_tokens: Most padded tokens per forward pass; ``None``: 2048 on a CPU, 32768
            on a GPU.
        revision: Hub revision (branch, tag or commit).
        cache_dir: Where hub downloads are cached.
        local_files_only: Never reach the hub.
        trust_remote_code: Allow custom code from the checkpoint (not needed for Lychee).
        show_progress: Show a tqdm progress bar over batches.
        image_policy: What the image loader may read (see :class:`ImagePolicy`).
        prefix_reuse: Run the tokens pairs share (system prompt, instruction, query) once per
            run and only each pair's remainder per batch, when at least 32 tokens are shared by
            at least 2 pairs. Exact; turn off only to compare.
        preprocess_workers: Threads that load images and tokenize documents (default: the
            machine's cores, at most 4; 1 preprocesses in the calling thread).
        vision_cache_bytes: Bytes of vision-tower outputs kept across calls, keyed by image
            content and image settings, so an image seen again skips its patches and the vision
            tower (exact); 0 turns the cache off.
        prefix_cache_bytes: Bytes of prompt-prefix keys and values kept across calls, keyed by
            token ids (and image content), so a later call with the same system prompt and
            instruction (or query) runs only what follows (exact); 0 turns the cache off.
        score_cache_entries: Scores of whole pairs kept across calls, keyed by the model and the
            pair's tokens and image content (recipe, instruction, query, document); 0 (the
            default) turns the cache off.
        score_cache_ttl: Seconds a cached score stays valid; ``None``: until evicted.

    """

    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    attn_implementation: str = "auto"
    quantization: str | None = None
    recipe: str | None = None
    max_length: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    batch_size: int = 16
    max_batch_tokens: int | None = None
    revision: str | None = None
    cache_dir: str | None = None
    local_files_only: bool = False
    trust_remote_code: bool = False
    show_progress: bool = False
    image_policy: ImagePolicy = field(default_factory=ImagePolicy)
    prefix_reuse: bool = True
    preprocess_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    vision_cache_bytes: int = DEFAULT_VISION_CACHE_BYTES
    prefix_cache_bytes: int = DEFAULT_PREFIX_CACHE_BYTES
    score_cache_entries: int = 0
    score_cache_ttl: float | None = 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError(f"model must be a hub id or a local directory, got {self.model!r}")
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ConfigurationError(
                f"device {self.device!r} is not supported; use 'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'"
            )
        if self.dtype not in DTYPES:
            raise ConfigurationError(f"dtype {self.dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        object.__setattr__(self, "dtype", DTYPES[self.dtype])
        if self.attn_implementation not in ATTENTION:
            raise ConfigurationError(
                f"attn_implementation {self.attn_implementation!r} is not supported; use one of {', '.join(ATTENTION)}"
            )
        if self.quantization not in QUANTIZATION:
            raise ConfigurationError(f"quantization {self.quantization!r} is not supported; use None, '4bit' or '8bit'")
        if not isinstance(self.prefix_reuse, bool):
            raise ConfigurationError(f"prefix_reuse must be True or False, got {self.prefix_reuse!r}")
        for name in ("max_length", "min_pixels", "max_pixels", "batch_size", "max_batch_tokens", "preprocess_workers"):
            value = getattr(self, name)
            if value is None and name in ("max_length", "min_pixels", "max_pixels", "max_batch_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigurationError(f"{name} must be a positive integer, got {value!r}")
        for name in ("vision_cache_bytes", "prefix_cache_bytes", "score_cache_entries"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative integer (0: off), got {value!r}")
        ttl = self.score_cache_ttl
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0):
            raise ConfigurationError(f"score_cache_ttl must be a positive number of seconds or None, got {ttl!r}")
        if self.max_length is not None and self.max_length < 64:
            raise ConfigurationError(f"max_length={self.max_length} is too small for the prompt; use at least 64")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ConfigurationError(f"min_pixels={self.min_pixels} is larger than max_pixels={self.max_pixels}")
        if self.recipe is not None:
            from lychee_integrations.recipes import get_recipe

            get_recipe(self.recipe)
        if self.quantization is not None and self.device in ("cpu", "mps"):
            raise ConfigurationError(f"quantization={self.quantization!r} needs a CUDA device, not {self.device!r}")
        if not isinstance(self.image_policy, ImagePolicy):
            raise ConfigurationError("image_policy must be an ImagePolicy")

    def limits(self, recipe: Recipe) -> tuple[int, int, int]:
        """Return ``(max_length, min_pixels, max_pixels)``: the values given here, else the recipe's.

        Raises:
            ConfigurationError: The resulting ``min_pixels`` is over ``max_pixels``.

        Example:
            >>> from lychee_integrations.recipes import get_recipe
            >>> RerankerConfig(max_length=512).limits(get_recipe("qwen3-vl"))
            (512, 4096, 1843200)

        """
        max_length = recipe.max_length if self.max_length is None else self.max_length
        min_pixels = recipe.min_pixels if self.min_pixels is None else self.min_pixels
        max_pixels = recipe.max_pixels if self.max_pixels is None else self.max_pixels
        if min_pixels > max_pixels:
            raise ConfigurationError(
                f"min_pixels={min_pixels} is larger than max_pixels={max_pixels} (recipe {recipe.name!r})"
            )
        return max_length, min_pixels, max_pixels

    def batch_tokens(self, device: str) -> int:
        """Return ``max_batch_tokens``, or its default for ``device`` when it is ``None``.

        Example:
            >>> RerankerConfig().batch_tokens("cpu"), RerankerConfig().batch_tokens("cuda:0")
            (2048, 32768)
            >>> RerankerConfig(max_batch_tokens=8192).batch_tokens("cpu")
            8192

        """
        if self.max_batch_tokens is not None:
            return self.max_batch_tokens
        return CPU_BATCH_TOKENS if device == "cpu" else ACCELERATOR_BATCH_TOKENS

    def hub_options(self) -> dict[str, Any]:
        """Return the ``from_pretrained`` options that say where the checkpoint comes from."""
        keys = ("revision", "cache_dir", "local_files_only", "trust_remote_code")
        return {key: getattr(self, key) for key in keys}

    @classmethod
    def from_options(cls, **options: Any) -> RerankerConfig:
        """Build a config from keyword options, refusing unknown names with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown reranker option(s) {', '.join(unknown)}; known options: {', '.join(sorted(known))}"
            )
        return cls(**options)
