"""`reprotab retrain`: one month of the loop in one command, as a transaction.

(Over 300 lines because it is the month as one story: the order of its steps, what each outcome
records and commits, the transaction around them and the command; what each step does in the
repository is reprotab/retrain/steps.py.)

    reprotab retrain --batch data/incoming/2026-11.parquet [--force] [--promote] [--mode refit|continue]
                     [--override "why the monitor's stop does not apply"]
    reprotab retrain --recover      # after a run was killed: put the repository back, record the month

Checks before anything is written (a refusal is one message, exit 2, nothing changed): no other
retrain running and none left interrupted, a clean git tree, the batch's name free (or the same
rows under it), the batch carries the target with at least one label (reprotab/retrain/batches.py).

Steps (in reprotab/retrain/steps.py), inside a transaction (reprotab/retrain/journal.py):
  1. monitor the batch against the model that serves: the prod version and the data at its
     commit (`reprotab monitor --stage prod`; the workspace's model before any promotion).
     A blocker (label drift against history, an undefined metric) stops the month unless
     --override gives a reason; without a retrain verdict (or --force) it stops too. Either way
     the summary and the monitor report are committed as the month's record, nothing else
  2. version the batch: copy to data/batches/<stem>.parquet, `dvc add`, set data.batches.combine
     to `all` when it is `none`, commit ("already added" when the same rows are there)
  3. mode (params `retrain.mode`, or --mode): refit from scratch, or continue the prod champion
  4. `dvc repro`, its output streamed to the log
  5. the gate's decision (which also judges the challenger on the frozen reference set): commit
     the run either way (a refusal is part of the history), `dvc push` when a remote is
     configured; on a pass `registry register`, and with --promote `registry promote --stage prod`
     plus a commit of models/champion.json
  6. reports/retrain/<batch>.md and .json; the log is reports/logs/retrain.log

Any failure or interruption (a step that fails, Ctrl-C, SIGKILL then `--recover`) rolls the
repository back exactly to where the month started: git branch and tree, tags, DVC workspace,
champion. Then the month's summary (outcome "failed" or "interrupted", the step, the error, what
the rollback did) is committed alone, so every month leaves a record and a clean tree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
from pathlib import Path
from typing import Any

from reprotab import paths
from reprotab.data.tables import atomic_path, read_json, read_table, write_json
from reprotab.errors import UserError, problem
from reprotab.monitoring import report as monitor_report
from reprotab.monitoring.inputs import MonitorInputs, inputs
from reprotab.monitoring.verdict import Verdict
from reprotab.params.loader import Params, load_params
from reprotab.params.names import SEARCHES_FAMILIES
from reprotab.registry import versions as registry
from reprotab.registry.gate_decision import GateDecision
from reprotab.retrain.batches import check_labels
from reprotab.retrain.journal import Transaction, check_recoverable, rollback
from reprotab.retrain.steps import (
    OWN_OUTPUTS,
    WRITES,
    StepFailed,
    add_batch,
    batch_commit_paths,
    batch_destination,
    check_clean,
    check_source,
    combine_changes,
    commit,
    dvc,
    edit_params,
    prepare_mode,
    push,
    register_and_promote,
)
from reprotab.retrain.summary import batch_action, batch_name, first_reason, markdown
from reprotab.runner import stage_main
from reprotab.train.families import spec_of

RUN_FILES = ["dvc.lock", "params.yaml", "reports", "data", "models", ".gitignore"]
log = logging.getLogger(__name__)


class Refused(Exception):
    """The month stops on purpose (a blocker, bad labels): recorded, nothing else committed."""


def prod_version(repo: Path) -> str | None:
    """The version prod holds (`registry show` lists every stage, holding a version or not)."""
    return (registry.show(repo)["stages"].get("prod") or {}).get("version")


def served_source(repo: Path) -> MonitorInputs:
    """What the monitor judges: the prod version and the data at its commit; before the first
    promotion, the workspace's model and prepared splits."""
    stage = "prod" if prod_version(repo) else None
    if stage is None:
        log.info("no version in prod yet: monitoring the workspace's model")
    return inputs(repo=repo, stage=stage)


def write_summary(summary: dict[str, Any], name: str) -> Path:
    write_json(summary, paths.retrain_summary(name, "json"))
    with atomic_path(paths.retrain_summary(name, "md")) as tmp:
        tmp.write_text(markdown(summary), encoding="utf-8")
    return Path(paths.retrain_summary(name, "md"))


