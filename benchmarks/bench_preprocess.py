"""Is preprocessing off the critical path? Wall time of a call vs the model alone.

Workload (``workloads.image_documents_workload``): a text query against 50 image documents
of 672 x 672 pixels, given as PNG bytes, so every call decodes, resizes and patches 50
images. Measured in the same run, on the same loaded engine:

* preprocessing alone: :meth:`LycheeReranker.encode` (decode, tokenize, plan each image's
  grid) and then every image's patches (resize, normalize, patchify), in the engine's pool;
* the model alone: :meth:`LycheeReranker.score_encoded` on pairs encoded beforehand;
* the whole call: :meth:`LycheeReranker.score`, with ``preprocess_workers`` as configured
  (default: sized to the machine) and with one worker.

The five are called in turn, round after round (``timing.best_interleaved``, best of ``--repeat``),
so that a shared machine's slow spells hit all of them.

It prints wall / model-only (goal: at most 1.1x) and wall / (preprocessing + model): below
1 means preprocessing overlapped the model.

    python benchmarks/bench_preprocess.py                   # small preset, CPU
    python benchmarks/bench_preprocess.py --preset 7b       # on a GPU, real shapes, bfloat16
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from timing import best_interleaved
from workloads import image_documents_workload

from lychee_integrations.engine import LycheeReranker

logger = logging.getLogger("bench_preprocess")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_options(parser)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--size", type=int, default=672, help="image side in pixels")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"
    query, documents, instruction = image_documents_workload(args.docs, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint_path(args, tmp)
        engine = LycheeReranker(model=str(path), device=device, dtype=dtype, **NO_CROSS_CALL_CACHES).load()
        runtime = engine._get_runtime()
        pool = runtime._patch_pool
        workers = engine.config.preprocess_workers
        logger.info(
            "%s, %s, %d torch threads; %d image documents of %d px; preprocess_workers=%d",
            device,
            dtype,
            torch.get_num_threads(),
            args.docs,
            args.size,
            workers,
        )
        pairs = engine.encode(query, documents, instruction=instruction)
        engine.score_encoded(pairs)  # warm-up; makes the patches
        pooled, serial = engine.config, dataclasses.replace(engine.config, preprocess_workers=1)

        def in_mode(one_worker: bool, fn: Callable[[], None]) -> Callable[[], None]:
            """``fn`` with the engine's pools, or with everything in the calling thread (no pools)."""

            def run() -> None:
                engine.config, runtime._patch_pool = (serial, None) if one_worker else (pooled, pool)
                fn()

            return run

        def model_only() -> None:
            engine.score_encoded(pairs)

        def preprocess() -> None:
            """Encode, then make every image's patches (in the engine's pool, when it has one)."""
            encoded = engine.encode(query, documents, instruction=instruction)
            features = [f for pair in encoded for f in pair.images]
            if runtime._patch_pool is not None:
                for f in features:
                    f.prefetch(runtime._patch_pool)
            for f in features:
                _ = f.pixel_values

        def whole_call() -> None:
            engine.score(query, documents, instruction=instruction)

        # All five in turn, round after round, so that the machine's slow spells hit every one.
        t_model, t_pre, t_wall, t_pre_serial, t_wall_serial = best_interleaved(
            [
                in_mode(False, model_only),
                in_mode(False, preprocess),
                in_mode(False, whole_call),
                in_mode(True, preprocess),
                in_mode(True, whole_call),
            ],
            args.repeat,
        )
        engine.config, runtime._patch_pool = pooled, pool
        n = args.docs
        logger.info("preprocessing alone: %.3fs (%d workers), %.3fs (1 worker)", t_pre, workers, t_pre_serial)
        logger.info("model alone:         %.3fs (%.2f docs/s)", t_model, n / t_model)
        logger.info("whole call:          %.3fs (%.2f docs/s), %d workers", t_wall, n / t_wall, workers)
        logger.info("whole call:          %.3fs (%.2f docs/s), 1 worker", t_wall_serial, n / t_wall_serial)
        logger.info("wall / model-only: %.3fx (goal: at most 1.1x)", t_wall / t_model)
        logger.info("wall / (preprocessing + model): %.3fx (below 1: overlapped)", t_wall / (t_pre + t_model))
        logger.info(
            "1 worker: wall / model-only %.3fx; wall / (preprocessing + model) %.3fx",
            t_wall_serial / t_model,
            t_wall_serial / (t_pre_serial + t_model),
        )


if __name__ == "__main__":
    main()
