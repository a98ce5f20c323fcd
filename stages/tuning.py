"""Hyperparameter search: every tuner is an Optuna study, so grid, random and TPE share one loop.

`TUNERS` maps `tuner:` to its Optuna sampler and pruner: grid → GridSampler over
`tune.grid.<model>`, random → RandomSampler and optuna → seeded TPESampler over
`tune.space.<model>`; only optuna prunes (a trial whose running mean over folds trails the
median of earlier trials at the same fold stops). One loop means one trials table, one
history plot and resumable studies for all three.

No leakage: each fold's featurizer is fitted on that fold's training rows and the sampler
resamples only those rows; the held-out rows are featurized with the fold's featurizer and
never resampled. The featurized, resampled folds depend only on data and params, not on the
trial, so they are built once and shared by every trial. Boosters stop early on the fold's
held-out rows, so `n_estimators` is a cap; the rounds they kept (mean over folds) become the
tuned `n_estimators`.

A study's name carries a fingerprint of everything that makes its scores comparable (data,
space, folds, sampler, featurize settings, base hyperparameters, seed); `n_trials` and the
budget are left out, so raising `n_trials` continues the same study and a changed dataset
starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from stages.data import frame_hash
from stages.errors import UserError, problem
from stages.estimators import MODELS, build_estimator, encode_target, fit_estimator
from stages.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from stages.params import Distribution, FeaturizeParams, SamplingParams, TuneParams
from stages.preprocessing import build_featurizer, one_hot_groups
from stages.sampling import balance
from stages.schema import Schema

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial: who ran it


@dataclass(frozen=True)
class Tuner:
    """How one `tuner:` value searches: which part of params holds its space, and its Optuna parts."""

    kind: str  # "grid" (value lists) or "space" (distributions)
    sampler: Callable[[dict[str, Any], int], optuna.samplers.BaseSampler]
    prunes: bool


TUNERS: dict[str, Tuner] = {
    "grid": Tuner("grid", lambda space, seed: optuna.samplers.GridSampler(space, seed=seed), prunes=False),
    "random": Tuner("space", lambda space, seed: optuna.samplers.RandomSampler(seed=seed), prunes=False),
    "optuna": Tuner("space", lambda space, seed: optuna.samplers.TPESampler(seed=seed), prunes=True),
}


@dataclass
class Fold:
    """One featurized, resampled fold: fit on (X, y), score on (X_held, y_held)."""

    X: pd.DataFrame
    y: np.ndarray
    X_held: pd.DataFrame
    y_held: np.ndarray


@dataclass(frozen=True)
class Search:
    """Everything a trial needs besides its candidate hyperparameters."""

    folds: list[Fold]
    schema: Schema
    model: str
    base: dict[str, Any]
    metric: str
    seed: int
    early_stopping_rounds: int | None

    @property
    def direction(self) -> str:
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"


def split_indices(*, y: np.ndarray, cv_folds: int, task: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (classification) or plain shuffled k-fold indices over the training rows."""
    if task == "classification":
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest < cv_folds:
            raise UserError(
                problem(
                    "tune.cv_folds",
                    "must not exceed the training rows of the smallest class",
                    f"{cv_folds} folds with {smallest} rows",
                    f"Set tune.cv_folds to at most {smallest}, or 0 to score on the validation split",
                )
            )
        splitter: Any = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def build_folds(
    *,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    schema: Schema,
    cv_folds: int,
    featurize: FeaturizeParams,
    sampler: str,
    sampling: SamplingParams,
    seed: int,
) -> list[Fold]:
    """Featurize and resample each fold from its own training rows (hold-out when cv_folds is 0)."""
    if cv_folds == 0:
        pairs = [(train, validation)]
    else:
        indices = split_indices(
            y=encode_target(train[schema.target], schema), cv_folds=cv_folds, task=schema.task, seed=seed
        )
        pairs = [(train.iloc[fit_rows], train.iloc[held_rows]) for fit_rows, held_rows in indices]
    features = list(schema.features)
    folds = []
    for fit_rows, held_rows in pairs:
        featurizer = build_featurizer(schema=schema, config=featurize).fit(fit_rows[features])
        X, y, _ = balance(
            X=featurizer.transform(fit_rows[features]),
            y=encode_target(fit_rows[schema.target], schema),
            task=schema.task,
            one_hot=one_hot_groups(featurizer),
            sampler=sampler,
            config=sampling,
            seed=seed,
        )
        folds.append(
            Fold(X, y, featurizer.transform(held_rows[features]), encode_target(held_rows[schema.target], schema))
        )
    return folds


