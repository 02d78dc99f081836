"""Rerank a first stage's top k per query with any Scorer and measure both."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from lychee_integrations.eval.dataset import MODALITIES, Dataset
from lychee_integrations.eval.first_stage import Run, bm25_run, top_k
from lychee_integrations.eval.metrics import PAIRED_TEST, Comparison, PerQuery, compare, mean_metrics, per_query_metrics
from lychee_integrations.scoring import Scorer

__all__ = ["ALL", "EvalReport", "Subset", "evaluate", "measure_subset"]

logger = logging.getLogger(__name__)

FIRST_STAGE = "first_stage"
#: The subset of every evaluated query and every document.
ALL = "all"


@dataclass
class Subset:
    """The systems measured on one subset: all queries, or one document modality.

    ``per_query``: ``{system: {query_id: {metric: value}}}``; ``metrics``: their means;
    ``comparison``: ``{reranked system: {metric: Comparison}}`` against the first stage.
    """

    queries: int
    per_query: dict[str, PerQuery]
    metrics: dict[str, dict[str, float]]
    comparison: dict[str, dict[str, Comparison]]

    def to_json(self) -> dict[str, Any]:
        """Return ``{"queries", "metrics", "comparison"}`` (the per-query values go to ``--per-query``)."""
        comparison = {s: {m: c.to_json() for m, c in by.items()} for s, by in self.comparison.items()}
        return {"queries": self.queries, "metrics": self.metrics, "comparison": comparison}


def measure_subset(qrels: dict[str, dict[str, int]], runs: dict[str, Run], k: int) -> Subset:
    """Measure every run on ``qrels`` and compare each one after the first against the first."""
    per_query = {name: per_query_metrics(qrels, run, k) for name, run in runs.items()}
    baseline = next(iter(per_query))
    return Subset(
        queries=len(qrels),
        per_query=per_query,
        metrics={name: mean_metrics(values, k) for name, values in per_query.items()},
        comparison={
            name: compare(values, per_query[baseline], k) for name, values in per_query.items() if name != baseline
        },
    )


def _restrict(
    dataset: Dataset, qrels: dict[str, dict[str, int]], runs: dict[str, Run], modality: str, k: int
) -> Subset | None:
    """Measure one modality: qrels and runs keep only that modality's documents (scores unchanged).

    Queries with no relevant (score > 0) document of the modality are left out; ``None`` when none is left.
    """
    keep = {doc_id for doc_id, doc in dataset.corpus.items() if doc.modality == modality}
    sub_qrels = {}
    for query_id, judged in qrels.items():
        kept = {doc: rel for doc, rel in judged.items() if doc in keep}
        if any(rel > 0 for rel in kept.values()):
            sub_qrels[query_id] = kept
    if not sub_qrels:
        return None
    sub_runs = {
        name: {q: {d: s for d, s in run.get(q, {}).items() if d in keep} for q in sub_qrels}
        for name, run in runs.items()
    }
    return measure_subset(sub_qrels, sub_runs, k)


@dataclass
class EvalReport:
    """What :func:`evaluate` measured: metrics and runs per system, and the settings.

    ``subsets`` holds ``"all"`` first, then each document modality present (``"text"``,
    ``"image"``, ``"text+image"``); ``metrics`` is ``subsets["all"].metrics``.
    """

    metrics: dict[str, dict[str, float]]
    runs: dict[str, Run]
    instructions: dict[str, str]
    settings: dict[str, Any] = field(default_factory=dict)
    subsets: dict[str, Subset] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the JSON written by ``--output``."""
        overall = self.subsets.get(ALL)
        return {
            "settings": self.settings,
            "instructions": self.instructions,
            "metrics": self.metrics,
            "significance_test": PAIRED_TEST,
            "comparison": overall.to_json()["comparison"] if overall else {},
            "by_modality": {name: sub.to_json() for name, sub in self.subsets.items() if name != ALL},
        }

    def per_query_json(self) -> dict[str, Any]:
        """Return the JSON written by ``--per-query``: every metric per query, per system and subset."""
        return {
            "settings": self.settings,
            "per_query": {name: sub.per_query for name, sub in self.subsets.items()},
        }


