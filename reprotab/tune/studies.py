"""Optuna studies: names, storage, progress lines and what is read back from them.

A study's name carries a fingerprint of everything that makes its scores comparable (data,
space, folds, sampler, featurize settings, base hyperparameters, seed); `n_trials` and the
budget are left out, so raising `n_trials` continues the same study and a changed dataset
starts a new one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import numpy as np
import optuna
import pandas as pd

from reprotab.data.tables import frame_hash
from reprotab.errors import UserError, problem, redact
from reprotab.params.names import SEARCHES_FAMILIES
from reprotab.params.sections import Distribution
from reprotab.tune.space import decode

log = logging.getLogger(__name__)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def study_name(*, tuner: str, search: Any, spaces: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    """`<model>-<task>-<metric>-<tuner>-<fingerprint>`; see the module docstring for what it covers.
    One family's study keeps its space and base flat, as before model auto existed, so its name holds."""
    space = {family: _plain(one) for family, one in spaces.items()}
    one = search.model not in SEARCHES_FAMILIES
    fingerprint = {
        "space": space[search.model] if one else space,
        "base": search.bases[search.model] if one else search.bases,
        "seed": search.seed,
        "early_stopping_rounds": search.early_stopping_rounds,
        "folds": [frame_hash(pd.concat([f.X, f.X_held])) for f in search.folds],
        "targets": [hashlib.sha256(np.concatenate([f.y, f.y_held]).tobytes()).hexdigest() for f in search.folds],
        **settings,
    }
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{search.model}-{search.schema.task}-{search.metric}-{tuner}-{digest}"


def _plain(space: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.model_dump() if isinstance(v, Distribution) else list(v)) for k, v in sorted(space.items())}


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
            state = trial_outcome(trial, self.metric)
            if "model" in trial.params:  # model auto: which family the trial tried
                state = f"{trial.params['model']} {state}"
            best_text = f"{best.value:.4f} (trial {best.number})" if best is not None else "none yet"
            log.info(
                "trial %d of %d: %s · best %s · %.0f s",
                done,
                self.total,
                state,
                best_text,
                time.monotonic() - self.started,
            )


def trial_outcome(trial: optuna.trial.FrozenTrial, metric: str) -> str:
    """What a trial ended with: its score, or that it was pruned (with the partial mean over
    the folds it ran, which is not comparable with complete scores), failed, ..."""
    if trial.state == optuna.trial.TrialState.COMPLETE and trial.value is not None:
        return f"{metric} {trial.value:.4f}"
    if trial.state == optuna.trial.TrialState.PRUNED:
        steps = sorted(trial.intermediate_values)
        if steps:
            partial = trial.intermediate_values[steps[-1]]
            return f"pruned after fold {steps[-1] + 1} (partial {metric} {partial:.4f})"
        return "pruned"
    return trial.state.name.lower()


def _best_or_none(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:
        return None


def _value(trial: optuna.trial.FrozenTrial) -> float:
    """A complete trial's score (a single-objective study's complete trials all have one)."""
    assert trial.value is not None, f"trial {trial.number} is complete but has no value"
    return float(trial.value)


def best_result(study: optuna.Study, *, search: Any) -> dict[str, Any]:
    """The best trial's family and hyperparameters (with the boosters' kept rounds as
    n_estimators); with model auto also each family's best score, so the choice can be checked."""
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
    family, params = decode(best.params, model=search.model)
    if "n_estimators" in best.user_attrs:
        params["n_estimators"] = int(best.user_attrs["n_estimators"])
    states = [t.state for t in study.trials]
    by_model = {"by_model": _best_by_family(study, search.families)} if search.model in SEARCHES_FAMILIES else {}
    return {
        "model": family,
        "params": params,
        "best_score": round(_value(best), 6),
        "best_trial": best.number,
        "trials": {
            "complete": states.count(optuna.trial.TrialState.COMPLETE),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL),
        },
        **by_model,
    }


def _best_by_family(study: optuna.Study, families: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per family: complete trials and the best score among them (None when none completed)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pick = min if study.direction == optuna.study.StudyDirection.MINIMIZE else max
    out = {}
    for family in families:
        values = [_value(t) for t in complete if t.params.get("model") == family]
        out[family] = {"complete": len(values), "best_score": round(pick(values), 6) if values else None}
        if not values:
            log.warning(
                "model auto: %s completed no trial, so it did not compete; raise tune.timeout_minutes or tune.n_trials",
                family,
            )
    return out


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """Optuna's trials table for reports/tune/trials.csv, without its internal `system_attrs_*`
    columns (such as the enqueued starting point's fixed params)."""
    table = study.trials_dataframe()
    return table.drop(columns=[c for c in table.columns if c.startswith("system_attrs")])


def history(study: optuna.Study) -> pd.DataFrame:
    """Finished trials in order with the best score so far (the optimization history plot)."""
    rows, best = [], None
    minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        value = _value(trial)
        best = value if best is None or (value < best if minimize else value > best) else best
        rows.append({"trial": trial.number, "score": round(value, 6), "best": round(best, 6)})
    return pd.DataFrame(rows, columns=["trial", "score", "best"])


def importances(study: optuna.Study) -> pd.DataFrame:
    """Optuna's parameter importances (its default evaluator, PED-ANOVA; empty when fewer than
    two complete trials vary the params).

    With model auto only `model` is in every trial, so the importances are taken over the winning
    family's trials and parameters instead (how the family itself fared is in best_params' by_model)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = _best_or_none(study)
    family_params = None
    if best is not None and "model" in best.params:
        family_params = [name for name in best.params if name != "model"]
        if family_params:
            complete = [t for t in complete if t.params.get("model") == best.params["model"]]
    if len(complete) < 2:
        return pd.DataFrame(columns=["param", "importance"])
    try:
        values = optuna.importance.get_param_importances(study, params=family_params or None)
    except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same params
        log.info("parameter importance not computed: %s", exc)
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame([{"param": k, "importance": round(float(v), 6)} for k, v in values.items()])
