import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.tables import frame_hash
from reprotab.errors import UserError
from tests.helpers import ROOT


def test_shipped_table_is_the_generator_output():
    shipped = pd.read_parquet(ROOT / "data/raw/churn.parquet")
    assert frame_hash(shipped) == frame_hash(generate())


def test_default_table_matches_its_promises():
    frame = pd.read_parquet(ROOT / "data/raw/churn.parquet")
    assert len(frame) >= 30_000
    assert 0.05 <= frame["churned"].mean() <= 0.10
    assert frame.isna().any().sum() >= 3
    assert frame["has_partner"].dtype == bool and frame["contract"].nunique() == 3
    assert pd.api.types.is_numeric_dtype(frame["next_month_spend"])


def test_same_seed_same_table_other_seed_other_table():
    assert frame_hash(generate(rows=200, seed=5)) == frame_hash(generate(rows=200, seed=5))
    assert frame_hash(generate(rows=200, seed=5)) != frame_hash(generate(rows=200, seed=6))


def test_drift_shifts_prices_and_churn():
    base, drifted = generate(rows=5000, seed=1), generate(rows=5000, seed=1, drift=1.0)
    assert drifted["monthly_charges"].mean() > base["monthly_charges"].mean() * 1.1
    assert drifted["churned"].mean() > base["churned"].mean()


@pytest.mark.parametrize(
    "kwargs,message",
    [({"rows": 0}, "--rows: must be at least 1"), ({"drift": 2.0}, "--drift: must be between 0 and 1")],
)
def test_bad_generator_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        generate(**kwargs)
