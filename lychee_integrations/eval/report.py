"""The terminal table and the output files (written atomically: all of them, or none)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from lychee_integrations.eval.first_stage import Run, top_k
from lychee_integrations.eval.runner import EvalReport

__all__ = ["format_table", "format_trec", "run_paths", "write_outputs"]

_LABELS = {"nDCG@10": "NDCG@10", "RR@10": "MRR@10", "R@10": "Recall@10"}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("R@", "Recall@"))


def format_table(report: EvalReport) -> str:
    """First stage and each reranked system, one row each, one column per metric."""
    systems = list(report.metrics)
    names = list(report.metrics[systems[0]])
    width = max(len(s) for s in systems)
    header = f"{'system':<{width}}  " + "  ".join(f"{_label(n):>10}" for n in names)
    lines = [header, "-" * len(header)]
    for system in systems:
        values = "  ".join(f"{report.metrics[system][n]:>10.4f}" for n in names)
        lines.append(f"{system:<{width}}  {values}")
    settings = report.settings
    lines.append(
        f"{settings['evaluated_queries']} queries evaluated ({settings['skipped_queries']} without qrels skipped), "
        f"top {settings['top_k']} of {settings['first_stage']}, model {settings['model']}"
    )
    return "\n".join(lines)


def format_trec(run: Run, tag: str) -> str:
    """Render a six-column TREC run; scores keep full float precision so metrics recompute exactly."""
    lines = []
    for query_id, ranking in run.items():
        for rank, doc_id in enumerate(top_k(ranking, len(ranking)), start=1):
            lines.append(f"{query_id} Q0 {doc_id} {rank} {ranking[doc_id]!r} {tag}")
    return "\n".join(lines) + ("\n" if lines else "")


def run_paths(path: Path, systems: list[str]) -> dict[str, Path]:
    """Map each reranked system to the file ``--save-run PATH`` writes.

    PATH itself for one system, ``<stem>.<system><suffix>`` next to it for several.
    """
    if len(systems) == 1:
        return {systems[0]: path}
    return {name: path.with_name(f"{path.stem}.{name}{path.suffix}") for name in systems}


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_outputs(report: EvalReport, *, output: Path | None, save_run: Path | None, tag: str) -> list[Path]:
    """Write the JSON and the run files, each atomically, after the evaluation has finished."""
    written = []
    if save_run is not None:
        systems = [name for name in report.runs if name != "first_stage"]
        for name, path in run_paths(save_run, systems).items():
            _atomic_write(path, format_trec(report.runs[name], f"{tag}.{name}" if len(systems) > 1 else tag))
            written.append(path)
    if output is not None:
        _atomic_write(output, json.dumps(report.to_json(), indent=2) + "\n")
        written.append(output)
    return written
