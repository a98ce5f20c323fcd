"""The search's choice against the shipped configuration, on rows the search never scored.

A search picks the best of many candidates on the same folds, so its best score is biased up, and
on small tables the bias can exceed the gain: the tuned model then scores below the untuned one on
new rows. With cross-validation the validation split took no part in the search; here each
candidate is fitted once on the training split (the featurizer fitted on it, early stopping on the
validation rows, as train does) and scored on the validation split, and the search's result is
kept only when it beats the shipped configuration there. Ties go to the shipped configuration.

With `model: ensemble` three candidates compete: the blend, its best single trial and the shipped
configuration of that trial's family, so a blend that does not pay for itself ships as one model.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from reprotab.tune.search import Search, build_folds, choose, evaluate, out_of_fold_shape, score_predictions

log = logging.getLogger(__name__)


def holdout(search: Search, *, train: pd.DataFrame, validation: pd.DataFrame, params: Any) -> Search:
    """The search's settings with one fold: fit on the training split, score on validation."""
    folds = build_folds(
        train=train,
        validation=validation,
        schema=search.schema,
        cv_folds=0,
        featurize=params.featurize,
        sampler=params.sampler,
        sampling=params.sampling,
        seed=params.seed,
    )
    return replace(search, folds=folds)


def blend_score(members: list[dict[str, Any]], search: Search) -> float:
    """The weighted blend of the members, each fitted on the fold, scored on its held-out rows."""
    total = np.zeros(out_of_fold_shape(search))
    for member in members:
        keep = np.zeros_like(total)
        family = member["model"]
        base = replace(search, bases={**search.bases, family: {}})  # the member's own hyperparameters are complete
        evaluate(member["hyperparameters"], base, family=family, keep=keep)
        total += member["weight"] * keep
    fold = search.folds[0]
    return score_predictions(total[fold.held_rows], fold.y_held, metric=search.metric, schema=search.schema)


def confirm(
    best: dict[str, Any], *, search: Search, train: pd.DataFrame, validation: pd.DataFrame, params: Any
) -> dict:
    """tune's record, replaced by the shipped configuration (or the ensemble's best single trial)
    when that scores at least as well on the validation split; `confirmed` says what competed."""
    if not len(validation):
        return {**best, "confirmed": {"skipped": "the validation split is empty"}}
    check = holdout(search, train=train, validation=validation, params=params)
    higher = search.direction == "maximize"
    candidates: list[tuple[str, str, dict[str, Any]]] = []  # (name, family, record params)
    if best["model"] == "ensemble":
        single = best["ensemble"]["best_single"]
        candidates = [("shipped", single["model"], {}), ("best single trial", single["model"], single["params"])]
        scores = [evaluate(params_, check, family=family).score for _, family, params_ in candidates]
        candidates.append(("ensemble", "ensemble", best["params"]))
        scores.append(blend_score(best["params"]["members"], check))
    else:
        candidates = [("shipped", best["model"], {}), ("tuned", best["model"], best["params"])]
        scores = [evaluate(params_, check, family=family).score for _, family, params_ in candidates]
    pick = 0
    for index, score in enumerate(scores):  # strictly better than every earlier (simpler) candidate
        if (score > scores[pick]) if higher else (score < scores[pick]):
            pick = index
    name, family, chosen = candidates[pick]
    record = {name: round(score, 6) for (name, _, _), score in zip(candidates, scores, strict=True)}
    log.info(
        "on the validation split (%s): %s; %s ships",
        search.metric,
        ", ".join(f"{k} {v:.4f}" for k, v in record.items()),
        name,
    )
    confirmed = {"metric": search.metric, "validation": record, "chosen": name}
    if name == candidates[-1][0]:
        return {**best, "confirmed": confirmed}
    return {**best, "model": family, "params": dict(chosen), "confirmed": confirmed}


def result(
    study: Any,
    *,
    search: Search,
    predictions: dict[int, np.ndarray] | None,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    params: Any,
) -> dict[str, Any]:
    """What tune hands to train: the search's choice (reprotab/tune/search.py `choose`), confirmed
    on the validation split when `tune.confirm` is on and the search did not score on that split."""
    best = choose(study, search=search, predictions=predictions)
    if not params.tune.confirm:
        return best
    if params.tune.cv_folds == 0:
        return {**best, "confirmed": {"skipped": "the search scored on the validation split (tune.cv_folds 0)"}}
    return confirm(best, search=search, train=train, validation=validation, params=params)
