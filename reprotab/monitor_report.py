"""`reprotab monitor`: the drift report of a new batch or of the prediction log.

    reprotab monitor --batch data/batches/2026-11.parquet
    reprotab monitor --from-log logs/predictions

Reads   the batch (CSV/Parquet; or the `features` of every JSONL row in --from-log, one row per
        request: shadow copies of a request are dropped), --model, --reference (the prepared
        training split), --holdout (the test split: the reference of the model's scores),
        --metrics (evaluate's metrics.json; its `test` block), evaluate's importance table if
        present (else the model's own importance), params.yaml (`monitor`, `metric`, `seed`,
        `prepare.text_to_number_min_share`)
Writes  <out>/<batch name>/drift.json, drift.md and figures/*.png (reference vs batch shares of
        the drifted features, most important first, and of the model's scores)

Drift never fails the command: it prints `retrain: true|false` and the reasons and exits 0.
Bad input exits 2 with one message. The core is reprotab/monitoring.py.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reprotab import served
from reprotab.data import atomic_path, fresh_dir, read_json, read_table, write_json
from reprotab.drift import Bins
from reprotab.errors import UserError, problem
from reprotab.importance import model_importance
from reprotab.monitoring import Verdict, monitor
from reprotab.params import load_params
from reprotab.runner import stage_main

MAX_FIGURES = 8  # drifted features drawn, most important first
log = logging.getLogger(__name__)


def read_log(directory: str | Path) -> pd.DataFrame:
    """The served rows' raw features from every *.jsonl file of the prediction log (file name order);
    one row per request_id (a shadow copy of a request is the same row)."""
    directory = Path(directory)
    files = sorted(directory.glob("*.jsonl")) if directory.is_dir() else []
    if not files:
        raise UserError(problem("--from-log", "holds no *.jsonl prediction log files", str(directory)))
    records, seen = [], set()
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                features, request = row["features"], row.get("request_id")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise UserError(
                    problem(f"{path}:{number}", "is not a prediction log row with `features`", line[:80])
                ) from exc
            if row.get("route") == "shadow" or (request is not None and request in seen):
                continue
            seen.add(request)
            records.append(features)
    return pd.DataFrame.from_records(records)


def load_importance(table: Path, model: served.TabularModel) -> pd.Series | None:
    """Permutation importance from evaluate's table when present, else the model's own."""
    if table.is_file():
        frame = pd.read_csv(table)
        usable = [c for c in ("permutation", "model") if c in frame.columns and frame[c].notna().any()]
        if "feature" in frame.columns and usable:
            return frame.set_index("feature")[usable[0]].astype(float).fillna(0.0)
        log.warning("%s has no importance column; using the model's own importance", table)
    return model_importance(model)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict[str, Any], *, name: str, figures: list[str]) -> str:
    t = report["thresholds"]
    lines = [
        f"# Drift report: {name}",
        "",
        f"**retrain: {str(report['retrain']).lower()}**",
        "",
        *[f"- {reason}" for reason in report["reasons"]],
        "",
        f"Batch {report['rows']:,} rows vs training reference {report['reference_rows']:,} rows. A feature drifts when "
        f"PSI >= {t['psi_moderate']} and its test's p < {t['alpha']}/{len(report['features'])} = "
        f"{t['alpha_per_feature']:.2g}; strong from PSI {t['psi_strong']}. Features ranked by {report['ranked_by']}.",
        "",
        "## Features",
        "",
        "| feature | importance | PSI | test | p | missing ref → batch | drift |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for column, f in report["features"].items():
        mark = f"**{f['severity']}**" if f["drifted"] else "none"
        label = f"**{column}**" if f["important"] else column
        lines.append(
            f"| {label} | {_fmt(f['importance'], 3)} | {_fmt(f['psi'])} | {f['test']} | {_fmt(f['p_value'], 3)} | "
            f"{f['reference_missing']:.1%} → {f['batch_missing']:.1%} | {mark} |"
        )
    p = report["prediction"]
    lines += [
        "",
        "## Prediction drift",
        "",
        f"Score: {p['score']}, {p['scored_rows']:,} batch rows (seeded sample) vs {p['holdout_rows']:,} test rows. "
        f"PSI {_fmt(p['psi'])}, {p['test']} p {_fmt(p['p_value'], 3)}: {'drifted' if p['drifted'] else 'stable'}.",
    ]
    perf = report["performance"]
    if perf:
        head = perf["headline"]
        lines += ["", "## Performance", "", f"{perf['rows']:,} labeled rows. Headline **{perf['metric']}**: "]
        lines[-1] += (
            f"batch {_fmt(head['batch'])} (95% bootstrap interval {head['interval_95']}, "
            f"{head['bootstrap']} resamples) "
            f"vs test {_fmt(head['test'])}: {'dropped' if perf['dropped'] else 'within tolerance'}."
        )
        lines += ["", "| metric | batch | test |", "| --- | ---: | ---: |"]
        for metric, value in perf["batch"].items():
            lines.append(f"| {metric} | {_fmt(value)} | {_fmt((perf['test'] or {}).get(metric))} |")
    if figures:
        lines += ["", "## Figures", "", *[f"![{f}](figures/{f}.png)" for f in figures]]
    return "\n".join(lines) + "\n"


def bins_figure(bins: Bins, *, title: str, reference: str = "reference (training)") -> Figure:
    """Reference vs batch share of each bin, side by side."""
    reference_shares, batch = bins.shares()
    figure = Figure(figsize=(max(6.4, 0.55 * len(bins.labels) + 2), 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    positions = np.arange(len(bins.labels))
    ax.bar(positions - 0.2, reference_shares, 0.4, label=reference)
    ax.bar(positions + 0.2, batch, 0.4, label="batch")
    ax.set_xticks(positions, bins.labels, rotation=40, ha="right", fontsize="small")
    ax.set(ylabel="share of rows", title=title)
    ax.legend(loc="best", fontsize="small")
    return figure


def figures(verdict: Verdict) -> dict[str, Figure]:
    report, drawn = verdict.report, {}
    for column in report["drifted"][:MAX_FIGURES]:  # already ranked by importance
        f = report["features"][column]
        title = f"{column}: PSI {f['psi']:.3f}, {f['test']} p {f['p_value']:.2g} ({f['severity']})"
        drawn[column] = bins_figure(verdict.bins[column], title=title)
    p = report["prediction"]
    drawn["prediction"] = bins_figure(
        verdict.bins["(prediction)"],
        title=f"Model scores ({p['score']}): PSI {p['psi']:.3f}, p {p['p_value']:.2g}",
        reference="test split",
    )
    return drawn


def write(out: Path, verdict: Verdict, *, name: str) -> None:
    drawn = figures(verdict)
    with fresh_dir(out / "figures") as folder:
        for figure_name, figure in drawn.items():
            figure.savefig(folder / f"{figure_name}.png")
    write_json(verdict.report, out / "drift.json")
    with atomic_path(out / "drift.md") as tmp:
        tmp.write_text(markdown(verdict.report, name=name, figures=list(drawn)), encoding="utf-8")


@stage_main("monitor", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab monitor", description="Drift report of a batch or the log.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--batch", help="CSV or Parquet file of new rows (raw, as exported)")
    source.add_argument("--from-log", help="prediction log directory (*.jsonl)")
    parser.add_argument("--model", default="models/model.joblib")
    parser.add_argument("--reference", default="data/prepared/train.parquet")
    parser.add_argument("--holdout", default="data/prepared/test.parquet")
    parser.add_argument("--metrics", default="reports/evaluate/metrics.json")
    parser.add_argument("--importance", default="reports/evaluate/tables/importance.csv")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="reports/monitor")
    parser.add_argument("--name", help="report folder name (default: the batch file's stem, or log-<dir name>)")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    model = served.load(args.model)
    if args.batch:
        batch, name = read_table(args.batch, where="--batch"), args.name or Path(args.batch).stem
    else:
        batch, name = read_log(args.from_log), args.name or f"log-{Path(args.from_log).resolve().name}"
    metrics_path = Path(args.metrics)
    test_metrics = read_json(metrics_path).get("test") if metrics_path.is_file() else None
    if test_metrics is None:
        log.warning("%s not found: performance is reported without test metrics to compare", metrics_path)
    verdict = monitor(
        model=model,
        reference=read_table(args.reference, where="--reference"),
        batch=batch,
        holdout=read_table(args.holdout, where="--holdout"),
        config=params.monitor,
        metric=params.metric,
        seed=params.seed,
        min_share=params.prepare.text_to_number_min_share,
        importance=load_importance(Path(args.importance), model),
        test_metrics=test_metrics,
    )
    out = Path(args.out) / name
    write(out, verdict, name=name)
    report = verdict.report
    log.info(
        "%d rows: %d of %d features drifted (%s); prediction PSI %.3f; report in %s",
        report["rows"],
        len(report["drifted"]),
        len(report["features"]),
        ", ".join(report["drifted"]) or "none",
        report["prediction"]["psi"],
        out,
    )
    print(f"retrain: {str(verdict.retrain).lower()}")
    for reason in verdict.reasons:
        print(f"  - {reason}")


if __name__ == "__main__":
    main()
