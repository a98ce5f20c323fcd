"""Model quality of the shipped defaults against LightGBM's defaults and FLAML, on several tables.

    .venv/bin/python bench/quality.py [--tables churn,digits] [--budget 60] [--quick]
                                      [--set model=lightgbm --set train.early_stopping_rounds=30]
                                      [--columns default,lgbm] [--seeds 3]

Every table is split 80/20 (seeded; stratified for classification); with --seeds N it is split N
times (seeds 42, 43, ...; the project's `seed` and FLAML's follow the split's) and each cell is
the mean over the N splits with its standard deviation, so a gap can be told from split noise. The project gets the
80 % as its raw table (it splits it again into train/validation/test, as a user's run does) and
the held-out 20 % scores what each contender fitted:

  default  the project with params.yaml as shipped (plus --set overrides), `pipeline.run`
  lgbm     LGBMClassifier()/LGBMRegressor() with the library's defaults on the 80 %
           (text columns as pandas categories, missing values left as NaN)
  tuned    the project with model lightgbm, tuner optuna, a `--budget`-second search, 200 trials at most
  auto     the same search with model auto: it also chooses the family (random forest, XGBoost,
           LightGBM, CatBoost, linear)
  ensemble the same search with model ensemble: a greedy blend of its best trials; the notes add its
           members, tune.confirm's validation scores, and `single`: the held-out score of the
           search's best single trial fitted alone (the blend's gain at equal search)
  flaml    FLAML AutoML with time_budget `--budget` on the 80 %, same metric, n_jobs 2

Metrics: ROC-AUC (binary), macro one-vs-rest ROC-AUC (multiclass), R² (regression); for the
imbalanced binary tables also F1 of `predict` (each model's own decision: the project's chosen
threshold, 0.5 for the others). The tables are public ones bundled in scikit-learn's and
statsmodels' wheels and generated ones with known structure (nothing is downloaded). The data
overrides each run gets: target, task, metric, id_column null, drop_columns [], categorical_columns [],
positive_class null.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from reprotab import pipeline  # noqa: E402
from reprotab.data.incoming import clean_incoming  # noqa: E402
from reprotab.data.prepare import text_to_numbers  # noqa: E402
from reprotab.params.loader import parse_params  # noqa: E402

SEED = 42
COLUMNS = ("default", "lgbm", "tuned", "auto", "ensemble", "flaml")
WIDTH = 24  # characters per contender column
TUNED_SETTINGS = {"model": "lightgbm", "tuner": "optuna", "tune.n_trials": 200}
SEARCHED = {  # column → overrides
    "tuned": TUNED_SETTINGS,
    "auto": {**TUNED_SETTINGS, "model": "auto"},
    "ensemble": {**TUNED_SETTINGS, "model": "ensemble"},
}


# ----------------------------------------------------------------------------- tables


@dataclass
class Table:
    name: str
    kind: str  # binary | multiclass | regression
    target: str
    build: Callable[[], pd.DataFrame]
    imbalanced: bool = False
    note: str = ""


def _sklearn(loader: Callable, target: str = "target") -> pd.DataFrame:
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    return frame.rename(columns={"target": target}) if target != "target" else frame


def _churn() -> pd.DataFrame:
    from reprotab.data.demo import generate

    return generate(rows=10_000, seed=7).drop(columns=["customer_id", "next_month_spend"])


def _spend() -> pd.DataFrame:
    from reprotab.data.demo import generate

    return generate(rows=10_000, seed=8).drop(columns=["customer_id", "churned"])


def _messy_binary() -> pd.DataFrame:
    """Imbalanced (~6 %) with a 400-level category carrying signal, numbers stored as text, gaps."""
    rng = np.random.default_rng(SEED)
    x, y = datasets.make_classification(
        n_samples=12_000,
        n_features=12,
        n_informative=6,
        n_redundant=2,
        weights=[0.94],
        flip_y=0.01,
        class_sep=0.8,
        random_state=SEED,
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    levels = np.array([f"m{i:03d}" for i in range(400)])
    risk = rng.beta(0.5, 4.0, size=len(levels))  # each merchant's share of the positives' weight
    p_pos, p_neg = risk / risk.sum(), (1 - risk) / (1 - risk).sum()
    frame["merchant"] = np.where(y == 1, rng.choice(levels, len(y), p=p_pos), rng.choice(levels, len(y), p=p_neg))
    frame["channel"] = rng.choice(["web", "app", "store", "phone"], len(y), p=[0.4, 0.3, 0.2, 0.1])
    text = frame["x0"].round(3).astype(str)
    text[rng.random(len(y)) < 0.02] = "?"  # a few unparseable entries: still a numeric column (>= 95 % parse)
    frame["x0"] = text.astype(object)
    for column in ("x1", "x2", "x5"):
        frame.loc[rng.random(len(y)) < 0.12, column] = np.nan
    frame["label"] = np.where(y == 1, "fraud", "ok")
    return frame


def _rare_event() -> pd.DataFrame:
    """Numeric-only, ~3 % positives, weak separation."""
    x, y = datasets.make_classification(
        n_samples=10_000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        weights=[0.97],
        flip_y=0.005,
        class_sep=0.7,
        random_state=SEED + 1,
    )
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    frame["event"] = y
    return frame


def _friedman() -> pd.DataFrame:
    """make_friedman1 (interactions, a sine) plus categories with additive and interacting effects."""
    rng = np.random.default_rng(SEED + 2)
    x, y = datasets.make_friedman1(n_samples=6_000, n_features=10, noise=1.0, random_state=SEED + 2)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    region = rng.choice(["north", "south", "east", "west", "centre"], len(y))
    tier = rng.choice(["basic", "plus", "pro"], len(y), p=[0.5, 0.3, 0.2])
    shift = pd.Series(region).map({"north": 2.0, "south": -1.0, "east": 0.5, "west": 0.0, "centre": -2.0}).to_numpy()
    y = y + shift + np.where(tier == "pro", 3.0 * x[:, 0], 0.0) + np.where(tier == "basic", -1.5, 0.0)
    frame["region"], frame["tier"], frame["y"] = region, tier, y
    return frame


def _multiclass_cats() -> pd.DataFrame:
    """5 unbalanced classes; two categorical columns whose levels shift the classes; gaps."""
    rng = np.random.default_rng(SEED + 3)
    x, y = datasets.make_classification(
        n_samples=8_000,
        n_features=10,
        n_informative=6,
        n_classes=5,
        n_clusters_per_class=1,
        weights=[0.4, 0.25, 0.2, 0.1, 0.05],
        class_sep=0.8,
        random_state=SEED + 3,
    )
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])
    colours = np.array(["red", "green", "blue", "grey", "black", "white"])
    # the colour is informative: class k prefers colour k with probability 0.4
    frame["colour"] = np.where(rng.random(len(y)) < 0.4, colours[y], rng.choice(colours, len(y)))
    frame["site"] = rng.choice([f"s{i}" for i in range(40)], len(y))
    frame.loc[rng.random(len(y)) < 0.1, "x3"] = np.nan
    frame["segment"] = np.array(["a", "b", "c", "d", "e"])[y]
    return frame


def _statsmodels(name: str) -> pd.DataFrame:
    """A public table bundled in statsmodels' wheel (nothing is downloaded)."""
    from statsmodels import datasets as sm_datasets

    return getattr(sm_datasets, name).load_pandas().data.copy()


