"""The gate: does the challenger (the model just trained) beat the champion (the model in prod)?

(Over 300 lines because it is the rules and the stage's pure core, which the unit tests call on
hand-built predictions; every read and write the stage does lives in the modules named below.)

Both models score the SAME current test rows (their hash is recorded), so the comparison is
about the models, not about the data they happened to be tested on. The champion is the one
pinned in models/champion.json (written by `reprotab registry promote --stage prod`), read from
its commit through DVC; the gate never looks at registry tags, so `dvc repro` stays reproducible.

Rules (params `gate:`), all direction-aware (`reprotab.stats.metrics.LOWER_IS_BETTER`):

- bootstrap: a seeded paired bootstrap over test rows of the challenger's improvement on
  `metric`; the lower bound of its `confidence` interval must be above zero, so a gain within
  the noise of this test set does not pass (reprotab/stats/resample.py);
- min_improvement: the improvement on the full test set is at least this (absolute);
- min_relative_improvement: the improvement is at least this share of the champion's value;
- guards: for each listed metric, the challenger may be worse by at most the given amount;
- reference guards: both models also score the FROZEN REFERENCE SET, the test rows of the data the
  first prod champion was promoted with (pinned in models/champion.json with their hash, read at
  that commit through DVC). No batch can change or leak into it (prepare splits every file on its
  own), so a challenger that learned wrong labels cannot look better by being judged on its own
  poisoned test rows: for each metric in `reference_guards`, the challenger may be worse than the
  champion there by at most the given amount.

A metric that is undefined (NaN: one class in the rows, say) fails its rule, never passes it.
The challenger is promoted when every rule passes; with no champion it is promoted as the first.
`decide_promotion` is pure (unit-tested on hand-built predictions) and `evaluate_gate` is the
whole stage without IO. The IO stages/gate.py does lives beside this module: the champion pin and
its model (reprotab/registry/champion.py: `read_pin`, `champion_model`), the frozen reference set
(reprotab/registry/reference.py: `reference_rows`) and the decision file
(reprotab/registry/gate_decision.py: `write_decision`); the stage imports each from its home.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from reprotab import paths
from reprotab.data.tables import frame_hash
from reprotab.errors import UserError, problem
from reprotab.evaluate.scores import scored_predictions
from reprotab.model.served import TabularModel
from reprotab.params.sections import GateParams
from reprotab.registry.champion import ChampionPin
from reprotab.registry.reference import overlap
from reprotab.stats.metrics import BY_TASK, LOWER_IS_BETTER, Scored
from reprotab.stats.resample import improvement, paired_bootstrap


def _rule(rule: str, metric: str, ours: float, theirs: float, required: float, value: float, ok: bool) -> dict:
    undefined = any(math.isnan(v) for v in (ours, theirs, value))
    found = {
        "rule": rule,
        "metric": metric,
        "challenger": None if math.isnan(ours) else round(ours, 6),
        "champion": None if math.isnan(theirs) else round(theirs, 6),
        "value": None if math.isnan(value) else round(value, 6),
        "required": required,
        "verdict": "pass" if ok and not undefined else "fail",
    }
    return {**found, "undefined": True} if undefined else found


def _explain(check: dict[str, Any]) -> str:
    """Why a rule failed; an undefined metric is said to be undefined, whatever the rule."""
    if check.get("undefined"):
        where = "the frozen reference rows" if check["rule"].startswith("reference_") else "the test rows"
        return f"{check['metric']} is undefined on {where} (NaN, e.g. one class only), so {check['rule']} fails"
    if check["rule"] in ("reference_schema", "reference_leak"):
        return str(check["reason"])
    if check["rule"].startswith("reference_"):
        return (
            f"{check['metric']} is worse by {check['value']} on the frozen reference set, more than the "
            f"{check['required']} allowed (reference_guards)"
        )
    return _why(check)


def decide_promotion(
    *,
    task: str,
    metric: str,
    rules: GateParams,
    seed: int,
    challenger: Scored,
    champion: Scored | None,
    pin: dict[str, Any],
    reference_challenger: Scored | str | None = None,
    reference_champion: Scored | None = None,
    extra_checks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The decision: promote or not, every rule with both values and its verdict, and why.
    `reference_*` are both models' predictions on the frozen reference set (None: no reference;
    a string: why the challenger could not score it, which fails the gate)."""
    metrics = BY_TASK[task]
    ours = {name: float(metrics[name](challenger)) for name in metrics}
    base = {"metric": metric, "higher_is_better": metric not in LOWER_IS_BETTER, "challenger_metrics": ours}
    if champion is None:
        reason = f"no champion pinned in {paths.CHAMPION}, so the first model goes in"
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
        bound = _rule(
            "bootstrap_lower_bound", metric, ours[metric], theirs[metric], 0.0, boot["lower"], boot["lower"] > 0
        )
        checks.append({**bound, "upper": None if math.isnan(boot["upper"]) else round(boot["upper"], 6)})
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
    checks += reference_checks(
        metrics,
        rules.reference_guards,
        reference_challenger=reference_challenger,
        reference_champion=reference_champion,
    )
    checks += extra_checks or []
    failed = [c for c in checks if c["verdict"] == "fail"]
    if not failed:
        reason = f"{metric} improves by {gain:.4f} and every rule passes"
    else:
        reason = "; ".join(_explain(c) for c in failed)
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
        upper = check.get("upper")
        if upper is None:  # a decision written before the rule kept its upper bound
            return f"{check['metric']} gain is not above bootstrap noise (interval lower bound {check['value']})"
        interval = f"interval of the gain [{check['value']}, {upper}]"
        if upper < 0:
            return f"{check['metric']} is significantly worse than the champion's (bootstrap {interval} lies below 0)"
        return f"{check['metric']} gain is within bootstrap noise (bootstrap {interval} includes 0)"
    if check["rule"].startswith("guard_"):
        return f"{check['metric']} worsens by {check['value']}, more than the {check['required']} allowed"
    return f"{check['rule']}: {check['metric']} gain {check['value']} is below the {check['required']} required"


