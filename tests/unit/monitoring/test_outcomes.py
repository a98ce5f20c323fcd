"""Live outcomes on real prediction logs written by PredictionLog: labels join the served rows (by
id, hashed id, request_id and position, from a file and from feedback files), what cannot be used
is counted or refused, and the canary's verdict follows the truth the logs were drawn from: labels
are drawn from a true probability p, and the better model's probability is the one closer to p."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reprotab.data.demo import generate
from reprotab.errors import UserError
from reprotab.labeling.labels import main as labels_main
from reprotab.model import served
from reprotab.monitoring import outcomes
from reprotab.monitoring.report import main as monitor_main
from reprotab.params.loader import parse_params
from reprotab.params.sections import PredictionLogParams
from reprotab.pipeline import run
from reprotab.registry.canary import current, decide
from reprotab.registry.canary import main as canary_main
from reprotab.serving.prediction_log import PredictionLog, read_rows, record
from tests.helpers import base_params

START = datetime(2026, 11, 1, tzinfo=UTC)
CHAMPION, CANARY = "v1.0.0", "v1.0.1"


def line(i: int, route: str, version: str, score: float | None, *, row_id=None, request=None, prediction=None):
    """One log record at START + i seconds; `score` is P(True), None for a regression prediction."""
    return record(
        time=START + timedelta(seconds=i),
        request_id=request or f"r{i}",
        route=route,
        version=version,
        features={"x": i},
        prediction=(score >= 0.5) if prediction is None else prediction,
        proba=None if score is None else {"False": 1 - score, "True": score},
        row_id=row_id,
    )


def write(directory: Path, lines: list[dict], policy: PredictionLogParams | None = None) -> Path:
    log = PredictionLog(directory, clock=lambda: START, policy=policy)
    for one in lines:
        log.write([one])
    log.close()
    return directory


def simulate(
    directory: Path, *, rows: int, champion: float, canary: float, seed: int = 0, policy=None, versions=None
) -> pd.DataFrame:
    """`rows` one-row requests, every other one answered by the canary (every fifth also shadowed);
    each model's P(True) is the true p plus normal noise of its scale. The labels, drawn from p."""
    champion_version, canary_version = versions or (CHAMPION, CANARY)
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, rows)
    truth = rng.random(rows) < p
    lines = []
    for i in range(rows):
        route, version, noise = (
            ("canary", canary_version, canary) if i % 2 else ("champion", champion_version, champion)
        )
        score = float(np.clip(p[i] + noise * rng.normal(), 0.01, 0.99))
        lines.append(line(i, route, version, score, row_id=f"C{i}"))
        if i % 5 == 0:
            lines.append(line(i, "shadow", "v0.9.0", 1 - score, row_id=f"C{i}"))
    write(directory, lines, policy)
    return pd.DataFrame({"id": [f"C{i}" for i in range(rows)], "label": truth})


def labels(rows: list[tuple]) -> pd.DataFrame:
    """Labels as the join reads them: (id, request_id, position, label) tuples."""
    return pd.DataFrame(rows, columns=["id", "request_id", "position", "label"])


def params(**canary):
    return parse_params(base_params(canary={"bootstrap": 300, **canary}))


def verdict(directory: Path, truth: pd.DataFrame, **canary) -> dict:
    config = params(**canary)
    joined = outcomes.join(read_rows(directory), truth.assign(request_id=None, position=None), task="classification")
    return decide(outcomes.live(joined, params=config, positive="True"), config=config.canary)


# --- joining -----------------------------------------------------------------------------------


@pytest.fixture
def small_log(tmp_path) -> Path:
    """r0: champion row A (shadowed); r1: canary row B; r2: champion rows C and D."""
    return write(
        tmp_path / "log",
        [
            line(0, "champion", CHAMPION, 0.8, row_id="A"),
            line(0, "shadow", "v0.9.0", 0.3, row_id="A"),
            line(1, "canary", CANARY, 0.4, row_id="B"),
            line(2, "champion", CHAMPION, 0.6, row_id="C", request="r2"),
            line(2, "champion", CHAMPION, 0.1, row_id="D", request="r2"),
        ],
    )


