"""Measuring a candidate model as the satisficing metrics see it: latency and size, the same way for the
evaluated model, sweep trials, recipe trials and a scheduled run's challenger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.columns import n_rows, take
from components.evaluation import TRIAL_MEASURES, latency_p95_ms

BYTES_PER_MB = 1_000_000


def latency_of(model, x: Any, calls: int, batch_size: int = 1, blocks: int = 5) -> float:
    """p95 milliseconds per example of predict_on_batch at `batch_size`, over `blocks` runs of `calls`
    calls (the median of their p95s; trials screened against a bound use one block). x: the model's
    inputs (rows, or a table's {input: column})."""
    rows = n_rows(x)
    x = take(x, np.resize(np.arange(rows), max(rows, batch_size)))  # repeat rows when dev is smaller
    usable = max(rows, batch_size) - batch_size + 1

    def predict(i: int) -> None:
        start = (i * batch_size) % usable
        model.predict_on_batch(take(x, slice(start, start + batch_size)))

    return latency_p95_ms(predict, n_calls=calls, per=batch_size, blocks=blocks)


TRIAL_LATENCY_CALLS = 50  # a candidate's bound check (one block); the final model gets the full measurement


def trial_measures(model, x_dev: Any, saved: Path) -> dict[str, float]:
    """The satisficing measures of a candidate (a sweep trial, a recipe trial) saved at `saved`: p95
    latency at batch 1 over one block of calls, size on disk, parameter count."""
    measured = {
        "latency_p95_ms": latency_of(model, x_dev, TRIAL_LATENCY_CALLS, blocks=1),
        "model_size_mb": saved.stat().st_size / BYTES_PER_MB,
        "n_parameters": float(model.count_params()),
    }
    return {name: measured[name] for name in TRIAL_MEASURES}  # a measure named there and not here: KeyError
