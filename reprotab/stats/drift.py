"""Distribution drift of one column, reference vs batch: PSI plus a two-sample test.

Pure functions, no IO. The reference side is a sketch (reprotab/stats/sketch.py: quantiles or
category counts, summarized once at train time), never the training rows; the batch side is the
batch's values. The monitor (reprotab/monitoring/verdict.py) calls them per feature and for the
model's scores.

- PSI, the population stability index: sum over bins of (b - r) * ln(b / r), with r and b the
  reference and batch shares of each bin, each floored at `EPSILON` so an empty bin does not give
  an infinite value. Numbers are binned at the reference's quantiles (deciles by default; repeated
  edges merged, so a column of few distinct values gets one bin per value), with one more bin for
  missing values. Categories are bins themselves, plus a missing bin and an "unseen" bin for batch
  values the reference never had (and "other" when the reference pooled its rarest categories).
  Bands: below 0.1 stable, 0.1-0.25 moderate, above 0.25 strong.
- The two-sample test: Kolmogorov-Smirnov of the present numbers against the reference's sketch
  (`ks_test`), a chi-squared test of the contingency table of bin counts for categories. The
  batch is cut to a seeded sample of at most `max_rows` rows before KS and the reference counted
  as at most that many (KS's p-value on a million rows flags differences nobody would act on, and
  the batch's side costs a sort); chi-squared uses all counts.

Label drift (the monitor's blockers) compares a labeled batch's target with the reference's:
`class_share_drift` (each class's share, chi-squared p-value) and `target_shift` (mean shift in
reference standard deviations, a constant target, KS p-value). Their p-values are reported, not
used: on a large batch any change is significant, and a month's churn may legitimately move.

Binning is vectorized (np.searchsorted, Index.get_indexer, np.bincount), so a million rows
take milliseconds per column.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from reprotab.stats.sketch import CategorySketch, NumericSketch

EPSILON = 1e-4  # share floor of an empty bin in PSI
MISSING, UNSEEN, OTHER = "(missing)", "(unseen)", "(other)"


@dataclass(frozen=True)
class Bins:
    """Bin labels and the reference and batch counts per bin."""

    labels: list[str]
    reference: np.ndarray
    batch: np.ndarray

    def shares(self) -> tuple[np.ndarray, np.ndarray]:
        return _shares(self.reference), _shares(self.batch)


@dataclass(frozen=True)
class ColumnDrift:
    kind: str  # numeric | categorical
    psi: float
    test: str  # ks | chi2
    statistic: float
    p_value: float
    reference_missing: float  # shares of missing values
    batch_missing: float

    def as_dict(self) -> dict:
        values = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}
        return {**values, "p_value": float(f"{self.p_value:.4g}")}  # tiny p-values keep their digits


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(reference_counts: np.ndarray, batch_counts: np.ndarray, *, epsilon: float = EPSILON) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    r = np.maximum(_shares(np.asarray(reference_counts, dtype=float)), epsilon)
    b = np.maximum(_shares(np.asarray(batch_counts, dtype=float)), epsilon)
    return float(np.sum((b - r) * np.log(b / r)))


def numeric_bins(reference: NumericSketch, batch: np.ndarray, *, bins: int = 10) -> Bins:
    """Counts per quantile bin of the reference (a value equal to an edge goes above it), plus
    missing; the reference's counts are its shares (from the sketch) times its present rows."""
    edges = reference.edges(bins)
    missing = np.isnan(batch)
    index = np.searchsorted(edges, batch[~missing], side="right")
    counted = np.append(np.bincount(index, minlength=len(edges) + 1), missing.sum())
    below = np.concatenate([[0.0], reference.cdf(edges, strict=True), [1.0]])
    expected = np.append(np.diff(below) * reference.present, reference.missing)
    bounds = [-np.inf, *edges.tolist(), np.inf]
    labels = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(bounds)] + [MISSING]
    return Bins(labels=labels, reference=expected, batch=counted)


def categorical_bins(reference: CategorySketch, batch: pd.Series) -> Bins:
    """Counts per reference category, plus (other) when the reference pooled rare ones, a missing
    bin and an unseen bin (batch values the reference never had; counted as other when it pooled)."""
    categories = pd.Index(list(reference.counts))
    codes = categories.get_indexer(batch)
    missing = int(batch.isna().sum())
    known = np.bincount(codes[codes >= 0], minlength=len(categories))
    outside = int((codes < 0).sum()) - missing
    pooled = [OTHER] if reference.other else []
    return Bins(
        labels=[*categories, *pooled, MISSING, UNSEEN],
        reference=np.array([*reference.counts.values(), *([reference.other] if pooled else []), reference.missing, 0]),
        batch=np.append(known, [outside, missing, 0] if pooled else [missing, outside]),
    )


def sample(values: np.ndarray, *, max_rows: int, seed: int) -> np.ndarray:
    """At most `max_rows` values, drawn without replacement with `seed` (all of them when fewer)."""
    if len(values) <= max_rows:
        return values
    return np.random.default_rng(seed).choice(values, size=max_rows, replace=False)


def ks_test(reference: NumericSketch, batch: np.ndarray, *, max_rows: int, seed: int) -> tuple[float, float]:
    """KS statistic and p-value of the present values against the reference's sketch (exact up to
    the sketch's 1/POINTS); (1, 0) when only one side has any. The statistic is the largest gap of
    the two distribution functions at every batch value and sketch point, from both sides; the
    p-value is the asymptotic two-sample one with the reference counted as at most `max_rows` rows."""
    b = batch[~np.isnan(batch)]
    if not reference.present or not len(b):
        return (0.0, 1.0) if reference.present == len(b) else (1.0, 0.0)
    b = np.sort(sample(b, max_rows=max_rows, seed=seed))
    points = np.union1d(b, reference.quantiles)
    above = np.abs(np.searchsorted(b, points, side="right") / len(b) - reference.cdf(points))
    below = np.abs(np.searchsorted(b, points, side="left") / len(b) - reference.cdf(points, strict=True))
    statistic = float(max(above.max(), below.max()))
    n, m = min(reference.present, max_rows), len(b)
    return statistic, float(stats.kstwo.sf(statistic, max(1, round(n * m / (n + m)))))


