"""The data profile's flags on a crafted table, and its pages."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.data.profile import profile_table
from reprotab.data.profile_report import summary_markdown
from reprotab.errors import UserError
from reprotab.params.sections import DataParams, SamplingParams


def crafted(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    target = rng.random(rows) < 0.2
    return pd.DataFrame(
        {
            "row": np.arange(rows),  # monotonic integers: a row number
            "code": [f"K{i:05d}" for i in rng.permutation(rows)],  # unique text per row
            "refund_issued": np.where(target, "yes", "no"),  # known only after churn: a leak
            "amount": rng.normal(50, 10, rows).round(2).astype(str),  # numbers stored as text
            "plan": rng.choice(["basic", "pro"], rows),
            "country": "FR",  # constant
            "usage": rng.normal(0, 1, rows),
            "churned": target,
        }
    )


def run(frame: pd.DataFrame, **kwargs):
    data = DataParams(target="churned", **kwargs)
    return profile_table(
        frame, data=data, task="classification", sampling=SamplingParams(), seed=0, text_min_share=0.95
    )


def test_flags_on_a_crafted_table():
    profile = run(crafted())
    assert profile["flags"] == {
        "target_leak": ["refund_issued"],
        "id_like": ["row", "code"],
        "constant": ["country"],
        "empty": [],
        "numbers_as_text": ["amount"],
    }
    columns = profile["by_column"]
    assert columns["refund_issued"]["leak_score"] == 1.0
    assert columns["usage"]["leak_score"] < 0.7 and columns["usage"]["flags"] == []
    assert columns["amount"]["leak_score"] < 0.7  # scored as numbers
    assert columns["plan"] == {**columns["plan"], "kind": "text", "distinct": 2, "missing_share": 0.0}
    assert columns["usage"]["kind"] == "numeric" and set(columns["usage"]["range"]) == {"min", "max", "mean", "median"}


def test_infinite_numbers_are_profiled_as_prepare_treats_them():
    frame = crafted()
    frame.loc[:9, "usage"] = np.inf
    frame.loc[10:14, "usage"] = -np.inf
    profile = run(frame)  # the leak check's tree refused infinity before
    usage = profile["by_column"]["usage"]
    assert usage["infinite"] == 15 and usage["missing_share"] == 0
    assert np.isfinite([usage["range"][k] for k in ("min", "max", "mean", "median")]).all()
    assert "leak_score" in usage
    json.dumps(profile, allow_nan=False)  # strict JSON: no Infinity


def test_target_balance_and_auto_sampler():
    target = run(crafted())["target"]
    assert sum(target["class_counts"].values()) == 300
    assert target["sampler_auto"] == "smote"  # 20% positives: ratio about 4 ≥ auto_min_ratio 3
    balanced = crafted().assign(churned=np.arange(300) % 2 == 0)
    assert run(balanced)["target"]["sampler_auto"] == "none"


def test_id_column_and_duplicates():
    frame = crafted()
    frame = pd.concat([frame, frame.iloc[:5].assign(row=range(300, 305))], ignore_index=True)
    profile = run(frame, id_column="row")
    assert profile["by_column"]["row"]["role"] == "id"
    assert "row" not in profile["flags"]["id_like"]
    assert profile["duplicate_rows"] == {"count": 5, "share": round(5 / 305, 4), "ignoring": "row"}


def test_regression_leak_uses_r2():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 1000)
    frame = pd.DataFrame({"copy": y * 3 + 1, "noise": rng.normal(0, 1, 1000), "churned": y})
    profile = profile_table(
        frame,
        data=DataParams(target="churned"),
        task="regression",
        sampling=SamplingParams(),
        seed=0,
        text_min_share=0.95,
    )
    assert profile["leak_check"]["metric"] == "r2"
    assert profile["flags"]["target_leak"] == ["copy"]
    assert "class_counts" not in profile["target"]


def test_samples_big_tables_and_says_so():
    frame = pd.concat([crafted()] * 4, ignore_index=True).assign(row=np.arange(1200))
    profile = profile_table(
        frame,
        data=DataParams(target="churned"),
        task="classification",
        sampling=SamplingParams(),
        seed=0,
        text_min_share=0.95,
        stats_rows=500,
        leak_rows=200,
    )
    assert profile["sampled"] == {"stats_rows": 500, "leak_rows": 200}
    assert profile["rows"] == 1200
    text = summary_markdown(profile, source="t.csv")
    assert "a seeded sample of 500 rows" in text and "on 200 rows" in text
    assert "**target_leak**: `refund_issued`" in text
    assert "| `country` | feature | text | 0.0% | 1 |" in text


def test_a_missing_target_is_one_message():
    with pytest.raises(UserError, match=r"data.target: column not found. Got 'churn'.*Did you mean 'churned'\?"):
        profile_table(
            crafted(),
            data=DataParams(target="churn"),
            task="classification",
            sampling=SamplingParams(),
            seed=0,
            text_min_share=0.95,
        )


def test_the_profile_page_is_the_same_bytes_for_the_same_seed():
    """skrub draws element ids from `secrets` and matplotlib stamps SVGs with the time: the page
    must still reproduce byte for byte (dvc.lock records its hash), without touching the
    process's own `secrets`."""
    import secrets

    from reprotab.data.profile_report import table_report_html

    frame = generate(rows=300, seed=3)
    token_hex = secrets.token_hex
    first = table_report_html(frame, source="t", seed=0)
    assert first == table_report_html(frame, source="t", seed=0)
    assert "<dc:date>" not in first and secrets.token_hex is token_hex
    assert secrets.token_hex() != secrets.token_hex()  # still the real source
