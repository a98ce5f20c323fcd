"""A bounded fault-injection run (bench/chaos.py): one month for each fault the retraining loop must
survive, in a real git + DVC repository, and every invariant checked after each month: no traceback,
a clean tree, no journal left, the pin naming the prod version, each refusal explained, and prod never
worse than the previous champion on the frozen reference set beyond the gate's guards."""

from __future__ import annotations

import pytest

from tests.helpers import load_bench

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chaos():
    return load_bench("chaos")


def test_every_fault_once_breaks_no_invariant(chaos, tmp_path):
    schedule = [
        "none",
        "one_class",
        "flip30",
        "target_missing",
        "feature_text",
        "schema_change",
        "duplicate_name",
        "sigkill:dvc repro",
    ]
    report = chaos.chaos(
        tmp_path, months=len(schedule), seed=3, fault_rate=0.0, rows=1200, batch_rows=400, schedule=schedule
    )
    assert report.violations == []
    assert report.months == len(schedule) and report.promotions_in_label_fault_months == 0
    # one_class (label drift), target_missing (no label), feature_text and schema_change (the monitor)
    assert report.outcomes["refused"] == 4
    assert report.kills == report.recovered == 1
