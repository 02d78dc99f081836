"""RemoteReranker against a real ``lychee serve`` on a tiny Qwen3-VL-Reranker checkpoint.

The bug this guards: a call with no instruction must send none, so that the server applies
its own family's default (Qwen3-VL-Reranker's, not Lychee's). Scores, token counts and
``lychee eval --base-url`` must then match the in-process engine on the same checkpoint.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from remote_helpers import RequestLog, lychee_serve
from service_helpers import close

from lychee_integrations import RemoteReranker
from lychee_integrations.engine import LycheeReranker
from lychee_integrations.recipes import get_recipe

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "examples" / "data" / "eval"
QUERY = "what is the capital of France"
TEXTS = [
    "Paris is the capital of France.",
    "Berlin is the capital of Germany.",
    "A recipe for apple pie.",
    "The Eiffel tower is in Paris.",
    "Cats sleep most of the day.",
]


@pytest.fixture(scope="module")
def server(tiny_qwen3_vl_checkpoint: Path) -> Iterator[str]:
    with lychee_serve(tiny_qwen3_vl_checkpoint) as base:
        yield base


@pytest.fixture(scope="module")
def local(tiny_qwen3_vl_checkpoint: Path) -> Iterator[LycheeReranker]:
    with LycheeReranker(model=str(tiny_qwen3_vl_checkpoint), device="cpu", dtype="float32") as reranker:
        yield reranker.load()


def test_no_instruction_gets_the_servers_family_default(server: str, local: LycheeReranker) -> None:
    log = RequestLog()
    sent: list[bytes] = []
    hooks = {"request": [log, lambda request: sent.append(request.content)]}
    with RemoteReranker(server, timeout=120, event_hooks=hooks) as remote:
        got = remote.score_with_usage(QUERY, TEXTS)
    expected = local.score_with_usage(QUERY, TEXTS)
    assert close(got.scores, expected.scores)
    assert b'"instruction"' not in sent[-1]  # nothing sent: the server chose
    assert got.instruction is None  # ... and did not say which
    assert got.tokens is not None and got.tokens == expected.tokens
    # What the old client did (send the Lychee default) gives other scores on this model.
    lychee_default = get_recipe("lychee").default_instruction
    assert lychee_default != get_recipe("qwen3-vl").default_instruction
    assert not close(local.score(QUERY, TEXTS, instruction=lychee_default), expected.scores)


def test_an_instruction_and_split_calls_report_the_instruction_and_summed_tokens(
    server: str, local: LycheeReranker
) -> None:
    instruction = "Find the passage that names a city."
    expected = local.score_with_usage(QUERY, TEXTS, instruction=instruction)
    log = RequestLog()
    with RemoteReranker(server, timeout=120, max_documents_per_request=2, event_hooks=log.hooks()) as remote:
        got = remote.score_with_usage(QUERY, TEXTS, instruction=instruction)
    assert log.count("POST", "/v1/rerank") == 3  # 2 + 2 + 1 documents
    assert close(got.scores, expected.scores)
    assert got.instruction == instruction
    assert got.tokens == expected.tokens


def lychee(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def saved_scores(path: Path) -> dict[tuple[str, str], float]:
    rows = [line.split() for line in path.read_text().splitlines()]
    return {(r[0], r[2]): float(r[4]) for r in rows}


def test_eval_through_the_server_saves_the_in_process_run(
    server: str, tiny_qwen3_vl_checkpoint: Path, tmp_path: Path
) -> None:
    common = [str(SHIPPED), "--run", str(SHIPPED / "bm25.trec"), "--top-k", "3", "--no-progress"]
    here = lychee("eval", *common, "--model", str(tiny_qwen3_vl_checkpoint), "--device", "cpu",
                  "--dtype", "float32", "--output", str(tmp_path / "local.json"),
                  "--save-run", str(tmp_path / "local.trec"))  # fmt: skip
    assert here.returncode == 0, here.stderr
    there = lychee("eval", *common, "--base-url", server, "--output", str(tmp_path / "served.json"),
                   "--save-run", str(tmp_path / "served.trec"))  # fmt: skip
    assert there.returncode == 0, there.stderr
    local_run, served_run = saved_scores(tmp_path / "local.trec"), saved_scores(tmp_path / "served.trec")
    assert local_run.keys() == served_run.keys() and len(local_run) > 5
    assert max(abs(local_run[k] - served_run[k]) for k in local_run) < 1e-5
