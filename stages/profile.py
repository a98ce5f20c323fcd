"""profile: describe the raw table and flag what deserves a look before training.

Reads   data.path (CSV or Parquet); of a folder of partitions, a hashed sample of PROFILE_ROWS rows
Writes  reports/profile/profile.json (per column: kind, missing share, distinct count, top values
        or range, flags; duplicates; class balance and the sampler `auto` would pick),
        reports/profile/summary.md (the same for pull requests), reports/profile/profile.html
        (skrub's TableReport of a seeded sample)
Params  task, seed, data, prepare, sampling

A report, not an input of any other stage. The logic is reprotab/data/profile.py (statistics and
flags) and reprotab/data/profile_report.py (the pages); this shell wires files to them.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from reprotab.data.profile import profile_table
from reprotab.data.profile_report import summary_markdown, table_report_html
from reprotab.data.tables import atomic_path, read_table, write_json
from reprotab.engine.partitions import read_sample
from reprotab.params.loader import load_stage_params
from reprotab.runner import stage_main

PARAMS = ("task", "seed", "data", "prepare", "sampling")
PROFILE_ROWS = 200_000  # rows of a folder data.path profiled (a hashed sample)
log = logging.getLogger(__name__)


@stage_main("profile")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Profile the raw table: columns, flags, class balance.")
    parser.add_argument("--out-dir", default="reports/profile")
    args = parser.parse_args(argv)
    params = load_stage_params("profile", PARAMS)
    source = Path(params.data.path)
    if source.is_dir():  # a table in partitions: a sample, read one partition at a time
        frame, total = read_sample(source, rows=PROFILE_ROWS, seed=params.seed, id_column=params.data.id_column)
        log.info("profiling a hashed sample of %d of %d rows (folder %s)", len(frame), total, source)
    else:
        frame = read_table(source)
    profile = profile_table(
        frame,
        data=params.data,
        task=params.task,
        sampling=params.sampling,
        seed=params.seed,
        text_min_share=params.prepare.text_to_number_min_share,
    )
    html = table_report_html(frame, source=params.data.path, seed=params.seed)
    out = Path(args.out_dir)
    write_json(profile, out / "profile.json")
    for name, text in (("summary.md", summary_markdown(profile, source=params.data.path)), ("profile.html", html)):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    flagged = {flag: names for flag, names in profile["flags"].items() if names}
    log.info("%d rows, %d columns; flags: %s", len(frame), len(frame.columns), flagged or "none")


if __name__ == "__main__":
    main()
