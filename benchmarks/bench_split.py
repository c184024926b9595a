"""The split stage at scale: time and peak memory against a bare Parquet copy, in the same run.

In a temporary copy of the project with its own Prefect server:
  1. 1,000,000 rows x 50 float64 features (+ id, label, source; 30% of the rows from the target source)
     as data/raw/dataset.parquet; `mlstrategy stage split` as a cold process (target < 30 s, < 2 GB peak);
     the baseline reads the same file whole with pyarrow and writes it back once;
  2. the same data plus 10% new rows, split again: moved_since_last must be 0;
  3. 10,000,000 rows of ids (+ label, source and two features): the split must not run out of memory.
Prints rows/s, peak RSS and the ratios against the baseline.
Usage: python benchmarks/bench_split.py [--rows N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from bench_pipeline import BIN, copy_project, flow_seconds, isolated_env, start_prefect_server

CHUNK = 1_000_000
# Runs a command and prints its wall time and its peak RSS (the largest of the process and its children).
MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
elapsed = time.perf_counter() - start
sys.stderr.write(done.stdout[-20000:] + done.stderr[-20000:])
peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"MEASURED {elapsed} {peak_mb} {done.returncode}")
"""
BASELINE = """
import sys, pyarrow.parquet as pq
pq.write_table(pq.read_table(sys.argv[1]), sys.argv[2])
"""


def write_rows(path: Path, rows: int, features: int, start: int = 0, seed: int = 0) -> None:
    """`rows` examples with ids ex-<start>.., labels 0..9, sources web/app (30% app), float64 features."""
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(path, _schema(features)) as writer:
        for first in range(start, start + rows, CHUNK):
            n = min(CHUNK, start + rows - first)
            numbers = pa.array(np.arange(first, first + n)).cast(pa.string())
            columns = {
                "id": pc.binary_join_element_wise("ex-", numbers, ""),
                "label": rng.integers(0, 10, n),
                "source": np.where(rng.random(n) < 0.3, "app", "web"),
            }
            values = rng.random((n, features))
            columns.update({f"f{j}": values[:, j] for j in range(features)})
            writer.write_table(pa.table(columns, schema=_schema(features)))


def _schema(features: int) -> pa.Schema:
    fields = [("id", pa.string()), ("label", pa.int64()), ("source", pa.string())]
    return pa.schema(fields + [(f"f{j}", pa.float64()) for j in range(features)])


def append(path: Path, extra: Path) -> None:
    combined = path.with_suffix(".tmp.parquet")
    with pq.ParquetWriter(combined, pq.read_schema(path)) as writer:
        for source in (path, extra):
            for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK):
                writer.write_batch(batch)
    combined.replace(path)


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    done = subprocess.run(
        [str(BIN / "python"), "-c", MEASURE, *command], cwd=cwd, env=env, capture_output=True, text=True
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("MEASURED"))
    elapsed, peak_mb, code = line.split()[1:]
    if int(code) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-5000:]}")
    return float(elapsed), float(peak_mb), done.stderr


def split_stage(project: Path, env: dict[str, str]) -> dict:
    elapsed, peak, output = measure([str(BIN / "mlstrategy"), "stage", "split"], project, env)
    found = json.loads((project / "metrics/split.json").read_text())
    return {"s": elapsed, "flow_s": flow_seconds(output).get("split", 0.0), "peak_mb": peak, "split": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ids", type=int, default=10_000_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlstrategy-bench-split-"))
    project = work / "project"
    project.mkdir()
    copy_project(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"].update(target_sources=["app"], feature_range=[0.0, 1.0])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw = project / "data/raw/dataset.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    (project / "metrics").mkdir(exist_ok=True)
    (project / "metrics/validation.json").write_text('{"success": true}')
    env = isolated_env(work, stage_server=False)
    try:
        start_prefect_server(project, env)
        print(f"writing {args.rows:,} rows x 50 features ...", flush=True)
        write_rows(raw, args.rows, 50)
        size_mb = raw.stat().st_size / 1e6
        base_s, base_mb, _ = measure(
            [str(BIN / "python"), "-c", BASELINE, str(raw), str(work / "copy.parquet")], project, env
        )
        big = split_stage(project, env)
        write_rows(work / "more.parquet", args.rows // 10, 50, start=args.rows, seed=1)
        append(raw, work / "more.parquet")
        grown = split_stage(project, env)
        print(f"writing {args.ids:,} rows of ids ...", flush=True)
        shutil.rmtree(project / "data/splits", ignore_errors=True)
        (project / "data/assignment.parquet").unlink()
        write_rows(raw, args.ids, 2, seed=2)
        ids = split_stage(project, env)
    finally:
        subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = args.rows
    print(f"\n{rows:,} rows x 50 float64 features ({size_mb:.0f} MB Parquet)")
    print(f"  {'baseline: read whole + write once (pyarrow)':52}{base_s:7.1f} s {base_mb:7.0f} MB peak")
    print(
        f"  {'mlstrategy stage split (cold process)':52}{big['s']:7.1f} s {big['peak_mb']:7.0f} MB peak   "
        f"{rows / big['s']:,.0f} rows/s; {big['flow_s']:.1f} s in the flow"
    )
    print(
        f"  ratio to baseline: time {big['s'] / base_s:.1f}x, memory {big['peak_mb'] / base_mb:.2f}x   "
        "(target: < 30 s and < 2,000 MB)"
    )
    print(f"  sizes {big['split']['sizes']}; policy: {big['split']['policy']}")
    print(
        f"  + 10% new rows: moved_since_last = {grown['split']['moved_since_last']} (must be 0), "
        f"kept {grown['split']['kept_from_last']:,}; {grown['s']:.1f} s"
    )
    print(
        f"{args.ids:,} rows of ids: {ids['s']:.1f} s, {ids['peak_mb']:.0f} MB peak, "
        f"{args.ids / ids['s']:,.0f} rows/s; sizes {ids['split']['sizes']}"
    )
    summary = {
        "rows": rows,
        "baseline_s": base_s,
        "baseline_peak_mb": base_mb,
        "split_s": big["s"],
        "split_flow_s": big["flow_s"],
        "split_peak_mb": big["peak_mb"],
        "moved_after_append": grown["split"]["moved_since_last"],
        "ids_rows": args.ids,
        "ids_s": ids["s"],
        "ids_peak_mb": ids["peak_mb"],
    }
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in summary.items()}))
    if args.keep:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
