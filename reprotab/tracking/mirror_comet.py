"""Comet mirror: one Comet experiment per revision or DVC experiment (see reprotab/tracking/mirrors.py).

The same content as the MLflow mirror: params, numeric metrics, tags (git sha, DVC experiment,
data hash, also as "others"), the evaluation figures as images and the model file. Each run's
Comet experiment key is derived from the project and the run's key (the git sha), so online,
`comet_ml.start(mode="get_or_create")` finds the experiment a previous mirror made instead of
duplicating it.

Without an API key (COMET_API_KEY or ~/.comet.config), or with --offline, it runs offline: each
run is written as a zip archive under `--offline-dir` (default `.comet-offline/`), and the log
says the `comet upload` command that sends it later. Offline archives are not deduplicated;
`comet upload` of an archive whose key exists already is refused by Comet.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprotab import paths
from reprotab.errors import UserError, problem
from reprotab.tracking.mirrors import Snapshot, require

log = logging.getLogger(__name__)
QUIET = {  # nothing of this process (its code, arguments, machine, console) belongs to the mirrored run
    "log_code": False,
    "log_graph": False,
    "parse_args": False,
    "auto_param_logging": False,
    "auto_metric_logging": False,
    "auto_output_logging": False,
    "log_env_details": False,
    "log_env_gpu": False,
    "log_env_host": False,
    "log_env_cpu": False,
    "log_env_network": False,
    "log_env_disk": False,
    "log_git_metadata": False,
    "log_git_patch": False,
    "display_summary_level": 0,
}


@dataclass
class Session:
    comet: Any
    online: bool
    api_key: str | None
    project: str
    offline_dir: Path


def connect(args: Any) -> Session:
    comet = require("comet_ml", "comet")
    configured = os.environ.get("COMET_API_KEY") or comet.config.get_api_key(None, comet.config.get_config())
    api_key = None if args.offline else configured
    offline_dir = Path(args.offline_dir)
    if api_key is None:
        offline_dir.mkdir(parents=True, exist_ok=True)
        log.info("no Comet API key (or --offline): writing offline archives to %s", offline_dir)
    else:
        try:  # checked before any run is logged
            comet.API(api_key=api_key).get_default_workspace()
        except Exception as exc:  # network and auth errors come in many types
            raise UserError(
                problem("Comet", f"cannot be reached ({type(exc).__name__})", None, "Check COMET_API_KEY, or --offline")
            ) from None
    return Session(comet, api_key is not None, api_key, args.project, offline_dir)


def experiment_key(project: str, key: str) -> str:
    """A stable Comet experiment key (32 hex characters) for a project and a run key."""
    return hashlib.sha256(f"{project}:{key}".encode()).hexdigest()[:32]


def write(session: Session, snapshots: list[Snapshot], args: Any) -> list[Path]:
    """Log every snapshot; the offline archives written (empty online)."""
    archives = []
    for snap in snapshots:
        key = experiment_key(session.project, snap.key)
        experiment = _start(session, key, snap)
        experiment.log_parameters(snap.params)
        experiment.log_metrics(snap.metrics)
        experiment.log_others(snap.tags)
        experiment.add_tags([f"{k}:{v}" for k, v in snap.tags.items() if k != "reprotab.key"])
        for path, local in snap.files.items():
            if path == paths.MODEL:
                experiment.log_model("model", str(local))
            elif path.endswith(".png"):
                experiment.log_image(str(local), name=Path(path).stem)
            else:
                experiment.log_asset(str(local), file_name=path)
        experiment.end()
        if session.online:
            log.info("Comet experiment %s (%s) logged online", snap.name, key)
            continue
        archive = session.offline_dir / f"{key}.zip"
        if not archive.is_file():
            raise UserError(problem("comet offline", "wrote no archive", str(archive)))
        archives.append(archive)
        log.info("Comet run %s written offline to %s; send it with: comet upload %s", snap.name, archive, archive)
    return archives


def _start(session: Session, key: str, snap: Snapshot) -> Any:
    comet = session.comet
    if not session.online:
        experiment = comet.OfflineExperiment(
            project_name=session.project, offline_directory=str(session.offline_dir), experiment_key=key, **QUIET
        )
        experiment.set_name(snap.name)
        return experiment
    config = comet.ExperimentConfig(name=snap.name, **QUIET)
    return comet.start(
        api_key=session.api_key,
        project_name=session.project,
        experiment_key=key,
        mode="get_or_create",
        online=True,
        experiment_config=config,
    )