def _fair() -> pd.DataFrame:
    """Fair (1978), extramarital affairs survey, 6,366 rows: any affair (~32 %) from 8 answers."""
    frame = _statsmodels("fair")
    frame["affair"] = (frame.pop("affairs") > 0).astype(int)
    for column in ("occupation", "occupation_husb", "religious"):
        frame[column] = frame[column].astype(int).astype(str)  # coded answers, not quantities
    return frame


def _anes96() -> pd.DataFrame:
    """1996 American National Election Study, 944 rows: the vote (Clinton / Dole) from 10 answers."""
    frame = _statsmodels("anes96")
    frame["vote"] = frame["vote"].astype(int)
    return frame


def _star98() -> pd.DataFrame:
    """California schools 1998, 303 rows × 20: the share of pupils above the national maths median."""
    frame = _statsmodels("star98")
    frame["above_share"] = frame["NABOVE"] / (frame["NABOVE"] + frame["NBELOW"])
    return frame.drop(columns=["NABOVE", "NBELOW"])


def _randhie() -> pd.DataFrame:
    """RAND health insurance experiment, 20,190 rows: doctor visits (a noisy count) from 9 columns."""
    return _statsmodels("randhie")


def _grunfeld() -> pd.DataFrame:
    """Grunfeld (1958), 220 rows: a firm's investment from its value, capital, name and year (close to linear)."""
    frame = _statsmodels("grunfeld")
    frame["firm"] = frame["firm"].astype(str)
    return frame


