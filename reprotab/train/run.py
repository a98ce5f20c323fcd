"""The train stage as one function: featurize, fit (plain or with pseudo-labels), optionally refit.

`run_train` is what `python -m stages.train` and reprotab/pipeline.py both call; the shell only
wires files to it. Featurizing lives here rather than in a stage of its own because with
`train.refit` (the default) the shipped featurizer is refitted on train + validation anyway: a
separate stage wrote a featurizer and featurized splits that were read once and thrown away.
Kept out of reprotab/train/fit.py so the fitting core does not depend on pseudo-labeling (which
builds on it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from reprotab import paths
from reprotab.data.tables import file_hash, read_parquet, release_arrow_memory
from reprotab.model.card import ModelCard
from reprotab.model.featurizer import featurize
from reprotab.model.schema import Schema
from reprotab.model.served import TabularModel
from reprotab.params.loader import hyperparameters_for
from reprotab.params.sections import DataParams, FeaturizeParams, SamplingParams, TrainParams
from reprotab.train import pseudo_labeling
from reprotab.train.fit import fit, load_previous, merge_hyperparameters, metadata, refit, trained_family
from reprotab.tune.best import BestParams

log = logging.getLogger(__name__)
ReadSplit = Callable[[str, "list[str] | None"], pd.DataFrame]


class TrainView(Protocol):
    """The params keys train reads (stages/train.py PARAMS): its stage's view of params.yaml or
    the whole `Params` (reprotab/pipeline.py) both qualify."""

    @property
    def model(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def hyperparameters(self) -> dict[str, dict[str, Any]]: ...
    @property
    def train(self) -> TrainParams: ...
    @property
    def sampler(self) -> str: ...
    @property
    def sampling(self) -> SamplingParams: ...
    @property
    def featurize(self) -> FeaturizeParams: ...
    @property
    def data(self) -> DataParams: ...


@dataclass(frozen=True)
class Trained:
    """What the train stage produced: the served model, the model card, and train's summary."""

    model: TabularModel  # the shipped model, models/model.zip
    judged: TabularModel  # the model evaluate and the gate judge on test (models/judged.zip): `model` unless refit all
    card: ModelCard  # models/model.json
    summary: dict[str, Any]  # reports/train/metrics.json
    family: str  # the family fitted (with model auto, the one tune chose)
    hyperparameters: dict[str, Any]


def run_train(
    *, schema: Schema, best: BestParams, params: TrainView, read_split: ReadSplit, output: str | Path | None = None
) -> Trained:
    """Featurize the train split (the featurizer is fitted on it alone), fit the family `best` and
    params choose, and build the model card. `params` is train's view of params.yaml; `read_split`
    gives a prepared split; `output` is where the model will be saved (train.init_model may not
    name it)."""
    columns = [*schema.features, schema.target]
    featurizer, *featurized = featurize(
        train=read_split("train", columns),
        validation=read_split("validation", columns),
        schema=schema,
        config=params.featurize,
        seed=params.seed,
    )
    family = trained_family(params.model, best)
    defaults = hyperparameters_for(params.hyperparameters, model=family, task=schema.task)
    hyperparameters = merge_hyperparameters(defaults=defaults, tuned=best.params)
    init_model = params.train.init_model
    previous = None
    if init_model:
        names = [str(n) for n in featurizer.get_feature_names_out()]
        previous = load_previous(init_model, model=family, schema=schema, feature_names=names, output=output)
    # Handed over by popping, so train_model holds the only references and a refit can free the
    # first fit's featurized rows before it featurizes train + validation again.
    model, summary, features, trained_on, judged = train_model(
        family=family,
        features=featurized.pop(0),
        validation=featurized.pop(0),
        schema=schema,
        featurizer=featurizer,
        hyperparameters=hyperparameters,
        params=params,
        read_split=read_split,
        previous=previous,
    )
    meta = metadata(
        model=family,
        schema=schema,
        hyperparameters=hyperparameters,
        features=features,
        tuning=best,
        trained_on=trained_on,
    )
    continued = {"path": init_model, "sha256": file_hash(init_model)} if init_model else None
    card = ModelCard.from_dict(
        {
            **meta,
            "threshold": model.threshold,
            "training": summary,
            "init_model": continued,
            "judged": judged_entry(judged, summary),
        }
    )
    return Trained(
        model=model,
        judged=judged or model,
        card=card,
        summary=summary,
        family=family,
        hyperparameters=hyperparameters,
    )


