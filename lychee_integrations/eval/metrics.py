"""The metrics, computed by ir-measures (on pytrec_eval, the C trec_eval) from qrels and a run."""

from __future__ import annotations

from typing import Any

from lychee_integrations._deps import require

__all__ = ["compute_metrics", "metric_names"]


def metric_names(k: int) -> list[str]:
    """NDCG@10, MRR@10 (``RR@10``), Recall@10 and Recall@k, in ir-measures' notation."""
    names = ["nDCG@10", "RR@10", "R@10"]
    if k != 10:
        names.append(f"R@{k}")
    return names


def compute_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], k: int) -> dict[str, float]:
    """Mean of each metric over the queries that have qrels (a query absent from ``run`` scores 0).

    Args:
        qrels: ``{query_id: {doc_id: relevance}}``.
        run: ``{query_id: {doc_id: score}}``.
        k: The reranking depth, for Recall@k.

    Returns:
        ``{metric name: mean value}``.

    Example:
        >>> compute_metrics({"q": {"a": 1}}, {"q": {"a": 0.2, "b": 0.9}}, 10)["RR@10"]
        0.5

    """
    ir_measures = require("ir_measures", "eval")
    measures: list[Any] = [ir_measures.parse_measure(name) for name in metric_names(k)]
    full_run = {query_id: dict(run.get(query_id, {})) for query_id in qrels}
    per_query: dict[str, dict[str, float]] = {str(m): {} for m in measures}
    for metric in ir_measures.iter_calc(measures, qrels, full_run):
        per_query[str(metric.measure)][metric.query_id] = float(metric.value)
    return {
        name: sum(per_query[name].get(query_id, 0.0) for query_id in qrels) / len(qrels) if qrels else 0.0
        for name in per_query
    }
