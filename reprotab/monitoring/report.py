"""`reprotab monitor`: the drift report of a new batch or of the prediction log.

    reprotab monitor --batch data/batches/2026-11.parquet [--stage prod | --version v1.2.0]
    reprotab monitor --from-log logs/predictions [--since 2026-11-01 --until 2026-12-01] [--version v1.2.0] [--shadow]

The model judged and what it is judged against come from one place, `inputs(...)`:
- by default the workspace: --model, --reference (the prepared training split), --holdout (the
  test split: the reference of the model's scores), --metrics (evaluate's metrics.json; its
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
        same rows (label agreement, score differences).

Drift never fails the command: it prints `stop: <blocker>` lines (label drift, undefined
metrics: nothing may retrain on this batch without a human), then `retrain: true|false` and the
reasons, and exits 0. Bad input exits 2 with one message. The core is reprotab/monitoring/verdict.py.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reprotab import paths, vcs
from reprotab.data.tables import atomic_path, fresh_dir, read_table, write_json
from reprotab.errors import UserError, problem
from reprotab.evaluate.importance import model_importance
from reprotab.model import served
from reprotab.monitoring.verdict import Verdict, monitor
from reprotab.params.loader import Params, load_params
from reprotab.runner import stage_main
from reprotab.serving import prediction_log
from reprotab.serving.scoring import local_version, metadata_beside
from reprotab.stats.drift import Bins

MAX_FIGURES = 8  # drifted features drawn, most important first
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorInputs:
    """The model judged and what it is judged against (see `inputs`)."""

    model: served.TabularModel
    version: str | None  # vX.Y.Z, or local:<digest> for a model file
    commit: str | None  # the commit the model was trained at (None when unknown)
    source: str  # where it all came from, for the report
    reference: pd.DataFrame  # the prepared training split
    holdout: pd.DataFrame  # the test split
    test_metrics: dict[str, Any] | None  # evaluate's `test` block
    importance: pd.Series | None

    def judged(self) -> dict[str, Any]:
        return {"version": self.version, "commit": self.commit, "source": self.source}


def inputs(
    *,
    repo: str | Path = ".",
    stage: str | None = None,
    version: str | None = None,
    model: str | Path = paths.MODEL,
    reference: str = paths.TRAIN,
    holdout: str = paths.TEST,
    metrics: str = paths.EVALUATE_METRICS,
    importance: str = paths.IMPORTANCE,
) -> MonitorInputs:
    """What to monitor: the workspace's model and files (paths as given), or with `stage` or
    `version` the registered model and the files at its commit in `repo` (paths inside the repo)."""
    if stage and version:
        raise UserError(problem("monitor", "takes --stage or --version, not both", f"{stage}, {version}"))
    if not stage and not (version and not version.startswith("local:")):
        return _workspace(Path(model), version, reference, holdout, metrics, importance)
    from reprotab.registry import versions as registry  # GTO and DVC's API load only when asked for

    found, info = registry.load(stage=stage, version=version, repo=str(repo))
    commit = info["commit"]
    text = _git_show(repo, commit, metrics)
    test_metrics = read_metrics(text, where=f"{metrics} at {commit[:8]}")
    table = _open_at(repo, commit, importance)
    return MonitorInputs(
        model=found,
        version=info["version"],
        commit=commit,
        source=f"registry {f'stage {stage}' if stage else 'version'} {info['version']}, commit {commit[:8]} of {repo}",
        reference=_table_at(repo, commit, reference, what="reference (the training split)"),
        holdout=_table_at(repo, commit, holdout, what="holdout (the test split)"),
        test_metrics=test_metrics,
        importance=load_importance(table, found, where=f"{importance} at {commit[:8]}"),
    )


def _workspace(model: Path, version: str | None, reference: str, holdout: str, metrics: str, importance: str):
    found = served.load(model, where="--model")
    digest = local_version(model)
    if version and version != digest:
        raise UserError(problem("--version", f"names a model file's digest, and --model {model} is {digest}", version))
    metrics_path = Path(metrics)
    text = metrics_path.read_text(encoding="utf-8") if metrics_path.is_file() else None
    return MonitorInputs(
        model=found,
        version=digest,
        commit=metadata_beside(model).get("git_commit"),
        source=f"workspace ({model}, {reference}, {holdout})",
        reference=read_table(reference, where="--reference"),
        holdout=read_table(holdout, where="--holdout"),
        test_metrics=read_metrics(text, where=metrics),
        importance=load_importance(Path(importance).read_bytes() if Path(importance).is_file() else None, found),
    )


def read_metrics(text: str | None, *, where: str) -> dict[str, Any] | None:
    """The `test` block of evaluate's metrics.json text (None, with a warning, when missing)."""
    test = json.loads(text).get("test") if text else None
    if test is None:
        log.warning("%s not found: performance is reported without test metrics to compare", where)
    return test