def _near_linear() -> pd.DataFrame:
    """3 features, a logistic signal that is linear in them (trees must approximate a plane), 3,000 rows."""
    rng = np.random.default_rng(SEED + 4)
    x = rng.normal(size=(3_000, 3))
    p = 1 / (1 + np.exp(-(1.2 * x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2])))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = (rng.random(len(p)) < p).astype(int)
    return frame


def _wide_imbalanced() -> pd.DataFrame:
    """85 columns (many small integer codes, most uninformative), ~10 % positives, 5,800 rows: the
    shape of an insurance-uptake table where deep trees overfit the noise columns."""
    rng = np.random.default_rng(SEED + 5)
    rows = 5_800
    codes = rng.integers(0, 10, size=(rows, 80)).astype(float)
    weights = np.zeros(80)
    weights[:8] = rng.normal(0.0, 0.25, 8)
    logit = -3.3 + (codes - 4.5) @ weights
    frame = pd.DataFrame(codes, columns=[f"c{i:02d}" for i in range(80)])
    for k in range(5):
        frame[f"kind{k}"] = rng.choice([f"k{j}" for j in range(6)], rows)
    logit = logit + np.where(frame["kind0"] == "k0", 0.8, 0.0)
    frame["uptake"] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def _wide_regression() -> pd.DataFrame:
    """1,460 rows × 80 columns (the shape of a house-price table): 36 numbers of which a dozen carry
    a mostly additive signal, 44 categories of which a few shift the price, gaps; a log-price target."""
    rng = np.random.default_rng(SEED + 6)
    rows = 1_460
    numbers = rng.normal(size=(rows, 36))
    frame = pd.DataFrame(numbers, columns=[f"n{i:02d}" for i in range(36)])
    price = 12.0 + numbers[:, :12] @ rng.normal(0.0, 0.12, 12) + 0.08 * np.maximum(numbers[:, 0], 0) ** 2
    for i in range(44):
        levels = [f"v{j}" for j in range(int(rng.integers(2, 12)))]
        values = rng.choice(levels, rows)
        frame[f"cat{i:02d}"] = values
        if i < 6:
            effect = dict(zip(levels, rng.normal(0.0, 0.1, len(levels)), strict=True))
            price = price + pd.Series(values).map(effect).to_numpy()
    for column in ("n03", "n07", "cat05"):
        frame.loc[rng.random(rows) < 0.06, column] = np.nan
    frame["log_price"] = price + rng.normal(0.0, 0.1, rows)
    return frame


TABLES = {
    t.name: t
    for t in (
        Table("breast_cancer", "binary", "target", lambda: _sklearn(datasets.load_breast_cancer), note="569 rows"),
        Table("wine", "multiclass", "target", lambda: _sklearn(datasets.load_wine), note="178 rows"),
        Table("digits", "multiclass", "target", lambda: _sklearn(datasets.load_digits), note="1797 rows, 10 classes"),
        Table("diabetes", "regression", "target", lambda: _sklearn(datasets.load_diabetes), note="442 rows"),
        Table("churn", "binary", "churned", _churn, imbalanced=True, note="demo, ~7 % positive"),
        Table("spend", "regression", "next_month_spend", _spend, note="demo regression target"),
        Table("messy_binary", "binary", "label", _messy_binary, imbalanced=True, note="~6 %, 400-level category"),
        Table("rare_event", "binary", "event", _rare_event, imbalanced=True, note="~3 %, numeric"),
        Table("friedman", "regression", "y", _friedman, note="friedman1 + categories"),
        Table("multiclass_cats", "multiclass", "segment", _multiclass_cats, note="5 classes + categories"),
        Table("fair", "binary", "affair", _fair, note="public, 6,366 rows, ~32 %"),
        Table("anes96", "binary", "vote", _anes96, note="public, 944 rows"),
        Table("star98", "regression", "above_share", _star98, note="public, 303 rows x 20"),
        Table("randhie", "regression", "mdvis", _randhie, note="public, 20,190 rows, noisy count"),
        Table("grunfeld", "regression", "invest", _grunfeld, note="public, 220 rows, near-linear"),
        Table("near_linear", "binary", "y", _near_linear, note="3 features, linear logit"),
        Table("wide_imbalanced", "binary", "uptake", _wide_imbalanced, imbalanced=True, note="85 columns, ~10 %"),
        Table("wide_regression", "regression", "log_price", _wide_regression, note="1,460 rows x 80"),
    )
}
QUICK_TABLES = ("breast_cancer", "diabetes", "churn", "wine")


