"""Params and tags reach MLflow with their secrets masked."""

from __future__ import annotations

import pytest

from pipelines.tracking.runs import MASK, is_secret_key, mask_secrets

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("key", "value", "masked"),
    [
        # A password inside a URL, wherever the URL is.
        ("sweep.storage", "postgresql://user:hunter2@db:5432/x", "postgresql://user:***@db:5432/x"),
        ("sweep.dask_address", "tls://dask:s3cr%40t@10.0.0.1:8786", "tls://dask:***@10.0.0.1:8786"),
        (
            "note",
            "tracking at https://me:pw@mlflow.example.com/ now",
            "tracking at https://me:***@mlflow.example.com/ now",
        ),
        # A query parameter or a connection-string field with a secret name.
        ("remote", "https://s3.example.com/b?token=abc&x=1", "https://s3.example.com/b?token=***&x=1"),
        ("remote", "https://h/p?X-Amz-Security-Token=abc#top", "https://h/p?X-Amz-Security-Token=***#top"),
        ("dsn", "host=db user=me password=hunter2 port=5432", "host=db user=me password=*** port=5432"),
        # The whole value of a secret-named key, strings or not.
        ("db.password", "hunter2", MASK),
        ("mlflow.api_key", "abc", MASK),
        ("client.clientSecret", "abc", MASK),
        ("X-Auth-Token", "abc", MASK),
        ("credentials", ["a", "b"], MASK),
        ("pin.pwd", 1234, MASK),
        # Well-known credentials wherever they appear.
        ("aws", "key AKIAIOSFODNN7EXAMPLE in use", "key *** in use"),
        ("github", "https://ghp_" + "a1" * 18 + "@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("github", "github_pat_" + "A1_" * 10, MASK),
        ("slack", "xoxb-1234567890-abcdefghij", MASK),
        ("openai", "sk-proj-" + "x" * 30, MASK),
        ("jwt", f"got {JWT}.", "got ***."),
        ("header", "Authorization: Bearer abc.def-ghi_jkl", "Authorization: Bearer ***"),
        ("hosts", ["http://u:p@h", "plain"], ["http://u:***@h", "plain"]),
    ],
)
def test_secrets_are_masked(key, value, masked):
    assert mask_secrets({key: value}) == {key: masked}


ORDINARY = {
    "train.learning_rate": 0.001,
    "train.hidden_units": [32, 16],
    "tokenizer": "wordpiece",
    "llm.max_tokens": 256,
    "author": "ada",
    "split.salt": "abc",
    "ingest.path": "data/raw/dataset.parquet",
    "docs": "https://example.com/a/b?page=2&q=x",
    "ssh": "ssh://git@github.com/o/r.git",
    "store": "sqlite:////abs/mlflow.db",
    "dask": "tcp://127.0.0.1:8786",
    "mlflow.source.git.commit": "3f2a" * 10,
    "mlstrategy.error": "bearer of bad news: sk-short",
    "sweep.storage": None,
    "db.password": "",
    "early_stopping": True,
}


def test_ordinary_values_are_untouched():
    assert mask_secrets(ORDINARY) == ORDINARY
    assert mask_secrets({"sweep": {"space": {"lr": [0.1]}}}) == {"sweep": {"space": {"lr": [0.1]}}}


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("DB_PASSWORD", True),
        ("a.b.access_token", True),
        ("aws_secret_access_key", True),
        ("apiKey", True),
        ("private-key", True),
        ("Authorization", True),
        ("tokenizer", False),
        ("max_tokens", False),
        ("password.length", False),  # only the last dotted part counts
        ("keyboard", False),
        ("sort_key", False),
    ],
)
def test_secret_key_rule(key, secret):
    assert is_secret_key(key) is secret


def test_logged_params_and_tags_are_masked_in_the_store(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from pipelines.tracking import runs

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_id = runs.log_pipeline_run(
        "secrets",
        "exec-1",
        {"sweep": {"storage": "postgresql://me:hunter2@db/optuna", "trials": 2}, "db": {"password": "x"}},
        {"error/dev": 0.1},
        {},
        {"mlstrategy.note": "Bearer abcdefghijkl", "dvc.data_path": "data/raw/dataset.parquet"},
        {},
    )
    child = runs.log_nested_run(
        "secrets", "exec-1", "trial 0", {"token": "abc"}, {"dev_metric": 0.9}, {"remote": "s3://k:v@b"}
    )
    runs.record_failure("secrets", "exec-1", "sweep", "cannot reach postgresql://me:hunter2@db/optuna")

    client = MlflowClient(uri)
    run, nested = client.get_run(run_id).data, client.get_run(child).data
    assert run.params == {
        "sweep.storage": "postgresql://me:***@db/optuna",
        "sweep.trials": "2",
        "db.password": MASK,
    }
    assert run.tags["mlstrategy.note"] == "Bearer ***"
    assert run.tags["dvc.data_path"] == "data/raw/dataset.parquet"
    assert run.tags["mlstrategy.error"] == "cannot reach postgresql://me:***@db/optuna"
    assert nested.params == {"token": MASK}
    assert nested.tags["remote"] == "s3://k:***@b"
    assert nested.tags["mlflow.parentRunId"] == run_id
