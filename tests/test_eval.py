"""``lychee eval``: hand-worked metrics with a fake scorer, and the tiny checkpoint end to end."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ir_measures
import pytest

from lychee_integrations.eval import evaluate, load_dataset, read_run
from lychee_integrations.eval.report import format_trec
from lychee_integrations.inputs import RerankInput
from lychee_integrations.testing import FakeScorer

SHIPPED = Path(__file__).resolve().parent.parent / "examples" / "data" / "eval"


def write_dataset(root: Path, corpus: list[dict[str, object]], queries: list[dict[str, object]], qrels: str) -> Path:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps(c) + "\n" for c in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text(qrels)
    return root


def lychee(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SHIPPED.parent.parent.parent)}
    return subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_metrics_worked_out_by_hand(tmp_path: Path) -> None:
    corpus = [{"_id": f"d{i}", "title": "", "text": f"doc {i}"} for i in range(1, 5)]
    queries = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}, {"_id": "q3", "text": "no qrels"}]
    dataset = load_dataset(write_dataset(tmp_path, corpus, queries, "q1\td2\t1\nq2\td3\t1\n"))
    # q1: scores put d1 first, d2 (relevant) second -> RR 0.5, nDCG 1/log2(3); q2: d3 first -> RR 1, nDCG 1.
    wanted = {("first", "doc 1"): 0.9, ("first", "doc 2"): 0.8, ("second", "doc 3"): 0.95}

    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        return wanted.get((query.text or "", document.text or ""), 0.1)

    first = {q: {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0} for q in ("q1", "q2", "q3")}
    report = evaluate(dataset, scorer=FakeScorer(score), run=first, top_k_docs=4)
    reranked = report.metrics["reranked"]
    assert reranked["RR@10"] == pytest.approx((0.5 + 1.0) / 2)
    assert reranked["nDCG@10"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    assert reranked["R@10"] == pytest.approx(1.0)
    # first stage: q1 d2 at rank 2 (RR 0.5), q2 d3 at rank 3 (RR 1/3)
    assert report.metrics["first_stage"]["RR@10"] == pytest.approx((0.5 + 1 / 3) / 2)
    assert report.metrics["first_stage"]["nDCG@10"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 2)
    assert report.settings["skipped_queries"] == 1
    assert report.settings["evaluated_queries"] == 2
    assert report.settings["scored_pairs"] == 8  # one call of 4 documents per evaluated query


def test_bm25_first_stage_on_shipped_dataset() -> None:
    dataset = load_dataset(SHIPPED)
    report = evaluate(dataset, scorer=FakeScorer(), top_k_docs=20)
    assert report.settings["first_stage"] == "bm25"
    assert 0.3 < report.metrics["first_stage"]["nDCG@10"] < 1.0
    settings = report.settings
    assert any(doc.image is not None for doc in dataset.corpus.values())  # the shipped set holds images
    assert len(report.runs["reranked"]) + settings["queries_without_candidates"] == settings["evaluated_queries"]


@pytest.mark.slow
def test_cli_end_to_end_tiny_checkpoint(tiny_checkpoint: Path, tiny_reranker: object, tmp_path: Path) -> None:
    out, run_path = tmp_path / "results.json", tmp_path / "reranked.trec"
    result = lychee(
        "eval", str(SHIPPED), "--run", str(SHIPPED / "bm25.trec"), "--top-k", "5", "--model", str(tiny_checkpoint),
        "--device", "cpu", "--dtype", "float32", "--output", str(out), "--save-run", str(run_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "first_stage" in result.stdout and "reranked" in result.stdout and "NDCG@10" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["settings"]["top_k"] == 5 and saved["settings"]["model"] == str(tiny_checkpoint)
    dataset = load_dataset(SHIPPED)
    qrels = {q: rel for q, rel in dataset.qrels.items()}
    run = read_run(run_path, dataset)
    measures = [ir_measures.parse_measure(name) for name in saved["metrics"]["reranked"]]
    recomputed = ir_measures.calc_aggregate(measures, qrels, {q: run.get(q, {}) for q in qrels})
    for measure, value in recomputed.items():
        assert saved["metrics"]["reranked"][str(measure)] == pytest.approx(value, abs=1e-12)
    # the saved scores are the engine's, for one query with an image document among its candidates
    query_id = "q01"
    candidates = list(run[query_id])
    engine = tiny_reranker.score(  # type: ignore[attr-defined]
        dataset.queries[query_id].as_input(), [dataset.corpus[d].as_input() for d in candidates]
    )
    assert [run[query_id][d] for d in candidates] == pytest.approx(engine, abs=1e-5)


def test_compare_templates_writes_one_run_per_template(tmp_path: Path) -> None:
    from lychee_integrations.eval.report import write_outputs

    dataset = load_dataset(SHIPPED)
    systems: dict[str, tuple[str | None, str | None]] = {"a": (None, "Find it"), "b": (None, "Find the answer")}
    report = evaluate(dataset, scorer=FakeScorer(), top_k_docs=10, systems=systems)
    paths = write_outputs(report, output=tmp_path / "r.json", save_run=tmp_path / "rr.trec", tag="t")
    assert sorted(p.name for p in paths) == ["r.json", "rr.a.trec", "rr.b.trec"]
    assert json.loads((tmp_path / "r.json").read_text())["instructions"] == {"a": "Find it", "b": "Find the answer"}
    assert format_trec(report.runs["a"], "t.a") == (tmp_path / "rr.a.trec").read_text()


def copy_shipped(tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(SHIPPED, target)
    return target


def _missing_corpus(root: Path) -> tuple[str, str | None]:
    (root / "corpus.jsonl").unlink()
    return "corpus.jsonl", None


def _bad_json(root: Path) -> tuple[str, str | None]:
    lines = (root / "corpus.jsonl").read_text().splitlines()
    lines[2] = lines[2][:-3]
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    return "corpus.jsonl", "line 3"


def _unknown_qrel(root: Path) -> tuple[str, str | None]:
    with (root / "qrels" / "test.tsv").open("a") as f:
        f.write("q01\tnope\t1\n")
    count = len((root / "qrels" / "test.tsv").read_text().splitlines())
    return "test.tsv", f"line {count}"


def _unknown_run_id(root: Path) -> tuple[str, str | None]:
    with (root / "bm25.trec").open("a") as f:
        f.write("q01 Q0 nope 99 0.1 bm25\n")
    count = len((root / "bm25.trec").read_text().splitlines())
    return "bm25.trec", f"line {count}"


def _broken_image(root: Path) -> tuple[str, str | None]:
    (root / "images" / "i03.png").write_bytes(b"not a png")
    lines = (root / "corpus.jsonl").read_text().splitlines()
    number = next(n for n, line in enumerate(lines, start=1) if '"i03"' in line)
    return "corpus.jsonl", f"line {number}"


@pytest.mark.parametrize("breaker", [_missing_corpus, _bad_json, _unknown_qrel, _unknown_run_id, _broken_image])
def test_broken_dataset_fails_cleanly(breaker: object, tmp_path: Path) -> None:
    root = copy_shipped(tmp_path)
    file_name, line = breaker(root)  # type: ignore[operator]
    out = tmp_path / "results.json"
    result = lychee("eval", str(root), "--run", str(root / "bm25.trec"), "--model", str(tmp_path / "no-model"),
                    "--output", str(out), "--save-run", str(tmp_path / "r.trec"), "--no-progress")  # fmt: skip
    assert result.returncode != 0
    assert file_name in result.stderr and (line is None or line in result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() and not (tmp_path / "r.trec").exists()


def test_families_compared_on_one_dataset(
    tiny_checkpoint: Path, tiny_qwen3_vl_checkpoint: Path, tiny_reranker: object
) -> None:
    """The same dataset and first stage, reranked by a Lychee and a Qwen3-VL-Reranker checkpoint."""
    from lychee_integrations.engine import LycheeReranker
    from lychee_integrations.images import ImagePolicy
    from lychee_integrations.recipes import get_recipe

    dataset = load_dataset(SHIPPED)
    run = read_run(SHIPPED / "bm25.trec", dataset)
    policy = ImagePolicy(allow_remote=False, local_root=SHIPPED.resolve())
    reports = {}
    for family, checkpoint in (("lychee", tiny_checkpoint), ("qwen3-vl", tiny_qwen3_vl_checkpoint)):
        scorer = LycheeReranker(str(checkpoint), device="cpu", dtype="float32", image_policy=policy)
        reports[family] = evaluate(dataset, scorer=scorer, run=run, top_k_docs=5)
        assert reports[family].instructions == {"reranked": get_recipe(family).default_instruction}
    assert reports["lychee"].metrics["first_stage"] == reports["qwen3-vl"].metrics["first_stage"]
    assert reports["lychee"].runs["reranked"].keys() == reports["qwen3-vl"].runs["reranked"].keys()
    assert reports["lychee"].runs["reranked"] != reports["qwen3-vl"].runs["reranked"]


def test_cli_against_a_server_gives_the_engine_run(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """``lychee eval --base-url``: the same run through ``lychee serve`` as in process (images sent by the client)."""
    from remote_helpers import lychee_serve

    common = [str(SHIPPED), "--run", str(SHIPPED / "bm25.trec"), "--top-k", "4", "--no-progress"]
    local = lychee("eval", *common, "--model", str(tiny_checkpoint), "--device", "cpu", "--dtype", "float32",
                   "--save-run", str(tmp_path / "local.trec"))  # fmt: skip
    assert local.returncode == 0, local.stderr
    with lychee_serve(tiny_checkpoint) as base:
        served = lychee("eval", *common, "--base-url", base, "--save-run", str(tmp_path / "served.trec"))
    assert served.returncode == 0, served.stderr

    def scores(path: Path) -> dict[tuple[str, str], float]:
        rows = [line.split() for line in path.read_text().splitlines()]
        return {(r[0], r[2]): float(r[4]) for r in rows}

    here, there = scores(tmp_path / "local.trec"), scores(tmp_path / "served.trec")
    assert here.keys() == there.keys() and len(here) > 10
    assert max(abs(here[k] - there[k]) for k in here) < 1e-5