def record(repo: Path, summary: dict[str, Any], name: str, subject: str, *, trailer: str = "") -> None:
    """Commit the month's summary and monitor report alone: the record of a month that changed nothing else."""
    write_summary(summary, name)
    record_paths = [paths.retrain_summary(name, "json"), paths.retrain_summary(name, "md"), paths.monitor_report(name)]
    try:
        done = commit(repo, f"{subject}\n\n{trailer}" if trailer else subject, record_paths)
    except StepFailed as exc:  # the files stay for the next run's record commit
        log.error(
            "the month's summary could not be committed (it is in %s): %s", paths.retrain_summary(name, "md"), exc
        )
        return
    if done:
        summary["commits"].append(done)


def check_mode(mode: str, params: Params) -> None:
    if mode != "continue":
        return
    if params.model in SEARCHES_FAMILIES:
        raise UserError(
            problem(
                "retrain --mode continue",
                f"continues the prod champion's model family, so params.yaml must name it (model: {params.model} "
                "does not)",
                f"model {params.model}",
                "Set model to the champion's family (models/model.json names it), or use --mode refit",
            )
        )
    if not spec_of(params.model).continues:
        raise UserError(
            problem(
                "retrain --mode continue",
                f"needs a family that adds rounds or trees; {params.model} has none to add",
                f"model {params.model}",
                "Use --mode refit",
            )
        )


def retrain(
    *,
    batch: Path,
    force: bool = False,
    promote: bool = False,
    mode: str | None = None,
    message: str | None = None,
    override: str | None = None,
) -> dict[str, Any]:
    """One month of the loop in the current directory (a git + DVC project); returns the summary."""
    repo = Path.cwd()
    tx = Transaction(repo)
    tx.lock()
    try:
        refuse_interrupted(tx)
        check_clean(repo)
        params = load_params()
        check_source(repo, batch, params)
        name = batch_name(batch)
        mode = mode or params.retrain.mode
        check_mode(mode, params)
        rows = read_table(batch, where="--batch")
        dest = batch_destination(repo, params, name)  # the name is checked before anything is written
        batch_action(batch, dest, source_rows=rows, dest_rows=read_table(dest) if dest.is_file() else None)
        if override is not None and not override.strip():
            raise UserError(problem("--override", "must say why the monitor's stop does not apply", override))
        summary: dict[str, Any] = {
            "batch": name,
            "source": str(batch),
            "mode": mode,
            "forced": force,
            "override": override,
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "monitor": {"retrain": None, "reasons": [], "blockers": [], "report": "-"},
            "commits": [],
        }
        tx.begin(name, summary["started"])
        return transaction(tx, summary, params=params, rows=rows, batch=batch, promote=promote, message=message)
    finally:
        tx.unlock()


def transaction(tx: Transaction, summary: dict[str, Any], **month: Any) -> dict[str, Any]:
    """Run the month; on any failure or interruption roll back, then record it (see the docstring)."""
    journal = tx.journal
    assert journal is not None  # month() calls tx.begin() first; only tx.end() below clears it
    name, note = summary["batch"], f"\n\n{month['message']}" if month.get("message") else ""
    if summary.get("override"):
        note += f"\n\nOverride of the monitor's stop: {summary['override']}"
    try:
        result = run_month(tx, summary, note=note, **{k: v for k, v in month.items() if k != "message"})
    except Refused as exc:  # raised before the first write but the monitor report: nothing to roll back
        summary |= {"outcome": "refused", "why": str(exc)}
        record(tx.repo, summary, name, f"Retrain {name}: refused{note}\n\n{exc}", trailer=journal.trailer)
        tx.end()
        raise UserError(
            problem("retrain", f"refused: {exc}", name, f"Details in {paths.retrain_summary(name, 'md')}")
        ) from None
    except BaseException as exc:  # a failed step, a bug, Ctrl-C: the repository goes back as it was
        try:
            done = rollback(tx.repo, journal, dvc_checkout=restore_outputs)
        except Exception as failed:  # the journal stays: --recover tries again once the cause is fixed
            raise UserError(
                problem(
                    "retrain",
                    f"step '{journal.step}' failed ({first_reason(exc)}) and so did the rollback",
                    first_reason(failed),
                    "Fix that, then run `reprotab retrain --recover`",
                )
            ) from None
        summary |= {
            "outcome": "failed",
            "why": f"step '{journal.step}' failed; the repository was rolled back, the champion keeps serving",
            "error": str(exc) or type(exc).__name__,
            "rollback": done,
        }
        subject = f"Retrain {name}: failed at {journal.step}, rolled back{note}"
        record(tx.repo, summary, name, subject, trailer=journal.trailer)
        tx.end()
        if isinstance(exc, KeyboardInterrupt):
            raise SystemExit(130) from None  # rolled back and recorded: no traceback for a Ctrl-C
        if not isinstance(exc, (StepFailed, UserError)):
            raise
        raise UserError(
            problem(
                "retrain",
                f"stopped: {first_reason(exc)}",
                name,
                "Nothing changed but this month's summary; fix the cause and run the same command again "
                f"(details in {paths.retrain_summary(name, 'md')} and reports/logs/retrain.log)",
            )
        ) from None
    tx.end()
    return result


