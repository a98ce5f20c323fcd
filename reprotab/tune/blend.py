"""`model: ensemble`: choose a weighted blend of the search's trials from their out-of-fold predictions.

Greedy forward selection with replacement (Caruana et al. 2004, the ensemble AutoGluon builds):
start from nothing, and in each of `ROUNDS` rounds add the candidate trial whose addition gives the
best score of the averaged out-of-fold predictions on the chosen metric; a trial may be added again,
which raises its weight. The blend kept is the best prefix, so it is never worse on those
predictions than the best single candidate (the first round picks exactly that one). Weights are
the times each trial was picked over the rounds kept.

Candidates are the `CANDIDATES` best complete trials plus each family's best, so a family that
never wins alone can still add what the others miss. A trial of a resumed study has no
predictions in this process; it is evaluated again on the same folds (deterministic: same seed).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import optuna

from reprotab.tune.search import Search, evaluate, out_of_fold_shape, out_of_fold_targets, score_predictions
from reprotab.tune.space import decode
from reprotab.tune.studies import best_result as single_best

ROUNDS = 25  # AutoGluon's default number of selection rounds
CANDIDATES = 20  # best trials considered (each family's best comes on top)
log = logging.getLogger(__name__)


def candidates(study: optuna.Study, search: Search) -> list[optuna.trial.FrozenTrial]:
    """The best complete trials, best first, plus the best of every family not among them."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    sign = 1.0 if search.direction == "maximize" else -1.0
    ranked = sorted(complete, key=lambda t: (-sign * float(t.value), t.number))  # type: ignore[arg-type]
    chosen = ranked[:CANDIDATES]
    for family in search.families:
        best = next((t for t in ranked if decode(t.params, model=search.model)[0] == family), None)
        if best is not None and best not in chosen:
            chosen.append(best)
    return chosen


def greedy(pool: list[np.ndarray], y: np.ndarray, *, search: Search, rounds: int = ROUNDS) -> tuple[np.ndarray, float]:
    """Times each prediction in `pool` is picked (the best prefix of `rounds` rounds) and its score."""
    higher = search.direction == "maximize"
    total = np.zeros_like(pool[0])
    counts = np.zeros(len(pool), dtype=int)
    best_counts, best_score = counts.copy(), -np.inf if higher else np.inf
    for step in range(1, rounds + 1):
        scores = [score_predictions((total + p) / step, y, metric=search.metric, schema=search.schema) for p in pool]
        pick = int(np.argmax(scores) if higher else np.argmin(scores))  # ties: the better-ranked trial
        total += pool[pick]
        counts[pick] += 1
        if (scores[pick] > best_score) if higher else (scores[pick] < best_score):
            best_counts, best_score = counts.copy(), scores[pick]
    return best_counts, float(best_score)


def member(trial: optuna.trial.FrozenTrial, search: Search) -> tuple[str, dict[str, Any]]:
    """A trial's family and the full hyperparameters train fits it with (rounds kept as n_estimators)."""
    family, params = decode(trial.params, model=search.model)
    if "n_estimators" in trial.user_attrs:
        params["n_estimators"] = int(trial.user_attrs["n_estimators"])
    return family, {**search.bases[family], **params}


def best_result(study: optuna.Study, *, search: Search, predictions: dict[int, np.ndarray]) -> dict[str, Any]:
    """tune's record for model ensemble: the members and weights, the blend's out-of-fold score
    beside the best single trial's (both on the pooled out-of-fold rows), and each family's best."""
    record = single_best(study, search=search)  # raises when no trial completed
    pool_trials = candidates(study, search)
    pool = []
    for trial in pool_trials:
        if trial.number not in predictions:  # from an earlier process of a resumed study
            family, params = decode(trial.params, model=search.model)
            keep = np.zeros(out_of_fold_shape(search))
            evaluate(params, search, family=family, keep=keep)
            predictions[trial.number] = keep
        pool.append(predictions[trial.number])
    y = out_of_fold_targets(search)
    counts, score = greedy(pool, y, search=search)
    single = score_predictions(pool[0], y, metric=search.metric, schema=search.schema)
    members: list[dict[str, Any]] = []
    for trial, count in zip(pool_trials, counts, strict=True):
        if count:
            family, hyperparameters = member(trial, search)
            weight = round(float(count / counts.sum()), 12)
            members.append(
                {"model": family, "hyperparameters": hyperparameters, "weight": weight, "trial": trial.number}
            )
    members[-1]["weight"] = round(1.0 - sum(m["weight"] for m in members[:-1]), 12)  # weights sum to 1 exactly
    log.info(
        "ensemble of %d members (%s) from %d candidates: out-of-fold %s %.4f, best single trial %.4f",
        len(members),
        ", ".join(f"{m['model']} #{m['trial']} × {m['weight']:.2f}" for m in members),
        len(pool),
        search.metric,
        score,
        single,
    )
    return {
        **record,
        "model": "ensemble",
        "params": {"members": members},
        "best_score": round(score, 6),
        "ensemble": {
            "rounds": ROUNDS,
            "candidates": len(pool),
            "out_of_fold_score": round(score, 6),
            "best_single_out_of_fold_score": round(single, 6),
            "best_single": {"trial": pool_trials[0].number, "model": record["model"], "params": record["params"]},
        },
    }
