"""train on the cluster (`engine: dask`): the same model bundle as the local engine, from every
prepared partition, without one process ever holding the table.

- The featurizer is fitted on a hashed sample of train (`dask.sample_rows` rows, the same rows
  however the table is cut), then applied to each part file on the worker that holds it.
- Part files are pinned to workers in a fixed order (part k on worker k mod n, workers by name),
  and a split with fewer parts than workers is cut into row ranges, so every worker holds train and
  validation rows. XGBoost refuses a worker without validation rows, and its distributed training
  is reproducible "given the same partitioning, order and workers": two runs give the same bytes.
- XGBoost (`xgboost.dask`) builds quantile matrices and stops early on the validation split.
  LightGBM (`lightgbm.dask`) trains `n_estimators` rounds, tune's or params': its Dask estimator
  has no working early stopping. The threshold and calibrator are chosen on the validation
  split's predictions, gathered as one column; refit then trains on train + validation (and test
  with refit all) with the rounds scaled, as the local engine does.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reprotab import paths
from reprotab.data.tables import read_json, read_parquet
from reprotab.engine.cluster import workers_of
from reprotab.engine.partitions import row_hashes, sample_mask
from reprotab.engine.prepare import MANIFEST
from reprotab.errors import UserError, problem
from reprotab.model.card import ModelCard
from reprotab.model.decision import fit_decision
from reprotab.model.featurizer import fit_featurizer, to_float32
from reprotab.model.schema import Schema, encode_target
from reprotab.model.served import TabularModel
from reprotab.params.loader import hyperparameters_for
from reprotab.train.families import spec_of
from reprotab.train.fit import merge_hyperparameters, metadata, trained_family
from reprotab.train.run import Trained, judged_entry
from reprotab.tune.best import BestParams

TARGET = "__target__"  # the encoded target's column in a featurized part
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """A part file, or one of `of` contiguous row ranges of it, pinned to `worker`."""

    path: str
    index: int
    of: int
    worker: str


def read_manifest(prepared: Path) -> dict[str, Any]:
    """prepare's manifest: the part files of each split, in partition order, and their row counts."""
    manifest = prepared / MANIFEST
    if not manifest.is_file():
        fix = "Run prepare with engine: dask (dvc repro), which writes the splits in partitions"
        raise UserError(problem(str(manifest), "file not found; engine dask trains on prepared partitions", None, fix))
    return read_json(manifest)


def pin(files: list[str], workers: list[str]) -> list[Piece]:
    """Part k on worker k mod n; with fewer parts than workers each part is cut in row ranges
    until every worker holds one."""
    if not files:
        return []
    cuts = math.ceil(len(workers) / len(files))
    pieces = [(path, index, cuts) for path in files for index in range(cuts)]
    return [Piece(path, index, of, workers[k % len(workers)]) for k, (path, index, of) in enumerate(pieces)]


def load_piece(piece: Piece, columns: list[str]) -> pd.DataFrame:
    frame = read_parquet(piece.path, columns=columns)
    if piece.of == 1:
        return frame
    bounds = np.linspace(0, len(frame), piece.of + 1).astype(int)
    return frame.iloc[bounds[piece.index] : bounds[piece.index + 1]].reset_index(drop=True)


def featurize_pieces(pieces: list[Piece], featurizer: Any, schema: Schema) -> pd.DataFrame:
    """Pieces' rows, in order, featurized (float32) with the encoded target beside them. Each piece
    is featurized as it is read (the featurizer is row by row), so a worker never holds more than
    one piece's raw rows beside the float32 features: those are what training needs in memory."""
    columns = [*schema.features, schema.target]

    def featurized(frame: pd.DataFrame) -> pd.DataFrame:
        features = to_float32(featurizer.transform(frame[list(schema.features)]))
        features[TARGET] = encode_target(frame[schema.target], schema).astype(np.float32)
        return features

    parts, empty = [], pd.DataFrame(columns=columns)
    for piece in pieces:
        frame = load_piece(piece, columns)
        if len(frame):
            parts.append(featurized(frame))
        else:  # a part cut in more ranges than it has rows leaves empty pieces
            empty = frame
    return pd.concat(parts, ignore_index=True) if parts else featurized(empty)  # all empty: as one table


def sample_piece(path: str, schema: Schema, share: float, seed: int) -> pd.DataFrame:
    columns = [*schema.features, schema.target, *([schema.id_column] if schema.id_column else [])]
    frame = read_parquet(path, columns=columns)
    keep = sample_mask(row_hashes(frame, id_column=schema.id_column, seed=seed), share)
    return frame[keep].reset_index(drop=True)