def restore_outputs() -> str | None:
    """Every DVC output back to what dvc.lock records (after `git reset --hard`); what could not be."""
    try:
        dvc(Path.cwd(), "checkout", "--force", "--quiet")
    except StepFailed as exc:
        log.warning("dvc checkout could not restore every output: %s", exc)
        return f"dvc checkout could not restore every output ({first_reason(exc)}): run `dvc pull`, `dvc checkout`"
    return None


def run_month(
    tx: Transaction, summary: dict[str, Any], *, params: Params, rows: Any, batch: Path, promote: bool, note: str
) -> dict[str, Any]:
    repo, name, journal = tx.repo, summary["batch"], tx.journal
    assert journal is not None  # called by transaction(), inside the begun month
    tx.step("check labels")
    try:
        summary["labelled_rows"] = check_labels(rows, target=params.data.target, where=f"--batch {batch.name}")
    except UserError as exc:
        raise Refused(str(exc)) from None
    tx.step("monitor")
    source = served_source(repo)
    try:
        verdict = monitor_report.run(source, rows, params=params, out=Path(paths.monitor_report(name)), name=name)
    except UserError as exc:  # the batch itself is unusable (columns missing, numbers as text, no rows)
        raise Refused(str(exc)) from None
    summary["monitor"] = monitor_summary(verdict, name)
    if verdict.blockers and not summary["override"]:
        raise Refused(
            "the monitor stopped the loop: " + "; ".join(verdict.blockers) + ". If the batch is right, run again with "
            '--override "why"; if not, fix its labels'
        )
    if not (verdict.retrain or summary["forced"]):
        summary |= {"outcome": "no retrain", "why": "the monitor found no reason to retrain (--force overrides)"}
        record(repo, summary, name, f"Monitor batch {name}: no retrain{note}", trailer=journal.trailer)
        return summary
    tx.step("add batch")
    action, dest = add_batch(tx, batch, name, rows, params)
    changes = edit_params(repo, combine_changes(repo, params))
    summary |= {"batch_added": action, "batch_path": str(dest.relative_to(repo)), "params_changes": changes}
    paths_added = batch_commit_paths(repo, params, dest)
    done = commit(repo, tx.sign(f"Add batch {name}{note}"), paths_added, made=tx.committed)
    summary["commits"] += [done] if done else []
    return run_and_record(tx, summary, name=name, mode=summary["mode"], promote=promote, note=note)


def monitor_summary(verdict: Verdict, name: str) -> dict[str, Any]:
    return {
        "retrain": verdict.retrain,
        "reasons": verdict.reasons,
        "blockers": verdict.blockers,
        "drifted": verdict.report["drifted"],
        "model": verdict.report.get("model"),
        "labels": verdict.report.get("labels"),
        "report": f"{paths.monitor_report(name)}/drift.md",
    }


def run_and_record(
    tx: Transaction, summary: dict[str, Any], *, name: str, mode: str, promote: bool, note: str
) -> dict[str, Any]:
    repo = tx.repo
    tx.step("set mode")
    edits, init = prepare_mode(tx, mode)
    summary["params_changes"] += edit_params(repo, edits)
    summary["init_model"] = init and {"version": init["version"], "commit": init["commit"]}
    tx.step("dvc repro")
    dvc(repo, "repro", stream=True, started=tx.running_dvc)
    tx.running_dvc(None)
    if not Path(paths.GATE_DECISION).is_file():
        raise StepFailed(f"{paths.GATE_DECISION} is missing after dvc repro (is the gate stage in dvc.yaml?)")
    decision = GateDecision.from_json(paths.GATE_DECISION)
    prepared = read_json(paths.PREPARE_SUMMARY)
    summary["trained_on"] = prepared.get("data")
    summary["rows_used"] = {
        split: prepared[split]["rows"] for split in ("train", "validation", "test") if split in prepared
    }
    summary["gate"] = {
        "promote": decision.promote,
        "reason": decision.reason,
        "champion": decision.champion,
        "rules": list(decision.rules),
        "reference": decision.reference,
    }
    passed = decision.promote
    champion = decision.champion_version or "none"
    summary |= {
        "outcome": "gate passed" if passed else "gate refused",
        "why": decision.reason
        + ("" if passed else f"; the champion ({champion}) keeps serving, the run is committed as a record"),
        "registry": {"action": "pending" if passed else "nothing registered: the gate refused"},
    }
    worse_on_reference = [
        r
        for r in decision.rules
        if r["rule"].startswith("reference_") and r["rule"] != "reference_schema" and r["verdict"] == "fail"
    ]
    if not passed and any(not r.get("undefined") for r in worse_on_reference):
        summary["why"] += (
            f"; the model trained with this batch is worse on the frozen reference set: if its labels are wrong, "
            f'retire it (`reprotab batches retire {name} --reason "..."`) so later months do not train on it'
        )
    write_summary(summary, name)
    tx.step("commit run")
    verb = "gate passed" if passed else f"gate kept champion {champion}"
    message = f"Retrain on batch {name}: {verb}\n\n{decision.reason}{note}"
    done = commit(repo, tx.sign(message), RUN_FILES, made=tx.committed)
    summary["commits"] += [done] if done else []
    tx.step("dvc push")
    summary["dvc_push"] = push(repo)
    if passed:
        tx.step("register")
        summary["registry"] = register_and_promote(repo, promote=promote)
        if promote:
            summary["outcome"] = "promoted"
    write_summary(summary, name)  # its own commit below is the one commit it cannot list
    tx.step("commit record")
    action = summary["registry"]["action"]
    record_paths = [*OWN_OUTPUTS, paths.CHAMPION]
    commit(repo, tx.sign(f"Retrain {name}: {action.split(':')[0]}{note}"), record_paths, made=tx.committed)
    return summary


