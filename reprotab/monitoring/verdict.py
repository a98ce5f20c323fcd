"""Drift monitoring: is a new batch (or the prediction log) still like the data the model learned?

(Over 300 lines because it is one pure function and the rules it applies in order, each of which
reads what the ones before found; the statistics themselves are reprotab/stats/drift.py.)

`monitor(...)` is the pure core (no file IO): it takes the model, the training reference, the
batch and the recorded test metrics, and returns a `Verdict` whose `retrain` a retraining loop
can act on. `reprotab monitor` (reprotab/monitoring/report.py) wires files to it and writes the report.

1. The batch is cleaned by the policy for every incoming row (reprotab/data/incoming.py, as batch
   scoring and the service clean theirs), so text-stored numbers do not show as drift; what
   cleaning changed is in the report as `cleaning`. Bad input is a UserError: missing feature
   columns, a numeric feature that is mostly text, an empty batch, a target class the model never saw.
2. Each feature: PSI and a two-sample test (reprotab/stats/drift.py). A feature drifts only when both
   agree: PSI at or above `psi_moderate` AND p below alpha / number of features (Bonferroni).
3. Prediction drift: the model's scores on the batch vs on the holdout (the test split: rows
   the model never trained on, whose scores are what unseen rows look like; training rows would
   give overconfident scores and false drift). Scores: positive-class probability (binary), the
   predicted class (multiclass), the prediction (regression). At most `sample_rows` seeded batch
   rows are scored; predicting is the costly part on large batches.
4. Performance, when the batch has the target: every metric on those scored rows (NaN where
   undefined, e.g. ROC-AUC of one class), against the test metrics evaluate recorded. Judged:
   the headline metric (`metric`) and each metric of `tolerances` of the model's task, each with
   a seeded bootstrap 95% interval; a metric dropped when even the interval's better end is worse
   than its test value by more than its tolerance (direction-aware: log-loss and Brier worsen
   upwards). The headline's tolerance is its `tolerances` entry, else `performance_tolerance`.
5. Label drift, when the batch has labeled rows: its target against the reference's (the training
   target, reprotab/stats/drift.py): class shares (a share moved by more than `labels.max_share_change`,
   a class of at least `labels.min_reference_share` of the reference absent from a batch of
   `labels.min_rows` labeled rows or more, a single class) or, for regression, a mean shift beyond
   `labels.max_mean_shift` reference standard deviations or a constant target.
6. Retrain when: an important feature (top `important_features` by importance) drifted strongly
   (PSI >= psi_strong), more than `max_drifted_share` of the features drifted, the scores drifted
   (PSI >= psi_moderate and KS/chi-squared p < alpha), or a judged metric dropped.
7. Blockers, which stop the loop whatever `retrain` says (nothing may retrain on this batch
   without a human): label drift, and a judged metric that is undefined (NaN) on the batch.
   Neither is ever "within tolerance".

The report names the model it judged (`judged`: version, commit, source) so a reader knows which
model's verdict it is.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.incoming import Cleaned, clean_incoming, log_notes
from reprotab.errors import UserError, problem
from reprotab.model.schema import Schema, encode_target, label_text
from reprotab.model.served import TabularModel
from reprotab.monitoring.reference import DriftReference, category_labels, model_scores
from reprotab.params.sections import MonitorParams
from reprotab.stats import bootstrap
from reprotab.stats.drift import (
    Bins,
    ColumnDrift,
    categorical_drift,
    class_share_drift,
    numeric_drift,
    sample,
    target_shift,
)
from reprotab.stats.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from reprotab.stats.sketch import CategorySketch, NumericSketch, Sketch


@dataclass
class Verdict:
    """What `monitor` found: `report` is JSON-ready (drift.json); `bins` feed the figures. `retrain`
    and `reasons` say whether the batch asks for retraining; `blockers` say that no one may act on it
    without a human (undefined metrics, label drift), whatever `retrain` says."""

    retrain: bool
    reasons: list[str]
    report: dict[str, Any]
    blockers: list[str] = field(default_factory=list)  # stop the loop: never retrain on this batch unattended
    bins: dict[str, Bins] = field(default_factory=dict)


def check_batch(batch: pd.DataFrame, schema: Schema, *, where: str = "batch") -> None:
    """An empty batch or a target the model cannot take (classes it never saw, text for regression)
    is a UserError; feature columns are checked by `clean`."""
    if batch.empty:
        raise UserError(problem(where, "has no rows", None, "Pass a batch with rows to monitor"))
    if schema.task == "regression" and schema.target in batch.columns:
        target = pd.to_numeric(batch[schema.target], errors="coerce")
        if (target.isna() & batch[schema.target].notna()).any():
            raise UserError(
                problem(f"{where} target '{schema.target}'", "must be numeric for a regression model", None)
            )
    if schema.task == "classification" and schema.target in batch.columns:
        known = {label_text(c) for c in schema.classes}
        unseen = sorted({label_text(v) for v in batch[schema.target].dropna().unique()} - known)
        if unseen:
            raise UserError(
                problem(
                    f"{where} target '{schema.target}'",
                    f"holds classes the model never saw (it knows {sorted(known)})",
                    unseen,
                    "Fix the labels, or retrain on data that has these classes",
                )
            )


def clean(batch: pd.DataFrame, model: TabularModel, *, min_share: float, where: str = "batch") -> Cleaned:
    """The batch checked (`check_batch`) and cleaned by the policy for every incoming row
    (reprotab/data/incoming.py: the same as `reprotab predict` and the service)."""
    check_batch(batch, model.schema, where=where)
    return clean_incoming(batch, model.schema, featurizer=model.plan, where=where, min_share=min_share)


def feature_drift(
    reference: DriftReference, batch: pd.DataFrame, *, schema: Schema, config: MonitorParams, seed: int
) -> dict[str, tuple[ColumnDrift, Bins]]:
    """PSI and test per feature of a cleaned batch (see `clean`) against the reference's sketches."""
    found = {}
    for i, column in enumerate(schema.features):
        summary = reference.features[column]
        if isinstance(summary, NumericSketch):
            found[column] = numeric_drift(
                summary,
                batch[column].to_numpy(dtype=float, na_value=np.nan),
                bins=config.bins,
                max_rows=config.sample_rows,
                seed=seed + i,
            )
        else:
            found[column] = categorical_drift(summary, category_labels(batch[column]))
    return found


