"""Live outcomes: labels that arrive after the predictions, joined to the rows the service answered,
and each route's metric on them (what `reprotab labels join`, `monitor --labels` and `canary decide` read).

(Over 300 lines because the three commands read the join and the metrics on its rows together, and
the join's refusals and counts are most of it; the metrics themselves are reprotab/stats/.)

Labels come from a CSV/Parquet file (`read_labels`: a `label` column, or the target's name, and the
row's `id` (or the model's id column) or its `request_id` with an optional `position`, its 0-based
place in the request) and from the service's feedback files, `<log dir>/feedback/feedback-*.jsonl`
(`read_feedback`, oldest first). Only served rows join (routes champion and canary; a shadow's
answer never went back to anyone). When params' `serve.log.hash` lists `id`, the log holds ids as
the log's keyed hash, so labels' ids are hashed the same way first (an id already in that form
joins as it is).

`join` counts what it cannot use instead of failing on it: labels matching no served row (fatal
only when none match), an id served more than once (its latest served row is labelled), several
labels for one row (the last wins: the file's in order, then feedback by time). It refuses
labels that cannot be right: not a class of the model (classification: the log's probability
keys), not a number (regression).

`live_metrics` is per route (champion, canary): the headline metric with a percentile bootstrap
interval, the canary's difference from the champion (positive = canary better) with its interval
(each route resampled on its own: they hold different rows), and a calibration summary per version.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab.data.tables import read_table
from reprotab.errors import UserError, did_you_mean, problem
from reprotab.params.loader import Params
from reprotab.serving.prediction_log import SERVED, json_lines
from reprotab.stats.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from reprotab.stats.resample import count_blocks, improvement, weighted

LABEL = "label"
KEYS = ("id", "request_id", "position", LABEL)
COLUMNS = ("route", "version", "time", "id", "request_id", "position", "prediction", "proba", "label")
log = logging.getLogger(__name__)


def _text(value: Any) -> str | None:
    """A label or id as the log writes it as text: None for missing, 3.0 → '3', True → 'True'."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    text = str(value.item() if isinstance(value, np.generic) else value).strip()
    return text or None


def _position(value: Any) -> int | None:
    """A label's `position` (0-based place in its request) as an int; None when not given."""
    text = _text(value)
    if text is None:
        return None
    if not text.isdigit():
        raise UserError(
            problem("--labels (position)", "must be a whole number from 0 (a row's place in its request)", text)
        )
    return int(text)


def read_labels(path: str | Path, *, target: str, id_column: str | None, where: str = "--labels") -> pd.DataFrame:
    """A labels file as rows of (id, request_id, position, label), in file order."""
    frame = read_table(path, where=where)
    label = next((c for c in (LABEL, target) if c in frame.columns), None)
    if label is None:
        raise UserError(
            problem(where, f"needs a `{LABEL}` (or `{target}`) column", ", ".join(map(str, frame.columns)))
            + did_you_mean(LABEL, map(str, frame.columns))
        )
    ids = next((c for c in ("id", id_column) if c and c in frame.columns), None)
    if ids is None and "request_id" not in frame.columns:
        named = f"`id` (or `{id_column}`)" if id_column else "`id`"
        raise UserError(
            problem(
                where,
                f"needs {named} or `request_id` to find each label's row",
                ", ".join(map(str, frame.columns)),
                "Export the ids the service echoed, or the request_id (and position) of each row",
            )
        )
    empty = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return pd.DataFrame(
        {
            "id": frame[ids] if ids else empty,
            "request_id": frame["request_id"] if "request_id" in frame.columns else empty,
            "position": frame["position"] if "position" in frame.columns else empty,
            LABEL: frame[label],
        }
    ).reset_index(drop=True)


def read_feedback(directory: str | Path) -> pd.DataFrame:
    """The labels clients sent the service (POST /feedback), oldest first; none when it has no files."""
    paths = sorted((Path(directory) / "feedback").glob("feedback-*.jsonl"))
    records = [
        {"time": found.get("time"), **{k: found.get(k) for k in KEYS}}
        for _, found in json_lines(paths, what="a feedback line")
    ]
    frame = pd.DataFrame.from_records(records, columns=["time", *KEYS])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    return frame.sort_values("time", kind="stable").drop(columns="time").reset_index(drop=True)


def id_hasher(directory: str | Path, *, hashed: bool) -> Callable[[str], str | None] | None:
    """The log's keyed hash of an id, when params' `serve.log.hash` lists `id`; else None. Imported
    when needed: the log's reader is all a join without hashed ids needs."""
    if not hashed:
        return None
    module = importlib.import_module("reprotab.serving.prediction_log")
    key = module.hash_key(directory)
    return lambda value: module.keyed_hash(key, value)


