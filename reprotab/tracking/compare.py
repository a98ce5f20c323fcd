"""Compare DVC experiments that differ in one param (for example every sampler) in one report.

    reprotab compare --by sampler [--metric roc_auc] [--out-dir reports/compare]

Reads   `dvc exp show --json` (the workspace, its baseline and every experiment on it)
Writes  reports/compare/<by>.md (test metrics ranked by the metric, the sampler `auto` chose,
        the experiment's name and time) and reports/compare/<by>.png (the metric per value, as bars)

Queue the experiments first, e.g. for samplers (README, "Compare class balancing strategies"):
    dvc exp run --queue -S 'sampler=none,auto,smote,adasyn' && dvc exp run --run-all
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths, vcs
from reprotab.data.tables import atomic_path
from reprotab.errors import UserError, problem
from reprotab.runner import stage_main
from reprotab.stats.metrics import LOWER_IS_BETTER, flatten

log = logging.getLogger(__name__)


def experiment_rows(shown: list[dict[str, Any]], *, by: str) -> pd.DataFrame:
    """One row per experiment (and the workspace and baseline): the compared param, test metrics,
    the sampler and model family used, where the row comes from (`source`) and when it was made (`timestamp`)."""
    rows = []
    for commit in shown:
        for exp in [commit, *(commit.get("experiments") or [])]:
            for rev in exp.get("revs") or [exp]:
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics") or {}
                test = (metrics.get(paths.EVALUATE_METRICS) or {}).get("data", {}).get("test")
                if by not in params or not test:
                    continue
                train = (metrics.get(paths.TRAIN_METRICS) or {}).get("data", {})
                name = rev.get("name") or exp.get("name") or data.get("rev")
                source = "experiment" if exp is not commit else "workspace" if name == "workspace" else "baseline"
                value = params[by]
                rows.append(
                    {
                        by: json.dumps(value) if isinstance(value, list | dict) else value,
                        "experiment": name,
                        "sampler_used": train.get("sampler_used"),
                        "model_used": train.get("model_used"),  # model auto: the family tune chose
                        **flatten(test),  # nested sections as at_0.5/f1, like dvclive
                        "source": source,
                        "timestamp": data.get("timestamp"),
                    }
                )
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(subset=[by, "experiment"]) if not frame.empty else frame


SOURCE_ORDER = {"experiment": 0, "workspace": 1, "baseline": 2}
INTERNAL = ("source",)


def rank(frame: pd.DataFrame, *, by: str, metric: str) -> pd.DataFrame:
    """Best first, one row per value of `by`; rows without the metric are left out.

    A value run more than once keeps its most recent experiment. The workspace and the baseline
    commit only stand in for values no experiment ran: their metrics can predate the changes the
    queued experiments were run with (or come from other data), which would not be a fair comparison.
    """
    scored = frame[frame[metric].notna()] if metric in frame else frame.iloc[0:0]
    if scored.empty:
        raise UserError(
            problem(
                "compare",
                f"found no experiments with param '{by}' and test metric '{metric}'",
                None,
                "Run the experiments first (see the module docstring)",
            )
        )
    latest_first = (
        scored.assign(_order=scored["source"].map(SOURCE_ORDER))
        .sort_values(["_order", "timestamp"], ascending=[True, False], na_position="last")
        .drop(columns="_order")
        .drop_duplicates(subset=[by])
    )
    ascending = metric in LOWER_IS_BETTER
    return latest_first.sort_values(metric, ascending=ascending, kind="stable").reset_index(drop=True)


def markdown(frame: pd.DataFrame, *, by: str, metric: str) -> str:
    first, last = [by, "sampler_used", "model_used", metric], ["experiment", "timestamp"]
    columns = first + [c for c in frame.columns if c not in (*first, *last, *INTERNAL)] + last
    table = frame[[c for c in columns if c in frame]]
    if "model_used" in table and table["model_used"].isna().all():  # experiments from before it was recorded
        table = table.drop(columns="model_used")
    header = "| rank | " + " | ".join(table.columns) + " |\n|" + "---|" * (len(table.columns) + 1) + "\n"
    body = "".join(
        f"| {i + 1} | " + " | ".join(_cell(v) for v in row) + " |\n"
        for i, row in enumerate(table.itertuples(index=False))
    )
    return f"# Experiments compared by `{by}`, ranked by test `{metric}`\n\n{header}{body}\n![{by}]({by}.png)\n"


def plot(frame: pd.DataFrame, *, by: str, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * len(frame) + 1.2))
    ax.barh(frame[by].astype(str)[::-1], frame[metric][::-1], color="#4c72b0")
    low = frame[metric].min()
    left = low - 0.1 * (frame[metric].max() - low + 1e-9) - 0.01
    ax.set_xlim(max(0.0, left) if low >= 0 else left, None)  # bars of negative values (r2) stay visible
    ax.set_xlabel(f"test {metric}")
    ax.set_title(f"{metric} by {by}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@stage_main("compare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab compare", description="Compare DVC experiments by one param.")
    parser.add_argument("--by", default="sampler", help="top-level param that differs between experiments")
    parser.add_argument("--metric", default=None, help="test metric to rank by (default: params metric)")
    parser.add_argument("--out-dir", default="reports/compare")
    args = parser.parse_args(argv)
    shown = vcs.run_dvc("exp", "show", "--json", cwd=None)
    if shown.returncode != 0:
        raise UserError(problem("dvc exp show", "failed", shown.stderr.strip()[-300:]))
    frame = experiment_rows(json.loads(shown.stdout), by=args.by)
    metric = args.metric or _params_metric(json.loads(shown.stdout))
    ranked = rank(frame, by=args.by, metric=metric)
    out = Path(args.out_dir)
    plot(ranked, by=args.by, metric=metric, path=out / f"{args.by}.png")
    with atomic_path(out / f"{args.by}.md") as tmp:
        tmp.write_text(markdown(ranked, by=args.by, metric=metric), encoding="utf-8")
    best = ranked.iloc[0]
    log.info(
        "%d values of %s compared; best %s = %s (%s %.4f)",
        len(ranked),
        args.by,
        args.by,
        best[args.by],
        metric,
        best[metric],
    )


def _params_metric(shown: list[dict[str, Any]]) -> str:
    data = (shown[0].get("data") or {}) if shown else {}
    return (data.get("params") or {}).get("params.yaml", {}).get("data", {}).get("metric", "roc_auc")


if __name__ == "__main__":
    main()