def score_drift(reference: Sketch, batch: np.ndarray, *, config: MonitorParams, seed: int) -> tuple[ColumnDrift, Bins]:
    if isinstance(reference, CategorySketch):
        return categorical_drift(reference, pd.Series(batch).map(str))
    return numeric_drift(reference, batch, bins=config.bins, max_rows=config.sample_rows, seed=seed)


def batch_metrics(task: str, scored: Scored) -> dict[str, float]:
    """Every metric of the task, NaN where it is undefined on these rows (ROC-AUC of one class)."""
    values = {}
    for name, function in BY_TASK[task].items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scikit-learn's "undefined metric" warnings: NaN says it
                value = float(function(scored))
        except (ValueError, ZeroDivisionError):
            value = math.nan
        values[name] = round(value, 6) if math.isfinite(value) else value
    return values


def judge(name: str, batch: float, test: Any, interval: list[float] | None, tolerance: float) -> dict[str, Any]:
    """One metric against its test value: dropped when even the interval's better end is worse
    than `tolerance` allows (direction-aware); undefined (NaN, inf) on the batch is never judged fine."""
    entry = {"batch": batch, "test": test, "interval_95": interval, "tolerance": tolerance}
    entry |= {"worse_by": None, "dropped": False, "undefined": not math.isfinite(batch)}
    if entry["undefined"] or not isinstance(test, int | float) or not math.isfinite(test):
        return entry
    lower = name in LOWER_IS_BETTER
    entry["worse_by"] = round(batch - test if lower else test - batch, 6)
    # The test value is itself one sample, and a small batch's metric varies by a few points.
    far = batch if interval is None else (interval[0] if lower else interval[1])
    entry["dropped"] = bool(far > test + tolerance if lower else far < test - tolerance)
    return entry


def performance(
    model: TabularModel,
    rows: pd.DataFrame,
    proba: np.ndarray | None,
    predicted: np.ndarray | None,
    *,
    test_metrics: dict[str, Any] | None,
    metric: str,
    config: MonitorParams,
    seed: int,
) -> dict[str, Any]:
    """Metrics of the scored batch rows that have a target, against the recorded test metrics:
    the headline metric and each metric of `config.tolerances` of this task are judged."""
    schema, labeled = model.schema, rows[model.schema.target].notna().to_numpy()
    truth = encode_target(rows.loc[labeled, schema.target], schema)
    if schema.task == "regression":
        assert predicted is not None  # monitor passes a regressor's predictions
        scored = Scored(y_true=truth, y_pred=predicted[labeled])
    else:
        assert proba is not None  # model_scores gives every classifier's probabilities
        positive = model.positive_index() if model.binary else None
        scored = Scored(truth, model.class_indices(proba[labeled]), proba[labeled], positive)
    batch = batch_metrics(schema.task, scored)
    test = {k: v for k, v in (test_metrics or {}).items() if not isinstance(v, dict)}
    names = [metric, *(m for m in config.tolerances if m in BY_TASK[schema.task] and m != metric)]
    judged = {}
    for name in names:
        interval = bootstrap.interval(scored, metric=name, task=schema.task, samples=config.bootstrap, seed=seed)
        tolerance = config.tolerance(name) if name == metric else config.tolerances[name]
        judged[name] = judge(name, batch[name], test.get(name), interval, tolerance)
    return {
        "rows": int(labeled.sum()),
        "metric": metric,
        "batch": batch,
        "test": test or None,
        "headline": {**judged[metric], "bootstrap": config.bootstrap},
        "judged": judged,
        "dropped": any(entry["dropped"] for entry in judged.values()),
        "dropped_metrics": [name for name, entry in judged.items() if entry["dropped"]],
        "undefined": [name for name, entry in judged.items() if entry["undefined"]],
    }


