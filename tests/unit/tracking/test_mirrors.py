"""Tracking mirrors: the helpers on their own. The mirrors into MLflow (a temporary SQLite store)
and Comet (offline archives), fed from a real git + DVC repository: tests/integration/test_mirrors.py."""

from __future__ import annotations

import pytest

from reprotab.errors import UserError, redact
from reprotab.tracking.mirrors import flatten, numeric_metrics, require

# --- unit ---------------------------------------------------------------------------------


def test_flatten_and_numeric_metrics():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a/b": 1, "a/c/d": [1, 2], "e": {}}
    metrics = {"test": {"roc_auc": 0.8, "at_0.5": {"f1": 0.5}}, "sampler_used": "none", "flag": True, "rows": 3}
    assert numeric_metrics(metrics) == {"test/roc_auc": 0.8, "test/at_0.5/f1": 0.5, "rows": 3.0}


def test_a_missing_tracking_library_says_how_to_install_it():
    with pytest.raises(UserError, match=r"needs the no_such_tracker package\. pip install '\.\[mlflow\]'"):
        require("no_such_tracker", "mlflow")


def test_redact_keeps_the_user_and_hides_the_password():
    assert redact("http://me:s3cret@tracker:5000") == "http://me:***@tracker:5000"
