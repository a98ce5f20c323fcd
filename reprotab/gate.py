"""The gate: does the challenger (the model just trained) beat the champion (the model in prod)?

Both models score the SAME current test rows (their hash is recorded), so the comparison is
about the models, not about the data they happened to be tested on. The champion is the one
pinned in models/champion.json (written by `reprotab registry promote --stage prod`), read from
its commit through DVC; the gate never looks at registry tags, so `dvc repro` stays reproducible.

Rules (params `gate:`), all direction-aware (`reprotab.metrics.LOWER_IS_BETTER`):

- bootstrap: a seeded paired bootstrap over test rows of the challenger's improvement on
  `metric`; the lower bound of its `confidence` interval must be above zero, so a gain within
  the noise of this test set does not pass (reprotab/resample.py);
- min_improvement: the improvement on the full test set is at least this (absolute);
- min_relative_improvement: the improvement is at least this share of the champion's value;
- guards: for each listed metric, the challenger may be worse by at most the given amount.

The challenger is promoted when every rule passes; with no champion it is promoted as the first.
`decide` is pure (unit-tested on hand-built predictions); `champion_model` and `write_decision`
do the IO for stages/gate.py.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import served
from reprotab.data import atomic_path, frame_hash, write_json
from reprotab.errors import UserError, problem
from reprotab.evaluation import scored_predictions
from reprotab.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from reprotab.params import GateParams
from reprotab.resample import improvement, paired_bootstrap
from reprotab.served import TabularModel

MODEL_PATH = "models/model.joblib"


def _rule(rule: str, metric: str, ours: float, theirs: float, required: float, value: float, ok: bool) -> dict:
    return {
        "rule": rule,
        "metric": metric,
        "challenger": round(ours, 6),
        "champion": round(theirs, 6),
        "value": None if math.isnan(value) else round(value, 6),
        "required": required,
        "verdict": "pass" if ok else "fail",
    }


def decide(
    *,
    task: str,
    metric: str,
    rules: GateParams,
    seed: int,
    challenger: Scored,
    champion: Scored | None,
    pin: dict[str, Any],
) -> dict[str, Any]:
    """The decision: promote or not, every rule with both values and its verdict, and why."""
    metrics = BY_TASK[task]
    ours = {name: float(metrics[name](challenger)) for name in metrics}
    base = {"metric": metric, "higher_is_better": metric not in LOWER_IS_BETTER, "challenger_metrics": ours}
    if champion is None:
        reason = "no champion pinned in models/champion.json, so the first model goes in"
        return {**base, "promote": True, "reason": reason, "champion": pin, "champion_metrics": None, "rules": []}
    theirs = {name: float(metrics[name](champion)) for name in metrics}
    gain = float(improvement(metric, ours[metric], theirs[metric]))
    checks = []
    boot = None
    if rules.bootstrap.samples > 0:
        boot = paired_bootstrap(
            metric,
            challenger,
            champion,
            samples=rules.bootstrap.samples,
            confidence=rules.bootstrap.confidence,
            seed=seed if rules.bootstrap.seed is None else rules.bootstrap.seed,
        )
        checks.append(
            _rule("bootstrap_lower_bound", metric, ours[metric], theirs[metric], 0.0, boot["lower"], boot["lower"] > 0)
        )
    checks.append(
        _rule(
            "min_improvement",
            metric,
            ours[metric],
            theirs[metric],
            rules.min_improvement,
            gain,
            gain >= rules.min_improvement,
        )
    )
    if rules.min_relative_improvement > 0:
        relative = gain / abs(theirs[metric]) if theirs[metric] else (math.inf if gain > 0 else 0.0)
        ok = relative >= rules.min_relative_improvement
        checks.append(
            _rule(
                "min_relative_improvement",
                metric,
                ours[metric],
                theirs[metric],
                rules.min_relative_improvement,
                relative,
                ok,
            )
        )
    for name, allowed in rules.guards.items():
        if name not in metrics:
            continue  # a guard on the other task's metric
        worse = -float(improvement(name, ours[name], theirs[name]))
        checks.append(_rule(f"guard_{name}", name, ours[name], theirs[name], allowed, worse, worse <= allowed))
    failed = [c for c in checks if c["verdict"] == "fail"]
    if not failed:
        reason = f"{metric} improves by {gain:.4f} and every rule passes"
    else:
        reason = "; ".join(_why(c) for c in failed)
    return {
        **base,
        "promote": not failed,
        "reason": reason,
        "champion": pin,
        "champion_metrics": theirs,
        "improvement": round(gain, 6),
        "bootstrap": None
        if boot is None
        else {**boot, "samples": rules.bootstrap.samples, "confidence": rules.bootstrap.confidence},
        "rules": checks,
    }


def _why(check: dict[str, Any]) -> str:
    if check["rule"] == "bootstrap_lower_bound":
        return (
            f"{check['metric']} gain is within bootstrap noise (interval lower bound {check['value']} is not above 0)"
        )
    if check["rule"].startswith("guard_"):
        return f"{check['metric']} worsens by {check['value']}, more than the {check['required']} allowed"
    return f"{check['rule']}: {check['metric']} gain {check['value']} is below the {check['required']} required"


def score_both(
    challenger: TabularModel, champion: TabularModel | None, test: pd.DataFrame
) -> tuple[Scored, Scored | None]:
    """Both models' predictions on the same test rows; models that cannot be compared are a UserError."""
    ours, _ = scored_predictions(challenger, test)
    if champion is None:
        return ours, None
    a, b = challenger.schema, champion.schema
    if (a.task, a.target, list(a.classes or []), a.positive_class) != (
        b.task,
        b.target,
        list(b.classes or []),
        b.positive_class,
    ):
        raise UserError(
            problem(
                "gate",
                "the champion predicts another target or classes than the challenger, so they cannot be compared",
                f"champion {b.task} {b.target} {b.classes}, challenger {a.task} {a.target} {a.classes}",
                'Set models/champion.json to {"version": null} to start over, or promote with --force --reason',
            )
        )
    theirs, _ = scored_predictions(champion, test)
    return ours, theirs


