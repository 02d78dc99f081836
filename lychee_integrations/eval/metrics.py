"""The metrics, computed by ir-measures (on pytrec_eval, the C trec_eval) from qrels and a run.

Per-query values come from ir-measures too; the paired significance test on them is scipy's
two-sided paired t-test (:func:`scipy.stats.ttest_rel`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from lychee_integrations._deps import require

__all__ = ["PAIRED_TEST", "Comparison", "compare", "compute_metrics", "metric_names", "per_query_metrics"]

#: The name of the paired test, as reported in the table and the JSON.
PAIRED_TEST = "paired t-test (scipy.stats.ttest_rel, two-sided)"

#: ``{query_id: {metric name: value}}``.
PerQuery = dict[str, dict[str, float]]


def metric_names(k: int) -> list[str]:
    """NDCG@10, MRR@10 (``RR@10``), Recall@10 and Recall@k, in ir-measures' notation."""
    names = ["nDCG@10", "RR@10", "R@10"]
    if k != 10:
        names.append(f"R@{k}")
    return names


def per_query_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], k: int) -> PerQuery:
    """Every metric for every query of ``qrels`` (a query absent from ``run`` scores 0).

    Example:
        >>> per_query_metrics({"q": {"a": 1}}, {"q": {"a": 0.2, "b": 0.9}}, 10)["q"]["RR@10"]
        0.5

    """
    ir_measures = require("ir_measures", "eval")
    names = metric_names(k)
    measures: list[Any] = [ir_measures.parse_measure(name) for name in names]
    full_run = {query_id: dict(run.get(query_id, {})) for query_id in qrels}
    values: PerQuery = {query_id: dict.fromkeys(names, 0.0) for query_id in qrels}
    for metric in ir_measures.iter_calc(measures, qrels, full_run):
        values[metric.query_id][str(metric.measure)] = float(metric.value)
    return values


def mean_metrics(per_query: PerQuery, k: int) -> dict[str, float]:
    """Return the mean of each metric over the queries of ``per_query`` (0 for none)."""
    return {
        name: sum(v[name] for v in per_query.values()) / len(per_query) if per_query else 0.0
        for name in metric_names(k)
    }


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
    return mean_metrics(per_query_metrics(qrels, run, k), k)


@dataclass(frozen=True)
class Comparison:
    """A system against the baseline on one metric: mean difference and paired t-test p-value."""

    delta: float
    p_value: float | None  # None: under 2 queries, or the same value on every query

    def to_json(self) -> dict[str, Any]:
        """``{"delta", "p_value", "test"}``."""
        return {"delta": self.delta, "p_value": self.p_value, "test": PAIRED_TEST}


def compare(system: PerQuery, baseline: PerQuery, k: int) -> dict[str, Comparison]:
    """``system`` minus ``baseline`` per metric, with a paired t-test over the queries of ``baseline``.

    Example:
        >>> c = compare({"q": {"nDCG@10": 1.0, "RR@10": 1.0, "R@10": 1.0}},
        ...             {"q": {"nDCG@10": 0.5, "RR@10": 0.5, "R@10": 1.0}}, 10)
        >>> c["RR@10"].delta, c["RR@10"].p_value
        (0.5, None)

    """
    stats = require("scipy.stats", "eval")
    queries = list(baseline)
    result = {}
    for name in metric_names(k):
        ours = [system.get(q, {}).get(name, 0.0) for q in queries]
        theirs = [baseline[q][name] for q in queries]
        delta = (sum(ours) - sum(theirs)) / len(queries) if queries else 0.0
        p_value: float | None = None
        if len(queries) >= 2 and any(a != b for a, b in zip(ours, theirs, strict=True)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: t is infinite, p is 0
                p = float(stats.ttest_rel(ours, theirs).pvalue)
            p_value = None if math.isnan(p) else p
        result[name] = Comparison(delta, p_value)
    return result
