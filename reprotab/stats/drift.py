"""Distribution drift of one column, reference vs batch: PSI plus a two-sample test.

Pure functions on arrays, no IO. The monitor (reprotab/monitoring/verdict.py) calls them per feature and
for the model's scores.

- PSI, the population stability index: sum over bins of (b - r) * ln(b / r), with r and b the
  reference and batch shares of each bin, each floored at `EPSILON` so an empty bin does not give
  an infinite value. Numbers are binned at the reference's quantiles (deciles by default; repeated
  edges merged, so a column of few distinct values gets one bin per value), with one more bin for
  missing values. Categories are bins themselves, plus a missing bin and an "unseen" bin for batch
  values the reference never had. Bands: below 0.1 stable, 0.1-0.25 moderate, above 0.25 strong.
- The two-sample test: Kolmogorov-Smirnov on the present numbers (scipy.stats.ks_2samp), a
  chi-squared test of the contingency table of bin counts for categories. Both sides are cut to
  a seeded sample of at most `max_rows` rows before KS (its p-value on a million rows flags
  differences nobody would act on, and it costs a sort); chi-squared uses all counts.

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

EPSILON = 1e-4  # share floor of an empty bin in PSI
MISSING, UNSEEN = "(missing)", "(unseen)"


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


def quantile_edges(reference: np.ndarray, *, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles, repeated edges merged."""
    present = reference[~np.isnan(reference)]
    if not len(present):
        return np.array([])
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def numeric_bins(reference: np.ndarray, batch: np.ndarray, *, bins: int = 10) -> Bins:
    """Counts per quantile bin of the reference (a value equal to an edge goes above it), plus missing."""
    edges = quantile_edges(reference, bins=bins)

    def count(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        index = np.searchsorted(edges, values[~missing], side="right")
        return np.append(np.bincount(index, minlength=len(edges) + 1), missing.sum())

    bounds = [-np.inf, *edges.tolist(), np.inf]
    labels = [f"[{lo:.4g}, {hi:.4g})" for lo, hi in itertools.pairwise(bounds)] + [MISSING]
    return Bins(labels=labels, reference=count(reference), batch=count(batch))


def categorical_bins(reference: pd.Series, batch: pd.Series) -> Bins:
    """Counts per reference category, plus a missing bin and an unseen bin (batch only)."""
    categories = pd.Index(reference.dropna().unique())

    def count(values: pd.Series) -> np.ndarray:
        codes = categories.get_indexer(values)
        missing = int(values.isna().sum())
        known = np.bincount(codes[codes >= 0], minlength=len(categories))
        return np.append(known, [missing, int((codes < 0).sum()) - missing])

    return Bins(labels=[*map(str, categories), MISSING, UNSEEN], reference=count(reference), batch=count(batch))


def sample(values: np.ndarray, *, max_rows: int, seed: int) -> np.ndarray:
    """At most `max_rows` values, drawn without replacement with `seed` (all of them when fewer)."""
    if len(values) <= max_rows:
        return values
    return np.random.default_rng(seed).choice(values, size=max_rows, replace=False)


def ks_test(reference: np.ndarray, batch: np.ndarray, *, max_rows: int, seed: int) -> tuple[float, float]:
    """KS statistic and p-value of the present values; (1, 0) when only one side has any."""
    r, b = reference[~np.isnan(reference)], batch[~np.isnan(batch)]
    if not len(r) or not len(b):
        return (0.0, 1.0) if len(r) == len(b) else (1.0, 0.0)
    result = stats.ks_2samp(sample(r, max_rows=max_rows, seed=seed), sample(b, max_rows=max_rows, seed=seed + 1))
    return float(result.statistic), float(result.pvalue)


def chi2_test(bins: Bins) -> tuple[float, float]:
    """Chi-squared test of independence of (reference, batch) x bin; bins empty on both sides dropped."""
    table = np.vstack([bins.reference, bins.batch]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def numeric_drift(
    reference: np.ndarray, batch: np.ndarray, *, bins: int = 10, max_rows: int = 50_000, seed: int = 0
) -> tuple[ColumnDrift, Bins]:
    counted = numeric_bins(reference, batch, bins=bins)
    statistic, p_value = ks_test(reference, batch, max_rows=max_rows, seed=seed)
    drift = ColumnDrift(
        kind="numeric",
        psi=psi(counted.reference, counted.batch),
        test="ks",
        statistic=statistic,
        p_value=p_value,
        reference_missing=float(np.isnan(reference).mean()),
        batch_missing=float(np.isnan(batch).mean()),
    )
    return drift, counted


def categorical_drift(reference: pd.Series, batch: pd.Series) -> tuple[ColumnDrift, Bins]:
    counted = categorical_bins(reference, batch)
    statistic, p_value = chi2_test(counted)
    drift = ColumnDrift(
        kind="categorical",
        psi=psi(counted.reference, counted.batch),
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        reference_missing=float(reference.isna().mean()),
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
    """Label drift of class codes (indices into `classes`): each class's share before and after,
    a chi-squared p-value, and why it drifted (None when it did not): a share moved by more than
    `max_share_change`, a class holding `min_reference_share` of the reference is absent from a
    batch of at least `min_rows` rows, or the batch holds one class only."""
    counted = Bins(
        labels=list(classes),
        reference=np.bincount(reference, minlength=len(classes)),
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
        "reference_rows": len(reference),
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


def target_shift(reference: np.ndarray, batch: np.ndarray, *, max_mean_shift: float, max_rows: int, seed: int) -> dict:
    """Label drift of a numeric target: mean, standard deviation and range before and after, a KS
    p-value, and why it drifted (None when it did not): the mean moved by more than `max_mean_shift`
    reference standard deviations, or the batch's target is constant (two rows or more)."""

    def stats_of(values: np.ndarray) -> dict:
        return {
            "mean": round(float(values.mean()), 6),
            "std": round(float(values.std()), 6),
            "min": round(float(values.min()), 6),
            "max": round(float(values.max()), 6),
        }

    spread, moved = float(reference.std()), float(batch.mean() - reference.mean())
    shift = moved / spread if spread > 0 else 0.0 if moved == 0 else float(np.copysign(np.inf, moved))
    why = []
    if len(batch) >= 2 and batch.min() == batch.max():
        why.append(f"the target is constant ({batch[0]:g}) over {len(batch):,} labeled rows")
    if abs(shift) > max_mean_shift:
        why.append(
            f"the target's mean moved {reference.mean():.4g} -> {batch.mean():.4g} "
            f"({shift:+.2f} reference standard deviations, more than {max_mean_shift})"
        )
    statistic, p_value = ks_test(reference, batch, max_rows=max_rows, seed=seed)
    return {
        "kind": "numbers",
        "rows": len(batch),
        "reference_rows": len(reference),
        "reference": stats_of(reference),
        "batch": stats_of(batch),
        "mean_shift_sd": round(float(shift), 6),
        "test": "ks",
        "statistic": round(statistic, 6),
        "p_value": float(f"{p_value:.4g}"),
        "drifted": bool(why),
        "reason": "; ".join(why) or None,
    }
