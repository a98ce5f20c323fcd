"""A table in partitions: listing, the hashed split, the schema decided from every partition, and
prepare processing only partitions it has not seen (engine local: no cluster needed)."""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.engine.partitions import HASH_CACHE, RACY_NS, list_partitions, row_hashes, split_codes
from reprotab.engine.prepare import prepare_partitions
from reprotab.engine.train import featurize_pieces, pin
from reprotab.errors import UserError
from reprotab.model.featurizer import fit_featurizer
from reprotab.params.loader import parse_params
from tests.helpers import base_params


def write_parts(folder: Path, frame: pd.DataFrame, cuts: list[int]) -> None:
    """`frame` as hive-style month folders cut at `cuts` (row positions)."""
    bounds = [0, *cuts, len(frame)]
    for k, (start, stop) in enumerate(itertools.pairwise(bounds)):
        target = folder / f"month=2026-{k + 1:02d}" / "part-0.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.iloc[start:stop].to_parquet(target, index=False)


def params_for(folder: Path, **overrides):
    raw = base_params(data={"path": str(folder)}, model="xgboost", **overrides)
    return parse_params(raw)


def split_of_ids(out: Path) -> dict[str, str]:
    found = {}
    for split in ("train", "validation", "test"):
        for customer in pd.read_parquet(out / f"{split}.parquet")["customer_id"]:
            found[customer] = split
    return found


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return generate(rows=3000, seed=5)


def test_partitions_are_listed_in_path_order_and_hidden_files_skipped(tmp_path, table):
    write_parts(tmp_path, table, [1000, 2000])
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / "month=2026-01" / ".part-1.parquet.tmp").write_text("")
    names = [p.name for p in list_partitions(tmp_path)]
    assert names == ["month=2026-01/part-0.parquet", "month=2026-02/part-0.parquet", "month=2026-03/part-0.parquet"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"data\.path: folder holds no \.csv"):
        list_partitions(tmp_path / "empty")
    with pytest.raises(UserError, match=r"data\.path: file or folder not found"):
        list_partitions(tmp_path / "none")


def test_a_rows_split_depends_on_its_id_and_seed_only(table):
    whole = split_codes(row_hashes(table, id_column="customer_id", seed=42), test_size=0.2, validation_size=0.2)
    half = table.iloc[1000:]
    cut = split_codes(row_hashes(half, id_column="customer_id", seed=42), test_size=0.2, validation_size=0.2)
    assert (whole[1000:] == cut).all()
    shares = np.bincount(whole, minlength=3) / len(whole)
    assert np.allclose(shares, [0.6, 0.2, 0.2], atol=0.03)
    other = split_codes(row_hashes(table, id_column="customer_id", seed=7), test_size=0.2, validation_size=0.2)
    assert (other != whole).mean() > 0.3


def test_the_same_rows_cut_differently_land_in_the_same_splits(tmp_path, table):
    write_parts(tmp_path / "a", table, [1000, 2000])
    write_parts(tmp_path / "b", table, [400, 2900])
    prepare_partitions(params_for(tmp_path / "a"), tmp_path / "out_a")
    prepare_partitions(params_for(tmp_path / "b"), tmp_path / "out_b")
    assert split_of_ids(tmp_path / "out_a") == split_of_ids(tmp_path / "out_b")
    schema_a = json.loads((tmp_path / "out_a" / "manifest.json").read_text())["key"]
    assert schema_a  # recorded


def test_only_new_partitions_are_processed_and_a_removed_one_leaves_no_file(tmp_path, table):
    folder, out = tmp_path / "parts", tmp_path / "prepared"
    write_parts(folder, table.iloc[:2000], [1000])
    _, first = prepare_partitions(params_for(folder), out)
    assert first["partitions"] == {"count": 2, "processed": 2, "reused": 0}
    before = {p: p.stat().st_mtime_ns for p in out.rglob("part-*.parquet")}
    extra = folder / "month=2026-03" / "part-0.parquet"
    extra.parent.mkdir()
    table.iloc[2000:].to_parquet(extra, index=False)
    _, second = prepare_partitions(params_for(folder), out)
    assert second["partitions"] == {"count": 3, "processed": 1, "reused": 2}
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # the reused files were not rewritten
    assert second["train"]["rows"] + second["validation"]["rows"] + second["test"]["rows"] == 3000
    (folder / "month=2026-01" / "part-0.parquet").unlink()
    _, third = prepare_partitions(params_for(folder), out)
    assert third["partitions"] == {"count": 2, "processed": 0, "reused": 2}
    assert len(split_of_ids(out)) == 2000
    changed = params_for(folder, prepare={"test_size": 0.3})
    _, fourth = prepare_partitions(changed, out)
    assert fourth["partitions"]["processed"] == 2  # a setting that shapes every part file redoes them all


