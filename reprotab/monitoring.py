"""Drift monitoring: is a new batch (or the prediction log) still like the data the model learned?

`monitor(...)` is the pure core (no file IO): it takes the model, the training reference, the
batch and the recorded test metrics, and returns a `Verdict` whose `retrain` a retraining loop
can act on. `reprotab monitor` (reprotab/monitor_report.py) wires files to it and writes the report.

1. The batch is cleaned as prepare cleans the raw table (numbers stored as text become numbers,
   ±inf becomes missing), for the model's numeric features, so text-stored numbers do not show
   as drift. Bad input is a UserError: missing feature columns, a numeric feature that is mostly
   text, an empty batch, a target class the model never saw.
2. Each feature: PSI and a two-sample test (reprotab/drift.py). A feature drifts only when both
   agree: PSI at or above `psi_moderate` AND p below alpha / number of features (Bonferroni).
3. Prediction drift: the model's scores on the batch vs on the holdout (the test split: rows
   the model never trained on, whose scores are what unseen rows look like; training rows would
   give overconfident scores and false drift). Scores: positive-class probability (binary), the
   predicted class (multiclass), the prediction (regression). At most `sample_rows` seeded batch
   rows are scored; predicting is the costly part on large batches.
4. Performance, when the batch has the target: every metric on those scored rows, against the
   test metrics evaluate recorded, with a seeded bootstrap 95% interval of the headline metric.
5. Retrain when: an important feature (top `important_features` by importance) drifted strongly
   (PSI >= psi_strong), more than `max_drifted_share` of the features drifted, the scores drifted
   (PSI >= psi_moderate and KS/chi-squared p < alpha), or the headline metric fell below its test
   value by more than `performance_tolerance`, judged at the better end of the bootstrap interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reprotab import bootstrap
from reprotab.drift import Bins, ColumnDrift, categorical_drift, numeric_drift, sample
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.metrics import LOWER_IS_BETTER, Scored, score_all
from reprotab.params import MonitorParams
from reprotab.prepare import infinities_to_missing, text_to_numbers
from reprotab.schema import Schema, encode_target
from reprotab.served import TabularModel


@dataclass
class Verdict:
    """What `monitor` found: `report` is JSON-ready (drift.json); `bins` feed the figures."""

    retrain: bool
    reasons: list[str]
    report: dict[str, Any]
    bins: dict[str, Bins] = field(default_factory=dict)


def check_batch(batch: pd.DataFrame, schema: Schema, *, where: str = "batch") -> None:
    """An empty batch, missing feature columns or a target class the model never saw is a UserError."""
    if batch.empty:
        raise UserError(problem(where, "has no rows", None, "Pass a batch with rows to monitor"))
    columns = [str(c) for c in batch.columns]
    missing = [c for c in schema.features if c not in batch.columns]
    if missing:
        hints = "".join(did_you_mean(c, columns).replace(" Did you mean", f" For '{c}', did you mean") for c in missing)
        raise UserError(
            problem(where, "lacks feature columns the model was trained on", ", ".join(missing), f"Columns: {columns}")
            + hints
        )
    if schema.task == "regression" and schema.target in batch.columns:
        target = pd.to_numeric(batch[schema.target], errors="coerce")
        if (target.isna() & batch[schema.target].notna()).any():
            raise UserError(
                problem(f"{where} target '{schema.target}'", "must be numeric for a regression model", None)
            )
    if schema.task == "classification" and schema.target in batch.columns:
        known = {str(c) for c in schema.classes}
        unseen = sorted({str(v) for v in batch[schema.target].dropna().unique()} - known)
        if unseen:
            raise UserError(
                problem(
                    f"{where} target '{schema.target}'",
                    f"holds classes the model never saw (it knows {sorted(known)})",
                    unseen,
                    "Fix the labels, or retrain on data that has these classes",
                )
            )


def clean(batch: pd.DataFrame, schema: Schema, *, min_share: float, where: str = "batch") -> pd.DataFrame:
    """The model's feature columns as prepare would have cleaned them: numeric features as floats
    (text-stored numbers parsed, JSON booleans as 0/1, ±inf missing), categorical ones as given."""
    check_batch(batch, schema, where=where)
    frame = batch[list(schema.features)]
    frame, _ = text_to_numbers(frame, min_share=min_share, skip=set(schema.categorical))
    out, wrong = {}, []
    for column in schema.numeric:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            out[column] = values.to_numpy(dtype=float, na_value=np.nan)
            continue
        # Text that text_to_numbers left alone: JSON booleans (prediction log), or really text.
        present = values[values.notna() & (values.astype("string").str.strip() != "")]
        numbers = pd.to_numeric(present.map(lambda v: float(v) if isinstance(v, bool) else v), errors="coerce")
        if len(present) and numbers.notna().mean() < min_share:
            examples = present[numbers.isna()].astype(str).unique()[:3].tolist()
            wrong.append(f"'{column}' ({numbers.notna().mean():.0%} numbers; e.g. {examples})")
        out[column] = numbers.reindex(values.index).to_numpy(dtype=float, na_value=np.nan)
    if wrong:
        raise UserError(
            problem(
                where,
                f"numeric features hold text that is not numbers (at least {min_share:.0%} of values must parse)",
                "; ".join(wrong),
                "Fix the export of these columns",
            )
        )
    cleaned, _ = infinities_to_missing(pd.DataFrame(out, index=frame.index))
    for column in schema.categorical:
        cleaned[column] = frame[column]
    return cleaned[list(schema.features)]


def category_labels(values: pd.Series) -> pd.Series:
    """Categories as text, missing kept missing; whole numbers as '3' whether stored as 3 or 3.0."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float, na_value=np.nan)
        text = pd.Series([f"{v:g}" for v in numbers], index=values.index, dtype=object)
        return text.where(~np.isnan(numbers), None)
    if pd.api.types.is_string_dtype(values):  # already text: as is (converting a million rows costs seconds)
        return values
    return values.astype("string").astype(object).where(values.notna(), None)