def label_drift(
    reference: DriftReference, batch: pd.DataFrame, *, schema: Schema, config: MonitorParams, seed: int
) -> dict[str, Any]:
    """The batch's labeled target against the reference's (see reprotab/stats/drift.py); {"rows": 0, ...}
    when the batch has no labeled row."""
    target = schema.target
    before = reference.target
    after = batch[target].dropna() if target in batch.columns else batch.iloc[:0, :0]
    present = 0 if before is None else before.rows - before.missing
    if not len(after) or not present:
        return {"rows": len(after), "reference_rows": present, "drifted": False, "reason": None}
    rules = config.labels
    if isinstance(before, NumericSketch):
        return target_shift(
            before,
            pd.to_numeric(after).to_numpy(dtype=float),
            max_mean_shift=rules.max_mean_shift,
            max_rows=config.sample_rows,
            seed=seed,
        )
    return class_share_drift(
        reference.class_counts(schema),
        encode_target(after, schema),
        classes=[str(c) for c in schema.classes],
        max_share_change=rules.max_share_change,
        min_rows=rules.min_rows,
        min_reference_share=rules.min_reference_share,
    )


def monitor(
    *,
    model: TabularModel,
    reference: DriftReference,
    batch: pd.DataFrame,
    config: MonitorParams,
    metric: str,
    seed: int,
    min_share: float = 0.95,
    importance: pd.Series | None = None,
    test_metrics: dict[str, Any] | None = None,
    judged: dict[str, Any] | None = None,
    where: str = "batch",
) -> Verdict:
    """Compare `batch` (raw rows) with `reference` (the model's training rows and test scores,
    summarized: reprotab/monitoring/reference.py); see the module docstring.
    `judged` names the model ({"version", "commit", "source"}): the report's `model`."""
    schema = model.schema
    cleaned = clean(batch, model, min_share=min_share, where=where)
    log_notes(cleaned.notes, where=where)
    clean_batch = cleaned.frame
    drift = feature_drift(reference, clean_batch, schema=schema, config=config, seed=seed)
    alpha = config.alpha / len(schema.features)
    ranked = rank_features(schema.features, importance)
    features: dict[str, Any] = {}
    for column in ranked:
        result, _ = drift[column]
        moved = result.psi >= config.psi_moderate and result.p_value < alpha
        strong = moved and result.psi >= config.psi_strong
        features[column] = {
            **result.as_dict(),
            "drifted": moved,
            "severity": "strong" if strong else "moderate" if moved else "none",
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
    prediction, prediction_bins = score_drift(reference.scores, batch_scores, config=config, seed=seed)
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
    if perf:
        for name in perf["dropped_metrics"]:
            entry = perf["judged"][name]
            reasons.append(
                f"performance dropped: {name} {entry['batch']:.4f} on the batch vs {entry['test']:.4f} on test "
                f"(95% interval {entry['interval_95']}, tolerance {entry['tolerance']})"
            )
    labels = label_drift(reference, batch, schema=schema, config=config, seed=seed)
    blockers = [f"label drift: {labels['reason']}"] if labels["drifted"] else []
    if perf:
        for name in perf["undefined"]:
            blockers.append(
                f"{name} is undefined on the {perf['rows']:,} labeled batch rows ({perf['batch'][name]}): "
                "it cannot say the model is fine"
            )
    report = {
        "model": judged or {"version": None, "commit": None, "source": None},
        "blockers": blockers,
        "retrain": bool(reasons),
        "reasons": reasons,
        "rows": len(batch),
        "reference_rows": reference.rows,
        "reference": reference.origin,
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
            "holdout_rows": reference.holdout_rows,
            **prediction.as_dict(),
            "drifted": bool(prediction_drifted),
        },
        "performance": perf,
        "cleaning": cleaned.report(),
        "labels": labels,
    }
    bins = {c: drift[c][1] for c in ranked} | {"(prediction)": prediction_bins}
    return Verdict(retrain=bool(reasons), reasons=reasons, report=report, blockers=blockers, bins=bins)


def rank_features(features: tuple[str, ...], importance: pd.Series | None) -> list[str]:
    """Features by importance, largest first (ties and unknowns in schema order)."""
    if importance is None:
        return list(features)
    return sorted(features, key=lambda c: -float(importance.get(c, 0.0)))
