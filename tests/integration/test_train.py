"""train in a reproduced copy of the project: the threshold never looks at the test split."""

import shutil
import sys

import pytest

from reprotab.model import served
from tests.helpers import DVC, sh

pytestmark = pytest.mark.integration


def test_the_threshold_never_looks_at_the_test_split(reproduced):
    """Replace the test split with garbage: train must still run and choose the same threshold."""
    repo = reproduced  # the project as `dvc repro` left it (tests/conftest.py)
    sh([DVC, "repro", "train"], repo)
    chosen = served.load(repo / "models/model.zip").threshold
    test = repo / "data/prepared/test.parquet"
    backup = repo / "test.parquet.bak"
    shutil.move(test, backup)
    test.write_bytes(b"garbage, not parquet")
    try:
        sh([sys.executable, "-m", "stages.train"], repo)
        assert served.load(repo / "models/model.zip").threshold == chosen
    finally:
        shutil.move(backup, test)
