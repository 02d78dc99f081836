"""The in-process engine's facade: :class:`LycheeReranker` (the ``[engine]`` extra).

One model per configuration per process (:meth:`LycheeReranker.shared`), loaded on first use,
safe from many threads: the scheduler (:mod:`~lychee_integrations.engine.scheduler`) combines
calls that arrive while the model is busy, so concurrent requests cost little more than one.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, ClassVar

from lychee_integrations.config import RerankerConfig, default_model
from lychee_integrations.errors import MissingDependencyError
from lychee_integrations.images import ImagePolicy
from lychee_integrations.inputs import InputLike
from lychee_integrations.instructions import InstructionRegistry
from lychee_integrations.scoring import Scored, Scorer, ScoreRequest

if TYPE_CHECKING:
    from lychee_integrations.engine.pairs import EncodedPair
    from lychee_integrations.engine.scheduler import Runtime

__all__ = ["LycheeReranker", "require_engine"]

logger = logging.getLogger(__name__)

_ENGINE_PACKAGES = ("torch", "transformers", "tokenizers")


def require_engine() -> None:
    """Check that the ``[engine]`` extra is installed.

    Raises:
        MissingDependencyError: Naming the missing packages and the extra.

    """
    missing = [name for name in _ENGINE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(
            f"the in-process engine needs {', '.join(missing)}: pip install 'lychee-integrations[engine]' "
            "(or score on a server: RemoteReranker / base_url=)"
        )


class LycheeReranker(Scorer):
    """Multimodal reranker on ``vec-ai/lychee-rerank-mm`` (or a Qwen3-VL-Reranker), in process.

    Scores how well each document meets the query under an instruction, as
    ``P(yes)`` in [0, 1]. Query and documents may be text, images or both (see
    :mod:`lychee_integrations.inputs` for the accepted forms); scores of text and
    image documents are on one scale. The calls (``score``, ``ascore``, ``rerank``,
    ``arerank``, ``score_with_usage``) are those of :class:`~lychee_integrations.scoring.Scorer`.

    Args:
        model: Hub id or local directory (default: ``$LYCHEE_MODEL``, else ``vec-ai/lychee-rerank-mm``).
        registry: Where ``task=`` names are looked up (default: the package's registry).
        **options: Any field of :class:`~lychee_integrations.config.RerankerConfig`
            (``device``, ``dtype``, ``attn_implementation``, ``quantization``,
            ``max_length``, ``batch_size``, ``image_policy``, ...), validated now.

    Raises:
        ConfigurationError: On an unknown or invalid option.
        MissingDependencyError: torch or transformers is missing (the ``[engine]`` extra).

    Example:
        >>> reranker = LycheeReranker.shared(model="vec-ai/lychee-rerank-mm")  # doctest: +SKIP
        >>> reranker.rerank("a red car", ["a red sports car", {"image": "car.jpg"}, "a banana"])  # doctest: +SKIP
        [RerankResult(index=0, score=0.97), RerankResult(index=1, score=0.93), RerankResult(index=2, score=0.01)]

    """

    _shared: ClassVar[dict[RerankerConfig, LycheeReranker]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self, model: str | None = None, *, registry: InstructionRegistry | None = None, **options: Any
    ) -> None:
        self.config = RerankerConfig.from_options(model=model or default_model(), **options)
        require_engine()
        if registry is not None:
            self.registry = registry
        self._runtime: Runtime | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def shared(cls, model: str | None = None, **options: Any) -> LycheeReranker:
        """Return the process-wide reranker for this configuration, creating it if needed.

        Every adapter that asks for the same configuration gets the same instance, so the
        model is loaded once per process.

        Raises:
            ConfigurationError: On an unknown or invalid option.

        """
        config = RerankerConfig.from_options(model=model or default_model(), **options)
        with cls._shared_lock:
            instance = cls._shared.get(config)
            if instance is None:
                instance = cls(**{f.name: getattr(config, f.name) for f in fields(config)})
                cls._shared[config] = instance
            return instance

    @classmethod
    def clear_shared(cls) -> None:
        """Unload and forget every shared instance."""
        with cls._shared_lock:
            instances, cls._shared = list(cls._shared.values()), {}
        for instance in instances:
            instance.unload()

    @property
    def model_name(self) -> str:
        """The hub id or directory the model is loaded from."""
        return self.config.model

    @property
    def default_instruction(self) -> str:
        """The model family's default instruction (reads the checkpoint: loads the model if needed)."""
        return self._get_runtime().encoder.recipe.default_instruction

    @property
    def max_length(self) -> int:
        """Most tokens per pair (the option, else the family's); reads the checkpoint: loads the model if needed."""
        return self._get_runtime().encoder.max_length

    @property
    def is_random(self) -> bool:
        """Whether the checkpoint holds random weights (``lychee build-tiny``): its rankings mean nothing."""
        return self._get_runtime().model.random_weights

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._runtime is not None

    @property
    def waiting_calls(self) -> int:
        """Calls waiting now for the model's current run to end; they are combined into the next one."""
        runtime = self._runtime
        return runtime.waiting if runtime is not None else 0

    @property
    def image_policy(self) -> ImagePolicy:
        """What the image loader may read for this reranker."""
        return self.config.image_policy

    def load(self) -> LycheeReranker:
        """Load the model now instead of on first use; returns ``self``.

        Raises:
            ConfigurationError: The checkpoint cannot be found or is not a supported model,
                or the device, attention or quantization cannot be had here.

        """
        self._get_runtime()
        return self

    def unload(self) -> None:
        """Free the model; the next call loads it again."""
        with self._load_lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            from lychee_integrations.engine.model import free_device_memory

            device = runtime.model.device
            runtime.close()
            del runtime
            free_device_memory(device)
            logger.info("unloaded %s", self.config.model)

    close = unload

    def _get_runtime(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            with self._load_lock:
                if self._runtime is None:
                    from lychee_integrations.engine.scheduler import Runtime

                    self._runtime = Runtime(self.config)
                runtime = self._runtime
        return runtime

    def _pairs(self, request: ScoreRequest) -> tuple[list[EncodedPair], str]:
        runtime = self._get_runtime()
        instruction = request.instruction or runtime.encoder.recipe.default_instruction
        pairs = runtime.encoder.encode_request(
            request, instruction, self.config.image_policy, workers=self.config.preprocess_workers
        )
        return pairs, instruction

    def _score(self, request: ScoreRequest) -> Scored:
        started = time.perf_counter()
        pairs, instruction = self._pairs(request)
        encoded = time.perf_counter() - started
        runtime = self._get_runtime()
        truncated = sum(p.truncated for p in pairs)
        if truncated:
            logger.info("%d of %d pairs were cut to max_length=%d", truncated, len(pairs), runtime.encoder.max_length)
        stages: dict[str, float] = {}
        scores = runtime.run(pairs, stages, batch_size=request.batch_size, show_progress=request.show_progress)
        logger.debug(
            "call of %d documents: encode %.3fs, waiting for the model %.3fs, waiting for image patches %.3fs, "
            "vision %.3fs, language model %.3fs (run shared with concurrent calls: %.3fs)",
            len(pairs),
            encoded,
            *(stages[key] for key in ("waiting", "image_wait", "vision", "language_model", "run")),
        )
        return Scored(scores, sum(len(p) for p in pairs), instruction)

    def encode(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[EncodedPair]:
        """Build what the model will see for each pair, without running it.

        Useful to inspect prompts and lengths: each :class:`~lychee_integrations.engine.pairs.EncodedPair`
        holds the token ids (images expanded to their visual tokens), the image features and
        whether text was cut to fit ``max_length``. Arguments and errors are those of :meth:`score`.
        """
        request = self.request(query, documents, instruction=instruction, task=task)
        return self._pairs(request)[0] if request.documents else []

    def score_encoded(self, pairs: Sequence[EncodedPair]) -> list[float]:
        """Score pairs built beforehand by :meth:`encode` (of this reranker), in their order.

        Lets a caller prepare pairs ahead (in another thread, or while an earlier call
        runs) and time the model on its own. Calls from several threads are combined as
        for :meth:`score`.

        Example:
            >>> pairs = reranker.encode("a red car", ["a red sports car", "a banana"])  # doctest: +SKIP
            >>> reranker.score_encoded(pairs)  # doctest: +SKIP
            [0.97, 0.01]

        """
        return self._get_runtime().run(list(pairs)) if pairs else []

    def __repr__(self) -> str:
        state = "loaded" if self.is_loaded else "not loaded"
        return f"LycheeReranker(model={self.config.model!r}, device={self.config.device!r}, {state})"
