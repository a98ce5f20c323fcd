"""`reprotab model convert OLD NEW`: a model pickle from an older version, as a model bundle.

    reprotab model convert models/old.joblib models/model.zip

The one place in the project that unpickles a model, and only when a user asks: unpickling runs
whatever code the file holds, so convert only a file you trust (one your own pipeline wrote).
It reads a format-2 pickle (the served model of the sub-package layout), converts its fitted
featurizer into a plan, its estimator into the family's own format and its calibrator into
numbers, checks that the bundle predicts what the pickle did on rows holding every category the
featurizer learnt, and writes the bundle atomically. Older pickles (formats 0 and 1) are
refused: retrain them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from reprotab.errors import UserError, problem
from reprotab.model.calibration import Calibrator, logit
from reprotab.model.plan import FeaturePlan
from reprotab.model.served import TabularModel, save
from reprotab.runner import stage_main

log = logging.getLogger(__name__)
PICKLE_FORMAT = 2  # the last format that was a pickle
TOLERANCE = 1e-6


def convert(old: str | Path, new: str | Path) -> TabularModel:
    """Unpickle `old` (a format-2 model), write it as a bundle at `new`, and return it."""
    old, new = Path(old), Path(new)
    if not old.is_file():
        raise UserError(problem("OLD", "file not found", str(old)))
    if old.resolve() == new.resolve():
        raise UserError(problem("NEW", "must not be the file converted", str(new), "Name another file"))
    log.warning("%s: unpickling it, which runs any code the file holds; convert only a file you trust", old)
    import joblib

    try:
        pickled = joblib.load(old)
    except Exception as exc:  # a truncated or foreign pickle raises many types
        raise UserError(problem("OLD", f"cannot be unpickled ({type(exc).__name__}: {exc})", str(old))) from None
    state = getattr(pickled, "__dict__", {})
    version = state.get("format_version", 0)
    if version != PICKLE_FORMAT or "pipeline" not in state:
        raise UserError(
            problem(
                "OLD",
                f"has model format {version}; only format {PICKLE_FORMAT} pickles convert",
                str(old),
                "Retrain it with `dvc repro`",
            )
        )
    pipeline, schema = state["pipeline"], state["schema"]
    featurizer, estimator = pipeline.named_steps["features"], pipeline.named_steps["model"]
    from reprotab.train.families import model_name

    family = model_name(estimator, schema.task)
    if family is None:
        raise UserError(problem("OLD", "holds an estimator of no family this version knows", type(estimator).__name__))
    model = TabularModel.from_fitted(
        featurizer=featurizer,
        estimator=estimator,
        family=family,
        schema=schema,
        threshold=state.get("threshold"),
        calibrator=_calibrator(state.get("calibrator")),
    )
    _check_same(model, featurizer, estimator, state.get("calibrator"))
    save(model, new)
    return model


def _calibrator(old: Any) -> Calibrator | None:
    """A pickled calibrator (scikit-learn models per class) as numbers."""
    if old is None:
        return None
    if isinstance(getattr(old, "params_", None), list):
        return old  # already numbers
    calibrator = Calibrator(old.method)
    calibrator.binary_ = old.binary_
    for fitted in old.models_:
        if old.method == "isotonic":
            calibrator.params_.append(
                (np.asarray(fitted.X_thresholds_, dtype=float), np.asarray(fitted.y_thresholds_, dtype=float))
            )
        else:
            calibrator.params_.append(
                (np.asarray(fitted.coef_, dtype=float).ravel(), np.asarray(fitted.intercept_, dtype=float).ravel())
            )
    return calibrator


def _check_same(model: TabularModel, featurizer: Any, estimator: Any, calibrator: Any) -> None:
    """The bundle's predictions on the plan's check rows equal the pickle's within TOLERANCE."""
    rows = _check_rows(model.plan, featurizer)
    features = featurizer.transform(rows)
    if model.schema.task == "regression":
        before = np.asarray(estimator.predict(features), dtype=float)
    else:
        before = np.asarray(estimator.predict_proba(features), dtype=float)
        if calibrator is not None:
            before = _pickled_calibration(calibrator, before)
    after = model.predict_featurized(model.plan.frame_matrix(rows))
    worst = float(np.max(np.abs(before - after))) if len(before) else 0.0
    if not worst <= TOLERANCE:
        raise UserError(problem("OLD", f"converts to a bundle predicting differently (by up to {worst:.3g})", None))


def _pickled_calibration(old: Any, proba: np.ndarray) -> np.ndarray:
    """What a pickled calibrator (scikit-learn models per class) made of `proba`, as it did it."""
    if isinstance(getattr(old, "params_", None), list):
        return np.asarray(old.transform(proba), dtype=float)

    def apply(fitted: Any, p: np.ndarray) -> np.ndarray:
        return fitted.predict(p) if old.method == "isotonic" else fitted.predict_proba(logit(p))[:, 1]

    if old.binary_:
        positive = apply(old.models_[0], proba[:, 1])
        return np.column_stack([1 - positive, positive])
    out = np.column_stack([apply(m, proba[:, k]) for k, m in enumerate(old.models_)])
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1), 1 / out.shape[1])


def _check_rows(plan: FeaturePlan, featurizer: Any) -> Any:
    import pandas as pd

    from reprotab.model.plan import CHECK_NUMBERS

    parts = plan.parts
    n = max([len(p.categories) + 1 for p in parts] + [len(CHECK_NUMBERS)])
    rows: dict[str, list[Any]] = {
        c: [CHECK_NUMBERS[(i + j) % len(CHECK_NUMBERS)] for i in range(n)] for j, c in enumerate(plan.numeric)
    }
    for p in parts:
        values: list[Any] = [*p.categories, None]
        rows[p.column] = [values[i % len(values)] for i in range(n)]
    return pd.DataFrame(rows)[[str(c) for c in featurizer.feature_names_in_]]


@stage_main("model", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab model", description="Model files.")
    commands = parser.add_subparsers(dest="command", required=True)
    to_bundle = commands.add_parser(
        "convert",
        help="convert a model pickle from an older version into a model bundle (it unpickles: only a file you trust)",
    )
    to_bundle.add_argument("old", help="the older version's model pickle (e.g. models/model.joblib)")
    to_bundle.add_argument("new", help="the bundle to write (e.g. models/model.zip)")
    args = parser.parse_args(argv)
    model = convert(args.old, args.new)
    log.info("converted %s (%s, %s) → %s", args.old, model.family, model.kind, args.new)
