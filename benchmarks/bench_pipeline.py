"""Pipeline overhead: the default `dvc repro` against the same work in one plain script, in the same run.

In a temporary copy of the project (its own git repo, DVC cache, MLflow store and Prefect server):
  1. the plain script (benchmarks/plain_pipeline.py), twice; the faster counts;
  2. `dvc repro` from nothing (cold: creates the MLflow store), then `dvc repro --force` twice (warm);
  3. each stage command alone, to split the repro time into stages and DVC's own share;
  4. a no-op `dvc repro`, three times.
Prints the ratio warm-repro / plain (target <= 2.5, goal 1.5) and the no-op time (target < 3 s).
Usage: python benchmarks/bench_pipeline.py [--keep]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STAGES = ("ingest", "validate", "split", "train", "evaluate", "diagnose", "report")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed


def copy_project(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "bench"], cwd=target, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    keep = "--keep" in sys.argv
    work = Path(tempfile.mkdtemp(prefix="mlstrategy-bench-"))
    project = work / "project"
    project.mkdir()
    copy_project(project)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_API_PORT": str(port),
    }
    env.pop("PREFECT_API_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    prefect = str(BIN / "prefect")
    try:
        start = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "python"),
                "-c",
                "from pipelines.orchestration import ensure_prefect_api; "
                "from pipelines.runtime import configure_environment; configure_environment(); "
                "ensure_prefect_api()",
            ],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
        )
        server_start = time.perf_counter() - start
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"

        plain = min(
            timed([str(BIN / "python"), "benchmarks/plain_pipeline.py"], project, env) for _ in range(2)
        )
        dvc = str(BIN / "dvc")
        cold = timed([dvc, "repro"], project, env)
        warm = min(timed([dvc, "repro", "--force"], project, env) for _ in range(2))
        stages = {name: timed([str(BIN / "mlstrategy"), "stage", name], project, env) for name in STAGES}
        noop = statistics.median(timed([dvc, "repro"], project, env) for _ in range(3))
        python_floor = timed([str(BIN / "python"), "-c", "import prefect.flows, pandas"], project, env)
    finally:
        subprocess.run([prefect, "server", "stop"], env=env, capture_output=True, check=False)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

    ratio = warm / plain
    print(f"{'plain script (same work, one process)':44}{plain:8.1f} s")
    print(f"{'dvc repro, cold (first run, new MLflow store)':44}{cold:8.1f} s")
    print(f"{'dvc repro --force, warm':44}{warm:8.1f} s   ratio {ratio:.2f}x plain (target <= 2.5, goal 1.5)")
    print(f"{'no-op dvc repro':44}{noop:8.2f} s   (target < 3 s)")
    print(f"{'Prefect server start (once per machine)':44}{server_start:8.1f} s")
    print("\nwhere the warm repro goes (each stage command alone):")
    for name, seconds in stages.items():
        print(f"  {name:12}{seconds:6.1f} s")
    in_stages = sum(stages.values())
    print(f"  {'dvc itself':12}{warm - in_stages:6.1f} s   (repro minus the stage commands)")
    print(
        f"  process floor: python + import prefect.flows, pandas = {python_floor:.1f} s per stage, "
        f"{len(STAGES) * python_floor:.1f} s per run"
    )
    print(
        json.dumps(
            {
                "plain_s": round(plain, 2),
                "repro_cold_s": round(cold, 2),
                "repro_warm_s": round(warm, 2),
                "ratio": round(ratio, 2),
                "noop_s": round(noop, 2),
                "server_start_s": round(server_start, 2),
                "stages_s": {k: round(v, 2) for k, v in stages.items()},
            }
        )
    )
    if keep:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
