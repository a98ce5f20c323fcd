"""Fault injection: many simulated months of the retraining loop with random faults, and the loop's
invariants checked after every month.

    .venv/bin/python bench/chaos.py [--months 24] [--seed 0] [--fault-rate 0.6] [--rows 1500]

In a temporary git + DVC copy of this project (a --rows sample of the demo table, a small LightGBM so
a month takes seconds), month 0 trains, registers and promotes v1.0.0. Each later month hands
`reprotab retrain --batch <file> --promote` a demo batch (random drift; `--force` every other month
so most months train) carrying, with probability --fault-rate, one fault:

  one_class        every label True (a broken upstream join)
  flip30           30 % of the labels flipped
  target_missing   the target column present, every value missing
  target_renamed   the target column renamed (churned -> churn)
  feature_text     a numeric feature exported as text ("n/a")
  duplicate_name   the name of an earlier month, other rows
  schema_change    a feature column renamed
  sigkill          the whole process group SIGKILLed at a random moment, then `reprotab retrain --recover`

After every month: no traceback, exit status 0 or 2, `git status` clean, no journal left, the
champion pin names the registry's prod version, every refusal explained (the month's summary, or
the message when the name belongs to an earlier month), and a change of prod is never a model worse
than the previous champion on the frozen reference set beyond the gate's reference guards (checked
here independently of the gate). Prints the counts; exits 1 when any invariant broke.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FAULTS = (
    "one_class",
    "flip30",
    "target_missing",
    "target_renamed",
    "feature_text",
    "duplicate_name",
    "schema_change",
    "sigkill",
)
TARGET = "churned"


@dataclass
class Report:
    months: int = 0
    faults: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    promotions: int = 0
    promotions_in_label_fault_months: int = 0
    kills: int = 0
    recovered: int = 0
    kill_targets: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    def check(self, ok: bool, month: str, what: str) -> None:
        if not ok:
            self.violations.append(f"{month}: {what}")


def python_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprotab", *args]


def run(args: list[str], repo: Path) -> subprocess.CompletedProcess:
    from tests.helpers import tool_env

    return subprocess.run(args, cwd=repo, env=tool_env(), capture_output=True, text=True)


def setup(repo: Path, rows: int) -> None:
    """Month 0: a small model, trained, registered and promoted."""
    from tests.helpers import promoted_repo

    def small(params: dict) -> None:
        params["hyperparameters"]["lightgbm"].update(n_estimators=60, n_jobs=1)
        params["gate"]["bootstrap"]["samples"] = 300
        params["monitor"]["bootstrap"] = 100

    promoted_repo(repo, rows=rows, params=small)


def make_batch(fault: str | None, *, seed: int, rows: int) -> pd.DataFrame:
    from reprotab.data.demo import generate

    rng = random.Random(seed)
    frame = generate(rows=rows, seed=seed, drift=rng.choice([0.0, 0.3, 0.6, 1.0]))
    frame["customer_id"] = frame["customer_id"].astype(str) + f"-{seed}"
    if fault == "one_class":
        frame[TARGET] = True
    elif fault == "flip30":
        flip = pd.Series([rng.random() < 0.3 for _ in range(rows)])
        frame[TARGET] = frame[TARGET].where(~flip, ~frame[TARGET])
    elif fault == "target_missing":
        frame[TARGET] = None
    elif fault == "target_renamed":
        frame = frame.rename(columns={TARGET: "churn"})
    elif fault == "feature_text":
        frame["monthly_charges"] = "n/a"
    elif fault == "schema_change":
        frame = frame.rename(columns={"tenure_months": "tenure"})
    return frame


def reference_scores(repo: Path, version: str) -> dict[str, float]:
    """A version's roc_auc and log_loss on the frozen reference set the champion pin names."""
    from reprotab.evaluate.scores import measure
    from reprotab.registry import versions as registry
    from reprotab.registry.champion import read_pin
    from reprotab.registry.reference import reference_rows

    pin = read_pin(repo / "models/champion.json")
    rows = reference_rows(pin, repo=str(repo))
    model, _ = registry.load(version=version, repo=str(repo))
    _, metrics = measure(model, rows)
    return {"roc_auc": metrics["roc_auc"], "log_loss": metrics["log_loss"]}


def prod_version(repo: Path) -> str | None:
    from reprotab.registry import versions as registry

    return (registry.show(repo)["stages"].get("prod") or {}).get("version")


STEPS = ("monitor", "add batch", "set mode", "dvc repro", "commit run", "dvc push", "register", "commit record")


