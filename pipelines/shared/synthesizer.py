"""The synthesizer of artificial data synthesis, shared by the synthesize stage and the recipe loop (improve):
the non-target training examples made to look like the target source."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from components import synthesis
from components.datasets import degrade
from pipelines.errors import UserError
from pipelines.store.params import Params
from pipelines.store.tables import as_images

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
