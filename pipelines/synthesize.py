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

import importlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, get_run_logger

from components import synthesis
from components.columns import frame_of, n_rows, numeric_view, take
from components.datasets import degrade
from components.evaluation import error_rate
from components.same_distribution import domain_classifier_auc
from components.training import predict_classes, train
from pipelines.artifacts import SYNTHESIS, SYNTHESIZED_DIR, atomic_output, split_path, write_json
from pipelines.errors import UserError
from pipelines.params import Params
from pipelines.tables import as_images, classes, feature_columns, read_splits, xy

TRAINING = ("train", "train_dev")


def user_transform(spec: str | None) -> synthesis.Transform | None:
    """The `module:function` named in params.yaml synthesize.transform, imported from the project."""
    if not spec:
        return None
    module_name, _, name = spec.partition(":")
    if str(Path.cwd()) not in sys.path:  # stages run at the project root; its modules are the user's
        sys.path.insert(0, str(Path.cwd()))
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as error:
        raise UserError(
            f"params.yaml synthesize.transform: cannot import {spec!r} ({error}); give 'module:function' "
            "importable from the project root"
        ) from None
    if not callable(found):
        raise UserError(f"params.yaml synthesize.transform: {spec!r} is not a function")
    return found


class Synthesizer:
    """Makes the non-target examples of train and train_dev look like the target: the degradation
    (estimated from the target examples of train, or of dev when train has fewer than 20; or as params
    give it), then the user's transform. Built once; `__call__` applies it at any strength and mode."""

    def __init__(self, params: Params, frames: dict[str, pd.DataFrame], features: list[str]) -> None:
        options, data = params.synthesize, params.data
        if not data.source_column or not data.target_sources:
            raise UserError(
                "params.yaml synthesize needs data.source_column and data.target_sources: it makes the "
                "non-target training examples look like the target ones"
            )
        self.data, self.features, self.seed = data, features, options.seed
        self.transform = user_transform(options.transform)
        target = frames["train"][data.source_column].isin(data.target_sources)
        self.estimated_from = "train" if target.sum() >= 20 else "dev"
        looks = frames["train"][target] if self.estimated_from == "train" else frames["dev"]
        if target.all() or looks.empty:
            raise UserError(
                "synthesize: nothing to do: "
                + ("train has no non-target example" if target.all() else "no target example to learn from")
            )
        if options.degradation == "none":
            self.degradation = None
        elif data.image_shape is None:
            raise UserError(
                "params.yaml synthesize.degradation: the built-in degradations need images; set "
                "data.image_shape, or degradation: none with a synthesize.transform of your own"
            )
        elif options.degradation == "auto":
            self.degradation = synthesis.estimate_degradation(
                as_images(frames["train"].loc[~target, features].to_numpy(np.float32), data),
                as_images(looks[features].to_numpy(np.float32), data),
                options.max_shift,
                seed=options.seed,
            )
        else:
            self.degradation = options.degradation
        if self.degradation is None and self.transform is None:
            raise UserError(
                "params.yaml synthesize: degradation none and no transform: nothing to synthesize"
            )

    def rows(self, rows: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
        """Feature rows (n, d) of non-target examples, synthesized: (n, d) float32."""
        out = as_images(rows, self.data) if self.data.image_shape else rows
        if self.degradation is not None:
            out = degrade(out, synthesis.scaled(self.degradation, strength), rng)
        if self.transform is not None:
            out = np.asarray(self.transform(out, rng), dtype=np.float64)
        if out.size != rows.size:
            raise UserError(f"synthesize.transform returned shape {out.shape} for input {rows.shape}")
        return out.reshape(rows.shape).astype(np.float32)

    def table_rows(self, rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        """A table's non-target rows (n, features: the raw columns) through the user's transform, which
        takes and gives a frame of the same columns and rows."""
        assert self.transform is not None  # a table has no built-in degradation (checked at __init__)
        out = self.transform(rows.copy(), rng)
        if (
            not isinstance(out, pd.DataFrame)
            or out.shape != rows.shape
            or list(out.columns) != list(rows.columns)
        ):
            raise UserError(
                f"synthesize.transform must return a frame of the same columns and rows for a table "
                f"(data.features), got {type(out).__name__} {getattr(out, 'shape', '')}"
            )
        return out.set_axis(rows.index)

    def __call__(
        self, frames: dict[str, pd.DataFrame], strength: float = 1.0, mode: str = "replace"
    ) -> tuple[dict[str, pd.DataFrame], synthesis.Diversity]:
        """train and train_dev of `frames` with their non-target examples synthesized (`mode` replace:
        in their place, same ids; add: beside them, ids suffixed '~synth'), and the diversity guard's
        measure (the larger of the two splits')."""
        data, rng = self.data, np.random.default_rng(self.seed)
        made, repeated = {}, 0.0
        for name in TRAINING:
            frame = frames[name]
            keep = ~frame[data.source_column].isin(data.target_sources).to_numpy()
            if not keep.any():
                made[name] = frame
                continue
            synthesized = frame[keep].copy()
            if data.features is not None:  # a table of mixed columns: the transform takes and gives frames
                original = frame.loc[keep, self.features]
                synthesized[self.features] = self.table_rows(original, rng)
                numbers = [c for c in self.features if data.kinds[c] == "numeric"]
                pair = [f[numbers].to_numpy(np.float64) for f in (original, synthesized)]
            else:
                original = frame.loc[keep, self.features].to_numpy(np.float32)
                synthesized[self.features] = self.rows(original, strength, rng)
                pair = [original, synthesized[self.features].to_numpy()]
            share = synthesis.diversity(*pair).repeated_share if pair[0].size else 0.0
            repeated = max(repeated, share)
            if mode == "add":
                synthesized[data.id_column] = synthesized[data.id_column].astype(str) + "~synth"
                made[name] = pd.concat([frame, synthesized], ignore_index=True)
                made[name][data.id_column] = made[name][data.id_column].astype(str)  # one type for Parquet
            else:
                made[name] = pd.concat([frame[~keep], synthesized]).sort_index()
        return made, synthesis.Diversity(repeated)


def available(params: Params) -> bool:
    """Whether the recipe loop can synthesize: two sources with a target, images or a transform, and the
    synthesize stage off (its data is the loop's already)."""
    data, options = params.data, params.synthesize
    return bool(
        not options.enabled
        and data.source_column
        and data.target_sources
        and (options.transform or (data.image_shape and options.degradation != "none"))
    )


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
