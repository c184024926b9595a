"""A scheduled run with no new data: `mlstrategy serve --once` with an empty landing folder, in a cold process
against a running Prefect server (target: under 15 s, nothing retrained). The bare baseline, in the same
run: a cold Python process running an empty Prefect flow against the same server, the floor of any
Prefect-orchestrated job.

Usage: python benchmarks/bench_scheduled.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from bench_pipeline import BIN, copy_project, isolated_env, start_prefect_server, timed

BARE_FLOW = "from prefect import flow\n@flow(name='bare')\ndef bare():\n    return None\nbare()\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstrategy-bench-"))
    project = work / "project"
    project.mkdir()
    copy_project(project)
    (project / "data/landing").mkdir()
    env = isolated_env(work, stage_server=False)
    mlstrategy = str(BIN / "mlstrategy")

    def outputs() -> dict[str, float]:
        """Every file a stage writes (models, data versions), with its modification time."""
        found = [
            *project.glob("models/**/*"),
            *project.glob("data/raw/**/*"),
            *project.glob("data/ingested/*"),
        ]
        return {str(p): p.stat().st_mtime for p in found if p.is_file()}

    try:
        start_prefect_server(project, env)
        before = outputs()
        bare, scheduled = [], []
        for _ in range(args.repeats):
            bare.append(timed([str(BIN / "python"), "-c", BARE_FLOW], project, env))
            scheduled.append(timed([mlstrategy, "serve", "--once"], project, env))
        retrained = outputs() != before
    finally:
        subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    bare_s, scheduled_s = statistics.median(bare), statistics.median(scheduled)
    each = ", ".join(f"{s:.1f}" for s in bare)
    print(f"{'bare Prefect flow, cold process (median)':48}{bare_s:8.1f} s   ({each})")
    print(
        f"{'scheduled run, no new data (median)':48}{scheduled_s:8.1f} s   "
        f"({', '.join(f'{s:.1f}' for s in scheduled)}; first one creates the MLflow store)"
    )
    print(
        f"ratio {scheduled_s / bare_s:.2f}x the bare flow; retrained anything: "
        f"{'yes' if retrained else 'no'} (targets: < 15 s, nothing retrained)"
    )


if __name__ == "__main__":
    main()
