"""A user's table as it is: what kind each column is, and how its raw values become the model's inputs.

`infer_kind` reads one column the way a person would (numbers, categories, yes/no flags, dates, free
text, ids) and says why. `model_inputs` turns raw rows (a pandas frame as read from the user's file) into
the arrays a table model takes, one per feature column; it only casts (numbers to float with NaN for
missing, categories to text, dates to days since 1970), so that everything learned from the data (means,
vocabularies, scales) lives in the model itself and training and serving cannot drift apart. The same
function serves training, evaluation and the registered MLflow model. Labels are encoded against the
class list as it is written in params (`encode_labels`), and decoded back to the user's own values.

Pure pandas and NumPy; no Keras, no files.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Kind = Literal["numeric", "categorical", "boolean", "date", "text", "ignore"]
KINDS: tuple[str, ...] = ("numeric", "categorical", "boolean", "date", "text", "ignore")

# The text a missing category becomes: a category of its own, apart from the values never seen in train.
MISSING = ""
# Spellings of a flag; a column whose values are one such pair (any case) is boolean.
TRUE_WORDS = frozenset({"true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"false", "no", "n", "f"})
BOOLEAN_PAIRS = (("false", "true"), ("no", "yes"), ("n", "y"), ("f", "t"))
# Values that mark a missing number in exported tables (UCI's '?', spreadsheets' 'N/A', ...).
NA_MARKERS = frozenset({"?", "-", "--", ".", "na", "n/a", "nan", "null", "none", "missing", "#n/a"})
EPOCH = pd.Timestamp("1970-01-01")
MAX_TREE_CATEGORIES = 255  # scikit-learn's gradient-boosted trees bin at most this many categories


@dataclass(frozen=True)
class Inferred:
    """What `infer_kind` decided for a column, and why, in words for the person reading `init`'s table.
    date_format: the strftime format of a date column; na_values: markers of missing values it found."""

    kind: Kind
    why: str
    date_format: str | None = None
    na_values: tuple[str, ...] = ()
    missing: float = 0.0  # share of missing values


class MixedColumn(ValueError):
    """A column of numbers or dates with a few values that are neither (a typo, a unit, a note)."""

    def __init__(self, column: str, what: str, rows: list[int], values: list[Any]) -> None:
        self.column, self.rows, self.values = column, rows, values
        shown = ", ".join(f"row {r}: {v!r}" for r, v in zip(rows[:5], values[:5], strict=False))
        super().__init__(
            f"column {column!r} holds {what} but also {len(rows)} value(s) that are not ({shown})"
        )


def infer_kind(
    values: pd.Series,
    max_level_share: float = 0.05,
    max_integer_levels: int = 10,
    id_share: float = 0.5,
    text_words: float = 3.0,
    min_text_values: int = 50,
) -> Inferred:
    """The kind of one column from its values (n,), as read from the file.

    Rules, in order: all missing or one value: ignore (nothing to learn). bool values, or one pair of
    flag words (yes/no, true/false, y/n, t/f, any case): boolean. datetime values, or strings that all
    parse with one date format: date. Numbers, or strings that all parse as numbers (besides markers of
    missing values such as '?'): numeric, unless integers with at most `max_integer_levels` values and
    fewer than `max_level_share` of the rows distinct (categorical: codes such as a class 1, 2, 3), or
    integers that are an id (ignore: each distinct, and numbering the rows, in increasing order, or in a
    column named like an id: PassengerId, customer_id). Other strings: text when they average
    `text_words` words or more over more than `min_text_values` distinct values ("Some college" in a few
    values is a category), an id when more than `id_share` of them are distinct (ignore), else
    categorical. Raises MixedColumn for numbers or dates with a few other values mixed in.
    """
    name = str(values.name)
    present = values.dropna()
    missing = 1 - len(present) / max(len(values), 1)
    note = f", {missing:.0%} missing" if missing else ""
    if present.empty:
        return Inferred("ignore", "entirely missing: nothing to learn from", missing=missing)
    if pd.api.types.is_bool_dtype(present) or _is_flags(present):
        return Inferred("boolean", f"two values{note}", missing=missing)
    distinct = present.nunique()
    if distinct == 1:
        return Inferred("ignore", f"one value ({present.iloc[0]!r}) in every row: constant", missing=missing)
    if pd.api.types.is_datetime64_any_dtype(present):
        return Inferred("date", f"dates{note}", missing=missing)
    if pd.api.types.is_numeric_dtype(present):
        return _numeric(present, missing, note, max_level_share, max_integer_levels, looks_like_id(name))
    text = present.astype(str).str.strip()
    lowered = text.str.lower()
    markers = lowered.isin(NA_MARKERS)
    numbers = pd.to_numeric(text.where(~markers), errors="coerce")
    parsed = numbers.notna()
    if parsed.any() and parsed.sum() >= 0.5 * len(text):
        others = ~parsed & ~markers
        if others.any():
            raise MixedColumn(name, "numbers", _rows(others), text[others].tolist())
        na = tuple(sorted(set(text[markers])))
        share = 1 - parsed.sum() / len(values)
        found = _numeric(
            numbers[parsed],
            share,
            f", {share:.0%} missing" if share else "",
            max_level_share,
            max_integer_levels,
            looks_like_id(name),
        )
        if na:
            found = Inferred(
                found.kind,
                found.why + f" (missing marked {', '.join(map(repr, na))})",
                na_values=na,
                missing=share,
            )
        return found
    date_format = guess_date_format(text)
    if date_format is not None:
        parsed_dates = pd.to_datetime(text, format=date_format, errors="coerce")
        bad = parsed_dates.isna() & ~markers
        if bad.sum() == 0:
            na = tuple(sorted(set(text[markers])))
            return Inferred(
                "date",
                f"dates as {date_format}{note}",
                date_format=date_format,
                na_values=na,
                missing=missing,
            )
        if bad.sum() <= 0.1 * len(text):
            raise MixedColumn(name, f"dates ({date_format})", _rows(bad), text[bad].tolist())
    words = text.str.split().str.len().mean()
    if words >= text_words and distinct > min_text_values:
        return Inferred("text", f"free text, {words:.1f} words on average{note}", missing=missing)
    if distinct > id_share * len(present):
        return Inferred(
            "ignore",
            f"{distinct} distinct values in {len(present)} rows: an id, not a feature",
            missing=missing,
        )
    return Inferred("categorical", f"{distinct} values{note}", missing=missing)


def _numeric(
    present: pd.Series,
    missing: float,
    note: str,
    max_level_share: float,
    max_levels: int,
    named_like_id: bool = False,
) -> Inferred:
    numbers = present.astype(np.float64)
    integral = bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))
    distinct = numbers.nunique()
    unique = integral and distinct == len(numbers) and len(numbers) > max_levels
    in_sequence = numbers.is_monotonic_increasing or numbers.max() - numbers.min() + 1 == len(numbers)
    if unique and (named_like_id or in_sequence):
        return Inferred("ignore", "a different integer in each row: an id, not a feature", missing=missing)
    if integral and distinct <= max_levels and distinct < max_level_share * len(numbers):
        return Inferred("categorical", f"{distinct} integer codes{note}", missing=missing)
    return Inferred("numeric", f"numbers from {numbers.min():g} to {numbers.max():g}{note}", missing=missing)


def looks_like_id(name: str) -> bool:
    """Whether a column's name says it identifies rows: 'id', 'PassengerId', 'customer_id', 'row-ID',
    'user key', 'index' (not 'valid', 'width' or 'idea')."""
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)  # PassengerId -> Passenger Id
    last = re.split(r"[\s_\-.]+", words.strip().lower())[-1] if words.strip() else ""
    return last in ("id", "key", "index", "uuid", "guid")


def _is_flags(present: pd.Series) -> bool:
    if present.dtype == object and present.map(type).isin([bool, np.bool_]).all():
        return True
    if not pd.api.types.is_string_dtype(present) or present.nunique() > 2:
        return False
    words = tuple(sorted(set(present.astype(str).str.strip().str.lower())))
    return words in BOOLEAN_PAIRS


def _rows(mask: pd.Series) -> list[int]:
    """0-based row numbers (of the frame the column came from) where `mask` is true."""
    return [int(i) for i in mask.index[mask.to_numpy()]]


def guess_date_format(text: pd.Series, sample: int = 200) -> str | None:
    """The strftime format every one of the first `sample` values of `text` parses with, trying pandas'
    guesses month first, then day first (11/12/2007 fits both; 25/12/2007 only day first); None when
    they are not dates."""
    from pandas.tseries.api import guess_datetime_format

    head = text.head(sample)
    candidates: list[str] = []
    for value in head.head(20):
        for dayfirst in (False, True):
            with warnings.catch_warnings():  # a year-first format under dayfirst: pandas says it ignores it
                warnings.simplefilter("ignore")
                found = guess_datetime_format(str(value), dayfirst=dayfirst)
            if found and found not in candidates:
                candidates.append(found)
    for candidate in candidates:
        if pd.to_datetime(head, format=candidate, errors="coerce").notna().mean() >= 0.9:
            return candidate
    return None


def input_name(column: str) -> str:
    """A column's Keras input name (and its layers' prefix): letters, digits, '_' and '-' only, as
    TensorFlow's name scopes allow, starting with a letter or digit ('Culmen Length (mm)' ->
    'Culmen_Length_mm'). No '.': a table model's own names hold one (`components.preprocessing`)."""
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]", "_", str(column))).strip("_")
    return name if name[:1].isalnum() else f"c_{name}"


