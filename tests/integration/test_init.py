"""`mlstrategy init` on a copy of the project (a git repository, as a clone is): what it decides for a real
table, what it writes (params.yaml with its comments, the contract, DVC), and the data it refuses, each
with one message naming file, column and lines, exit status 1 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.cli import main
from pipelines.store import artifacts
from pipelines.store.params import load_params
from tests.conftest import copy_project, digest, enter, git_repository


def penguins_raw() -> Path:
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins-raw.csv"


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A fresh copy of the project, committed in git, as the working directory."""
    copy_project(tmp_path)
    (tmp_path / artifacts.REFERENCE_PROFILE).write_text("{}")  # the bundled data's drift reference
    return enter(git_repository(tmp_path), monkeypatch)


def init(*args: str) -> int:
    return main(["init", *args])


def test_init_decides_each_column_and_writes_a_setup_that_runs(repo, capsys):
    (repo / "data/penguins.csv").write_bytes(penguins_raw().read_bytes())
    assert init("--data", "data/penguins.csv", "--label", "Species", "--human-level", "0.02") == 0
    out = capsys.readouterr().out
    for line in (
        "Date Egg             date         dates as %Y-%m-%d",
        "Region               ignore       one value ('Anvers') in every row: constant",
        "Individual ID        ignore       190 distinct values in 344 rows: an id, not a feature",
        "Clutch Completion    boolean      two values",
        "Comments             categorical  10 values, 84% missing",  # a few notes, repeated
        "Sex                  categorical  2 values, 3% missing",
        "data.features.Sex",
        "ingest makes 'row_id' from a hash of each row's values",
    ):
        assert line in out, out
    params = load_params(repo / "params.yaml")
    data = params.data
    assert data.labels == sorted(pd.read_csv(repo / "data/penguins.csv")["Species"].unique())
    assert (data.id_column, data.make_ids, data.source_column, data.image_shape) == (
        "row_id",
        True,
        None,
        None,
    )
    assert data.features["Culmen Length (mm)"] == "numeric" and data.date_formats == {"Date Egg": "%Y-%m-%d"}
    assert params.diagnose.human_level == {"all": {"typical_human": 0.02}}
    assert ("Culmen Length (mm)", "numeric") in params.train.columns
    text = (repo / "params.yaml").read_text()
    assert "# Every knob of the pipeline." in text and "# stable example id; decides the split" in text
    contract = yaml.safe_load((repo / artifacts.CONTRACT).read_text())["columns"]
    assert contract["Island"] == {"type": "string", "categories": ["Biscoe", "Dream", "Torgersen"]}
    assert contract["row_id"] == {"type": "string", "unique": True}
    assert "data/penguins.csv" in yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["ingest"]["deps"]
    assert (repo / "data/penguins.csv.dvc").is_file()  # a versioned DVC input
    assert not (repo / artifacts.REFERENCE_PROFILE).exists()  # a fresh drift reference
    assert (repo / artifacts.RELABELS).read_text() == "id,corrected\n"

    # The project's own setup now: replaced only with --force.
    assert init("--data", "data/penguins.csv", "--label", "Species") == 1
    assert "pass --force to replace that setup" in capsys.readouterr().err
    assert init("--data", "data/penguins.csv", "--label", "Species", "--force") == 0
    out = capsys.readouterr().out
    assert "human-level error: a placeholder" in out
    assert load_params(repo / "params.yaml").diagnose.placeholder


def test_a_semicolon_file_and_its_missing_markers_are_detected(repo, capsys):
    frame = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(60)],
            "answer": ["yes", "no"] * 30,
            "age": [str(20 + i % 40) if i % 7 else "?" for i in range(60)],
        }
    )
    frame.to_csv(repo / "data/survey.csv", sep=";", index=False)
    assert init("--data", "data/survey.csv", "--label", "answer", "--id", "id") == 0
    out = capsys.readouterr().out
    assert "data/survey.csv is separated by ';' (data.delimiter)" in out
    assert "'?' mark missing values (data.na_values)" in out
    data = load_params(repo / "params.yaml").data
    assert (data.delimiter, data.na_values, data.labels, data.id_column) == (";", ["?"], ["no", "yes"], "id")
    assert data.features == {"age": "numeric"}


