"""data/contract.yaml: the data contract's per-column rules, read for `validate` and proposed from a trusted
snapshot by `mlstrategy contract --from FILE` for a person to edit."""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

from components.data_contract import ColumnRule, parse_rules, propose
from pipelines.errors import UserError
from pipelines.store.artifacts import CONTRACT, write_text
from pipelines.store.params import Params
from pipelines.store.readers import read_dataset

HEADER = """\
# The data contract: what every batch must look like before it becomes the current data version.
# `validate` compiles it, with params.yaml data.* (id, label and source columns, label set,
# min_rows_per_class, and feature_range for features not named here), into a Great Expectations suite.
# Proposed by `mlstrategy contract --from {source}` on {day}. Its ranges and value sets are
# what that snapshot held: widen what you expect to move, tighten what must never change.
#
# Per column, all optional: type (integer, float, number, string, boolean), min, max (inclusive),
# values (the allowed set), nulls (largest share of missing values, 0 to 1; default 0), unique,
# length ([low, high] characters of a string), pattern (a regular expression every string matches).
# extra_columns: forbid refuses columns not named here; allow lets them through as features.
"""


def load_contract(path: Path = CONTRACT) -> tuple[dict[str, ColumnRule], bool]:
    """The rules of the contract file and whether it allows other columns; no file: no rules of its own."""
    if not path.is_file():
        return {}, True
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if spec is not None and not isinstance(spec, dict):
            raise ValueError("expected a mapping with columns and extra_columns")
        return parse_rules(spec)
    except (yaml.YAMLError, ValueError) as error:
        raise UserError(f"{path}: {error}") from None


def write_contract(params: Params, source: Path, output: Path = CONTRACT, force: bool = False) -> int:
    """Propose a contract from the data at `source` (read as ingest reads it) into `output`; returns the
    number of columns. An existing contract is replaced only with `force`."""
    if output.exists() and not force:
        raise UserError(f"{output}: already exists; pass --force to replace it (or -o another file)")
    frame = read_dataset(source, params.data)
    spec = propose(frame, unique=[params.data.id_column])
    body = yaml.safe_dump({"extra_columns": spec["extra_columns"]}, sort_keys=False) + "columns:\n"
    # One flow-style line per column: a wide table stays readable and diffs stay small.
    for name, rule in spec["columns"].items():
        line = yaml.safe_dump({name: rule}, default_flow_style=True, sort_keys=False, width=10_000)
        body += "  " + line.strip()[1:-1] + "\n"
    write_text(output, HEADER.format(source=source, day=datetime.date.today().isoformat()) + body)
    return len(spec["columns"])