def _git_show(repo: str | Path, commit: str, path: str) -> str | None:
    return vcs.show_file(commit, path, cwd=repo) or None


def _open_at(repo: str | Path, commit: str, path: str) -> bytes | None:
    """A file's bytes at `commit` through DVC (git-tracked or DVC-tracked); None when unreadable."""
    try:
        return vcs.read_at(path, rev=commit, repo=repo)
    except vcs.NotReadable as exc:
        log.info("%s at %s not readable (%s)", path, commit[:8], exc)
        return None


def _table_at(repo: str | Path, commit: str, path: str, *, what: str) -> pd.DataFrame:
    data = _open_at(repo, commit, path)
    if data is None:
        raise UserError(
            problem(
                f"{what} {path} at commit {commit[:8]}",
                "cannot be read through DVC",
                str(repo),
                "Run `dvc push` where that version was trained (its data must be in a DVC remote or the cache)",
            )
        )
    if path.endswith(".csv"):
        return pd.read_csv(io.BytesIO(data))
    return pd.read_parquet(io.BytesIO(data))


def load_importance(
    table: Path | bytes | None, model: served.TabularModel, *, where: str = "importance table"
) -> pd.Series | None:
    """Permutation importance from evaluate's table (a path or its bytes) when readable, else the
    model's own."""
    if isinstance(table, Path):
        where, table = str(table), table.read_bytes() if table.is_file() else None
    if table is not None:
        frame = pd.read_csv(io.BytesIO(table))
        usable = [c for c in ("permutation", "model") if c in frame.columns and frame[c].notna().any()]
        if "feature" in frame.columns and usable:
            return frame.set_index("feature")[usable[0]].astype(float).fillna(0.0)
        log.warning("%s has no importance column; using the model's own importance", where)
    return model_importance(model)


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.{digits}f}"
    return str(value)


