"""`reprotab monitor`: the drift report of a new batch or of the prediction log.

    reprotab monitor --batch data/batches/2026-11.parquet [--stage prod | --version v1.2.0]
    reprotab monitor --batch data/daily/            (a folder: each new partition checked alone)
    reprotab monitor --from-log logs/predictions [--since 2026-11-01 --until 2026-12-01] [--version v1.2.0] [--shadow]
                     [--labels outcomes.csv]

The model judged and what it is judged against come from one place, `inputs(...)`
(reprotab/monitoring/inputs.py):
- by default the workspace: --model, --drift-reference (models/reference.json: the training
  split and the model's test scores, summarized when it was trained; when it is missing or of
  another model file, it is built from --reference, the prepared training split, and --holdout,
  the test split), --metrics (evaluate's metrics.json; its
  `test` block) and --importance (evaluate's table, else the model's own importance); the
  version is the model file's `local:<digest>` (what the service logs for it);
- with --stage or --version: that registered model (reprotab.registry.versions.load) and the same paths
  read at ITS commit (data through DVC, metrics through git), so the verdict is about the model
  that serves, not whatever the workspace holds now. A `local:<digest>` --version names the
  workspace model (it must match --model).
Reads   the batch (CSV/Parquet), or with --from-log every served row of the log's *.jsonl files
        (routes champion and canary; shadow rows are never monitored), kept from --since
        (inclusive) to --until (exclusive), ISO dates or times in UTC, and of --version; params.yaml
        (`monitor`, `metric`, `seed`, `prepare.text_to_number_min_share`)
Writes  <out>/<batch name>/drift.json, drift.md and figures/*.png (reference vs batch shares of
        the drifted features, most important first, and of the model's scores). The report names
        the model version and commit it judged; with --from-log it also counts the rows by route
        and version, and with --shadow it compares the shadow model with the served one on the
        same rows (label agreement, score differences). With --labels (labels that arrived after the
        predictions, and the log's feedback files: reprotab/monitoring/outcomes.py) its `live` block
        holds each route's metric on its labelled rows with a bootstrap interval, the canary's
        difference from the champion, and calibration per version (params `canary`).

Drift never fails the command: it prints `stop: <blocker>` lines (label drift, undefined
metrics: nothing may retrain on this batch without a human), then `retrain: true|false` and the
reasons, and exits 0. Bad input exits 2 with one message. The core is reprotab/monitoring/verdict.py;
the page and its figures are reprotab/monitoring/page.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths
from reprotab.data.tables import atomic_path, fresh_dir, read_table, write_json
from reprotab.errors import UserError, problem
from reprotab.model import served
from reprotab.monitoring import outcomes, partitions
from reprotab.monitoring.inputs import MonitorInputs, inputs
from reprotab.monitoring.page import figures, markdown
from reprotab.monitoring.partitions import monitor_folder
from reprotab.monitoring.verdict import Verdict, monitor
from reprotab.params.loader import Params, load_params
from reprotab.runner import stage_main
from reprotab.serving import prediction_log

log = logging.getLogger(__name__)
__all__ = ["MonitorInputs", "inputs", "main", "run", "write"]  # inputs: what other code monitors with


def write(out: Path, verdict: Verdict, *, name: str) -> None:
    drawn = figures(verdict)
    with fresh_dir(out / "figures") as folder:
        for figure_name, figure in drawn.items():
            figure.savefig(folder / f"{figure_name}.png")
    write_json(verdict.report, out / "drift.json")
    with atomic_path(out / "drift.md") as tmp:
        tmp.write_text(markdown(verdict.report, name=name, figures=list(drawn)), encoding="utf-8")


def run(
    source: MonitorInputs,
    batch: pd.DataFrame,
    *,
    params: Params,
    out: Path,
    name: str,
    extra: dict[str, Any] | None = None,
    where: str = "batch",
) -> Verdict:
    """Monitor `batch` against `source` (see `inputs`) with params' `monitor` section, add `extra`
    to the report and write it to `out`; the verdict."""
    verdict = monitor(
        model=source.model,
        reference=source.reference,
        batch=batch,
        config=params.monitor,
        metric=params.metric,
        seed=params.seed,
        min_share=params.prepare.text_to_number_min_share,
        importance=source.importance,
        test_metrics=source.test_metrics,
        judged=source.judged(),
        where=where,
    )
    verdict.report.update(extra or {})
    write(out, verdict, name=name)
    report = verdict.report
    log.info(
        "model %s (commit %s): %d rows, %d of %d features drifted (%s); prediction PSI %.3f; %d blocker(s); "
        "report in %s",
        source.version,
        (source.commit or "unknown")[:12],
        report["rows"],
        len(report["drifted"]),
        len(report["features"]),
        ", ".join(report["drifted"]) or "none",
        report["prediction"]["psi"],
        len(verdict.blockers),
        out,
    )
    return verdict


def from_log(
    args: argparse.Namespace, model: served.TabularModel, params: Params
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The served rows of the log that the filters keep, and the report's `log` (and `shadow`, `live`) blocks."""
    since = prediction_log.utc_time(args.since, where="--since")
    until = prediction_log.utc_time(args.until, where="--until")
    rows = prediction_log.read_rows(args.from_log)
    chosen, shadow = prediction_log.select(rows, since=since, until=until, version=args.version)
    filters = {"since": args.since, "until": args.until, "version": args.version}
    extra: dict[str, Any] = {
        "log": {
            "directory": str(args.from_log),
            "rows": len(chosen),
            "requests": int(chosen["request_id"].nunique()),
            "routes": {k: int(v) for k, v in chosen["route"].value_counts().items()},
            "versions": {str(k): int(v) for k, v in chosen["version"].value_counts().items()},
            "first": None if chosen["time"].isna().all() else chosen["time"].min().isoformat(),
            "last": None if chosen["time"].isna().all() else chosen["time"].max().isoformat(),
            "filters": {k: v for k, v in filters.items() if v is not None},
            "shadow_rows": int((rows["route"] == "shadow").sum()),
        }
    }
    if args.shadow:
        positive = str(model.classes[model.positive_index()]) if model.binary else None
        extra["shadow"] = prediction_log.compare_shadow(chosen, shadow, positive=positive)
    if args.labels:
        joined = outcomes.gather(chosen, params=params, directory=args.from_log, labels=args.labels)
        positive = str(model.classes[model.positive_index()]) if model.binary else None
        extra["live"] = outcomes.live(joined, params=params, positive=positive)
    return prediction_log.features(chosen), extra


