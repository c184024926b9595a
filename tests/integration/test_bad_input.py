"""The bad-input catalogue: one case per kind of bad data or bad parameter. Each must end the stage with
one clear message naming what and where (no traceback), exit status 1, and the last good outputs
unchanged (hashed before and after). Runs the CLI in-process (`mlstrategy stage NAME`) on a project whose
ingest, validate, split and compare once succeeded on the bundled data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.cli import main
from pipelines.store import artifacts
from tests.conftest import DATA_STAGES, copy_of, digest, enter, run_stages, write_params

pytestmark = pytest.mark.catalogue("bad-input")

# Each stage's outputs, in pipeline order: the failed stage's and every later one's must be unchanged.
OUTPUTS = {
    "ingest": (artifacts.INGESTED,),
    "validate": (artifacts.RAW_DATA, artifacts.VALIDATION, artifacts.DATA_DOCS),
    "split": (artifacts.SPLITS_DIR, artifacts.SPLIT),
    "compare": (
        artifacts.COMPARE,
        artifacts.COMPARE_END_TO_END,
        artifacts.COMPARE_TRANSFER,
        artifacts.COMPARE_FIGURE,
    ),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory, split_project):
    """Every stage of OUTPUTS once succeeded: each case has last good outputs to keep."""
    project = copy_of(split_project, tmp_path_factory.mktemp("bad_input"))
    return run_stages(project, tuple(stage for stage in OUTPUTS if stage not in DATA_STAGES))


@pytest.fixture
def project(good, monkeypatch):
    enter(good, monkeypatch, "bad-input")  # the CLI sets the execution id; undone after each case
    params, contract = (good / "params.yaml").read_text(), (good / artifacts.CONTRACT).read_text()
    yield good
    (good / "params.yaml").write_text(params)
    (good / artifacts.CONTRACT).write_text(contract)


def digits_table(n: int = 300) -> pd.DataFrame:
    """A small valid user table: id, label and 64 pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    frame = pd.DataFrame((digits.images[:n] / 16.0).reshape(n, -1), columns=[f"p{i}" for i in range(64)])
    frame.insert(0, "label", digits.target[:n])
    frame.insert(0, "id", [f"u{i:04d}" for i in range(n)])
    return frame


def use_table(project: Path, name: str, contract: str = "columns: {}\n", **data) -> None:
    """Point params.yaml at the user's file `name`, with a contract file of its own (default: no rules but
    params.yaml's)."""
    write_params(
        project,
        {"data": {"path": name, "source_column": None, "target_sources": [], "image_shape": None, **data}},
    )
    (project / artifacts.CONTRACT).write_text(contract)