class DaskTrainer:
    """Featurize and fit on a client's workers; one instance per train run."""

    def __init__(self, client: Any, *, schema: Schema, params: Any, prepared: Path) -> None:
        self.client, self.schema, self.params, self.prepared = client, schema, params, prepared
        self.workers = workers_of(client)
        info = client.scheduler_info(n_workers=-1)["workers"]
        self.threads = sorted({int(info[w].get("nthreads", 0)) for w in self.workers})  # the cluster's, not params'
        manifest = read_manifest(prepared)
        entries, self.key = manifest["partitions"], manifest["key"]
        splits = ("train", "validation", "test")
        self.files = {
            s: [str(prepared / f"{s}.parquet" / name) for e in entries for name in e["outputs"][s]] for s in splits
        }
        self.rows = {s: sum(e["splits"][s]["rows"] for e in entries) for s in splits}

    def fit_featurizer(self, splits: tuple[str, ...]) -> Any:
        """The featurizer, fitted on a hashed sample of `splits`' rows (all of them when fewer
        than dask.sample_rows)."""
        rows = sum(self.rows[s] for s in splits)
        share = min(1.0, self.params.dask.sample_rows / max(rows, 1))
        files = [f for s in splits for f in self.files[s]]
        futures = [self.client.submit(sample_piece, f, self.schema, share, self.params.seed, pure=False) for f in files]
        sample = pd.concat(self.client.gather(futures), ignore_index=True)
        featurizer, _ = fit_featurizer(sample, schema=self.schema, config=self.params.featurize, seed=self.params.seed)
        log.info("featurizer fitted on %d sampled rows of %s (%d rows)", len(sample), " + ".join(splits), rows)
        return featurizer

    def frames(self, splits: tuple[str, ...], featurizer: Any) -> tuple[Any, Any, list[Any]]:
        """The featurized rows of `splits` as Dask frames (X, y): one partition per worker, its
        pieces concatenated in order (the libraries would concatenate a worker's parts in the
        order the scheduler lists them, which varies between runs); and those partitions' futures."""
        import dask.dataframe as dd

        pieces = pin([f for s in splits for f in self.files[s]], self.workers)
        shared = self.client.scatter(featurizer, broadcast=True)
        futures = [
            self.client.submit(
                featurize_pieces,
                [p for p in pieces if p.worker == worker],
                shared,
                self.schema,
                workers=[worker],
                allow_other_workers=False,
                pure=False,
            )
            for worker in self.workers
        ]
        meta = featurize_pieces(pieces[:1], featurizer, self.schema).iloc[:0]
        frame = dd.from_delayed(futures, meta=meta, verify_meta=False)
        return frame.drop(columns=[TARGET]), frame[TARGET], futures

    def rows_hash(self, splits: tuple[str, ...]) -> str:
        """What the model was fitted on, by content: the manifest's key (settings, schema, code)
        and the part files, each named by its partition's SHA-256."""
        names = [Path(f).relative_to(self.prepared).as_posix() for s in splits for f in self.files[s]]
        return hashlib.sha256("\n".join([self.key, *names]).encode()).hexdigest()[:16]


def predict_piece(features: pd.DataFrame, estimator: Any) -> tuple[np.ndarray, np.ndarray]:
    """The estimator's probabilities for a featurized piece, and its encoded targets."""
    return estimator.predict_proba(features.drop(columns=[TARGET])), features[TARGET].to_numpy().astype(int)


def _estimator(family: str, task: str, hyperparameters: dict[str, Any], seed: int, client: Any) -> Any:
    settings = {k: v for k, v in hyperparameters.items() if k != "n_jobs"}  # threads: dask.threads_per_worker
    if family == "xgboost":
        import xgboost.dask as dxgb  # imported explicitly: `import xgboost` does not load it

        cls = dxgb.DaskXGBClassifier if task == "classification" else dxgb.DaskXGBRegressor
        return cls(**settings, random_state=seed, verbosity=0)
    import lightgbm

    cls = lightgbm.DaskLGBMClassifier if task == "classification" else lightgbm.DaskLGBMRegressor
    return cls(client=client, **settings, random_state=seed, deterministic=True, verbose=-1)


def _local(family: str, task: str, estimator: Any, kept: int | None) -> Any:
    """The fitted Dask estimator as the library's local one, cut to the rounds early stopping kept."""
    if family == "lightgbm":
        return estimator.to_local()
    import xgboost

    booster = estimator.get_booster()
    if kept is not None:
        booster = booster[:kept]
    local = xgboost.XGBClassifier() if task == "classification" else xgboost.XGBRegressor()
    local.load_model(bytearray(booster.save_raw("json")))
    return local