def killed_month(
    repo: Path, args: list[str], rng: random.Random, report: Report, step: str | None = None
) -> list[subprocess.CompletedProcess]:
    """Start the month, SIGKILL its whole process group when its journal reaches `step` (a random
    one by default), a random moment into it, then recover."""
    from tests.helpers import tool_env

    target = step or rng.choice(STEPS)
    delay = rng.uniform(0, 15.0) if target == "dvc repro" else 0.0  # the other steps last well under a second
    journal = repo / ".git/reprotab-retrain.json"
    process = subprocess.Popen(
        args,
        cwd=repo,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    report.kill_targets.append(f"{target} +{delay:.1f}s: missed (the month ended first)")
    while process.poll() is None:
        try:
            now = json.loads(journal.read_text()).get("step") if journal.is_file() else None
        except ValueError:  # caught mid-rename
            now = None
        if now == target:
            time.sleep(delay)
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                if journal.is_file():  # else the month had just ended: a kill too late to count
                    report.kills += 1
                    report.kill_targets[-1] = f"{target} +{delay:.1f}s: killed"
            break
        time.sleep(0.02)
    out, err = process.communicate()
    runs = [subprocess.CompletedProcess(args, process.returncode, out, err)]
    recovered = run(python_command("retrain", "--recover"), repo)
    if "rolled back the interrupted run" in recovered.stdout:
        report.recovered += 1
    return [*runs, recovered]


def month(
    repo: Path,
    number: int,
    rng: random.Random,
    *,
    fault_rate: float,
    rows: int,
    report: Report,
    work: Path,
    fault: str | None = None,
) -> None:
    """One month with `fault` (drawn at `fault_rate` when None is given), then every invariant."""
    name = f"{2027 + number // 12}-{number % 12 + 1:02d}"
    drawn = rng.choice(FAULTS) if rng.random() < fault_rate else None
    fault = fault if fault is not None else drawn
    fault, _, kill_step = (fault or "").partition(":")  # "sigkill:dvc repro" pins the step
    fault = None if fault in ("", "none") else fault
    report.faults[fault or "none"] += 1
    added = sorted(p.stem for p in (repo / "data/batches").glob("*.parquet"))
    if fault == "duplicate_name" and added:
        name = rng.choice(added)
    elif fault == "duplicate_name":
        fault = None  # nothing to clash with yet
    path = work / f"{name}.parquet"
    make_batch(fault, seed=1000 + number, rows=rows).to_parquet(path, index=False)
    before = prod_version(repo)
    force = number % 2 or fault == "sigkill"  # a killed month should reach every step
    args = python_command("retrain", "--batch", str(path), "--promote", *(["--force"] if force else []))
    results = killed_month(repo, args, rng, report, kill_step or None) if fault == "sigkill" else [run(args, repo)]
    label = f"month {number} ({name}, {fault or 'no fault'})"
    for result in results:
        report.check("Traceback" not in result.stdout + result.stderr, label, f"traceback:\n{result.stderr[-2000:]}")
        report.check(result.returncode in (0, 2, -9), label, f"exit {result.returncode}: {result.stderr[-500:]}")
    status = run(["git", "status", "--porcelain"], repo).stdout
    report.check(status == "", label, f"dirty tree:\n{status}")
    report.check(not (repo / ".git/reprotab-retrain.json").exists(), label, "a journal was left behind")
    pin = json.loads((repo / "models/champion.json").read_text())
    after = prod_version(repo)
    report.check(pin.get("version") == after, label, f"champion.json names {pin.get('version')}, prod is {after}")
    last = results[-1]
    summary_path = repo / f"reports/retrain/{name}.json"
    if fault == "duplicate_name":
        outcome = "refused (name)" if last.returncode == 2 else "ran"
        report.check("already versioned" in last.stderr or last.returncode == 0, label, "name clash not explained")
    elif summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        outcome = summary.get("outcome", "?")
        if last.returncode == 2 or outcome in ("refused", "failed", "interrupted"):
            report.check(bool(summary.get("why")), label, "a refusal without a reason in its summary")
    else:
        outcome = "no summary"
        report.check(last.returncode == 0, label, f"exit {last.returncode} without a summary: {last.stderr[-300:]}")
    report.outcomes[outcome] += 1
    if after != before and before is not None:
        report.promotions += 1
        report.promotions_in_label_fault_months += fault in ("one_class", "flip30")
        old, new = reference_scores(repo, before), reference_scores(repo, after)
        guards = yaml.safe_load((repo / "params.yaml").read_text())["gate"]["reference_guards"]
        worse = {"roc_auc": old["roc_auc"] - new["roc_auc"], "log_loss": new["log_loss"] - old["log_loss"]}
        for metric, by in worse.items():
            report.check(
                by <= guards.get(metric, 0) + 1e-9, label, f"prod got worse on the reference: {metric} by {by:.4f}"
            )
        note = f"; frozen reference roc_auc {old['roc_auc']:.4f} -> {new['roc_auc']:.4f}, "
        note += f"log_loss {old['log_loss']:.4f} -> {new['log_loss']:.4f}"
    else:
        note = ""
    report.months += 1
    killed = f"; SIGKILL at {report.kill_targets[-1]}" if fault == "sigkill" else ""
    print(f"{label}: {outcome}; prod {after}{note}{killed}", flush=True)


def chaos(
    work: Path,
    *,
    months: int,
    seed: int,
    fault_rate: float,
    rows: int,
    batch_rows: int,
    schedule: list[str] | None = None,
) -> Report:
    """Run the months; `schedule` names each month's fault ("none" for none) instead of drawing it."""
    repo = work / "project"
    repo.mkdir()
    setup(repo, rows)
    rng, report = random.Random(seed), Report()
    for number in range(months):
        fault = schedule[number] if schedule else None
        month(repo, number, rng, fault_rate=fault_rate, rows=batch_rows, report=report, work=work, fault=fault)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-rate", type=float, default=0.6)
    parser.add_argument("--rows", type=int, default=1500, help="rows of the demo table in month 0")
    parser.add_argument("--batch-rows", type=int, default=600)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="reprotab-chaos-") as work:
        report = chaos(
            Path(work),
            months=args.months,
            seed=args.seed,
            fault_rate=args.fault_rate,
            rows=args.rows,
            batch_rows=args.batch_rows,
        )
    print(f"\n{report.months} months in {time.perf_counter() - started:.0f} s (seed {args.seed})")
    print("faults:   " + ", ".join(f"{k} {v}" for k, v in sorted(report.faults.items())))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))
    print(
        f"kills {report.kills}, recovered {report.recovered}; prod changed {report.promotions} times, "
        f"{report.promotions_in_label_fault_months} of them in a month with wrong labels"
    )
    print(f"invariant violations: {len(report.violations)}")
    for violation in report.violations:
        print(f"  - {violation}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
