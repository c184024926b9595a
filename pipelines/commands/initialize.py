"""`mlstrategy init`: the first five minutes with your own data.

It reads the file (CSV or Parquet, or a folder of images) as `ingest` will, decides what each column is
(`components.columns.infer_kind`: numbers, categories, yes/no flags, dates, free text, ids to leave out),
and writes what the pipeline needs to run on it with no hand edits: the `data` section of params.yaml
(its comments kept), data/contract.yaml, and diagnose.human_level. It makes the file a versioned DVC
input (`dvc add`, and a dependency of the `ingest` stage, so that an edit in place reruns ingest and all
after it), starts a fresh drift reference and a fresh relabel record (both belonged to the old data), and
returns what it decided, with the params key that changes each decision.

A project already set up for a file of its own (params.yaml data.path set) is only replaced with --force.
Nothing is written when the data is refused.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from components.columns import Inferred, MixedColumn, infer_kind
from components.data_contract import propose
from pipelines.errors import UserError
from pipelines.running.runtime import dvc_env, script
from pipelines.store.artifacts import CONTRACT, REFERENCE_PROFILE, RELABELS, atomic_output, write_text
from pipelines.store.contract import HEADER
from pipelines.store.params import PARAMS_FILE, PLACEHOLDER, DataParams, Params, format_validation_error
from pipelines.store.readers import read_dataset, sniff_delimiter

DVC_FILE = Path("dvc.yaml")
MADE_ID = "row_id"  # the id column ingest makes when the file has none
CONTRACT_SLACK = (
    0.5  # ranges widened by half their span each side: room for new batches, not for a unit error
)
MAX_CLASSES = 200


@dataclass(frozen=True)
class Decision:
    """One line of init's table: a column, what it is taken as, why, and the params key to change it."""

    column: str
    kind: str
    why: str
    key: str