def test_the_schema_is_decided_from_every_partition(tmp_path, table):
    frame = table.iloc[:2000].copy()
    frame["promo"] = 0.0  # constant in the first partition, varying in the second
    frame.loc[frame.index[1000:], "promo"] = np.arange(1000) % 3
    frame["code"] = frame["tenure_months"].astype(str)  # numbers as text: numeric, as the local prepare does
    write_parts(tmp_path / "parts", frame, [1000])
    schema, summary = prepare_partitions(params_for(tmp_path / "parts"), tmp_path / "out")
    assert "promo" in schema.numeric
    assert "code" in schema.numeric and "code" in summary["cleaning"]["text_to_number"]
    assert schema.classes == (False, True) and schema.positive_class is True
    train = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert train["code"].dtype == np.float64 and train["churned"].dtype == bool


def test_a_partition_lacking_a_column_is_named(tmp_path, table):
    write_parts(tmp_path / "parts", table.iloc[:2000], [1000])
    second = tmp_path / "parts" / "month=2026-02" / "part-0.parquet"
    pd.read_parquet(second).drop(columns=["region"]).to_parquet(second, index=False)
    with pytest.raises(UserError, match=r"data.path month=2026-02/part-0.parquet: lacks columns .*region"):
        prepare_partitions(params_for(tmp_path / "parts"), tmp_path / "out")


def test_every_worker_gets_a_piece_even_from_one_file():
    workers = ["tcp://a", "tcp://b", "tcp://c"]
    pieces = pin(["one.parquet"], workers)
    assert [(p.index, p.of, p.worker) for p in pieces] == [(0, 3, "tcp://a"), (1, 3, "tcp://b"), (2, 3, "tcp://c")]
    many = pin([f"{k}.parquet" for k in range(5)], workers[:2])
    assert [p.worker for p in many] == ["tcp://a", "tcp://b", "tcp://a", "tcp://b", "tcp://a"]
    assert all(p.of == 1 for p in many)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "random_forest"}, r"model \(engine dask\): has no distributed trainer"),
        ({"sampler": "smote"}, r"sampler \(engine dask\): resamples the whole table in one process"),
        ({"data": {"batches": {"combine": "all"}}}, r"data.batches.combine \(engine dask\): adds files outside"),
    ],
)
def test_engine_dask_refuses_what_it_cannot_run(overrides, message):
    raw = base_params(engine="dask", model="xgboost")
    for key, value in overrides.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    with pytest.raises(UserError, match=message):
        parse_params(raw)


def test_engine_dask_searches_on_the_cluster():
    assert parse_params(base_params(engine="dask", model="xgboost", tuner="optuna")).tuner == "optuna"


def test_a_file_is_read_again_only_when_its_stamp_changes(tmp_path, monkeypatch, table):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    write_parts(tmp_path / "parts", table, [100, 200])
    files = [p.path for p in list_partitions(tmp_path / "parts")]
    old = time.time_ns() - 10 * RACY_NS
    for file in files:  # written long ago, so their stamps are cached
        os.utime(file, ns=(old, old))
    real = [p.sha256 for p in list_partitions(tmp_path / "parts")]
    cache = json.loads(HASH_CACHE.read_text())
    assert [cache[str(f.resolve())][3] for f in files] == real
    cache[str(files[0].resolve())][3] = "0" * 64  # a cached digest is trusted while the stamp holds...
    HASH_CACHE.write_text(json.dumps(cache))
    assert list_partitions(tmp_path / "parts")[0].sha256 == "0" * 64
    os.utime(files[0], ns=(old, old + 1))  # ...and a new modification time reads the file again
    assert [p.sha256 for p in list_partitions(tmp_path / "parts")] == real


def test_a_file_written_just_now_is_never_cached(tmp_path, monkeypatch, table):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".dvc" / "tmp").mkdir(parents=True)
    write_parts(tmp_path / "parts", table, [100, 200])
    list_partitions(tmp_path / "parts")
    assert not HASH_CACHE.exists()  # every file is younger than two seconds: its stamp may repeat


def test_a_part_cut_in_more_ranges_than_rows_featurizes_its_empty_pieces_away(tmp_path, table):
    write_parts(tmp_path / "parts", table, [2000])
    params = params_for(tmp_path / "parts")
    schema, _ = prepare_partitions(params, tmp_path / "prepared")
    rows = pd.read_parquet(tmp_path / "prepared" / "train.parquet")
    featurizer, _ = fit_featurizer(rows, schema=schema, config=params.featurize, seed=0)
    one = tmp_path / "one.parquet"
    rows.iloc[:1].to_parquet(one, index=False)  # one row cut in three ranges: two of them empty
    pieces = pin([str(one)], ["tcp://a", "tcp://b", "tcp://c"])
    featurized = featurize_pieces(pieces, featurizer, schema)
    assert len(featurized) == 1 and featurized.dtypes.eq("float32").all()
