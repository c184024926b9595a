"""Where each stage reads and writes, and how: every output is written to a temporary sibling and renamed
into place, so a failed or killed stage leaves the last good output as it was (and the next write clears
what a killed one left behind).

Paths are relative to the project root (DVC runs every stage there); they match `dvc.yaml`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.errors import UserError

INGESTED = Path("data/ingested/dataset.parquet")  # the batch ingest read, not yet validated
RAW_DATA = Path("data/raw/dataset.parquet")  # the current data version: the last batch that passed validate
BATCHES = Path("data/batches")  # accepted batches of new data, appended by ingest (scheduled runs)
CONTRACT = Path("data/contract.yaml")  # per-column rules of the data contract (`mlstrategy contract`)
RELABELS = Path("data/relabels.csv")  # people's corrected labels (id, corrected), applied by ingest
SPLITS_DIR = Path("data/splits")
SYNTHESIZED_DIR = Path("data/synthesized")  # train and train_dev made target-like (synthesize stage)
ASSIGNMENT = Path("data/assignment.parquet")
MODEL = Path("models/model.keras")
IMPROVED_MODEL = Path("models/improved.keras")
DATA_DOCS = Path("reports/data_docs")
FAILED_DATA_DOCS = Path("reports/failed/data_docs")  # the Data Docs of a failed validation
REPORT = Path("reports/strategy.html")
VALIDATION = Path("metrics/validation.json")
REFERENCE_PROFILE = Path("data/reference_profile.json")  # the drift guard's trusted reference (persisted)
SPLIT = Path("metrics/split.json")
TRAIN_HISTORY = Path("metrics/train_history.csv")
EVALUATION = Path("metrics/evaluation.json")
CONFUSION_DEV = Path("metrics/confusion_dev.csv")
DIAGNOSIS = Path("metrics/diagnosis.json")
ERROR_LADDER = Path("metrics/error_ladder.csv")
IMPROVE = Path("metrics/improve.json")
ANALYZE = Path("metrics/analyze.json")
ERROR_TABLE = Path("reports/error_analysis.csv")  # per tag: count, share of dev errors, ceiling
ERROR_SAMPLE = Path("reports/dev_errors.csv")  # the misclassified dev examples to look at
RELABEL_QUEUE = Path("reports/relabel_queue.csv")  # likely wrong labels, likeliest first
ERROR_GALLERY = Path("reports/error_gallery.png")
SYNTHESIS = Path("metrics/synthesize.json")
SWEEP = Path("metrics/sweep.json")
SWEEP_TRIALS = Path("metrics/sweep_trials.csv")
SWEEP_MODEL = Path("models/sweep_best.keras")
COMPARE = Path("metrics/compare.json")  # end to end vs pipeline, transfer vs scratch, multi-task vs single
COMPARE_END_TO_END = Path("metrics/compare_end_to_end.csv")
COMPARE_TRANSFER = Path("metrics/compare_transfer.csv")
COMPARE_FIGURE = Path("reports/compare.png")
TRAINING = Path("metrics/train.json")  # the model family, its size, the device, precision and speed
BACKUP_DIR = Path("models/.backup")  # the checkpoint a crashed train stage resumes from
SWEEP_DIR = Path("sweeps")  # the study store and every finished trial's model (DVC: persist)


def split_path(name: str, synthesized: bool = True) -> Path:
    """The table of split `name` the stages read: the synthesized one where the synthesize stage made it
    (train, train_dev), else the split stage's."""
    made = SYNTHESIZED_DIR / f"{name}.parquet"
    return made if synthesized and made.is_file() else SPLITS_DIR / f"{name}.parquet"


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path` (a file or a directory); on success it replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _recover(path)
    stem, suffix = _stem_suffix(path)
    tmp = path.with_name(f".{stem}.tmp-{os.getpid()}{suffix}")
    remove_output(tmp)
    try:
        yield tmp
        _sync(tmp)  # on disk before the rename makes it the output: a crash leaves the old or the new
        if tmp.is_dir() and path.is_dir():
            # A directory cannot be renamed over a non-empty one: swap the two in one step where the
            # system can, else move the old one aside first (`_recover` puts it back after a crash).
            if not _exchange(tmp, path):
                old = path.with_name(f".{path.name}.old-{os.getpid()}")
                path.rename(old)
                tmp.rename(path)
                remove_output(old)
        else:
            if path.is_dir():
                remove_output(path)
            tmp.replace(path)
        _sync_directory(path.parent)
    finally:
        remove_output(tmp)


def _sync(path: Path) -> None:
    """fsync a file, or every file and folder under a directory."""
    if not path.exists():
        return
    paths = [path] if not path.is_dir() else [path, *path.rglob("*")]
    for item in paths:
        if item.is_dir():
            _sync_directory(item)
        elif item.is_file():
            with item.open("rb") as handle:
                os.fsync(handle.fileno())


def _sync_directory(path: Path) -> None:
    """fsync a directory, so that the renames in it are on disk."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_cwd = -100
    done = renameat2(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), _RENAME_EXCHANGE)
    return done == 0


def _stem_suffix(path: Path) -> tuple[str, str]:
    """A temporary file keeps the suffix: Keras and pandas pick the format from it (Keras's weights files
    by two suffixes)."""
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else path.suffix
    return path.name.removesuffix(suffix), suffix


def _recover(path: Path) -> None:
    """Clean up after a writer of `path` that was killed (SIGKILL, power loss): its temporary sibling goes;
    a last good directory it had moved aside comes back if the new one never took its place."""
    stem, suffix = _stem_suffix(path)
    for leftover in path.parent.glob(f".{stem}.tmp-*{suffix}"):
        if not _alive(leftover.name.removesuffix(suffix).rsplit("-", 1)[1]):
            remove_output(leftover)
    for old in path.parent.glob(f".{path.name}.old-*"):
        if not _alive(old.name.rsplit("-", 1)[1]):
            if path.exists():
                remove_output(old)
            else:
                old.rename(path)


def _alive(pid: str) -> bool:
    """Whether process `pid` (text from a file name) still runs; a name that is not a pid counts as alive."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError, OverflowError):
        return True
    return True


def remove_output(path: Path) -> None:
    """Delete an output (a file or a directory) if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def fingerprint(*parts: Any) -> str:
    """A short stable digest of JSON-able parts: the name of one sweep study, of one checkpoint's config."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def file_digest(path: Path, algorithm: str = "blake2b") -> str:
    """The hex digest of a file's bytes, read in blocks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def data_version() -> str | None:
    """The current data version: the md5 of data/raw/dataset.parquet that DVC records in dvc.lock."""
    return file_digest(RAW_DATA, "md5") if RAW_DATA.is_file() else None


def write_json(path: Path, payload: Any) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Parquet for data, CSV for the small tables DVC plots."""
    with atomic_output(path) as tmp:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


def require(path: Path, produced_by: str) -> Path:
    if not path.is_file():
        raise UserError(f"{path}: missing; it is produced by the '{produced_by}' stage (run `dvc repro`)")
    return path


def read_json(path: Path, produced_by: str) -> Any:
    try:
        return json.loads(require(path, produced_by).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise UserError(f"{path}: not valid JSON ({error}); rerun the '{produced_by}' stage") from error


def read_frame(path: Path, produced_by: str | None = None) -> pd.DataFrame:
    """A Parquet or CSV table; errors name the file and what is wrong with it."""
    if produced_by:
        require(path, produced_by)
    elif not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        if path.suffix == ".csv":
            return pd.read_csv(path)
    except Exception as error:  # pandas/pyarrow raise many types for a malformed file
        raise UserError(f"{path}: cannot be read as {path.suffix[1:].upper()}: {error}") from error
    raise UserError(f"{path}: unsupported format {path.suffix!r}; use .csv or .parquet")


def batch_files(folder: Path = BATCHES) -> list[Path]:
    """The batches of data in `folder` (CSV or Parquet files), in name order."""
    return sorted(p for p in folder.glob("*") if p.suffix in (".csv", ".parquet") and p.is_file())
