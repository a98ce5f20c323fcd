"""Hyperparameter search: every tuner is an Optuna study, so grid, random and TPE share one loop.

`TUNERS` maps `tuner:` to its Optuna sampler and pruner: grid → GridSampler over
`tune.grid.<model>`, random → RandomSampler and optuna → seeded TPESampler over
`tune.space.<model>` (with `model: auto`, over every family's space: each trial draws the family
first, reprotab/tune/space.py); only optuna prunes (a trial whose running mean over folds trails the
median of earlier trials at the same fold stops). One loop means one trials table, one
history plot and resumable studies for all three. A new random or optuna study tries the
shipped hyperparameters first (reprotab.tune.space.starting_point; with auto, each family's), so the
search starts from the untuned model's score rather than below it.

No leakage: each fold's featurizer is fitted on that fold's training rows and the sampler
resamples only those rows; the held-out rows are featurized with the fold's featurizer and
never resampled. The featurized, resampled folds depend only on data and params, not on the
trial, so they are built once and shared by every trial. Boosters stop early on the fold's
held-out rows, so `n_estimators` is a cap; the rounds they kept (mean over folds) become the
tuned `n_estimators`.

Studies (names, storage, progress, reading results back) are in reprotab/tune/studies.py and
the search spaces in reprotab/tune/space.py; what stays here, a little past 300 lines, is the
one trial loop and the folds it shares.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import KFold, RepeatedKFold, RepeatedStratifiedKFold, StratifiedKFold

from reprotab.errors import UserError, problem
from reprotab.model.featurizer import fit_featurizer, one_hot_groups
from reprotab.model.schema import Schema, encode_target
from reprotab.params.loader import hyperparameters_for
from reprotab.params.names import families
from reprotab.params.sections import FeaturizeParams, SamplingParams, TuneParams
from reprotab.stats.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from reprotab.train.families import MODELS, build_estimator, fit_estimator
from reprotab.train.sampling import balance
from reprotab.tune.space import check_space, decode, encode, grid_size, starting_point, trial_point
from reprotab.tune.studies import (  # noqa: F401  (best_result, history, importances, trials_table: tune's API, re-exported)
    FINISHED,
    Progress,
    best_result,
    history,
    importances,
    open_storage,
    redact,
    study_name,
    trials_table,
)
from reprotab.tune.tuners import TUNERS

log = logging.getLogger(__name__)
optuna.logging.set_verbosity(optuna.logging.WARNING)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # recorded on each trial: who ran it


@dataclass
class Fold:
    """One featurized, resampled fold: fit on (X, y), score on (X_held, y_held). `held_rows`: the
    held-out rows' positions among the scored rows (the training split with CV, else validation),
    where their out-of-fold predictions go."""

    X: pd.DataFrame
    y: np.ndarray
    X_held: pd.DataFrame
    y_held: np.ndarray
    held_rows: np.ndarray
    share: float = 1.0  # 1 / repeats: a row's out-of-fold prediction is its mean over the repeats


class Evaluation(NamedTuple):
    """A candidate's mean score over folds, the rounds its boosters kept (mean), each fold's score."""

    score: float
    rounds: int | None
    fold_scores: tuple[float, ...]


@dataclass(frozen=True)
class Search:
    """Everything a trial needs besides its candidate hyperparameters."""

    folds: list[Fold]
    schema: Schema
    model: str  # a family, or auto
    bases: dict[str, dict[str, Any]]  # each searched family → the shipped hyperparameters its trials start from
    metric: str
    seed: int
    early_stopping_rounds: int | None

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.metric in LOWER_IS_BETTER else "maximize"

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.bases)


def validation_name(cv_folds: int) -> str:
    return f"{cv_folds}-fold CV" if cv_folds else "hold-out (validation split)"


def plan(*, train: pd.DataFrame, validation: pd.DataFrame, schema: Schema, params: Any) -> tuple[Search, dict, str]:
    """The search tune runs with these params: folds, checked spaces (family → space) and study name.

    `params` is tune's view of params.yaml (tuner, model, metric, seed, tune, hyperparameters,
    featurize, sampler, sampling)."""
    config = params.tune
    search = Search(
        folds=build_folds(
            train=train,
            validation=validation,
            schema=schema,
            cv_folds=config.cv_folds,
            cv_repeats=config.repeats(len(train)),
            featurize=params.featurize,
            sampler=params.sampler,
            sampling=params.sampling,
            seed=params.seed,
        ),
        schema=schema,
        model=params.model,
        bases={
            family: hyperparameters_for(params.hyperparameters, model=family, task=schema.task)
            for family in families(params.model)
        },
        metric=params.metric,
        seed=params.seed,
        early_stopping_rounds=config.early_stopping_rounds,
    )
    kind = TUNERS[params.tuner].kind
    spaces = {family: config.search_space(kind=kind, model=family, task=schema.task) for family in search.families}
    for family, space in spaces.items():
        check_space(space=space, where=f"tune.{kind}.{family}", search=search, model=family)
    settings = {
        "sampler": params.sampler,
        "sampling": params.sampling.model_dump(),
        "featurize": params.featurize.model_dump(),
    }
    name = study_name(tuner=params.tuner, search=search, spaces=spaces, settings=settings)
    log.info(
        "%s search of %s for %s by %s; study %s",
        params.tuner,
        " | ".join(search.families),
        params.metric,
        validation_name(config.cv_folds),
        name,
    )
    return search, spaces, name


def result_record(best: dict[str, Any], *, params: Any, search: Search, name: str, study_file: str) -> dict:
    """models/best_params.json: the best params, their family and how they were found."""
    return {
        "tuner": params.tuner,
        "model": best["model"],  # with model auto, the family the search chose (train fits it)
        "searched_models": list(search.families),
        "task": search.schema.task,
        "metric": params.metric,
        "direction": search.direction,
        "validation": validation_name(params.tune.cv_folds),
        "searched": True,
        "study": name,
        "storage": redact(params.tune.storage) or study_file,
        **best,
    }


def split_indices(
    *, y: np.ndarray, cv_folds: int, task: str, seed: int, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (classification) or plain shuffled k-fold indices over the training rows, the
    whole k-fold `repeats` times with new shuffles."""
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
        splitter: Any = RepeatedStratifiedKFold(n_splits=cv_folds, n_repeats=repeats, random_state=seed)
    else:
        splitter = RepeatedKFold(n_splits=cv_folds, n_repeats=repeats, random_state=seed)
    if repeats == 1:  # the plain k-fold, so a study of one repetition keeps its folds (and its name)
        kind = StratifiedKFold if task == "classification" else KFold
        splitter = kind(n_splits=cv_folds, shuffle=True, random_state=seed)
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
    cv_repeats: int = 1,
) -> list[Fold]:
    """Featurize and resample each fold from its own training rows (hold-out when cv_folds is 0)."""
    repeats = 1 if cv_folds == 0 else cv_repeats
    if cv_folds == 0:
        pairs = [(train, validation, np.arange(len(validation)))]
    else:
        indices = split_indices(
            y=encode_target(train[schema.target], schema),
            cv_folds=cv_folds,
            task=schema.task,
            seed=seed,
            repeats=repeats,
        )
        pairs = [(train.iloc[fit_rows], train.iloc[held_rows], held_rows) for fit_rows, held_rows in indices]
    features = list(schema.features)
    folds = []
    for fit_rows, held_rows, positions in pairs:
        featurizer, fitted = fit_featurizer(fit_rows, schema=schema, config=featurize, seed=seed)  # cross-fitted
        X, y, _ = balance(
            X=fitted,
            y=encode_target(fit_rows[schema.target], schema),
            task=schema.task,
            one_hot=one_hot_groups(featurizer),
            sampler=sampler,
            config=sampling,
            seed=seed,
        )
        held_X, held_y = featurizer.transform(held_rows[features]), encode_target(held_rows[schema.target], schema)
        folds.append(Fold(X, y, held_X, held_y, np.asarray(positions), 1.0 / repeats))
    return folds