def test_labels_join_served_rows_only_and_unmatched_ones_are_counted(small_log, caplog):
    given = labels(
        [("A", None, None, True), ("B", None, None, "False"), ("C", None, None, True), ("Z", None, None, True)]
    )
    joined = outcomes.join(read_rows(small_log), given, task="classification")
    rows = joined.rows
    assert list(rows.columns) == list(outcomes.COLUMNS)
    assert rows[["route", "version", "id", "prediction", "label"]].values.tolist() == [
        ["champion", CHAMPION, "A", "True", "True"],  # the served answer, not the shadow's
        ["canary", CANARY, "B", "False", "False"],
        ["champion", CHAMPION, "C", "True", "True"],
    ]
    assert joined.classes == ("False", "True")
    assert joined.counts == {
        "labels": 4,
        "empty_labels": 0,
        "unmatched": 1,
        "duplicate_labels": 0,
        "ids_served_more_than_once": 0,
        "joined": 3,
    }
    assert "1 of 4 labels match no served row" in caplog.text


def test_labels_that_match_no_served_row_are_refused(small_log):
    with pytest.raises(
        UserError, match=r"--labels: match no served row of the log by id or request_id\. Got '2 labels"
    ):
        outcomes.join(
            read_rows(small_log), labels([("Y", None, None, True), ("Z", None, None, False)]), task="classification"
        )


def test_an_id_served_twice_is_labelled_on_its_latest_answer(tmp_path):
    directory = write(
        tmp_path / "log",
        [line(0, "champion", CHAMPION, 0.2, row_id="A"), line(5, "canary", CANARY, 0.9, row_id="A")],
    )
    joined = outcomes.join(read_rows(directory), labels([("A", None, None, True)]), task="classification")
    assert joined.rows[["route", "prediction"]].values.tolist() == [["canary", "True"]]
    assert joined.counts["ids_served_more_than_once"] == 1


def test_the_last_of_several_labels_for_a_row_wins(small_log):
    given = labels([("A", None, None, True), ("A", None, None, False), ("B", None, None, True)])
    joined = outcomes.join(read_rows(small_log), given, task="classification")
    assert joined.rows.set_index("id")["label"].to_dict() == {"A": "False", "B": "True"}
    assert joined.counts["duplicate_labels"] == 1


def test_labels_that_are_not_classes_of_the_model_are_refused(small_log):
    with pytest.raises(
        UserError,
        match=r"--labels \(label\): must be one of the model's classes \['False', 'True'\]\. Got 'Ture'\. "
        r".*Did you mean 'True'\?",
    ):
        outcomes.join(read_rows(small_log), labels([("A", None, None, "Ture")]), task="classification")


def test_regression_labels_must_be_numbers(tmp_path):
    directory = write(tmp_path / "log", [line(0, "champion", CHAMPION, None, row_id="A", prediction=3.5)])
    with pytest.raises(
        UserError, match=r"--labels \(label\): must be numbers \(a regression target\)\. Got \['lots'\]"
    ):
        outcomes.join(read_rows(directory), labels([("A", None, None, "lots")]), task="regression")
    joined = outcomes.join(read_rows(directory), labels([("A", None, None, "4")]), task="regression")
    assert joined.rows[["prediction", "label"]].values.tolist() == [[3.5, 4.0]]
    with pytest.raises(UserError, match=r"--log: holds no class probabilities, so a regression model wrote it"):
        outcomes.join(read_rows(directory), labels([("A", None, None, "4")]), task="classification")


def test_labels_by_request_id_and_position(small_log):
    given = labels([(None, "r2", 1, False), (None, "r1", None, True)])  # r1 has one row: no position needed
    joined = outcomes.join(read_rows(small_log), given, task="classification")
    assert joined.rows.set_index("id")["label"].to_dict() == {"D": "False", "B": "True"}
    with pytest.raises(UserError, match=r"labels a request of several served rows without saying which.*Got \['r2'\]"):
        outcomes.join(read_rows(small_log), labels([(None, "r2", None, True)]), task="classification")


def test_a_labels_file_needs_a_label_and_a_key(tmp_path):
    pd.DataFrame({"customer": ["A"], "label": [True]}).to_csv(tmp_path / "no-key.csv", index=False)
    with pytest.raises(UserError, match=r"--labels: needs `id` \(or `customer_id`\) or `request_id`"):
        outcomes.read_labels(tmp_path / "no-key.csv", target="churned", id_column="customer_id")
    pd.DataFrame({"customer_id": ["A"], "churned": [True]}).to_csv(tmp_path / "by-name.csv", index=False)
    read = outcomes.read_labels(tmp_path / "by-name.csv", target="churned", id_column="customer_id")
    assert read.values.tolist() == [["A", None, None, True]]  # the model's id column and the target's name


