"""The drift report's page (drift.md) and its figures: reference vs batch shares of the drifted
features, most important first, and of the model's scores. `reprotab monitor`
(reprotab/monitoring/report.py) writes them from the verdict (reprotab/monitoring/verdict.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reprotab.monitoring.verdict import Verdict
from reprotab.stats.drift import Bins

MAX_FIGURES = 8  # drifted features drawn, most important first


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