def evaluate(
    dataset: Dataset,
    *,
    scorer: Scorer,
    run: Run | None = None,
    top_k_docs: int = 50,
    systems: dict[str, tuple[str | None, str | None]] | None = None,
    progress: bool = False,
) -> EvalReport:
    """Rerank each query's first-stage top k with ``scorer`` (one call per query) and measure.

    Args:
        dataset: From :func:`~lychee_integrations.eval.load_dataset`.
        scorer: Any :class:`~lychee_integrations.scoring.Scorer` (engine, remote, fake).
        run: The first stage; BM25 over the corpus text when ``None``.
        top_k_docs: How many first-stage documents to rerank per query.
        systems: ``{name: (task, instruction)}``; one reranked system ``"reranked"`` with the
            default instruction when ``None``.
        progress: Show a tqdm bar with ETA over queries on stderr.

    Returns:
        The report; ``metrics`` holds ``first_stage`` and each reranked system. Queries without
        qrels are skipped and counted in ``settings["skipped_queries"]``.

    Raises:
        DatasetError: BM25 was asked for and a query has no text.
        InvalidInputError: The scorer refused an input.

    Example:
        >>> report = evaluate(load_dataset("examples/data/eval"), scorer=FakeScorer())  # doctest: +SKIP

    """
    from tqdm import tqdm

    systems = systems or {"reranked": (None, None)}
    first = run if run is not None else bm25_run(dataset, top_k_docs)
    query_ids = [q for q in dataset.queries if q in dataset.qrels]
    skipped = len(dataset.queries) - len(query_ids)
    if skipped:
        logger.warning(
            "%d of %d queries have no qrels in split %r and are skipped", skipped, len(dataset.queries), dataset.split
        )
    # What each system applies; the scorer reports it (a server's own default when none is sent).
    instructions: dict[str, str] = {}
    reranked: dict[str, Run] = {name: {} for name in systems}
    first_cut: Run = {}
    pairs = empty = 0
    for query_id in tqdm(query_ids, desc="queries", unit="query", file=sys.stderr, disable=not progress):
        candidates = top_k(first.get(query_id, {}), top_k_docs)
        first_cut[query_id] = {doc: first[query_id][doc] for doc in candidates}
        if not candidates:
            empty += 1  # counted as a miss (every metric 0) for every system
            continue
        query = dataset.queries[query_id].as_input()
        documents = [dataset.corpus[doc].as_input() for doc in candidates]
        for name, (task, text) in systems.items():
            scores, _, applied = scorer.score_with_usage(query, documents, task=task, instruction=text)
            instructions.setdefault(name, applied or scorer.default_instruction or "(the server's default)")
            reranked[name][query_id] = dict(zip(candidates, (float(s) for s in scores), strict=True))
            pairs += len(candidates)
    qrels = {q: dataset.qrels[q] for q in query_ids}
    runs = {FIRST_STAGE: first_cut, **reranked}
    subsets = {ALL: measure_subset(qrels, runs, top_k_docs)}
    for modality in MODALITIES:
        if any(doc.modality == modality for doc in dataset.corpus.values()):
            subset = _restrict(dataset, qrels, runs, modality, top_k_docs)
            if subset is not None:
                subsets[modality] = subset
    settings = {
        "model": scorer.model_name,
        "dataset": str(dataset.root),
        "split": dataset.split,
        "top_k": top_k_docs,
        "first_stage": "run" if run is not None else "bm25",
        "queries": len(dataset.queries),
        "evaluated_queries": len(query_ids),
        "skipped_queries": skipped,
        "queries_without_candidates": empty,
        "documents": len(dataset.corpus),
        "scored_pairs": pairs,
    }
    for name, (task, text) in systems.items():  # systems that scored nothing still name their instruction
        if name not in instructions:
            resolved = None if task is None and text is None else scorer.registry.resolve(task, text)
            instructions[name] = resolved or scorer.default_instruction or "(the server's default)"
    return EvalReport(subsets[ALL].metrics, runs, instructions, settings, subsets)