@dataclass
class Setup:
    """What init decided: the data section, the human-level errors, the contract's columns, the table's
    decisions and notes for the person (how ids are made, warnings)."""

    data: dict[str, Any]
    human_level: dict[str, dict[str, float]]
    contract: dict[str, Any]
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def inside(path: Path, root: Path) -> str:
    """`path` relative to the project `root`, refused when it lies outside (DVC versions files inside)."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UserError(f"{path}: outside the project ({root}); copy it into the project (e.g. data/) first")
    return resolved.relative_to(root.resolve()).as_posix()


def plan(
    params: Params,
    path: str,
    label: str,
    id_column: str | None = None,
    source: str | None = None,
    targets: list[str] | None = None,
    text: str | None = None,
    human_level: float | None = None,
    na_values: list[str] | None = None,
) -> Setup:
    """Decide the setup for the data at `path` (relative to the project root): read it, check the named
    columns, infer the kinds of the others, propose the contract. Raises UserError naming the file, column
    and rows of anything that keeps the data from going through."""
    file = Path(path)
    if not file.exists():
        raise UserError(f"{path}: not found")
    data: dict[str, Any] = {
        "path": path,
        "features": None,
        "date_formats": {},
        "na_values": list(na_values or []),
        "delimiter": None,
        "decimal": ".",
        "image_shape": None,
        "text_column": text,
        "source_column": source,
        "target_sources": list(targets or []),
        "label_column": label,
        "tag_columns": [],
        "annotator_columns": [],
        "weight_column": None,
    }
    notes: list[str] = []
    if file.is_dir():
        frame = _image_folder(file, data, params)
    else:
        if file.suffix == ".csv":
            delimiter = sniff_delimiter(file)
            if delimiter != ",":
                data["delimiter"] = delimiter
                notes.append(f"{path} is separated by {delimiter!r} (data.delimiter)")
        frame = read_dataset(file, DataParams.model_validate(_reading(data, params.data.max_memory_mb)))
        if data["delimiter"] and decimal_commas(frame):
            data["decimal"] = ","
            notes.append(f"{path} writes decimals with a comma, 1,5 (data.decimal)")
            frame = read_dataset(file, DataParams.model_validate(_reading(data, params.data.max_memory_mb)))
    named = {"label": label, "id": id_column, "source": source, "text": text}
    missing = {what: column for what, column in named.items() if column and column not in frame.columns}
    if missing:
        raise UserError(
            f"{path}: no column "
            + ", ".join(f"{c!r} (--{w})" for w, c in missing.items())
            + f"; columns: {list(frame.columns)[:30]}"
        )
    decisions = [_labels(frame, path, label, data, params.data.min_rows_per_class)]
    if file.is_dir():
        decisions.append(Decision("id", "id", "each image's path under the folder", "data.id_column"))
    else:
        decisions += _ids(frame, path, id_column, data, notes)
    if source:
        decisions.append(_sources(frame, path, source, data["target_sources"]))
    kinds: dict[str, Inferred] = {}
    if not file.is_dir():
        others = [c for c in frame.columns if c not in (label, id_column, source, text)]
        kinds = _kinds(frame, path, others)
        markers = sorted({m for found in kinds.values() for m in found.na_values} - set(data["na_values"]))
        if markers:
            markers = sorted({*markers, *data["na_values"]})
            data["na_values"] = markers
            notes.append(f"{', '.join(map(repr, markers))} mark missing values (data.na_values)")
            frame = read_dataset(file, DataParams.model_validate(_reading(data, params.data.max_memory_mb)))
    if text:
        decisions.append(Decision(text, "text", "the text the Transformer family reads", "data.text_column"))
        decisions += [
            Decision(c, "ignore", "not read: the text is the input", "data.text_column") for c in kinds
        ]
    elif kinds:
        data["features"] = {c: found.kind for c, found in kinds.items()}
        data["date_formats"] = {c: found.date_format for c, found in kinds.items() if found.date_format}
        decisions += [
            Decision(c, found.kind, _categories(found, frame[c], params.train.tabular), f"data.features.{c}")
            for c, found in kinds.items()
        ]
        if all(found.kind == "ignore" for found in kinds.values()):
            raise UserError(
                f"{path}: no column to learn from: " + "; ".join(f"{c}: {f.why}" for c, f in kinds.items())
            )
    contract = propose(
        frame,
        unique=[data["id_column"]] if not data["make_ids"] else [],
        kinds={c: found.kind for c, found in kinds.items()},
        slack=CONTRACT_SLACK,
    )
    if data["make_ids"]:
        contract["columns"] = {data["id_column"]: {"type": "string", "unique": True}, **contract["columns"]}
    levels = {"typical_human": human_level} if human_level is not None else {PLACEHOLDER: 0.0}
    if human_level is None:
        notes.append(
            "human-level error: a placeholder (diagnose.human_level); avoidable bias is read against 0 "
            "until you set the error people make on this task (--human-level, or edit params.yaml)"
        )
    return Setup(data, {"all": levels}, contract, decisions, notes)


def _reading(data: dict[str, Any], max_memory_mb: float) -> dict[str, Any]:
    """The data section as far as reading the file goes (the rest is decided after reading it)."""
    return {
        "path": data["path"],
        "delimiter": data["delimiter"],
        "decimal": data["decimal"],
        "na_values": data["na_values"],
        "image_shape": data["image_shape"],
        "source_column": data["source_column"],
        "target_sources": data["target_sources"],
        "label_column": data["label_column"],
        "max_memory_mb": max_memory_mb,
    }


def decimal_commas(frame: pd.DataFrame) -> bool:
    """Whether a column of the frame (read with '.' decimals) holds numbers written with a decimal comma:
    most of its values like '1,5' or '-12,75'."""
    for column in frame.columns:
        values = frame[column].dropna()
        text = len(values) and not pd.api.types.is_numeric_dtype(values)
        if text and values.astype(str).str.fullmatch(r"[+-]?\d+,\d+").mean() > 0.5:
            return True
    return False


def _image_folder(folder: Path, data: dict[str, Any], params: Params) -> pd.DataFrame:
    """A folder of images: its images' shape from the first one, read as `ingest` reads it."""
    from PIL import Image

    from components.images import IMAGE_SUFFIXES

    first = next((p for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES), None)
    if first is None:
        raise UserError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    with Image.open(first) as image:
        data["image_shape"] = [image.height, image.width] + (
            [3] if image.mode not in ("L", "1", "I;16") else []
        )
    data.update(id_column="id", make_ids=False)  # the reader ids each image by its path
    return read_dataset(folder, DataParams.model_validate(_reading(data, params.data.max_memory_mb)))


