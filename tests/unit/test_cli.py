import json
import subprocess
import sys

import pytest

from pipelines.cli import main, parse_args
from pipelines.stages import STAGES

MLSTRATEGY = [sys.executable, "-m", "pipelines.cli"]


def test_diagnose_json_is_the_diagnosis_contract(capsys):
    assert (
        main(
            [
                "diagnose",
                "--human-level",
                "0.01",
                "--train",
                "0.05",
                "--train-dev",
                "0.06",
                "--dev",
                "0.12",
                "--test",
                "0.13",
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert payload["principal"] == "data_mismatch"
    assert payload["problems"] == ["data_mismatch", "avoidable_bias"]
    assert payload["gaps"]["data_mismatch"] == pytest.approx(0.06)
    assert payload["knobs"]


def test_diagnose_without_train_dev_and_test(capsys):
    assert main(["diagnose", "--human-level", "0.01", "--train", "0.01", "--dev", "0.11", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["principal"] == "variance"
    assert payload["gaps"]["data_mismatch"] is None and payload["gaps"]["dev_overfit"] is None


def test_diagnose_table(capsys):
    assert main(["diagnose", "--human-level", "0.01", "--train", "0.15", "--dev", "0.16"]) == 0
    out = capsys.readouterr().out
    assert "principal problem: avoidable_bias" in out and "train a bigger model" in out


def test_errors_given_as_percents_are_refused(capsys):
    assert main(["diagnose", "--human-level", "1", "--train", "15", "--dev", "16"]) == 1
    err = capsys.readouterr().err
    assert "errors are fractions" in err and "Traceback" not in err


def test_bad_number_is_a_usage_error():
    done = subprocess.run(
        [*MLSTRATEGY, "diagnose", "--human-level", "x", "--train", "0.1", "--dev", "0.2"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "expected a number" in done.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["stage"], ["diagnose"], ["gradcheck"], ["ui"]])
def test_help_everywhere(command):
    done = subprocess.run([*MLSTRATEGY, *command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: mlstrategy" in done.stdout


def test_stage_names_match_dvc_yaml():
    from pathlib import Path

    import yaml

    dvc = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())
    assert tuple(dvc["stages"]) == STAGES
    for name, stage in dvc["stages"].items():
        assert stage["cmd"] == f"mlstrategy stage {name}"


@pytest.mark.parametrize(
    ("argv", "passed"),
    [(["run"], []), (["run", "--force"], ["--force"]), (["run", "train", "-f"], ["-f", "train"])],
)
def test_run_passes_its_arguments_to_dvc_repro(argv, passed):
    assert parse_args(argv).dvc_args == passed


def test_unknown_options_elsewhere_are_usage_errors():
    with pytest.raises(SystemExit) as raised:
        parse_args(["stage", "train", "--force"])
    assert raised.value.code == 2


def test_gradcheck_prints_each_check_with_its_verdict(capsys):
    assert main(["gradcheck"]) == 0  # in the project root: params.yaml's train config
    out = capsys.readouterr().out
    assert "epsilon 1e-07, float64, dropout off" in out
    assert out.count("fine: backprop matches the numerical gradient") == 3 and "masked multi-task loss" in out
