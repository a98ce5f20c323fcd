"""tune: choose hyperparameters for train and write them to models/best_params.json.

Reads   nothing but params (searches will read data/prepared once they exist)
Writes  models/best_params.json
Params  tuner, model

Only `tuner: none` exists so far: no search runs, and the output says so plainly, so train
uses `train.<model>` from params.yaml unchanged.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from stages.data import write_json
from stages.params import load_stage_params
from stages.runner import stage_main

PARAMS = ("tuner", "model")
log = logging.getLogger(__name__)


def no_search(*, model: str) -> dict[str, Any]:
    """The honest result of `tuner: none`: no params found, nothing searched."""
    return {
        "tuner": "none",
        "model": model,
        "searched": False,
        "params": {},
        "note": f"no search ran (tuner: none); train uses train.{model} from params.yaml",
    }


@stage_main("tune")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Search hyperparameters for train.")
    parser.add_argument("--out", default="models/best_params.json")
    args = parser.parse_args(argv)
    params = load_stage_params("tune", PARAMS)
    result = no_search(model=params.model) if params.tuner == "none" else None
    params.record_reads()
    write_json(result, args.out)
    log.info("%s", result["note"])


if __name__ == "__main__":
    main()
