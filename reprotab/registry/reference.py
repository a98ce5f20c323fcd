"""The frozen reference set: the test rows of the data the first prod champion was promoted with,
pinned in models/champion.json (reprotab/registry/champion.py) with their hash and read at that
commit through DVC. No batch can change or leak into it (prepare splits every file on its own),
so the gate (reprotab/registry/gate.py) judges every challenger on the same unseen rows.

`freeze_reference` pins it when `registry promote --stage prod` finds none pinned;
`reference_rows` reads it back for the gate, checked against its hash; `overlap` counts the
reference rows that also stand among training rows (the gate's `reference_leak` rule).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reprotab import paths
from reprotab.data.tables import frame_hash
from reprotab.errors import UserError, problem
from reprotab.registry.champion import ChampionPin, FrozenReference, read_pinned_table

REFERENCE_PATH = paths.TEST  # the split the reference is frozen from, at a pinned commit
TRAINING_PATHS = (paths.TRAIN, paths.VALIDATION)


def row_hashes(frame: pd.DataFrame, *, id_column: str | None) -> np.ndarray:
    """One hash per row over every column but the id (a customer seen again with other values is
    another row; the same values and label is the same row, whatever its id)."""
    columns = sorted(c for c in frame.columns if c != id_column)
    return pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()


def overlap(reference: pd.DataFrame, training: pd.DataFrame, *, id_column: str | None) -> int:
    """How many reference rows also stand, value for value, among the training rows."""
    common = [c for c in reference.columns if c in training.columns]
    seen = set(row_hashes(training[common], id_column=id_column).tolist())
    return int(sum(h in seen for h in row_hashes(reference[common], id_column=id_column).tolist()))


def freeze_reference(commit: str, repo: str | Path = ".", *, id_column: str | None = None) -> FrozenReference:
    """The pin of a frozen reference set: the test split at `commit`, its row hash, and how many of
    its rows the training rows of that commit already held (duplicates the data itself has)."""
    read = {
        path: read_pinned_table(path, commit=commit, repo=repo, what=path, version=None)
        for path in (REFERENCE_PATH, *TRAINING_PATHS)
    }
    frame = read[REFERENCE_PATH]
    training = pd.concat([read[path] for path in TRAINING_PATHS], ignore_index=True)
    return FrozenReference(
        commit=commit,
        path=REFERENCE_PATH,
        rows=len(frame),
        rows_hash=frame_hash(frame),
        in_training=overlap(frame, training, id_column=id_column),
    )


def reference_rows(pin: ChampionPin, repo: str | Path = ".") -> pd.DataFrame | None:
    """The frozen reference set the pin names, checked against its hash; None when none is pinned."""
    reference = pin.reference
    if not pin.version or reference is None:
        return None
    frame = read_pinned_table(
        reference.path, commit=reference.commit, repo=repo, what="the frozen reference set", version=pin.version
    )
    if frame_hash(frame) != reference.rows_hash:
        raise UserError(
            problem(
                paths.CHAMPION,
                "the frozen reference set's rows differ from the hash pinned with it",
                f"{frame_hash(frame)} at {reference.path}@{reference.commit[:8]}, pinned {reference.rows_hash}",
                f"Restore {paths.CHAMPION} from git history; never edit the pin by hand",
            )
        )
    return frame
