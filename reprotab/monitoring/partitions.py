"""`reprotab monitor --batch <folder>`: every partition a batch of its own, new partitions only.

A folder of partitions (a day per file, hive layout: reprotab/engine/partitions.py) is checked
partition by partition, each against the same drift reference, with its own report under
`<out>/<name>/<partition path without suffix>/` and its own verdict: a day's drift is what a team
acts on, and one bad day must not hide among a month of good ones.

`<out>/<name>/_manifest.json` records each partition's content hash and verdict under a key of
everything that judged it (the model's version and commit, the reference, the test metrics and
importance, params' `monitor`, `metric`, `seed` and the cleaning share). A rerun under the same key
checks only the partitions it has not seen, so a new day costs its own rows; another key checks
them all again. The manifest is rewritten after each partition, so a killed run keeps what it
finished. A partition gone from the folder leaves the manifest, and its report is removed (whatever the key).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from reprotab.data.tables import read_json, read_table, write_json
from reprotab.engine.partitions import list_partitions
from reprotab.monitoring.inputs import MonitorInputs
from reprotab.monitoring.verdict import Verdict
from reprotab.params.loader import Params

MANIFEST = "_manifest.json"
Check = Callable[..., Verdict]
log = logging.getLogger(__name__)


def judged_key(source: MonitorInputs, params: Params) -> str:
    """One digest of everything a partition's verdict depends on besides its rows."""
    importance = None if source.importance is None else {str(k): float(v) for k, v in source.importance.items()}
    what = {
        "version": source.version,
        "commit": source.commit,
        "reference": hashlib.sha256(json.dumps(source.reference.as_dict()).encode()).hexdigest(),
        "test_metrics": source.test_metrics,
        "importance": importance,
        "monitor": params.monitor.model_dump(mode="json"),
        "metric": params.metric,
        "seed": params.seed,
        "min_share": params.prepare.text_to_number_min_share,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def report_folders(names: list[str]) -> dict[str, str]:
    """Each partition's report folder: its path inside the batch folder without the suffix, or
    with it where two partitions would share one (day.csv and day.parquet)."""
    short = {name: PurePosixPath(name).with_suffix("").as_posix() for name in names}
    taken = Counter(short.values())
    return {name: short[name] if taken[short[name]] == 1 else name for name in names}


def _previous(out: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The last run's key and entries by partition name (none when unreadable)."""
    try:
        found = read_json(out / MANIFEST)
    except (OSError, ValueError):
        return None, {}
    if not isinstance(found, dict) or not isinstance(found.get("partitions"), list):
        return None, {}
    entries = {e["name"]: e for e in found["partitions"] if isinstance(e, dict) and "name" in e and "sha256" in e}
    return found.get("key"), entries


def monitor_folder(
    source: MonitorInputs, folder: str | Path, *, params: Params, out: Path, check: Check
) -> list[dict[str, Any]]:
    """Check each partition of `folder` not checked before under the same key (module docstring)
    with `check` (reprotab/monitoring/report.py `run`: monitor and write the report); one entry per
    partition in path order: name, sha256, report, rows, retrain, reasons, blockers, and `new`
    (checked by this run)."""
    partitions = list_partitions(folder, where="--batch")
    key = judged_key(source, params)
    last_key, previous = _previous(out)
    folders = report_folders([p.name for p in partitions])
    done = {
        p.name: {**previous[p.name], "new": False}
        for p in partitions
        if last_key == key
        and p.name in previous
        and previous[p.name]["sha256"] == p.sha256
        and previous[p.name].get("report") == folders[p.name]
        and (out / folders[p.name] / "drift.json").is_file()
    }
    for partition in partitions:
        if partition.name in done:
            continue
        report = folders[partition.name]
        batch = read_table(partition.path, where=f"--batch partition {partition.name}")
        extra = {"partition": {"name": partition.name, "sha256": partition.sha256, "folder": str(folder)}}
        where = f"--batch partition {partition.name}"
        verdict = check(source, batch, params=params, out=out / report, name=partition.name, extra=extra, where=where)
        done[partition.name] = {
            "name": partition.name,
            "sha256": partition.sha256,
            "report": report,
            "rows": verdict.report["rows"],
            "retrain": verdict.retrain,
            "reasons": verdict.reasons,
            "blockers": verdict.blockers,
            "new": True,
        }
        _write(out, key, [done[p.name] for p in partitions if p.name in done])
    entries = [done[p.name] for p in partitions]
    _write(out, key, entries)
    kept = set(folders.values())
    for gone in sorted(set(previous) - {p.name for p in partitions}):
        if previous[gone].get("report") in kept:  # its folder is a current partition's now
            continue
        stale = out / str(previous[gone].get("report", ""))
        if stale != out and out in stale.parents and stale.is_dir():
            shutil.rmtree(stale)
            for parent in stale.parents:  # the hive folders it leaves empty (date=.../)
                if parent == out or any(parent.iterdir()):
                    break
                parent.rmdir()
        log.info("partition %s is no longer in %s: its report was removed", gone, folder)
    return entries


def _write(out: Path, key: str, entries: list[dict[str, Any]]) -> None:
    kept = [{k: v for k, v in e.items() if k != "new"} for e in entries]
    write_json({"key": key, "partitions": kept}, out / MANIFEST)


def summary_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Per partition its verdict, blockers and reasons (as for one batch), then the totals."""
    lines = []
    for e in entries:
        seen = "checked now" if e["new"] else "seen before"
        lines.append(f"{e['name']}: retrain: {str(e['retrain']).lower()} ({e['rows']:,} rows, {seen})")
        lines += [f"  stop: {blocker}" for blocker in e["blockers"]]
        lines += [f"  - {reason}" for reason in e["reasons"]]
    new = sum(e["new"] for e in entries)
    count = f"{len(entries)} partition{'s' if len(entries) != 1 else ''}"
    lines.append(f"{count}, {new} checked now, {len(entries) - new} seen before")
    return lines
