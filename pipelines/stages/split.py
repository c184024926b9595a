"""Stage `split`: data/splits/{train,train_dev,dev,test}.parquet, the assignment record
data/assignment.parquet, and metrics/split.json with the policy, the checks and the warnings.

Only the id, label and source columns are held in memory to assign splits; the features are streamed
from Parquet in batches twice: once to hash each row (exact duplicates across splits are leaks), once to
write the split files and draw the samples the same-distribution checks need.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components import dev_test_size, same_distribution, train_dev
from components.columns import encode_labels, frame_of, label_names, model_inputs, numeric_view
from components.train_dev import DEV, SPLITS, TEST, TRAIN, SplitPolicy
from pipelines.errors import UserError
from pipelines.store.artifacts import (
    ASSIGNMENT,
    RAW_DATA,
    SPLIT,
    SPLITS_DIR,
    SYNTHESIZED_DIR,
    VALIDATION,
    atomic_output,
    read_json,
    remove_output,
    require,
    write_json,
)
from pipelines.store.params import DataParams, Params
from pipelines.store.tables import classes, feature_columns

BATCH_ROWS = 65_536
FINGERPRINT_KEY = b"mlstrategy.split_policy"
LEAK_IDS_SHOWN = 100


class StringColumn:
    """A pyarrow string column as a sized iterable of str, converted one chunk at a time (10M ids as
    Python strings would take ~1 GB; as Arrow they take ~150 MB)."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.column = column

    def __len__(self) -> int:
        return len(self.column)

    def __iter__(self) -> Iterator[str]:
        for chunk in self.column.chunks:
            yield from chunk.to_pylist()


@dataclass
class Keys:
    """The columns the assignment needs: ids (n,), labels (n,) int64 (positions in the class list),
    sources (n,) str or None."""

    ids: pa.ChunkedArray
    labels: np.ndarray
    sources: pd.Series | None
    features: list[str]


def _first_ids(ids: pa.ChunkedArray, mask: np.ndarray, limit: int = 10) -> list[str]:
    return ids.take(pa.array(np.flatnonzero(mask)[:limit])).to_pylist()


