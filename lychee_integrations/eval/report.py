"""The summary (table, Markdown or CSV) and the output files (written atomically: all of them, or none)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from lychee_integrations.eval.first_stage import Run, top_k
from lychee_integrations.eval.metrics import PAIRED_TEST
from lychee_integrations.eval.runner import EvalReport

__all__ = ["FORMATS", "format_summary", "format_table", "format_trec", "run_paths", "summary_rows", "write_outputs"]

#: The ``--format`` choices; ``table`` is the default.
FORMATS = ("table", "markdown", "csv")
COLUMNS = ("subset", "system", "metric", "queries", "value", "delta", "p_value")

_LABELS = {"nDCG@10": "NDCG@10", "RR@10": "MRR@10", "R@10": "Recall@10"}


def summary_rows(report: EvalReport) -> list[dict[str, object]]:
    """One row per subset, system and metric: value, and for reranked systems delta and p-value.

    ``delta`` is the system's mean minus the first stage's, ``p_value`` the paired t-test's over the
    subset's queries; both ``None`` for the first stage (``p_value`` also when it is undefined).
    """
    rows: list[dict[str, object]] = []
    for subset_name, subset in report.subsets.items():
        for system, means in subset.metrics.items():
            for metric, value in means.items():
                comparison = subset.comparison.get(system, {}).get(metric)
                rows.append(
                    {
                        "subset": subset_name,
                        "system": system,
                        "metric": _LABELS.get(metric, metric.replace("R@", "Recall@")),
                        "queries": subset.queries,
                        "value": value,
                        "delta": comparison.delta if comparison else None,
                        "p_value": comparison.p_value if comparison else None,
                    }
                )
    return rows


def _cells(row: dict[str, object]) -> list[str]:
    value, delta, p_value = row["value"], row["delta"], row["p_value"]
    return [
        str(row["subset"]),
        str(row["system"]),
        str(row["metric"]),
        str(row["queries"]),
        f"{value:.4f}",
        "" if delta is None else f"{delta:+.4f}",
        ("n/a" if delta is not None else "") if p_value is None else f"{p_value:.4f}",
    ]


def _footer(report: EvalReport) -> list[str]:
    settings = report.settings
    return [
        f"{settings['evaluated_queries']} queries evaluated ({settings['skipped_queries']} without qrels skipped), "
        f"top {settings['top_k']} of {settings['first_stage']}, model {settings['model']}",
        f"delta: system minus first_stage; p_value: {PAIRED_TEST} on the per-query values",
        "(n/a: under 2 queries or no difference); subsets text, image, text+image: qrels and runs restricted "
        "to those documents",
    ]


def format_table(report: EvalReport) -> str:
    """Render the summary as an aligned terminal table, one row per subset, system and metric."""
    header = list(COLUMNS)
    body = [_cells(row) for row in summary_rows(report)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    left = 3  # subset, system and metric align left; the numbers right

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule, *(line(r).rstrip() for r in body), *_footer(report)])


def format_markdown(report: EvalReport) -> str:
    """Render the summary as a GitHub Markdown table, the settings and test named below it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 4) + "|"]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in summary_rows(report)]
    return "\n".join([*lines, "", *_footer(report)])


def format_csv(report: EvalReport) -> str:
    """Render the summary as CSV, a header row and full float precision (empty cells where there is no value)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in summary_rows(report):
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def format_summary(report: EvalReport, fmt: str = "table") -> str:
    """Render the summary in one of :data:`FORMATS`."""
    if fmt == "markdown":
        return format_markdown(report)
    if fmt == "csv":
        return format_csv(report).rstrip("\n")
    return format_table(report)


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


def write_outputs(
    report: EvalReport, *, output: Path | None, save_run: Path | None, tag: str, per_query: Path | None = None
) -> list[Path]:
    """Write the JSON files and the run files, each atomically, after the evaluation has finished."""
    written = []
    if save_run is not None:
        systems = [name for name in report.runs if name != "first_stage"]
        for name, path in run_paths(save_run, systems).items():
            _atomic_write(path, format_trec(report.runs[name], f"{tag}.{name}" if len(systems) > 1 else tag))
            written.append(path)
    for target, data in ((output, report.to_json), (per_query, report.per_query_json)):
        if target is not None:
            _atomic_write(target, json.dumps(data(), indent=2) + "\n")
            written.append(target)
    return written
