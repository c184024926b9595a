"""Error analysis and data synthesis, through the stages, in temporary copies of the project.

1. Planted label flips: 5% of the dev labels flipped on purpose (to another class, at random) through
   data/relabels.csv, the file `mlstrategy relabel` writes and `ingest` applies; then `split`, `train` and
   `analyze`. The dev rows of reports/relabel_queue.csv are the flagged set. Target: recall of the flips
   >= 80% with precision >= 50%, and the flagged set equal to what cleanlab's find_label_issues gives
   directly (its defaults) on the same probabilities (the trained model's, on dev). Three tasks:
   scikit-learn's digits as one source (the model is good on dev), the default two-source data (the model
   is weak on the phone dev set: about 22% dev error), and the same with the synthesize stage on (the model
   trains on phone-like scans: about 9% dev error).
2. The default data: the rank of the `phone` source and of `blurry` in the analyze stage's tag table.
3. Synthesis on the default data: `synthesize` (enabled, auto degradation, replace) per seed: the domain
   AUC (train vs dev) and the data-mismatch gap (dev - train_dev error of the train config), before and
   after. Target: both fall.

Usage: python benchmarks/bench_error_analysis.py [--seeds 3] [--share 0.05]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_pipeline import (  # noqa: E402
    BIN,
    copy_project,
    isolated_env,
    set_params,
    start_prefect_server,
)
from pipelines.running.runtime import configure_environment  # noqa: E402

configure_environment()


def stages(project: Path, env: dict, *names: str) -> None:
    for name in names:
        done = subprocess.run(
            [str(BIN / "mlstrategy"), "stage", name], cwd=project, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.exit(f"stage {name} failed:\n{done.stderr[-3000:]}")


def one_source_digits(project: Path, env: dict) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame((digits.images / 16.0).reshape(len(digits.images), -1).astype(np.float32))
    frame.columns = [f"px_{i}" for i in frame.columns]
    frame.insert(0, "label", digits.target.astype(np.int64))
    frame.insert(0, "id", [f"digit-{i:04d}" for i in range(len(frame))])
    frame.to_parquet(project / "data/digits.parquet", index=False)
    set_params(
        project, {"data": {"path": "data/digits.parquet", "source_column": None, "target_sources": []}}
    )
    contract = [str(BIN / "mlstrategy"), "contract", "--from", "data/digits.parquet", "--force"]
    subprocess.run(contract, cwd=project, env=env, check=True, capture_output=True)


def planted_flips(project: Path, env: dict, seed: int, share: float) -> dict:
    """Flip `share` of dev's labels, run split/train/analyze: recall, precision, equal to cleanlab's."""
    (project / "data/relabels.csv").write_text("id,corrected\n")
    stages(project, env, "ingest", "validate", "split")
    dev = pd.read_parquet(project / "data/splits/dev.parquet")
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(dev), size=round(share * len(dev)), replace=False)
    wrong = (dev["label"].to_numpy()[flipped] + rng.integers(1, 10, len(flipped))) % 10
    pd.DataFrame({"id": dev["id"].to_numpy()[flipped], "corrected": wrong}).to_csv(
        project / "data/relabels.csv", index=False
    )
    stages(project, env, "ingest", "validate", "split", "synthesize", "train", "analyze")
    queue = pd.read_csv(project / "reports/relabel_queue.csv", dtype={"id": str})
    flagged = set(queue.loc[queue["split"] == "dev", "id"])
    planted = set(dev["id"].to_numpy()[flipped])
    hits = len(flagged & planted)

    from cleanlab.filter import find_label_issues

    from components.training import load_model, predict_probabilities

    noisy = pd.read_parquet(project / "data/splits/dev.parquet")
    pixels = [c for c in noisy.columns if c.startswith("px_")]
    model = load_model(project / "models/model.keras")
    probabilities = predict_probabilities(model, noisy[pixels].to_numpy(np.float32))
    direct = find_label_issues(noisy["label"].to_numpy(), probabilities)
    return {
        "flips": len(planted),
        "flagged": len(flagged),
        "recall": hits / len(planted),
        "precision": hits / max(len(flagged), 1),
        "dev_accuracy": float((probabilities.argmax(axis=1) == noisy["label"].to_numpy()).mean()),
        "same_as_cleanlab": flagged == set(noisy["id"].to_numpy()[direct]),
    }


def synthesis(project: Path, env: dict, seed: int) -> dict:
    set_params(project, {"synthesize": {"enabled": True, "seed": seed}, "train": {"seed": seed}})
    stages(project, env, "synthesize")
    found = json.loads((project / "metrics/synthesize.json").read_text())
    return {
        "domain_auc": found["domain_auc"],
        "data_mismatch": {k: v["data_mismatch"] for k, v in found["data_mismatch"].items()},
        "dev_error": {k: v["dev"] for k, v in found["data_mismatch"].items()},
        "degradation": {k: round(v, 3) for k, v in found["degradation"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--share", type=float, default=0.05, help="share of dev labels flipped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = isolated_env(work, stage_server=False)
        start_prefect_server(work, env)
        try:
            for task in ("digits", "default", "default+synthesis"):
                project = work / task
                project.mkdir()
                copy_project(project)
                set_params(project, {"analyze": {"label_folds": 0}, "mlflow": {"experiment": "bench"}})
                if task == "digits":
                    one_source_digits(project, env)
                if task == "default+synthesis":
                    set_params(project, {"synthesize": {"enabled": True, "measure": False}})
                for seed in range(args.seeds):
                    found = planted_flips(project, env, seed, args.share)
                    print(f"flips {task} seed {seed}: {json.dumps(found)}", flush=True)
            project = work / "default"
            (project / "data/relabels.csv").write_text("id,corrected\n")
            stages(project, env, "ingest", "validate", "split", "synthesize", "train", "analyze")
            tags = [row["tag"] for row in json.loads((project / "metrics/analyze.json").read_text())["tags"]]
            ranks = {tag: tags.index(tag) + 1 if tag in tags else None for tag in ("source=phone", "blurry")}
            print(f"default data: tag ranks {ranks} of {len(tags)}; top 5 {tags[:5]}", flush=True)
            for seed in range(args.seeds):
                print(f"synthesis seed {seed}: {json.dumps(synthesis(project, env, seed))}", flush=True)
        finally:
            subprocess.run([str(BIN / "prefect"), "server", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