def test_feedback_files_join_after_the_labels_file(small_log, tmp_path):
    (small_log / "feedback").mkdir()
    feedback = [
        {"time": "2026-11-02T10:00:00+00:00", "id": "A", "request_id": None, "position": None, "label": False},
        {"time": "2026-11-02T09:00:00+00:00", "id": None, "request_id": "r2", "position": 1, "label": True},
    ]
    (small_log / "feedback/feedback-20261102.jsonl").write_text(
        "".join(json.dumps({**f, "key": "crm"}) + "\n" for f in feedback)
    )
    pd.DataFrame({"id": ["A", "B"], "label": [True, True]}).to_csv(tmp_path / "labels.csv", index=False)
    joined = outcomes.gather(read_rows(small_log), params=params(), directory=small_log, labels=tmp_path / "labels.csv")
    assert joined.rows.set_index("id")["label"].to_dict() == {"A": "False", "B": "True", "D": "True"}
    assert joined.counts["feedback_labels"] == 2 and joined.counts["duplicate_labels"] == 1
    only_feedback = outcomes.gather(read_rows(small_log), params=params(), directory=small_log, labels=None)
    assert only_feedback.counts["joined"] == 2


def test_hashed_ids_join_when_the_log_hashes_them(tmp_path):
    directory = tmp_path / "log"
    truth = simulate(directory, rows=20, champion=0.1, canary=0.1, policy=PredictionLogParams(hash=("id",)))
    assert all(str(i).startswith("h:") for i in read_rows(directory)["id"])  # the log keeps no readable id
    truth.to_csv(tmp_path / "labels.csv", index=False)
    hashed = parse_params(base_params(serve={"log": {"hash": ["id"]}}))
    joined = outcomes.gather(read_rows(directory), params=hashed, directory=directory, labels=tmp_path / "labels.csv")
    assert joined.counts["joined"] == 20 and joined.counts["unmatched"] == 0
    with pytest.raises(UserError, match="match no served row"):  # unhashed, they cannot join
        outcomes.gather(read_rows(directory), params=params(), directory=directory, labels=tmp_path / "labels.csv")
    stored = read_rows(directory)["id"].iloc[0]  # an id already hashed (as feedback files keep it) joins as it is
    again = outcomes.join(
        read_rows(directory),
        labels([(stored, None, None, True)]),
        task="classification",
        hasher=outcomes.id_hasher(directory, hashed=True),
    )
    assert again.counts["joined"] == 1


# --- live metrics and the verdict --------------------------------------------------------------


def test_a_truly_better_canary_is_promoted(tmp_path):
    decision = verdict(tmp_path, simulate(tmp_path, rows=1200, champion=0.3, canary=0.05), min_labels=200)
    assert (decision["verdict"], decision["rule"]) == ("promote", "min_difference")
    assert decision["rows"] == {"champion": 600, "canary": 600}
    assert decision["interval"][0] > 0 and decision["values"]["canary"] > decision["values"]["champion"]


def test_a_truly_worse_canary_is_rolled_back(tmp_path):
    decision = verdict(tmp_path, simulate(tmp_path, rows=1200, champion=0.05, canary=0.3), min_labels=200)
    assert (decision["verdict"], decision["rule"]) == ("roll back", "surely_worse")
    assert decision["interval"][1] < 0


def test_an_equal_canary_is_kept(tmp_path):
    decision = verdict(tmp_path, simulate(tmp_path, rows=1200, champion=0.2, canary=0.2), min_labels=200)
    assert (decision["verdict"], decision["rule"]) == ("keep", "no_decisive_difference")
    assert decision["interval"][0] <= 0 <= decision["interval"][1]


def test_too_few_labels_keep_collecting_and_say_how_many_more(tmp_path):
    decision = verdict(tmp_path, simulate(tmp_path, rows=300, champion=0.3, canary=0.05), min_labels=200)
    assert (decision["verdict"], decision["rule"]) == ("keep collecting", "min_labels")
    assert decision["needed"] == {"champion": 50, "canary": 50}
    assert "50 more on the champion route, 50 more on the canary route" in decision["why"]


