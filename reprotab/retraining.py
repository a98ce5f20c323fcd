"""`reprotab retrain`: one month of the loop in one command.

    reprotab retrain --batch data/incoming/2026-11.parquet [--force] [--promote] [--mode refit|continue]

Steps (each a function below):
  0. refuse a dirty git tree (tracked files changed), so every commit holds only this run
  1. monitor the batch against the workspace's model (`reprotab monitor`); without a retrain
     verdict (or --force) stop here: exit 0, the summary says why, and it is committed as the
     month's record
  2. version the batch: copy to data/batches/<stem>.parquet, `dvc add`, set data.batches.combine
     to `all` when it is `none` (a batch that trains nothing would be pointless), commit
     ("already added" when the same rows are there: never twice; other rows under the same
     name are refused)
  3. mode (params `retrain.mode`, or --mode): refit from scratch, or continue the prod champion
     (fetched through the registry to models/previous.joblib, set as train.init_model)
  4. `dvc repro`, its output streamed to the log
  5. the gate's decision: commit the run either way (a refusal is part of the history: an auditor
     sees the batch, the data version, the challenger's metrics and why it was refused), `dvc push`
     when a remote is configured (a failure is a warning); on a pass `registry register`, and with
     --promote `registry promote --stage prod` plus a commit of models/champion.json
  6. reports/retrain/<batch>.md and .json; the log is reports/logs/retrain.log

The git and DVC plumbing is reprotab/retrain_vcs.py; the pure pieces (naming, the params edit, the
page) are reprotab/retrain_summary.py.

A failure after step 2 restores the tracked files this run changed (params.yaml, dvc.lock,
reports) and the workspace outputs (`dvc checkout`): the batch stays versioned, models/champion.json
and the prod tag are never touched, and re-running the same command continues from there.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from reprotab import registry, served
from reprotab.data import atomic_path, read_json, read_table, write_json
from reprotab.errors import UserError, problem
from reprotab.models import AUTO
from reprotab.monitor_report import load_importance
from reprotab.monitor_report import write as write_monitor
from reprotab.monitoring import Verdict, monitor
from reprotab.params import Params, load_params, parse_params
from reprotab.registry_checks import git
from reprotab.retrain_summary import batch_action, batch_name, first_reason, markdown, set_value
from reprotab.retrain_vcs import OWN_OUTPUTS, StepFailed, check_clean, commit, dvc, push, restore
from reprotab.runner import stage_main

BATCHES = Path("data/batches")
PREVIOUS = "models/previous.joblib"
DECISION = Path("reports/gate/decision.json")
RUN_FILES = ["dvc.lock", "params.yaml", "reports", "data", "models", ".gitignore"]
log = logging.getLogger(__name__)


def check_source(repo: Path, source: Path) -> None:
    if not source.is_file():
        raise UserError(problem("--batch", "file not found", str(source)))
    inside = source.resolve().is_relative_to(repo.resolve() / "data")
    if inside and not source.resolve().is_relative_to((repo / BATCHES).resolve()):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(source.resolve())], cwd=repo).returncode == 0
        tracked = bool(git(repo, "ls-files", str(source.resolve()), check=False))
        if not ignored and not tracked:
            raise UserError(
                problem(
                    "--batch",
                    "is an unversioned file under data/ (the registry refuses to register with it there)",
                    str(source),
                    f"Version it first (`dvc add {source}`, commit) or keep it outside data/",
                )
            )


def run_monitor(params: Params, batch_path: Path, name: str) -> Verdict:
    """`reprotab monitor --batch` with its defaults: the workspace's model and prepared splits."""
    model = served.load("models/model.joblib", where="the current model (models/model.joblib)")
    metrics = Path("reports/evaluate/metrics.json")
    verdict = monitor(
        model=model,
        reference=read_table("data/prepared/train.parquet", where="reference (run `dvc pull` or `dvc repro`)"),
        batch=read_table(batch_path, where="--batch"),
        holdout=read_table("data/prepared/test.parquet", where="holdout (run `dvc pull` or `dvc repro`)"),
        config=params.monitor,
        metric=params.metric,
        seed=params.seed,
        min_share=params.prepare.text_to_number_min_share,
        importance=load_importance(Path("reports/evaluate/tables/importance.csv"), model),
        test_metrics=read_json(metrics).get("test") if metrics.is_file() else None,
    )
    write_monitor(Path("reports/monitor") / name, verdict, name=name)
    return verdict