def rows(n: int = 40) -> dict:
    return {
        "id": [f"r{i}" for i in range(n)],
        "label": ["a", "b"] * (n // 2),
        "x": [float(i) for i in range(n)],
    }


# (name, the file's text, init's extra arguments, what the message must say)
REFUSED = [
    (
        "a class with a single example",
        pd.DataFrame(rows()).assign(label=["a", "b"] * 19 + ["a", "c"]).to_csv(index=False),
        [],
        "class(es) with fewer than 5 examples, too few to reach train, dev and test: 'c': 1 (line 41)",
    ),
    (
        "mixed types in one column",
        pd.DataFrame(rows()).assign(x=["12"] * 5 + ["abc"] + ["13"] * 34).to_csv(index=False),
        [],
        "column 'x' holds numbers but also 1 value(s) that are not (row 5: 'abc') (line 7)",
    ),
    (
        "duplicate column names",
        "id,label,x,x\n" + "".join(f"r{i},{'ab'[i % 2]},1,2\n" for i in range(40)),
        [],
        "line 1 names column 'x' twice (columns 3 and 4)",
    ),
    ("a header-only file", "id,label,x\n", [], "no rows, only the header line (3 columns)"),
    (
        "a label column that is not there",
        pd.DataFrame(rows()).to_csv(index=False),
        ["--label", "klass"],
        "no column 'klass' (--label); columns: ['id', 'label', 'x']",
    ),
    (
        "an id that repeats",
        pd.DataFrame(rows()).assign(id=["r1"] * 40).to_csv(index=False),
        ["--id", "id"],
        "--id 'id' is not a unique id: 40 rows share or lack one (lines 2, 3, 4, 5, 6 and 35 more)",
    ),
    (
        "rows without a label",
        pd.DataFrame(rows()).assign(label=["a", "b"] * 19 + [None, "a"]).to_csv(index=False),
        [],
        "1 row(s) have no 'label' (line 40)",
    ),
    (
        "a number to predict, not a class",
        pd.DataFrame(rows(400)).assign(label=[i / 7 for i in range(400)]).to_csv(index=False),
        [],
        "column 'label' has 400 distinct values with fractions: a number to predict, not a class",
    ),
]


@pytest.mark.parametrize(("name", "text", "extra", "says"), REFUSED, ids=[case[0] for case in REFUSED])
def test_init_refuses_data_that_cannot_go_through_and_writes_nothing(repo, capsys, name, text, extra, says):
    (repo / "data/mine.csv").write_text(text)
    before = digest(repo / "params.yaml", repo / "dvc.yaml", repo / "data")
    arguments = ["--data", "data/mine.csv", "--label", "label", *extra]
    assert init(*arguments) in (1, 65)  # a bad setting (errors.UserError) or bad data (DataError)
    err = capsys.readouterr().err
    assert err.startswith("mlstrategy init: error: data/mine.csv: ") and says in err, err
    assert "Traceback" not in err
    assert digest(repo / "params.yaml", repo / "dvc.yaml", repo / "data") == before


def test_a_category_with_thousands_of_values_is_embedded_and_capped(repo, capsys):
    n = 6000
    frame = pd.DataFrame(
        {"label": ["a", "b"] * (n // 2), "zip": [f"z{i % 2500}" for i in range(n)], "x": range(n)}
    )
    frame.to_csv(repo / "data/zips.csv", index=False)
    assert init("--data", "data/zips.csv", "--label", "label") == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("zip ")]
    assert line.split()[1] == "categorical" and "2500 values: the 1,000 most frequent kept" in line
    from pipelines.stages.train import table_warnings
    from pipelines.store.params import Params

    params = load_params(repo / "params.yaml")
    small = Params.model_validate({**params.model_dump(), "train": {"tabular": {"max_categories": 100}}})
    from components.columns import model_inputs

    x = model_inputs(frame, params.data.kinds)
    (warning,) = table_warnings(small, x)
    assert warning.startswith("column 'zip' has 2,500 categories on train: the model keeps the 100 most")


def test_a_parquet_file_with_timestamps_and_a_csv_with_decimal_commas(repo, capsys):
    n = 60
    frame = pd.DataFrame(
        {
            "label": ["a", "b"] * (n // 2),
            "when": pd.date_range("2021-01-01", periods=n, freq="D"),  # a real timestamp: no format needed
            "x": [i / 3 for i in range(n)],
        }
    )
    frame.to_parquet(repo / "data/stamps.parquet", index=False)
    assert init("--data", "data/stamps.parquet", "--label", "label") == 0
    data = load_params(repo / "params.yaml").data
    assert data.features == {"when": "date", "x": "numeric"} and data.date_formats == {}

    frame.assign(x=[f"{i / 4:.2f}".replace(".", ",") for i in range(n)]).to_csv(
        repo / "data/commas.csv", sep=";", index=False
    )
    assert init("--data", "data/commas.csv", "--label", "label", "--force") == 0
    assert "writes decimals with a comma, 1,5 (data.decimal)" in capsys.readouterr().out
    data = load_params(repo / "params.yaml").data
    assert (data.delimiter, data.decimal, data.features["x"]) == (";", ",", "numeric")
