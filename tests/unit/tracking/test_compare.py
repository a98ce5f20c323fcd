"""`reprotab compare`: rows from `dvc exp show --json`, ranking, the markdown and the plot.
The recipe of docs/recipes/samplers.md for real (queue two samplers, run them, compare) is
tests/integration/test_compare.py."""

import pytest

from reprotab.errors import UserError
from reprotab.stats.metrics import LOWER_IS_BETTER
from reprotab.tracking.compare import _params_metric, experiment_rows, markdown, plot, rank

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# and `dvc exp run --run-all` in a copy made by tests.helpers.make_repo: the workspace, the baseline
# commit (its metrics committed from a run on other data), and two experiments, newest first.
SHOWN = [
    {
        "rev": "workspace",
        "name": None,
        "data": {
            "rev": "workspace",
            "timestamp": None,
            "params": {"params.yaml": {"data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}}},
            "metrics": {
                "reports/tune/metrics.json": {"data": {"trials": 0}},
                "reports/train/metrics.json": {
                    "data": {"sampler_used": "none", "training_rows": 18000, "training_rows_resampled": 18000}
                },
                "reports/evaluate/metrics.json": {
                    "data": {
                        "validation": {"roc_auc": 0.858748, "pr_auc": 0.362596, "log_loss": 0.19},
                        "test": {"roc_auc": 0.861, "pr_auc": 0.37, "f1": 0.03, "log_loss": 0.18},
                    }
                },
            },
            "deps": {},
            "outs": {},
            "meta": {},
        },
        "error": None,
        "experiments": None,
    },
    {
        "rev": "5e83597f732f9171785e801cf4739c4989e2ed10",
        "name": "main",
        "data": {
            "rev": "5e83597f732f9171785e801cf4739c4989e2ed10",
            "timestamp": "2026-11-23T03:12:37",
            "params": {"params.yaml": {"data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}}},
            "metrics": {
                "reports/train/metrics.json": {"data": {"sampler_used": "none"}},
                "reports/evaluate/metrics.json": {
                    "data": {
                        "validation": {"roc_auc": 0.858748},
                        "test": {"roc_auc": 0.861, "pr_auc": 0.37, "f1": 0.03, "log_loss": 0.18},
                    }
                },
            },
            "deps": {},
            "outs": {},
            "meta": {},
        },
        "error": None,
        "experiments": [
            {
                "revs": [
                    {
                        "rev": "2cc09824bbc100a152e6505af63daea0cf9d7f89",
                        "name": "paced-tire",
                        "data": {
                            "rev": "2cc09824bbc100a152e6505af63daea0cf9d7f89",
                            "timestamp": "2026-11-23T03:12:59",
                            "params": {
                                "params.yaml": {
                                    "data": {"task": "classification", "sampler": "random_over", "metric": "roc_auc"}
                                }
                            },
                            "metrics": {
                                "reports/train/metrics.json": {
                                    "data": {"sampler_used": "random_over", "training_rows_resampled": 2790}
                                },
                                "reports/evaluate/metrics.json": {
                                    "data": {
                                        "validation": {"roc_auc": 0.82},
                                        "test": {"roc_auc": 0.850429, "pr_auc": 0.318926, "f1": 0.32, "log_loss": 0.24},
                                    }
                                },
                            },
                            "deps": {},
                            "outs": {},
                            "meta": {},
                        },
                        "error": None,
                        "experiments": None,
                    }
                ],
                "executor": {"state": "success", "name": "dvc-task", "local": {"returncode": 0}},
                "name": "paced-tire",
            },
            {
                "revs": [
                    {
                        "rev": "3a02c6fb39e1b3d4c0a5f5ad2cf1a6a1f0c0e2b1",
                        "name": "elfin-smut",
                        "data": {
                            "rev": "3a02c6fb39e1b3d4c0a5f5ad2cf1a6a1f0c0e2b1",
                            "timestamp": "2026-11-23T03:12:43",
                            "params": {
                                "params.yaml": {
                                    "data": {"task": "classification", "sampler": "none", "metric": "roc_auc"}
                                }
                            },
                            "metrics": {
                                "reports/train/metrics.json": {"data": {"sampler_used": "none"}},
                                "reports/evaluate/metrics.json": {
                                    "data": {
                                        "validation": {"roc_auc": 0.811306},
                                        "test": {"roc_auc": 0.829063, "pr_auc": 0.326809, "f1": 0.0, "log_loss": 0.21},
                                    }
                                },
                            },
                            "deps": {},
                            "outs": {},
                            "meta": {},
                        },
                        "error": None,
                        "experiments": None,
                    }
                ],
                "executor": {"state": "success", "name": "dvc-task", "local": {"returncode": 0}},
                "name": "elfin-smut",
            },
        ],
    },
]


def experiment(
    name: str, timestamp: str, params: dict, test: dict | None, used: str | None = None, family: str | None = None
) -> dict:
    """One experiment entry of `dvc exp show --json` (as under a commit's "experiments")."""
    metrics = {} if test is None else {"reports/evaluate/metrics.json": {"data": {"validation": {}, "test": test}}}
    if used or family:
        metrics["reports/train/metrics.json"] = {"data": {"sampler_used": used, "model_used": family}}
    data = {"rev": f"{name}-rev", "timestamp": timestamp, "params": {"params.yaml": {"data": params}}}
    return {
        "revs": [{"rev": f"{name}-rev", "name": name, "data": {**data, "metrics": metrics}, "error": None}],
        "executor": None,
        "name": name,
    }


def baseline_with(*experiments: dict) -> list[dict]:
    """A shown list: one baseline commit without metrics (so it never becomes a row) and these experiments."""
    commit = {"rev": "abc", "name": "main", "data": {"rev": "abc", "timestamp": "2026-01-01T00:00:00"}}
    return [{**commit, "error": None, "experiments": list(experiments)}]


def by_sampler(frame) -> dict:
    return {row["sampler"]: row for row in frame.to_dict("records")}


# experiment_rows


def test_rows_cover_workspace_baseline_and_every_experiment():
    rows = experiment_rows(SHOWN, by="sampler")
    assert list(rows["experiment"]) == ["workspace", "main", "paced-tire", "elfin-smut"]
    assert list(rows["source"]) == ["workspace", "baseline", "experiment", "experiment"]
    assert list(rows["sampler"]) == ["none", "none", "random_over", "none"]
    assert list(rows["timestamp"][1:]) == ["2026-11-23T03:12:37", "2026-11-23T03:12:59", "2026-11-23T03:12:43"]
    paced = rows.set_index("experiment").loc["paced-tire"]
    assert paced["sampler_used"] == "random_over"
    assert paced["roc_auc"] == pytest.approx(0.850429)
    assert paced["log_loss"] == pytest.approx(0.24)
    assert "validation" not in rows  # only test metrics are compared


def test_rows_skip_experiments_without_the_param_or_test_metrics():
    shown = baseline_with(
        experiment("ran", "2026-01-02T00:00:00", {"sampler": "smote"}, {"roc_auc": 0.8}),
        experiment("older-params", "2026-01-03T00:00:00", {"model": "xgboost"}, {"roc_auc": 0.9}),
        experiment("queued", "2026-01-04T00:00:00", {"sampler": "adasyn"}, None),
    )
    shown[0]["experiments"].append({"revs": [{"rev": "x", "name": "failed", "data": None, "error": {"msg": "boom"}}]})
    rows = experiment_rows(shown, by="sampler")
    assert list(rows["experiment"]) == ["ran"]
    assert experiment_rows(shown, by="tuner").empty


def test_rows_without_train_metrics_have_no_sampler_used():
    shown = baseline_with(experiment("a", "2026-01-02T00:00:00", {"model": "lightgbm"}, {"roc_auc": 0.8}))
    row = experiment_rows(shown, by="model").iloc[0]
    assert row["model"] == "lightgbm"
    assert row["sampler_used"] is None


def test_compared_by_model_an_auto_run_shows_the_family_it_fitted():
    shown = baseline_with(
        experiment("auto", "2026-01-02T00:00:00", {"model": "auto"}, {"roc_auc": 0.88}, "none", "xgboost"),
        experiment("lgbm", "2026-01-03T00:00:00", {"model": "lightgbm"}, {"roc_auc": 0.87}, "none", "lightgbm"),
    )
    ranked = rank(experiment_rows(shown, by="model"), by="model", metric="roc_auc")
    lines = markdown(ranked, by="model", metric="roc_auc").splitlines()
    assert lines[2] == "| rank | model | sampler_used | model_used | roc_auc | experiment | timestamp |"
    assert lines[4].startswith("| 1 | auto | none | xgboost | 0.8800 | auto |")


def test_a_param_that_is_a_section_is_compared_as_its_json():
    shown = baseline_with(
        experiment("a", "2026-01-02T00:00:00", {"prepare": {"test_size": 0.2}}, {"roc_auc": 0.8}),
        experiment("b", "2026-01-03T00:00:00", {"prepare": {"test_size": 0.3}}, {"roc_auc": 0.7}),
    )
    ranked = rank(experiment_rows(shown, by="prepare"), by="prepare", metric="roc_auc")
    assert list(ranked["prepare"]) == ['{"test_size": 0.2}', '{"test_size": 0.3}']


# rank


def test_rank_prefers_the_experiment_over_a_stale_baseline_for_the_same_value():
    ranked = rank(experiment_rows(SHOWN, by="sampler"), by="sampler", metric="roc_auc")
    assert list(ranked["sampler"]) == ["random_over", "none"]
    none = by_sampler(ranked)["none"]
    # the baseline's 0.861 came from another run; the queued `none` experiment scored 0.829063
    assert none["experiment"] == "elfin-smut"
    assert none["roc_auc"] == pytest.approx(0.829063)


def test_rank_keeps_the_most_recent_experiment_of_a_value():
    shown = baseline_with(
        experiment("old", "2026-01-02T00:00:00", {"sampler": "smote"}, {"roc_auc": 0.95}),
        experiment("new", "2026-01-05T00:00:00", {"sampler": "smote"}, {"roc_auc": 0.70}),
        experiment("mid", "2026-01-03T00:00:00", {"sampler": "none"}, {"roc_auc": 0.80}),
    )
    ranked = rank(experiment_rows(shown, by="sampler"), by="sampler", metric="roc_auc")
    assert list(ranked["experiment"]) == ["mid", "new"]


def test_without_experiments_the_workspace_comes_before_its_baseline():
    rows = experiment_rows([SHOWN[0], {**SHOWN[1], "experiments": None}], by="sampler")
    assert list(rows["experiment"]) == ["workspace", "main"]
    assert list(rank(rows, by="sampler", metric="roc_auc")["experiment"]) == ["workspace"]


def test_rank_higher_is_better_puts_the_largest_first():
    shown = baseline_with(
        *(
            experiment(name, f"2026-01-0{i + 2}T00:00:00", {"sampler": name}, {"f1": f1})
            for i, (name, f1) in enumerate([("none", 0.1), ("smote", 0.4), ("random_under", 0.3)])
        )
    )
    ranked = rank(experiment_rows(shown, by="sampler"), by="sampler", metric="f1")
    assert list(ranked["sampler"]) == ["smote", "random_under", "none"]


@pytest.mark.parametrize("metric", sorted(LOWER_IS_BETTER))
def test_rank_lower_is_better_puts_the_smallest_first(metric):
    shown = baseline_with(
        experiment("a", "2026-01-02T00:00:00", {"model": "random_forest"}, {metric: 0.30, "r2": 0.9}),
        experiment("b", "2026-01-03T00:00:00", {"model": "xgboost"}, {metric: 0.10, "r2": 0.5}),
        experiment("c", "2026-01-04T00:00:00", {"model": "lightgbm"}, {metric: 0.20, "r2": 0.7}),
    )
    rows = experiment_rows(shown, by="model")
    assert list(rank(rows, by="model", metric=metric)["model"]) == ["xgboost", "lightgbm", "random_forest"]
    assert list(rank(rows, by="model", metric="r2")["model"]) == ["random_forest", "lightgbm", "xgboost"]


def test_rows_missing_the_ranked_metric_are_left_out():
    shown = baseline_with(
        experiment("a", "2026-01-02T00:00:00", {"sampler": "none"}, {"roc_auc": 0.8, "f1": 0.1}),
        experiment("b", "2026-01-03T00:00:00", {"sampler": "smote"}, {"f1": 0.5}),
        experiment("c", "2026-01-04T00:00:00", {"sampler": "adasyn"}, {"roc_auc": 0.85, "f1": 0.2}),
    )
    rows = experiment_rows(shown, by="sampler")
    assert list(rank(rows, by="sampler", metric="roc_auc")["sampler"]) == ["adasyn", "none"]
    assert list(rank(rows, by="sampler", metric="f1")["sampler"]) == ["smote", "adasyn", "none"]


@pytest.mark.parametrize(
    ("shown", "by", "metric"),
    [
        ([], "sampler", "roc_auc"),  # nothing shown at all
        (SHOWN, "tuner", "roc_auc"),  # no experiment has the param
        (SHOWN, "sampler", "rmse"),  # no experiment has the metric
    ],
)
def test_rank_says_what_is_missing(shown, by, metric):
    with pytest.raises(UserError, match=f"param '{by}' and test metric '{metric}'"):
        rank(experiment_rows(shown, by=by), by=by, metric=metric)


# markdown, plot, the default metric


def test_markdown_is_a_ranked_table_with_the_metric_first_and_the_experiment_last():
    ranked = rank(experiment_rows(SHOWN, by="sampler"), by="sampler", metric="pr_auc")
    lines = markdown(ranked, by="sampler", metric="pr_auc").splitlines()
    assert lines[0] == "# Experiments compared by `sampler`, ranked by test `pr_auc`"
    assert lines[2] == "| rank | sampler | sampler_used | pr_auc | roc_auc | f1 | log_loss | experiment | timestamp |"
    assert lines[3] == "|" + "---|" * 9
    assert lines[4] == "| 1 | none | none | 0.3268 | 0.8291 | 0.0000 | 0.2100 | elfin-smut | 2026-11-23T03:12:43 |"
    assert lines[5].startswith("| 2 | random_over | random_over | 0.3189 | 0.8504 |")
    assert lines[-1] == "![sampler](sampler.png)"
    assert "source" not in lines[2]


def test_markdown_shows_missing_values_as_a_dash():
    shown = baseline_with(
        experiment("a", "2026-01-02T00:00:00", {"model": "xgboost"}, {"roc_auc": 0.8}),
        experiment("b", "2026-01-03T00:00:00", {"model": "lightgbm"}, {"roc_auc": 0.7, "f1": 0.25}),
    )
    ranked = rank(experiment_rows(shown, by="model"), by="model", metric="roc_auc")
    rows = [line for line in markdown(ranked, by="model", metric="roc_auc").splitlines() if line.startswith("| 1")]
    assert rows == ["| 1 | xgboost | — | 0.8000 | — | a | 2026-01-02T00:00:00 |"]


@pytest.mark.parametrize("values", [(0.83, 0.85, 0.86), (-0.4, 0.1, 0.6), (120.0, 95.5, 101.0)])
def test_plot_writes_a_png(tmp_path, values):
    shown = baseline_with(
        *(experiment(f"e{i}", f"2026-01-0{i + 2}T00:00:00", {"seed": i}, {"r2": v}) for i, v in enumerate(values))
    )
    ranked = rank(experiment_rows(shown, by="seed"), by="seed", metric="r2")
    path = tmp_path / "out" / "seed.png"
    plot(ranked, by="seed", metric="r2", path=path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert list(path.parent.iterdir()) == [path]  # written atomically: no temp file left


def test_default_metric_is_the_workspace_params_metric():
    assert _params_metric(SHOWN) == "roc_auc"
    pr = [{**SHOWN[0], "data": {"params": {"params.yaml": {"data": {"metric": "pr_auc"}}}}}]
    assert _params_metric(pr) == "pr_auc"
    assert _params_metric([]) == "roc_auc"


# the docs' recipe, for real


def test_nested_test_metrics_become_columns_named_like_dvclive():
    test = {"f1": 0.4, "at_0.5": {"f1": 0.05, "recall": 0.03}}
    shown = baseline_with(experiment("a", "2026-01-02T00:00:00", {"sampler": "none"}, test))
    rows = experiment_rows(shown, by="sampler")
    assert rows.iloc[0][["f1", "at_0.5/f1", "at_0.5/recall"]].tolist() == [0.4, 0.05, 0.03]
    assert "| 0.0500 |" in markdown(rank(rows, by="sampler", metric="f1"), by="sampler", metric="f1")
