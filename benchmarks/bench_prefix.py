"""Prefix reuse on vs off vs the one-pair reference, on the compute-bound ``small`` CPU preset.

Workloads (``benchmarks/workloads.py``): a 448-px image query x 24 short text documents,
and a text query under a ~120-token knowledge-base instruction x 50 documents of ~100
words. All three scorers run in the same process on the same checkpoint (8 layers of 512);
the script prints docs/s, the on/off ratio and the largest score difference. The checkpoint
carries the real Qwen vocabulary (152,064 tokens) and tokenizer. Every call repeats the same
inputs, so the engine's cross-call caches (vision features, prefix keys and values) are off
here: this measures reuse within a call; ``bench_vllm.py``'s service workload measures the caches.

    python benchmarks/bench_prefix.py
    python benchmarks/bench_prefix.py --workload image --skip-reference
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from recipe_reference import RecipeReference
from timing import best_interleaved
from workloads import image_query_workload, text_kb_workload

from lychee_integrations.engine import LycheeReranker

WORKLOADS: dict[str, Callable[[], tuple[Any, list[Any], str]]] = {
    "image": lambda: image_query_workload(24, 448),
    "text": lambda: text_kb_workload(50, 100),
}


def as_pair(value: Any) -> tuple[str | None, list[Any]]:
    if isinstance(value, str):
        return value, []
    return value.get("text"), [value["image"]] if "image" in value else list(value.get("images", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-reference", action="store_true", help="skip the slow one-pair reference")
    add_checkpoint_options(parser, presets=("tiny", "small"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint_path(args, tmp)
        on = LycheeReranker(model=str(path), device="cpu", dtype="float32", **NO_CROSS_CALL_CACHES).load()
        off = LycheeReranker(
            model=str(path), device="cpu", dtype="float32", prefix_reuse=False, **NO_CROSS_CALL_CACHES
        ).load()
        reference = None if args.skip_reference else RecipeReference(path)
        print(f"checkpoint {args.checkpoint or args.preset}, fp32, CPU, {torch.get_num_threads()} torch threads")
        for name in names:
            query, docs, instruction = WORKLOADS[name]()
            n = len(docs)
            t_on, t_off = best_interleaved(
                [
                    lambda q=query, d=docs, i=instruction: on.score(q, d, instruction=i),
                    lambda q=query, d=docs, i=instruction: off.score(q, d, instruction=i),
                ],
                args.repeat,
            )
            s_on = on.score(query, docs, instruction=instruction)
            s_off = off.score(query, docs, instruction=instruction)
            print(f"\n{name} workload: {n} documents")
            print(f"  reuse on : {n / t_on:8.2f} docs/s")
            print(f"  reuse off: {n / t_off:8.2f} docs/s")
            print(f"  ratio on/off: {t_off / t_on:.2f}x")
            diff = max(abs(a - b) for a, b in zip(s_on, s_off, strict=True))
            print(f"  largest score difference on vs off: {diff:.2e}")
            if reference is not None:
                q_text, q_images = as_pair(query)
                start = time.perf_counter()
                s_ref = [reference.score(instruction, q_text, q_images, *as_pair(d))[0] for d in docs]
                t_ref = time.perf_counter() - start
                print(f"  reference (one pair per forward): {n / t_ref:8.2f} docs/s; on/reference {t_ref / t_on:.2f}x")
                ref_diff = max(abs(a - b) for a, b in zip(s_on, s_ref, strict=True))
                print(f"  largest score difference on vs reference: {ref_diff:.2e}")


if __name__ == "__main__":
    main()