def read_pin(path: Path) -> dict[str, Any]:
    """models/champion.json: {"version": ..., "commit": ...}, or {"version": null} when there is no champion."""
    if not path.is_file():
        return {"version": None}
    try:
        pin = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(problem(str(path), f"is not valid JSON ({exc})", None, 'Write {"version": null}')) from None
    if not isinstance(pin, dict) or (pin.get("version") and not isinstance(pin.get("commit"), str)):
        raise UserError(
            problem(str(path), 'must be {"version": "vX.Y.Z", "commit": "<sha>"} or {"version": null}', pin)
        )
    return pin


def champion_model(pin: dict[str, Any], repo: str = ".") -> tuple[TabularModel | None, str | None]:
    """The pinned champion model and its md5, read from its commit through DVC (cache or remote)."""
    if not pin.get("version"):
        return None, None
    import dvc.api

    try:
        with dvc.api.open(MODEL_PATH, repo=repo, rev=pin["commit"], mode="rb") as handle:
            data = handle.read()
    except Exception as exc:  # an unknown commit or a file in neither cache nor remote; DVC raises many types
        raise UserError(
            problem(
                "models/champion.json",
                f"the champion's model cannot be read at commit {str(pin.get('commit'))[:8]} "
                f"({type(exc).__name__}: {exc})",
                pin.get("version"),
                "Fetch it (`git fetch --tags`, `dvc pull`), or pin another champion",
            )
        ) from None
    return served.loads(data, where=f"champion {pin['version']}"), hashlib.md5(data).hexdigest()


def evaluate_gate(
    *,
    challenger: TabularModel,
    challenger_md5: str,
    champion: TabularModel | None,
    champion_md5: str | None,
    pin: dict[str, Any],
    test: pd.DataFrame,
    metric: str,
    rules: GateParams,
    seed: int,
) -> dict[str, Any]:
    """The whole stage without IO: score both on the test rows, decide, record what was compared."""
    rows = {"test_rows": len(test), "test_rows_hash": frame_hash(test), "challenger_md5": challenger_md5}
    pin = {**pin, "md5": champion_md5}
    if champion_md5 is not None and champion_md5 == challenger_md5:
        return {
            **rows,
            "promote": False,
            "metric": metric,
            "champion": pin,
            "rules": [],
            "reason": f"the challenger is the champion's model ({pin['version']}): nothing to promote",
        }
    ours, theirs = score_both(challenger, champion, test)
    decision = decide(
        task=challenger.schema.task, metric=metric, rules=rules, seed=seed, challenger=ours, champion=theirs, pin=pin
    )
    return {**rows, **decision}


def decision_markdown(decision: dict[str, Any]) -> str:
    verdict = "PROMOTE" if decision["promote"] else "KEEP THE CHAMPION"
    champion = decision["champion"].get("version") or "none"
    lines = [
        f"# Gate: {verdict}",
        "",
        f"{decision['reason']}.",
        "",
        f"Champion: {champion} (commit {str(decision['champion'].get('commit') or '-')[:8]}). "
        f"Test rows: {decision['test_rows']} (hash {decision['test_rows_hash']}).",
    ]
    if decision.get("rules"):
        lines += [
            "",
            "| rule | metric | challenger | champion | value | required | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        keys = ("rule", "metric", "challenger", "champion", "value", "required", "verdict")
        lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in decision["rules"]]
    boot = decision.get("bootstrap")
    if boot:
        lines += [
            "",
            f"Bootstrap ({boot['samples']} paired resamples): improvement {boot['mean']:.4f}, "
            f"{boot['confidence']:.0%} interval [{boot['lower']:.4f}, {boot['upper']:.4f}].",
        ]
    return "\n".join(lines) + "\n"


def write_decision(decision: dict[str, Any], out: Path) -> None:
    write_json(decision, out / "decision.json")
    with atomic_path(out / "decision.md") as tmp:
        tmp.write_text(decision_markdown(decision), encoding="utf-8")