def read_keys(path: Path, data: DataParams) -> Keys:
    """Read the id, label and source columns only, and check them."""
    columns = pq.ParquetFile(require(path, "ingest")).schema_arrow.names
    if data.id_column not in columns:
        raise UserError(
            f"{path}: no id column '{data.id_column}' (params.yaml data.id_column); every example needs a "
            "stable unique id, e.g. add one to your file with `df['id'] = df.index.astype(str)`"
        )
    keys = [c for c in (data.id_column, data.label_column, data.source_column) if c]
    missing = [c for c in (*keys, data.text_column) if c and c not in columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {missing} named in params.yaml data.*")
    table = pq.read_table(path, columns=keys)
    ids = pc.cast(table[data.id_column], pa.string())
    if ids.null_count:
        raise UserError(f"{path}: {ids.null_count} rows have no {data.id_column}")
    sources = None
    if data.source_column:
        column = table[data.source_column]
        empty = pc.or_kleene(
            pc.is_null(column), pc.equal(pc.utf8_trim_whitespace(column.cast(pa.string())), "")
        )
        empty = empty.to_numpy(zero_copy_only=False).astype(bool)
        if empty.any():
            raise UserError(
                f"{path}: {int(empty.sum())} rows have an empty {data.source_column}; first ids: "
                f"{_first_ids(ids, empty)}. Every example needs a source (or set data.source_column: null)"
            )
        sources = column.dictionary_encode().to_pandas()  # categorical: one byte or two per example
    try:
        labels = encode_labels(
            table[data.label_column].to_pandas(), classes(data), f"{path}: {data.label_column}"
        )
    except ValueError as error:
        raise UserError(f"{error} (params.yaml data.labels)") from None
    return Keys(ids=ids, labels=labels, sources=sources, features=feature_columns(columns, data))


def previous_codes(ids: pa.ChunkedArray, fingerprint: str) -> tuple[np.ndarray, bool]:
    """(n,) int8 code of each example in the last assignment (-1: new), and whether that assignment was
    made under the same policy (only then are old examples kept where they were)."""
    if not ASSIGNMENT.is_file():
        return np.full(len(ids), -1, dtype=np.int8), False
    record = pq.read_table(ASSIGNMENT, columns=["id", "code"])
    same = (record.schema.metadata or {}).get(FINGERPRINT_KEY) == fingerprint.encode()
    position = pc.index_in(ids, value_set=record["id"]).to_numpy(zero_copy_only=False)
    found = ~np.isnan(position)
    codes = np.full(len(ids), -1, dtype=np.int8)
    codes[found] = record["code"].to_numpy()[position[found].astype(np.int64)]
    return codes, same


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    logger = get_run_logger()
    source = pq.ParquetFile(path)
    total, done, next_report = source.metadata.num_rows, 0, 0.25
    for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        yield batch
        done += batch.num_rows
        if total > 20 * BATCH_ROWS and done / total >= next_report:  # progress for big files only
            logger.info("  %d%% of %d rows", 100 * done // total, total)
            next_report += 0.25


@task(cache_policy=NO_CACHE)
def hash_rows(path: Path, features: list[str]) -> np.ndarray:
    """Pass 1: (n,) uint64 hash of each row's features."""
    return np.concatenate(
        [train_dev.row_hashes(batch.to_pandas()) for batch in _batches(path, features)]
        or [np.empty(0, np.uint64)]
    )


@task(cache_policy=NO_CACHE)
def write_splits(
    path: Path, codes: np.ndarray, keep: np.ndarray, sampled: np.ndarray, features: list[str]
) -> dict[int, pd.DataFrame]:
    """Pass 2: every kept row into its split's file; returns the features of the sampled rows by code."""
    samples: dict[int, list[pd.DataFrame]] = {code: [] for code in range(len(SPLITS))}
    schema = pq.ParquetFile(path).schema_arrow.remove_metadata()
    # Synthesized train data made from the old splits must not outlive them.
    remove_output(SYNTHESIZED_DIR)
    with atomic_output(SPLITS_DIR) as tmp:
        tmp.mkdir()
        writers = [pq.ParquetWriter(tmp / f"{name}.parquet", schema) for name in SPLITS]
        try:
            start = 0
            for batch in _batches(path):
                rows = slice(start, start + batch.num_rows)
                start = rows.stop
                batch_codes, batch_keep = codes[rows], keep[rows]
                table = pa.Table.from_batches([batch]).replace_schema_metadata(None)
                for code, writer in enumerate(writers):
                    mask = (batch_codes == code) & batch_keep
                    if mask.any():
                        writer.write_table(table.filter(pa.array(mask)))
                    picked = mask & sampled[rows]
                    if picked.any():
                        samples[code].append(table.select(features).filter(pa.array(picked)).to_pandas())
        finally:
            for writer in writers:
                writer.close()
    return {code: pd.concat(parts, ignore_index=True) for code, parts in samples.items() if parts}


def as_numbers(
    samples: dict[int, pd.DataFrame], data: DataParams
) -> tuple[dict[int, np.ndarray], np.ndarray | None]:
    """The sampled rows as numbers for the domain classifier, and which of their columns are categories
    (None: none): the features themselves, a table's columns through `components.columns.numeric_view`
    (categories as codes, dates as days), or for text its character n-gram vectors
    (`same_distribution.text_vectors`)."""
    if data.kinds:
        codes = list(samples)
        inputs = [
            frame_of(model_inputs(samples[code], data.kinds, data.date_formats, data.na_values))
            for code in codes
        ]
        arrays, categorical = numeric_view(inputs, data.kinds)
        return dict(zip(codes, arrays, strict=True)), categorical
    if not data.text_column:
        return {code: frame.to_numpy(np.float64) for code, frame in samples.items()}, None
    codes = list(samples)
    texts = [samples[code][data.text_column].tolist() for code in codes]
    return dict(zip(codes, same_distribution.text_vectors(texts, seed=0), strict=True)), None


def sample_rows(codes: np.ndarray, keep: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """(n,) bool: up to `size` kept rows of each split, at random, for the distribution checks."""
    rng = np.random.default_rng(seed)
    sampled = np.zeros(len(codes), dtype=bool)
    for code in range(len(SPLITS)):
        rows = np.flatnonzero((codes == code) & keep)
        sampled[rng.choice(rows, size, replace=False) if len(rows) > size else rows] = True
    return sampled


@task(cache_policy=NO_CACHE)
def distribution_checks(
    numbers: tuple[dict[int, np.ndarray], np.ndarray | None],
    labels: np.ndarray,
    codes: np.ndarray,
    sampled: np.ndarray,
    policy: SplitPolicy,
) -> dict:
    checks = policy.checks
    samples, categorical = numbers

    def labels_of(code: int) -> np.ndarray:
        return labels[sampled & (codes == code)]

    def compared(first: int, second: int) -> same_distribution.SameDistribution:
        return same_distribution.same_distribution(
            samples[first],
            labels_of(first),
            samples[second],
            labels_of(second),
            checks.alpha,
            checks.max_domain_auc,
            categorical=categorical,
        )

    found: dict = {"dev_test_same_distribution": None, "train_vs_dev_domain_auc": None}
    if TEST in samples and len(samples[TEST]) >= 2:
        found["dev_test_same_distribution"] = compared(DEV, TEST).to_dict()
    if TRAIN in samples and len(samples[TRAIN]) >= 2:
        train_dev_check = compared(TRAIN, DEV)
        found["train_vs_dev_domain_auc"] = train_dev_check.domain_auc
        found["train_vs_dev"] = train_dev_check.to_dict()
    return found


def size_checks(sizes: dict[str, int], policy: SplitPolicy) -> tuple[dict, list[str]]:
    """Confidence intervals at the dev and test sizes, and what the dev set can detect."""
    checks = policy.checks
    error = checks.expected_error or 0.5
    found = {
        "expected_error": error,
        "dev_ci_halfwidth": dev_test_size.ci_halfwidth(error, sizes["dev"], checks.alpha),
        "test_ci_halfwidth": (
            dev_test_size.ci_halfwidth(error, sizes["test"], checks.alpha) if sizes["test"] else None
        ),
        "min_detectable_difference": dev_test_size.min_detectable_difference(
            sizes["dev"], error, checks.alpha, checks.power
        ),
    }
    warnings = []
    wanted = checks.min_improvement
    if wanted is not None and found["min_detectable_difference"] > wanted:
        needed = dev_test_size.paired_sample_size(wanted, error, checks.alpha, checks.power)
        found["dev_size_for_min_improvement"] = needed
        warnings.append(
            f"the dev set ({sizes['dev']:,} examples) detects differences of "
            f"{found['min_detectable_difference']:.1%} or more at a {error:.0%} error; to detect "
            f"min_improvement {wanted:.1%} it needs about {needed:,} examples"
        )
    return found, warnings


@task(cache_policy=NO_CACHE)
def assign(keys: Keys, params: Params, previous: np.ndarray) -> train_dev.Assignment:
    try:
        return train_dev.assign_splits(
            StringColumn(keys.ids), keys.sources, params.data.target_sources, params.split, previous
        )
    except ValueError as error:
        raise UserError(f"{RAW_DATA}: cannot split: {error} (params.yaml split.*, data.*)") from error


def write_assignment(ids: pa.ChunkedArray, codes: np.ndarray, fingerprint: str) -> None:
    # Dictionary-encoded from the codes: no per-example string, even at 10M examples.
    names = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(SPLITS))
    table = pa.table({"id": ids, "split": names, "code": codes})
    with atomic_output(ASSIGNMENT) as tmp:
        pq.write_table(table.replace_schema_metadata({FINGERPRINT_KEY: fingerprint.encode()}), tmp)


@flow(name="split")
def split_flow(params: Params) -> dict:
    logger = get_run_logger()
    if not read_json(VALIDATION, "validate").get("success"):
        raise UserError(f"{VALIDATION}: the raw data did not pass validation; fix it and rerun `dvc repro`")
    policy, data = params.split, params.data
    keys = read_keys(RAW_DATA, data)
    fingerprint = policy.fingerprint(data.target_sources)
    previous, same_policy = previous_codes(keys.ids, fingerprint)
    assignment = assign(keys, params, previous if same_policy else None)
    codes = assignment.codes
    warnings = []
    moved = train_dev.moved_since_last(codes, previous)
    if moved:
        warnings.append(
            f"{moved:,} examples moved to another split since the last run, because the split params "
            "changed (a new policy reassigns every example)"
        )

    leaks = train_dev.find_leaks(hash_rows(RAW_DATA, keys.features), codes)
    leak_ids = _first_ids(keys.ids, leaks, LEAK_IDS_SHOWN)
    if leaks.any():
        what = f"{int(leaks.sum())} examples of train_dev/dev/test duplicate an earlier split's features"
        if policy.checks.on_leak == "fail":
            raise UserError(f"{RAW_DATA}: {what}; first ids: {leak_ids[:10]} (split.checks.on_leak: fail)")
        warnings.append(
            f"{what}; " + ("dropped" if policy.checks.on_leak == "drop" else "kept (on_leak: warn)")
        )
    keep = ~leaks if policy.checks.on_leak == "drop" else np.ones(len(codes), dtype=bool)

    names = label_names(classes(data))
    # Every class of the list, also those no split has (missing), by the name the user gives it.
    per_class = {
        s: {names[k]: counts.get(k, 0) for k in range(len(names))}
        for s, counts in train_dev.per_class(keys.labels[keep], codes[keep]).items()
    }
    missing = train_dev.missing_classes(per_class)
    if missing:
        what = "; ".join(
            f"{name} has no example of class(es) [{', '.join(labels)}]" for name, labels in missing.items()
        )
        if policy.checks.on_missing_class == "fail":
            raise UserError(f"{RAW_DATA}: {what} (split.checks.on_missing_class: fail)")
        warnings.append(what)
    sizes = {name: sum(counts.values()) for name, counts in per_class.items()}
    for name in ("dev", "test") if policy.test_set else ("dev",):
        if not sizes[name]:
            raise UserError(
                f"{RAW_DATA}: the {name} split is empty; it needs examples of {data.target_sources}"
            )

    sampled = sample_rows(codes, keep, policy.checks.sample)
    samples = write_splits(RAW_DATA, codes, keep, sampled, keys.features)
    write_assignment(keys.ids, codes, fingerprint)
    sizing, size_warnings = size_checks(sizes, policy)
    summary = {
        "policy": assignment.plan.rule,
        "sizes": sizes,
        "ratios": {name: round(size / len(codes), 4) for name, size in sizes.items()},
        "planned": {"dev": assignment.plan.n_dev, "test": assignment.plan.n_test},
        "sizes_by_source": _by_source(keys, codes, keep),
        "target_sources": list(data.target_sources),
        "per_class": per_class,
        "moved_since_last": moved,
        "kept_from_last": assignment.kept,
        **distribution_checks(as_numbers(samples, data), keys.labels, codes, sampled, policy),
        **sizing,
        "leaks": {"count": int(leaks.sum()), "ids": leak_ids, "action": policy.checks.on_leak},
        "warnings": warnings + size_warnings,
    }
    write_json(SPLIT, summary)
    logger.info("%s -> %s", assignment.plan.rule, sizes)
    for warning in summary["warnings"]:
        logger.warning("split: %s", warning)
    return summary


def _by_source(keys: Keys, codes: np.ndarray, keep: np.ndarray) -> dict:
    if keys.sources is None:
        return {name: {"all": int(((codes == code) & keep).sum())} for code, name in enumerate(SPLITS)}
    frame = pd.DataFrame({"split": codes[keep], "source": keys.sources.to_numpy()[keep]})
    counts = frame.groupby(["split", "source"], observed=True).size()
    return {
        name: {str(s): int(n) for (c, s), n in counts.items() if c == code and n}
        for code, name in enumerate(SPLITS)
    }
