"""Nothing lost: a writer killed with SIGKILL mid-write leaves the last good output, and the next write
clears what it left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from pipelines.store.artifacts import atomic_output

SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pipelines.store.artifacts import atomic_output

    with atomic_output(Path(sys.argv[1])) as tmp:
        with open(tmp, "wb") as out:
            out.write(b"new, partial")
            out.flush()
            print("writing", flush=True)
            time.sleep(60)
            out.write(b" and complete")
    """
)


def dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return int(done.stdout)


def test_sigkill_mid_write_keeps_the_last_good_output_and_the_next_write_is_clean(tmp_path):
    target = tmp_path / "model.keras"
    target.write_bytes(b"last good")
    writer = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert writer.stdout.readline().strip() == "writing"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert target.read_bytes() == b"last good"
    [leftover] = tmp_path.glob(".model.tmp-*.keras")  # hidden, and never read
    assert leftover.read_bytes() == b"new, partial"

    with atomic_output(target) as tmp:
        tmp.write_bytes(b"next")
    assert target.read_bytes() == b"next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_a_directory_moved_aside_by_a_killed_writer_comes_back(tmp_path):
    # Killed between moving the last good directory aside and renaming the new one into place.
    target = tmp_path / "splits"
    aside = tmp_path / f".splits.old-{dead_pid()}"
    aside.mkdir()
    (aside / "train.parquet").write_bytes(b"last good")
    with atomic_output(target) as tmp:
        assert (target / "train.parquet").read_bytes() == b"last good"  # back before anything else
        tmp.mkdir()
        (tmp / "train.parquet").write_bytes(b"next")
    assert (target / "train.parquet").read_bytes() == b"next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["splits"]


def test_the_temporary_file_keeps_the_suffixes_its_writer_picks_the_format_from(tmp_path):
    for name, suffix in [("model.keras", ".keras"), ("trial-3.weights.h5", ".weights.h5"), ("t.csv", ".csv")]:
        with atomic_output(tmp_path / name) as tmp:
            assert tmp.name.endswith(suffix) and tmp.name.startswith(f".{name.removesuffix(suffix)}.tmp-")
            tmp.write_text("x")
        assert (tmp_path / name).read_text() == "x"
    (tmp_path / ".trial-3.tmp-999999999.weights.h5").write_text("left by a killed writer")
    with atomic_output(tmp_path / "trial-3.weights.h5") as tmp:
        tmp.write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "t.csv", "trial-3.weights.h5"]
