"""evaluate: the whole report for binary, multiclass and regression models. That `dvc plots show`
renders every declared plot is tests/integration/test_evaluate.py."""

import json
import re

import pytest
import yaml

from reprotab.data.prepare import prepare
from reprotab.data.tables import write_table
from reprotab.evaluate import scores as evaluation
from reprotab.evaluate.report import PLOTS
from reprotab.model import served
from reprotab.model.calibration import Calibrator
from reprotab.model.featurizer import featurize
from reprotab.params.loader import parse_params
from reprotab.params.sections import FeaturizeParams
from reprotab.train.fit import fit
from stages import evaluate
from tests.helpers import MODEL_CARD, ROOT, base_params

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


def shrink() -> Calibrator:
    """A stand-in binary calibrator that pulls probabilities halfway towards uniform (p → 0.25 + p / 2):
    an isotonic curve through (0, 0.25) and (1, 0.75), so the model bundle stores it as any other."""
    return Calibrator.from_dict(
        {"method": "isotonic", "binary": True, "classes": [{"a": [0.0, 1.0], "b": [0.25, 0.75]}]}, n_classes=2
    )


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
        model.threshold, model.calibrator = 0.3, shrink()
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    for split in ("validation", "test"):
        write_table(splits[split], work / "prepared" / f"{split}.parquet")
    served.save(model, work / "model.zip")
    if case == "regression":  # the model card of a refitted model: validation rows trained it
        (work / "model.json").write_text(json.dumps({**MODEL_CARD, "trained_on": ["train", "validation"]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        evaluate.main(["--model", "model.zip", "--card", "model.json", "--prepared", "prepared", "--out-dir", "out"])
    return case, work / "out", splits


def test_every_report_file_is_written(evaluated):
    case, out, splits = evaluated
    kind = "regression" if case == "regression" else "classification"
    for name in ("metrics.json", "predictions.csv", "summary.md", "tables/importance.csv"):
        assert (out / name).is_file(), name
    assert (out / "tables/per_class.csv").is_file() == (kind == "classification")
    figures = {path.stem for path in (out / "figures").glob("*.png")}
    assert figures == FIGURES[kind] | {"importance_model", "importance_permutation"}
    for path in (out / "figures").glob("*.png"):
        assert path.read_bytes().startswith(b"\x89PNG")
    written = {path.stem: json.loads(path.read_text()) for path in (out / "plots/custom").glob("*.json")}
    assert set(written) == set(PLOTS)
    empty = {name for name, rows in written.items() if not rows}
    expected_empty = {
        "binary": {"residuals", "predicted_vs_actual"},
        "multiclass": {"residuals", "predicted_vs_actual", "calibration_uncalibrated"},
        "regression": set(PLOTS) - {"residuals", "predicted_vs_actual", "importance_model", "importance_permutation"},
    }[case]
    assert empty == expected_empty
    predictions = (out / "predictions.csv").read_text().splitlines()
    assert len(predictions) == len(splits["test"]) + 1
    assert predictions[0].startswith("customer_id,truth,predicted")


def test_summary_links_every_figure_and_file(evaluated):
    _, out, _ = evaluated
    summary = (out / "summary.md").read_text()
    links = set(re.findall(r"\]\(([^)]+)\)", summary))
    assert {f"figures/{path.name}" for path in (out / "figures").glob("*.png")} <= links
    for link in links:
        assert (out / link).is_file(), link
    assert "## Top features" in summary


def test_summary_says_when_validation_rows_trained_the_model(evaluated):
    case, out, _ = evaluated
    summary = (out / "summary.md").read_text()
    assert ("refitted on train + validation rows (train.refit)" in summary) == (case == "regression")
    assert ("optimistic where the threshold" in summary) == (case == "binary")


def test_metrics_hold_both_splits_and_the_decisions(evaluated):
    case, out, _ = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["test"]) >= ({"rmse", "mae", "r2", "mape"} if case == "regression" else {"brier", "log_loss"})
    assert set(metrics["validation"]) == set(metrics["test"])
    if case == "binary":
        assert metrics["threshold"] == 0.3
        assert set(metrics["test"]["at_0.5"]) == {"f1", "recall", "precision", "accuracy", "balanced_accuracy"}
        assert set(metrics["test"]["uncalibrated"]) == {"roc_auc", "pr_auc", "log_loss", "brier"}
        # shrinking towards 0.5 keeps the ranking and makes the probabilities worse
        assert metrics["test"]["uncalibrated"]["roc_auc"] == metrics["test"]["roc_auc"]
        assert metrics["test"]["uncalibrated"]["brier"] < metrics["test"]["brier"]
        summary = (out / "summary.md").read_text()
        assert "Decision threshold on P(churned = True): 0.3000" in summary and "Calibration: isotonic" in summary
    else:
        assert "threshold" not in metrics and "at_0.5" not in metrics["test"]


def test_binary_metrics_at_0_5_only_with_a_stored_threshold(churn_small):
    """Without a threshold the model decides at 0.5 already, so there is nothing to add."""
    model, splits = small_model(churn_small, base_params(), trees=10)
    scored, raw = evaluation.scored_predictions(model, splits["test"], raw=True)
    assert raw is None
    assert "at_0.5" not in evaluation.split_metrics(model, scored, raw)
    assert evaluation.measure(model, splits["test"])[1] == evaluation.split_metrics(model, scored, raw)


def declared_sources() -> dict[str, frozenset[str]]:
    """Each evaluate data file dvc.yaml's plots read → its x and y fields (in either role: the
    normalized confusion matrix swaps them)."""
    sources = {}
    for entry in PIPELINE["plots"]:
        props = next(iter(entry.values())) if isinstance(entry, dict) else None
        if props and isinstance(props.get("y"), dict):
            for path, y in props["y"].items():
                if path.startswith("reports/evaluate/"):
                    fields = frozenset((props["x"], y))
                    assert sources.setdefault(path, fields) == fields, path
    return sources


def test_dvc_yaml_declares_every_plot_file_evaluate_writes_with_its_fields():
    expected = {PLOT_FILES.format(name): frozenset(fields) for name, fields in PLOTS.items()}
    assert declared_sources() == expected


def test_evaluate_declares_its_report_outputs():
    stage = PIPELINE["stages"]["evaluate"]
    outs = {next(iter(out)) if isinstance(out, dict) else out for out in stage["outs"]}
    assert outs == {
        "reports/evaluate/plots",
        "reports/evaluate/figures",
        "reports/evaluate/tables",
        "reports/evaluate/predictions.csv",
        "reports/evaluate/summary.md",
    }
    assert "reports/evaluate/figures" in PIPELINE["plots"]
    assert "reprotab/evaluate/report.py" in stage["deps"]


@pytest.mark.parametrize("evaluated", ["regression"], indirect=True)  # one case is enough
def test_a_broken_model_card_stops_evaluate_with_one_message(evaluated, capsys):
    """Which splits trained the model comes from its card: a card that is not one is an error, not a
    silent "train only" (which would hide that validation rows trained a refitted model)."""
    _, out, _ = evaluated
    work = out.parent
    card = (work / "model.json").read_text()  # the module's shared copy: put back afterwards
    (work / "model.json").write_text(json.dumps({"trained_on": ["train", "validation"]}))
    try:
        with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit) as stopped:
            patch.chdir(work)
            evaluate.main(
                ["--model", "model.zip", "--card", "model.json", "--prepared", "prepared", "--out-dir", "out-broken"]
            )
    finally:
        (work / "model.json").write_text(card)
    assert stopped.value.code == 2
    assert "model.json: is not a model card: missing model, task" in capsys.readouterr().err
