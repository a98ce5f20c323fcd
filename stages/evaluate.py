"""evaluate: score the saved model on the test split (validation shown for reference) and write
the evaluation report.

Reads   models/judged.zip (the model judged: models/model.zip itself, or with train.refit all the
            train + validation model), models/model.json (which splits trained each),
            data/prepared/{validation,test}.parquet
Writes  reports/evaluate/metrics.json  every metric of the task, test and validation; binary models
            add `threshold`, and with a stored threshold the threshold metrics at 0.5
            (`test/at_0.5/f1`, ...); with a calibrator, probability metrics before it (`test/uncalibrated/brier`)
        reports/evaluate/plots/custom/*.json  dvclive plots declared in dvc.yaml (see reprotab/evaluate/report.py)
        reports/evaluate/figures/*.png, tables/{importance,per_class}.csv, predictions.csv, summary.md
Params  metric (headline metric, permutation importance), seed and evaluate (permutation importance),
        engine and dask (engine dask: each part file of the splits is scored on a worker, and
        permutation importance runs on a hashed sample of the validation split)

The test split judges only models that never trained on it; with train.refit all the report says
so and names the rows the shipped model was refitted on. The logic is reprotab/evaluate/scores.py.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprotab import paths
from reprotab.data.tables import read_parquet
from reprotab.engine.cluster import open_client
from reprotab.engine.partitions import read_split
from reprotab.engine.scoring import score_split
from reprotab.evaluate.scores import evaluate, write_report
from reprotab.model import served
from reprotab.model.card import ModelCard
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main

PARAMS = ("metric", "seed", "evaluate", "engine", "dask")
log = logging.getLogger(__name__)


@stage_main("evaluate")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score the model on the test split; write the evaluation report.")
    parser.add_argument("--model", default=paths.JUDGED)
    parser.add_argument("--card", default=paths.MODEL_META)
    parser.add_argument("--prepared", default=paths.PREPARED)
    parser.add_argument("--out-dir", default="reports/evaluate")
    args = parser.parse_args(argv)
    params = load_stage_params("evaluate", PARAMS)
    metric, seed, settings = params.metric, params.seed, params.evaluate
    model = served.load(args.model)
    card = ModelCard.read(args.card) if Path(args.card).is_file() else None  # a broken card: one error
    judged = card is not None and card.judged is not None and Path(args.model).name == Path(paths.JUDGED).name
    # which splits trained the model evaluated (train.refit); with refit all, the judged one unless
    # --model names the shipped file (then the test rows trained it too, and the summary says in-sample)
    trained_on = (card.judged_on if judged else card.trained_on) if card else ["train"]
    shipped_on = card.trained_on_rows if card and judged else None
    prepared = Path(args.prepared)
    engine, cluster = params.engine, params.dask
    if engine == "dask":  # each part file scored on a worker; permutation importance on a sample
        with open_client(cluster) as client:
            scored = {
                split: score_split(model, prepared / f"{split}.parquet", client) for split in ("validation", "test")
            }
        sample = read_split(
            prepared / "validation.parquet",
            sample_rows=settings.permutation_rows,
            seed=seed,
            id_column=model.schema.id_column,
            where="validation split",
        )
        rows, found = {"validation": sample, "test": scored["test"][2]}, {s: r[:2] for s, r in scored.items()}
    else:
        rows = {split: read_parquet(prepared / f"{split}.parquet") for split in ("validation", "test")}
        found = None
    metrics, report, preds, summary = evaluate(
        model=model,
        **rows,
        scored=found,
        metric=metric,
        seed=seed,
        permutation={"n_repeats": settings.permutation_repeats, "max_rows": settings.permutation_rows},
        trained_on=trained_on,
        shipped_on=shipped_on,
    )
    out = Path(args.out_dir)
    write_report(out, metrics=metrics, report=report, preds=preds, summary=summary)
    scores = metrics["test"][metric], metrics["validation"][metric], report.tables["importance"]["feature"].iloc[0]
    in_sample = ", in-sample: refitted on it" if "validation" in trained_on else ""
    log.info(
        "test %s = %.4f (validation %.4f%s); top feature %s; report in %s",
        metric,
        scores[0],
        scores[1],
        in_sample,
        scores[2],
        out / "summary.md",
    )


if __name__ == "__main__":
    main()