def bad_csv(project: Path, text: bytes | str, name: str = "bad.csv") -> None:
    (project / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    use_table(project, name)


def bad_table(project: Path, frame: pd.DataFrame, name: str = "bad.parquet", **data) -> None:
    frame.to_parquet(project / name, index=False)
    use_table(project, name, **data)


def corrupt_image(project: Path) -> None:
    """Two class folders of 8x8 PNGs, one of which is cut short."""
    from PIL import Image

    for label in (0, 1):
        (project / "images" / str(label)).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), color=40 * i).save(project / f"images/{label}/{i}.png")
    whole = (project / "images/1/3.png").read_bytes()
    (project / "images/1/3.png").write_bytes(whole[: len(whole) // 2])
    use_table(project, "images", image_shape=[8, 8])


def text_table() -> pd.DataFrame:
    """Short reviews as a text column, one of them far longer than the contract allows."""
    frame = digits_table(60)[["id", "label", "p0"]]
    frame.insert(2, "review", [f"review {i}" for i in range(60)])
    frame.loc[17, "review"] = "x" * 5000
    return frame


def bad_params(project: Path, replace: tuple[str, str]) -> None:
    path = project / "params.yaml"
    old, new = replace
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def transfer_source_of_another_input(project: Path) -> None:
    """A .keras model that takes 32 features, named as the transfer source of 64-pixel images."""
    import keras

    inputs = keras.Input((32,))
    (project / "models").mkdir(exist_ok=True)
    keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(inputs)).save(
        project / "models/other.keras"
    )
    write_params(project, {"compare": {"transfer_source": "models/other.keras", "end_to_end": False}})


def with_nan_and_inf() -> pd.DataFrame:
    frame = digits_table()
    frame.loc[4, "p3"] = np.nan
    frame.loc[7, "p9"] = np.inf
    return frame


def one_class() -> pd.DataFrame:
    frame = digits_table()
    frame["label"] = 3
    return frame


def duplicate_ids() -> pd.DataFrame:
    frame = digits_table()
    frame.loc[5, "id"] = frame.loc[2, "id"]
    return frame


def wrong_type() -> pd.DataFrame:
    frame = digits_table()
    frame["p5"] = frame["p5"].astype(str)
    return frame


def one_nine() -> pd.DataFrame:
    """A single 9: dev or test (or both) cannot have one."""
    frame = digits_table(1000)
    return frame.drop(index=frame.index[frame["label"] == 9][1:]).reset_index(drop=True)


def mixed_table(n: int = 60) -> pd.DataFrame:
    """A small table as users have them: string labels, a number, a category, a date."""
    return pd.DataFrame(
        {
            "id": [f"m{i:03d}" for i in range(n)],
            "label": ["no", "yes"] * (n // 2),
            "size": np.linspace(1.0, 9.0, n),
            "colour": ["red", "green", "blue"] * (n // 3),
            "when": [f"2021-03-{1 + i % 28:02d}" for i in range(n)],
        }
    )


def use_mixed(project: Path, frame: pd.DataFrame, **data) -> None:
    """Point params.yaml at `frame` as a CSV with its kinds, and a contract that knows the colours."""
    frame.to_csv(project / "mixed.csv", index=False)
    use_table(
        project,
        "mixed.csv",
        contract="columns:\n  size: {type: float}\n"
        "  colour: {type: string, categories: [blue, green, red]}\n",
        features={"size": "numeric", "colour": "categorical", "when": "date"},
        date_formats={"when": "%Y-%m-%d"},
        labels=["no", "yes"],
        **data,
    )


# (name, how to break the project, stages to run, what the message must say)
CASES = [
    (
        "a date that does not parse",
        lambda p: use_mixed(
            p, mixed_table().assign(when=lambda f: f["when"].where(f.index != 3, "2021-02-30"))
        ),
        ["ingest", "validate"],
        "expect_column_values_to_match_strftime_format on column 'when': 1 bad value(s)",
    ),
    (
        "a label outside the class list",
        lambda p: use_mixed(p, mixed_table().assign(label=lambda f: f["label"].where(f.index != 5, "maybe"))),
        ["ingest", "validate"],
        "expect_column_values_to_be_in_set on column 'label': 1 bad value(s) (1.67%), e.g. ['maybe'] at "
        "rows [5]",
    ),
    (
        "a new category when new categories fail",
        lambda p: use_mixed(
            p,
            mixed_table().assign(colour=lambda f: f["colour"].where(f.index != 7, "purple")),
            new_categories="fail",
        ),
        ["ingest", "validate"],
        "on column 'colour': 1 bad value(s) (1.67%), e.g. ['purple'] at rows [7] (0-based; ids ['m007']) "
        "(categories the contract does not know (data.new_categories: fail))",
    ),
    (
        "a column that is entirely missing",
        lambda p: use_mixed(p, mixed_table().assign(size=np.nan)),
        ["ingest", "validate"],
        "expect_column_values_to_not_be_null on column 'size': 60 bad value(s)",
    ),
    (
        "a semicolon-separated CSV",
        lambda p: bad_csv(p, "id;label;p0\na;1;0.5\nb;0;0.1\n"),
        ["ingest"],
        "bad.csv: line 1 holds one column when split at ',', but the file looks separated by ';': set "
        "params.yaml data.delimiter: ';'",
    ),
    (
        "duplicate column names",
        lambda p: bad_csv(p, "id,label,p0,p0\na,1,0.5,0.1\n"),
        ["ingest"],
        "bad.csv: line 1 names column 'p0' twice (columns 3 and 4); rename one",
    ),
    (
        "a header-only file",
        lambda p: bad_csv(p, "id,label,p0\n"),
        ["ingest"],
        "bad.csv: no rows, only the header",
    ),
    (
        "ragged CSV rows",
        lambda p: bad_csv(p, "id,label,p0\na,1,0.5\nb,0,0.1,0.7,0.9\n"),
        ["ingest"],
        "bad.csv: cannot be read as CSV",
    ),
    (
        "missing label column",
        lambda p: bad_table(p, digits_table().drop(columns="label")),
        ["ingest"],
        "bad.parquet: missing column(s) ['label']",
    ),
    (
        "wrong column type",
        lambda p: bad_table(p, wrong_type()),
        ["ingest", "validate"],
        "expect_column_values_to_be_in_type_list on column 'p5'",
    ),
    (
        "NaN and inf",
        lambda p: bad_table(p, with_nan_and_inf()),
        ["ingest", "validate"],
        "expect_column_values_to_not_be_null on column 'p3': 1 bad value(s)",
    ),
    ("empty file", lambda p: bad_csv(p, ""), ["ingest"], "bad.csv: empty file (no header line)"),
    (
        "a single class",
        lambda p: bad_table(p, one_class()),
        ["ingest", "validate"],
        "expect_column_unique_value_count_to_be_between on column 'label'",
    ),
    (
        "a class absent from dev",
        lambda p: (
            bad_table(p, one_nine(), min_rows_per_class=1),
            write_params(p, {"split": {"checks": {"on_missing_class": "fail"}}}),
        ),
        ["ingest", "validate", "split"],
        "has no example of class(es) [9] (split.checks.on_missing_class: fail)",
    ),
    (
        "too few rows of a class",
        lambda p: bad_table(p, one_nine()),
        ["ingest", "validate"],
        "min_rows_per_class on column 'label'",
    ),
    (
        "duplicate ids",
        lambda p: bad_table(p, duplicate_ids()),
        ["ingest", "validate"],
        "expect_column_values_to_be_unique on column 'id'",
    ),
    (
        "non-UTF-8 text",
        lambda p: bad_csv(p, "id,label,p0\nok,0,0.1\n\xe9t\xe9,1,0.5\n".encode("latin-1")),
        ["ingest"],
        "bad.csv: line 3 is not UTF-8 text (byte 1 of the line: b'\\xe9')",
    ),
    (
        "text longer than the contract allows",
        lambda p: (
            text_table().to_csv(p / "reviews.csv", index=False),
            use_table(
                p,
                "reviews.csv",
                contract="columns:\n  review: {type: string, length: [1, 500]}\n",
                tag_columns=["review"],
                min_rows_per_class=1,
            ),
        ),
        ["ingest", "validate"],
        "expect_column_value_lengths_to_be_between on column 'review': 1 bad value(s)",
    ),
    (
        "a corrupt image",
        corrupt_image,
        ["ingest"],
        "images: 1 image(s) that do not decode: 1/3.png (",
    ),
    (
        "a file over the memory budget",
        lambda p: bad_table(p, digits_table(), max_memory_mb=0.05),
        ["ingest"],
        "bad.parquet: about 0.152 MB in memory, over params.yaml data.max_memory_mb (0.05 MB)",
    ),
    (
        "a column outside the contract",
        lambda p: bad_table(
            p,
            digits_table().assign(leak=1.0),
            contract="extra_columns: forbid\ncolumns:\n"
            + "".join(f"  p{i}: {{type: float, min: 0, max: 1}}\n" for i in range(64)),
        ),
        ["ingest", "validate"],
        "expect_table_columns_to_match_set on table (not in the contract ['leak'])",
    ),
    (
        "contract: unknown rule",
        lambda p: (p / artifacts.CONTRACT).write_text("columns:\n  px_0_0: {type: float, mni: 0}\n"),
        ["validate"],
        "data/contract.yaml: columns.px_0_0.mni: unknown key (known: type, min, max",
    ),
    (
        "params: unknown key",
        lambda p: bad_params(p, ("  epochs: 3", "  epochs: 3\n  epohcs: 3")),
        ["split"],
        "train.epohcs: unknown key",
    ),
    (
        "params: wrong type",
        lambda p: bad_params(p, ("  batch_size: 64", "  batch_size: sixty-four")),
        ["split"],
        "train.batch_size",
    ),
    (
        "params: ratios not summing to 1",
        lambda p: bad_params(p, ("  ratios: null", "  ratios: {train: 0.8, dev: 0.3, test: 0.1}")),
        ["split"],
        "ratios must sum to 1, got train 0.8 + dev 0.3 + test 0.1 = 1.2",
    ),
    (
        "params: negative value",
        lambda p: bad_params(p, ("  dropout: 0.0", "  dropout: -0.5")),
        ["split"],
        "dropout must be in [0, 1), got -0.5",
    ),
    (
        "params: a model family that cannot read the data",
        lambda p: bad_params(p, ("  family: mlp", "  family: transformer")),
        ["split"],
        "train.family: 'transformer' cannot read image data (it reads text; auto picks 'cnn')",
    ),
    (
        "a transfer source whose input shape differs",
        transfer_source_of_another_input,
        ["compare"],
        "the transfer source takes inputs of shape [32] per example, but the target data has [64]",
    ),
    (
        "params: path outside the project",
        lambda p: write_params(p, {"data": {"path": "../elsewhere/data.csv"}}),
        ["ingest"],
        "'../elsewhere/data.csv' must be a path inside the project",
    ),
]


@pytest.mark.parametrize(("name", "breaks", "stages", "says"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_gets_one_clear_message_and_keeps_the_last_good_outputs(
    project, capsys, name, breaks, stages, says
):
    before = {stage: digest(*paths) for stage, paths in OUTPUTS.items()}
    assert all(before.values()), {stage: len(found) for stage, found in before.items()}
    breaks(project)
    codes = []
    for stage in stages:
        codes.append(main(["stage", stage]))
        if codes[-1]:
            break
    err = capsys.readouterr().err
    assert codes[-1] in (1, 65), f"{name}: exit codes {codes}"  # bad settings (1) or bad data (65)
    failed = stages[len(codes) - 1]
    assert f"mlstrategy stage {failed}: error: " in err and says in err, err[-2000:]
    assert "Traceback" not in err
    later = list(OUTPUTS)[list(OUTPUTS).index(failed) :]
    assert {stage: digest(*OUTPUTS[stage]) for stage in later} == {stage: before[stage] for stage in later}
