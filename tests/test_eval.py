"""``lychee eval``: hand-worked metrics with a fake scorer, and the tiny checkpoint end to end."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import ir_measures
import pytest

from lychee_integrations.eval import evaluate, load_dataset, read_run
from lychee_integrations.eval.report import format_trec
from lychee_integrations.inputs import RerankInput
from lychee_integrations.testing import FakeScorer

SHIPPED = Path(__file__).resolve().parent.parent / "examples" / "data" / "eval"


def write_dataset(
    root: Path, corpus: Sequence[Mapping[str, object]], queries: Sequence[Mapping[str, object]], qrels: str
) -> Path:
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
        "--per-query", str(tmp_path / "pq.json"), "--format", "csv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "first_stage" in result.stdout and "reranked" in result.stdout and "NDCG@10" in result.stdout
    assert result.stdout.startswith("subset,system,metric,") and "wrote" not in result.stdout
    saved = json.loads(out.read_text())
    assert saved["settings"]["top_k"] == 5 and saved["settings"]["model"] == str(tiny_checkpoint)
    dataset = load_dataset(SHIPPED)
    qrels = {q: rel for q, rel in dataset.qrels.items()}
    run = read_run(run_path, dataset)
    measures = [ir_measures.parse_measure(name) for name in saved["metrics"]["reranked"]]
    recomputed = ir_measures.calc_aggregate(measures, qrels, {q: run.get(q, {}) for q in qrels})
    for measure, value in recomputed.items():
        assert saved["metrics"]["reranked"][str(measure)] == pytest.approx(value, abs=1e-12)
    per_query = json.loads((tmp_path / "pq.json").read_text())["per_query"]["all"]["reranked"]
    names = list(saved["metrics"]["reranked"])
    independent = _independent_per_query(qrels, run, names)
    assert per_query.keys() == independent.keys()
    for query_id, values in independent.items():
        assert per_query[query_id] == pytest.approx(values, abs=1e-12)
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
    from service_helpers import ACROSS_PROCESSES, drift

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
    keys = sorted(here)
    worst = sorted(((abs(here[k] - there[k]), k) for k in keys), reverse=True)[:3]
    assert drift([here[k] for k in keys], [there[k] for k in keys]) <= ACROSS_PROCESSES, f"largest differences: {worst}"


def _independent_per_query(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], names: list[str]
) -> dict[str, dict[str, float]]:
    """Per-query values straight from ir-measures (0 for a query the run misses), for recomputation."""
    values = {q: dict.fromkeys(names, 0.0) for q in qrels}
    measures = [ir_measures.parse_measure(name) for name in names]
    for metric in ir_measures.iter_calc(measures, qrels, {q: run.get(q, {}) for q in qrels}):
        values[metric.query_id][str(metric.measure)] = metric.value
    return values


def test_delta_and_paired_t_test_worked_out_by_hand(tmp_path: Path) -> None:
    from scipy import stats

    from lychee_integrations.eval.report import summary_rows, write_outputs

    corpus = [{"_id": f"d{i}", "title": "", "text": f"doc {i}"} for i in range(1, 5)]
    queries = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}]
    dataset = load_dataset(write_dataset(tmp_path / "ds", corpus, queries, "q1\td2\t1\nq2\td3\t1\n"))
    wanted = {("first", "doc 1"): 0.9, ("first", "doc 2"): 0.8, ("second", "doc 3"): 0.95}

    def score(query: RerankInput, document: RerankInput, instruction: str) -> float:
        return wanted.get((query.text or "", document.text or ""), 0.1)

    first = {q: {"d1": 4.0, "d2": 3.0, "d3": 2.0, "d4": 1.0} for q in ("q1", "q2")}
    report = evaluate(dataset, scorer=FakeScorer(score), run=first, top_k_docs=4)
    # RR per query: first stage (1/2, 1/3), reranked (1/2, 1): differences (0, 2/3), mean 1/3, sd sqrt(2)/3,
    # t = (1/3) / (sqrt(2)/3 / sqrt(2)) = 1 with 1 degree of freedom (Cauchy): p = P(|T| > 1) = 1/2.
    rr = report.subsets["all"].comparison["reranked"]["RR@10"]
    assert rr.delta == pytest.approx(1 / 3)
    assert rr.p_value == pytest.approx(0.5)
    assert report.subsets["all"].comparison["reranked"]["R@10"].p_value is None  # equal on every query
    row = next(
        r
        for r in summary_rows(report)
        if r["subset"] == "all" and r["system"] == "reranked" and r["metric"] == "MRR@10"
    )
    assert row["delta"] == pytest.approx(1 / 3) and row["p_value"] == pytest.approx(0.5)
    # nDCG recomputed independently: ir-measures per query, scipy's paired t-test
    names = ["nDCG@10", "RR@10", "R@10", "R@4"]
    qrels = dataset.qrels
    ours = _independent_per_query(qrels, report.runs["reranked"], names)
    base = _independent_per_query(qrels, first, names)
    expected = stats.ttest_rel([ours[q]["nDCG@10"] for q in qrels], [base[q]["nDCG@10"] for q in qrels]).pvalue
    assert report.subsets["all"].comparison["reranked"]["nDCG@10"].p_value == pytest.approx(expected)
    # --per-query: every metric per query for both systems
    paths = write_outputs(report, output=tmp_path / "r.json", save_run=None, tag="t", per_query=tmp_path / "pq.json")
    assert [p.name for p in paths] == ["r.json", "pq.json"]
    per_query = json.loads((tmp_path / "pq.json").read_text())["per_query"]["all"]
    assert per_query["first_stage"]["q2"]["RR@10"] == pytest.approx(1 / 3)
    for system, values in (("reranked", ours), ("first_stage", base)):
        assert per_query[system].keys() == values.keys()
        for query_id in values:
            assert per_query[system][query_id] == pytest.approx(values[query_id])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["comparison"]["reranked"]["RR@10"]["p_value"] == pytest.approx(0.5)
    assert "t-test" in saved["significance_test"]


def test_metrics_by_document_modality(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    shutil.copy(SHIPPED / "images" / "i01.png", root / "images" / "a.png")
    corpus = [
        {"_id": "d1", "text": "plain one"},
        {"_id": "d2", "text": "plain two"},
        {"_id": "i1", "image": "images/a.png"},
        {"_id": "m1", "title": "caption", "image": "images/a.png"},
    ]
    queries = [{"_id": "q1", "text": "one"}, {"_id": "q2", "text": "two"}]
    dataset = load_dataset(write_dataset(root, corpus, queries, "q1\td2\t1\nq1\ti1\t1\nq2\tm1\t1\nq2\td1\t0\n"))
    assert [dataset.corpus[d].modality for d in ("d1", "i1", "m1")] == ["text", "image", "text+image"]
    first = {q: {"d1": 4.0, "i1": 3.0, "d2": 2.0, "m1": 1.0} for q in ("q1", "q2")}
    report = evaluate(dataset, scorer=FakeScorer(), run=first, top_k_docs=4)
    first_rr = {name: sub.metrics["first_stage"]["RR@10"] for name, sub in report.subsets.items()}
    # all: q1 i1 at rank 2, q2 m1 at rank 4; text: q1 only (d2 below d1); image: q1 only (i1 alone);
    # text+image: q2 only (m1 alone). q2's text qrel is not relevant, so q2 is not in the text subset.
    assert first_rr == pytest.approx({"all": (1 / 2 + 1 / 4) / 2, "text": 1 / 2, "image": 1.0, "text+image": 1.0})
    assert {name: sub.queries for name, sub in report.subsets.items()} == {
        "all": 2, "text": 1, "image": 1, "text+image": 1
    }  # fmt: skip
    saved = report.to_json()["by_modality"]
    assert set(saved) == {"text", "image", "text+image"} and saved["text"]["queries"] == 1
    assert report.per_query_json()["per_query"]["text"]["first_stage"] == {"q1": pytest.approx(
        {"nDCG@10": 1 / math.log2(3), "RR@10": 0.5, "R@10": 1.0, "R@4": 1.0}
    )}  # fmt: skip


def test_formats_markdown_and_csv(tmp_path: Path) -> None:
    import csv
    import io

    from lychee_integrations.eval.report import format_summary

    dataset = load_dataset(SHIPPED)
    report = evaluate(dataset, scorer=FakeScorer(), run=read_run(SHIPPED / "bm25.trec", dataset), top_k_docs=10)
    rows = list(csv.DictReader(io.StringIO(format_summary(report, "csv"))))
    assert list(rows[0]) == ["subset", "system", "metric", "queries", "value", "delta", "p_value"]
    assert {r["subset"] for r in rows} == {"all", "text", "text+image"}  # the shipped set has no image-only page
    nd = {(r["subset"], r["system"]): r for r in rows if r["metric"] == "NDCG@10"}
    qrels = dataset.qrels
    for subset, system in (("all", "first_stage"), ("all", "reranked")):
        per_query = _independent_per_query(qrels, report.runs[system], ["nDCG@10"])
        assert float(nd[subset, system]["value"]) == pytest.approx(sum(v["nDCG@10"] for v in per_query.values()) / 12)
    delta = float(nd["all", "reranked"]["value"]) - float(nd["all", "first_stage"]["value"])
    assert float(nd["all", "reranked"]["delta"]) == pytest.approx(delta)
    assert nd["all", "first_stage"]["delta"] == "" and nd["all", "first_stage"]["p_value"] == ""
    markdown = format_summary(report, "markdown").splitlines()
    assert markdown[0] == "| subset | system | metric | queries | value | delta | p_value |"
    assert len([line for line in markdown if line.startswith("| ")]) == len(rows) + 1
    table = format_summary(report)
    assert table.splitlines()[0].split() == ["subset", "system", "metric", "queries", "value", "delta", "p_value"]
    assert "paired t-test" in table


@pytest.mark.parametrize("verbosity", [[], ["-vv"]])
def test_bm25_is_quiet_unless_verbose(verbosity: list[str], tmp_path: Path) -> None:
    # BM25 runs before the model is needed: a missing model stops the run after it.
    result = lychee(*verbosity, "eval", str(SHIPPED), "--model", str(tmp_path / "no-model"), "--no-progress")
    assert "no-model" in result.stderr
    assert ("DEBUG" in result.stderr) == bool(verbosity), result.stderr


def test_help_example_runs_as_written(tiny_checkpoint: Path) -> None:
    import shlex

    repo = SHIPPED.parent.parent.parent
    help_text = lychee("eval", "--help").stdout
    examples = help_text.split("examples:\n", 1)[1].splitlines()
    for line in examples:  # every shipped file an example names exists
        for token in shlex.split(line.split("#")[0]):
            if token.startswith("examples/"):
                assert (repo / token).exists(), line
    line = next(line for line in examples if line.strip().startswith("lychee eval examples/"))
    argv = shlex.split(line)
    assert argv[0] == "lychee"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(repo), "LYCHEE_MODEL": str(tiny_checkpoint)}
    result = subprocess.run(
        [sys.executable, "-m", "lychee_integrations.cli", *argv[1:]],
        capture_output=True, text=True, timeout=300, env=env, cwd=repo,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("| subset | system |"), result.stdout
    assert "| all | reranked | NDCG@10 |" in result.stdout