def refuse_interrupted(tx: Transaction) -> None:
    left = tx.interrupted()
    if left is not None:
        raise UserError(
            problem(
                "retrain",
                f"an earlier run (batch {left.batch}, pid {left.pid}) was interrupted at step '{left.step}' and not "
                "rolled back",
                None,
                "Run `reprotab retrain --recover` to put the repository back as it was before it, then retry",
            )
        )


def recover() -> dict[str, Any] | None:
    """Roll back an interrupted run and commit its month's summary; None when nothing was interrupted."""
    repo = Path.cwd()
    tx = Transaction(repo)
    tx.lock()
    try:
        journal = tx.interrupted()
        if journal is None:
            return None
        check_recoverable(repo, journal, run_paths=(*WRITES, *OWN_OUTPUTS))
        done = rollback(repo, journal, dvc_checkout=restore_outputs)
        summary = {
            "batch": journal.batch,
            "source": "-",
            "mode": "-",
            "started": journal.started,
            "outcome": "interrupted",
            "why": f"the run stopped at step '{journal.step}' (pid {journal.pid}) and was rolled back by --recover; "
            "the champion keeps serving",
            "monitor": {"retrain": None, "reasons": [], "blockers": [], "report": "-"},
            "rollback": done,
            "commits": [],
        }
        subject = f"Retrain {journal.batch}: interrupted at {journal.step}, rolled back"
        record(repo, summary, journal.batch, subject, trailer=journal.trailer)
        tx.end()
        return summary
    finally:
        tx.unlock()


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reprotab retrain", description="Monitor, add, retrain, gate, register.")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--batch", help="new labeled batch (CSV or Parquet); its stem names it")
    what.add_argument("--recover", action="store_true", help="roll back a run that was killed, record it, and exit")
    parser.add_argument("--force", action="store_true", help="retrain even when the monitor sees no reason")
    parser.add_argument(
        "--override", metavar="REASON", help="retrain although the monitor says stop (label drift, ...)"
    )
    parser.add_argument("--promote", action="store_true", help="promote to prod when the gate passes")
    parser.add_argument("--mode", choices=["refit", "continue"], help="default: params retrain.mode")
    parser.add_argument("--message", help="added to every commit message")
    return parser


def _terminated(signum: int, _frame: Any) -> None:
    """SIGTERM (a CI job cancelled, a container stopped) unwinds like Ctrl-C, so the month rolls back."""
    raise SystemExit(128 + signum)


@stage_main("retrain", in_pipeline=False)
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    if args.recover:
        recovered = recover()
        if recovered is None:
            print("nothing to recover: no interrupted run")
        else:
            batch = recovered["batch"]
            print(f"rolled back the interrupted run of {batch}: {paths.retrain_summary(batch, 'md')}")
        return
    summary = retrain(
        batch=Path(args.batch),
        force=args.force,
        promote=args.promote,
        mode=args.mode,
        message=args.message,
        override=args.override,
    )
    print(f"{summary['outcome']}: {summary['why']}")
    for reason in summary["monitor"]["reasons"]:
        print(f"  - {reason}")
    if summary.get("registry"):
        print(f"registry: {summary['registry']['action']}")
    print(f"summary: {paths.retrain_summary(summary['batch'], 'md')}")


if __name__ == "__main__":
    main()
