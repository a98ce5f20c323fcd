"""evaluate in a real DVC repository: `dvc plots show` renders every plot dvc.yaml declares, for
binary and regression models. The report's parts: tests/unit/evaluate/test_evaluate.py."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from reprotab.data.prepare import prepare
from reprotab.data.tables import write_table
from reprotab.model import served
from reprotab.model.featurizer import featurize
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams
from reprotab.train.fit import fit
from stages import evaluate
from tests.helpers import DVC, ROOT, base_params, sh

pytestmark = pytest.mark.integration

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PLOT_FILES = "reports/evaluate/plots/custom/{}.json"
TASKS = {  # case → params overrides
    "binary": {"metric": "f1"},
    "multiclass": {"data": {"target": "contract", "drop_columns": ["churned", "next_month_spend"]}},
    "regression": {
        "task": "regression",
        "metric": "rmse",
        "data": {"target": "next_month_spend", "drop_columns": ["churned"]},
    },
}
FIGURES = {
    "classification": {
        "confusion_matrix",
        "confusion_matrix_normalized",
        "roc",
        "precision_recall",
        "calibration",
        "per_class",
    },
    "regression": {"residuals", "predicted_vs_actual"},
}


class Shrink:
    """A stand-in calibrator: pulls probabilities halfway towards uniform."""

    method = "shrink"

    def transform(self, proba: np.ndarray) -> np.ndarray:
        return 0.5 * proba + 0.5 / proba.shape[1]


def small_model(rows, raw: dict, trees: int = 20):
    """Prepare, featurize and fit a small random forest on `rows` with the given params."""
    params = parse_params(raw)
    splits, schema, _ = prepare(
        rows,
        task=params.task,
        seed=0,
        data=params.data,
        test_size=0.25,
        validation_size=0.25,
        text_min_share=0.95,
    )
    featurizer, features, _ = featurize(
        train=splits["train"], validation=splits["validation"], schema=schema, config=FeaturizeParams()
    )
    model, _ = fit(
        features=features,
        schema=schema,
        featurizer=featurizer,
        model="random_forest",
        hyperparameters={"n_estimators": trees, "n_jobs": 1},
        seed=0,
    )
    return model, splits


@pytest.fixture(scope="module", params=list(TASKS))
def evaluated(request, churn_small, tmp_path_factory):
    """A small real model of each kind, evaluated by the stage's main in a temporary directory."""
    case, work = request.param, tmp_path_factory.mktemp(request.param)
    raw = base_params(**TASKS[case])
    model, splits = small_model(churn_small, raw)
    if case == "binary":  # exercise the threshold and before/after calibration paths
        model.threshold, model.calibrator = 0.3, Shrink()
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    for split in ("validation", "test"):
        write_table(splits[split], work / "prepared" / f"{split}.parquet")
    served.save(model, work / "model.joblib")
    if case == "regression":  # the model card of a refitted model: validation rows trained it
        (work / "model.json").write_text(json.dumps({"trained_on": ["train", "validation"]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        evaluate.main(["--model", "model.joblib", "--prepared", "prepared", "--out-dir", "out"])
    return case, work / "out", splits


def test_dvc_plots_show_renders_every_declared_plot_for_binary_and_regression(reproduced, tmp_path):
    """The real dvc: every declared plot loads without error; those of another task are empty.
    The reproduced project is the binary case as shipped; the regression case re-runs it."""
    repo = reproduced
    named = {next(iter(p)) for p in PIPELINE["plots"] if isinstance(p, dict)}
    for kind, other in (("classification", "regression"), ("regression", "classification")):
        if kind == "regression":
            raw = base_params(**TASKS["regression"])
            (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        sh([DVC, "repro"], repo)
        shown = json.loads(sh([DVC, "plots", "show", "--json"], repo).stdout)
        assert not shown.get("errors"), shown.get("errors")
        assert named <= set(shown["data"])
        rendered = {name for name, entries in shown["data"].items() if entries}
        applicable = FIGURES[kind] | {"importance_model", "importance_permutation"}
        assert applicable <= rendered and not rendered & FIGURES[other]
        images = {Path(name).stem for name in rendered if name.startswith("reports/evaluate/figures/")}
        assert images == applicable
        html = tmp_path / f"html-{kind}"
        sh([DVC, "plots", "show", "-o", str(html)], repo)
        assert (html / "index.html").is_file()