def _labels(frame: pd.DataFrame, path: str, label: str, data: dict[str, Any], min_rows: int) -> Decision:
    values = frame[label]
    empty = values.isna()
    if empty.any():
        lines = _lines(empty)
        raise UserError(
            f"{path}: {int(empty.sum())} row(s) have no {label!r} ({lines}); every example needs its class: "
            "label them, or remove them from the file"
        )
    present = values.tolist()
    classes = sorted(set(present), key=lambda v: (str(type(v)), v))
    if len(classes) < 2:
        raise UserError(f"{path}: column {label!r} holds one class ({classes[0]!r}): nothing to tell apart")
    numeric = pd.api.types.is_float_dtype(values) and not (values == values.round()).all()
    if numeric or len(classes) > MAX_CLASSES:
        raise UserError(
            f"{path}: column {label!r} has {len(classes)} distinct values"
            + (" with fractions" if numeric else "")
            + ": a number to predict, not a class; this pipeline classifies (bin it into classes first)"
        )
    counts = values.value_counts()
    rare = counts[counts < min_rows]
    if len(rare):
        shown = "; ".join(
            f"{value!r}: {count} ({_lines(values == value)})" for value, count in rare.head(5).items()
        )
        raise UserError(
            f"{path}: class(es) with fewer than {min_rows} examples, too few to reach train, dev and test: "
            f"{shown}. Add examples, merge the class into another, or remove its rows (or lower "
            "params.yaml data.min_rows_per_class)"
        )
    data["labels"] = [c.item() if hasattr(c, "item") else c for c in classes]
    shown = ", ".join(map(str, data["labels"][:6])) + (", ..." if len(classes) > 6 else "")
    return Decision(label, "label", f"{len(classes)} classes: {shown}", "data.labels")


def _ids(
    frame: pd.DataFrame, path: str, id_column: str | None, data: dict[str, Any], notes: list[str]
) -> list[Decision]:
    if id_column is None:
        made = MADE_ID if MADE_ID not in frame.columns else f"{MADE_ID}_"
        data.update(id_column=made, make_ids=True)
        notes.append(
            f"ids: the file has none (--id), so ingest makes {made!r} from a hash of each row's values: "
            "a row keeps its id, and so its split, wherever it sits and when rows are added; an edited row "
            "gets a new id and may change split"
        )
        return [
            Decision(made, "id", "made by ingest from each row's values", "data.id_column, data.make_ids")
        ]
    values = frame[id_column]
    repeated = values.duplicated(keep=False) | values.isna()
    if repeated.any():
        raise UserError(
            f"{path}: --id {id_column!r} is not a unique id: {int(repeated.sum())} rows share or lack one "
            f"({_lines(repeated)}); name a unique column, or leave --id out to have ids made from the rows"
        )
    data.update(id_column=id_column, make_ids=False)
    return [Decision(id_column, "id", "unique in every row", "data.id_column")]


def _sources(frame: pd.DataFrame, path: str, source: str, targets: list[str]) -> Decision:
    present = set(frame[source].dropna().astype(str))
    unknown = sorted(set(targets) - present)
    if unknown or not targets:
        raise UserError(
            f"{path}: --target {unknown or '(none)'}: name the source(s) dev and test must come from, "
            f"values of {source!r}: {sorted(present)[:20]}"
        )
    return Decision(source, "source", f"dev and test from {', '.join(targets)}", "data.target_sources")


