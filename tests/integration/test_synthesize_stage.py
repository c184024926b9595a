"""The synthesize stage on the bundled data, whose phone images are degraded scans: synthesis estimates the
planted degradation and lowers the domain AUC and the data-mismatch gap; the stages after it read its
train; off, it changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import UserError
from pipelines.running.orchestration import run_stage
from pipelines.store import artifacts
from pipelines.store.params import load_params
from pipelines.store.tables import read_splits
from tests.conftest import copy_of, enter, write_params


@pytest.fixture(scope="module")
def splits(tmp_path_factory, split_project):
    return copy_of(split_project, tmp_path_factory.mktemp("synth"))


@pytest.fixture
def here(splits, monkeypatch):
    return enter(splits, monkeypatch)


def test_off_by_default_leaves_the_splits_as_they_are(here):
    run_stage("synthesize", load_params())
    assert json.loads(artifacts.SYNTHESIS.read_text()) == {"enabled": False}
    assert [p.name for p in artifacts.SYNTHESIZED_DIR.iterdir()] == ["README.txt"]
    assert artifacts.split_path("train") == artifacts.SPLITS_DIR / "train.parquet"


def test_synthesis_lowers_the_planted_mismatch(here):
    write_params(here, {"synthesize": {"enabled": True}, "train": {"epochs": 15, "hidden_units": [64]}})
    try:
        run_stage("synthesize", load_params())
    finally:
        write_params(here, {"synthesize": {"enabled": False}})
    found = json.loads(artifacts.SYNTHESIS.read_text())
    planted = load_params().ingest.phone
    assert found["degradation"]["blur_sigma"] == pytest.approx(planted.blur_sigma, abs=0.15)
    assert found["degradation"]["contrast"] == pytest.approx(planted.contrast, abs=0.1)
    assert found["degradation"]["noise_std"] == pytest.approx(planted.noise_std, abs=0.03)
    assert found["domain_auc"]["after"] < found["domain_auc"]["before"] - 0.2
    gap = found["data_mismatch"]
    assert gap["after"]["data_mismatch"] < gap["before"]["data_mismatch"]
    assert found["warnings"] == [] and found["repeated_share"] < 0.2
    # Replace mode: same ids, same sizes; the stages after it read the synthesized train.
    frames, _ = read_splits(load_params().data, ("train", "train_dev", "dev"))
    original = pd.read_parquet(artifacts.SPLITS_DIR / "train.parquet")
    assert frames["train"]["id"].tolist() == original["id"].tolist()
    scans = (original["source"] == "scan").to_numpy()
    pixels = [c for c in original.columns if c.startswith("px_")]
    assert not np.allclose(frames["train"].loc[scans, pixels], original.loc[scans, pixels])
    assert np.array_equal(frames["train"].loc[~scans, pixels], original.loc[~scans, pixels])
    run_stage("synthesize", load_params())  # off again: the overlay is gone
    assert artifacts.split_path("train") == artifacts.SPLITS_DIR / "train.parquet"


def reuse_three_patterns(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A user transform with the seeds' 'one hour of car noise': three noise patterns for every image."""
    bank = np.random.default_rng(0).normal(0.0, 0.1, size=(3, *images.shape[1:]))
    return np.clip(images + bank[rng.integers(0, 3, len(images))], 0.0, 1.0)


def test_the_diversity_guard_warns_on_a_small_reused_source(here):
    (here / "my_transforms.py").write_text(
        "from tests.integration.test_synthesize_stage import reuse_three_patterns\n"
    )
    write_params(
        here,
        {
            "synthesize": {
                "enabled": True,
                "mode": "add",
                "degradation": "none",
                "transform": "my_transforms:reuse_three_patterns",
                "measure": False,
            }
        },
    )
    try:
        run_stage("synthesize", load_params())
    finally:
        write_params(
            here,
            {
                "synthesize": {
                    "enabled": False,
                    "mode": "replace",
                    "degradation": "auto",
                    "transform": None,
                    "measure": True,
                }
            },
        )
    found = json.loads(artifacts.SYNTHESIS.read_text())
    assert found["repeated_share"] > 0.9
    assert "small synthesis source reused across many examples" in found["warnings"][0]
    assert found["rows"]["train"]["after"] == found["rows"]["train"]["before"] + found["synthesized"]["train"]
    run_stage("synthesize", load_params())


def test_bad_transform_is_named(here):
    write_params(here, {"synthesize": {"enabled": True, "degradation": "none", "transform": "nowhere:fn"}})
    try:
        with pytest.raises(UserError, match=r"synthesize.transform: cannot import 'nowhere:fn'"):
            run_stage("synthesize", load_params())
    finally:
        write_params(here, {"synthesize": {"enabled": False, "degradation": "auto", "transform": None}})