def add_batch(repo: Path, source: Path, name: str) -> tuple[str, Path]:
    """Copy the batch into data/batches as Parquet and `dvc add` it; never twice."""
    dest = repo / BATCHES / f"{name}.parquet"
    rows = read_table(source, where="--batch")
    action = batch_action(source, dest, source_rows=rows, dest_rows=read_table(dest) if dest.is_file() else None)
    if action == "add":
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix.lower() in (".parquet", ".pq"):
            with atomic_path(dest) as tmp:
                shutil.copyfile(source, tmp)
        else:
            with atomic_path(dest) as tmp:
                rows.to_parquet(tmp, index=False)
    if action == "add" or not dest.with_suffix(".parquet.dvc").is_file():
        dvc(repo, "add", str(dest.relative_to(repo)))
    log.info("batch %s: %s as %s", name, action, dest.relative_to(repo))
    return action, dest


def edit_params(repo: Path, changes: dict[str, str]) -> list[str]:
    """Set params.yaml keys (YAML literals) that differ; the result must still be valid params."""
    path, done = repo / "params.yaml", []
    text = path.read_text()
    for key, value in changes.items():
        new = set_value(text, key, value)
        if new != text:
            done.append(f"{key}: {value}")
        text = new
    parse_params(yaml.safe_load(text))
    if done:
        path.write_text(text)
        log.info("params.yaml: %s", "; ".join(done))
    return done


def combine_changes(params: Params) -> dict[str, str]:
    """A batch only trains the model when prepare adds batches: `none` becomes `all`."""
    return {"data.batches.combine": "all"} if params.data.batches.combine == "none" else {}


