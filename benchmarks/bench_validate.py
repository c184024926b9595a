"""Validation at scale: the validate stage's GX checkpoint on 1,000,000 rows x 50 feature columns, with the
per-column contract `mlstrategy contract --from` proposes for the table (type, range, value set, lengths).

Target: under 60 s and under 2 GB peak memory (this process's peak resident set, which includes the
frame itself: 1M x 50 float32 is 200 MB). Also printed: rows per second, and the bare baseline in the same
run: reading the Parquet file and the same checks done by hand with numpy (the floor any validator pays).

Usage: python benchmarks/bench_validate.py [--rows 1000000] [--columns 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.running.runtime import configure_environment  # noqa: E402

configure_environment()


def make_table(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.random((rows, columns), dtype=np.float32), columns=[f"f{i}" for i in range(columns)]
    )
    frame.insert(0, "label", rng.integers(0, 10, rows))
    frame.insert(0, "source", np.where(rng.random(rows) < 0.5, "scan", "phone"))
    frame.insert(0, "id", [f"row-{i:07d}" for i in range(rows)])
    frame.to_parquet(path, index=False)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--columns", type=int, default=50)
    args = parser.parse_args()
    from components.data_contract import expectation_suite, violations
    from pipelines.stages.validate import contract_for, run_checkpoint
    from pipelines.store.contract import write_contract
    from pipelines.store.params import Params

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.parquet"
        make_table(path, args.rows, args.columns)
        print(
            f"table: {args.rows:,} rows x {args.columns} features, {path.stat().st_size / 1e6:.0f} MB Parquet"
        )
        params = Params.model_validate({"data": {"labels": list(range(10)), "image_shape": None}})
        contract_file = Path(tmp) / "contract.yaml"
        write_contract(params, path, contract_file)

        started = time.perf_counter()
        frame = pd.read_parquet(path)
        x = frame[[f"f{i}" for i in range(args.columns)]].to_numpy()
        bare_ok = bool(
            np.isfinite(x).all()
            and ((x >= 0) & (x <= 1)).all()
            and frame["id"].is_unique
            and frame["label"].isin(range(10)).all()
        )
        bare = time.perf_counter() - started
        del x
        print(f"bare baseline (read + numpy checks): {bare:.1f} s, ok={bare_ok}")

        started = time.perf_counter()
        frame = pd.read_parquet(path)
        contract = contract_for(frame, params, contract_file)
        result = run_checkpoint.fn(frame, expectation_suite(contract), Path(tmp) / "docs")
        found = violations(result, frame, contract)
        seconds = time.perf_counter() - started
        print(
            f"validate: {seconds:.1f} s for {len(result.results)} expectations, {len(found)} violations; "
            f"{args.rows / seconds:,.0f} rows/s; {seconds / bare:.1f}x the bare baseline; "
            f"peak memory {peak_mb():,.0f} MB (targets: < 60 s, < 2,048 MB)"
        )


if __name__ == "__main__":
    main()
