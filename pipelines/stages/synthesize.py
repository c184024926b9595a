"""Stage `synthesize` (off by default; params `synthesize.enabled`): artificial data synthesis for a data
mismatch. The non-target examples of train and train_dev are made to look like the target source (for
images: the target's blur, contrast, noise and shifts, estimated from target images, then any user
transform), replacing them or added beside them. The stages after it read data/synthesized/ in place of the
split's train and train_dev.

It measures what it changed: the train-vs-dev domain classifier AUC, and the data-mismatch gap (dev error
minus train_dev error of the train config trained on each version), before and after; and it warns when the
synthesis reuses a few patterns across many examples. Writes data/synthesized/ and metrics/synthesize.json.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from prefect import flow, get_run_logger

from components.columns import frame_of, n_rows, numeric_view, take
from components.evaluation import error_rate
from components.same_distribution import domain_classifier_auc
from components.training import predict_classes, train
from pipelines.shared.synthesizer import TRAINING, Synthesizer
from pipelines.store.artifacts import SYNTHESIS, SYNTHESIZED_DIR, atomic_output, split_path, write_json
from pipelines.store.params import Params
from pipelines.store.tables import classes, feature_columns, read_splits, xy


def mismatch_gap(params: Params, arrays: dict, classes: int) -> dict[str, float]:
    """Train the train config on `arrays['train']`: its train_dev and dev errors and their difference."""
    model, _ = train(params.train, *arrays["train"], classes)
    errors = {
        name: error_rate(arrays[name][1], predict_classes(model, arrays[name][0]))
        for name in ("train_dev", "dev")
    }
    return {**errors, "data_mismatch": errors["dev"] - errors["train_dev"]}


def domain_auc(params: Params, train_x: Any, dev_x: Any) -> float:
    """Train vs dev domain classifier AUC on up to split.checks.sample rows of each (a table's columns
    through `components.columns.numeric_view`)."""
    rng = np.random.default_rng(params.synthesize.seed)
    n = params.split.checks.sample
    pick = [take(x, rng.permutation(n_rows(x))[:n]) for x in (train_x, dev_x)]
    categorical = None
    if params.data.kinds:
        pick, categorical = numeric_view([frame_of(x) for x in pick], params.data.kinds)
    return domain_classifier_auc(*pick, seed=params.synthesize.seed, categorical=categorical).auc


@flow(name="synthesize")
def synthesize_flow(params: Params) -> dict:
    logger = get_run_logger()
    options, data = params.synthesize, params.data
    if not options.enabled:
        with atomic_output(SYNTHESIZED_DIR) as tmp:
            _describe(tmp, "off (params.yaml synthesize.enabled: false): the stages read data/splits")
        write_json(SYNTHESIS, {"enabled": False})
        logger.info("off (params.yaml synthesize.enabled); train and train_dev are the split's")
        return {"enabled": False}
    frames, arrays = read_splits(data, ("train", "train_dev", "dev"), synthesized=False)
    features = feature_columns(frames["train"].columns, data)
    synthesizer = Synthesizer(params, frames, features)
    made, guard = synthesizer(frames, options.strength, options.mode)
    warning = guard.warning(options.max_repeated_share)
    if warning:
        logger.warning(warning)

    labels = classes(data)
    after = {
        **arrays,
        **{name: xy(made[name], data, features, labels) for name in TRAINING if len(made[name])},
    }
    payload = {
        "enabled": True,
        "mode": options.mode,
        "strength": options.strength,
        "degradation": None if synthesizer.degradation is None else asdict(synthesizer.degradation),
        "estimated_from": synthesizer.estimated_from,
        "transform": options.transform,
        "rows": {name: {"before": len(frames[name]), "after": len(made[name])} for name in TRAINING},
        "synthesized": {
            name: int((~frames[name][data.source_column].isin(data.target_sources)).sum())
            for name in TRAINING
        },
        "domain_auc": {
            "before": domain_auc(params, arrays["train"][0], arrays["dev"][0]),
            "after": domain_auc(params, after["train"][0], after["dev"][0]),
        },
        "repeated_share": guard.repeated_share,
        "warnings": [warning] if warning else [],
    }
    if options.measure and "train_dev" in arrays:
        logger.info("measuring the data-mismatch gap: the train config on the split's train, then on the new")
        gaps = [mismatch_gap(params, version, len(labels)) for version in (arrays, after)]
        payload["data_mismatch"] = {"before": gaps[0], "after": gaps[1]}
    with atomic_output(SYNTHESIZED_DIR) as tmp:
        _describe(tmp, f"on: train and train_dev with their non-target examples synthesized ({options.mode})")
        for name in TRAINING:
            made[name].to_parquet(tmp / split_path(name).name, index=False)
    write_json(SYNTHESIS, payload)
    logger.info(
        "synthesized %s non-target examples (%s); domain AUC train vs dev %.3f -> %.3f%s",
        payload["synthesized"],
        options.mode,
        payload["domain_auc"]["before"],
        payload["domain_auc"]["after"],
        "; data mismatch {:.3f} -> {:.3f}".format(
            *(payload["data_mismatch"][k]["data_mismatch"] for k in ("before", "after"))
        )
        if "data_mismatch" in payload
        else "",
    )
    return payload


def _describe(directory: Path, state: str) -> None:
    """A note on what the directory holds; it also keeps it from being empty, which DVC warns about."""
    directory.mkdir()
    (directory / "README.txt").write_text(
        f"Written by the synthesize stage, {state}.\nThe stages after it read train and train_dev from here "
        "when they are here, else from data/splits.\n",
        encoding="utf-8",
    )
