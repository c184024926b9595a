"""Where each batch of new data is, for the scheduled runs: a small state machine on the file system, with
its own lock and a journal, so that a run killed at any step leaves every batch somewhere known.

A batch is in exactly one of these places:

    landing      dropped by the user (params.yaml schedule.landing), not taken yet
    batches      taken (data/batches): being validated while the journal says so, else accepted
    quarantine   refused (schedule.quarantine), with NAME.txt saying why; never overwritten

A run holds the lock (`exclusive`) from start to end: a second run at the same time (two `mlstrategy serve`,
or `serve --once` during a served run) does nothing rather than race on the same files. The journal
(`Journal`) records the phase of the run that holds it, written before each step, so the next run knows
how to go on after a kill: a batch taken but not yet judged goes back to landing; a run killed while
training or comparing trains or compares again.

A file is taken only when it has settled: unchanged for `settle_s` seconds, so one still being copied in
stays for the next run. Writers that can, write `NAME.part` and rename it when done (names other than
*.csv and *.parquet are never taken).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipelines.store.artifacts import BATCHES, batch_files, write_text

STATE_DIR = Path("data/.scheduled")
LOCK = STATE_DIR / "lock"
JOURNAL = STATE_DIR / "journal.json"

# The phases a run goes through; the journal holds the current one (no journal: no run in progress).
VALIDATING, TRAINING, COMPARING = "validating", "training", "comparing"


@dataclass
class Journal:
    """The phase of the run in progress and the batch it is validating (`VALIDATING`); accepted: the
    batches this run accepted so far."""

    phase: str
    batch: str | None = None
    accepted: list[str] = field(default_factory=list)

    @classmethod
    def read(cls) -> Journal | None:
        try:
            return cls(**json.loads(JOURNAL.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def write(self) -> None:
        write_text(JOURNAL, json.dumps(asdict(self), indent=2) + "\n")

    @staticmethod
    def clear() -> None:
        JOURNAL.unlink(missing_ok=True)

    @classmethod
    def between(cls, accepted: list[str]) -> None:
        """Between two batches: the run owes a training on the batches it accepted, if any."""
        if accepted:
            cls(TRAINING, accepted=accepted).write()
        else:
            cls.clear()


@contextmanager
def exclusive() -> Iterator[bool]:
    """Hold the scheduled runs' lock for the block: True when this run holds it, False when another
    process does (the lock goes with its process, even on SIGKILL)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def holder() -> str:
    """The pid written by the process that holds the lock, for the message of one that does not."""
    try:
        return LOCK.read_text().strip() or "?"
    except OSError:
        return "?"


def settled(landing: Path, settle_s: float) -> tuple[list[Path], list[Path]]:
    """(settled, still changing): the batch files in `landing`, split by whether each has kept its size and
    modification time for `settle_s` seconds (waiting at most that long, once, for the youngest)."""
    found = batch_files(landing) if landing.is_dir() else []
    if not found:
        return [], []
    first = {path: _signature(path) for path in found}
    seen = [signature[1] for signature in first.values() if signature]
    youngest = time.time() - max(seen) / 1e9 if seen else settle_s
    time.sleep(max(0.0, settle_s - youngest))
    ready, moving = [], []
    for path in found:
        now = _signature(path)
        # Unchanged since before the wait, and the wait reached settle_s past its last change.
        settled_now = now is not None and now == first[path] and time.time() - now[1] / 1e9 >= settle_s - 0.05
        (ready if settled_now else moving).append(path)
    return ready, [path for path in moving if path.exists()]  # one moved away meanwhile is no batch


def _signature(path: Path) -> tuple[int, int] | None:
    """(size, modification time in ns), or None for a file that is gone."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def accepted_before(batch: Path) -> Path | None:
    """The accepted batch with `batch`'s name, if there is one."""
    accepted = BATCHES / batch.name
    return accepted if accepted.exists() else None


def take(batch: Path, accepted: list[str]) -> Path:
    """Move `batch` from landing into data/batches, journaled first: a kill at any point leaves it in
    landing or, journaled, in data/batches (`recover` gives it back)."""
    Journal(VALIDATING, batch.name, accepted).write()
    BATCHES.mkdir(parents=True, exist_ok=True)
    target = BATCHES / batch.name
    shutil.move(batch, target)  # a rename on one file system: whole or not at all
    return target


def quarantine(batch: Path, folder: Path, reason: str, data_docs: Path | None = None) -> Path:
    """Move `batch` to `folder` with `reason` beside it (NAME.txt) and its Data Docs (NAME.data_docs),
    under a name no earlier batch has there (NAME, else NAME stamped with the time)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder, batch.name)
    if data_docs is not None and data_docs.is_dir():
        shutil.copytree(data_docs, folder / f"{target.name}.data_docs", dirs_exist_ok=True)
    write_text(folder / f"{target.name}.txt", reason.rstrip() + "\n")
    shutil.move(batch, target)  # last: the batch is never in quarantine without its reason
    return target


def give_back(batch: Path, landing: Path) -> Path:
    """Put a batch taken but not judged back in `landing`, for the next run (under a free name)."""
    landing.mkdir(parents=True, exist_ok=True)
    target = _free_name(landing, batch.name)
    shutil.move(batch, target)
    return target


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    if not target.exists() and not (folder / f"{name}.txt").exists():
        return target
    stem, suffix = name.split(".", 1) if "." in name else (name, "")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return folder / (f"{stem}.{stamp}.{suffix}" if suffix else f"{stem}.{stamp}")


def recover(landing: Path) -> Journal | None:
    """After a run that ended without finishing (killed, or failed for the machine's or a server's sake):
    the batch it was validating goes back to landing; the journal of a run killed while training or
    comparing is returned, for this run to go on from there."""
    journal = Journal.read()
    if journal is None:
        return None
    if journal.phase == VALIDATING:
        taken = BATCHES / journal.batch if journal.batch else None
        if taken is not None and taken.exists():
            give_back(taken, landing)
        if not journal.accepted:
            Journal.clear()
            return None
        journal = Journal(TRAINING, accepted=journal.accepted)
        journal.write()
    return journal
