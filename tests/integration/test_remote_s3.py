"""Remotes that really round-trip: push from one clone, pull into a fresh `git clone`, and the
pipeline there is already up to date: no stage command runs, the model is byte for byte the same.

Against a real S3 API (moto's server on a free local port, configured with the `dvc remote
add/modify` commands and `--local` credentials of docs/recipes/experiments.md) and against the
project's default local remote `storage`, used exactly as shipped."""

import logging
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.helpers import DVC, reproduced_repo, sh

pytestmark = pytest.mark.integration
BUCKET = "reprotab-test"
OUTPUTS = (
    "models/model.zip",
    "models/model.json",
    "data/prepared/train.parquet",
    "reports/evaluate/predictions.csv",
)
NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    return reproduced_repo(tmp_path_factory, "origin")


@pytest.fixture
def s3_endpoint():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def set_local_credentials(repo: Path, remote: str, endpoint: str) -> None:
    """What every clone needs and git never carries: endpoint and keys in .dvc/config.local."""
    for option, value in (("endpointurl", endpoint), ("access_key_id", "testing"), ("secret_access_key", "testing")):
        sh([DVC, "remote", "modify", "--local", remote, option, value], repo)


def assert_pull_restores_everything(origin: Path, clone: Path, *, remote: list[str]) -> None:
    pulled = sh([DVC, "pull", *remote, "--run-cache"], clone, env=NO_PROXY)
    assert "models/model.zip" in pulled.stdout
    result = sh([DVC, "repro"], clone, env=NO_PROXY)
    assert "Running stage" not in result.stdout, result.stdout
    for stage in ("prepare", "tune", "train", "evaluate"):
        assert f"Stage '{stage}' didn't change, skipping" in result.stdout
    assert not (clone / "reports/logs").exists(), "a stage command ran (it would have written its log)"
    for path in OUTPUTS:
        assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    assert sh(["git", "status", "--porcelain", "--untracked-files=no"], clone).stdout.strip() == ""


def test_s3_remote_round_trip(origin, s3_endpoint, tmp_path):
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=BUCKET)
    # docs/recipes/experiments.md's commands: the remote in .dvc/config (committed), endpoint and keys with --local.
    sh([DVC, "remote", "add", "-f", "-d", "s3", f"s3://{BUCKET}/reprotab"], origin)
    set_local_credentials(origin, "s3", s3_endpoint)
    sh(["git", "commit", "-q", "-m", "S3 remote", ".dvc/config"], origin)
    sh([DVC, "push", "--run-cache"], origin, env=NO_PROXY)

    stored = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).list_objects_v2(Bucket=BUCKET, Prefix="reprotab/")
    keys = [item["Key"] for item in stored.get("Contents", [])]
    assert any(key.startswith("reprotab/files/md5/") for key in keys)
    assert any(key.startswith("reprotab/runs/") for key in keys)  # the run cache went too

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    assert not (clone / ".dvc/config.local").exists()  # credentials stay on the machine that set them
    set_local_credentials(clone, "s3", s3_endpoint)
    assert_pull_restores_everything(origin, clone, remote=[])


def test_default_local_remote_round_trip(origin):
    """The shipped `.dvc/config` as is: `storage` is ../dvc-storage beside the clone, for every clone."""
    store = origin.parent / "dvc-storage"
    sh([DVC, "push", "-r", "storage", "--run-cache"], origin)
    assert any((store / "files/md5").iterdir()) and any((store / "runs").iterdir())

    clone = origin.parent / "clone-beside-origin"
    sh(["git", "clone", "-q", str(origin), str(clone)], origin.parent)
    assert_pull_restores_everything(origin, clone, remote=["-r", "storage"])


def test_run_cache_restores_a_teammates_experiment_without_retraining(tmp_path_factory, tmp_path):
    """A result dvc.lock does not record (a teammate's other sampler) comes back from the run
    cache: tune and train are restored, not run (prepare and featurize did not change; validate
    checks the edited params, which is seconds);
    evaluate, whose metrics stay in git (cache: false, for diffs in pull requests), re-scores
    the restored model, and the gate (its decision is in git too) judges it again."""
    origin = reproduced_repo(tmp_path_factory, "teammate")
    store = tmp_path / "store"
    sh([DVC, "remote", "add", "-f", "team", str(store)], origin)
    sh([DVC, "push", "-r", "team"], origin)  # the committed baseline
    sh([DVC, "exp", "run", "-S", "sampler=random_over"], origin)
    sh([DVC, "push", "-r", "team", "--run-cache"], origin)
    trained = (origin / "models/model.zip").read_bytes()

    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    sh([DVC, "remote", "add", "-f", "-d", "team", str(store)], clone)
    sh([DVC, "pull", "--run-cache"], clone)
    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("sampler: none ", "sampler: random_over "))
    result = sh([DVC, "repro", "--pull"], clone)  # --pull fetches the outputs the run cache points to
    ran = [line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")]
    # validate checks the edited params.yaml; gate keeps its decision in git (cache: false)
    assert ran == ["validate", "evaluate", "gate"], result.stdout
    for stage in ("tune", "train", "reference"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in result.stdout, result.stdout
    assert (clone / "models/model.zip").read_bytes() == trained
    assert not (clone / "reports/logs/train.log").exists()
