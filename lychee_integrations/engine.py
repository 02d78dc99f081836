"""The shared in-process Lychee reranker engine.

``inputs -> images -> prompt -> batches -> model -> scores``. One loaded model per
configuration per process (:meth:`LycheeReranker.shared`), loaded lazily on first use,
safe to call from many threads: calls that arrive while the model is busy are combined
into shared batches, so concurrent requests cost little more than one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from lychee_integrations.batching import plan_batches, run_batched
from lychee_integrations.config import DEFAULT_MODEL, RerankerConfig
from lychee_integrations.errors import ConfigurationError
from lychee_integrations.images import ImagePolicy, load_image
from lychee_integrations.inputs import InputLike, RerankInput, map_documents, to_query_input, to_rerank_input
from lychee_integrations.instructions import InstructionRegistry, default_registry
from lychee_integrations.prompt import EncodedPair, ImageFeatures, PromptEncoder, Side
from lychee_integrations.scoring import RankingScorer
from lychee_integrations.telemetry import emit

if TYPE_CHECKING:
    from lychee_integrations.model import PrefixState
    from lychee_integrations.prefix import PrefixGroup

__all__ = ["LycheeReranker"]

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    pairs: list[EncodedPair]
    scores: list[float] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    #: Seconds per stage of the run that scored this job (shared by the jobs combined into it).
    stages: dict[str, float] = field(default_factory=dict)


class _Runtime:
    """A loaded model, its prompt encoder and the combining scheduler around its forward."""

    def __init__(self, config: RerankerConfig) -> None:
        from lychee_integrations.model import LoadedModel

        self.model = LoadedModel(config)
        model = self.model
        self.encoder = PromptEncoder(
            model.processor,
            model.max_length,
            recipe=model.recipe,
            min_pixels=model.min_pixels,
            max_pixels=model.max_pixels,
        )
        self.config = config
        #: Makes image patches ahead of the batches that read them (see ImageFeatures.prefetch).
        self._patch_pool = (
            ThreadPoolExecutor(max_workers=config.preprocess_workers, thread_name_prefix="lychee-patch")
            if config.preprocess_workers > 1
            else None
        )
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def run(self, pairs: list[EncodedPair], stages: dict[str, float] | None = None) -> list[float]:
        """Score pairs, combining them with those of other threads waiting at the same time.

        Args:
            pairs: The encoded pairs.
            stages: Filled with the seconds spent waiting for the model (``waiting``) and,
                for the run that scored these pairs, in the vision tower (``vision``), the
                language model (``language_model``) and the whole run (``run``).

        """
        job = _Job(pairs)
        queued = time.perf_counter()
        with self._queue_lock:
            self._queue.append(job)
        with self._run_lock:
            waited = time.perf_counter() - queued
            emit("queue_wait_seconds", waited)
            if not job.done:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._run_jobs(jobs)
        if stages is not None:
            stages.update(job.stages, waiting=waited)
        if job.error is not None:
            raise job.error
        return job.scores

    def close(self) -> None:
        """Stop the patch pool (patches not started are made on use instead)."""
        if self._patch_pool is not None:
            self._patch_pool.shutdown(wait=False, cancel_futures=True)

    def _run_jobs(self, jobs: list[_Job]) -> None:
        from lychee_integrations.model import ImageCache, is_out_of_memory
        from lychee_integrations.prefix import group_by_prefix

        everything = [pair for job in jobs for pair in job.pairs]
        cache = ImageCache(everything)
        if len(jobs) > 1:
            logger.debug("combining %d concurrent calls into %d pairs", len(jobs), len(everything))
        bar = None
        if self.config.show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(everything), desc="lychee rerank", unit="pair")
        model = self.model
        started_run = time.perf_counter()
        vision_before, image_wait_before = model.vision_seconds, model.image_wait_seconds
        stage = {"prefix": 0.0, "batches": 0.0}

        def timed(fn: Callable[[list[EncodedPair]], list[float]], offset: int) -> Callable[..., list[float]]:
            def run(batch: list[EncodedPair]) -> list[float]:
                started = time.perf_counter()
                out = fn(batch)
                elapsed = time.perf_counter() - started
                stage["batches"] += elapsed
                emit("batch_seconds", elapsed)
                emit("batch_pairs", len(batch))
                emit("batch_tokens", len(batch) * (max(len(p) for p in batch) - offset))
                return out

            return run

        def batched(
            pairs: list[EncodedPair], fn: Callable[[list[EncodedPair]], list[float]], offset: int
        ) -> list[float]:
            return run_batched(
                pairs,
                [len(p) - offset for p in pairs],
                timed(fn, offset),
                max_batch_size=self.config.batch_size,
                max_batch_tokens=model.max_batch_tokens,
                is_oom=is_out_of_memory,
                after_oom=model.free_memory,
                progress=bar.update if bar is not None else lambda n: None,
            )

        try:
            scores: list[float] = [0.0] * len(everything)
            if self.config.prefix_reuse and model.cache_keyword is not None:
                groups, alone = group_by_prefix(everything, model.image_token_id)
            else:
                groups, alone = [], list(range(len(everything)))
            if self._patch_pool is not None:
                for features in _images_in_run_order(everything, groups, alone, self.config, model.max_batch_tokens):
                    features.prefetch(self._patch_pool)
            for group in groups:
                members = [everything[i] for i in group.indices]
                started = time.perf_counter()
                state = model.run_prefix(members[0], group.length, cache)
                stage["prefix"] += time.perf_counter() - started

                def suffix(batch: list[EncodedPair], state: PrefixState = state) -> list[float]:
                    return model.score_suffix(batch, state, cache)

                for i, score in zip(group.indices, batched(members, suffix, group.length), strict=True):
                    scores[i] = score
                del state
            if alone:
                plain = batched([everything[i] for i in alone], lambda b: model.score_batch(b, cache), 0)
                for i, score in zip(alone, plain, strict=True):
                    scores[i] = score
        except BaseException as exc:
            for job in jobs:
                job.error, job.done = exc, True
            raise
        finally:
            if bar is not None:
                bar.close()
        vision = model.vision_seconds - vision_before
        image_wait = model.image_wait_seconds - image_wait_before
        stages = {
            "image_wait": image_wait,
            "vision": vision,
            "language_model": stage["prefix"] + stage["batches"] - vision - image_wait,
            "run": time.perf_counter() - started_run,
        }
        logger.debug(
            "scored %d pairs in %.3fs: waiting for image patches %.3fs, vision %.3fs, language model %.3fs "
            "(%d prefix group(s) %.3fs, batches %.3fs)",
            len(everything),
            stages["run"],
            stages["image_wait"],
            stages["vision"],
            stages["language_model"],
            len(groups),
            stage["prefix"],
            stage["batches"],
        )
        emit("pairs_scored", len(everything))
        emit("tokens_scored", sum(len(p) for p in everything))
        start = 0
        for job in jobs:
            job.scores, job.stages, job.done = scores[start : start + len(job.pairs)], stages, True
            start += len(job.pairs)


class LycheeReranker(RankingScorer):
    """Multimodal reranker on ``vec-ai/lychee-rerank-mm``, in process.

    Scores how well each document meets the query under an instruction, as
    ``P(yes)`` in [0, 1]. Query and documents may be text, images or both (see
    :mod:`lychee_integrations.inputs` for the accepted forms); scores of text and
    image documents are on one scale.

    Args:
        model: Hub id or local directory (default ``vec-ai/lychee-rerank-mm``).
        **options: Any field of :class:`~lychee_integrations.config.RerankerConfig`
            (``device``, ``dtype``, ``attn_implementation``, ``quantization``,
            ``max_length``, ``batch_size``, ``image_policy``, ...), validated now.

    Raises:
        ConfigurationError: On an unknown or invalid option.

    Example:
        >>> reranker = LycheeReranker.shared(model="vec-ai/lychee-rerank-mm")  # doctest: +SKIP
        >>> reranker.rerank("a red car", ["a red sports car", {"image": "car.jpg"}, "a banana"])  # doctest: +SKIP
        [RerankResult(index=0, score=0.97), RerankResult(index=1, score=0.93), RerankResult(index=2, score=0.01)]

    """

    _shared: ClassVar[dict[RerankerConfig, LycheeReranker]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        registry: InstructionRegistry | None = None,
        **options: Any,
    ) -> None:
        self.config = RerankerConfig.from_options(model=model, **options)
        self._registry = registry or default_registry
        self._runtime: _Runtime | None = None
        self._load_lock = threading.Lock()

    @classmethod
    def shared(cls, model: str = DEFAULT_MODEL, **options: Any) -> LycheeReranker:
        """Return the process-wide reranker for this configuration, creating it if needed.

        Every adapter that asks for the same configuration gets the same instance, so the
        model is loaded once per process.

        Raises:
            ConfigurationError: On an unknown or invalid option.

        """
        config = RerankerConfig.from_options(model=model, **options)
        with cls._shared_lock:
            instance = cls._shared.get(config)
            if instance is None:
                instance = cls(**_config_options(config))
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
        text: str = self._get_runtime().encoder.recipe.default_instruction
        return text

    @property
    def is_loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._runtime is not None

    @property
    def image_policy(self) -> ImagePolicy:
        """What the image loader may read for this reranker."""
        return self.config.image_policy

    def load(self) -> LycheeReranker:
        """Load the model now instead of on first use; returns ``self``.

        Raises:
            ConfigurationError: The checkpoint cannot be found or is not a Lychee model,
                or the device, attention or quantization cannot be had here.

        """
        self._get_runtime()
        return self

    def unload(self) -> None:
        """Free the model; the next call loads it again."""
        with self._load_lock:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            from lychee_integrations.model import free_device_memory

            device = runtime.model.device
            runtime.close()
            del runtime
            free_device_memory(device)
            logger.info("unloaded %s", self.config.model)

    def _get_runtime(self) -> _Runtime:
        runtime = self._runtime
        if runtime is None:
            with self._load_lock:
                if self._runtime is None:
                    self._runtime = _Runtime(self.config)
                runtime = self._runtime
        return runtime

    def _side(self, runtime: _Runtime, value: RerankInput, item: str, index: int | None) -> Side:
        features = tuple(
            runtime.encoder.encode_image(
                load_image(image, self.config.image_policy, item=item, index=index), item=item, index=index
            )
            for image in value.images
        )
        return Side(value.text, features)

    def _encode(self, instruction: str, query: RerankInput, documents: Sequence[InputLike]) -> list[EncodedPair]:
        runtime = self._get_runtime()
        runtime.encoder.check_text(query.text, "query")
        query_side = self._side(runtime, query, "query", None)

        def encode(document: object, item: str, index: int) -> EncodedPair:
            doc_side = self._side(runtime, to_rerank_input(document, item=item, index=index), item, index)
            return runtime.encoder.encode(instruction, query_side, doc_side, item=item, index=index)

        return map_documents(documents, encode, workers=self.config.preprocess_workers)

    def encode(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[EncodedPair]:
        """Build what the model will see for each pair, without running it.

        Useful to inspect prompts and lengths: each :class:`EncodedPair` holds the token
        ids (images expanded to their visual tokens), the image features and whether text
        was cut to fit ``max_length``. Arguments and errors are those of :meth:`score`.
        """
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Sequence):
            raise ConfigurationError(
                f"documents must be a list of texts, images, dicts or RerankInput, not {type(documents).__name__}"
            )
        # Neither given: the model family's default, known once the checkpoint's config is read.
        text = None if task is None and instruction is None else self._registry.resolve(task, instruction)
        query_input = to_query_input(query)
        if not documents:
            return []
        if text is None:
            text = self._get_runtime().encoder.recipe.default_instruction
        return self._encode(text, query_input, documents)

    def score(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> list[float]:
        """Score every document against the query.

        Args:
            query: Text, image, ``{"text":..., "image":...}`` or :class:`RerankInput`.
            documents: The candidates, each in any of the same forms.
            instruction: Free instruction text (default: the model family's, see :mod:`~.recipes`).
            task: A template name from the instruction registry instead of ``instruction``.

        Returns:
            One score in [0, 1] per document, in input order. ``[]`` for no documents.

        Raises:
            InvalidInputError: The query is empty or a document is invalid; the error names
                the item (several bad documents raise one :class:`InvalidDocumentsError`
                listing each of them).
            ImageLoadError: An image cannot be read.
            InputTooLongError: A pair's images alone exceed ``max_length``.
            ConfigurationError: Both or a bad ``task``/``instruction``; the model cannot load.

        """
        return self.score_with_usage(query, documents, instruction=instruction, task=task)[0]

    def score_with_usage(
        self,
        query: InputLike,
        documents: Sequence[InputLike],
        *,
        instruction: str | None = None,
        task: str | None = None,
    ) -> tuple[list[float], int]:
        """Like :meth:`score`, and also the number of prompt tokens the model read.

        The count includes each image's visual tokens and excludes padding; services report
        it as ``usage.total_tokens``. Arguments and errors are those of :meth:`score`.

        Example:
            >>> scores, tokens = reranker.score_with_usage("q", ["a", "b"])  # doctest: +SKIP

        """
        started = time.perf_counter()
        pairs = self.encode(query, documents, instruction=instruction, task=task)
        if not pairs:
            return [], 0
        encoded = time.perf_counter() - started
        truncated = sum(p.truncated for p in pairs)
        if truncated:
            logger.info(
                "%d of %d pairs were cut to max_length=%d",
                truncated,
                len(pairs),
                self._get_runtime().encoder.max_length,
            )
        stages: dict[str, float] = {}
        scores = self._get_runtime().run(pairs, stages)
        logger.debug(
            "call of %d documents: encode %.3fs, waiting for the model %.3fs, waiting for image patches %.3fs, "
            "vision %.3fs, language model %.3fs (run shared with concurrent calls: %.3fs)",
            len(pairs),
            encoded,
            stages["waiting"],
            stages["image_wait"],
            stages["vision"],
            stages["language_model"],
            stages["run"],
        )
        return scores, sum(len(p) for p in pairs)

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
        if not pairs:
            return []
        return self._get_runtime().run(list(pairs))

    def __repr__(self) -> str:
        state = "loaded" if self.is_loaded else "not loaded"
        return f"LycheeReranker(model={self.config.model!r}, device={self.config.device!r}, {state})"


def _images_in_run_order(
    pairs: Sequence[EncodedPair],
    groups: Sequence[PrefixGroup],
    alone: Sequence[int],
    config: RerankerConfig,
    max_batch_tokens: int,
) -> Iterator[ImageFeatures]:
    """Yield a run's images in the order its batches read them (prefix groups, then the rest)."""
    for indices, offset in [*((g.indices, g.length) for g in groups), (tuple(alone), 0)]:
        lengths = [len(pairs[i]) - offset for i in indices]
        for batch in plan_batches(lengths, max_batch_size=config.batch_size, max_batch_tokens=max_batch_tokens):
            for k in batch:
                yield from pairs[indices[k]].images


def _config_options(config: RerankerConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in fields(config)}