def markdown(report: dict[str, Any], *, name: str, figures: list[str]) -> str:
    t, judged = report["thresholds"], report["model"]
    commit = (judged.get("commit") or "unknown")[:12]
    lines = [f"# Drift report: {name}", "", f"Model judged: **{judged.get('version')}** (commit {commit}; "]
    lines[-1] += f"{judged.get('source')})."
    if report["blockers"]:
        lines += ["", "**stop: do not retrain on this batch without a human**", ""]
        lines += [f"- {blocker}" for blocker in report["blockers"]]
    lines += [
        "",
        f"**retrain: {str(report['retrain']).lower()}**",
        "",
        *[f"- {reason}" for reason in report["reasons"]],
        "",
        f"Batch {report['rows']:,} rows vs training reference {report['reference_rows']:,} rows. A feature drifts when "
        f"PSI >= {t['psi_moderate']} and its test's p < {t['alpha']}/{len(report['features'])} = "
        f"{t['alpha_per_feature']:.2g}; strong from PSI {t['psi_strong']}. Features ranked by {report['ranked_by']}.",
        *_log_lines(report.get("log"), report.get("shadow")),
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
    lines += _performance_lines(report["performance"]) + _label_lines(report["labels"])
    if figures:
        lines += ["", "## Figures", "", *[f"![{f}](figures/{f}.png)" for f in figures]]
    return "\n".join(lines) + "\n"


def _performance_lines(perf: dict[str, Any] | None) -> list[str]:
    if not perf:
        return []
    lines = ["", "## Performance", "", f"{perf['rows']:,} labeled rows; headline metric **{perf['metric']}**. "]
    lines[-1] += f"Judged metrics have a 95% bootstrap interval ({perf['headline']['bootstrap']} resamples)."
    lines += [
        "",
        "| metric | batch | 95% interval | test | tolerance | verdict |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for metric, value in perf["batch"].items():
        entry = perf["judged"].get(metric)
        test = (perf["test"] or {}).get(metric)
        if entry is None:
            lines.append(f"| {metric} | {_fmt(value)} | | {_fmt(test)} | | not judged |")
            continue
        verdict = "**undefined**" if entry["undefined"] else "**dropped**" if entry["dropped"] else "within tolerance"
        if not entry["undefined"] and entry["worse_by"] is None:
            verdict = "no test value"
        lines.append(
            f"| {metric} | {_fmt(value)} | {entry['interval_95'] or '-'} | {_fmt(test)} | {entry['tolerance']} "
            f"| {verdict} |"
        )
    return lines


def _label_lines(labels: dict[str, Any]) -> list[str]:
    if not labels["rows"]:
        return []
    state = f"**drifted**: {labels['reason']}" if labels["drifted"] else "stable"
    lines = [
        "",
        "## Labels",
        "",
        f"{labels['rows']:,} labeled batch rows vs {labels['reference_rows']:,} reference rows",
    ]
    lines[-1] += f" ({labels['test']} p {_fmt(labels['p_value'], 3)}): {state}."
    if labels["kind"] == "classes":
        lines += ["", "| class | reference share | batch share | change |", "| --- | ---: | ---: | ---: |"]
        for name, share in labels["shares"].items():
            lines.append(f"| {name} | {share['reference']:.3f} | {share['batch']:.3f} | {share['change']:+.3f} |")
    else:
        lines += ["", "| target | mean | std | min | max |", "| --- | ---: | ---: | ---: | ---: |"]
        for side in ("reference", "batch"):
            v = labels[side]
            lines.append(f"| {side} | {_fmt(v['mean'])} | {_fmt(v['std'])} | {_fmt(v['min'])} | {_fmt(v['max'])} |")
    return lines


def _log_lines(logged: dict[str, Any] | None, shadow: dict[str, Any] | None) -> list[str]:
    if not logged:
        return []
    routes = ", ".join(f"{route} {count:,}" for route, count in logged["routes"].items())
    versions = ", ".join(f"{version} {count:,}" for version, count in logged["versions"].items())
    lines = ["", "## Served rows (prediction log)", ""]
    lines.append(
        f"{logged['rows']:,} served rows in {logged['requests']:,} requests ({routes}; versions: {versions}), "
        f"{logged['first']} to {logged['last']}; filters: {logged['filters'] or 'none'}; "
        f"{logged['shadow_rows']:,} shadow rows not monitored."
    )
    if shadow:
        agreement = shadow["label_agreement"]
        lines += [
            "",
            "## Shadow comparison",
            "",
            f"{shadow['pairs']:,} served rows paired with a shadow row (served by "
            f"{', '.join(shadow['served_versions'])}, shadow {', '.join(shadow['shadow_versions'])}). Label agreement: "
            f"{'-' if agreement is None else f'{agreement:.2%}'}. Score ({shadow['score']}) absolute difference: "
            f"mean {_fmt(shadow['mean_abs_difference'])}, max {_fmt(shadow['max_abs_difference'])}. "
            f"Unpaired: {shadow['served_rows_without_shadow']:,} served, "
            f"{shadow['shadow_rows_unpaired']:,} shadow rows.",
        ]
    return lines


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


def run(
    source: MonitorInputs,
    batch: pd.DataFrame,
    *,
    params: Params,
    out: Path,
    name: str,
    extra: dict[str, Any] | None = None,
) -> Verdict:
    """Monitor `batch` against `source` (see `inputs`) with params' `monitor` section, add `extra`
    to the report and write it to `out`; the verdict."""
    verdict = monitor(
        model=source.model,
        reference=source.reference,
        batch=batch,
        holdout=source.holdout,
        config=params.monitor,
        metric=params.metric,
        seed=params.seed,
        min_share=params.prepare.text_to_number_min_share,
        importance=source.importance,
        test_metrics=source.test_metrics,
        judged=source.judged(),
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


def from_log(args: argparse.Namespace, model: served.TabularModel) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The served rows of the log that the filters keep, and the report's `log` (and `shadow`) blocks."""
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
    return prediction_log.features(chosen), extra


@stage_main("monitor", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab monitor", description="Drift report of a batch or the log.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--batch", help="CSV or Parquet file of new rows (raw, as exported)")
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
    parser.add_argument("--model", default=paths.MODEL)
    parser.add_argument("--reference", default=paths.TRAIN)
    parser.add_argument("--holdout", default=paths.TEST)
    parser.add_argument("--metrics", default=paths.EVALUATE_METRICS)
    parser.add_argument("--importance", default=paths.IMPORTANCE)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=paths.MONITOR_REPORTS)
    parser.add_argument("--name", help="report folder name (default: the batch file's stem, or log-<dir name>)")
    args = parser.parse_args(argv)
    if args.batch and (args.since or args.until or args.shadow):
        raise UserError(problem("--since/--until/--shadow", "apply to --from-log only", "--batch"))
    params = load_params(args.params)
    chosen = inputs(
        repo=args.repo,
        stage=args.stage,
        version=args.version,
        model=args.model,
        reference=args.reference,
        holdout=args.holdout,
        metrics=args.metrics,
        importance=args.importance,
    )
    if args.batch:
        batch, name, extra = read_table(args.batch, where="--batch"), args.name or Path(args.batch).stem, {}
    else:
        batch, extra = from_log(args, chosen.model)
        name = args.name or f"log-{Path(args.from_log).resolve().name}"
    verdict = run(chosen, batch, params=params, out=Path(args.out) / name, name=name, extra=extra)
    print(f"model: {chosen.version} (commit {(chosen.commit or 'unknown')[:12]})")
    for blocker in verdict.blockers:
        print(f"stop: {blocker}")
    print(f"retrain: {str(verdict.retrain).lower()}")
    for reason in verdict.reasons:
        print(f"  - {reason}")


if __name__ == "__main__":
    main()