@dataclass(frozen=True)
class Joined:
    """The labelled served rows (`COLUMNS`) and the counts of what could not be used as given."""

    rows: pd.DataFrame
    task: str
    classes: tuple[str, ...]  # the model's classes as text (the log's probability keys); () for regression
    counts: dict[str, int] = field(default_factory=dict)


def _classes(served: pd.DataFrame, task: str) -> tuple[str, ...]:
    probas = [p for p in served["proba"] if isinstance(p, dict)]
    if task == "regression":
        if probas:
            raise UserError(problem("--log", "holds class probabilities, so a classification model wrote it", "task"))
        return ()
    if not probas:
        raise UserError(
            problem("--log", "holds no class probabilities, so a regression model wrote it", f"task {task}")
        )
    return tuple(sorted({str(k) for p in probas for k in p}))


def _check_labels(labels: pd.Series, *, task: str, classes: tuple[str, ...]) -> pd.Series:
    """Labels as class text (classification) or floats (regression); a UserError for impossible ones."""
    if task == "regression":
        numbers = pd.to_numeric(labels, errors="coerce")
        bad = sorted(set(map(str, labels[numbers.isna()])))
        if bad:
            raise UserError(problem("--labels (label)", "must be numbers (a regression target)", bad[:5]))
        return numbers.astype(float)
    text = labels.map(_text)
    bad = sorted(set(text) - set(classes))
    if bad:
        raise UserError(
            problem(
                "--labels (label)",
                f"must be one of the model's classes {list(classes)}",
                bad[:5] if len(bad) > 1 else bad[0],
                "A label the model cannot predict cannot score it; fix a typo or drop those rows",
            )
            + did_you_mean(bad[0], classes)
        )
    return text


def join(
    rows: pd.DataFrame, labels: pd.DataFrame, *, task: str, hasher: Callable[[str], str | None] | None = None
) -> Joined:
    """The served rows of `rows` (prediction_log.read_rows) that `labels` (id, request_id, position,
    label; later rows win) label: see the module docstring for what is counted and what is refused."""
    served = rows[rows["route"].isin(SERVED)].sort_values("time", kind="stable").reset_index(drop=True)
    if served.empty:
        raise UserError(problem("--log", "has no served rows (routes champion or canary)", f"{len(rows)} rows"))
    classes = _classes(served, task)
    given = labels[labels[LABEL].map(_text).notna()].reset_index(drop=True)
    counts = {"labels": len(labels), "empty_labels": len(labels) - len(given)}
    values = _check_labels(given[LABEL], task=task, classes=classes)
    by_id: dict[str, int] = {}
    for number, value in enumerate(served["id"].map(_text)):
        if value is not None:
            by_id[value] = number  # time order: the latest served row wins
    times_served = served["id"].map(_text).value_counts()
    places = zip(served["request_id"].map(_text), served["position"], strict=True)
    by_request = {(request, int(place)): n for n, (request, place) in enumerate(places)}
    request_rows = served["request_id"].map(_text).value_counts()
    matched: list[int | None] = []
    ambiguous: list[str] = []
    for row_id, request, position in zip(given["id"], given["request_id"], given["position"], strict=True):
        text, asked = _text(row_id), _text(request)
        if text is not None:
            hashed = hasher(text) if hasher else None
            matched.append(by_id[hashed] if hashed is not None and hashed in by_id else by_id.get(text))
        elif asked is not None:
            place = _position(position)
            if place is None and request_rows.get(asked, 0) > 1:
                ambiguous.append(asked)
            matched.append(by_request.get((asked, place or 0)))
        else:
            matched.append(None)
    if ambiguous:
        raise UserError(
            problem(
                "--labels",
                "labels a request of several served rows without saying which (its position)",
                sorted(set(map(str, ambiguous)))[:5],
                "Give `position`, the row's 0-based place in its request, or label by `id`",
            )
        )
    pairs = pd.DataFrame({"row": matched, LABEL: values.to_numpy()}).dropna(subset=["row"])
    counts["unmatched"] = len(given) - len(pairs)
    if pairs.empty:
        hint = " (hashed as serve.log.hash asks)" if hasher else ""
        raise UserError(
            problem(
                "--labels",
                f"match no served row of the log by id{hint} or request_id",
                f"{len(given):,} labels, {len(served):,} served rows",
                "Check that the labels' ids are the ones the service echoed, and that the log covers their time",
            )
        )
    last = pairs.drop_duplicates("row", keep="last")
    counts["duplicate_labels"] = len(pairs) - len(last)
    chosen = served.loc[last["row"].astype(int)]
    counts["ids_served_more_than_once"] = int((chosen["id"].map(_text).map(times_served).fillna(1) > 1).sum())
    counts["joined"] = len(last)
    if counts["unmatched"]:
        log.warning("%d of %d labels match no served row of the log (not used)", counts["unmatched"], len(given))
    for what in ("duplicate_labels", "ids_served_more_than_once"):
        if counts[what]:
            log.warning("%s: %d (%s)", what.replace("_", " "), counts[what], _COUNTED[what])
    out = chosen.assign(label=last[LABEL].to_numpy()).reset_index(drop=True)
    for column in ("id", "request_id"):
        out[column] = out[column].map(_text).astype(object)
    if task == "classification":
        out["prediction"] = out["prediction"].map(_text).astype(object)
        strange = sorted(set(out["prediction"]) - set(classes), key=str)
        if strange:
            raise UserError(problem("--log", "has predictions that are none of its probability keys", strange[:5]))
    else:
        out["prediction"] = pd.to_numeric(out["prediction"], errors="coerce").astype(float)
    return Joined(rows=out[list(COLUMNS)], task=task, classes=classes, counts=counts)


