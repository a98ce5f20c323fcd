"""The model file: a bundle that loads without unpickling, checks every member, reproduces byte for
byte, refuses older pickles with the converter named, and the converter that reads them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotab.errors import UserError
from reprotab.model import served
from reprotab.model.bundle import MANIFEST, digest, json_bytes, read_members
from reprotab.model.convert import convert
from reprotab.params.loader import parse_params
from reprotab.pipeline import run
from tests.helpers import base_params, generate, tool_env

DATA = Path(__file__).resolve().parents[2] / "data"
ROWS = generate(rows=60, seed=4).drop(columns=["churned", "next_month_spend"])


@pytest.fixture(scope="module")
def models() -> dict[str, served.TabularModel]:
    """One small model per family (binary; the forest and CatBoost with isotonic calibration)."""
    found = {}
    for family, hyper in (
        ("lightgbm", {"n_estimators": 15, "num_leaves": 7}),
        ("xgboost", {"n_estimators": 15, "max_depth": 3}),
        ("random_forest", {"n_estimators": 8, "max_depth": 6, "n_jobs": 1}),
        ("catboost", {"n_estimators": 15, "depth": 4, "thread_count": 1}),
        ("linear", {"alpha": 1.0}),
    ):
        raw = base_params(seed=2, model=family, hyperparameters={family: hyper})
        raw["train"]["calibration"] = "isotonic" if family in ("random_forest", "catboost") else "none"
        found[family] = run(generate(rows=1200, seed=2), parse_params(raw), splits_to_score=()).model
    return found


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rebuilt(members: dict[str, bytes], *, redigest: bool = True) -> bytes:
    """The bundle with `members` (the manifest's digests recomputed unless told not to)."""
    manifest = json.loads(members[MANIFEST])
    if redigest:
        for name, entry in manifest["members"].items():
            entry.update(bytes=len(members[name]), sha256=digest(members[name]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json_bytes(manifest))
        for name, content in members.items():
            if name != MANIFEST:
                archive.writestr(name, content)
    return out.getvalue()


def refused(data: bytes, match: str) -> None:
    with pytest.raises(UserError, match=match):
        served.loads(data, where="--model")


@pytest.mark.parametrize("family", ["lightgbm", "xgboost", "random_forest", "catboost", "linear"])
def test_a_bundle_round_trips_to_the_same_bytes_and_predictions(models, family, tmp_path):
    model = models[family]
    served.save(model, tmp_path / "model.zip")
    loaded = served.load(tmp_path / "model.zip")
    assert loaded.to_bytes() == (tmp_path / "model.zip").read_bytes() == model.to_bytes()
    np.testing.assert_array_equal(loaded.predict_proba(ROWS), model.predict_proba(ROWS))
    members = members_of(model.to_bytes())
    manifest = json.loads(members[MANIFEST])
    assert (manifest["family"], manifest["kind"], manifest["format_version"]) == (family, "binary", 3)
    assert {name: entry["sha256"] for name, entry in manifest["members"].items()} == {
        name: digest(content) for name, content in members.items() if name != MANIFEST
    }
    assert not any(content.startswith(b"\x80") for content in members.values())  # no pickle inside


def test_a_member_changed_without_its_digest_is_refused_by_name(models):
    members = members_of(models["lightgbm"].to_bytes())
    members["decision.json"] = members["decision.json"].replace(b'"threshold":0', b'"threshold":1', 1)
    refused(rebuilt(members, redigest=False), r"decision.json: (sha256|is \d+ bytes)")


def test_content_checks_catch_what_a_recomputed_digest_lets_through(models):
    lightgbm = members_of(models["lightgbm"].to_bytes())
    text = lightgbm["booster.txt"].decode()
    tree = text.index("right_child=", text.index("Tree=0"))
    bad = dict(lightgbm, **{"booster.txt": (text[:tree] + "right_child=999" + text[tree + 13 :]).encode()})
    refused(rebuilt(bad), "booster.txt|LightGBM")

    xgboost = members_of(models["xgboost"].to_bytes())
    model = json.loads(xgboost["booster.json"])
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["left_children"][0] = 0  # the root its own child: a walk that never ends
    refused(rebuilt(dict(xgboost, **{"booster.json": json.dumps(model).encode()})), "child index is out of range")

    plan = json.loads(xgboost["featurizer.json"])
    plan["one_hot"][0]["offsets"][0] = plan["one_hot"][0]["width"]  # one past the group
    refused(rebuilt(dict(xgboost, **{"featurizer.json": json_bytes(plan)})), "offsets must be -1 or below")

    schema = json.loads(xgboost["schema.json"])
    schema["numeric"] = schema["numeric"][:-1]  # a feature the plan encodes is gone
    refused(rebuilt(dict(xgboost, **{"schema.json": json_bytes(schema)})), "not the schema's")


def test_a_forest_node_pointing_outside_its_tree_is_refused(models):
    members = members_of(models["random_forest"].to_bytes())
    header, _, arrays = members["forest.bin"].partition(b"\n")
    left = np.frombuffer(arrays, dtype="<i8", count=1).copy()
    left[0] = 10**6  # the first tree's root: its left child far outside the tree
    changed = header + b"\n" + left.tobytes() + arrays[8:]
    refused(rebuilt(dict(members, **{"forest.bin": changed})), "child index is out of range")


def test_a_catboost_split_or_a_linear_scale_out_of_bounds_is_refused(models):
    members = members_of(models["catboost"].to_bytes())
    model = json.loads(members["catboost.json"])
    bins = sum(len(f["borders"]) for f in model["features_info"]["float_features"])
    model["oblivious_trees"][0]["splits"][0]["split_index"] = bins  # one past the last border
    refused(rebuilt(dict(members, **{"catboost.json": json.dumps(model).encode()})), "split index is out of range")

    members = members_of(models["linear"].to_bytes())
    model = json.loads(members["linear.json"])
    model["scale"][0] = 0.0
    refused(rebuilt(dict(members, **{"linear.json": json.dumps(model).encode()})), "scale must be positive")


def test_a_member_from_another_model_and_a_missing_member_are_refused(models):
    xgboost, lightgbm = members_of(models["xgboost"].to_bytes()), members_of(models["lightgbm"].to_bytes())
    refused(rebuilt(dict(lightgbm, **{"booster.txt": xgboost["booster.json"]})), "LightGBM model text must start")
    manifest = json.loads(lightgbm[MANIFEST])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(MANIFEST, json_bytes(manifest))
        for name in ("schema.json", "featurizer.json", "booster.txt"):
            archive.writestr(name, lightgbm[name])
    refused(out.getvalue(), r"members do not match the manifest \(missing \['decision.json'\]")


def test_a_huge_declared_size_is_refused_before_reading():
    manifest = {"format": "reprotab-model", "format_version": 3, "family": "lightgbm", "members": {}}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json_bytes(manifest))
        archive.writestr("booster.txt", b"\0" * (300 << 20))  # 300 MiB of zeros: a few hundred KiB stored
    allowed = {"lightgbm": {"booster.txt"}}
    with pytest.raises(ValueError, match=r"members must be exactly|declares"):
        read_members(out.getvalue(), allowed)
    manifest["members"] = {"booster.txt": {"bytes": 300 << 20, "sha256": "0" * 64}}
    out2 = io.BytesIO()
    with zipfile.ZipFile(out2, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json_bytes(manifest))
        archive.writestr("booster.txt", b"\0" * (300 << 20))
    with pytest.raises(ValueError, match=r"booster.txt: declares \d+ bytes from \d+ stored"):
        read_members(out2.getvalue(), allowed)


def test_an_older_pickle_is_refused_with_the_converter_named(tmp_path):
    with pytest.raises(UserError, match=r"is a pickle from an older version.*reprotab model convert OLD NEW"):
        served.load(DATA / "format2-lightgbm.joblib", where="--model")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "reprotab", "predict", "--model", str(DATA / "format2-lightgbm.joblib")),
            *("--input", str(DATA / "format2-rows.csv"), "--output", str(tmp_path / "out.parquet")),
        ],
        capture_output=True,
        text=True,
        env=tool_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "reprotab model convert" in result.stderr and "Traceback" not in result.stderr