def run_train_dask(*, schema: Schema, best: BestParams, params: Any, prepared: Path, client: Any) -> Trained:
    """The train stage on a cluster: the same `Trained` record as reprotab/train/run.py."""
    trainer = DaskTrainer(client, schema=schema, params=params, prepared=prepared)
    family = trained_family(params.model, best)
    defaults = hyperparameters_for(params.hyperparameters, model=family, task=schema.task)
    hyperparameters = merge_hyperparameters(defaults=defaults, tuned=best.params)
    settings, seed = params.train, params.seed
    featurizer = trainer.fit_featurizer(("train",))
    X, y, _ = trainer.frames(("train",), featurizer)
    Xv, yv, held = trainer.frames(("validation",), featurizer)
    estimator = _estimator(family, schema.task, hyperparameters, seed, client)
    rounds = settings.early_stopping_rounds
    summary: dict[str, Any] = {"model_used": family, "sampler_used": "none", "engine": "dask"}
    if family == "xgboost" and rounds:
        estimator.set_params(early_stopping_rounds=rounds)
        estimator.fit(X, y, eval_set=[(Xv, yv)], verbose=False)
        kept = int(estimator.best_iteration) + 1
        summary["best_iteration"] = kept
        log.info("early stopping kept %d of %s rounds", kept, hyperparameters.get("n_estimators"))
    else:
        if rounds:
            log.info("%s on dask has no early stopping; it trains all n_estimators rounds", family)
        estimator.fit(X, y)
        kept = None
    local = _local(family, schema.task, estimator, kept)
    spec = spec_of(family)
    summary["size"] = spec.size(local)
    summary.update(spec.describe(local))
    threshold, calibrator = None, None
    if schema.task == "classification":
        scored = client.gather(client.map(predict_piece, held, estimator=local, pure=False))
        proba, targets = np.concatenate([p for p, _ in scored]), np.concatenate([t for _, t in scored])
        threshold, calibrator, decided = fit_decision(schema=schema, proba=proba, y=targets, settings=settings)
        summary.update(decided)
    model = TabularModel.from_fitted(
        featurizer=featurizer, estimator=local, family=family, schema=schema, threshold=threshold, calibrator=calibrator
    )
    trained_on = {"train": trainer.rows["train"]}
    judged = None
    if settings.refit:
        judged_model, first_summary = model, dict(summary)
        model, summary, trained_on = _refit(trainer, model, summary, family, hyperparameters, ("train", "validation"))
        if settings.refit == "all":
            judged = model
            model, summary, trained_on = _refit(
                trainer, judged_model, first_summary, family, hyperparameters, ("train", "validation", "test")
            )
            summary["judged"] = {"file": paths.JUDGED, "rows": {s: trainer.rows[s] for s in ("train", "validation")}}
    names = list(model.feature_names)
    meta = metadata(
        model=family,
        schema=schema,
        hyperparameters=hyperparameters,
        features=pd.DataFrame(columns=names),
        tuning=best,
        trained_on=trained_on,
    )
    meta["training_rows"] = sum(trained_on.values())
    meta["training_data_hash"] = trainer.rows_hash(tuple(trained_on))
    engine = {
        "engine": "dask",
        "workers": len(trainer.workers),
        "threads_per_worker": trainer.threads,
        "partition_rows": params.dask.partition_rows,
        "sample_rows": params.dask.sample_rows,
        "part_files": {s: len(trainer.files[s]) for s in trained_on},
    }
    card = ModelCard.from_dict(
        {
            **meta,
            "threshold": model.threshold,
            "training": summary,
            "judged": judged_entry(judged, summary),
            "engine": engine,
        }
    )
    return Trained(
        model=model, judged=judged or model, card=card, summary=summary, family=family, hyperparameters=hyperparameters
    )


def _refit(
    trainer: DaskTrainer,
    first: TabularModel,
    summary: dict[str, Any],
    family: str,
    hyperparameters: dict[str, Any],
    splits: tuple[str, ...],
) -> tuple[TabularModel, dict[str, Any], dict[str, int]]:
    """The model refitted on `splits` with the first fit's threshold and calibrator, rounds scaled."""
    schema, params = trainer.schema, trainer.params
    counts = {s: trainer.rows[s] for s in splits}
    spec = spec_of(family)
    settings = spec.refit_settings(dict(hyperparameters), summary, sum(counts.values()) / counts["train"])
    featurizer = trainer.fit_featurizer(splits)
    X, y, _ = trainer.frames(splits, featurizer)
    estimator = _estimator(family, schema.task, settings, params.seed, trainer.client)
    estimator.fit(X, y)
    local = _local(family, schema.task, estimator, None)
    log.info("refitted %s on %s: %d rows", family, " + ".join(splits), sum(counts.values()))
    refitted = {
        **summary,
        "refit": {"rows": counts, "n_estimators": settings.get("n_estimators"), **spec.describe(local)},
        "size": spec.size(local),
    }
    model = TabularModel.from_fitted(
        featurizer=featurizer,
        estimator=local,
        family=family,
        schema=schema,
        threshold=first.threshold,
        calibrator=first.calibrator,
    )
    return model, refitted, counts