def test_the_guard_rolls_back_a_much_worse_canary_before_min_labels(tmp_path):
    truth = simulate(tmp_path, rows=300, champion=0.05, canary=0.6)
    guarded = verdict(tmp_path, truth, min_labels=200, max_worsening=0.05)
    assert (guarded["verdict"], guarded["rule"]) == ("roll back", "max_worsening")
    assert -guarded["difference"] > 0.05
    assert verdict(tmp_path, truth, min_labels=200)["verdict"] == "keep collecting"  # no guard: wait
    few = truth.iloc[:80]  # 40 a route: fewer than min(50, min_labels)
    assert verdict(tmp_path, few, min_labels=200, max_worsening=0.05)["verdict"] == "keep collecting"


def test_a_lower_is_better_metric_counts_a_lower_canary_as_better(tmp_path):
    decision = verdict(tmp_path, simulate(tmp_path, rows=1200, champion=0.3, canary=0.05), metric="log_loss")
    assert decision["better"] == "lower" and decision["values"]["canary"] < decision["values"]["champion"]
    assert decision["verdict"] == "promote" and decision["difference"] > 0


def test_each_route_is_judged_on_the_version_it_serves_now(tmp_path):
    directory = write(
        tmp_path / "log",
        [
            line(0, "canary", "v0.5.0", 0.7, row_id="A"),
            line(1, "canary", CANARY, 0.7, row_id="B"),
            line(2, "champion", CHAMPION, 0.7, row_id="C"),
        ],
    )
    log = read_rows(directory)
    joined = outcomes.join(log, labels([(k, None, None, True) for k in "ABC"]), task="classification")
    rows, versions, earlier = current(joined.rows, log)
    assert versions == {"champion": CHAMPION, "canary": CANARY} and earlier == 1 and list(rows["id"]) == ["B", "C"]
    newer = write(tmp_path / "newer", [line(3, "canary", "v1.0.2", 0.7, row_id="D")])  # a canary not labelled yet
    rows, versions, earlier = current(joined.rows, pd.concat([log, read_rows(newer)]))
    assert versions["canary"] == "v1.0.2" and list(rows["id"]) == ["C"] and earlier == 2


def test_calibration_summary_per_version():
    frame = pd.DataFrame(
        {
            "proba": [{"False": 0.9, "True": 0.1}] * 2 + [{"False": 0.1, "True": 0.9}] * 2,
            "prediction": ["False", "False", "True", "True"],
            "label": ["False", "True", "True", "True"],
        }
    )
    s = outcomes.scored(frame, task="classification", classes=("False", "True"), positive="True")
    # bins 1 and 9, half the rows each: |0.1 - 0.5| / 2 + |0.9 - 1| / 2
    assert outcomes.calibration(frame, s, task="classification") == {
        "rows": 4,
        "mean_predicted": 0.5,
        "observed_rate": 0.75,
        "ece": 0.25,
    }
    numbers = pd.DataFrame({"prediction": [1.0, 3.0], "label": [2.0, 6.0]})
    s = outcomes.scored(numbers, task="regression", classes=(), positive=None)
    assert outcomes.calibration(numbers, s, task="regression") == {"rows": 2, "mean_prediction": 2.0, "mean_label": 4.0}


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with params.yaml, a log whose canary is truly better, and its labels as a CSV."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(json.dumps(base_params(canary={"bootstrap": 200, "min_labels": 100})))
    truth = simulate(tmp_path / "logs/predictions", rows=600, champion=0.3, canary=0.05)
    pd.concat([truth, pd.DataFrame({"id": ["nobody"], "label": [True]})]).to_csv(tmp_path / "outcomes.csv", index=False)
    return tmp_path


def test_labels_join_writes_the_table_and_a_summary(project, capsys):
    labels_main(["join", "--log", "logs/predictions", "--labels", "outcomes.csv"])
    table = pd.read_parquet(project / "reports/live/outcomes.parquet")
    assert len(table) == 600 and set(table["route"]) == {"champion", "canary"}
    assert table.loc[0, "proba"] is not None and table["label"].isin(["False", "True"]).all()
    out = capsys.readouterr().out
    assert "600 labelled rows (601 labels, 0 by feedback):" in out
    table_lines = [row.split() for row in out.splitlines()[1:4]]
    assert table_lines == [["route", "version", "rows"], ["champion", CHAMPION, "300"], ["canary", CANARY, "300"]]
    assert "unmatched: 1 (no served row has their id or request_id; not used)" in out
    assert "written to reports/live/outcomes.parquet" in out


