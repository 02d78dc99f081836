"""RemoteReranker through ``lychee serve`` against the in-process engine, same machine, same run.

Builds the compute-bound ``small`` checkpoint (8 layers of 512, the real Qwen tokenizer), starts ``lychee serve`` on it
(loopback, CPU unless --device says otherwise), and measures, one after the other so that the
two never compete for the machine, with the calls compared taking turns (best of ``--repeat``
rounds, ``timing.best_interleaved``) so that the machine's slow spells hit both:

* docs/s for 50 text documents (the knowledge-base workload) and for 20 image documents,
  remote vs in process, and the ratio (goal: at least 0.9x);
* 32 concurrent clients of 10 documents each vs one remote call of 320, and the ratio
  (goal: at least 0.8x: the server's engine combines concurrent calls into shared batches).

    python benchmarks/bench_remote.py
    python benchmarks/bench_remote.py --checkpoint /models/lychee --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from presets import NO_CROSS_CALL_CACHES, NO_CROSS_CALL_CACHES_FLAGS, add_checkpoint_options, checkpoint_path  # noqa: E402
from service_helpers import cli_server, free_port  # noqa: E402
from timing import best_interleaved  # noqa: E402
from workloads import image_documents_workload, text_kb_workload  # noqa: E402

from lychee_integrations import LycheeReranker, RemoteReranker  # noqa: E402


def largest_difference(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def report(name: str, local_rate: float, remote_rate: float, diff: float) -> None:
    print(
        f"{name:34s} in process {local_rate:8.1f} docs/s | remote {remote_rate:8.1f} docs/s | "
        f"ratio remote/in-process {remote_rate / local_rate:.2f}x | largest score difference {diff:.1e}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_options(parser, presets=("small",))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=448, help="side of the image documents, in pixels")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--docs-per-client", type=int, default=10)
    parser.add_argument(
        "--part", choices=["all", "text", "images", "concurrency"], default="all", help="measure only one part"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        path = checkpoint_path(args, tmp)
        engine = LycheeReranker(model=str(path), device=args.device, dtype=args.dtype, **NO_CROSS_CALL_CACHES)
        port = free_port()
        serve = ["serve", "--model", str(path), "--port", str(port), "--device", args.device, "--dtype", args.dtype]
        serve += NO_CROSS_CALL_CACHES_FLAGS
        serve += ["--max-documents", str(args.clients * args.docs_per_client), "--max-concurrency", "64"]
        with cli_server(serve, port=port, startup_timeout=300) as base, RemoteReranker(base, timeout=600) as remote:
            rows = []
            parts = {
                "text": ("50 text documents", lambda: text_kb_workload(50)),
                "images": (
                    f"20 image documents ({args.image_size} px)",
                    lambda: image_documents_workload(20, size=args.image_size),
                ),
            }
            for name, make in (value for key, value in parts.items() if args.part in ("all", key)):
                query, documents, instruction = make()
                local_s, remote_s = best_interleaved(
                    [
                        partial(engine.score, query, documents, instruction=instruction),
                        partial(remote.score, query, documents, instruction=instruction),
                    ],
                    args.repeat,
                )
                diff = largest_difference(
                    engine.score(query, documents, instruction=instruction),
                    remote.score(query, documents, instruction=instruction),
                )
                rows.append((name, len(documents) / local_s, len(documents) / remote_s, diff))
                report(*rows[-1])  # printed as soon as measured: the concurrency part takes longest

            if args.part not in ("all", "concurrency"):
                return
            n = args.clients * args.docs_per_client
            query, documents, instruction = text_kb_workload(n, seed=1)
            chunks = [documents[i : i + args.docs_per_client] for i in range(0, n, args.docs_per_client)]

            def one_call() -> None:
                remote.score(query, documents, instruction=instruction)

            def concurrent_clients() -> None:
                with ThreadPoolExecutor(args.clients) as pool:
                    list(pool.map(lambda chunk: remote.score(query, chunk, instruction=instruction), chunks))

            one_s, many_s = best_interleaved([one_call, concurrent_clients], args.repeat)

    print(f"checkpoint {'given' if args.checkpoint else 'small preset, real tokenizer'}, {args.device}, {args.dtype}")
    print(
        f"{args.clients} concurrent clients x {args.docs_per_client} documents: {n / many_s:8.1f} docs/s | "
        f"one call of {n}: {n / one_s:8.1f} docs/s | ratio concurrent/one call {one_s / many_s:.2f}x"
    )


if __name__ == "__main__":
    main()