_COUNTED = {
    "duplicate_labels": "labels for a row labelled already; the last one wins",
    "ids_served_more_than_once": "ids the service answered more than once; the latest answer is labelled",
}


def gather(rows: pd.DataFrame, *, params: Params, directory: str | Path, labels: str | Path | None) -> Joined:
    """The labels of a file (if given) and of the service's feedback files, joined to `rows`, as
    params say (task, data.target, data.id_column, serve.log.hash)."""
    found = [read_labels(labels, target=params.data.target, id_column=params.data.id_column)] if labels else []
    feedback = read_feedback(directory)
    if len(feedback):
        found.append(feedback)
    if not found:
        where = str(Path(directory) / "feedback")
        raise UserError(problem("--labels", "is needed: the log has no feedback files", where, "Pass --labels FILE"))
    every = pd.concat(found, ignore_index=True) if len(found) > 1 else found[0]
    hasher = id_hasher(directory, hashed="id" in params.serve.log.hash)
    joined = join(rows, every, task=params.task, hasher=hasher)
    return Joined(joined.rows, joined.task, joined.classes, {**joined.counts, "feedback_labels": len(feedback)})


# --- live metrics ------------------------------------------------------------------------------


def scored(frame: pd.DataFrame, *, task: str, classes: tuple[str, ...], positive: str | None) -> Scored:
    """The joined rows as the metric registry reads them (classes in `classes` order)."""
    if task == "regression":
        return Scored(frame[LABEL].to_numpy(float), frame["prediction"].to_numpy(float))
    index = {c: k for k, c in enumerate(classes)}
    proba = np.array([[float(p.get(c, 0.0)) for c in classes] for p in frame["proba"]]).reshape(-1, len(classes))
    return Scored(
        frame[LABEL].map(index).to_numpy(int),
        frame["prediction"].map(index).to_numpy(int),
        proba,
        None if positive is None else index[positive],
    )


def _value(task: str, metric: str, s: Scored) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's "undefined metric" warnings: NaN says it
            return float(BY_TASK[task][metric](s))
    except (ValueError, ZeroDivisionError):
        return math.nan  # e.g. ROC-AUC of one class


def draws(metric: str, s: Scored, *, samples: int, seed: int) -> np.ndarray:
    """The metric on each of `samples` seeded resamples of the rows (NaN where undefined)."""
    if not len(s.y_true):
        return np.full(samples, np.nan)
    return np.concatenate([weighted(metric, s, w) for w in count_blocks(len(s.y_true), samples=samples, seed=seed)])