def chi2_test(bins: Bins) -> tuple[float, float]:
    """Chi-squared test of independence of (reference, batch) x bin; bins empty on both sides dropped."""
    table = np.vstack([bins.reference, bins.batch]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def numeric_drift(
    reference: NumericSketch, batch: np.ndarray, *, bins: int = 10, max_rows: int = 50_000, seed: int = 0
) -> tuple[ColumnDrift, Bins]:
    counted = numeric_bins(reference, batch, bins=bins)
    statistic, p_value = ks_test(reference, batch, max_rows=max_rows, seed=seed)
    drift = ColumnDrift(
        kind="numeric",
        psi=psi(counted.reference, counted.batch),
        test="ks",
        statistic=statistic,
        p_value=p_value,
        reference_missing=reference.missing / max(reference.rows, 1),
        batch_missing=float(np.isnan(batch).mean()),
    )
    return drift, counted


def categorical_drift(reference: CategorySketch, batch: pd.Series) -> tuple[ColumnDrift, Bins]:
    counted = categorical_bins(reference, batch)
    statistic, p_value = chi2_test(counted)
    drift = ColumnDrift(
        kind="categorical",
        psi=psi(counted.reference, counted.batch),
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        reference_missing=reference.missing / max(reference.rows, 1),
        batch_missing=float(batch.isna().mean()),
    )
    return drift, counted


def class_share_drift(
    reference: np.ndarray,
    batch: np.ndarray,
    *,
    classes: list[str],
    max_share_change: float,
    min_rows: int,
    min_reference_share: float,
) -> dict:
    """Label drift of class codes (`batch`: indices into `classes`; `reference`: the reference's
    count of each class): each class's share before and after,
    a chi-squared p-value, and why it drifted (None when it did not): a share moved by more than
    `max_share_change`, a class holding `min_reference_share` of the reference is absent from a
    batch of at least `min_rows` rows, or the batch holds one class only."""
    counted = Bins(
        labels=list(classes),
        reference=np.asarray(reference),
        batch=np.bincount(batch, minlength=len(classes)),
    )
    before, after = counted.shares()
    statistic, p_value = chi2_test(counted)
    why = []
    for name, r, b in zip(classes, before, after, strict=True):
        if abs(b - r) > max_share_change:
            why.append(f"class '{name}' share {r:.3f} -> {b:.3f} (moved more than {max_share_change})")
        elif b == 0 and r >= min_reference_share and len(batch) >= min_rows:
            why.append(f"class '{name}' ({r:.1%} of the reference) is absent from {len(batch):,} labeled rows")
    present = np.flatnonzero(counted.batch)
    if len(present) == 1:
        why.insert(0, f"every labeled row ({len(batch):,}) is class '{classes[present[0]]}'")
    return {
        "kind": "classes",
        "rows": len(batch),
        "reference_rows": int(counted.reference.sum()),
        "shares": {
            name: {"reference": round(float(r), 6), "batch": round(float(b), 6), "change": round(float(b - r), 6)}
            for name, r, b in zip(classes, before, after, strict=True)
        },
        "test": "chi2",
        "statistic": round(statistic, 6),
        "p_value": float(f"{p_value:.4g}"),
        "drifted": bool(why),
        "reason": "; ".join(why) or None,
    }


def target_shift(
    reference: NumericSketch, batch: np.ndarray, *, max_mean_shift: float, max_rows: int, seed: int
) -> dict:
    """Label drift of a numeric target: mean, standard deviation and range before and after, a KS
    p-value, and why it drifted (None when it did not): the mean moved by more than `max_mean_shift`
    reference standard deviations, or the batch's target is constant (two rows or more)."""

    def stats_of(mean: float, std: float, low: float, high: float) -> dict:
        return {k: round(float(v), 6) for k, v in {"mean": mean, "std": std, "min": low, "max": high}.items()}

    spread, moved = reference.std, float(batch.mean() - reference.mean)
    shift = moved / spread if spread > 0 else 0.0 if moved == 0 else float(np.copysign(np.inf, moved))
    why = []
    if len(batch) >= 2 and batch.min() == batch.max():
        why.append(f"the target is constant ({batch[0]:g}) over {len(batch):,} labeled rows")
    if abs(shift) > max_mean_shift:
        why.append(
            f"the target's mean moved {reference.mean:.4g} -> {batch.mean():.4g} "
            f"({shift:+.2f} reference standard deviations, more than {max_mean_shift})"
        )
    statistic, p_value = ks_test(reference, batch, max_rows=max_rows, seed=seed)
    return {
        "kind": "numbers",
        "rows": len(batch),
        "reference_rows": reference.present,
        "reference": stats_of(reference.mean, reference.std, reference.quantiles[0], reference.quantiles[-1]),
        "batch": stats_of(batch.mean(), batch.std(), batch.min(), batch.max()),
        "mean_shift_sd": round(float(shift), 6),
        "test": "ks",
        "statistic": round(statistic, 6),
        "p_value": float(f"{p_value:.4g}"),
        "drifted": bool(why),
        "reason": "; ".join(why) or None,
    }
