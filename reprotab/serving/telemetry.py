"""The service's Prometheus metrics: requests, errors, latency and what it predicted."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram


class Telemetry:
    """The app's Prometheus metrics, in a registry of its own (several apps in one process)."""

    def __init__(self, task: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("reprotab_requests", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.errors = Counter(
            "reprotab_errors", "Requests refused or failed", ["endpoint", "kind"], registry=self.registry
        )
        self.latency = Histogram("reprotab_request_seconds", "Request latency", ["endpoint"], registry=self.registry)
        self.task = task
        if task == "classification":
            self.predictions = Counter(
                "reprotab_predictions", "Predicted rows by class", ["route", "class"], registry=self.registry
            )
        else:
            self.values = Histogram(
                "reprotab_predicted_value",
                "Predicted values",
                ["route"],
                buckets=(-1e3, -100, -10, -1, 0, 1, 10, 100, 1e3, 1e4, 1e5),
                registry=self.registry,
            )

    def predicted(self, route: str, predictions: np.ndarray) -> None:
        if self.task == "classification":
            labels, counts = np.unique(np.array([str(p) for p in predictions]), return_counts=True)
            for label, count in zip(labels, counts, strict=True):
                self.predictions.labels(route, label).inc(int(count))
        else:
            for value in predictions:
                self.values.labels(route).observe(float(value))