def fold_predictions(estimator: Any, fold: Fold, schema: Schema) -> np.ndarray:
    """Class probabilities (one column per class) or values (one column) on a fold's held-out rows."""
    if schema.task == "regression":
        return np.asarray(estimator.predict(fold.X_held), dtype=np.float64).reshape(-1, 1)
    return _full_proba(estimator, fold.X_held, len(schema.classes))


def score_predictions(predictions: np.ndarray, y: np.ndarray, *, metric: str, schema: Schema) -> float:
    """The chosen metric of `fold_predictions`-shaped predictions (labels by argmax: thresholds are
    train's job)."""
    if schema.task == "regression":
        scored = Scored(y_true=y, y_pred=predictions[:, 0])
    else:
        positive = schema.classes.index(schema.positive_class) if len(schema.classes) == 2 else None
        scored = Scored(y_true=y, y_pred=predictions.argmax(axis=1), proba=predictions, positive=positive)
    return float(BY_TASK[schema.task][metric](scored))


def out_of_fold_shape(search: Search) -> tuple[int, int]:
    """Rows × columns of a trial's out-of-fold predictions."""
    rows = 1 + max(int(fold.held_rows.max()) for fold in search.folds if len(fold.held_rows))
    return rows, (1 if search.schema.task == "regression" else len(search.schema.classes))


