"""validate: check all of params.yaml before any other stage runs (and clears its outputs).

Reads   params.yaml (as a file: every key, including ones no stage declares)
Writes  reports/validate/params.json  (always the same content for valid params)
Params  none declared: the whole file is a dependency instead

Why a stage: DVC re-runs a stage only when a key it declares changes, so a misspelt key
(`modle: xgboost`) would change nothing and `dvc repro` would report "up to date"; and DVC
removes a stage's outputs before running it, so a bad value found by train itself would leave
the workspace without a model. This stage depends on the whole file, runs on every edit, and
every other stage depends on its output, so it runs first. Its output never changes while the
params are valid, so it never makes another stage re-run. It checks the typed loader's rules
and the chosen model's hyperparameter values against the estimator's own constraints.
"""

from __future__ import annotations

import argparse
import logging

from reprotab import paths
from reprotab.data.tables import write_json
from reprotab.params.checks import check_params_file
from reprotab.runner import stage_main

PARAMS: tuple[str, ...] = ()
log = logging.getLogger(__name__)


@stage_main("validate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Check params.yaml before the pipeline runs.")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default=paths.VALIDATED_PARAMS)
    args = parser.parse_args(argv)
    params = check_params_file(args.params)
    write_json({"params": "valid"}, args.out)
    log.info("params.yaml is valid (task %s, model %s, tuner %s)", params.task, params.model, params.tuner)


if __name__ == "__main__":
    main()
