"""Documents per second of the engine against the one-pair-per-forward recipe reference.

Both run in the same process on the same checkpoint, 1 query x N text documents of
mixed lengths; the script prints each one's throughput, the speed-up ratio and the
largest score difference. The checkpoint has the real Qwen tokenizer and embedding width (152064),
so prompts are as long and the LM head weighs as in the real model. On a CPU it is the ``small``
preset (8 layers of 512, compute-bound like the real model; ``--preset tiny`` for a quick dry run);
on a GPU ``--preset 7b`` builds the real Qwen2.5-VL-7B shapes with random weights (no download).

    python benchmarks/bench_engine.py                 # CPU, small preset
    python benchmarks/bench_engine.py --preset 7b     # GPU, real architecture
    python benchmarks/bench_engine.py --modality image  # image query against 50 image documents
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from presets import NO_CROSS_CALL_CACHES, add_checkpoint_options, checkpoint_path
from recipe_reference import DEFAULT_INSTRUCTION, RecipeReference
from timing import best_of

from lychee_integrations.engine import LycheeReranker
from lychee_integrations.inputs import RerankInput

Pair = tuple[str | None, list[Image.Image]]
WORDS = ["retrieval", "passage", "answer", "query", "the", "a", "cat", "capital", "France", "guide", "step", "image"]


def documents(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([8, 30, 80, 200, 400]))) for _ in range(n)]


def workload(modality: str, n: int) -> tuple[Pair, list[Pair]]:
    """The query and documents as ``(text, images)`` pairs: text to text, or image to image."""
    if modality == "text":
        return ("what is the capital of France", []), [(d, []) for d in documents(n)]
    rng = random.Random(0)

    def picture(size: tuple[int, int]) -> Image.Image:
        return Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]

    query = (None, [picture((448, 448))])
    return query, [(None, [picture((rng.choice([112, 224, 336]), rng.choice([112, 224, 448])))]) for _ in range(n)]


def as_engine_input(pair: Pair) -> RerankInput:
    return RerankInput(pair[0], tuple(pair[1]))


def peak_gib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def measure_reference(
    path: Path, device: str, dtype_name: str, query: Pair, docs: list[Pair], repeat: int
) -> tuple[float, list[float], float]:
    reference = RecipeReference(path, device=device, dtype=getattr(torch, dtype_name))

    def run() -> list[float]:
        return [reference.score(DEFAULT_INSTRUCTION, *query, *d)[0] for d in docs]

    run()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    seconds = best_of(run, repeat)
    return seconds, run(), peak_gib(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50)
    add_checkpoint_options(parser)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modality", choices=["text", "image"], default="text", help="text->text or image->image")
    args = parser.parse_args()

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dtype_name = args.dtype if args.dtype != "auto" else ("bfloat16" if device.startswith("cuda") else "float32")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = checkpoint_path(args, tmp, dtype=dtype_name)
        if not args.checkpoint:
            print(
                f"built {args.preset} checkpoint (real tokenizer and vocabulary) in {time.perf_counter() - start:.1f}s"
            )
        query, docs = workload(args.modality, args.docs)

        t_ref, ref_scores, ref_mem = measure_reference(path, device, dtype_name, query, docs, args.repeat)

        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        engine = LycheeReranker(
            model=str(path), device=device, dtype=dtype_name, batch_size=args.batch_size, **NO_CROSS_CALL_CACHES
        )
        engine_query, engine_docs = as_engine_input(query), [as_engine_input(d) for d in docs]
        engine.score(engine_query, engine_docs)  # warm-up and load
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        t_eng = best_of(lambda: engine.score(engine_query, engine_docs), args.repeat)
        eng_scores = engine.score(engine_query, engine_docs)
        eng_mem = peak_gib(device)

    diff = max(abs(a - b) for a, b in zip(ref_scores, eng_scores, strict=True))
    print(f"device {device}, dtype {dtype_name}, {args.modality}: {args.docs} documents, batch size {args.batch_size}")
    print(f"reference (one pair per forward, full logits): {args.docs / t_ref:8.1f} docs/s")
    print(f"engine (batched, last position, yes-no row):   {args.docs / t_eng:8.1f} docs/s")
    print(f"speed-up ratio engine/reference: {t_ref / t_eng:.2f}x")
    print(f"largest score difference: {diff:.2e}")
    if device.startswith("cuda"):
        print(f"peak GPU memory: reference {ref_mem:.2f} GiB, engine {eng_mem:.2f} GiB")


if __name__ == "__main__":
    main()
