"""`reprotab canary decide`: promote, keep or roll back the canary, from labels of the rows it answered.

    reprotab canary decide [--log logs/predictions] [--labels FILE] [--params params.yaml] [--apply] [--json]

Reads    the prediction log (--log, default params' serve.log.dir), its feedback files and --labels
         (reprotab/monitoring/outcomes.py joins them); params' `canary`, `metric`, `seed`, `task`, `data`
Writes   reports/canary/decision.json: the verdict, the rule that decided and its evidence (versions,
         labelled rows per route, the metric's values and intervals, the difference and its interval)

Each route is judged on the version it serves now (its latest served row's); rows of earlier
versions of a route are left out and counted. The rules, in order (`decide`, params `canary`):

1. guard: `max_worsening` set, at least min(50, min_labels) labelled rows on each route, and the
   canary's point estimate worse than the champion's by more than it → roll back;
2. fewer than `min_labels` labelled rows on either route → keep collecting (how many more each needs);
3. the difference (canary − champion, positive = canary better) undefined → keep;
4. its lower bound above `min_difference` → promote;
5. its upper bound below 0 (the canary surely worse) → roll back;
6. otherwise keep: no decisive difference yet.

With --apply, promote assigns the canary's version to prod (the gate's rule for prod stands: a
refusal is reported and the command exits 2), and roll back gives staging back to the champion's
version, which withdraws the canary (`reprotab serve --canary-stage staging` serves staging's
version as the canary; a champion in staging is no canary). Either way the service, which polls
the registry, stops routing to the canary by itself. Keep and keep collecting change nothing.
The tag's message keeps a summary of the decision (reprotab/registry/versions.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reprotab import paths
from reprotab.data.tables import write_json
from reprotab.errors import UserError, problem
from reprotab.monitoring import outcomes
from reprotab.params.loader import load_params
from reprotab.params.sections import CanaryParams
from reprotab.runner import stage_main
from reprotab.serving import prediction_log

DECISION = "reports/canary/decision.json"
ROUTES = prediction_log.SERVED  # champion, canary
GUARD_ROWS = 50
log = logging.getLogger(__name__)


def current(labelled: pd.DataFrame, served: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str | None], int]:
    """The labelled rows of the version each route serves now (that of the route's latest row in
    the log `served`, labelled or not), those versions, and how many labelled rows of earlier
    versions were left out: a verdict is about what serves, never about a canary already replaced."""
    versions: dict[str, str | None] = {}
    keep = pd.Series(False, index=labelled.index)
    for route in ROUTES:
        part = served[served["route"] == route]
        versions[route] = None if part.empty else str(part.sort_values("time", kind="stable")["version"].iloc[-1])
        keep |= (labelled["route"] == route) & (labelled["version"].astype(str) == versions[route])
    return labelled[keep].reset_index(drop=True), versions, int((~keep).sum())


def decide(live: dict[str, Any], *, config: CanaryParams) -> dict[str, Any]:
    """The verdict on the live metrics (outcomes.live_metrics) by the rules of the module docstring."""
    champion, canary = (live["routes"][r] for r in ROUTES)
    rows = {r: live["routes"][r]["rows"] for r in ROUTES}
    difference = live["difference"] or {"value": None, "interval": None}
    value, interval = difference["value"], difference["interval"]
    guard_rows = min(GUARD_ROWS, config.min_labels)
    needed = {r: max(0, config.min_labels - n) for r, n in rows.items()}
    metric = live["metric"]
    if (
        config.max_worsening is not None
        and min(rows.values()) >= guard_rows
        and value is not None
        and -value > config.max_worsening
    ):
        verdict, rule = "roll back", "max_worsening"
        why = f"the canary's {metric} is worse than the champion's by {-value:.4f} > canary.max_worsening"
        why += f" {config.max_worsening} (guard, from {guard_rows} labelled rows a route)"
    elif any(needed.values()):
        verdict, rule = "keep collecting", "min_labels"
        short = ", ".join(f"{n:,} more on the {r} route" for r, n in needed.items() if n)
        why = f"each route needs canary.min_labels {config.min_labels} labelled rows: {short}"
    elif value is None or interval is None or not all(map(math.isfinite, interval)):
        verdict, rule = "keep", "undefined"
        why = f"the difference in {metric} is undefined on these rows (e.g. one class only)"
    elif interval[0] > config.min_difference:
        verdict, rule = "promote", "min_difference"
        why = f"the difference's lower bound {interval[0]:.4f} > canary.min_difference {config.min_difference}"
    elif interval[1] < 0:
        verdict, rule = "roll back", "surely_worse"
        why = f"the difference's upper bound {interval[1]:.4f} < 0: the canary is surely worse"
    else:
        verdict, rule = "keep", "no_decisive_difference"
        why = f"the interval [{interval[0]:.4f}, {interval[1]:.4f}] holds no decisive difference"
    return {
        "verdict": verdict,
        "rule": rule,
        "why": why,
        "metric": metric,
        "better": live["better"],
        "difference": value,
        "interval": interval,
        "confidence": live["confidence"],
        "rows": rows,
        "needed": needed,
        "values": {"champion": champion["value"], "canary": canary["value"]},
        "intervals": {"champion": champion["interval"], "canary": canary["interval"]},
        "params": config.model_dump(exclude={"auto_rollback"}),
    }


def apply(decision: dict[str, Any], *, repo: Path) -> dict[str, Any] | None:
    """Act on a promote or roll back in the registry (see the module docstring); None otherwise."""
    from reprotab.registry import versions as registry
    from reprotab.registry.checks import check_repo
    from reprotab.registry.state import gto_state
    from reprotab.retrain.journal import refuse_if_interrupted

    verdict, chosen = decision["verdict"], decision["versions"]
    if verdict not in ("promote", "roll back"):
        return None
    check_repo(repo, where="--repo")
    refuse_if_interrupted(repo, "canary decide --apply")
    registered, now, _ = gto_state(repo)
    for route in ROUTES:
        if chosen[route] not in registered:
            raise UserError(
                problem(
                    "canary decide --apply",
                    f"needs the {route}'s version registered, to {verdict} it",
                    chosen[route],
                    "Serve registered versions (`reprotab serve --stage prod --canary-stage staging`)",
                )
            )
    if verdict == "promote":
        return registry.promote(repo, version=chosen["canary"], stage="prod", evidence=decision)
    if now.get("staging") != chosen["canary"]:
        raise UserError(
            problem(
                "canary decide --apply",
                f"withdraws the canary by giving staging back to the champion, but staging holds "
                f"{now.get('staging') or 'nothing'}, not the canary {chosen['canary']}",
                None,
                "See `reprotab registry show`: the canary may be withdrawn already",
            )
        )
    return registry.promote(repo, version=chosen["champion"], stage="staging", evidence=decision)


def render(decision: dict[str, Any]) -> str:
    lines = [f"canary: {decision['verdict']}", f"  because {decision['why']}"]
    pct = f"{decision['confidence']:.0%}"
    for route in ROUTES:
        value, interval = decision["values"][route], decision["intervals"][route]
        shown = "-" if value is None else f"{value:.4f}"
        if interval:
            shown += f" [{interval[0]:.4f}, {interval[1]:.4f}]"
        version = decision["versions"][route] or "-"
        lines.append(f"  {route:<9} {version:<16} {decision['rows'][route]:>6,} rows  {decision['metric']} {shown}")
    if decision["difference"] is not None:
        low, high = decision["interval"] or (math.nan, math.nan)
        lines.append(
            f"  canary - champion (positive: canary better): {decision['difference']:.4f} "
            f"[{low:.4f}, {high:.4f}] ({pct} bootstrap)"
        )
    applied = decision.get("applied")
    if applied:
        lines.append(f"  applied: {applied}")
    return "\n".join(lines)


def _applied(result: dict[str, Any]) -> str:
    return f"{result['stage']}: {result['version']} (was {result['replaces'] or 'empty'}; tag {result['tag']})"


def _decision(args: argparse.Namespace) -> dict[str, Any]:
    params = load_params(args.params)
    directory = Path(args.log or params.serve.log.dir)
    served = prediction_log.read_rows(directory, where="--log")
    if not (served["route"] == "canary").any():
        raise UserError(
            problem(
                "--log",
                "has no rows the canary answered",
                str(directory),
                "Serve a canary first: `reprotab serve --stage prod --canary-stage staging --canary-share 0.1`",
            )
        )
    joined = outcomes.gather(served, params=params, directory=directory, labels=args.labels)
    rows, chosen, earlier = current(joined.rows, served)
    positive = outcomes.positive_class(joined.classes, wanted=params.data.positive_class, card=paths.MODEL_META)
    now = outcomes.Joined(rows, joined.task, joined.classes, {**joined.counts, "earlier_versions": earlier})
    live = outcomes.live(now, params=params, positive=positive)
    decision = decide(live, config=params.canary)
    return {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        **decision,
        "versions": chosen,
        "log": str(directory),
        "labels": args.labels,
        "join": now.counts,
        "calibration": live["calibration"],
    }


@stage_main("canary", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="reprotab canary", description="Decide a canary from live labels.")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "decide",
        help="promote, keep or roll back the canary",
        description="Promote, keep or roll back the canary from labels of the rows it answered (params canary).",
    )
    run.add_argument("--log", help="prediction log directory (default: params serve.log.dir)")
    run.add_argument("--labels", help="CSV/Parquet of labels (`label`, and `id` or `request_id`); with feedback files")
    run.add_argument("--params", default="params.yaml")
    run.add_argument("--repo", default=".", help="the git repository of the registry (default .)")
    run.add_argument("--out", default=DECISION, help=f"where the decision goes (default {DECISION})")
    run.add_argument("--apply", action="store_true", help="promote or roll back in the registry as decided")
    run.add_argument("--json", action="store_true", help="print the decision as JSON")
    args = parser.parse_args(argv)
    decision = _decision(args)
    refused = None
    if args.apply:
        try:
            result = apply(decision, repo=Path(args.repo))
            decision["applied"] = f"nothing ({decision['verdict']})" if result is None else _applied(result)
        except UserError as exc:
            refused = exc
            decision["applied"] = f"refused: {exc}"
    write_json(decision, args.out)
    print(json.dumps(decision, indent=2, default=str) if args.json else render(decision))
    log.info("canary: %s (%s); decision in %s", decision["verdict"], decision["rule"], args.out)
    if refused is not None:
        raise refused


if __name__ == "__main__":
    main()