@stage_main("monitor", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab monitor", description="Drift report of a batch or the log.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--batch", help="CSV or Parquet file of new rows (raw, as exported), or a folder of them: each checked alone"
    )
    source.add_argument("--from-log", help="prediction log directory (*.jsonl)")
    judged = parser.add_mutually_exclusive_group()
    judged.add_argument("--stage", help="judge the registered model this stage holds (e.g. prod), with its own data")
    judged.add_argument(
        "--version", help="judge this registered version (vX.Y.Z); with --from-log, only the rows it served"
    )
    parser.add_argument("--repo", default=".", help="the git + DVC repository of the registry (default .)")
    parser.add_argument("--since", help="--from-log: rows from this UTC date or time on (ISO, inclusive)")
    parser.add_argument("--until", help="--from-log: rows before this UTC date or time (ISO, exclusive)")
    parser.add_argument(
        "--shadow", action="store_true", help="--from-log: compare the shadow model with the served one"
    )
    parser.add_argument(
        "--labels", help="--from-log: labels (CSV/Parquet) of served rows: live metrics per route (params canary)"
    )
    parser.add_argument("--model", default=paths.MODEL)
    parser.add_argument(
        "--drift-reference",
        default=paths.DRIFT_REFERENCE,
        help="the drift reference the pipeline stored with the model",
    )
    parser.add_argument(
        "--reference", default=paths.TRAIN, help="the training split, when there is no stored reference"
    )
    parser.add_argument("--holdout", default=paths.TEST, help="the test split, when there is no stored reference")
    parser.add_argument("--metrics", default=paths.EVALUATE_METRICS)
    parser.add_argument("--importance", default=paths.IMPORTANCE)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=paths.MONITOR_REPORTS)
    parser.add_argument("--name", help="report folder name (default: the batch file's stem, or log-<dir name>)")
    args = parser.parse_args(argv)
    if args.batch and (args.since or args.until or args.shadow or args.labels):
        raise UserError(problem("--since/--until/--shadow/--labels", "apply to --from-log only", "--batch"))
    params = load_params(args.params)
    chosen = inputs(
        repo=args.repo,
        stage=args.stage,
        version=args.version,
        model=args.model,
        drift_reference=args.drift_reference,
        reference=args.reference,
        holdout=args.holdout,
        metrics=args.metrics,
        importance=args.importance,
    )
    extra: dict[str, Any]
    if args.batch and Path(args.batch).is_dir():  # a folder of partitions: each its own batch, new ones only
        name = args.name or Path(args.batch).resolve().name
        entries = monitor_folder(chosen, args.batch, params=params, out=Path(args.out) / name, check=run)
        print(f"model: {chosen.version} (commit {(chosen.commit or 'unknown')[:12]})")
        print("\n".join(partitions.summary_lines(entries)))
        return
    if args.batch:
        batch, name, extra = read_table(args.batch, where="--batch"), args.name or Path(args.batch).stem, {}
    else:
        batch, extra = from_log(args, chosen.model, params)
        name = args.name or f"log-{Path(args.from_log).resolve().name}"
    verdict = run(chosen, batch, params=params, out=Path(args.out) / name, name=name, extra=extra)
    print(f"model: {chosen.version} (commit {(chosen.commit or 'unknown')[:12]})")
    for blocker in verdict.blockers:
        print(f"stop: {blocker}")
    print(f"retrain: {str(verdict.retrain).lower()}")
    for reason in verdict.reasons:
        print(f"  - {reason}")
    if "live" in extra:
        print("\n".join(outcomes.summary_lines(extra["live"])))


if __name__ == "__main__":
    main()
