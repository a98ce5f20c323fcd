"""Do active learning and pseudo-labeling help here? Honest numbers on two tables.

    .venv/bin/python bench/active_learning.py [--seeds 5] [--rounds 10] [--rows 10000] [--skip-pseudo]

Tables: the demo churn table (binary, ~7% positives; a seeded sample of --rows rows of
data/raw/churn.parquet) and scikit-learn's bundled digits (10 classes, 1,797 rows). Both go
through reprotab.data.prepare.prepare (seeded, stratified split) and the project's featurizer.

(a) Learning curves with a simulated labeler: start from a small random labeled set of the
    training split (the pool), then 10 rounds of: fit a small random forest, score the rest of
    the pool with reprotab.labeling.active_learning (random, margin, entropy, margin + --diversity),
    "label" the chosen batch from the known truth, refit. Test metric after each round: ROC-AUC
    and PR-AUC for churn, accuracy for digits. Mean and standard deviation over the seeds;
    printed as a table and drawn to bench/results/active_learning.png.
(b) Pseudo-labeling: keep 5%, 20% and 50% of the training and validation labels (stratified),
    the rest of the training rows become the unlabeled rows; fit with reprotab.train.fit.fit
    alone and with reprotab.train.pseudo_labeling.self_train (params.yaml defaults, enabled), same
    seed, same model. Prints the test metric with and without, the pseudo-labeled rows and their
    true precision (the benchmark knows the hidden labels) against the precision estimated on
    validation.
Small random forests (n_jobs 1): about 15-20 minutes for 5 seeds on 2 shared cores, 1 minute with
--seeds 1 --rounds 2. --min-support / --target-precision try other pseudo-labeling settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reprotab.data.prepare import prepare  # noqa: E402
from reprotab.labeling.active_learning import diverse, most_uncertain, uncertainty  # noqa: E402
from reprotab.model.featurizer import build_featurizer, featurize  # noqa: E402
from reprotab.model.schema import encode_target  # noqa: E402
from reprotab.params.sections import DataParams, FeaturizeParams, PseudoLabelingParams, TrainParams  # noqa: E402
from reprotab.train.fit import fit  # noqa: E402
from reprotab.train.pseudo_labeling import self_train  # noqa: E402

RESULTS = ROOT / "bench/results"
FOREST = {"n_estimators": 60, "min_samples_leaf": 1, "max_features": "sqrt", "n_jobs": 1}
STRATEGIES = ("random", "margin", "entropy", "margin+diversity")


def tables(rows: int, seed: int) -> dict[str, tuple[pd.DataFrame, DataParams]]:
    from sklearn.datasets import load_digits

    churn = pd.read_parquet(ROOT / "data/raw/churn.parquet").sample(rows, random_state=seed)
    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"px{i}" for i in range(digits.data.shape[1])])
    frame.insert(0, "id", np.arange(len(frame)))
    frame["digit"] = digits.target
    return {
        "churn": (churn, DataParams(target="churned", id_column="customer_id", drop_columns=("next_month_spend",))),
        "digits": (frame, DataParams(target="digit", id_column="id")),
    }


def split(frame: pd.DataFrame, data: DataParams, seed: int):
    splits, schema, _ = prepare(
        frame, task="classification", seed=seed, data=data, test_size=0.25, validation_size=0.2, text_min_share=0.95
    )
    return splits, schema


def score(name: str, y: np.ndarray, proba: np.ndarray, classes: int) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

    if name == "churn":
        return {"roc_auc": roc_auc_score(y, proba[:, 1]), "pr_auc": average_precision_score(y, proba[:, 1])}
    full = np.zeros((len(proba), classes))
    full[:, : proba.shape[1]] = proba
    return {"accuracy": accuracy_score(y, full.argmax(axis=1))}


def learning_curve(name, frame, data, *, seed, rounds, start, batch):
    """Test metrics after each round, per strategy, for one seed."""
    from sklearn.ensemble import RandomForestClassifier

    splits, schema = split(frame, data, seed)
    pool = pd.concat([splits["train"], splits["validation"]], ignore_index=True)
    # fitted on the pool without its labels (they are what the learner queries), so no target encoding
    unsupervised = FeaturizeParams(high_cardinality="one_hot")
    featurizer = build_featurizer(schema=schema, config=unsupervised).fit(pool[list(schema.features)])
    X_pool = featurizer.transform(pool[list(schema.features)]).to_numpy(dtype=float)
    X_test = featurizer.transform(splits["test"][list(schema.features)]).to_numpy(dtype=float)
    y_pool, y_test = encode_target(pool[schema.target], schema), encode_target(splits["test"][schema.target], schema)
    rng = np.random.default_rng(seed)
    while True:  # a random start with at least two classes
        initial = rng.choice(len(pool), size=start, replace=False)
        if len(np.unique(y_pool[initial])) > 1:
            break
    curves = {}
    for strategy in STRATEGIES:
        labeled = list(initial)
        curve = []
        for round_ in range(rounds + 1):
            model = RandomForestClassifier(**FOREST, random_state=seed).fit(X_pool[labeled], y_pool[labeled])
            proba = np.zeros((len(X_test), len(schema.classes)))
            proba[:, model.classes_] = model.predict_proba(X_test)
            curve.append({"labels": len(labeled), **score(name, y_test, proba, len(schema.classes))})
            if round_ == rounds:
                break
            rest = np.setdiff1d(np.arange(len(pool)), labeled)
            rest_proba = np.zeros((len(rest), len(schema.classes)))
            rest_proba[:, model.classes_] = model.predict_proba(X_pool[rest])
            base = strategy.split("+")[0]
            scores = uncertainty(rest_proba, base, seed=seed * 100 + round_)
            if strategy.endswith("+diversity"):
                chosen = diverse(scores, X_pool[rest], batch, seed=seed)
            else:
                chosen = most_uncertain(scores, batch)
            labeled += rest[chosen].tolist()
        curves[strategy] = curve
    return curves


def keep_labels(frame: pd.DataFrame, target: str, share: float, seed: int) -> pd.DataFrame:
    """A stratified `share` of the rows (at least 2 per class)."""
    parts = [group.sample(max(2, round(share * len(group))), random_state=seed) for _, group in frame.groupby(target)]
    return pd.concat(parts).sample(frac=1, random_state=seed)


def pseudo_labeling_run(name, frame, data, *, seed, share, config):
    splits, schema = split(frame, data, seed)
    train = keep_labels(splits["train"], schema.target, share, seed)
    hidden = splits["train"].drop(index=train.index)
    validation = keep_labels(splits["validation"], schema.target, share, seed)
    featurizer, train_f, validation_f = featurize(
        train=train, validation=validation, schema=schema, config=FeaturizeParams()
    )
    unlabeled = featurizer.transform(hidden[list(schema.features)])
    unlabeled.index = hidden[schema.id_column].to_numpy()
    truth = pd.Series(encode_target(hidden[schema.target], schema), index=unlabeled.index)
    common = {
        "features": train_f,
        "schema": schema,
        "featurizer": featurizer,
        "model": "random_forest",
        "hyperparameters": FOREST,
        "seed": seed,
        "validation": validation_f,
        "settings": TrainParams(),
    }
    y_test = encode_target(splits["test"][schema.target], schema)
    base, _ = fit(**common)
    started = time.perf_counter()
    model, summary, pseudo = self_train(unlabeled=unlabeled, config=config, **common)
    seconds = time.perf_counter() - started
    report = summary["pseudo_labeling"]
    estimated = [p for r in report["rounds"].values() for p in r["validation_precision"].values() if p is not None]
    return {
        "table": name,
        "share": share,
        "seed": seed,
        "labeled_train": len(train),
        "labeled_validation": len(validation),
        "unlabeled": len(unlabeled),
        "without": score(name, y_test, base.predict_proba(splits["test"]), len(schema.classes)),
        "with": score(name, y_test, model.predict_proba(splits["test"]), len(schema.classes)),
        "pseudo_rows": len(pseudo),
        "pseudo_per_class": {str(schema.classes[k]): int(v) for k, v in pseudo.value_counts().items()},
        "true_precision": float((truth.loc[pseudo.index].to_numpy() == pseudo.to_numpy()).mean())
        if len(pseudo)
        else None,
        "estimated_precision_min": min(estimated) if estimated else None,
        "rounds": len(report["rounds"]),
        "seconds": round(seconds, 1),
    }


def curves_table(all_curves: dict, metric: str) -> pd.DataFrame:
    """Rows: labels; columns: strategy mean ± std over seeds."""
    out = {}
    for strategy in STRATEGIES:
        values = np.array([[point[metric] for point in seed[strategy]] for seed in all_curves])
        labels = [point["labels"] for point in all_curves[0][strategy]]
        out[strategy] = [f"{m:.4f} ± {s:.4f}" for m, s in zip(values.mean(0), values.std(0), strict=True)]
    return pd.DataFrame(out, index=pd.Index(labels, name="labels"))


def plot(curves: dict[str, list], metrics: dict[str, str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4.5))
    for ax, (name, metric) in zip(np.atleast_1d(axes), metrics.items(), strict=True):
        for strategy in STRATEGIES:
            values = np.array([[p[metric] for p in seed[strategy]] for seed in curves[name]])
            labels = [p["labels"] for p in curves[name][0][strategy]]
            mean, std = values.mean(0), values.std(0)
            ax.plot(labels, mean, marker="o", ms=3, label=strategy)
            ax.fill_between(labels, mean - std, mean + std, alpha=0.15)
        ax.set(title=f"{name}: test {metric} (mean ± sd, {len(curves[name])} seeds)", xlabel="labels", ylabel=metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000, help="rows sampled from the churn table")
    parser.add_argument("--skip-curves", action="store_true")
    parser.add_argument("--skip-pseudo", action="store_true")
    parser.add_argument("--min-support", type=int, default=None, help="override train.pseudo_labeling.min_support")
    parser.add_argument("--target-precision", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = {"churn": {"start": 100, "batch": 50}, "digits": {"start": 30, "batch": 20}}
    metrics = {"churn": "pr_auc", "digits": "accuracy"}
    results: dict = {"curves": {}, "pseudo": []}
    if not args.skip_curves:
        for name in ("churn", "digits"):
            started = time.perf_counter()
            per_seed = []
            for seed in range(args.seeds):
                frame, data = tables(args.rows, seed)[name]
                per_seed.append(learning_curve(name, frame, data, seed=seed, rounds=args.rounds, **settings[name]))
            results["curves"][name] = per_seed
            shown = ("roc_auc", "pr_auc") if name == "churn" else ("accuracy",)
            for metric in shown:
                print(f"\n(a) {name}: test {metric} by labels used ({args.seeds} seeds, mean ± sd)")
                print(curves_table(per_seed, metric).to_string())
            print(f"({time.perf_counter() - started:.0f}s)")
        plot(results["curves"], metrics, RESULTS / "active_learning.png")
        print(f"\nlearning curves: {RESULTS / 'active_learning.png'}")
    if not args.skip_pseudo:
        overrides = {"min_support": args.min_support, "target_precision": args.target_precision}
        config = PseudoLabelingParams(enabled=True, **{k: v for k, v in overrides.items() if v is not None})
        for name in ("churn", "digits"):
            for share in (0.05, 0.2, 0.5):
                for seed in range(args.seeds):
                    frame, data = tables(args.rows, seed)[name]
                    run = pseudo_labeling_run(name, frame, data, seed=seed, share=share, config=config)
                    results["pseudo"].append(run)
        rows = []
        for (name, share), group in pd.DataFrame(results["pseudo"]).groupby(["table", "share"]):
            for metric in group["without"].iloc[0]:
                without = np.array([r[metric] for r in group["without"]])
                with_ = np.array([r[metric] for r in group["with"]])
                rows.append(
                    {
                        "table": name,
                        "labels kept": f"{share:.0%}",
                        "metric": metric,
                        "without": f"{without.mean():.4f} ± {without.std():.4f}",
                        "with": f"{with_.mean():.4f} ± {with_.std():.4f}",
                        "diff (wins)": f"{(with_ - without).mean():+.4f} ({int((with_ > without).sum())}/{len(group)})",
                        "pseudo rows": f"{group['pseudo_rows'].mean():.0f}",
                        "true prec.": f"{pd.to_numeric(group['true_precision']).mean():.3f}",
                        "est. prec. (min)": f"{pd.to_numeric(group['estimated_precision_min']).mean():.3f}",
                    }
                )
        print(f"\n(b) pseudo-labeling ({config}), test metric with and without")
        print(pd.DataFrame(rows).to_string(index=False))
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.min_support is None and args.target_precision is None else "-variant"
    (RESULTS / f"active_learning{suffix}.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
