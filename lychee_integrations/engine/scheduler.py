"""The engine's scheduler: combining concurrent calls, and the run plan of one combined run.

Calls that arrive while the model is busy wait, and the first of them to get the model runs
every waiting call's pairs at once: prefix groups first (each shared prefix run once with a
KV cache), then the remaining pairs, in token-budgeted batches, with image patches prefetched
in the order the batches read them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lychee_integrations.config import RerankerConfig
from lychee_integrations.engine.batching import plan_batches, run_batched
from lychee_integrations.engine.caches import BoundedCache
from lychee_integrations.engine.model import ImageCache, LoadedModel, PrefixState, is_out_of_memory
from lychee_integrations.engine.pairs import EncodedPair, ImageFeatures, PromptEncoder
from lychee_integrations.engine.prefix import PrefixGroup, group_by_prefix
from lychee_integrations.errors import InputTooLongError, InvalidDocumentsError, InvalidInputError
from lychee_integrations.telemetry import emit

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)


@dataclass
class _Job:
    pairs: list[EncodedPair]
    #: The call's most pairs per forward pass, and whether it wants a progress bar (None: the config's).
    batch_size: int | None = None
    show_progress: bool | None = None
    scores: list[float] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False
    #: Seconds per stage of the run that scored this job (shared by the jobs combined into it).
    stages: dict[str, float] = field(default_factory=dict)


class Runtime:
    """A loaded model, its prompt encoder and the combining scheduler around its forward."""

    def __init__(self, config: RerankerConfig) -> None:
        self.model = model = LoadedModel(config)
        self.encoder = PromptEncoder(
            model.processor,
            model.max_length,
            recipe=model.recipe,
            min_pixels=model.min_pixels,
            max_pixels=model.max_pixels,
            hash_images=bool(config.vision_cache_bytes or config.prefix_cache_bytes or config.score_cache_entries),
        )
        self.config = config
        #: Scores of whole pairs across calls (``config.score_cache_entries``; off by default).
        self.score_cache: BoundedCache[float] | None = (
            BoundedCache("score", max_entries=config.score_cache_entries, ttl=config.score_cache_ttl)
            if config.score_cache_entries
            else None
        )
        #: Makes image patches ahead of the batches that read them (see ImageFeatures.prefetch).
        self._patch_pool = (
            ThreadPoolExecutor(max_workers=config.preprocess_workers, thread_name_prefix="lychee-patch")
            if config.preprocess_workers > 1
            else None
        )
        self._queue: list[_Job] = []
        self._queue_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def run(
        self,
        pairs: list[EncodedPair],
        stages: dict[str, float] | None = None,
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> list[float]:
        """Score pairs, combining them with those of other threads waiting at the same time.

        A run that combines several calls keeps each call's ``batch_size``: its batches hold at
        most the smallest of them, and it shows a bar when any call asks for one.

        Args:
            pairs: The encoded pairs.
            stages: Filled with the seconds spent waiting for the model (``waiting``) and,
                for the run that scored these pairs, in the vision tower (``vision``), the
                language model (``language_model``) and the whole run (``run``).
            batch_size: Most pairs per forward pass (``None``: the config's ``batch_size``).
            show_progress: Show a tqdm bar over the pairs (``None``: the config's ``show_progress``).

        With the score cache on (``score_cache_entries``), pairs whose score it holds are not
        run, and the others' scores are stored in it.

        """
        cache = self.score_cache
        if cache is None:
            return self._run(pairs, stages, batch_size, show_progress)
        keys = [self._score_key(pair) for pair in pairs]
        known = [cache.get(key) if key is not None else None for key in keys]
        todo = [i for i, score in enumerate(known) if score is None]
        if todo:
            fresh = self._run([pairs[i] for i in todo], stages, batch_size, show_progress)
            for i, score in zip(todo, fresh, strict=True):
                known[i] = score
                key = keys[i]
                if key is not None:
                    cache.put(key, score)
        elif stages is not None:  # every score was cached: the model did not run
            stages.update(dict.fromkeys(("waiting", "image_wait", "vision", "language_model", "run"), 0.0))
        return [score for score in known if score is not None]

    def _score_key(self, pair: EncodedPair) -> tuple[object, ...] | None:
        """Return the score cache's key of a pair: the model, its settings, the pair's tokens and image contents."""
        if any(f.key is None for f in pair.images):
            return None
        config = self.config
        model = (config.model, config.revision, self.model.recipe.name, str(self.model.dtype), config.quantization)
        return (model, pair.input_ids, tuple(f.key for f in pair.images))

    def _run(
        self,
        pairs: list[EncodedPair],
        stages: dict[str, float] | None,
        batch_size: int | None,
        show_progress: bool | None,
    ) -> list[float]:
        job = _Job(pairs, batch_size, show_progress)
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

    @property
    def waiting(self) -> int:
        """Calls queued for the next run (they will be combined into it)."""
        with self._queue_lock:
            return len(self._queue)

    def close(self) -> None:
        """Stop the patch pool (patches not started are made on use instead)."""
        if self._patch_pool is not None:
            self._patch_pool.shutdown(wait=False, cancel_futures=True)

    def _run_jobs(self, jobs: list[_Job]) -> None:
        everything = [pair for job in jobs for pair in job.pairs]
        cache = ImageCache(everything)
        if len(jobs) > 1:
            logger.debug("combining %d concurrent calls into %d pairs", len(jobs), len(everything))
        config = self.config
        batch_size = min(job.batch_size or config.batch_size for job in jobs)
        bar = None
        if any(config.show_progress if job.show_progress is None else job.show_progress for job in jobs):
            from tqdm.auto import tqdm

            bar = tqdm(total=len(everything), desc="lychee rerank", unit="pair")
        model = self.model
        started_run = time.perf_counter()
        vision_before, image_wait_before = model.vision_seconds, model.image_wait_seconds
        stage = {"prefix": 0.0, "batches": 0.0}

        failures: dict[int, Exception] = {}  # by index into ``everything``: pairs that fail alone

        def batched(indices: Sequence[int], fn: Callable[[list[EncodedPair]], list[float]], offset: int) -> None:
            def timed(batch: list[EncodedPair]) -> list[float]:
                started = time.perf_counter()
                out = fn(batch)
                elapsed = time.perf_counter() - started
                stage["batches"] += elapsed
                emit("batch_seconds", elapsed)
                emit("batch_pairs", len(batch))
                emit("batch_tokens", len(batch) * (max(len(p) for p in batch) - offset))
                return out

            pairs = [everything[i] for i in indices]
            failed: dict[int, Exception] = {}
            out = run_batched(
                pairs,
                [len(p) - offset for p in pairs],
                timed,
                max_batch_size=batch_size,
                max_batch_tokens=model.max_batch_tokens,
                is_oom=is_out_of_memory,
                after_oom=model.free_memory,
                progress=bar.update if bar is not None else lambda n: None,
                failures=failed,
            )
            for k, i in enumerate(indices):
                if k in failed:
                    failures[i] = failed[k]
                else:
                    scores[i] = out[k]

        try:
            scores: list[float] = [0.0] * len(everything)
            if config.prefix_reuse and model.cache_keyword is not None:
                groups, alone = group_by_prefix(everything, model.image_token_id)
            else:
                groups, alone = [], list(range(len(everything)))
            if self._patch_pool is not None:
                seen = model.vision_cache
                for features in _images_in_run_order(everything, groups, alone, batch_size, model.max_batch_tokens):
                    if features.key is None or seen is None or not seen.peek(features.key):
                        features.prefetch(self._patch_pool)
            for group in groups:
                started = time.perf_counter()
                try:
                    state = model.run_prefix(everything[group.indices[0]], group.length, cache)
                except Exception as exc:  # the group's pairs are scored on their own instead
                    logger.warning("shared prefix of %d pairs failed (%s); scoring them alone", len(group.indices), exc)
                    if is_out_of_memory(exc):
                        model.free_memory()
                    alone.extend(group.indices)
                    continue
                finally:
                    stage["prefix"] += time.perf_counter() - started

                def suffix(batch: list[EncodedPair], state: PrefixState = state) -> list[float]:
                    return model.score_suffix(batch, state, cache)

                batched(group.indices, suffix, group.length)
                del state
            if alone:
                batched(sorted(alone), lambda b: model.score_batch(b, cache), 0)
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
            *(stages[key] for key in ("run", "image_wait", "vision", "language_model")),
            len(groups),
            stage["prefix"],
            stage["batches"],
        )
        emit("pairs_scored", len(everything))
        emit("tokens_scored", sum(len(p) for p in everything))
        start = 0
        for job in jobs:
            own = {i - start: exc for i, exc in failures.items() if start <= i < start + len(job.pairs)}
            job.scores, job.stages = scores[start : start + len(job.pairs)], stages
            job.error = _call_error(own, job.pairs) if own else None
            job.done = True
            start += len(job.pairs)


def _images_in_run_order(
    pairs: Sequence[EncodedPair],
    groups: Sequence[PrefixGroup],
    alone: Sequence[int],
    batch_size: int,
    max_batch_tokens: int,
) -> Iterator[ImageFeatures]:
    """Yield a run's images in the order its batches read them (prefix groups, then the rest)."""
    for indices, offset in [*((g.indices, g.length) for g in groups), (tuple(alone), 0)]:
        lengths = [len(pairs[i]) - offset for i in indices]
        for batch in plan_batches(lengths, max_batch_size=batch_size, max_batch_tokens=max_batch_tokens):
            for k in batch:
                yield from pairs[indices[k]].images


def _call_error(failed: dict[int, Exception], pairs: Sequence[EncodedPair]) -> Exception:
    """Return the error of the one call whose pairs ``failed`` alone (by index in the call)."""
    if not all(is_out_of_memory(exc) for exc in failed.values()):
        return next(exc for exc in failed.values() if not is_out_of_memory(exc))
    errors: list[InvalidInputError] = [
        InputTooLongError(
            f"document {k}",
            f"does not fit in memory even alone ({len(pairs[k])} tokens); lower max_length or max_pixels",
            index=k,
        )
        for k in sorted(failed)
    ]
    return errors[0] if len(errors) == 1 else InvalidDocumentsError(errors, len(pairs))
