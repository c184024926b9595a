from pathlib import Path

import pytest
import yaml

from pipelines.errors import UserError
from pipelines.store.params import load_params

ROOT = Path(__file__).resolve().parents[2]


def params_file(tmp_path: Path, override: dict) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for dotted, value in override.items():
        *parents, key = dotted.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[key] = value
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_project_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.train.hidden_units == (128, 64)
    assert params.data.target_sources == ["phone"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train.learning_rat": 0.1}, "train.learning_rat: unknown key"),
        ({"trian": {}}, "trian: unknown key"),
        ({"train.learning_rate": "fast"}, "train.learning_rate: Input should be a valid number"),
        ({"train.learning_rate": -0.1}, "learning_rate must be positive"),
        ({"split.train_dev_fraction": 1.2}, "train_dev_fraction must be in [0, 1)"),
        (
            {"split.ratios": {"train": 0.7, "dev": 0.2, "test": 0.2}},
            "split: ratios must sum to 1, got train 0.7 + dev 0.2 + test 0.2 = 1.1",
        ),
        (
            {"split.checks.on_leak": "ignore"},
            "split.checks.on_leak: Input should be 'drop', 'warn' or 'fail'",
        ),
        ({"split.checks.min_improvment": 0.01}, "split.checks.min_improvment: unknown key"),
        ({"diagnose.human_level": {"phone": {"expert": 2}}}, "human_level.phone.expert = 2.0 is above 1"),
        (
            {"diagnose.human_level": {"phone": {"expert": -0.1}}},
            "human_level.phone.expert = -0.1 is negative",
        ),
        ({"evaluate.optimizing_metric": "auc"}, "evaluate.optimizing_metric"),
        (
            {"evaluate.optimizing_metric": "f1"},
            "f1 is a binary metric but the task has 10 classes; use macro_f1",
        ),
        (
            {"evaluate.optimizing_metric": "weighted_error"},
            "needs per-example weights: set evaluate.weight_column",
        ),
        ({"evaluate.satisficing": {"memory_mb": 3}}, "unknown satisficing measure 'memory_mb'"),
        ({"data.path": "../elsewhere.csv"}, "must be a path inside the project"),
        ({"data.feature_range": [1, 0]}, "low < high"),
        (
            {"sweep.storage": "postgresql://me:hunter2@db/optuna"},
            "sweep.storage: holds a password, which would end up in git, dvc.lock and Prefect",
        ),
        (
            {"sweep.dask_address": "tls://dask:s3cret@10.0.0.1:8786"},
            "write env:NAME here",
        ),
        (
            {"sweep.coarse_epochs": 40},
            "sweep.coarse_epochs: 40 must be below the trials' epochs (40, sweep.epochs or train.epochs)",
        ),
    ],
)
def test_bad_params_name_the_key(tmp_path, override, message):
    with pytest.raises(UserError) as raised:
        load_params(params_file(tmp_path, override))
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(tmp_path / "params.yaml"))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_the_coarse_round_screens_in_caviar_mode_only_and_only_before_a_finer_round():
    from pipelines.store.params import SweepParams

    assert SweepParams().screen_epochs(40) == 5  # successive halving's first rung: a ninth
    assert SweepParams(coarse_epochs=3).screen_epochs(40) == 3
    assert SweepParams(coarse_epochs=None).screen_epochs(40) is None
    assert SweepParams(mode="panda").screen_epochs(40) is None
    assert SweepParams(rounds=1).screen_epochs(40) is None  # the only round trains fully
    assert SweepParams().screen_epochs(1) is None  # no shorter trial to screen with


def test_a_secret_address_is_read_from_the_environment_it_names(tmp_path, monkeypatch):
    params = load_params(params_file(tmp_path, {"sweep.storage": "env:MY_OPTUNA_DB"}))
    monkeypatch.delenv("MY_OPTUNA_DB", raising=False)
    with pytest.raises(UserError, match=r"sweep.storage: env:MY_OPTUNA_DB, but environment variable"):
        params.sweep.address("storage")
    monkeypatch.setenv("MY_OPTUNA_DB", "postgresql://me:hunter2@db/optuna")
    assert params.sweep.address("storage") == "postgresql://me:hunter2@db/optuna"
    assert "hunter2" not in params.model_dump_json()  # what dvc.lock and Prefect's parameters get