def percentile(values: np.ndarray, confidence: float) -> list[float] | None:
    """The percentile interval of the finite values at `confidence`; None without any."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    alpha = (1 - confidence) / 2
    return [round(float(v), 6) for v in np.quantile(finite, [alpha, 1 - alpha])]


def calibration(frame: pd.DataFrame, s: Scored, *, task: str, bins: int = 10) -> dict[str, Any]:
    """Binary: mean predicted probability of the positive class vs the observed positive rate, and the
    expected calibration error over `bins` equal-width bins. Multiclass: the same for the top class
    (confidence vs accuracy). Regression: mean prediction vs mean label."""
    if task == "regression":
        return {"rows": len(frame), "mean_prediction": _round(s.y_pred.mean()), "mean_label": _round(s.y_true.mean())}
    proba = s.probabilities()
    if s.positive is not None:
        p, hit = proba[:, s.positive], (s.y_true == s.positive).astype(float)
        names = ("mean_predicted", "observed_rate")
    else:
        p, hit = proba.max(axis=1), (proba.argmax(axis=1) == s.y_true).astype(float)
        names = ("mean_confidence", "accuracy")
    which = np.minimum((p * bins).astype(int), bins - 1)
    ece = sum(abs(p[which == b].mean() - hit[which == b].mean()) * (which == b).mean() for b in np.unique(which))
    return {"rows": len(frame), names[0]: _round(p.mean()), names[1]: _round(hit.mean()), "ece": _round(ece)}


def _round(value: Any) -> float:
    return round(float(value), 6)


def live_metrics(
    joined: Joined, *, metric: str, positive: str | None, confidence: float, samples: int, seed: int
) -> dict[str, Any]:
    """Per route: rows, versions, `metric` and its bootstrap interval; the canary's difference from the
    champion (positive = canary better) and its interval; per version a calibration summary."""
    frame, task = joined.rows, joined.task
    routes: dict[str, Any] = {}
    resampled = {}
    for k, route in enumerate(SERVED):
        part = frame[frame["route"] == route]
        s = scored(part, task=task, classes=joined.classes, positive=positive)
        resampled[route] = draws(metric, s, samples=samples, seed=seed + k)  # each route on its own rows
        value = _value(task, metric, s) if len(part) else math.nan
        routes[route] = {
            "rows": len(part),
            "versions": {str(v): int(n) for v, n in part["version"].value_counts().items()},
            "value": round(value, 6) if math.isfinite(value) else None,
            "interval": percentile(resampled[route], confidence),
        }
    both = all(routes[r]["value"] is not None for r in SERVED)
    difference = None
    if both:
        champion, canary = (routes[r]["value"] for r in SERVED)
        gains = improvement(metric, resampled["canary"], resampled["champion"])
        difference = {
            "value": round(float(improvement(metric, canary, champion)), 6),
            "interval": percentile(gains, confidence),
            "resamples_used": int(np.isfinite(gains).sum()),
        }
    versions = {}
    for version, part in frame.groupby("version", sort=True):
        s = scored(part, task=task, classes=joined.classes, positive=positive)
        versions[str(version)] = {"route": str(part["route"].iloc[-1]), **calibration(part, s, task=task)}
    return {
        "metric": metric,
        "better": "lower" if metric in LOWER_IS_BETTER else "higher",
        "confidence": confidence,
        "bootstrap": samples,
        "routes": routes,
        "difference": difference,
        "calibration": versions,
        "join": joined.counts,
    }


def live(joined: Joined, *, params: Params, positive: str | None) -> dict[str, Any]:
    """`live_metrics` as params say: `canary.metric` (else the top-level metric), `canary.confidence`,
    `canary.bootstrap` resamples seeded by `seed`."""
    canary = params.canary
    return live_metrics(
        joined,
        metric=canary.metric or params.metric,
        positive=positive,
        confidence=canary.confidence,
        samples=canary.bootstrap,
        seed=params.seed,
    )


def positive_class(classes: tuple[str, ...], *, wanted: Any, card: str | Path | None = None) -> str | None:
    """The class binary probability metrics score, as text: params' `data.positive_class`, else 1 or
    True when the classes are 0/1 or booleans, else the one the model card names; None unless binary."""
    if len(classes) != 2:
        return None
    if wanted is None and set(classes) in ({"0", "1"}, {"False", "True"}):
        wanted = classes[1]
    if wanted is None and card is not None and Path(card).is_file():
        wanted = json.loads(Path(card).read_text()).get("positive_class")
    if _text(wanted) not in classes:
        raise UserError(
            problem("data.positive_class", f"must name one of the classes {list(classes)} to score", wanted)
        )
    return _text(wanted)


def summary_lines(live: dict[str, Any]) -> list[str]:
    """The live metrics in a few lines (printed by the commands)."""
    pct = f"{live['confidence']:.0%}"
    lines = [f"live {live['metric']} ({live['better']} is better; {pct} bootstrap intervals):"]
    for route, found in live["routes"].items():
        versions = ", ".join(found["versions"]) or "-"
        lines.append(f"  {route:<9} {versions:<16} rows {found['rows']:>6,}  {_interval(found)}")
    if live["difference"]:
        lines.append(f"  canary - champion (positive: canary better): {_interval(live['difference'])}")
    for version, found in live["calibration"].items():
        pairs = [(k, v) for k, v in found.items() if k not in ("route", "rows")]
        shown = ", ".join(f"{k.replace('_', ' ')} {v:.4f}" for k, v in pairs)
        lines.append(f"  calibration {version} ({found['rows']:,} rows): {shown}")
    return lines


def _interval(found: dict[str, Any]) -> str:
    value, interval = found["value"], found["interval"]
    shown = "-" if value is None else f"{value:.4f}"
    return shown + ("" if interval is None else f" [{interval[0]:.4f}, {interval[1]:.4f}]")