def reference_checks(
    metrics: dict[str, Any],
    guards: dict[str, float],
    *,
    reference_challenger: Scored | str | None,
    reference_champion: Scored | None,
) -> list[dict[str, Any]]:
    """One rule per reference guard of this task: the challenger's worsening on the frozen rows."""
    if isinstance(reference_challenger, str):
        return [{"rule": "reference_schema", "metric": "-", "verdict": "fail", "reason": reference_challenger}]
    if reference_challenger is None or reference_champion is None:
        return []
    checks = []
    for name, allowed in guards.items():
        if name not in metrics:
            continue  # a guard on the other task's metric
        ours, theirs = float(metrics[name](reference_challenger)), float(metrics[name](reference_champion))
        worse = -float(improvement(name, ours, theirs))
        checks.append(_rule(f"reference_{name}", name, ours, theirs, allowed, worse, worse <= allowed))
    return checks


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
                f'Set {paths.CHAMPION} to {{"version": null}} to start over, or promote with --force --reason',
            )
        )
    theirs, _ = scored_predictions(champion, test)
    return ours, theirs


LEAK_ALLOWANCE = 0.01  # share of the reference rows that may newly appear in training before the gate fails


def leak_check(
    reference: pd.DataFrame, training: pd.DataFrame, *, in_training: int, id_column: str | None
) -> dict[str, Any]:
    """The `reference_leak` rule: reference rows that reached training since the reference was
    frozen (a batch re-sending old rows, a changed seed or split size) would let a model be judged
    on rows it learned; more than LEAK_ALLOWANCE of them fails the gate. `in_training`: how many
    were there when it was frozen (duplicates the data itself has)."""
    found = overlap(reference, training, id_column=id_column)
    new = found - in_training
    allowed = max(1, int(LEAK_ALLOWANCE * len(reference)))
    check = {
        "rule": "reference_leak",
        "metric": "rows",
        "challenger": found,
        "champion": in_training,
        "value": new,
        "required": allowed,
        "verdict": "pass" if new <= allowed else "fail",
    }
    if new > allowed:
        check["reason"] = (
            f"{new} rows of the frozen reference set are now also training rows (at most {allowed} allowed): a batch "
            "re-sends old rows, or seed or split sizes changed, so the reference no longer judges unseen rows"
        )
    return check


def evaluate_gate(
    *,
    challenger: TabularModel,
    challenger_md5: str,
    champion: TabularModel | None,
    champion_md5: str | None,
    pin: ChampionPin,
    test: pd.DataFrame,
    metric: str,
    rules: GateParams,
    seed: int,
    reference: pd.DataFrame | None = None,
    training: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """The whole stage without IO: score both on the test rows (and on the frozen reference set,
    checked against the training rows for leaks), decide, record what was compared."""
    rows = {"test_rows": len(test), "test_rows_hash": frame_hash(test), "challenger_md5": challenger_md5}
    frozen = pin.reference  # judged only when its rows were read (`reference`)
    if frozen is not None and reference is not None:
        rows["reference"] = {**frozen.to_dict(), "rows": len(reference)}
    judged = {**pin.to_dict(), "md5": champion_md5}
    if champion_md5 is not None and champion_md5 == challenger_md5:
        return {
            **rows,
            "promote": False,
            "metric": metric,
            "champion": judged,
            "rules": [],
            "reason": f"the challenger is the champion's model ({pin.version}): nothing to promote",
        }
    ours, theirs = score_both(challenger, champion, test)
    reference_ours: Scored | str | None = None
    reference_theirs = None
    if reference is not None and champion is not None:
        missing = [c for c in (*challenger.schema.features, challenger.schema.target) if c not in reference.columns]
        if missing:
            reference_ours = (
                f"the frozen reference set lacks columns the challenger needs ({', '.join(missing)}), so it cannot "
                f'be judged on it: after a deliberate schema change, pin {{"version": null}} in {paths.CHAMPION} and '
                "promote the new model as the first (see the docs)"
            )
        else:
            reference_ours, reference_theirs = score_both(challenger, champion, reference)
    extra = []
    if frozen is not None and reference is not None and champion is not None and training is not None:
        in_training = frozen.in_training or 0
        extra.append(leak_check(reference, training, in_training=in_training, id_column=challenger.schema.id_column))
    decision = decide_promotion(
        task=challenger.schema.task,
        metric=metric,
        rules=rules,
        seed=seed,
        challenger=ours,
        champion=theirs,
        pin=judged,
        reference_challenger=reference_ours,
        reference_champion=reference_theirs,
        extra_checks=extra,
    )
    return {**rows, **decision}