# ----------------------------------------------------------------------------- scoring


@dataclass
class Outcome:
    score: float | None = None
    f1: float | None = None
    seconds: float = 0.0
    error: str | None = None
    extra: dict = field(default_factory=dict)
    spread: float | None = None  # standard deviation of the score over splits (--seeds > 1)


def combine(outcomes: list[Outcome]) -> Outcome:
    """One cell from several splits: mean score, F1 and seconds; the first error if any failed."""
    failed = [o for o in outcomes if o.error]
    if failed or len(outcomes) == 1:
        return failed[0] if failed else outcomes[0]
    scores = [o.score for o in outcomes]
    f1s = [o.f1 for o in outcomes if o.f1 is not None]
    extra = {k: [o.extra.get(k) for o in outcomes] for k in outcomes[0].extra}
    return Outcome(
        float(np.mean(scores)),
        float(np.mean(f1s)) if f1s else None,
        float(np.mean([o.seconds for o in outcomes])),
        extra=extra,
        spread=float(np.std(scores, ddof=1)),
    )


def headline(table: Table, y_true: pd.Series, proba_or_pred: np.ndarray, classes: list) -> float:
    if table.kind == "regression":
        return float(skm.r2_score(y_true, proba_or_pred))
    if table.kind == "binary":
        positive = positive_class(y_true)
        return float(skm.roc_auc_score(y_true == positive, proba_or_pred[:, list(classes).index(positive)]))
    return float(skm.roc_auc_score(y_true, proba_or_pred, multi_class="ovr", average="macro", labels=list(classes)))


def positive_class(y: pd.Series):
    """The minority class of a binary target (the project's default for non-1/True labels too)."""
    counts = y.value_counts()
    return counts.index[-1]


def f1_of(table: Table, y_true: pd.Series, predicted: np.ndarray) -> float | None:
    if not table.imbalanced:
        return None
    positive = positive_class(y_true)
    return float(skm.f1_score(np.asarray(y_true) == positive, np.asarray(predicted) == positive))


def metric_for(table: Table) -> str:
    return "r2" if table.kind == "regression" else "roc_auc"


# ----------------------------------------------------------------------------- contenders


def set_dotted(raw: dict, key: str, value) -> None:
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


def project_params(table: Table, overrides: dict):
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    settings = {
        "task": "regression" if table.kind == "regression" else "classification",
        "metric": metric_for(table),
        "data.target": table.target,
        "data.id_column": None,
        "data.drop_columns": [],
        "data.categorical_columns": [],
        "data.positive_class": None,
        **overrides,
    }
    for key, value in settings.items():
        set_dotted(raw, key, value)
    return parse_params(raw)


def run_project(table: Table, train: pd.DataFrame, test: pd.DataFrame, overrides: dict) -> Outcome:
    params = project_params(table, overrides)
    started = time.perf_counter()
    result = pipeline.run(train, params, splits_to_score=())
    seconds = time.perf_counter() - started
    model = result.model
    held_out = test.drop(columns=[table.target])
    rows = clean_incoming(held_out, model.schema, featurizer=model.plan, where="held-out rows").frame
    y = test[table.target]
    chosen = {"model": result.family} if params.model in ("auto", "ensemble") else {}  # what the search shipped
    if params.model == "ensemble":
        chosen.update(blend_details(result, table, train, test, overrides))
    if table.kind == "regression":
        score = headline(table, y, model.predict(rows), [])
        return Outcome(score, None, seconds, extra=chosen)
    proba = model.predict_proba(rows)
    score = headline(table, y, proba, list(model.schema.classes))
    extra = {**chosen, "threshold": model.decision_threshold} if model.binary else chosen
    return Outcome(score, f1_of(table, y, model.predict(rows)), seconds, extra=extra)