def test_canary_decide_writes_its_decision_with_the_evidence(project, capsys):
    canary_main(["decide", "--labels", "outcomes.csv", "--json"])  # --log: params serve.log.dir
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((project / "reports/canary/decision.json").read_text())
    assert printed == written and written["verdict"] == "promote"
    assert written["versions"] == {"champion": CHAMPION, "canary": CANARY}
    assert written["rows"] == {"champion": 300, "canary": 300} and written["metric"] == "roc_auc"
    assert written["join"]["unmatched"] == 1 and set(written["calibration"]) == {CHAMPION, CANARY}
    with pytest.raises(SystemExit) as exited:  # promoting needs a registry (tests/integration/test_canary.py)
        canary_main(["decide", "--labels", "outcomes.csv", "--apply"])
    assert exited.value.code == 2
    assert capsys.readouterr().out.startswith("canary: promote\n  because the difference's lower bound")
    applied = json.loads((project / "reports/canary/decision.json").read_text())["applied"]
    assert applied.startswith("refused: --repo: is not in a git repository")


def test_canary_decide_keeps_collecting_and_applies_nothing(project, capsys):
    (project / "params.yaml").write_text(json.dumps(base_params(canary={"bootstrap": 200, "min_labels": 1000})))
    canary_main(["decide", "--labels", "outcomes.csv", "--apply"])  # nothing to apply: no registry touched
    out = capsys.readouterr().out
    assert out.startswith("canary: keep collecting\n  because each route needs canary.min_labels 1000 labelled rows")
    assert "700 more on the champion route" in out and "applied: nothing (keep collecting)" in out


@pytest.fixture(scope="module")
def trained():
    forest = {"random_forest": {"n_estimators": 15, "min_samples_leaf": 5, "n_jobs": 1}}
    return run(generate(rows=1500, seed=0), parse_params(base_params(model="random_forest", hyperparameters=forest)))


def test_monitor_from_log_with_labels_reports_live_metrics_per_route(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    served.save(trained.model, tmp_path / "models/model.zip")
    (tmp_path / "data/prepared").mkdir(parents=True)
    trained.splits["train"].to_parquet(tmp_path / "data/prepared/train.parquet")
    trained.splits["test"].to_parquet(tmp_path / "data/prepared/test.parquet")
    (tmp_path / "params.yaml").write_text(json.dumps(base_params(monitor={"bootstrap": 50}, canary={"bootstrap": 100})))
    data = generate(rows=400, seed=12)
    rows = json.loads(data.drop(columns=["churned", "next_month_spend", "customer_id"]).to_json(orient="records"))
    proba = trained.model.predict_proba(pd.DataFrame(rows))[:, trained.model.positive_index()]
    lines = [
        line(i, *(("canary", CANARY) if i % 2 else ("champion", CHAMPION)), float(p), row_id=f"C{i}")
        | {"features": rows[i]}
        for i, p in enumerate(proba)
    ]
    write(tmp_path / "logs", lines)
    pd.DataFrame({"id": [f"C{i}" for i in range(400)], "churned": data["churned"]}).to_csv("labels.csv", index=False)
    monitor_main(["--from-log", "logs", "--labels", "labels.csv"])
    live = json.loads((tmp_path / "reports/monitor/log-logs/drift.json").read_text())["live"]
    assert live["metric"] == "roc_auc" and live["bootstrap"] == 100
    assert {r: v["rows"] for r, v in live["routes"].items()} == {"champion": 200, "canary": 200}
    assert live["routes"]["canary"]["versions"] == {CANARY: 200} and live["difference"]["interval"] is not None
    assert set(live["calibration"]) == {CHAMPION, CANARY}
    out = capsys.readouterr().out
    assert "live roc_auc (higher is better; 95% bootstrap intervals):" in out
    assert "canary - champion (positive: canary better):" in out
    with pytest.raises(SystemExit):  # --labels belongs to --from-log
        monitor_main(["--batch", "labels.csv", "--labels", "labels.csv"])