def feature_drift(
    reference: pd.DataFrame, batch: pd.DataFrame, *, schema: Schema, config: MonitorParams, seed: int
) -> dict[str, tuple[ColumnDrift, Bins]]:
    """PSI and test per feature, on cleaned frames (see `clean`)."""
    found = {}
    for i, column in enumerate(schema.features):
        if column in schema.numeric:
            found[column] = numeric_drift(
                reference[column].to_numpy(dtype=float),
                batch[column].to_numpy(dtype=float),
                bins=config.bins,
                max_rows=config.sample_rows,
                seed=seed + i,
            )
        else:
            found[column] = categorical_drift(category_labels(reference[column]), category_labels(batch[column]))
    return found


def model_scores(model: TabularModel, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """(score for drift, class probabilities or None): see the module docstring for what the score is."""
    if model.kind == "regression":
        return np.asarray(model.predict(rows), dtype=float), None
    proba = model.predict_proba(rows)
    if model.binary:
        return proba[:, model.positive_index()], proba
    return model.classes[model.decide(proba)], proba


def score_drift(reference: np.ndarray, batch: np.ndarray, *, config: MonitorParams, seed: int):
    if reference.dtype == object:
        return categorical_drift(pd.Series(reference).map(str), pd.Series(batch).map(str))
    return numeric_drift(reference, batch, bins=config.bins, max_rows=config.sample_rows, seed=seed)


def performance(
    model: TabularModel,
    rows: pd.DataFrame,
    proba: np.ndarray | None,
    predicted: np.ndarray,
    *,
    test_metrics: dict[str, Any] | None,
    metric: str,
    config: MonitorParams,
    seed: int,
) -> dict[str, Any]:
    """Metrics of the scored batch rows that have a target, against the recorded test metrics."""
    schema, labeled = model.schema, rows[model.schema.target].notna().to_numpy()
    truth = encode_target(rows.loc[labeled, schema.target], schema)
    if schema.task == "regression":
        scored = Scored(y_true=truth, y_pred=predicted[labeled])
    else:
        positive = model.positive_index() if model.binary else None
        scored = Scored(truth, model.decide(proba[labeled]), proba[labeled], positive)
    batch = score_all(schema.task, scored)
    reference = (test_metrics or {}).get(metric)
    interval = bootstrap.interval(scored, metric=metric, task=schema.task, samples=config.bootstrap, seed=seed)
    result: dict[str, Any] = {
        "rows": int(labeled.sum()),
        "metric": metric,
        "batch": batch,
        "test": {k: v for k, v in (test_metrics or {}).items() if not isinstance(v, dict)} or None,
        "headline": {"batch": batch[metric], "test": reference, "interval_95": interval, "bootstrap": config.bootstrap},
        "dropped": False,
    }
    if reference is not None:
        lower = metric in LOWER_IS_BETTER
        worse = batch[metric] - reference if lower else reference - batch[metric]
        # Dropped only when even the interval's better end is worse than the tolerance allows: the
        # test value is itself one sample, and a small batch's metric varies by a few points.
        far = batch[metric] if interval is None else (interval[0] if lower else interval[1])
        floor = reference + config.performance_tolerance if lower else reference - config.performance_tolerance
        result["headline"]["worse_by"] = round(worse, 6)
        result["dropped"] = bool(far > floor if lower else far < floor)
    return result


def monitor(
    *,
    model: TabularModel,
    reference: pd.DataFrame,
    batch: pd.DataFrame,
    holdout: pd.DataFrame,
    config: MonitorParams,
    metric: str,
    seed: int,
    min_share: float = 0.95,
    importance: pd.Series | None = None,
    test_metrics: dict[str, Any] | None = None,
) -> Verdict:
    """Compare `batch` (raw rows) with `reference` (prepared training rows); see the module docstring."""
    schema = model.schema
    clean_batch = clean(batch, schema, min_share=min_share)
    clean_reference = clean(reference, schema, min_share=min_share, where="reference")
    drift = feature_drift(clean_reference, clean_batch, schema=schema, config=config, seed=seed)
    alpha = config.alpha / len(schema.features)
    ranked = rank_features(schema.features, importance)
    features: dict[str, Any] = {}
    for column in ranked:
        result, _ = drift[column]
        drifted = result.psi >= config.psi_moderate and result.p_value < alpha
        strong = drifted and result.psi >= config.psi_strong
        features[column] = {
            **result.as_dict(),
            "drifted": drifted,
            "severity": "strong" if strong else "moderate" if drifted else "none",
            "importance": None if importance is None else round(float(importance.get(column, 0.0)), 6),
            "important": column in ranked[: config.important_features] and importance is not None,
        }
    drifted = [c for c in ranked if features[c]["drifted"]]
    share = len(drifted) / len(ranked)

    picked = sample(np.arange(len(batch)), max_rows=config.sample_rows, seed=seed)
    picked.sort()
    scored_rows = clean_batch.iloc[picked]
    if schema.target in batch.columns:
        scored_rows = scored_rows.assign(**{schema.target: batch[schema.target].iloc[picked].to_numpy()})
    batch_scores, proba = model_scores(model, scored_rows)
    holdout_scores, _ = model_scores(model, holdout)
    prediction, prediction_bins = score_drift(holdout_scores, batch_scores, config=config, seed=seed)
    prediction_drifted = prediction.psi >= config.psi_moderate and prediction.p_value < config.alpha
    perf = None
    if schema.target in batch.columns and batch[schema.target].notna().any():
        predicted = batch_scores if schema.task == "regression" else None
        perf = performance(
            model, scored_rows, proba, predicted, test_metrics=test_metrics, metric=metric, config=config, seed=seed
        )

    reasons = []
    strong_important = [c for c in drifted if features[c]["important"] and features[c]["severity"] == "strong"]
    if strong_important:
        names = ", ".join(strong_important)
        reasons.append(f"important features drifted strongly (PSI >= {config.psi_strong}): {names}")
    if share > config.max_drifted_share:
        limit = f"{share:.0%} > {config.max_drifted_share:.0%}"
        reasons.append(f"{len(drifted)} of {len(ranked)} features drifted ({limit})")
    if prediction_drifted:
        reasons.append(f"prediction drift: PSI {prediction.psi:.3f} of the model's scores, p {prediction.p_value:.2g}")
    if perf and perf["dropped"]:
        head = perf["headline"]
        reasons.append(
            f"performance dropped: {metric} {head['batch']:.4f} on the batch vs {head['test']:.4f} on test "
            f"(95% interval {head['interval_95']}, tolerance {config.performance_tolerance})"
        )
    report = {
        "retrain": bool(reasons),
        "reasons": reasons,
        "rows": len(batch),
        "reference_rows": len(reference),
        "thresholds": {**config.model_dump(), "alpha_per_feature": alpha},
        "ranked_by": "none (no importance)" if importance is None else "importance",
        "drifted": drifted,
        "drifted_share": round(share, 6),
        "features": features,
        "prediction": {
            "score": {"binary": "positive-class probability", "multiclass": "predicted class"}.get(
                model.kind, "prediction"
            ),
            "scored_rows": len(scored_rows),
            "holdout_rows": len(holdout),
            **prediction.as_dict(),
            "drifted": bool(prediction_drifted),
        },
        "performance": perf,
    }
    bins = {c: drift[c][1] for c in ranked} | {"(prediction)": prediction_bins}
    return Verdict(retrain=bool(reasons), reasons=reasons, report=report, bins=bins)


def rank_features(features: tuple[str, ...], importance: pd.Series | None) -> list[str]:
    """Features by importance, largest first (ties and unknowns in schema order)."""
    if importance is None:
        return list(features)
    return sorted(features, key=lambda c: -float(importance.get(c, 0.0)))
