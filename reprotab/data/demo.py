"""Seeded generator of the embedded demo table: a customer-churn-like data set.

Writes `data/raw/churn.parquet` (shipped in git; docs/getting-started.md, "Demo data") and later batches
with controlled drift for monitoring. The signal is a noisy logistic model over a handful of
columns, tuned so a good model reaches about 0.85 ROC-AUC with ~7% positives; several
columns are pure noise, some values are missing, one numeric column is stored as text (as
in real exports), and a few categories are rare.

Columns: customer_id (id), tenure_months, contract, payment_method, internet_service,
region, has_partner, paperless_billing, monthly_charges, total_charges (text),
support_tickets, avg_session_minutes, days_since_last_login, satisfaction_score,
age, discount_pct, referral_count, churned (binary target), next_month_spend (regression
target).

Usage: reprotab demo-data [--rows N] [--seed S] [--drift D] [--out PATH]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from reprotab.data.tables import write_table
from reprotab.errors import UserError, problem
from reprotab.runner import stage_main

log = logging.getLogger(__name__)

CONTRACTS = ("month-to-month", "one-year", "two-year")
PAYMENTS = ("card", "bank-transfer", "electronic-check", "mailed-check")
INTERNET = ("fiber", "dsl", "none")
# Rare regions exercise the featurizer's grouping of infrequent categories.
REGIONS = ("north", "south", "east", "west", "central", "islands", "overseas")
REGION_WEIGHTS = (0.27, 0.25, 0.2, 0.18, 0.08, 0.015, 0.005)


def generate(*, rows: int = 30_000, seed: int = 0, drift: float = 0.0) -> pd.DataFrame:
    """Return a churn table of `rows` rows; `drift` in [0, 1] shifts prices, contract mix,
    usage and the churn rate, for monitoring experiments (0 = the reference distribution)."""
    if rows < 1:
        raise UserError(problem("--rows", "must be at least 1", rows))
    if not 0.0 <= drift <= 1.0:
        raise UserError(problem("--drift", "must be between 0 and 1", drift))
    rng = np.random.default_rng(seed)

    contract_p = np.array([0.55 + 0.3 * drift, 0.25 - 0.12 * drift, 0.20 - 0.18 * drift])
    contract = rng.choice(CONTRACTS, size=rows, p=contract_p / contract_p.sum())
    tenure = np.clip(rng.gamma(shape=1.6, scale=18.0, size=rows), 0, 72).round().astype(int)
    internet = rng.choice(INTERNET, size=rows, p=(0.45, 0.35, 0.20))
    base_price = np.select([internet == "fiber", internet == "dsl"], [75.0, 50.0], 22.0)
    monthly = np.round(base_price * (1 + 0.25 * drift) + rng.normal(0, 12, rows), 2).clip(10)
    payment = rng.choice(PAYMENTS, size=rows, p=(0.3, 0.25, 0.3, 0.15))
    region = rng.choice(REGIONS, size=rows, p=REGION_WEIGHTS)
    has_partner = rng.random(rows) < 0.48
    paperless = rng.random(rows) < 0.6
    tickets = rng.poisson(0.8 + 0.6 * (internet == "fiber") + 2 * drift, size=rows)
    session = np.round(rng.lognormal(3.0 - 0.3 * drift, 0.6, rows), 1)
    last_login = rng.exponential(12 + 25 * drift, rows).round().astype(int)
    satisfaction = rng.integers(1, 6, rows).astype(float)
    age = rng.integers(18, 85, rows)
    discount = np.round(rng.choice([0, 0, 0, 5, 10, 15, 20], size=rows) * 1.0, 1)
    referrals = rng.poisson(0.4, rows)

    signal = (
        1.5 * (contract == "month-to-month")
        - 0.8 * (contract == "two-year")
        - 0.035 * tenure
        + 0.012 * (monthly - 60)
        + 0.45 * (payment == "electronic-check")
        + 0.35 * (internet == "fiber")
        + 0.28 * np.minimum(tickets, 6)
        + 0.022 * np.minimum(last_login, 60)
        - 0.28 * (satisfaction - 3)
        - 0.015 * session
        - 0.2 * has_partner
    )
    # Unobserved causes (the noise term) keep the signal learnable but not trivial.
    logit = -4.2 + 0.6 * drift + 1.5 * signal + rng.normal(0, 0.4, rows)
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    spend = np.round(
        monthly * (1 - discount / 100) + 4.0 * tickets + 0.3 * session - 25 * churned + rng.normal(0, 6, rows), 2
    )

    total = np.round(monthly * np.maximum(tenure, 0) + rng.normal(0, 20, rows), 2).clip(0)
    # Exported as text; new customers have a blank total, as in many billing exports.
    total_text = np.where(tenure == 0, " ", np.char.mod("%.2f", total))

    frame = pd.DataFrame(
        {
            "customer_id": [f"C{seed:03d}-{i:06d}" for i in range(rows)],
            "tenure_months": tenure,
            "contract": contract,
            "payment_method": payment,
            "internet_service": internet,
            "region": region,
            "has_partner": has_partner,
            "paperless_billing": paperless,
            "monthly_charges": monthly,
            "total_charges": total_text,
            "support_tickets": tickets,
            "avg_session_minutes": session,
            "days_since_last_login": last_login,
            "satisfaction_score": satisfaction,
            "age": age,
            "discount_pct": discount,
            "referral_count": referrals,
            "churned": churned,
            "next_month_spend": spend,
        }
    )
    for column, share in (
        ("satisfaction_score", 0.12),
        ("avg_session_minutes", 0.05),
        ("payment_method", 0.02),
        ("age", 0.03),
    ):
        frame.loc[rng.random(rows) < share, column] = None
    return frame


@stage_main("demo-data", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab demo-data", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000, help="rows to generate (default 30,000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the shipped demo table is seed 0 (default 0)")
    parser.add_argument(
        "--drift",
        type=float,
        default=0.0,
        help="0 to 1: shifts prices, contract mix, usage and the churn rate; 0 = the demo table's distribution "
        "(default 0.0)",
    )
    parser.add_argument(
        "--out",
        default="data/raw/churn.parquet",
        help="where to write the table, as Parquet (default data/raw/churn.parquet)",
    )
    args = parser.parse_args(argv)
    frame = generate(rows=args.rows, seed=args.seed, drift=args.drift)
    write_table(frame, args.out)
    log.info("wrote %s: %d rows, %.1f%% churned", args.out, len(frame), 100 * frame["churned"].mean())


if __name__ == "__main__":
    main()
