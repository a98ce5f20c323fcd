"""tune: search hyperparameters for the chosen metric and hand the best to train.

Reads   data/prepared/{train,validation}.parquet, data/prepared/schema.json
Writes  models/best_params.json (read by train), models/study.journal (the Optuna study, kept
        between runs so more trials continue it), reports/tune/metrics.json (best score),
        reports/tune/trials.csv, reports/tune/plots/ (history and parameter importance, JSON
        for `dvc plots` and PNG)
Params  tuner, model, metric, seed, tune, hyperparameters, featurize, sampler, sampling

`tuner: none` searches nothing and says so; train then uses `hyperparameters.<model>` as
given. How the search works is in stages/tuning.py. A second worker (another shell or
machine with the same params, data and a shared `tune.storage`) joins a running search with
`python -m stages.tune --worker`: it adds trials and writes nothing else.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from dvclive import Live

from stages import tuning
from stages.data import atomic_path, read_json, write_json
from stages.params import load_stage_params
from stages.runner import stage_main
from stages.schema import Schema

PARAMS = ("tuner", "model", "metric", "seed", "tune", "hyperparameters", "featurize", "sampler", "sampling")
log = logging.getLogger(__name__)


def no_search(*, model: str) -> dict[str, Any]:
    """The honest result of `tuner: none`: no params found, nothing searched."""
    return {
        "tuner": "none",
        "model": model,
        "searched": False,
        "params": {},
        "note": f"no search ran (tuner: none); train uses hyperparameters.{model} from params.yaml",
    }


def figures(history: pd.DataFrame, importances: pd.DataFrame, *, metric: str) -> dict[str, Any]:
    """The optimization history and parameter importance as matplotlib figures."""
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
        ax.set(xlabel="importance (fANOVA)", title="Hyperparameter importance")
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
    with Live(dir=str(reports), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in metrics.items():
            live.log_metric(name, value, plot=False)
        live.log_plot("history", history, x="trial", y="best", template="linear", title=f"Best {metric} so far")
        live.log_plot("importance", importances, x="importance", y="param", template="bar_horizontal")
        if not history.empty:
            for key, figure in figures(history, importances, metric=metric).items():
                live.log_image(f"{key}.png", figure)
                plt.close(figure)


@stage_main("tune")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Search hyperparameters for train.")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="models/best_params.json")
    parser.add_argument("--study", default="models/study.journal", help="local study file when tune.storage is null")
    parser.add_argument("--reports", default="reports/tune")
    parser.add_argument("--worker", action="store_true", help="only add trials to the shared study")
    args = parser.parse_args(argv)
    params = load_stage_params("tune", PARAMS)
    reports = Path(args.reports)
    if params.tuner == "none":
        result = no_search(model=params.model)
        params.record_reads()
        write_json(result, args.out)
        write_reports(reports, metrics={"trials": 0}, trials=pd.DataFrame(columns=["number", "value", "state"]))
        log.info("%s", result["note"])
        return

    prepared = Path(args.prepared)
    schema = Schema.from_dict(read_json(prepared / "schema.json"))
    config = params.tune
    search = tuning.Search(
        folds=tuning.build_folds(
            train=pd.read_parquet(prepared / "train.parquet"),
            validation=pd.read_parquet(prepared / "validation.parquet"),
            schema=schema,
            cv_folds=config.cv_folds,
            featurize=params.featurize,
            sampler=params.sampler,
            sampling=params.sampling,
            seed=params.seed,
        ),
        schema=schema,
        model=params.model,
        base=dict(getattr(params.hyperparameters, params.model)),
        metric=params.metric,
        seed=params.seed,
        early_stopping_rounds=config.early_stopping_rounds,
    )
    spec = tuning.TUNERS[params.tuner]
    space = config.search_space(kind=spec.kind, model=params.model, task=schema.task)
    tuning.check_space(space=space, where=f"tune.{spec.kind}.{params.model}", search=search)
    settings = {
        "sampler": params.sampler,
        "sampling": params.sampling.model_dump(),
        "featurize": params.featurize.model_dump(),
    }
    name = tuning.study_name(tuner=params.tuner, search=search, space=space, settings=settings)
    Path(args.study).parent.mkdir(parents=True, exist_ok=True)
    storage = tuning.open_storage(config.storage, args.study)
    params.record_reads()
    validation = f"{config.cv_folds}-fold CV" if config.cv_folds else "hold-out (validation split)"
    log.info("%s search of %s for %s by %s; study %s", params.tuner, params.model, params.metric, validation, name)
    study = tuning.run(search=search, tuner=params.tuner, space=space, config=config, storage=storage, name=name)
    if args.worker:
        log.info("worker done; the study holds %d trials", len(study.trials))
        return

    best = tuning.best_result(study, search=search)
    write_json(
        {
            "tuner": params.tuner,
            "model": params.model,
            "task": schema.task,
            "metric": params.metric,
            "direction": search.direction,
            "validation": validation,
            "searched": True,
            "study": name,
            "storage": tuning.redact(config.storage) or args.study,
            **best,
        },
        args.out,
    )
    write_reports(
        reports,
        metrics={"best_score": best["best_score"], "trials": sum(best["trials"].values())},
        trials=study.trials_dataframe(),
        history=tuning.history(study),
        importances=tuning.importances(study),
        metric=params.metric,
    )
    log.info(
        "best %s %.4f (trial %d of %d) with %s",
        params.metric,
        best["best_score"],
        best["best_trial"],
        len(study.trials),
        best["params"],
    )


if __name__ == "__main__":
    main()