def blend_details(result, table: Table, train: pd.DataFrame, test: pd.DataFrame, overrides: dict) -> dict:
    """What the ensemble column's search chose, and the held-out score of the best single trial of
    that same search fitted alone (`single`): the blend's gain over one model, at equal search."""
    record = result.tune_record
    confirmed = record.get("confirmed", {})
    members = record.get("params", {}).get("members", [])
    out = {
        "members": "+".join(f"{m['model']}:{m['weight']:.2f}" for m in members) or "-",
        "validation": confirmed.get("validation"),
    }
    single = record.get("ensemble", {}).get("best_single")
    if single:
        family = single["model"]
        fixed = {
            "model": family,
            "tuner": "none",
            **{f"hyperparameters.{family}.{k}": v for k, v in single["params"].items()},
        }
        alone = run_project(table, train, test, {**overrides, **fixed, "tune.timeout_minutes": None})
        out["single"] = alone.score  # unrounded: compared with the blend's own unrounded score
    return out


def typed(train: pd.DataFrame, test: pd.DataFrame, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a user does before handing a frame to LightGBM/FLAML: numbers stored as text become
    numbers (the project's own rule, so all contenders see the same columns), booleans 0/1,
    other text a pandas category with the training rows' levels."""
    x_train, converted = text_to_numbers(train.drop(columns=[target]), min_share=0.95, skip=set())
    x_test = test.drop(columns=[target]).copy()
    for column in converted:
        x_test[column] = pd.to_numeric(x_test[column].astype("string").str.strip(), errors="coerce").astype(float)
    for column in x_train.columns:
        values = x_train[column]
        if pd.api.types.is_bool_dtype(values):
            x_train[column], x_test[column] = values.astype(int), x_test[column].astype(int)
        elif not pd.api.types.is_numeric_dtype(values):
            levels = sorted(values.dropna().astype(str).unique())
            x_train[column] = pd.Categorical(values.astype(str).where(values.notna()), categories=levels)
            test_values = x_test[column]
            x_test[column] = pd.Categorical(test_values.astype(str).where(test_values.notna()), categories=levels)
    return x_train, x_test


def run_lightgbm(table: Table, train: pd.DataFrame, test: pd.DataFrame) -> Outcome:
    import lightgbm as lgb

    x_train, x_test = typed(train, test, table.target)
    y_train, y_test = train[table.target], test[table.target]
    started = time.perf_counter()
    if table.kind == "regression":
        model = lgb.LGBMRegressor(verbose=-1).fit(x_train, y_train)
        seconds = time.perf_counter() - started
        return Outcome(headline(table, y_test, model.predict(x_test), []), None, seconds)
    model = lgb.LGBMClassifier(verbose=-1).fit(x_train, y_train)
    seconds = time.perf_counter() - started
    score = headline(table, y_test, model.predict_proba(x_test), list(model.classes_))
    return Outcome(score, f1_of(table, y_test, model.predict(x_test)), seconds)


def flaml_estimators() -> list[str] | None:
    """None = FLAML's own list (it includes xgboost when xgboost imports)."""
    try:
        import xgboost  # noqa: F401
    except ImportError:
        return ["lgbm", "rf", "extra_tree"]
    return None


def run_flaml(table: Table, train: pd.DataFrame, test: pd.DataFrame, budget: float, seed: int = SEED) -> Outcome:
    from flaml import AutoML

    x_train, x_test = typed(train, test, table.target)
    y_train, y_test = train[table.target], test[table.target]
    metric = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}[table.kind]
    settings = {
        "time_budget": budget,
        "metric": metric,
        "task": "regression" if table.kind == "regression" else "classification",
        "n_jobs": 2,
        "seed": seed,
        "verbose": 0,
    }
    estimators = flaml_estimators()
    if estimators:
        settings["estimator_list"] = estimators
    automl = AutoML()
    started = time.perf_counter()
    automl.fit(x_train, y_train, **settings)
    seconds = time.perf_counter() - started
    best = {"estimator": automl.best_estimator}
    if table.kind == "regression":
        return Outcome(headline(table, y_test, automl.predict(x_test), []), None, seconds, extra=best)
    proba = automl.predict_proba(x_test)
    classes = list(automl.classes_)
    score = headline(table, y_test, proba, classes)
    return Outcome(score, f1_of(table, y_test, automl.predict(x_test)), seconds, extra=best)


def split(frame: pd.DataFrame, table: Table, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = None if table.kind == "regression" else frame[table.target]
    train, test = train_test_split(frame, test_size=0.2, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def attempt(function: Callable[[], Outcome]) -> Outcome:
    """One contender; a failure is reported in the table, not fatal to the benchmark."""
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function()
    except Exception as exc:  # the benchmark reports it and goes on
        return Outcome(None, None, time.perf_counter() - started, error=f"{type(exc).__name__}: {exc}"[:160])


# ----------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_value(text: str):
    return yaml.safe_load(text)


def better_or_equal(a: float | None, b: float | None, tolerance: float = 0.0) -> bool | None:
    if a is None or b is None:
        return None
    return a >= b - tolerance


def _single(outcome: Outcome) -> float | None:
    """The ensemble column's best single trial, fitted alone (mean over splits)."""
    value = outcome.extra.get("single")
    values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    return float(np.mean(values)) if values else None


def summarize(results: dict[str, dict[str, Outcome]], columns: tuple[str, ...]) -> list[str]:
    """The issue's targets, each with the tables behind it."""
    lines = ["", "Targets"]

    def verdict(name: str, pairs: list[tuple[str, bool | None]], needed: float) -> None:
        known = [(t, ok) for t, ok in pairs if ok is not None]
        if not known:
            return
        wins = sum(ok for _, ok in known)
        losses = [t for t, ok in known if not ok]
        met = wins >= needed * len(known)
        lines.append(
            f"  {name}: {wins}/{len(known)} tables -> {'met' if met else 'NOT met'}"
            + (f" (behind on {', '.join(losses)})" if losses else "")
        )

    def pairs(a: str, b: str, attr: str = "score", only_imbalanced: bool = False, within_spread: bool = False):
        out = []
        for name, row in results.items():
            if only_imbalanced and not TABLES[name].imbalanced:
                continue
            if a in row and b in row:
                tolerance = (row[a].spread or 0.0) if within_spread else 0.0
                out.append((name, better_or_equal(getattr(row[a], attr), getattr(row[b], attr), tolerance)))
        return out

    def mean_gap(a: str, b: str) -> None:
        gaps = [
            row[a].score - row[b].score
            for row in results.values()
            if a in row and b in row and row[a].score is not None and row[b].score is not None
        ]
        if gaps:
            lines.append(f"  mean ({a} - {b}) over {len(gaps)} tables: {np.mean(gaps):+.4f}")

    if {"default", "lgbm"} <= set(columns):
        verdict(
            "default >= LightGBM defaults within one sd, every table", pairs("default", "lgbm", within_spread=True), 1.0
        )
        verdict("(info) default >= LightGBM defaults, strictly", pairs("default", "lgbm"), 1.0)
        mean_gap("default", "lgbm")
    for searched in SEARCHED:
        if {searched, "flaml"} <= set(columns):
            verdict(f"{searched} >= FLAML on >= 5/6 of the tables (10 of 12)", pairs(searched, "flaml"), 10 / 12)
            verdict(f"{searched} F1 >= FLAML F1 on every imbalanced table", pairs(searched, "flaml", "f1", True), 1.0)
            mean_gap(searched, "flaml")
    if "ensemble" in columns:
        single = [
            (name, better_or_equal(row["ensemble"].score, _single(row["ensemble"])))
            for name, row in results.items()
            if "ensemble" in row
        ]
        verdict("ensemble >= its search's best single trial on >= 5/6 of the tables", single, 10 / 12)
    if {"default", "lgbm"} <= set(columns):
        verdict("(info) default F1 >= LightGBM-defaults F1, imbalanced", pairs("default", "lgbm", "f1", True), 1.0)
    return lines


def row_text(name: str, row: dict[str, Outcome], columns: tuple[str, ...]) -> str:
    table = TABLES[name]
    cells = [f"{name:<16} {table.kind[:5]:<5} {metric_for(table):<7}"]
    for column in columns:
        outcome = row.get(column)
        if outcome is None:
            cells.append(f"{'':>{WIDTH}}")
            continue
        f1 = f"/{fmt(outcome.f1, 3)}" if table.imbalanced else ""
        spread = f"±{outcome.spread:.4f}" if outcome.spread is not None else ""
        text = "ERROR" if outcome.error else f"{fmt(outcome.score)}{spread}{f1}"
        cells.append(f"{text + f' {outcome.seconds:5.0f}s':>{WIDTH}}")
    return " ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help=f"comma-separated, from: {', '.join(TABLES)}")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the tuned run's search and for FLAML")
    parser.add_argument("--quick", action="store_true", help=f"budget 10 s and the tables {', '.join(QUICK_TABLES)}")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key (dotted, YAML value) for the project's runs, e.g. model=lightgbm",
    )
    parser.add_argument("--columns", default=",".join(COLUMNS), help=f"which contenders, from: {', '.join(COLUMNS)}")
    parser.add_argument(
        "--seeds", type=int, default=1, help="80/20 splits per table (seeds 42, 43, ...); cells are means"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("reprotab", "optuna", "flaml", "flaml.automl.logger"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    budget = 10.0 if args.quick else args.budget
    names = args.tables.split(",") if args.tables else list(QUICK_TABLES if args.quick else TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {unknown}; choose from {', '.join(TABLES)}")
    columns = tuple(c for c in args.columns.split(",") if c)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1 (got {args.seeds})")
    seeds = [SEED + k for k in range(args.seeds)]
    if set(columns) - set(COLUMNS):
        parser.error(f"--columns: choose from {', '.join(COLUMNS)}")
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        overrides[key.strip()] = parse_value(value)

    estimators = flaml_estimators()
    print(f"params.yaml + {overrides or 'no overrides'}; searched with a {budget:.0f} s budget: {SEARCHED}")
    print(f"FLAML time_budget {budget:.0f} s, estimators: {estimators or 'FLAML default list (incl. xgboost)'}")
    print("score = held-out 20 % ROC-AUC (multiclass: macro OvR) or R²; /F1 of predict on imbalanced tables")
    if len(seeds) > 1:
        print(f"mean±sd over {len(seeds)} splits (seeds {seeds[0]}-{seeds[-1]}); seconds are per split")
    header = f"{'table':<16} {'kind':<5} {'metric':<7} " + " ".join(f"{c:>{WIDTH}}" for c in columns)
    print(header)
    print("-" * len(header), flush=True)

    results: dict[str, dict[str, Outcome]] = {}
    notes = []
    for name in names:
        table = TABLES[name]
        frame = table.build()
        per_split: dict[str, list[Outcome]] = {column: [] for column in columns}
        for seed in seeds:
            train, test = split(frame, table, seed)
            project = {"seed": seed, **overrides}
            runners = {
                "default": partial(run_project, table, train, test, project),
                "lgbm": partial(run_lightgbm, table, train, test),
                **{
                    searched: partial(
                        run_project, table, train, test, {**project, **settings, "tune.timeout_minutes": budget / 60}
                    )
                    for searched, settings in SEARCHED.items()
                },
                "flaml": partial(run_flaml, table, train, test, budget, seed),
            }
            for column in columns:
                with contextlib.redirect_stdout(io.StringIO()):
                    per_split[column].append(attempt(runners[column]))
        row = {column: combine(outcomes) for column, outcomes in per_split.items()}
        for column, outcome in row.items():
            if outcome.error:
                notes.append(f"  {name}/{column}: {outcome.error}")
            if outcome.extra:
                notes.append(f"  {name}/{column}: " + ", ".join(f"{k} {v}" for k, v in outcome.extra.items()))
        results[name] = row
        print(row_text(name, row, columns), flush=True)
    if notes:
        print("\nNotes")
        print("\n".join(notes))
    print("\n".join(summarize(results, columns)))


if __name__ == "__main__":
    main()
