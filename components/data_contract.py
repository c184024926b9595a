"""Data quality before anything: the data contract, compiled into a Great Expectations 1.x suite.

The contract says what every raw example must look like; `expectation_suite` turns it into GX
expectations and `violations` turns a GX validation result back into short, readable findings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx

INTEGER_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
FLOAT_TYPES = ["float16", "float32", "float64"]


@dataclass(frozen=True)
class DataContract:
    """What the raw data must satisfy.

    labels: the allowed label values (None: any integer). feature_range: inclusive (low, high) bounds of
    every feature. sources: allowed values of the source column (None: any non-null string).
    """

    id_column: str
    label_column: str
    feature_columns: tuple[str, ...]
    feature_range: tuple[float, float] = (0.0, 1.0)
    labels: tuple[int, ...] | None = None
    source_column: str | None = None
    sources: tuple[str, ...] | None = None

    @property
    def columns(self) -> list[str]:
        key = [self.id_column] + ([self.source_column] if self.source_column else [])
        return [*key, self.label_column, *self.feature_columns]


@dataclass(frozen=True)
class Violation:
    """One failed expectation: what was expected, on which column, how often, and a sample of bad values."""

    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[Any] = field(default_factory=list)
    details: str = ""

    def __str__(self) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        count = ""
        if self.unexpected_count is not None:
            count = f": {self.unexpected_count} bad value(s)"
            if self.unexpected_percent is not None:
                count += f" ({self.unexpected_percent:.2f}%)"
        sample = f", e.g. {self.sample}" if self.sample else ""
        details = f" ({self.details})" if self.details else ""
        return f"{self.expectation} on {where}{count}{sample}{details}"


def expectation_suite(contract: DataContract, name: str = "raw_data") -> gx.ExpectationSuite:
    """The GX suite for the contract: columns and types, label set, no nulls, feature range, unique ids."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    low, high = contract.feature_range
    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=contract.columns, exact_match=False),
        gxe.ExpectColumnValuesToNotBeNull(column=contract.id_column),
        gxe.ExpectColumnValuesToBeUnique(column=contract.id_column),
        gxe.ExpectColumnValuesToNotBeNull(column=contract.label_column),
        gxe.ExpectColumnValuesToBeInTypeList(column=contract.label_column, type_list=INTEGER_TYPES),
    ]
    if contract.labels is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(column=contract.label_column, value_set=list(contract.labels))
        )
    if contract.source_column:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=contract.source_column))
        if contract.sources is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=contract.source_column, value_set=list(contract.sources)
                )
            )
    for column in contract.feature_columns:
        expectations += [
            gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=FLOAT_TYPES + INTEGER_TYPES),
            # A null fails "between" too, so one expectation covers the null and the range checks.
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
        ]
    # The constructor, not add_expectation(): that one compares each new expectation with all the others.
    return gx.ExpectationSuite(name=name, expectations=expectations)


def violations(result: Any, sample_size: int = 5) -> list[Violation]:
    """The failed expectations of a GX `ExpectationSuiteValidationResult`, worst (most bad values) first."""
    found = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        outcome = item.result or {}
        details = ""
        if item.exception_info and item.exception_info.get("raised_exception"):
            details = str(item.exception_info.get("exception_message", "")).splitlines()[0][:200]
        elif "observed_value" in outcome:
            details = f"observed {outcome['observed_value']}"
        found.append(
            Violation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                unexpected_count=outcome.get("unexpected_count"),
                unexpected_percent=outcome.get("unexpected_percent"),
                sample=list(outcome.get("partial_unexpected_list") or [])[:sample_size],
                details=details,
            )
        )
    return sorted(found, key=lambda v: -(v.unexpected_count or 0))


def summarize(found: Sequence[Violation], limit: int = 10) -> str:
    """A short multi-line summary of the first `limit` violations."""
    lines = [f"- {v}" for v in found[:limit]]
    if len(found) > limit:
        lines.append(f"- ... and {len(found) - limit} more")
    return "\n".join(lines)