def judged_entry(judged: TabularModel | None, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The card's `judged` entry: with train.refit all, the model the test split judged and its rows."""
    if judged is None:
        return None
    return {"file": paths.JUDGED, "trained_on_rows": summary["judged"]["rows"], "judged_by": "test"}


def train_model(
    *,
    family: str,
    features: pd.DataFrame,
    validation: pd.DataFrame,
    schema: Schema,
    featurizer: Any,
    hyperparameters: dict[str, Any],
    params: TrainView,
    read_split: ReadSplit,
    previous: Any = None,
) -> tuple[TabularModel, dict[str, Any], pd.DataFrame, dict[str, int], TabularModel | None]:
    """The model, train's summary, the featurized rows it was fitted on, the row count per split
    that trained it, and with train.refit all the train + validation model the test split judges
    (None otherwise). `family` is the model to fit (params' model, or tune's choice with model
    auto); `params` is train's view of params.yaml (seed, train, sampler, sampling, featurize,
    data); `read_split(name, columns)` gives a prepared split (raw rows for refit, the ids that
    pseudo-labeling keeps out)."""
    settings = params.train
    # Both read even when their option is off: train declares them in dvc.yaml for those options,
    # and the params audit holds every stage to reading exactly what it declares.
    unlabeled_path = params.data.unlabeled_path  # train.pseudo_labeling
    featurize = params.featurize  # train.refit refits the featurizer
    trainer = fit
    if settings.pseudo_labeling.enabled:  # rounds of fit with confident predictions on unlabeled rows added
        trainer = pseudo_labeling.trainer_for(
            unlabeled_path, settings, schema=schema, featurizer=featurizer, read_split=read_split
        )
    model, summary = trainer(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model=family,
        hyperparameters=hyperparameters,
        seed=params.seed,
        sampler=params.sampler,
        sampling=params.sampling,
        validation=validation,
        settings=settings,
        previous=previous,
    )
    summary = {"model_used": family, **summary}  # with model auto, the family tune chose (compare shows it)
    trained_on = {"train": len(features)}
    if settings.refit_skipped:  # None unless refit is on and something overrides it
        say = log.warning if settings.refit == "all" else log.info  # all promised a model of every row
        say("train.refit %s skipped: %s; the model keeps its train rows only", settings.refit, settings.refit_skipped)
        summary["refit"] = {"skipped": settings.refit_skipped}
    elif settings.refit:
        # The first fit's featurized rows are done with; the refit featurizes the raw rows again.
        # Dropping them here, and passing the raw splits inline, lets their memory go before the refit
        # when the caller passed them inline too (stages/train.py does).
        del features, validation
        release_arrow_memory()
        columns = [*schema.features, schema.target]  # not the id column or anything else prepare kept
        again: dict[str, Any] = {
            "featurize": featurize,
            "model": family,
            "hyperparameters": hyperparameters,
            "seed": params.seed,
            "sampler": params.sampler,
            "sampling": params.sampling,
        }
        first = model  # the threshold, calibrator and kept rounds were decided with it
        model, summary, features = refit(
            first, summary, train=read_split("train", columns), validation=read_split("validation", columns), **again
        )
        trained_on = dict(summary["refit"]["rows"])
        if settings.refit == "all":  # the model above is the one the test split judges; ship one on every row
            judged, judged_summary = model, summary["refit"]
            del features
            model, summary, features = refit(
                first,
                summary,
                train=read_split("train", columns),
                validation=read_split("validation", columns),
                test=read_split("test", columns),
                **again,
            )
            summary["judged"] = {"file": paths.JUDGED, **judged_summary}
            trained_on = dict(summary["refit"]["rows"])
            return model, summary, features, trained_on, judged
    return model, summary, features, trained_on, None


def parquet_splits(prepared: Path) -> Callable[[str, list[str] | None], pd.DataFrame]:
    """`read_split` over the prepare stage's files."""

    def read(split: str, columns: list[str] | None = None) -> pd.DataFrame:
        return read_parquet(prepared / f"{split}.parquet", columns=columns)

    return read


def frame_splits(splits: dict[str, pd.DataFrame]) -> Callable[[str, list[str] | None], pd.DataFrame]:
    """`read_split` over splits already in memory (reprotab/pipeline.py)."""

    def read(split: str, columns: list[str] | None = None) -> pd.DataFrame:
        return splits[split] if columns is None else splits[split][columns]

    return read