def input_names(columns: Iterable[str]) -> dict[str, str]:
    """{column: input name}, made unique by a suffix where two columns map to one name."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        name, k = input_name(column), 1
        while name in taken:
            k += 1
            name = f"{input_name(column)}_{k}"
        names[column] = name
        taken.add(name)
    return names


def model_inputs(
    frame: pd.DataFrame,
    kinds: Mapping[str, str],
    date_formats: Mapping[str, str] | None = None,
    na_values: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """The inputs of a table model for the rows of `frame` (raw values, as read from the user's file):
    {input name: (n,) array} for each column of `kinds` that is not ignored. numeric and boolean:
    float32, NaN where missing; date: float32 days since 1970-01-01 (times as fractions of a day), NaN
    where missing; categorical and text: str, `MISSING` ('') where missing. A column absent from `frame`
    is all missing. Raises ValueError naming the column, the row and the value it cannot read."""
    formats = dict(date_formats or {})
    names = input_names(c for c, kind in kinds.items() if kind != "ignore")
    markers = set(na_values)
    found = {}
    for column, name in names.items():
        values = frame[column] if column in frame.columns else pd.Series([None] * len(frame), dtype=object)
        if markers and not pd.api.types.is_numeric_dtype(values):
            values = values.mask(values.astype(str).isin(markers))
        kind = kinds[column]
        if kind == "numeric":
            array = _floats(values, column)
        elif kind == "boolean":
            array = _flags(values, column)
        elif kind == "date":
            array = _days(values, column, formats.get(column))
        else:
            array = category_text(values)
        found[name] = array
    return found


def _floats(values: pd.Series, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.float32)
    if not pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"column {column!r}: row {row} holds {values.iloc[row]!r}, not a number")
        values = numbers
    return values.to_numpy(np.float32, na_value=np.nan)


def _flags(values: pd.Series, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return _floats(values, column)
    words = values.astype(object).map(
        lambda v: v if isinstance(v, bool | np.bool_) else str(v).strip().lower(), na_action="ignore"
    )
    out = np.full(len(values), np.nan, np.float32)
    present = words.notna().to_numpy()
    true = words.isin([True, *TRUE_WORDS, "1"]).to_numpy()
    false = words.isin([False, *FALSE_WORDS, "0"]).to_numpy()
    if (present & ~true & ~false).any():
        row = int(np.flatnonzero(present & ~true & ~false)[0])
        raise ValueError(f"column {column!r}: row {row} holds {values.iloc[row]!r}, not a yes/no value")
    out[true], out[false] = 1.0, 0.0
    return out


def _days(values: pd.Series, column: str, date_format: str | None) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values
    else:
        stamps = pd.to_datetime(values, format=date_format or "ISO8601", errors="coerce")
        bad = stamps.isna() & values.notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"column {column!r}: row {row} holds {values.iloc[row]!r}, not a date as "
                f"{date_format or 'ISO 8601'}"
            )
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    days = (stamps - EPOCH) / pd.Timedelta(days=1)
    return days.to_numpy(np.float32, na_value=np.nan)


def category_text(values: pd.Series) -> np.ndarray:
    """(n,) str: each value as the text a category lookup reads, the same whichever way the file held
    it (the integer 3, the float 3.0 of a column with missing values and the string '3' are all '3');
    `MISSING` where missing."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.astype(np.float64)
        integral = np.isfinite(numbers) & (numbers == np.round(numbers))
        text = numbers.map(repr).where(~integral, numbers.fillna(0).astype(np.int64).astype(str))
        return text.where(values.notna(), MISSING).to_numpy(object)
    return values.astype(object).where(values.notna(), MISSING).map(str).to_numpy(object)


def row_ids(frame: pd.DataFrame) -> np.ndarray:
    """(n,) str: an id for each row made from its values alone, a 64-bit hash in hex: the same wherever
    the row sits in the file and however the file stores its numbers (3 and 3.0 alike), so rows added
    later never move an earlier row's id. A row repeated k times gets '-2' to '-k' after its first. An
    edited row gets a new id (and so, maybe, another split)."""
    canonical = {column: _canonical(frame[column]) for column in frame.columns}
    hashes = pd.util.hash_pandas_object(pd.DataFrame(canonical), index=False).to_numpy(np.uint64)
    ids = pd.Series([f"{h:016x}" for h in hashes.tolist()], dtype=object)
    repeat = ids.groupby(ids).cumcount().to_numpy()
    return np.where(repeat > 0, ids + "-" + pd.Series(repeat + 1).astype(str), ids).astype(object)


def _canonical(values: pd.Series) -> pd.Series:
    """A column as row_ids hashes it: by value, whatever dtype pandas gave it. Numbers and flags as
    float64 (True is 1.0; a column of whole numbers read as int64, or as float64 once a value is missing,
    hashes alike; so does a column of flags that a missing value made object), anything else as text,
    missing as one marker."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.astype(np.float64)
    present = values.dropna()
    if len(present) and present.map(lambda v: isinstance(v, bool | int | float | np.number)).all():
        return values.astype(object).where(values.notna(), np.nan).astype(np.float64)
    return values.astype(object).where(values.notna(), "\0").map(str)


# -- rows of model inputs ----------------------------------------------------------------------------


def n_rows(x: Any) -> int:
    """Rows of model inputs: an array's first axis, or a table's {input: array} columns'."""
    if isinstance(x, Mapping):
        return len(next(iter(x.values()))) if x else 0
    return len(x)


def take(x: Any, rows: Any) -> Any:
    """The rows `rows` (indices, a slice or a boolean mask) of model inputs, as `x[rows]` on an array."""
    if isinstance(x, Mapping):
        return {name: column[rows] for name, column in x.items()}
    return x[rows]


def unusable_columns(x: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, str]:
    """{column: why} for the columns of `kinds` whose inputs in `x` (`model_inputs`, e.g. the train
    split's) carry nothing to learn: entirely missing, or one value in every row."""
    names = input_names(c for c, k in kinds.items() if k != "ignore")
    found = {}
    for column, name in names.items():
        values = x[name]
        missing = pd.isna(values) if values.dtype.kind == "f" else values == MISSING
        distinct = len(set(values[~missing].tolist()))
        if distinct == 0:
            found[column] = "entirely missing on the train split"
        elif distinct == 1 and not missing.any():
            found[column] = "one value in every row of the train split"
    return found


def category_counts(x: Mapping[str, np.ndarray], kinds: Mapping[str, str]) -> dict[str, int]:
    """{column: distinct values, missing left out} of the categorical columns of `kinds` in `x`."""
    names = input_names(c for c, k in kinds.items() if k != "ignore")
    return {
        column: len(set(x[name].tolist()) - {MISSING})
        for column, name in names.items()
        if kinds[column] == "categorical"
    }


def frame_of(x: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A table model's inputs as a frame, one column per input (for scikit-learn's baselines)."""
    return pd.DataFrame(dict(x))


# -- labels ------------------------------------------------------------------------------------------


def encode_labels(values: pd.Series | np.ndarray, classes: Sequence[Any], where: str = "") -> np.ndarray:
    """(n,) int64: each label's position in `classes` (the class list as params.yaml writes it, in the
    labels' own type). Raises ValueError naming the labels that are not in it."""
    values = pd.Series(values)
    index = pd.Index(list(classes)).get_indexer(values)
    unknown = index < 0
    if unknown.any():
        shown = sorted({repr(v) for v in values[unknown].head(100)})[:5]
        raise ValueError(
            f"{where or 'labels'}: {int(unknown.sum())} label(s) not in the class list {list(classes)}: "
            f"{', '.join(shown)}" + (" (missing labels)" if values[unknown].isna().all() else "")
        )
    return index.astype(np.int64)


def decode_labels(index: np.ndarray, classes: Sequence[Any]) -> np.ndarray:
    """(n,) the class of each position in `index`, in the classes' own type (str, int, bool, float)."""
    return pd.Series(list(classes)).to_numpy()[np.asarray(index, dtype=np.int64)]


def label_names(classes: Sequence[Any]) -> list[str]:
    """The classes as a person reads them: 'Adelie', '3', 'True'."""
    return [str(c) for c in classes]


def parse_label(text: str, classes: Sequence[Any]) -> Any:
    """The class whose written form is `text` ('Adelie', '3', 'True'; surrounding spaces ignored), or
    KeyError."""
    written = {str(c): c for c in classes}
    return written[str(text).strip()]


# -- a numeric view of mixed columns (scikit-learn's models and checks) -----------------------------------


def numeric_view(
    frames: Sequence[pd.DataFrame], kinds: Mapping[str, str]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Each frame of model inputs (`frame_of`) as float64 rows a tree model reads, and which columns are
    categorical (bool, (d,)): numbers, flags and dates as they are (NaN missing), categories as codes
    shared across the frames, free text as its length in words."""
    names = input_names(c for c, k in kinds.items() if k != "ignore")
    kind_of = {names[c]: kinds[c] for c in names}
    columns = list(frames[0].columns)
    out = [np.empty((len(frame), len(columns)), np.float64) for frame in frames]
    categorical = np.zeros(len(columns), bool)
    for j, name in enumerate(columns):
        kind = kind_of.get(name, "numeric")
        if kind == "categorical":
            levels = pd.Index(sorted(set().union(*(set(f[name]) for f in frames))))
            categorical[j] = len(levels) <= MAX_TREE_CATEGORIES  # more: their codes as numbers
            for frame, array in zip(frames, out, strict=True):
                array[:, j] = levels.get_indexer(frame[name])
        elif kind == "text":
            for frame, array in zip(frames, out, strict=True):
                array[:, j] = frame[name].astype(str).str.split().str.len()
        else:
            for frame, array in zip(frames, out, strict=True):
                array[:, j] = frame[name].to_numpy(np.float64)
    return out, categorical