def _kinds(frame: pd.DataFrame, path: str, columns: list[str]) -> dict[str, Inferred]:
    found, mixed = {}, []
    for column in columns:
        try:
            found[column] = infer_kind(frame[column])
        except MixedColumn as error:
            mixed.append(error)
    if mixed:
        raise UserError(
            f"{path}: "
            + "; ".join(
                f"{e} ({_lines(pd.Series(frame.index.isin(e.rows), index=frame.index))})" for e in mixed
            )
            + ". Fix those values in the file; if they mean 'missing', name them: init --na VALUE ..."
        )
    return found


def _categories(found: Inferred, values: pd.Series, tabular: Any) -> str:
    """Why a column is what it is, and for a category with many values what the model will make of it."""
    count = values.nunique() if found.kind == "categorical" else 0
    if count > tabular.max_categories:
        return (
            f"{found.why}: the {tabular.max_categories:,} most frequent kept, the others share one bucket "
            "(train.tabular.max_categories)"
        )
    if count > tabular.embed_above:
        return f"{found.why}: embedded (more than train.tabular.embed_above)"
    return found.why


def _lines(mask: pd.Series, limit: int = 5) -> str:
    """The file lines (header on line 1) where `mask` holds: 'lines 4, 9'."""
    rows = [int(i) + 2 for i in mask.index[mask.to_numpy()]]
    shown = ", ".join(map(str, rows[:limit])) + (
        f" and {len(rows) - limit} more" if len(rows) > limit else ""
    )
    return ("line " if len(rows) == 1 else "lines ") + shown