def prepare_mode(repo: Path, mode: str) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The params edits of the mode, and for continue the champion it starts from."""
    if mode == "refit":
        return {"train.init_model": "null"}, None
    try:
        model, info = registry.load(stage="prod", repo=str(repo))
    except UserError as exc:
        raise UserError(f"{exc}\n  --mode continue starts from the prod champion; use --mode refit") from None
    served.save(model, repo / PREVIOUS)
    log.info("continue: prod champion %s (commit %s) → %s", info["version"], info["commit"][:8], PREVIOUS)
    return {"train.init_model": PREVIOUS}, info


def write_summary(summary: dict[str, Any], name: str) -> Path:
    out = Path("reports/retrain")
    write_json(summary, out / f"{name}.json")
    with atomic_path(out / f"{name}.md") as tmp:
        tmp.write_text(markdown(summary), encoding="utf-8")
    return out / f"{name}.md"


def retrain(
    *, batch: Path, force: bool = False, promote: bool = False, mode: str | None = None, message: str | None = None
) -> dict[str, Any]:
    """One month of the loop in the current directory (a git + DVC project); returns the summary."""
    repo = Path.cwd()
    check_clean(repo)
    check_source(repo, batch)
    name = batch_name(batch)
    params = load_params()
    mode = mode or params.retrain.mode
    if mode == "continue" and params.model == AUTO:  # refused before anything is committed
        raise UserError(
            problem(
                "retrain --mode continue",
                "continues the prod champion's model family, so params.yaml must name it (model: auto does not)",
                f"model {AUTO}",
                "Set model to the champion's family (models/model.json names it), or use --mode refit",
            )
        )
    note = f"\n\n{message}" if message else ""
    summary: dict[str, Any] = {
        "batch": name,
        "source": str(batch),
        "mode": mode,
        "forced": force,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commits": [],
    }
    verdict = run_monitor(params, batch, name)
    summary["monitor"] = {
        "retrain": verdict.retrain,
        "reasons": verdict.reasons,
        "drifted": verdict.report["drifted"],
        "report": f"reports/monitor/{name}/drift.md",
    }
    if not (verdict.retrain or force):
        summary |= {"outcome": "no retrain", "why": "the monitor found no reason to retrain (--force overrides)"}
        write_summary(summary, name)
        commit(repo, f"Monitor batch {name}: no retrain{note}", list(OWN_OUTPUTS))  # the month's record
        return summary
    try:
        action, dest = add_batch(repo, batch, name)
        changes = edit_params(repo, combine_changes(params))
        summary |= {"batch_added": action, "batch_path": str(dest.relative_to(repo)), "params_changes": changes}
        done = commit(repo, f"Add batch {name}{note}", [str(BATCHES), "params.yaml"])
        summary["commits"] += [done] if done else []
        return run_and_record(repo, summary, name=name, mode=mode, promote=promote, note=note)
    except (StepFailed, UserError) as exc:
        restore(repo)
        summary |= {"outcome": "failed", "why": "a step failed; the champion keeps serving", "error": str(exc)}
        write_summary(summary, name)
        raise UserError(
            problem(
                "retrain",
                f"stopped: {first_reason(exc)}",
                name,
                "The batch is versioned and the champion untouched; fix the cause, commit, run the same command "
                f"again (details in reports/retrain/{name}.md and reports/logs/retrain.log)",
            )
        ) from None


def run_and_record(repo: Path, summary: dict[str, Any], *, name: str, mode: str, promote: bool, note: str) -> dict:
    edits, init = prepare_mode(repo, mode)
    summary["params_changes"] += edit_params(repo, edits)
    summary["init_model"] = init and {"version": init["version"], "commit": init["commit"]}
    dvc(repo, "repro", stream=True)
    if not DECISION.is_file():
        raise StepFailed(f"{DECISION} is missing after dvc repro (is the gate stage in dvc.yaml?)")
    decision = read_json(DECISION)
    summary["trained_on"] = read_json("reports/prepare/summary.json").get("data")
    summary["gate"] = {k: decision.get(k) for k in ("promote", "reason", "champion", "rules")}
    passed = bool(decision.get("promote"))
    champion = (decision.get("champion") or {}).get("version") or "none"
    summary |= {
        "outcome": "gate passed" if passed else "gate refused",
        "why": decision.get("reason", "")
        + ("" if passed else f"; the champion ({champion}) keeps serving, the run is committed as a record"),
        "registry": {"action": "pending" if passed else "nothing registered: the gate refused"},
    }
    write_summary(summary, name)
    verb = "gate passed" if passed else f"gate kept champion {champion}"
    done = commit(repo, f"Retrain on batch {name}: {verb}\n\n{decision.get('reason', '')}{note}", RUN_FILES)
    summary["commits"] += [done] if done else []
    summary["dvc_push"] = push(repo)
    if passed:
        summary["registry"] = register_and_promote(repo, promote=promote)
        if promote:
            summary["outcome"] = "promoted"
    write_summary(summary, name)  # its own commit below is the one commit it cannot list
    action = summary["registry"]["action"]
    commit(repo, f"Retrain {name}: {action.split(':')[0]}{note}", [*OWN_OUTPUTS, registry.CHAMPION])
    return summary


def register_and_promote(repo: Path, *, promote: bool) -> dict[str, Any]:
    registered = registry.register(repo)
    version = registered["version"]
    if not promote:
        return {"action": f"registered {version}", "version": version, "detail": "promote on merge"}
    promoted = registry.promote(repo, version=version, stage="prod")
    return {
        "action": f"registered {version}, promoted to prod",
        "version": version,
        "stage": "prod",
        "detail": f"replaces {promoted.get('replaces') or 'none'}; models/champion.json pinned",
    }


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprotab retrain", description="Monitor, add, retrain, gate, register.")
    parser.add_argument("--batch", required=True, help="new labeled batch (CSV or Parquet); its stem names it")
    parser.add_argument("--force", action="store_true", help="retrain even when the monitor sees no reason")
    parser.add_argument("--promote", action="store_true", help="promote to prod when the gate passes")
    parser.add_argument("--mode", choices=["refit", "continue"], help="default: params retrain.mode")
    parser.add_argument("--message", help="added to every commit message")
    return parser


@stage_main("retrain", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    summary = retrain(
        batch=Path(args.batch), force=args.force, promote=args.promote, mode=args.mode, message=args.message
    )
    print(f"{summary['outcome']}: {summary['why']}")
    for reason in summary["monitor"]["reasons"]:
        print(f"  - {reason}")
    if summary.get("registry"):
        print(f"registry: {summary['registry']['action']}")
    print(f"summary: reports/retrain/{summary['batch']}.md")


if __name__ == "__main__":
    main()