def out_of_fold_targets(search: Search) -> np.ndarray:
    """The encoded target of every scored row, in the order out-of-fold predictions are kept."""
    y = np.empty(out_of_fold_shape(search)[0], dtype=search.folds[0].y_held.dtype)
    for fold in search.folds:
        y[fold.held_rows] = fold.y_held
    return y


def score_estimator(estimator: Any, fold: Fold, *, metric: str, schema: Schema) -> float:
    """The chosen metric on a fold's held-out rows (labels by argmax: thresholds are train's job)."""
    return score_predictions(fold_predictions(estimator, fold, schema), fold.y_held, metric=metric, schema=schema)


def _full_proba(estimator: Any, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class, even one a fold's resampled rows lacked."""
    proba = np.zeros((len(X), n_classes))
    proba[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(X)
    return proba


def evaluate(
    candidate: dict[str, Any],
    search: Search,
    *,
    family: str | None = None,
    report: Callable[[int, float], None] | None = None,
    keep: np.ndarray | None = None,
) -> Evaluation:
    """Mean score over folds and mean rounds kept; `report(fold, running_mean)` lets Optuna prune.
    `family`: the model the candidate belongs to (needed with model auto or ensemble). `keep`
    (rows × columns of `fold_predictions`, zeros) receives the out-of-fold predictions, averaged
    over the repeats."""
    family = family or search.model
    hyperparameters = {**search.bases[family], **candidate}
    scores, rounds = [], []
    for index, fold in enumerate(search.folds):
        estimator = build_estimator(
            model=family, task=search.schema.task, hyperparameters=hyperparameters, seed=search.seed
        )
        kept = fit_estimator(
            estimator,
            fold.X,
            fold.y,
            model=family,
            eval_set=(fold.X_held, fold.y_held),
            early_stopping_rounds=search.early_stopping_rounds,
        )
        predictions = fold_predictions(estimator, fold, search.schema)
        if keep is not None:
            keep[fold.held_rows] += predictions * fold.share
        scores.append(score_predictions(predictions, fold.y_held, metric=search.metric, schema=search.schema))
        if kept is not None:
            rounds.append(kept)
        if report is not None and index < len(search.folds) - 1:  # after the last fold the score is complete
            report(index, float(np.mean(scores)))
    return Evaluation(float(np.mean(scores)), round(float(np.mean(rounds))) if rounds else None, tuple(scores))


def pruner(spec: Any, config: TuneParams, search: Search) -> optuna.pruners.BasePruner:
    """Only optuna prunes, and only over several folds (a trial's running mean vs earlier trials')."""
    if spec.prunes and config.pruning and len(search.folds) > 1:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    return optuna.pruners.NopPruner()


def sampler_space(spec: Any, spaces: dict[str, dict[str, Any]], search: Search) -> dict[str, list[Any]]:
    """The grid sampler's points (grid: one family, params refuses auto); empty for the others."""
    grid = spaces[search.model] if spec.kind == "grid" else {}
    return {k: list(v) for k, v in grid.items()}


def callbacks(study: optuna.Study, spec: Any, config: TuneParams, search: Search, target: int) -> list[Any]:
    """Stop at `target` finished trials; log progress; stop early without gains (tune.patience)."""
    return [
        optuna.study.MaxTrialsCallback(target, states=FINISHED),
        Progress(target, search.metric),
        *([Patience(config.patience, study, target)] if config.patience and spec.kind == "space" else []),
    ]


class Objective:
    """One trial: the point it draws, scored over the search's folds. A class, so a Dask worker can
    run it (reprotab/tune/cluster.py). With `predictions` (model ensemble) each complete trial's
    out-of-fold predictions are kept by number, the weakest forgotten."""

    def __init__(
        self,
        search: Search,
        spaces: dict[str, dict[str, Any]],
        predictions: dict[int, np.ndarray] | None = None,
        study: optuna.Study | None = None,
    ) -> None:
        self.search, self.spaces, self.predictions, self.study = search, spaces, predictions, study

    def __call__(self, trial: optuna.Trial) -> float:
        search, predictions = self.search, self.predictions
        family, candidate = trial_point(trial, model=search.model, spaces=self.spaces)
        trial.set_user_attr("worker", WORKER)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        keep = None if predictions is None else np.zeros(out_of_fold_shape(search))
        value, rounds, fold_scores = evaluate(candidate, search, family=family, report=report, keep=keep)
        if rounds is not None:
            trial.set_user_attr("n_estimators", rounds)
        trial.set_user_attr("noise", standard_error(fold_scores))
        if predictions is not None and keep is not None and self.study is not None:
            predictions[trial.number] = keep
            forget_weak(predictions, self.study, search, keeping=(trial.number, value, family))
        return value


def run(
    *,
    search: Search,
    tuner: str,
    spaces: dict[str, dict[str, Any]],
    config: TuneParams,
    storage: Any,
    name: str,
    predictions: dict[int, np.ndarray] | None = None,
    client: Any = None,
    reopen: Callable[[], Any] | None = None,
) -> optuna.Study:
    """Add trials to the named study until it holds the target number (or the budget ends).
    `predictions` (model ensemble) receives each complete trial's out-of-fold predictions by number.
    With a Dask `client`, `config.n_jobs` tasks run the trials on its workers, each opening the
    study's storage with `reopen` (reprotab/tune/cluster.py)."""
    spec = TUNERS[tuner]
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        sampler=spec.sampler(sampler_space(spec, spaces, search), search.seed),
        pruner=pruner(spec, config, search),
        direction=search.direction,
        load_if_exists=True,
    )
    grid = spaces[search.model] if spec.kind == "grid" else {}
    target = grid_size(grid) if spec.kind == "grid" else config.n_trials
    if spec.kind == "space" and not study.get_trials(deepcopy=False):  # a new study: the shipped point(s) first
        cheapest_first = sorted(spaces, key=lambda f: MODELS[f].early_stopping is None)  # boosters stop early
        for family in cheapest_first:
            point = starting_point(spaces[family], model=family, task=search.schema.task, base=search.bases[family])
            study.enqueue_trial(encode(family, point, model=search.model), skip_if_exists=True)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    if done:
        log.info("study %s already holds %d of %d trials; continuing", name, done, target)
    if done >= target:
        return study
    if study.user_attrs.get("stopped_at") == target:  # Patience ended it: more of the same would not help
        log.info("study %s stopped early at %d trials (tune.patience); raise tune.n_trials to go on", name, done)
        return study
    if client is not None and reopen is not None:
        from reprotab.tune.cluster import TrialTask, optimize_on_cluster

        optimize_on_cluster(client, TrialTask(search, spaces, tuner, config, reopen, name, target))
        return study
    study.optimize(
        Objective(search, spaces, predictions, study),
        n_trials=target - done,
        timeout=config.timeout_minutes * 60 if config.timeout_minutes else None,
        n_jobs=config.n_jobs,
        callbacks=callbacks(study, spec, config, search, target),
    )
    return study


KEEP_PREDICTIONS = 30  # out-of-fold predictions kept (model ensemble): the best trials, and each family's best


def forget_weak(
    predictions: dict[int, np.ndarray], study: optuna.Study, search: Search, *, keeping: tuple[int, float, str]
) -> None:
    """Drop the out-of-fold predictions no blend will use, so memory stays at `KEEP_PREDICTIONS`
    trials whatever `tune.n_trials` is: only the best trials and each family's best are candidates
    (reprotab/tune/blend.py)."""
    if len(predictions) <= KEEP_PREDICTIONS:
        return
    number, value, family = keeping  # the trial still running: not in the study's values yet
    scored = {
        t.number: (float(t.value), decode(t.params, model=search.model)[0])
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.number in predictions and t.value is not None
    }
    scored[number] = (value, family)
    sign = -1.0 if search.direction == "maximize" else 1.0
    ranked = sorted(scored, key=lambda n: (sign * scored[n][0], n))
    keep = set(ranked[:KEEP_PREDICTIONS])
    for name in {f for _, f in scored.values()}:
        keep.add(next(n for n in ranked if scored[n][1] == name))
    for gone in set(predictions) - keep:
        predictions.pop(gone, None)


def standard_error(scores: tuple[float, ...]) -> float:
    """How far a mean over folds moves between equally good candidates: its standard error."""
    return float(np.std(scores, ddof=1) / np.sqrt(len(scores))) if len(scores) > 1 else 0.0


class Patience:
    """Stop the study once `trials` complete trials in a row have not beaten the best by more than
    the best trial's noise (the standard error of its fold scores): the search has stopped finding
    real gains, and more trials mostly fit the folds' noise (the small-table overfit)."""

    def __init__(self, trials: int, study: optuna.Study, target: int) -> None:
        self.trials, self.target = trials, target
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        self.best: float | None = study.best_value if complete else None  # a resumed study's best so far
        self.since = 0

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != optuna.trial.TrialState.COMPLETE or trial.value is None:
            return
        sign = 1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else -1.0
        noise = float(study.best_trial.user_attrs.get("noise", 0.0))
        if self.best is None or sign * (trial.value - self.best) > noise:
            self.best, self.since = trial.value, 0
            return
        self.since += 1
        if self.since >= self.trials:
            log.info(
                "no trial beat the best by more than its noise (%.4f) in %d trials: search stopped", noise, self.trials
            )
            study.set_user_attr("stopped_early", self.since)
            study.set_user_attr("stopped_at", self.target)  # a rerun with the same n_trials adds nothing
            study.stop()


def choose(study: optuna.Study, *, search: Search, predictions: dict[int, np.ndarray] | None) -> dict[str, Any]:
    """tune's result: the best trial, or with model ensemble (`predictions` kept by `run`) the
    blend of the best trials (reprotab/tune/blend.py)."""
    if predictions is None:
        return best_result(study, search=search)
    from reprotab.tune import blend  # builds on this module

    return blend.best_result(study, search=search, predictions=predictions)