def score_estimator(estimator: Any, fold: Fold, *, metric: str, schema: Schema) -> float:
    """The chosen metric on a fold's held-out rows (labels by argmax: thresholds are train's job)."""
    if schema.task == "regression":
        scored = Scored(y_true=fold.y_held, y_pred=estimator.predict(fold.X_held))
    else:
        proba = _full_proba(estimator, fold.X_held, len(schema.classes))
        positive = schema.classes.index(schema.positive_class) if len(schema.classes) == 2 else None
        scored = Scored(y_true=fold.y_held, y_pred=proba.argmax(axis=1), proba=proba, positive=positive)
    return float(BY_TASK[schema.task][metric](scored))


def _full_proba(estimator: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, even one a fold's resampled rows lacked."""
    proba = np.zeros((len(X), n_classes))
    proba[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(X)
    return proba


def evaluate(candidate: dict[str, Any], search: Search, *, report: Callable[[int, float], None] | None = None):
    """Mean score over folds and mean rounds kept; `report(fold, running_mean)` lets Optuna prune."""
    hyperparameters = {**search.base, **candidate}
    scores, rounds = [], []
    for index, fold in enumerate(search.folds):
        estimator = build_estimator(
            model=search.model, task=search.schema.task, hyperparameters=hyperparameters, seed=search.seed
        )
        kept = fit_estimator(
            estimator,
            fold.X,
            fold.y,
            model=search.model,
            eval_set=(fold.X_held, fold.y_held),
            early_stopping_rounds=search.early_stopping_rounds,
        )
        scores.append(score_estimator(estimator, fold, metric=search.metric, schema=search.schema))
        if kept is not None:
            rounds.append(kept)
        if report is not None:
            report(index, float(np.mean(scores)))
    return float(np.mean(scores)), (round(float(np.mean(rounds))) if rounds else None)


def suggest(trial: optuna.Trial, name: str, spec: Distribution | tuple[Any, ...]) -> Any:
    """One value for `name` from a grid list or a distribution."""
    if not isinstance(spec, Distribution):
        return trial.suggest_categorical(name, list(spec))
    if spec.choices is not None:
        return trial.suggest_categorical(name, list(spec.choices))
    if spec.integer:
        return trial.suggest_int(name, spec.low, spec.high, step=spec.step or 1, log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)


def check_space(*, space: dict[str, Any], where: str, search: Search) -> None:
    """Every searched name is a parameter of the estimator, and every edge value is accepted by it.

    Each distinct value (grid values, range ends, choices) is tried once on a few hundred fold
    rows with a tiny ensemble, so a typo fails in a second with the name and value, not after
    an hour of trials."""
    task = search.schema.task
    known = set(MODELS[search.model].estimator_class(task)().get_params())
    problems = [
        problem(f"{where}.{name}", f"is not a parameter of {search.model}") for name in space if name not in known
    ]
    fold = search.folds[0]
    sample = slice(0, min(len(fold.y), 300))
    for name, spec in space.items():
        if name not in known:
            continue
        for value in _edge_values(spec):
            small = {"n_estimators": 3} if name != "n_estimators" and "n_estimators" in known else {}
            try:
                estimator = build_estimator(
                    model=search.model, task=task, hyperparameters={**search.base, **small, name: value}, seed=0
                )
                estimator.fit(fold.X.iloc[sample], fold.y[sample])
            except Exception as exc:  # each library raises its own types for a bad value
                reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                problems.append(problem(f"{where}.{name}", f"value is rejected by {search.model} ({reason})", value))
    if problems:
        raise UserError("\n".join(problems))


def _edge_values(spec: Distribution | tuple[Any, ...]) -> list[Any]:
    if not isinstance(spec, Distribution):
        return list(spec)
    return list(spec.choices) if spec.choices is not None else [spec.low, spec.high]


def study_name(*, tuner: str, search: Search, space: dict[str, Any], settings: dict[str, Any]) -> str:
    """`<model>-<task>-<metric>-<tuner>-<fingerprint>`; see the module docstring for what it covers."""
    fingerprint = {
        "space": {k: (v.model_dump() if isinstance(v, Distribution) else list(v)) for k, v in sorted(space.items())},
        "base": search.base,
        "seed": search.seed,
        "early_stopping_rounds": search.early_stopping_rounds,
        "folds": [frame_hash(pd.concat([f.X, f.X_held])) for f in search.folds],
        "targets": [hashlib.sha256(np.concatenate([f.y, f.y_held]).tobytes()).hexdigest() for f in search.folds],
        **settings,
    }
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{search.model}-{search.schema.task}-{search.metric}-{tuner}-{digest}"


def open_storage(url: str | None, default_path: str) -> Any:
    """A journal file next to the tune outputs by default (safe for several processes on one
    machine); a database URL (postgresql://, mysql://, sqlite:///) for workers on several machines."""
    if url is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(default_path))
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    except Exception as exc:  # SQLAlchemy raises driver-specific errors
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise UserError(
            problem(
                "tune.storage",
                f"cannot be opened ({type(exc).__name__}: {reason})",
                redact(url),
                "Check the URL, that the server is reachable, and that its driver is installed "
                "(psycopg2 for PostgreSQL, PyMySQL for MySQL); or set tune.storage: null for a local file",
            )
        ) from None


def redact(url: str | None) -> str | None:
    """A storage URL without its password, fit for logs and output files."""
    if url is None or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


def grid_size(space: dict[str, tuple[Any, ...]]) -> int:
    return math.prod(len(values) for values in space.values())


class Progress:
    """Logs `trial n of N`, the score and the best so far: every trial for short searches,
    about ten lines for long ones, and always when the best improves."""

    def __init__(self, total: int, metric: str) -> None:
        self.total, self.metric, self.every, self.started = total, metric, max(1, total // 10), time.monotonic()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        best = _best_or_none(study)
        improved = best is not None and best.number == trial.number
        if improved or done % self.every == 0 or done >= self.total:
            state = f"{self.metric} {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
            best_text = f"{best.value:.4f} (trial {best.number})" if best is not None else "none yet"
            log.info(
                "trial %d of %d: %s · best %s · %.0f s",
                done,
                self.total,
                state,
                best_text,
                time.monotonic() - self.started,
            )


def _best_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def run(
    *,
    search: Search,
    tuner: str,
    space: dict[str, Any],
    config: TuneParams,
    storage: Any,
    name: str,
) -> optuna.Study:
    """Add trials to the named study until it holds the target number (or the budget ends)."""
    spec = TUNERS[tuner]
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
        if spec.prunes and config.pruning and len(search.folds) > 1
        else optuna.pruners.NopPruner()
    )
    sampler_space = {k: list(v) for k, v in space.items()} if spec.kind == "grid" else space
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=spec.sampler(sampler_space, search.seed),
        pruner=pruner,
        direction=search.direction,
        load_if_exists=True,
    )
    target = grid_size(space) if spec.kind == "grid" else config.n_trials
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    if done:
        log.info("study %s already holds %d of %d trials; continuing", name, done, target)
    if done >= target:
        return study

    def objective(trial: optuna.Trial) -> float:
        candidate = {param: suggest(trial, param, values) for param, values in space.items()}
        trial.set_user_attr("worker", WORKER)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        value, rounds = evaluate(candidate, search, report=report)
        if rounds is not None:
            trial.set_user_attr("n_estimators", rounds)
        return value

    study.optimize(
        objective,
        n_trials=target - done,
        timeout=config.timeout_minutes * 60 if config.timeout_minutes else None,
        n_jobs=config.n_jobs,
        callbacks=[optuna.study.MaxTrialsCallback(target, states=FINISHED), Progress(target, search.metric)],
    )
    return study


