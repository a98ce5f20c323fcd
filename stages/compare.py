"""Compare DVC experiments that differ in one param (for example every sampler) in one report.

    python -m stages.compare --by sampler [--metric roc_auc] [--out-dir reports/compare]

Reads   `dvc exp show --json` (the workspace, its baseline and every experiment on it)
Writes  reports/compare/<by>.md (test metrics ranked by the metric, the sampler `auto` chose,
        time of each run) and reports/compare/<by>.png (the metric per value, as bars)

Queue the experiments first, e.g. for samplers (README, "Compare class balancing strategies"):
    dvc exp run --queue -S 'sampler=none,auto,smote,adasyn' && dvc exp run --run-all
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from stages.data import atomic_path
from stages.errors import UserError, problem
from stages.metrics import LOWER_IS_BETTER
from stages.runner import stage_main

log = logging.getLogger(__name__)
METRICS_FILE = "reports/evaluate/metrics.json"
TRAIN_FILE = "reports/train/metrics.json"


def experiment_rows(shown: list[dict[str, Any]], *, by: str) -> pd.DataFrame:
    """One row per experiment (and the baseline): the compared param, test metrics, balancing."""
    rows = []
    for commit in shown:
        for exp in [commit, *(commit.get("experiments") or [])]:
            for rev in exp.get("revs") or [exp]:
                data = rev.get("data") or {}
                params = (data.get("params") or {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics") or {}
                test = (metrics.get(METRICS_FILE) or {}).get("data", {}).get("test")
                if by not in params or not test:
                    continue
                train = (metrics.get(TRAIN_FILE) or {}).get("data", {})
                rows.append(
                    {
                        by: params[by],
                        "experiment": rev.get("name") or exp.get("name") or data.get("rev"),
                        "sampler_used": train.get("sampler_used"),
                        **test,
                    }
                )
    frame = pd.DataFrame(rows)
    return frame.drop_duplicates(subset=[by, "experiment"]) if not frame.empty else frame


def rank(frame: pd.DataFrame, *, by: str, metric: str) -> pd.DataFrame:
    """Best first; for a value run more than once, the latest (first listed) row is kept."""
    if frame.empty or metric not in frame:
        raise UserError(
            problem(
                "compare",
                f"found no experiments with param '{by}' and test metric '{metric}'",
                None,
                "Run the experiments first (see the module docstring)",
            )
        )
    ascending = metric in LOWER_IS_BETTER
    return frame.drop_duplicates(subset=[by]).sort_values(metric, ascending=ascending).reset_index(drop=True)


def markdown(frame: pd.DataFrame, *, by: str, metric: str) -> str:
    columns = [by, "sampler_used", metric] + [
        c for c in frame.columns if c not in (by, "sampler_used", metric, "experiment")
    ]
    table = frame[[c for c in columns if c in frame]]
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
    ax.set_xlim(max(0.0, low - 0.1 * (frame[metric].max() - low + 1e-9) - 0.01), None)
    ax.set_xlabel(f"test {metric}")
    ax.set_title(f"{metric} by {by}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _cell(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@stage_main("compare")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Compare DVC experiments by one param.")
    parser.add_argument("--by", default="sampler", help="top-level param that differs between experiments")
    parser.add_argument("--metric", default=None, help="test metric to rank by (default: params metric)")
    parser.add_argument("--out-dir", default="reports/compare")
    args = parser.parse_args(argv)
    dvc = str(Path(sys.executable).parent / "dvc")
    shown = subprocess.run([dvc, "exp", "show", "--json"], capture_output=True, text=True)
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
