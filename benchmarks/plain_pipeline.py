"""The bare baseline: the default pipeline's work in one plain Python process.

Load the bundled data, split it, fit the same model with the same params, evaluate it on every split
(errors, optimizing metric, p95 latency, size on disk). No Prefect, MLflow, DVC or Great Expectations.
Run from the project root: `python benchmarks/plain_pipeline.py [params.yaml]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
start = time.perf_counter()

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from pydantic import TypeAdapter  # noqa: E402

from components.config import TrainConfig  # noqa: E402
from components.datasets import Degradation, two_source_digits  # noqa: E402
from components.evaluation import error_rate, latency_p95_ms, metric  # noqa: E402
from components.train_dev import SPLITS, SplitPolicy, assign_splits  # noqa: E402
from components.training import predict_classes, train  # noqa: E402

params = yaml.safe_load(Path(sys.argv[1] if len(sys.argv) > 1 else "params.yaml").read_text())
frame = two_source_digits(Degradation(**params["ingest"]["phone"]), seed=params["ingest"]["seed"])
assignment = assign_splits(
    frame["id"].to_numpy(),
    frame["source"].to_numpy(),
    params["data"]["target_sources"],
    SplitPolicy(**{k: v for k, v in params["split"].items() if k != "checks"}),
).names()
features = [c for c in frame.columns if c.startswith("px_")]
data = {
    name: (
        frame.loc[assignment == name, features].to_numpy(np.float32),
        frame.loc[assignment == name, "label"].to_numpy(np.int64),
    )
    for name in SPLITS
}
config = TypeAdapter(TrainConfig).validate_python(
    {**params["train"], "image_shape": params["data"]["image_shape"]}
)
model, history = train(config, *data["train"], 10, validation=data["dev"])
predicted = {name: predict_classes(model, x) for name, (x, _) in data.items()}
errors = {name: error_rate(y, predicted[name]) for name, (_, y) in data.items()}
x_dev, y_dev = data["dev"]
dev_metric = metric(params["evaluate"]["optimizing_metric"], y_dev, predicted["dev"], 10)
latency = latency_p95_ms(
    lambda i: model.predict_on_batch(x_dev[i % len(x_dev) : i % len(x_dev) + 1]),
    n_calls=params["evaluate"]["latency_calls"],
)
with tempfile.TemporaryDirectory() as tmp:
    model.save(Path(tmp) / "model.keras")
    size_mb = (Path(tmp) / "model.keras").stat().st_size / 1e6
print(
    {
        "errors": errors,
        "dev_metric": dev_metric,
        "latency_p95_ms": latency,
        "model_size_mb": size_mb,
        "seconds": time.perf_counter() - start,
    }
)
