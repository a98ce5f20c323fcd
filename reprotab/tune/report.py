"""tune's outputs besides best_params.json: the honest `tuner: none` result, the trials table,
and the history and importance plots (dvclive JSON for `dvc plots`, PNG for people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from reprotab.data.tables import atomic_path


def no_search(*, model: str) -> dict[str, Any]:
    """The honest result of `tuner: none`: no params found, nothing searched."""
    return {
        "tuner": "none",
        "model": model,
        "searched": False,
        "params": {},
        "note": f"no search ran (tuner: none); train uses hyperparameters.{model} from params.yaml",
    }


def family_scores(best: dict[str, Any]) -> dict[str, float]:
    """With model auto, each family's best score as dvclive metric names (`by_model/xgboost`, nested
    in the metrics file); {} otherwise. A family without a complete trial is left out."""
    return {
        f"by_model/{family}": result["best_score"]
        for family, result in best.get("by_model", {}).items()
        if result["best_score"] is not None
    }


def figures(history: pd.DataFrame, importances: pd.DataFrame, *, metric: str) -> dict[str, Any]:
    """The optimization history and parameter importance as matplotlib figures."""
    plt = _pyplot()
    out = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter(history["trial"], history["score"], s=12, alpha=0.6, label="trial")
    ax.step(history["trial"], history["best"], where="post", color="C1", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title="Optimization history")
    ax.legend()
    fig.tight_layout()
    out["history"] = fig
    if not importances.empty:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(importances) + 1.2))
        ordered = importances.sort_values("importance")
        ax.barh(ordered["param"], ordered["importance"])
        ax.set(xlabel="importance (Optuna, PED-ANOVA)", title="Hyperparameter importance")
        fig.tight_layout()
        out["importance"] = fig
    return out


def write_reports(
    reports: Path,
    *,
    metrics: dict[str, float],
    trials: pd.DataFrame,
    history: pd.DataFrame | None = None,
    importances: pd.DataFrame | None = None,
    metric: str = "",
) -> None:
    """Metrics and plots through dvclive (JSON for `dvc plots`, PNG for people), trials as CSV.
    Without a search the plot files still exist, holding empty lists, so every plot declared in
    dvc.yaml loads (DVC fails on a missing file, draws nothing for an empty one)."""
    history = history if history is not None else pd.DataFrame(columns=["trial", "score", "best"])
    importances = importances if importances is not None else pd.DataFrame(columns=["param", "importance"])
    with atomic_path(reports / "trials.csv") as tmp:
        trials.to_csv(tmp, index=False)
    from dvclive import Live

    with Live(dir=str(reports), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in metrics.items():
            live.log_metric(name, value, plot=False)
        live.log_plot("history", history, x="trial", y="best", template="linear", title=f"Best {metric} so far")
        live.log_plot("importance", importances, x="importance", y="param", template="bar_horizontal")
        if not history.empty:  # matplotlib is imported only when there is something to draw
            plt = _pyplot()
            for key, figure in figures(history, importances, metric=metric).items():
                live.log_image(f"{key}.png", figure)
                plt.close(figure)


def _pyplot() -> Any:
    """pyplot on the file-only backend, imported when a figure is drawn (not at stage start-up)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
