"""The registry for real: a temporary git + DVC repository, `dvc repro` (with the gate), GTO tags.

Two commits with different models (n_estimators 20, then 40) become v1.0.0 and v1.0.1; both are
promoted, prod is rolled back, and after every step GTO, `dvc.api.artifacts_show` and the model
`registry.load` returns must name the same version. Bad requests exit 2 with one message and
write no tag.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import dvc.api
import gto.api
import pytest
import yaml

from reprotab.errors import UserError
from reprotab.registry import versions as registry
from reprotab.registry.command import main
from tests.helpers import DVC, reproduced_repo, sh

pytestmark = pytest.mark.integration
TREES = {"v1.0.0": 20, "v1.0.1": 40}


def cli(repo: Path, *args: str) -> tuple[int, str]:
    """Run `reprotab registry -C repo ...` in-process: (exit status, stdout)."""
    out = io.StringIO()
    cwd = os.getcwd()
    os.chdir(repo)  # the command logs to reports/logs/ of the current directory
    try:
        with contextlib.redirect_stdout(out):
            main(["-C", str(repo), *args])
        return 0, out.getvalue()
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    finally:
        os.chdir(cwd)


def tags(repo: Path) -> list[str]:
    return sh(["git", "tag"], repo).stdout.split()


def set_trees(repo: Path, trees: int) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["model"] = "random_forest"  # a forest keeps n_estimators as set: the tests tell models apart by it
    params["hyperparameters"]["random_forest"].update(n_estimators=trees, n_jobs=1)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def train_and_commit(repo: Path, trees: int, message: str) -> None:
    set_trees(repo, trees)
    sh([DVC, "repro", "-q"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", message], repo)


def assert_stage_holds(repo: Path, stage: str, version: str) -> None:
    """GTO, DVC and the loaded model agree on what `stage` holds."""
    shown = gto.api.show(str(repo), f"model#{stage}")
    assert [v["version"] for v in shown] == [version]
    commit = shown[0]["commit_hexsha"]
    assert dvc.api.artifacts_show(name="model", stage=stage, repo=str(repo))["rev"] == commit
    assert registry.show(repo)["stages"][stage]["version"] == version
    model, info = registry.load(stage=stage, repo=str(repo))
    assert info == {"version": version, "stage": stage, "commit": commit, "path": "models/model.zip"}
    assert model.estimator.n_estimators == TREES[version]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    repo = reproduced_repo(tmp_path_factory, "registry")
    sh(["git", "config", "user.name", "tests"], repo)  # tags written in-process need an identity
    sh(["git", "config", "user.email", "tests@localhost"], repo)
    train_and_commit(repo, TREES["v1.0.0"], "first model")
    return repo


def test_register_promote_retrain_and_roll_back(project):
    repo = project
    assert cli(repo, "register") == (
        0,
        f"registered v1.0.0 (commit {sh(['git', 'rev-parse', 'HEAD'], repo).stdout[:8]}, tag model@v1.0.0)\n",
    )
    assert (
        dvc.api.artifacts_show(name="model", version="v1.0.0", repo=str(repo))["rev"]
        == sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    )
    assert cli(repo, "promote", "v1.0.0", "--stage", "staging")[0] == 0
    assert_stage_holds(repo, "staging", "v1.0.0")
    assert cli(repo, "promote", "v1.0.0", "--stage", "prod")[0] == 0  # first model: the gate said promote
    assert_stage_holds(repo, "prod", "v1.0.0")
    first = json.loads((repo / "models/champion.json").read_text())
    v100 = registry.show(repo)["versions"]["v1.0.0"]
    assert first == {"version": "v1.0.0", "commit": v100, "reference": {**first["reference"], "commit": v100}}
    assert first["reference"]["path"] == "data/prepared/test.parquet" and first["reference"]["rows"] == 500
    sh(["git", "commit", "-q", "-am", "champion v1.0.0"], repo)

    # next month: another model; the gate compares it with v1.0.0 on the same test rows
    train_and_commit(repo, TREES["v1.0.1"], "retrained")
    decision = json.loads((repo / "reports/gate/decision.json").read_text())
    assert decision["champion"]["version"] == "v1.0.0" and decision["champion_metrics"] is not None
    assert {r["rule"] for r in decision["rules"]} >= {"bootstrap_lower_bound", "min_improvement"}
    assert cli(repo, "register")[0] == 0
    assert cli(repo, "promote", "v1.0.1", "--stage", "staging")[0] == 0
    assert_stage_holds(repo, "staging", "v1.0.1")
    before = tags(repo)
    if not decision["promote"]:
        assert cli(repo, "promote", "v1.0.1", "--stage", "prod")[0] == 2  # refused, no tag
        assert tags(repo) == before
    forced = ["--force", "--reason", "test override"] if not decision["promote"] else []
    assert cli(repo, "promote", "v1.0.1", "--stage", "prod", *forced)[0] == 0
    assert_stage_holds(repo, "prod", "v1.0.1")
    second = json.loads((repo / "models/champion.json").read_text())
    assert second["version"] == "v1.0.1" and second["reference"] == first["reference"]  # the reference never moves
    state = registry.show(repo)
    assert state["stages"]["prod"]["rollback_to"] == "v1.0.0"
    assert state["archived"][0] == {
        **state["archived"][0],
        "version": "v1.0.0",
        "stage": "prod",
        "replaced_by": "v1.0.1",
    }

    code, out = cli(repo, "rollback")
    assert code == 0 and "rolled back to v1.0.0" in out
    assert_stage_holds(repo, "prod", "v1.0.0")
    assert_stage_holds(repo, "staging", "v1.0.1")
    assert json.loads((repo / "models/champion.json").read_text()) == first
    assert registry.show(repo)["archived"][0]["version"] == "v1.0.1"  # what was in prod before
    model, info = registry.load(version="v1.0.1", repo=str(repo))
    assert (info["version"], info["stage"], model.estimator.n_estimators) == ("v1.0.1", None, TREES["v1.0.1"])

    before = tags(repo)
    assert cli(repo, "rollback", "--stage", "prod")[0] == 2  # nothing before v1.0.0
    assert tags(repo) == before

    code, out = cli(repo, "history", "--json")
    events = [(e["action"], e["version"], e["stage"]) for e in json.loads(out)]
    assert events == [
        ("register", "v1.0.0", None),
        ("promote", "v1.0.0", "staging"),
        ("promote", "v1.0.0", "prod"),
        ("register", "v1.0.1", None),
        ("promote", "v1.0.1", "staging"),
        ("promote", "v1.0.1", "prod"),
        ("rollback", "v1.0.0", "prod"),
    ]
    rows = json.loads(out)
    assert rows[0]["gate"] is True and rows[5]["gate"] is decision["promote"]
    assert rows[5]["forced"] is (not decision["promote"])
    assert rows[6]["replaces"] == "v1.0.1"
    table = cli(repo, "show")[1]
    assert table.splitlines()[0].split() == ["stage", "version", "commit", "rollback_to"]
    assert "archived" in table


def refused(repo: Path, args: list[str], match: str, capsys) -> None:
    """The command exits 2 with a message matching `match` and writes no tag."""
    before = tags(repo)
    capsys.readouterr()
    code, _ = cli(repo, *args)
    assert code == 2
    assert match in capsys.readouterr().err
    assert tags(repo) == before


def test_bad_requests_are_refused_without_a_tag(project, capsys):
    repo = project
    refused(repo, ["promote", "v1.0.0", "--stage", "prd"], "Did you mean 'prod'?", capsys)
    refused(repo, ["promote", "v1.0.9", "--stage", "prod"], "is not registered (registered: v1.0.0, v1.0.1)", capsys)
    refused(repo, ["promote", "v1.0.1", "--stage", "staging"], "is in staging already", capsys)
    refused(repo, ["promote", "v1.0.1", "--stage", "prod", "--force"], "--force: needs --reason", capsys)
    refused(repo, ["register"], "already registered as v1.0.1", capsys)
    with pytest.raises(
        UserError, match=r"stage: must be one of staging, prod\. Got 'stagin'\. .*Did you mean 'staging'"
    ):
        registry.load(stage="stagin", repo=str(repo))
    with pytest.raises(UserError, match=r"Did you mean 'v1.0.1'"):
        registry.load(version="v1.0.2", repo=str(repo))

    sh(["git", "checkout", "-q", "--detach"], repo)
    try:
        refused(repo, ["register"], "HEAD is detached", capsys)
    finally:
        sh(["git", "checkout", "-q", "main"], repo)

    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params + "\n# edited\n")
    try:
        refused(repo, ["register"], "uncommitted changes", capsys)
    finally:
        (repo / "params.yaml").write_text(params)

    model = (repo / "models/model.zip").read_bytes()
    (repo / "models/model.zip").write_bytes(model + b"\0")
    try:
        refused(repo, ["register"], "differs from the model dvc.lock records", capsys)
    finally:
        (repo / "models/model.zip").write_bytes(model)

    sh(["git", "commit", "-q", "--allow-empty", "-m", "a commit that does not change the model"], repo)
    refused(repo, ["register"], "the model at HEAD is byte-identical to v1.0.1", capsys)

    empty = repo.parent / "empty"
    empty.mkdir()
    sh(["git", "init", "-q", "-b", "main"], empty)
    refused(empty, ["register"], "has no commits", capsys)


def test_a_broken_decision_at_a_tagged_commit_does_not_lock_the_registry(project, capsys):
    """A version tagged (by hand, or by an older release) at a commit whose decision.json is broken:
    staging still takes it, prod refuses it as it refuses a missing decision, --force --reason
    overrides, and the history still reads."""
    repo = project
    (repo / "reports/gate/decision.json").write_text('{"promote": true}\n')  # no reason, champion, rules
    sh(["git", "commit", "-q", "-am", "a hand-edited gate decision"], repo)
    commit = sh(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    gto.api.register(str(repo), "model", commit, version="v1.0.5", message="tagged by hand")
    assert cli(repo, "promote", "v1.0.5", "--stage", "staging")[0] == 0
    refused(
        repo, ["promote", "v1.0.5", "--stage", "prod"], "cannot go to prod: its gate decision cannot be read", capsys
    )
    code, _ = cli(repo, "promote", "v1.0.5", "--stage", "prod", "--force", "--reason", "decision file damaged")
    assert code == 0 and registry.show(repo)["stages"]["prod"]["version"] == "v1.0.5"
    events = registry.history(repo)
    assert events[-1]["action"] == "promote" and events[-1]["forced"] is True


def test_a_registered_model_is_loaded_only_with_the_digest_its_registration_pinned(project):
    """The tag pins the model file's sha256: bytes swapped under the same path in the DVC cache (or
    a remote) are refused, naming both digests, before they are unpickled."""
    from reprotab.registry.checks import locked_md5
    from reprotab.serving.scoring import resolve_model

    repo = project
    from reprotab.registry.state import gto_state

    versions = gto_state(repo)[0]
    commit, pinned = versions["v1.0.1"]["commit"], versions["v1.0.1"]["sha256"]
    assert versions["v1.0.5"]["sha256"] is None  # tagged by hand: nothing pinned, loaded with a warning
    assert pinned and registry.load(version="v1.0.1", repo=str(repo))[0].estimator.n_estimators == TREES["v1.0.1"]
    md5 = locked_md5(repo, commit)
    cached = repo / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
    original = cached.read_bytes()
    other = registry.load(version="v1.0.0", repo=str(repo))  # a real, loadable model: the worst swap
    v100 = locked_md5(repo, versions["v1.0.0"]["commit"])
    cached.chmod(0o644)
    cached.write_bytes((repo / ".dvc/cache/files/md5" / v100[:2] / v100[2:]).read_bytes())
    refused = rf"v1.0.1: is not the model file its registration pinned: .*sha256 [0-9a-f]{{64}}, .*pinned {pinned}"
    try:
        with pytest.raises(UserError, match=refused):
            registry.load(version="v1.0.1", repo=str(repo))
        with pytest.raises(UserError, match="is not the model file its registration pinned"):
            resolve_model(version="v1.0.1", repo=str(repo))  # what `predict` and `serve` load through
    finally:
        cached.write_bytes(original)
    assert other[0].estimator.n_estimators == TREES["v1.0.0"]
    assert registry.load(version="v1.0.1", repo=str(repo))[1]["version"] == "v1.0.1"
