"""Pipeline overhead: the default `dvc repro` against the same work in one plain script, in the same run.

In a temporary copy of the project (its own git repo, DVC cache, MLflow store and Prefect server):
  1. the plain script (benchmarks/plain_pipeline.py), twice; the faster counts;
  2. the first `dvc repro` of a fresh clone (it creates the MLflow store and starts the stage server);
  3. `dvc repro --force` twice with the stage server warm (the default, steady state): the ratio;
  4. `dvc repro --force` with MLSTRATEGY_STAGE_SERVER=0 (every stage a cold process);
  5. a no-op `dvc repro`, three times.
The time inside each stage's Prefect flow is read from the flow runs' own log lines of runs 3 and 4, so the
rest (DVC, process start, imports, flow-run creation) is what the orchestration costs.
Prints the ratio warm-repro / plain (target <= 2.5, goal 1.5) and the no-op time (target < 3 s).
Usage: python benchmarks/bench_pipeline.py [--keep]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from pipelines.stages import STAGES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FLOW_LINE = re.compile(
    r"^(\d\d):(\d\d):(\d\d\.\d+) \| INFO +\| Flow run '[^']+' - "
    r"(?:Beginning flow run .* for flow '(?P<stage>\w+)'|Finished in state)"
)


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds and the combined output of a command that must succeed."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return elapsed, done.stdout + done.stderr


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    return run(command, cwd, env)[0]


def flow_seconds(output: str) -> dict[str, float]:
    """Seconds inside each stage's Prefect flow, from the flow runs' log timestamps."""
    seconds: dict[str, float] = {}
    current, began = None, 0.0
    for line in output.splitlines():
        match = FLOW_LINE.match(line)
        if not match:
            continue
        stamp = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
        if match["stage"]:
            current, began = match["stage"], stamp
        elif current:
            seconds[current] = stamp - began
            current = None
    return seconds


def rounded(value: object) -> object:
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return round(value, 2) if isinstance(value, float) else value


def set_params(project: Path, override: dict) -> None:
    """Update sections of the project's params.yaml: {section: {key: value}}."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for section, values in override.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


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


def wait_for_stage_server(project: Path, env: dict[str, str], timeout_s: float = 180) -> None:
    """The first repro starts the stage server in the background; the steady state needs it ready."""
    code = (
        "import sys; from pathlib import Path; from pipelines.running import stage_server; "
        "sys.exit(0 if stage_server.running(Path.cwd()) else 1)"
    )
    deadline = time.monotonic() + timeout_s
    while subprocess.run([str(BIN / "python"), "-c", code], cwd=project, env=env).returncode != 0:
        if time.monotonic() > deadline:
            sys.exit("the stage server did not come up")
        time.sleep(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def isolated_env(work: Path, stage_server: bool) -> dict[str, str]:
    """The environment of a benchmark project: its own Prefect home and port, no tracking URI or API
    inherited from the caller."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_API_PORT": str(free_port()),
        "MLSTRATEGY_STAGE_SERVER": "1" if stage_server else "0",
    }
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI", "MLSTRATEGY_EXECUTION_ID"):
        env.pop(name, None)
    return env


def start_prefect_server(project: Path, env: dict[str, str]) -> float:
    """Start the project's Prefect server and point `env` at it; the seconds it took."""
    code = (
        "from pipelines.running.runtime import configure_environment; configure_environment(); "
        "from pipelines.running.orchestration import ensure_prefect_api; ensure_prefect_api()"
    )
    seconds = timed([str(BIN / "python"), "-c", code], project, env)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{env['PREFECT_SERVER_API_PORT']}/api"
    return seconds


def main() -> None:
    keep = "--keep" in sys.argv
    work = Path(tempfile.mkdtemp(prefix="mlstrategy-bench-"))
    project = work / "project"
    project.mkdir()
    copy_project(project)
    env = isolated_env(work, stage_server=True)
    mlstrategy, dvc = str(BIN / "mlstrategy"), str(BIN / "dvc")
    try:
        server_start = start_prefect_server(project, env)
        cold_env = {**env, "MLSTRATEGY_STAGE_SERVER": "0"}
        plain = min(
            timed([str(BIN / "python"), "benchmarks/plain_pipeline.py"], project, env) for _ in range(2)
        )
        first = timed([dvc, "repro"], project, env)
        wait_for_stage_server(project, env)
        warm, warm_output = min(run([dvc, "repro", "--force"], project, env) for _ in range(2))
        cold, cold_output = run([dvc, "repro", "--force"], project, cold_env)
        noop = statistics.median(timed([dvc, "repro"], project, env) for _ in range(3))
        floor = timed([str(BIN / "python"), "-c", "import prefect.flows, pandas"], project, env)
    finally:
        subprocess.run([mlstrategy, "stage-server", "stop"], cwd=project, env=env, capture_output=True)
        subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)

    ratio = warm / plain
    print(f"{'plain script (same work, one process)':48}{plain:8.1f} s")
    print(
        f"{'dvc repro --force, stage server warm (default)':48}{warm:8.1f} s   "
        f"ratio {ratio:.2f}x plain (target <= 2.5, goal 1.5)"
    )
    print(
        f"{'dvc repro, first run of a fresh clone':48}{first:8.1f} s   ratio {first / plain:.2f}x "
        "(creates the MLflow store; starts the stage server)"
    )
    print(f"{'dvc repro --force, every stage a cold process':48}{cold:8.1f} s   ratio {cold / plain:.2f}x")
    print(f"{'no-op dvc repro':48}{noop:8.2f} s   (target < 3 s)")
    print(f"{'Prefect server start (once per machine)':48}{server_start:8.1f} s")

    stages_warm, stages_cold = flow_seconds(warm_output), flow_seconds(cold_output)
    print("\nwhere the time goes (seconds inside each stage's Prefect flow, from its log; same repros):")
    print(f"  {'stage':20}{'warm':>8}{'cold':>8}")
    for name in STAGES:
        print(f"  {name:20}{stages_warm.get(name, 0):8.1f}{stages_cold.get(name, 0):8.1f}")
    inside_warm, inside_cold = sum(stages_warm.values()), sum(stages_cold.values())
    print(f"  {'all flows':20}{inside_warm:8.1f}{inside_cold:8.1f}")
    print(
        f"  {'outside the flows':20}{warm - inside_warm:8.1f}{cold - inside_cold:8.1f}"
        "   (dvc, process start and imports, flow-run creation)"
    )
    print(f"  a cold stage process needs {floor:.1f} s to start python and import prefect.flows and pandas")
    summary = {
        "plain_s": plain,
        "repro_warm_s": warm,
        "ratio": ratio,
        "repro_first_s": first,
        "repro_cold_s": cold,
        "noop_s": noop,
        "prefect_server_start_s": server_start,
        "flows_warm_s": stages_warm,
        "flows_cold_s": stages_cold,
    }
    print(json.dumps(rounded(summary)))
    if keep:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
