"""The engine's token budget per forward pass (``max_batch_tokens``) on each workload of bench_vllm.

One engine per budget, all on the same checkpoint in one process (the ``small`` preset with the
real Qwen tokenizer unless ``--checkpoint``), cross-call caches off. The budgets take turns on
each call (``timing.best_interleaved``: the machine's slow spells hit all of them), every budget
scoring the same inputs in a round, and each round a query of its own. Prints each budget's best
seconds per call and its speed against the first budget given (the baseline: above 1, faster),
and the largest score difference from the baseline (the budget only regroups pairs into passes).

    python benchmarks/bench_budget.py                   # the device's default budget against half, 2x and 4x
    python benchmarks/bench_budget.py --budgets 2048 16384 --workloads long-text pages
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vllm import make_workload
from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from timing import best_interleaved

from lychee_integrations.config import RerankerConfig
from lychee_integrations.engine import LycheeReranker

logger = logging.getLogger("bench_budget")
WORKLOADS = ("kb-text", "image-query", "long-text", "pages")


def measure(engines: list[LycheeReranker], workload: str, rounds: int) -> tuple[list[float], float]:
    """Best seconds per call of each engine on ``workload``, and the largest score difference from the first."""
    # the untimed first call and each round: a query of its own, made before any call is timed
    inputs = [make_workload(workload, 100 + n) for n in range(rounds + 1)]
    scores: list[list[float]] = [[] for _ in engines]

    def caller(k: int) -> Callable[[], object]:
        calls = iter(inputs)

        def run() -> None:
            query, documents, instruction = next(calls)
            scores[k] = engines[k].score(query, documents, instruction=instruction)

        return run

    best = best_interleaved([caller(k) for k in range(len(engines))], rounds)
    diff = max(abs(a - b) for s in scores[1:] for a, b in zip(s, scores[0], strict=True)) if len(engines) > 1 else 0.0
    return best, diff


def main() -> None:
    """Build or open the checkpoint, then measure each workload under each budget."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, nargs="+", help="the first is the baseline (default: the device's)")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=3)
    add_checkpoint_options(parser, presets=("tiny", "small"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.budgets:
        default = RerankerConfig().batch_tokens(args.device)
        args.budgets = [default, default // 2, default * 2, default * 4]

    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint_path(args, tmp, dtype=args.dtype)
        engines = [
            LycheeReranker(
                model=str(path), device=args.device, dtype=args.dtype, max_batch_tokens=b, **NO_CROSS_CALL_CACHES
            ).load()
            for b in args.budgets
        ]
        logger.info(
            "device %s, dtype %s, budgets %s (baseline %d)", args.device, args.dtype, args.budgets, args.budgets[0]
        )
        for workload in args.workloads:
            best, diff = measure(engines, workload, args.rounds)
            cells = "  ".join(f"{b}: {t:.2f}s ({best[0] / t:.2f}x)" for b, t in zip(args.budgets, best, strict=True))
            logger.info("%-12s %s  largest score difference %.1e", workload, cells, diff)


if __name__ == "__main__":
    main()