def best_result(study: optuna.Study, *, search: Search) -> dict[str, Any]:
    """The best trial's hyperparameters (with the boosters' kept rounds as n_estimators)."""
    best = _best_or_none(study)
    if best is None:
        raise UserError(
            problem(
                "tune",
                "finished without a single complete trial",
                f"{len(study.trials)} trials ({', '.join(sorted({t.state.name.lower() for t in study.trials}))})",
                "Raise tune.timeout_minutes or tune.n_trials, or set tune.pruning: false",
            )
        )
    params = dict(best.params)
    if "n_estimators" in best.user_attrs:
        params["n_estimators"] = int(best.user_attrs["n_estimators"])
    states = [t.state for t in study.trials]
    return {
        "params": params,
        "best_score": round(float(best.value), 6),
        "best_trial": best.number,
        "trials": {
            "complete": states.count(optuna.trial.TrialState.COMPLETE),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL),
        },
    }


def history(study: optuna.Study) -> pd.DataFrame:
    """Finished trials in order with the best score so far (the optimization history plot)."""
    rows, best = [], None
    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        value = float(trial.value)
        best = value if best is None or (value < best if minimize else value > best) else best
        rows.append({"trial": trial.number, "score": round(value, 6), "best": round(best, 6)})
    return pd.DataFrame(rows, columns=["trial", "score", "best"])


def importances(study: optuna.Study) -> pd.DataFrame:
    """Optuna's fANOVA parameter importances (empty when too few trials vary the params)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return pd.DataFrame(columns=["param", "importance"])
    try:
        values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same params
        log.info("parameter importance not computed: %s", exc)
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame([{"param": k, "importance": round(float(v), 6)} for k, v in values.items()])
