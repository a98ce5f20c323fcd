"""Checks of params.yaml as a whole, beyond what the typed loader can see on its own.

The loader (reprotab/params/loader.py) checks types, names and ranges; here the chosen model's
hyperparameter values are also checked against the estimator's own constraints, so
`n_estimators: -3` is reported in the same grammar before any stage runs, not as a
traceback at fit time.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprotab.errors import UserError
from reprotab.params.loader import Params, hyperparameters_for, load_params
from reprotab.params.names import families
from reprotab.runner import stage_main
from reprotab.train.families import hyperparameter_value_problems

log = logging.getLogger(__name__)


def params_problems(params: Params) -> list[str]:
    """Problems the loader cannot find alone: hyperparameter values of the chosen model (with
    model auto, of every family the search may choose)."""
    task = params.task
    return [
        line
        for model in families(params.model)
        for line in hyperparameter_value_problems(
            model=model, task=task, hyperparameters=hyperparameters_for(params.hyperparameters, model=model, task=task)
        )
    ]


def check_params_file(path: str | Path = "params.yaml") -> Params:
    """The parsed params, or one UserError listing every problem."""
    params = load_params(path)
    problems = params_problems(params)
    if problems:
        raise UserError("\n".join(["params.yaml has problems:", *(f"  - {line}" for line in problems)]))
    return params


@stage_main("check", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    """`reprotab check [--params FILE]`: the validate stage's checks, without DVC."""
    parser = argparse.ArgumentParser(prog="reprotab check", description="Check params.yaml.")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    params = check_params_file(args.params)
    log.info("%s is valid (task %s, model %s, tuner %s)", args.params, params.task, params.model, params.tuner)
