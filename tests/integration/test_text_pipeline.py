"""Text through the pipeline: a CSV with a text column is validated against its proposed contract, split
(the distribution checks read character n-gram vectors), trained with the Transformer family, evaluated,
diagnosed and analyzed with text tags (short, long, unknown words) and a table of the worst errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.errors import UserError
from pipelines.running.orchestration import run_stage
from pipelines.store import artifacts
from pipelines.store.contract import write_contract
from pipelines.store.params import load_params
from tests.conftest import FAST_PARAMS, copy_project, enter, write_params

pytest.importorskip("tensorflow_text", reason="WordPiece needs TensorFlow Text (tensorflow-text)")


def reviews(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two sources of one sentiment task: long `review`s and short `chat` messages whose cue words are
    sometimes cut short (typos unseen in reviews), the target. 10% of labels flipped."""
    rng = np.random.default_rng(seed)
    cues = {
        1: ["great", "good", "lovely", "excellent", "enjoyed"],
        0: ["bad", "awful", "poor", "boring", "dull"],
    }
    neutral = ["the", "film", "plot", "actor", "story", "it", "was", "scene", "music", "and", "very", "a"]
    rows = []
    for i in range(n):
        source = "chat" if i % 2 else "review"
        label = int(rng.integers(0, 2))
        words = list(
            rng.choice(neutral, int(rng.integers(3, 8) if source == "chat" else rng.integers(12, 30)))
        )
        for _ in range(max(1, len(words) // 5)):
            word = str(rng.choice(cues[label]))
            words.insert(
                int(rng.integers(0, len(words) + 1)),
                word[:-1] if source == "chat" and rng.random() < 0.3 else word,
            )
        label = 1 - label if rng.random() < 0.1 else label
        rows.append({"id": f"{source}-{i:04d}", "source": source, "label": label, "text": " ".join(words)})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def analyzed(tmp_path_factory, prefect_api):
    project = copy_project(tmp_path_factory.mktemp("text"))
    write_params(project, FAST_PARAMS)
    reviews().to_csv(project / "data" / "reviews.csv", index=False)
    write_params(
        project,
        {
            "data": {
                "path": "data/reviews.csv",
                "image_shape": None,
                "text_column": "text",
                "labels": [0, 1],
                "target_sources": ["chat"],
            },
            "train": {
                "family": "auto",
                "epochs": 4,
                "text": {
                    "vocabulary_size": 300,
                    "sequence_length": 32,
                    "embedding_dim": 16,
                    "intermediate_dim": 32,
                },
            },
            "diagnose": {"human_level": {"review": {"typical_human": 0.1}, "chat": {"typical_human": 0.12}}},
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("MLSTRATEGY_EXECUTION_ID", "text-pipeline")
        params = load_params()
        write_contract(params, project / "data" / "reviews.csv", force=True)
        for name in ("ingest", "validate", "split", "train", "evaluate", "diagnose", "analyze"):
            run_stage(name, params)
    return project


def test_text_is_split_with_its_own_distribution_checks(analyzed, monkeypatch):
    enter(analyzed, monkeypatch)
    split = json.loads(artifacts.SPLIT.read_text())
    assert set(split["sizes_by_source"]["dev"]) == {"chat"}
    assert split["dev_test_same_distribution"]["same"]  # both chat: the n-gram vectors cannot tell them apart
    assert split["train_vs_dev_domain_auc"] > 0.8  # mostly reviews against chat: they can


def test_text_trains_the_transformer_and_is_analyzed_with_text_tags(analyzed, monkeypatch):
    enter(analyzed, monkeypatch)
    training = json.loads(artifacts.TRAINING.read_text())
    assert training["family"] == "transformer" and training["flops_per_example"] > 0
    evaluation = json.loads(artifacts.EVALUATION.read_text())
    assert evaluation["errors"]["dev"] < 0.5
    analysis = json.loads(artifacts.ANALYZE.read_text())
    tags = {row["tag"] for row in analysis["tags"]}
    assert "source=chat" in tags and tags & {"short", "long", "unknown_words"}
    worst = analysis["worst"]
    assert worst and {"id", "label", "predicted", "p_label", "tags", "text"} <= set(worst[0])
    assert worst[0]["p_label"] == min(row["p_label"] for row in worst)
    assert artifacts.ERROR_GALLERY.read_bytes().startswith(b"\x89PNG")


def test_a_misnamed_text_column_is_named_at_the_split(analyzed, monkeypatch):
    enter(analyzed, monkeypatch)
    write_params(analyzed, {"data": {"text_column": "body"}})
    try:
        with pytest.raises(UserError, match=r"missing column\(s\) \['body'\] named in params.yaml data"):
            run_stage("split", load_params())
    finally:
        write_params(analyzed, {"data": {"text_column": "text"}})
