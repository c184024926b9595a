"""Data quality before anything: the data contract, compiled into a Great Expectations 1.x suite.

The contract says what every raw example must look like. Its defaults come from what the pipeline needs
(the id, label and source columns, the label set, the feature range); a contract file (`parse_rules`,
`propose`) adds per-column rules: type, range, allowed values, null share, uniqueness, string length and
pattern. `expectation_suite` turns it into GX expectations and `violations` turns a GX validation result
back into short, readable findings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

INTEGER_TYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
INTEGER_TYPES += [name.capitalize().replace("Uint", "UInt") for name in INTEGER_TYPES]  # nullable ints
FLOAT_TYPES = ["float16", "float32", "float64", "Float32", "Float64"]
TYPES = {
    "integer": INTEGER_TYPES,
    "float": FLOAT_TYPES,
    "number": FLOAT_TYPES + INTEGER_TYPES,
    "string": ["str"],  # by ExpectColumnValuesToBeOfType: GX's type list misses pandas 3's str dtype
    "boolean": ["bool", "boolean"],
}


@dataclass(frozen=True)
class ColumnRule:
    """What one column must satisfy; None leaves that aspect unchecked.

    type: integer, float, number (either), string or boolean. min, max: inclusive bounds of the values
    (which also refuse inf). values: the allowed values. categories: the known values of a categorical
    feature; a new one is a warning or a violation by the contract's `new_categories` policy (the model
    maps it to its out-of-vocabulary bucket). nulls: the largest share of missing values (NaN included),
    0 to 1. unique: no value twice. length: inclusive (low, high) bounds of a string's length in
    characters. pattern: a regular expression every string must match (Python `re.search`).
    """

    type: str | None = None
    min: float | None = None
    max: float | None = None
    values: tuple[Any, ...] | None = None
    categories: tuple[Any, ...] | None = None
    nulls: float = 0.0
    unique: bool = False
    length: tuple[int, int] | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        for name in ("min", "max", "nulls"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not isinstance(self.unique, bool):
            raise ValueError(f"unique must be true or false, got {self.unique!r}")
        if self.type is not None and self.type not in TYPES:
            raise ValueError(f"type must be one of {sorted(TYPES)}, got {self.type!r}")
        if not 0 <= self.nulls <= 1:
            raise ValueError(f"nulls is the largest share of missing values, 0 to 1; got {self.nulls}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.length is not None and not 0 <= self.length[0] <= self.length[1]:
            raise ValueError(f"length must be [low, high] with 0 <= low <= high, got {list(self.length)}")
        if self.pattern is not None:
            import re

            try:
                re.compile(self.pattern)
            except re.error as error:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {error}") from None


RULE_KEYS = tuple(f.name for f in fields(ColumnRule))
NEW_CATEGORIES = "mlstrategy.new_categories"  # the meta key marking a rule's categories expectation


def label_type(labels: Sequence[Any] | None) -> str:
    """The contract type of a label column whose classes are `labels` (None: integers, 0..K-1)."""
    if not labels or all(isinstance(v, int) and not isinstance(v, bool) for v in labels):
        return "integer"
    if all(isinstance(v, bool) for v in labels):
        return "boolean"
    if all(isinstance(v, str) for v in labels):
        return "string"
    return "number"


def parse_rules(spec: Mapping[str, Any] | None) -> tuple[dict[str, ColumnRule], bool]:
    """The per-column rules of a contract file's mapping `{columns: {name: {rule: value}}, extra_columns:
    allow|forbid}`: ({column: ColumnRule}, whether columns the contract does not name are allowed).
    Raises ValueError naming the key (`columns.px_0.mni`) for anything it does not understand."""
    spec = dict(spec or {})
    unknown = set(spec) - {"columns", "extra_columns"}
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: unknown key (known: columns, extra_columns)")
    extra = spec.get("extra_columns", "allow")
    if extra not in ("allow", "forbid"):
        raise ValueError(f"extra_columns: must be allow or forbid, got {extra!r}")
    columns = spec.get("columns") or {}
    if not isinstance(columns, Mapping):
        raise ValueError("columns: must map each column name to its rules")
    rules = {}
    for name, rule in columns.items():
        where = f"columns.{name}"
        if not isinstance(rule, Mapping):
            raise ValueError(f"{where}: must be a mapping of rules such as {{type: float, min: 0, max: 1}}")
        for key in rule:
            if key not in RULE_KEYS:
                raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(RULE_KEYS)})")
        try:
            rules[str(name)] = ColumnRule(
                **{
                    key: tuple(value)
                    if key in ("values", "categories", "length") and value is not None
                    else value
                    for key, value in rule.items()
                }
            )
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from None
    return rules, extra == "allow"


@dataclass(frozen=True)
class DataContract:
    """What the raw data must satisfy.

    labels: the allowed label values, of any one scalar type (None: any integer). feature_range: inclusive
    (low, high) bounds of every feature the contract file does not give rules of, unless `kinds` says
    what the table's features are ({column: kind}; then a feature without a rule may be anything its kind
    reads, missing included). sources: allowed values of the source column (None: any non-null string).
    min_rows_per_class: fewest examples each present class must have (so that it can reach train, dev
    and test); the label column must also hold at least two classes. rules: the contract file's
    per-column rules; a feature's rule replaces the default (a number in feature_range, never null); the
    id, label and source columns keep what the pipeline needs and add theirs. extra_columns: whether
    columns that neither the pipeline nor the rules name may be present. image_shape: (height, width)
    when rows are images: the number of features must match it. date_formats: {column: strftime format}
    every value of a date column stored as text must match. new_categories: warn or fail, for values
    outside a rule's categories.
    """

    id_column: str
    label_column: str
    feature_columns: tuple[str, ...]
    feature_range: tuple[float, float] = (0.0, 1.0)
    labels: tuple[Any, ...] | None = None
    source_column: str | None = None
    sources: tuple[str, ...] | None = None
    min_rows_per_class: int = 1
    rules: Mapping[str, ColumnRule] = field(default_factory=dict)
    extra_columns: bool = True
    image_shape: tuple[int, ...] | None = None
    kinds: Mapping[str, str] | None = None
    date_formats: Mapping[str, str] = field(default_factory=dict)
    new_categories: str = "warn"

    @property
    def key_columns(self) -> list[str]:
        return [self.id_column] + ([self.source_column] if self.source_column else []) + [self.label_column]

    @property
    def columns(self) -> list[str]:
        """Every column the data must have."""
        named = [*self.key_columns, *self.feature_columns]
        return named + [c for c in self.rules if c not in named]

    def rule(self, column: str) -> ColumnRule:
        """The column's rule: its own from the contract file, else the default for a feature."""
        if column in self.rules:
            return self.rules[column]
        if self.kinds is not None:
            return ColumnRule(type="number" if self.kinds.get(column) == "numeric" else None, nulls=1.0)
        low, high = self.feature_range
        return ColumnRule(type="number", min=low, max=high)


def expectation_suite(contract: DataContract, name: str = "raw_data") -> gx.ExpectationSuite:
    """The GX suite for the contract: columns and types, label set, at least two classes, null shares
    (NaN included), ranges (which also refuse inf), unique ids, the contract file's rules. Rows per class
    and image shape: `violations`."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    id_, label, source = contract.id_column, contract.label_column, contract.source_column
    expectations: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=contract.columns, exact_match=not contract.extra_columns),
        gxe.ExpectColumnValuesToNotBeNull(column=id_),
        gxe.ExpectColumnValuesToBeUnique(column=id_),
        gxe.ExpectColumnValuesToNotBeNull(column=label),
        *_rule_expectations(label, ColumnRule(type=label_type(contract.labels))),
        gxe.ExpectColumnUniqueValueCountToBeBetween(column=label, min_value=2),
    ]
    if contract.labels is not None:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column=label, value_set=list(contract.labels)))
    if source:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=source))
        if contract.sources is not None:
            expectations.append(
                gxe.ExpectColumnValuesToBeInSet(column=source, value_set=list(contract.sources))
            )
    for column in [
        *contract.feature_columns,
        *(c for c in contract.rules if c not in contract.feature_columns),
    ]:
        expectations += _rule_expectations(column, contract.rule(column))
    for column, date_format in contract.date_formats.items():
        expectations.append(
            gxe.ExpectColumnValuesToMatchStrftimeFormat(column=column, strftime_format=date_format)
        )
    # The key columns' own rules may repeat what the pipeline needs: keep one of each.
    unique = {(e.expectation_type, repr(sorted(e.configuration.kwargs.items()))): e for e in expectations}
    # The constructor, not add_expectation(): that one compares each new expectation with all the others.
    return gx.ExpectationSuite(name=name, expectations=list(unique.values()))


def _rule_expectations(column: str, rule: ColumnRule) -> list[Any]:
    import great_expectations.expectations as gxe

    found: list[Any] = []
    if rule.type == "string":
        found.append(gxe.ExpectColumnValuesToBeOfType(column=column, type_="str"))
    elif rule.type:
        found.append(gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=TYPES[rule.type]))
    # GX skips nulls (NaN too) in its value checks: they need their own.
    if rule.nulls == 0:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    elif rule.nulls < 1:
        found.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=1 - rule.nulls))
    # A range as the column's min and max: one pass, about 10x faster than the row-wise "values between"
    # on wide data; `violations` finds the offending rows when one fails.
    if rule.min is not None:
        found.append(gxe.ExpectColumnMinToBeBetween(column=column, min_value=rule.min))
    if rule.max is not None:
        found.append(gxe.ExpectColumnMaxToBeBetween(column=column, max_value=rule.max))
    if rule.values is not None:
        found.append(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(rule.values)))
    if rule.categories is not None:
        found.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=list(rule.categories), meta={NEW_CATEGORIES: True}
            )
        )
    if rule.unique:
        found.append(gxe.ExpectColumnValuesToBeUnique(column=column))
    if rule.length is not None:
        low, high = rule.length
        found.append(gxe.ExpectColumnValueLengthsToBeBetween(column=column, min_value=low, max_value=high))
    if rule.pattern is not None:
        found.append(gxe.ExpectColumnValuesToMatchRegex(column=column, regex=rule.pattern))
    return found


@dataclass(frozen=True)
class Violation:
    """One failed expectation: what was expected, on which column, how often, and a sample of bad values."""

    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[Any] = field(default_factory=list)
    details: str = ""
    rows: list[int] = field(default_factory=list)  # 0-based row numbers of a sample of the bad values
    ids: list[Any] = field(default_factory=list)  # the examples' ids at those rows

    def __str__(self) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        count = ""
        if self.unexpected_count is not None:
            count = f": {self.unexpected_count} bad value(s)"
            if self.unexpected_percent is not None:
                count += f" ({self.unexpected_percent:.2f}%)"
        sample = f", e.g. {self.sample}" if self.sample else ""
        rows = (
            f" at rows {self.rows} (0-based" + (f"; ids {self.ids})" if self.ids else ")")
            if self.rows
            else ""
        )
        details = f" ({self.details})" if self.details else ""
        return f"{self.expectation} on {where}{count}{sample}{rows}{details}"


RANGE_CHECKS = ("expect_column_min_to_be_between", "expect_column_max_to_be_between")


def violations(
    result: Any, frame: pd.DataFrame, contract: DataContract, sample_size: int = 5
) -> list[Violation]:
    """What is wrong with `frame` (the validated pandas frame): the failed expectations of the GX
    `ExpectationSuiteValidationResult` (a failed range as one finding per column, with its bad values and
    rows), the classes with too few rows and a feature count that does not hold the image shape; worst
    (most bad values) first."""
    import pandas as pd

    found, out_of_range = [], set()
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        new_categories = bool((config.meta or {}).get(NEW_CATEGORIES))
        if new_categories and contract.new_categories == "warn":
            continue  # warnings: `new_categories`
        if config.type in RANGE_CHECKS:
            # A missing or non-numeric column is reported by the column-set and type checks already.
            column = config.kwargs["column"]
            if column in frame.columns and pd.api.types.is_numeric_dtype(frame[column]):
                out_of_range.add(column)
            continue
        outcome = item.result or {}
        details = ""
        if item.exception_info and item.exception_info.get("raised_exception"):
            details = str(item.exception_info.get("exception_message", "")).splitlines()[0][:200]
        elif config.type == "expect_table_columns_to_match_set":
            details = _column_difference(list(frame.columns), contract)
        elif "observed_value" in outcome:
            details = f"observed {outcome['observed_value']}"
        elif new_categories:
            details = "categories the contract does not know (data.new_categories: fail)"
        found.append(
            Violation(
                expectation=config.type,
                column=config.kwargs.get("column"),
                unexpected_count=outcome.get("unexpected_count"),
                unexpected_percent=outcome.get("unexpected_percent"),
                sample=list(outcome.get("partial_unexpected_list") or [])[:sample_size],
                details=details,
                rows=[int(i) for i in list(outcome.get("partial_unexpected_index_list") or [])[:sample_size]],
            )
        )
    found += [_out_of_range(frame[c], contract.rule(c), sample_size) for c in sorted(out_of_range)]
    if contract.id_column in frame:  # rows of a stage's table mean little to a person; their ids do
        ids = frame[contract.id_column]
        found = [replace(v, ids=[_plain(ids.iloc[r]) for r in v.rows if r < len(ids)]) for v in found]
    if contract.label_column in frame:
        found += filter(None, [rare_classes(frame[contract.label_column], contract)])
    found += filter(None, [_image_shape(contract)])
    return sorted(found, key=lambda v: -(v.unexpected_count or 0))


def new_categories(result: Any, sample_size: int = 5) -> list[Violation]:
    """The categorical columns of the validated batch holding values their rule's categories do not know
    (a warning under new_categories: warn; the model reads them as its out-of-vocabulary bucket)."""
    found = []
    for item in result.results:
        config = item.expectation_config
        if item.success or not (config.meta or {}).get(NEW_CATEGORIES):
            continue
        outcome = item.result or {}
        found.append(
            Violation(
                expectation="new categories",
                column=config.kwargs.get("column"),
                unexpected_count=outcome.get("unexpected_count"),
                unexpected_percent=outcome.get("unexpected_percent"),
                sample=sorted({str(v) for v in outcome.get("partial_unexpected_list") or []})[:sample_size],
                details="read as the model's out-of-vocabulary category",
            )
        )
    return found


def _column_difference(present: list[str], contract: DataContract) -> str:
    missing = [c for c in contract.columns if c not in present]
    unexpected = [] if contract.extra_columns else [c for c in present if c not in contract.columns]
    return "; ".join(
        f"{what} {names[:10]}" + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        for what, names in (("missing", missing), ("not in the contract", unexpected))
        if names
    )


def _out_of_range(values: pd.Series, rule: ColumnRule, sample_size: int) -> Violation:
    low = -math.inf if rule.min is None else rule.min
    high = math.inf if rule.max is None else rule.max
    bad = values.notna() & ~values.between(low, high)
    positions = bad.to_numpy().nonzero()[0]
    return Violation(
        expectation=f"values in [{low}, {high}]",
        column=str(values.name),
        unexpected_count=len(positions),
        unexpected_percent=100 * len(positions) / max(len(values), 1),
        sample=values.iloc[positions[:sample_size]].tolist(),
        rows=positions[:sample_size].tolist(),
    )


def rare_classes(labels: pd.Series, contract: DataContract) -> Violation | None:
    """The classes with fewer than `min_rows_per_class` examples, as one violation (None when there are
    none). Checked outside the GX suite: GX has no core expectation on the count of each value."""
    import pandas as pd

    counts = pd.Series(labels).value_counts()
    rare = counts[counts < contract.min_rows_per_class].sort_values()
    if rare.empty:
        return None
    return Violation(
        expectation="min_rows_per_class",
        column=contract.label_column,
        unexpected_count=len(rare),
        unexpected_percent=None,
        sample=[f"{label}: {count}" for label, count in rare.head(5).items()],
        details=f"each class needs {contract.min_rows_per_class} examples or more to reach train, dev, test",
    )


def _image_shape(contract: DataContract) -> Violation | None:
    if contract.image_shape is None:
        return None
    pixels = math.prod(contract.image_shape)
    if pixels == len(contract.feature_columns):
        return None
    return Violation(
        expectation="image_shape",
        column=None,
        unexpected_count=None,
        unexpected_percent=None,
        details=f"images of {' x '.join(map(str, contract.image_shape))} need {pixels} feature columns, "
        f"the data has "
        f"{len(contract.feature_columns)}",
    )


def propose(
    frame: pd.DataFrame,
    unique: Sequence[str] = (),
    max_values: int = 20,
    kinds: Mapping[str, str] | None = None,
    slack: float = 0.0,
    max_categories: int = 1000,
) -> dict[str, Any]:
    """A contract file's mapping proposed from a trusted snapshot, for a person to edit: each column's type
    and null share as seen; with at most `max_values` distinct values, integers' and strings' value set;
    else numbers' observed range (floats to 3 significant digits, outward) and strings' length range.
    `unique`: the columns (ids) whose values must never repeat.

    kinds: a table's feature kinds ({column: kind}, `components.columns.infer_kind`): a categorical
    feature gets its known `categories` (up to `max_categories`; a new one is a warning by default)
    instead of a closed value set, a date its type only (params.yaml data.date_formats holds its format),
    and so does a column the model ignores; an id (`unique`) and free text get no range and no lengths.
    slack: how much room to leave for new batches: ranges widened by this share of their span on each
    side (not below 0 for a column that never was), null shares raised by as much as they are, 0.1 at
    least, where the snapshot had any."""
    kinds = kinds or {}
    columns: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        values = frame[name]
        present = values.dropna()
        kind = kinds.get(str(name))
        rule: dict[str, Any] = {"type": _type_of(values)}
        share = 1 - len(present) / len(values) if len(values) else 0.0
        if share:
            share = min(1.0, share + max(share, 0.1)) if slack else share
            # Round up so that the snapshot itself passes.
            rule["nulls"] = math.ceil(1000 * share) / 1000
        few = present.nunique() <= max_values and name not in unique
        if name in unique or kind == "text":
            pass  # new ids and new texts are longer or larger than the snapshot's: no range, no lengths
        elif kind == "categorical":
            if present.nunique() <= max_categories:
                rule["categories"] = sorted(_plain(v) for v in present.unique())
        elif kind in ("date", "ignore"):
            pass  # a date's format is params'; a column the model ignores only keeps its type
        elif rule["type"] in ("integer", "string") and few and kind != "text":
            rule["values"] = sorted(_plain(v) for v in present.unique())
        elif rule["type"] in ("integer", "float") and len(present):
            low, high = float(present.min()), float(present.max())
            room = slack * (high - low)
            low, high = (max(low - room, 0.0) if low >= 0 else low - room), high + room
            if rule["type"] == "integer":
                rule["min"], rule["max"] = math.floor(low), math.ceil(high)
            else:
                rule["min"], rule["max"] = _round_out(low, up=False), _round_out(high, up=True)
        elif rule["type"] == "string" and len(present):
            lengths = present.astype(str).str.len()
            rule["length"] = [int(lengths.min()), int(lengths.max())]
        if name in unique:
            rule["unique"] = True
        columns[str(name)] = {k: v for k, v in rule.items() if v is not None}
    return {"extra_columns": "forbid", "columns": columns}


def _type_of(values: pd.Series) -> str | None:
    import pandas as pd

    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_float_dtype(values):
        return "float"
    if pd.api.types.is_string_dtype(values):
        return "string"
    return None


def _round_out(value: float, up: bool) -> float:
    """`value` to 3 significant digits, rounded away from the inside of the range."""
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return value
    exponent = math.floor(math.log10(abs(value))) - 2
    steps = (math.ceil if up else math.floor)(value / 10**exponent)
    return round(steps * 10**exponent, max(0, -exponent))


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value YAML writes plainly."""
    return value.item() if hasattr(value, "item") else value


def summarize(found: Sequence[object], limit: int = 10) -> str:
    """A short multi-line summary of the first `limit` findings (violations, drifted columns)."""
    lines = [f"- {v}" for v in found[:limit]]
    if len(found) > limit:
        lines.append(f"- ... and {len(found) - limit} more")
    return "\n".join(lines)
