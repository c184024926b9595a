"""`mlstrategy relabel FILE`: apply a person's corrected labels to dev and test together (train with
--train), as a new DVC data version.

The corrections accumulate in data/relabels.csv (id, corrected), which the `ingest` stage applies; this
command checks the file, merges it in and runs `dvc repro validate`, so that the relabeled batch, once it
passes, becomes data/raw/dataset.parquet with a new hash in dvc.lock. A refused file, or a failed ingest
or validation, leaves data/relabels.csv and the current data version as they were.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from components.relabel import ID, LABEL, check_corrections, merge_corrections
from components.train_dev import SPLITS
from pipelines.errors import UserError
from pipelines.running.runtime import dvc_env, script
from pipelines.store.artifacts import RELABELS, data_version, split_path, write_frame
from pipelines.store.params import Params
from pipelines.store.relabels import read_corrections, read_relabels


@dataclass(frozen=True)
class Relabeled:
    """What one `relabel` did: reviewed rows per split, how many labels changed, the data's md5 before
    and after."""

    reviewed: dict[str, int]
    changed: int
    data_before: str | None
    data_after: str | None


def current_splits(params: Params) -> tuple[dict[str, str], dict[str, Any]]:
    """id -> split of every example in data/splits, and the label each has now."""
    split_of, labels = {}, {}
    data = params.data
    for name in SPLITS:
        path = split_path(name, synthesized=False)  # real examples, not synthesized copies
        if not path.is_file():
            continue
        frame = pd.read_parquet(path, columns=[data.id_column, data.label_column])
        ids = frame[data.id_column].astype(str)
        split_of.update(dict.fromkeys(ids, name))
        labels.update(zip(ids, frame[data.label_column], strict=True))
    if not split_of:
        raise UserError(f"{split_path('dev').parent}: no splits yet; run `mlstrategy run` first")
    return split_of, labels


def relabel(params: Params, path: Path, train: bool = False) -> Relabeled:
    """Check `path`, merge it into data/relabels.csv and make the new data version with `dvc repro
    ingest`. Nothing is written when the file is refused; data/relabels.csv is restored when ingest fails."""
    corrections = read_corrections(path)
    split_of, labels_now = current_splits(params)
    class_list = params.data.labels
    try:
        checked = check_corrections(corrections, split_of, class_list, train=train)
    except ValueError as error:
        raise UserError(f"{path}: {error}") from None
    previous = read_relabels(class_list)
    previous_bytes = RELABELS.read_bytes() if RELABELS.is_file() else None
    before = data_version()
    try:
        write_frame(RELABELS, merge_corrections(previous, checked))
        done = subprocess.run([script("dvc"), "repro", "validate"], env=dvc_env(), check=False)
        if done.returncode != 0:
            raise UserError(f"`dvc repro validate` failed (exit {done.returncode}); {RELABELS} is as it was")
    except BaseException as error:  # a failed or interrupted repro: the corrections were not applied
        if previous_bytes is None:
            RELABELS.unlink(missing_ok=True)
        else:
            RELABELS.write_bytes(previous_bytes)
        if isinstance(error, OSError):
            raise UserError(f"cannot run dvc ({error}); {RELABELS} is as it was") from error
        raise
    changed = int(sum(labels_now[i] != label for i, label in zip(checked[ID], checked[LABEL], strict=True)))
    reviewed = checked["split"].value_counts().to_dict()
    return Relabeled({k: int(v) for k, v in reviewed.items()}, changed, before, data_version())
