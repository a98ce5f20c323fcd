"""What every stage's `main` shares: logging set-up, timing, and turning a `UserError` into
one clear message and exit status 2 instead of a traceback."""

from __future__ import annotations

import functools
import gc
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from pathlib import Path

from reprotab.errors import UserError

LOG_DIR = Path("reports/logs")
LOG_MAX_BYTES = 5 * 2**20  # a log file past this is rotated: <stage>.log.1 ... .log.3 keep the older runs
LOG_BACKUPS = 3
log = logging.getLogger("reprotab")


def configure_logging(stage: str, log_dir: Path = LOG_DIR) -> None:
    """Console plus `reports/logs/<stage>.log`, configured once per stage run. The file is appended
    to (an earlier run's lines, say a crashed service's, survive the next run) and rotated past
    `LOG_MAX_BYTES`; each line carries the full date and time."""
    log_dir.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S%z")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter(f"[{stage}] %(levelname)s %(message)s"))
    file = logging.handlers.RotatingFileHandler(
        log_dir / f"{stage}.log", maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [console, file]
    root.setLevel(logging.INFO)
    for noisy in ("matplotlib", "PIL", "dvc_render", "dvclive", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def resume_collection() -> None:
    """Turn the cyclic garbage collector back on after a command-line start-up paused it
    (stages/__init__.py, reprotab/__main__.py). The imported modules are frozen first, so later
    collections walk only the objects the run itself creates."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _record_params_reads(stage: str, *, succeeded: bool) -> None:
    """The params keys the stage read, for the dvc.yaml audit (reprotab/params/loader.py). Looked
    up rather than imported: a command that never loads params does not pay for the loader."""
    loader = sys.modules.get("reprotab.params.loader")
    if loader is not None:
        loader.record_stage_reads(stage, succeeded=succeeded)


def stage_main(stage: str, *, in_pipeline: bool = True) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a stage's `main(argv)`: log set-up, elapsed time, user errors → exit 2.
    `in_pipeline=False` for report commands run outside `dvc repro` (no DVC outputs to restore)."""

    def wrap(main: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> None:
            resume_collection()
            configure_logging(stage)
            started = time.perf_counter()
            _record_params_reads(stage, succeeded=False)  # views opened before this stage are not its reads
            try:
                main(argv)
                _record_params_reads(stage, succeeded=True)
            except UserError as exc:
                _record_params_reads(stage, succeeded=False)
                log.error("%s", exc)
                if in_pipeline:
                    log.error(
                        "stage %s failed and wrote nothing; under dvc repro, `dvc checkout` restores "
                        "the outputs DVC cleared before the run",
                        stage,
                    )
                raise SystemExit(2) from None
            what = f"stage {stage}" if in_pipeline else stage
            log.info("%s done in %.1fs", what, time.perf_counter() - started)

        return run

    return wrap