def apply(setup: Setup, root: Path, force: bool, previous: str | None) -> list[str]:
    """Write the setup: `dvc add` the file, params.yaml (data section and human-level errors, comments
    kept; validated first), data/contract.yaml, the ingest stage's dependency on the file, and a fresh drift
    reference and relabel record. Returns the files written."""
    params_file, contract_file = root / PARAMS_FILE, root / CONTRACT
    if previous and not force:
        raise UserError(
            f"params.yaml data.path is {previous!r}: this project is set up for its own data already; pass "
            "--force to replace that setup (params.yaml data, data/contract.yaml, the drift reference)"
        )
    text = _params_text(params_file, setup)
    written = [str(PARAMS_FILE), str(CONTRACT), str(DVC_FILE)]
    written += _dvc_add(root, setup.data["path"])
    with atomic_output(params_file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_text(contract_file, _contract_text(setup))
    _ingest_depends_on(root / DVC_FILE, setup.data["path"], previous)
    for stale in (REFERENCE_PROFILE,):
        (root / stale).unlink(missing_ok=True)
    write_text(root / RELABELS, "id,corrected\n")
    return written


def _params_text(path: Path, setup: Setup) -> str:
    """params.yaml with the new data section and human-level errors, comments and order kept (ruamel's
    round trip); refused, with nothing written, when the result does not validate."""
    import io

    import yaml
    from pydantic import ValidationError
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    yaml_rt = _round_trip()
    document = yaml_rt.load(path.read_text(encoding="utf-8"))
    section = document["data"]
    for key, value in setup.data.items():
        value = _quoted(value)
        if isinstance(value, dict):
            value = CommentedMap(value)
        elif isinstance(value, list):
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        if key in section:
            section[key] = value
        else:
            section.insert(len(section), key, value)
    document["diagnose"]["human_level"] = CommentedMap(
        {source: _flow(levels) for source, levels in setup.human_level.items()}
    )
    out = io.StringIO()
    yaml_rt.dump(document, out)
    text = out.getvalue()
    written = yaml.safe_load(text)
    if {key: written["data"][key] for key in setup.data} != setup.data:  # what PyYAML reads back
        raise UserError("init could not write params.yaml's data section so that it reads back the same")
    try:
        Params.model_validate(written)
    except ValidationError as error:
        raise UserError(
            f"the setup init decided does not validate:\n{format_validation_error(error)}"
        ) from None
    return text


def _quoted(value: Any) -> Any:
    """`value` with each string that YAML 1.1 would read as something else ('yes', 'no', 'null', '1.5')
    single-quoted, keys included: ruamel writes YAML 1.2, where they are strings, and PyYAML, which reads
    params.yaml, reads YAML 1.1."""
    import yaml
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    if isinstance(value, dict):
        return {_quoted(k): _quoted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_quoted(v) for v in value]
    if (
        isinstance(value, str)
        and yaml.safe_load(yaml.safe_dump(value)) == value
        and yaml.safe_dump(value)[0] in "'\""
    ):
        return SingleQuotedScalarString(value)
    return value


def _round_trip() -> Any:
    """ruamel's round-trip YAML (comments and order kept), writing None as null as the file does."""
    from ruamel.yaml import YAML

    yaml_rt = YAML()
    yaml_rt.width = 4096
    yaml_rt.indent(mapping=2, sequence=4, offset=2)  # the project's files: "  key:\n    - item"
    yaml_rt.representer.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml_rt


def _flow(values: dict) -> Any:
    from ruamel.yaml.comments import CommentedMap

    found = CommentedMap(values)
    found.fa.set_flow_style()
    return found


def _contract_text(setup: Setup) -> str:
    import datetime

    import yaml

    spec = setup.contract
    body = yaml.safe_dump({"extra_columns": spec["extra_columns"]}, sort_keys=False) + "columns:\n"
    for name, rule in spec["columns"].items():
        line = yaml.safe_dump({name: rule}, default_flow_style=True, sort_keys=False, width=10_000)
        body += "  " + line.strip()[1:-1] + "\n"
    header = HEADER.format(source=f"init --data {setup.data['path']}", day=datetime.date.today().isoformat())
    return (
        header.replace("# Proposed by `mlstrategy contract", "# Proposed by `mlstrategy")
        + (
            "# Numbers' ranges are the snapshot's widened by half their span on each side, and null\n"
            "# shares raised as much again (0.1 at least): room for new batches, none for a unit error.\n"
            "# categories: a category the contract does not know is a warning (data.new_categories).\n"
        )
        + body
    )


def _dvc_add(root: Path, path: str) -> list[str]:
    """Version the data file with DVC (`dvc add`): its md5 in `<path>.dvc`, the file in git's ignore list."""
    done = subprocess.run(
        [script("dvc"), "add", path], cwd=root, env=dvc_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        said = " ".join((done.stderr + done.stdout).split()).removeprefix("ERROR: ")
        hint = " (DVC versions data beside git: `git init` the project first)" if "not a git" in said else ""
        raise UserError(f"`dvc add {path}` failed: {said[-1000:] or f'exit {done.returncode}'}{hint}")
    return [f"{path}.dvc"]


def _ingest_depends_on(dvc_file: Path, path: str, previous: str | None) -> None:
    """The ingest stage of dvc.yaml depends on the data file (in place of the one it had), so that `dvc repro`
    reruns ingest and everything after it when the file changes."""
    yaml_rt = _round_trip()
    document = yaml_rt.load(dvc_file.read_text(encoding="utf-8"))
    deps = document["stages"]["ingest"]["deps"]
    for old in [d for d in deps if d in (previous, path)]:
        deps.remove(old)
    deps.append(path)
    deps.yaml_add_eol_comment(
        "your data (params.yaml data.path; `mlstrategy init` keeps it here)", len(deps) - 1
    )
    import io

    out = io.StringIO()
    yaml_rt.dump(document, out)
    with atomic_output(dvc_file) as tmp:
        tmp.write_text(out.getvalue(), encoding="utf-8")


def table(setup: Setup) -> str:
    """What init decided, as a table for the terminal: column, kind, why, the key that changes it."""
    rows = [("column", "taken as", "why", "change with")] + [
        (d.column, d.kind, d.why, d.key) for d in setup.decisions
    ]
    widths = [min(max(len(r[i]) for r in rows), limit) for i, limit in enumerate((28, 12, 72, 40))]

    def cut(text: str, width: int) -> str:
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = [
        "  ".join(cut(cell, w).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
