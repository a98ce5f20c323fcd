"""The `reprotab` command: everything a user runs outside `dvc repro`.

    reprotab <command> [options]      (or: python -m reprotab <command> ...)

Each command is a module with a `main(argv)`; `COMMANDS` maps the command name to it, so a new
command is one entry here and `reprotab --help` lists it. Modules are imported only when their
command runs, so `reprotab --help` is instant. Every command exits 2 with one clear message on
bad input (reprotab/runner.py). A reader that stops early (`reprotab registry show --json | head`)
ends the command quietly with status 141, as a tool killed by SIGPIPE, instead of a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

from reprotab.errors import did_you_mean
from reprotab.runner import resume_collection

# name → (module with main(argv), one line of help)
COMMANDS: dict[str, tuple[str, str]] = {  # in the order of the lifecycle
    "check": ("reprotab.params.checks", "check params.yaml as the pipeline's validate stage does"),
    "demo-data": ("reprotab.data.demo", "write the seeded demo table or a later batch with drift"),
    "compare": ("reprotab.tracking.compare", "rank DVC experiments that differ in one param"),
    "review": ("reprotab.tracking.review", "metrics, params and plots of two revisions in one report"),
    "registry": ("reprotab.registry.command", "register, promote, roll back and show model versions (git tags)"),
    "model": ("reprotab.model.convert", "convert a model pickle from an older version into a model bundle"),
    "predict": ("reprotab.serving.predict", "score a CSV or Parquet file of any size with the served model"),
    "serve": (
        "reprotab.serving.service",
        "serve the model over HTTP, with canary and shadow routing and a prediction log",
    ),
    "monitor": ("reprotab.monitoring.report", "drift report of a new batch or the prediction log: retrain or not"),
    "canary": ("reprotab.registry.canary", "decide a canary from live labels: promote, keep or roll back"),
    "retrain": (
        "reprotab.retrain.month",
        "one month of the loop: monitor a batch, version it, dvc repro, gate, register",
    ),
    "batches": (
        "reprotab.retrain.batches",
        "the labelled batches: list them, retire one from training (and restore it)",
    ),
    "query": ("reprotab.labeling.active_learning", "queue the pool rows the model is least sure of for labeling"),
    "labels": (
        "reprotab.labeling.labels",
        "import labels returned from a queue as a new data/batches file; join live labels to the log",
    ),
    "mirror": ("reprotab.tracking.mirrors", "copy runs (workspace, a commit, every experiment) into MLflow or Comet"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(
        [
            "usage: reprotab <command> [options]",
            "",
            "Retrain tabular models reproducibly: the commands beside the DVC pipeline.",
            "",
            "commands:",
            *lines,
            "",
            "`reprotab <command> --help` for a command's options.",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    try:
        try:
            run(argv)
        finally:
            sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except BrokenPipeError:
        # stdout's reader is gone: nothing more can be shown; keep Python's exit flush from failing too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(141) from None


def run(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"reprotab: command: must be one of {', '.join(COMMANDS)}. Got {name!r}.{did_you_mean(name, COMMANDS)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    module = importlib.import_module(COMMANDS[name][0])
    resume_collection()
    module.main(rest)


if __name__ == "__main__":
    main()
