"""`reprotab labels import`: batch names that keep arrival order, and one message for an untouched
queue. In a real git + DVC repository: tests/integration/test_labels.py."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotab.data.prepare import choose_batches
from reprotab.errors import UserError
from reprotab.labeling.labels import batch_path, validate_labels
from reprotab.retrain.summary import batch_name
from tests.helpers import sh


def test_imported_batches_sort_in_arrival_order_beside_monthly_batches():
    def imported(*when: int) -> str:
        return batch_path("data/batches", datetime(*when, tzinfo=UTC)).name

    arrivals = [  # as they arrive: a month's file once the month is over, imports on the day
        "2026-09.parquet",
        imported(2026, 10, 14, 9, 30),
        imported(2026, 10, 30, 23, 59, 59),
        "2026-10.parquet",
        imported(2026, 11, 2, 8),
        "2026-11.csv",
        imported(2026, 12, 1, 0, 0, 1),
    ]
    assert arrivals[1] == "2026-10-14T093000Z-labels.parquet"
    shuffled = [arrivals[k] for k in (6, 3, 0, 5, 2, 4, 1)]
    assert choose_batches(shuffled, combine="all", window=3) == arrivals
    assert choose_batches(shuffled, combine="window", window=2) == arrivals[-2:]
    assert batch_name(arrivals[1]) == "2026-10-14T093000Z-labels"  # `reprotab retrain` accepts the name too


@pytest.mark.parametrize("empty", [np.nan, ""])
def test_an_untouched_queue_is_one_message(empty):
    queue = pd.DataFrame({"customer_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    untouched = queue.assign(label=empty)  # read back from CSV, an empty column is all NaN
    with pytest.raises(UserError) as error:
        validate_labels(
            untouched,
            queue=queue,
            classes=(False, True),
            id_column="customer_id",
            target="churned",
            test_ids=set(),
            known_ids=set(),
            raw_columns=pd.Series({"customer_id": "object", "x": "float64", "churned": "bool"}),
        )
    assert str(error.value) == (
        "labels file: has no label filled in (the label column is empty in all 3 rows). "
        "Fill the label column of the queue file, or pass the Label Studio JSON export."
    )


def reprotab(repo: Path, *args: str, check: bool = True):
    return sh([sys.executable, "-m", "reprotab", *args], repo, check=check)
