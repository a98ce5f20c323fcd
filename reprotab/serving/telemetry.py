"""The service's Prometheus metrics: requests, errors, latency, load, what it predicted, which
models serve, reloads and live error from labels. deploy/ holds a Grafana dashboard and alert
rules written against exactly these names (tests/unit/serving/test_dashboards.py holds them equal)."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Telemetry:
    """The app's Prometheus metrics, in a registry of its own (several apps in one process)."""

    def __init__(self, task: str) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("reprotab_requests", "HTTP requests", ["endpoint", "status"], registry=r)
        self.errors = Counter("reprotab_errors", "Requests refused or failed", ["endpoint", "kind"], registry=r)
        self.latency = Histogram("reprotab_request_seconds", "Request latency", ["endpoint"], registry=r)
        self.in_flight = Gauge("reprotab_in_flight", "Requests being handled", registry=r)
        self.model_info = Gauge("reprotab_model_info", "Models serving, by role", ["role", "version"], registry=r)
        self.reloads = Counter("reprotab_reloads", "Registry checks for a new version", ["outcome"], registry=r)
        self.feedback = Counter("reprotab_feedback", "Labels received on /feedback", ["route"], registry=r)
        self.live_error = Gauge(
            "reprotab_live_error", "Live error from /feedback labels (1 - accuracy, or MAE)", ["route"], registry=r
        )
        self.task = task
        if task == "classification":
            self.predictions = Counter(
                "reprotab_predictions", "Predicted rows by class", ["route", "class"], registry=r
            )
            self.scores = Histogram(
                "reprotab_predicted_score",
                "Probability of the positive class (binary)",
                ["route"],
                buckets=SCORE_BUCKETS,
                registry=r,
            )
        else:
            self.values = Histogram(
                "reprotab_predicted_value",
                "Predicted values",
                ["route"],
                buckets=(-1e3, -100, -10, -1, 0, 1, 10, 100, 1e3, 1e4, 1e5),
                registry=r,
            )

    def predicted(self, route: str, predictions: np.ndarray, positive: list[float] | None = None) -> None:
        """Count a request's predictions; `positive`: each row's probability of the positive class."""
        if self.task == "classification":
            labels, counts = np.unique(np.array([str(p) for p in predictions]), return_counts=True)
            for label, count in zip(labels, counts, strict=True):
                self.predictions.labels(route, label).inc(int(count))
            if positive is not None:
                observe_all(self.scores.labels(route), np.asarray(positive, dtype=float))
        else:
            observe_all(self.values.labels(route), np.asarray(predictions, dtype=float))

    def serving(self, roles: dict[str, str | None]) -> None:
        """Which version holds each role now (one series per role set to 1; the old ones removed)."""
        self.model_info.clear()
        for role, version in roles.items():
            if version is not None:
                self.model_info.labels(role, version).set(1)


def observe_all(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every value at once: one bucket count per bucket instead of a call
    per row (1,000 rows a request cost 2 ms the other way). prometheus_client keeps a histogram as
    per-bucket counters, `_upper_bounds` their bounds (the last +Inf); a value on a bound counts in
    that bucket, as `observe` does."""
    if not len(values):
        return
    bounds = histogram._upper_bounds
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts, strict=False):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))