def test_convert_turns_the_previous_versions_pickle_into_a_bundle_that_predicts_the_same(tmp_path):
    """tests/data/format2-lightgbm.joblib was written by the previous version's train (a LightGBM
    with sigmoid calibration); format2-expected.json holds its probabilities on format2-rows.csv."""
    expected = json.loads((DATA / "format2-expected.json").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "reprotab", "model", "convert", str(DATA / "format2-lightgbm.joblib"), "m.zip"],
        capture_output=True,
        text=True,
        env=tool_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "unpickling it, which runs any code the file holds" in result.stderr
    model = served.load(tmp_path / "m.zip")
    assert model.family == "lightgbm" and model.calibrator is not None
    assert model.threshold == pytest.approx(expected["threshold"])
    proba = model.predict_proba(pd.read_csv(DATA / "format2-rows.csv"))[:, 1]
    assert np.abs(proba - np.array(expected["proba_true"])).max() <= 1e-6


def test_convert_refuses_what_it_cannot_convert(tmp_path):
    (tmp_path / "garbage.joblib").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match="cannot be unpickled"):
        convert(tmp_path / "garbage.joblib", tmp_path / "m.zip")
    import joblib

    joblib.dump({"format_version": 1}, tmp_path / "dict.joblib")
    with pytest.raises(UserError, match="has model format 0; only format 2 pickles convert"):
        convert(tmp_path / "dict.joblib", tmp_path / "m.zip")
    with pytest.raises(UserError, match="must not be the file converted"):
        convert(DATA / "format2-lightgbm.joblib", DATA / "format2-lightgbm.joblib")
    assert not (tmp_path / "m.zip").exists()


def test_a_leafs_stored_feature_is_never_read(models):
    """scikit-learn ignores a leaf's feature, so the checks do too; scoring must never read it
    (the all-trees walk of a few rows once did, and raised IndexError on a 1-row request)."""
    members = members_of(models["random_forest"].to_bytes())
    header, _, arrays = members["forest.bin"].partition(b"\n")
    nodes = sum(count for count, _ in json.loads(header)["trees"])
    left = np.frombuffer(arrays, dtype="<i8", count=nodes)
    feature = np.frombuffer(arrays, dtype="<i8", count=nodes, offset=16 * nodes).copy()
    feature[left == -1] = 10**9  # every leaf
    changed = header + b"\n" + arrays[: 16 * nodes] + feature.tobytes() + arrays[24 * nodes :]
    model = served.loads(rebuilt(dict(members, **{"forest.bin": changed})))
    np.testing.assert_allclose(model.predict_proba(ROWS.head(1)), models["random_forest"].predict_proba(ROWS.head(1)))
    np.testing.assert_allclose(model.predict_proba(ROWS), models["random_forest"].predict_proba(ROWS))
