"""gate: challenger (the model just trained) against the champion pinned in models/champion.json,
both scored on the same current test rows and on the frozen reference set pinned with the champion.

Reads   models/judged.zip (the model the test split may judge: models/model.zip itself unless
            train.refit is all), models/champion.json, the champion's judged model at its commit and the
            frozen reference set at its commit (DVC cache or remote), data/prepared/test.parquet,
            data/prepared/train.parquet and validation.parquet (no reference row may have reached them)
Writes  reports/gate/decision.json  promote true/false, every rule with both values and its
            verdict, the test rows' hash, the champion's version/commit, the reason
        reports/gate/decision.md    the same as a short page
Params  gate (rules), metric (default gate metric), seed (default bootstrap seed)

`reprotab registry promote --stage prod` reads decision.json at the version's commit. The logic
is reprotab/registry/gate.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from reprotab import paths
from reprotab.data.tables import file_md5
from reprotab.model import served
from reprotab.params.loader import load_stage_params
from reprotab.registry.champion import champion_model, read_pin
from reprotab.registry.gate import evaluate_gate
from reprotab.registry.gate_decision import write_decision
from reprotab.registry.reference import reference_rows
from reprotab.runner import stage_main

PARAMS = ("metric", "seed", "gate")
log = logging.getLogger(__name__)


@stage_main("gate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Challenger vs champion on the same test rows; write the decision.")
    parser.add_argument("--model", default=paths.JUDGED)
    parser.add_argument("--champion", default=paths.CHAMPION)
    parser.add_argument("--test", default=paths.TEST)
    parser.add_argument("--train", default=paths.TRAIN)  # no reference row may be in it
    parser.add_argument("--validation", default=paths.VALIDATION)
    parser.add_argument("--out-dir", default=paths.GATE_DIR)
    args = parser.parse_args(argv)
    params = load_stage_params("gate", PARAMS)
    metric, seed, rules = params.metric, params.seed, params.gate
    pin = read_pin(Path(args.champion))
    champion, champion_md5 = champion_model(pin)
    decision = evaluate_gate(
        challenger=served.load(args.model),
        challenger_md5=file_md5(Path(args.model)),
        champion=champion,
        champion_md5=champion_md5,
        pin=pin,
        test=pd.read_parquet(args.test),
        metric=rules.metric or metric,
        rules=rules,
        seed=seed,
        reference=reference_rows(pin),
        training=pd.concat([pd.read_parquet(path) for path in (args.train, args.validation)], ignore_index=True),
    )
    write_decision(decision, Path(args.out_dir))
    log.info("%s: %s", "promote" if decision["promote"] else "keep the champion", decision["reason"])


if __name__ == "__main__":
    main()
