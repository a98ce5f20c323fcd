"""MLflow mirror: one MLflow run per revision or experiment (see reprotab/tracking/mirrors.py).

The store is `--tracking-uri`, else $MLFLOW_TRACKING_URI, else a local SQLite file
`sqlite:///mlruns.db` with artifacts in `mlartifacts/` beside it. It is checked before anything
is logged, so an unreachable server leaves nothing half-written; its password never appears in
a message.

Idempotent: a run is found again by its tag `reprotab.key` (the git sha; `workspace@<sha>` for
the workspace). A second mirror adds only what is new: MLflow params cannot change once logged,
so params already there are kept (a changed value is reported); metrics that changed get the
new value; the model is logged again only if its file changed (tag `reprotab.model_md5`).

The model is an MLflow pyfunc model wrapping reprotab's own `TabularModel` (loaded with
`reprotab.model.served.load`), so `mlflow.pyfunc.load_model(uri).predict(raw_rows)` returns what
`reprotab.model.served.load(path).predict(raw_rows)` does. It carries the reprotab package
(`code_paths`), a signature inferred from raw rows and their predictions, and an input example.
With `--aliases` each logged model is registered under `--model-name`; the version of the
commit in models/champion.json ({"version", "commit"}) gets the alias `champion`, the
workspace's the alias `challenger`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from reprotab import paths
from reprotab.errors import UserError, problem, redact
from reprotab.registry.champion import read_pin
from reprotab.tracking.mirrors import Snapshot, require

if TYPE_CHECKING:
    from mlflow.pyfunc import PythonModel
else:
    try:  # optional: without mlflow, `connect` says how to install it
        from mlflow.pyfunc import PythonModel
    except ImportError:
        PythonModel = object

log = logging.getLogger(__name__)
DEFAULT_URI = "sqlite:///mlruns.db"
ARTIFACTS = "mlartifacts"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
REQUIREMENTS = ("scikit-learn", "pandas", "numpy", "joblib", "pydantic", "PyYAML", "xgboost-cpu", "lightgbm")


class TabularPyfunc(PythonModel):
    """reprotab's TabularModel behind MLflow's pyfunc interface: raw rows in, predictions out."""

    def load_context(self, context: Any) -> None:
        from reprotab.model.served import load

        self.model = load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> Any:
        return self.model.predict(model_input)


@dataclass
class Session:
    mlflow: Any
    client: Any
    uri: str
    experiment_id: str


def tracking_uri(explicit: str | None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI


@contextlib.contextmanager
def _quick_http() -> Iterator[None]:
    """No retries with back-off while checking the server: an unreachable URI fails in seconds."""
    quick = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    saved = {k: os.environ.get(k) for k in quick}
    os.environ.update({k: v for k, v in quick.items() if saved[k] is None})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def connect(args: Any) -> Session:
    """The tracking store, checked, with the MLflow experiment `args.project` (created if new)."""
    mlflow = require("mlflow", "mlflow")
    uri = tracking_uri(args.tracking_uri)
    location = None
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///"))
        if not database.parent.is_dir():
            raise UserError(problem("--tracking-uri", "names a directory that does not exist", redact(uri)))
        location = (database.resolve().parent / ARTIFACTS).as_uri()
    try:
        with _quick_http():
            client = mlflow.MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(args.project)
            experiment_id = (
                experiment.experiment_id
                if experiment
                else client.create_experiment(args.project, artifact_location=location)
            )
    except Exception as exc:  # connection, auth, store and driver errors come in many types
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(
            problem(
                "--tracking-uri",
                f"cannot be reached ({type(exc).__name__}: {reason.replace(uri, redact(uri) or '')})",
                redact(uri),
                "Check the URL and that the server is up; or leave it unset for a local sqlite:///mlruns.db",
            )
        ) from None
    mlflow.set_tracking_uri(uri)
    log.info("MLflow store %s, experiment %r", redact(uri), args.project)
    return Session(mlflow, client, uri, experiment_id)


def write(session: Session, snapshots: list[Snapshot], args: Any) -> None:
    runs = {snap.key: mirror_one(session, snap) for snap in snapshots}
    if getattr(args, "aliases", False):
        set_aliases(session, snapshots, runs, name=args.model_name, champion_file=Path(args.repo) / paths.CHAMPION)


def find_run(session: Session, key: str) -> Any:
    found = session.client.search_runs([session.experiment_id], f"tags.`reprotab.key` = '{key}'", max_results=1)
    return found[0] if found else None


def mirror_one(session: Session, snap: Snapshot) -> str:
    """Log one snapshot into its run (new, or the one already there for the same key); its run id."""
    from mlflow.entities import Metric, Param, RunTag

    client, run = session.client, find_run(session, snap.key)
    if run is None:
        run = client.create_run(session.experiment_id, run_name=snap.name, tags=snap.tags)
        old_params, old_metrics, old_tags = {}, {}, {}
    else:
        old_params, old_metrics, old_tags = run.data.params, run.data.metrics, run.data.tags
    run_id = run.info.run_id
    params = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in snap.params.items()}
    changed = sorted(k for k, v in params.items() if k in old_params and old_params[k] != v)
    if changed:
        log.warning("run %s keeps its logged params (MLflow params are immutable): %s", snap.name, ", ".join(changed))
    now = int(time.time() * 1000)
    new_params = [Param(k, v) for k, v in params.items() if k not in old_params]
    new_metrics = [Metric(k, v, now, 0) for k, v in snap.metrics.items() if old_metrics.get(k) != v]
    tags = [RunTag(k, v) for k, v in snap.tags.items() if old_tags.get(k) != v]
    for start in range(0, max(len(new_params), len(new_metrics), len(tags)), 100):
        client.log_batch(
            run_id,
            metrics=new_metrics[start : start + 100],
            params=new_params[start : start + 100],
            tags=tags[start : start + 100],
        )
    for path, local in snap.files.items():
        if path != paths.MODEL:
            client.log_artifact(run_id, str(local), artifact_path=str(Path(path).parent))
    model_logged = ""
    if paths.MODEL in snap.files:
        digest = hashlib.md5(snap.files[paths.MODEL].read_bytes()).hexdigest()
        if old_tags.get("reprotab.model_md5") != digest:
            model_logged = log_model(session, run_id, snap)
            client.set_tag(run_id, "reprotab.model_md5", digest)
    client.set_terminated(run_id)
    log.info(
        "%s run %s (%s): %d new params, %d metrics%s",
        "updated" if old_tags else "created",
        snap.name,
        run_id,
        len(new_params),
        len(new_metrics),
        f", model {model_logged}" if model_logged else "",
    )
    return run_id


def log_model(session: Session, run_id: str, snap: Snapshot) -> str:
    """Log the model as a pyfunc model in the run; its model URI (also tagged on the run)."""
    from mlflow.models import infer_signature

    import reprotab
    from reprotab.model.served import load

    model = load(snap.files[paths.MODEL], where=f"{paths.MODEL} at {snap.name}")
    example, signature = None, None
    if snap.example is not None:
        rows = model.features_of(snap.example)
        example = rows.head(5)
        with warnings.catch_warnings():  # the hint that integer columns cannot hold missing values
            warnings.simplefilter("ignore", UserWarning)
            signature = infer_signature(rows, pd.Series(model.predict(rows)).infer_objects())
    requirements = [f"{name}=={_version(name)}" for name in REQUIREMENTS if _version(name)]
    with session.mlflow.start_run(run_id=run_id):
        info = session.mlflow.pyfunc.log_model(
            name="model",
            python_model=TabularPyfunc(),
            artifacts={"model": str(snap.files[paths.MODEL])},
            code_paths=[str(Path(reprotab.__file__).parent)],
            signature=signature,
            input_example=example,
            pip_requirements=requirements,
            tags={"git_sha": snap.sha, "kind": model.kind},
        )
    session.client.set_tag(run_id, "reprotab.model_uri", info.model_uri)
    return info.model_uri


def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def set_aliases(
    session: Session, snapshots: list[Snapshot], runs: dict[str, str], *, name: str, champion_file: Path
) -> None:
    """Register the mirrored models under `name`; champion = models/champion.json's commit,
    challenger = the workspace."""
    client = session.client
    for snap in snapshots:
        if snap.rev is None:
            version = _registered_version(session, runs[snap.key], name)
            if version:
                client.set_registered_model_alias(name, "challenger", version)
                log.info("alias challenger → %s version %s (workspace)", name, version)
    if not champion_file.is_file():
        return
    commit = read_pin(champion_file).commit or ""
    run = find_run(session, commit) if len(commit) == 40 else None
    version = _registered_version(session, run.info.run_id, name) if run else None
    if version is None:
        log.warning(
            "%s names commit %s, which is not mirrored with a model yet: `reprotab mirror mlflow --rev %s --aliases`",
            champion_file,
            commit[:12],
            commit[:12],
        )
        return
    client.set_registered_model_alias(name, "champion", version)
    log.info("alias champion → %s version %s (commit %s)", name, version, commit[:12])


def _registered_version(session: Session, run_id: str, name: str) -> str | None:
    """The registry version of the run's model, registering it the first time."""
    run = session.client.get_run(run_id)
    uri = run.data.tags.get("reprotab.model_uri")
    if not uri:
        return None
    with contextlib.suppress(Exception):  # the registered model may not exist yet
        for existing in session.client.search_model_versions(f"name = '{name}'"):
            if existing.source == uri or existing.run_id == run_id:
                return existing.version
    return session.mlflow.register_model(uri, name).version
