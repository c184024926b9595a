"""The drift guard for scheduled runs: does a new batch look like the trusted reference?

The reference is kept as a profile (per column: histogram bins and weights from quantiles of a numeric
column, or the share of each value of a categorical one), small enough to version next to the pipeline.
Each column of a new batch is compared with it by Great Expectations' KL-divergence expectation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

# Weight kept for values the reference never saw (below, above or between its bins): without it a single
# new value makes the divergence infinite.
HOLDOUT = 0.01


def reference_profile(frame: pd.DataFrame, columns: Sequence[str], bins: int = 10) -> dict[str, dict]:
    """{column: partition} for each of `columns`: numeric columns as {"bins": edges, "weights": shares} with
    edges at the `bins`-quantiles (equal mass per bin; duplicates dropped), other columns (and numeric ones
    with fewer distinct values than bins, like labels) as {"values": [...], "weights": shares}."""
    import pandas as pd

    profile = {}
    for column in columns:
        values = frame[column].dropna()
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > bins:
            finite = values[np.isfinite(values)].to_numpy(np.float64)
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)))
            weights = np.histogram(finite, edges)[0] / len(finite)
            profile[column] = {"bins": edges.tolist(), "weights": weights.tolist()}
        else:
            shares = values.value_counts(normalize=True).sort_index()
            profile[column] = {
                "values": [_plain(v) for v in shares.index],
                "weights": shares.to_numpy(np.float64).tolist(),
            }
    return profile


def drift_expectations(profile: dict[str, dict], threshold: float = 0.1) -> list[Any]:
    """One KL-divergence expectation per profiled column: the batch's distribution must stay within
    `threshold` (nats) of the reference's."""
    import great_expectations.expectations as gxe

    expectations = []
    for column, partition in profile.items():
        numeric = "bins" in partition
        expectations.append(
            gxe.ExpectColumnKLDivergenceToBeLessThan(
                column=column,
                partition_object=partition,
                threshold=threshold,
                internal_weight_holdout=HOLDOUT if numeric else 0,
                tail_weight_holdout=HOLDOUT if numeric else 0,
                bucketize_data=numeric,
            )
        )
    return expectations


@dataclass(frozen=True)
class Drift:
    """A column whose distribution moved: its KL divergence from the reference (nats; inf when the batch
    has values the reference never had, for a categorical column)."""

    column: str
    divergence: float

    def __str__(self) -> str:
        return f"column '{self.column}': KL divergence {self.divergence:.3f} from the reference"


def drifted(result: gx.core.ExpectationSuiteValidationResult) -> list[Drift]:
    """The failed KL-divergence expectations of a validation result, largest divergence first."""
    found = []
    for item in result.results:
        config = item.expectation_config
        if item.success or config.type != "expect_column_kl_divergence_to_be_less_than":
            continue
        observed = (item.result or {}).get("observed_value")
        found.append(Drift(config.kwargs["column"], float("inf") if observed is None else float(observed)))
    return sorted(found, key=lambda d: -d.divergence)


def _plain(value: Any) -> Any:
    """A JSON-able scalar (numpy integers and floats to Python's)."""
    return value.item() if isinstance(value, np.generic) else value
