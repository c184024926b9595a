"""Hyperparameter tuning as the course teaches it: random values, never a grid; the learning rate on a log
scale; momentum and Adam's betas as 1 - beta on a log scale; coarse to fine (sample a box, zoom in on the
best region, sample again); the most important hyperparameters first.

Sampling and pruning are Optuna's (its RandomSampler on a box given as distributions, or on request its
TPESampler fitted on the trials inside the box; its median and successive-halving pruners); the box and its
zooming are `components.search_space`'s. This module ranks trials, promotes them between rungs, and trains
one trial while reporting its dev metric each epoch.
Nothing here knows about Prefect or MLflow: the `sweep` stage runs trials as tasks and logs them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.config import TrainConfig
from components.search_space import REDUCTION_FACTOR, SearchSpace

if TYPE_CHECKING:
    import optuna


def halving(min_resource: int) -> optuna.pruners.BasePruner:
    """Optuna's successive halving (first rung at `min_resource` epochs, reduction factor
    REDUCTION_FACTOR), counting each configuration once at a rung: a promoted trial (user attr
    `promoted_from`) continues a screened one and records the rungs it passed again, so the screened one's
    records are left out; counted twice, they would raise the bar every other trial must pass."""
    import optuna

    class Halving(optuna.pruners.SuccessiveHalvingPruner):
        def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
            return super().prune(_WithoutContinued(study), trial)

    return Halving(min_resource=min_resource, reduction_factor=REDUCTION_FACTOR)


class _WithoutContinued:
    """A study as halving's pruner reads it: without the trials a promoted trial continues, nor a promoted
    trial that failed (a killed sweep's, promoted again on resume)."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _kept(self, trial: optuna.trial.FrozenTrial) -> bool:
        return not ("promoted_from" in trial.user_attrs and trial.state.name == "FAIL")

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list:
        return self._without(self._study.get_trials(deepcopy=deepcopy, states=states))

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list:
        return self._without(self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache))

    def _without(self, trials: list) -> list:
        continued = {t.user_attrs.get("promoted_from") for t in trials}
        return [t for t in trials if t.number not in continued and self._kept(t)]


class _InBox(_WithoutContinued):
    """A study as a round's TPE reads it: the trials so far whose values lie inside the round's box
    (each configuration once), their params under the box's keys (a finer box of mini-batch sizes is
    another key: Optuna keeps one set of choices per name)."""

    def __init__(self, study: optuna.Study, box: SearchSpace) -> None:
        super().__init__(study)
        self._box = box

    def _without(self, trials: list) -> list:
        inside = []
        for trial in super()._without(trials):
            values = trial.user_attrs.get("values", {})
            params = {p.key: p.sampled(values.get(p.name)) for p in self._box.parameters}
            if None not in params.values():
                trial = copy.copy(trial)
                trial.params, trial.distributions = params, self._box.distributions()
                inside.append(trial)
        return inside


def box_sampler(kind: str, box: SearchSpace, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of one round's box (trials record their config values as user attr `values`). `random`:
    Optuna's RandomSampler. `tpe`: its TPESampler fitted on the trials so far that lie inside the box
    (screened and pruned ones ranked below those trained to the end, as TPE ranks them), random until
    ten of them do (TPE's start-up); a round's trials are asked before any of them ends, so each one
    asked counts as a poor result until it does (constant liar) and they spread out."""
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind != "tpe":
        raise ValueError(f"sampler {kind!r}: expected 'random' or 'tpe'")

    class BoxTPE(optuna.samplers.TPESampler):
        # Optuna's TPE reads the space off the study's history; here it is the round's box.
        def infer_relative_search_space(self, study, trial):
            distributions = box.distributions().items()
            return {key: distribution for key, distribution in distributions if not distribution.single()}

        def sample_relative(self, study, trial, search_space):
            return super().sample_relative(_InBox(study, box), trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            inside = _InBox(study, box)
            return super().sample_independent(inside, trial, param_name, param_distribution)

    return BoxTPE(seed=seed, multivariate=True, constant_liar=True)


def trial_cost(config: TrainConfig, n_train: int) -> float:
    """A trial's relative training time: its optimizer steps, weighted by layer width. For small
    networks the fixed cost of a step dominates, so the width term only breaks ties."""
    steps = config.epochs * math.ceil(n_train / config.batch_size)
    return steps * (1 + sum(config.hidden_units) / 1000)


def _ranked(scores: Sequence[float], higher_is_better: bool) -> list[int]:
    order = np.argsort(scores, kind="stable")
    return [int(i) for i in (order[::-1] if higher_is_better else order)]


def best_share(scores: Sequence[float], zoom: float, higher_is_better: bool = True) -> list[int]:
    """Indices of the best `zoom` share of `scores` (at least two, or all when fewer), best first."""
    count = min(len(scores), max(2, math.ceil(zoom * len(scores))))
    return _ranked(scores, higher_is_better)[:count]


def promote(scores: Sequence[float], higher_is_better: bool = True) -> list[int]:
    """Indices of the trials successive halving promotes from a rung where they scored `scores`: the best
    1/REDUCTION_FACTOR of them (at least one), best first."""
    return _ranked(scores, higher_is_better)[: max(1, len(scores) // REDUCTION_FACTOR)]


def ended(trials: Iterable[optuna.trial.FrozenTrial]) -> list[tuple[int, float]]:
    """(epochs trained, dev metric after the last epoch) of each finished trial of a sweep (its user attr
    `outcome`, as the sweep stage records it), in the order they ended: what `anytime` reads."""
    ordered = sorted(trials, key=lambda t: t.datetime_complete)
    return [(t.user_attrs["outcome"]["epochs"], t.user_attrs["outcome"]["curve"][-1]) for t in ordered]


def anytime(ended: Iterable[tuple[int, float]], higher_is_better: bool = True) -> list[tuple[int, float]]:
    """A search's anytime curve: for its trials in the order they ended, each (epochs it trained, its dev
    metric after its last epoch; screened and pruned trials too), the point (epochs spent so far, best dev
    metric so far) after each. How a search is compared with another at equal budgets."""
    spent, best, points = 0, None, []
    for epochs, value in ended:
        spent += int(epochs)
        if best is None or (value > best if higher_is_better else value < best):
            best = float(value)
        points.append((spent, best))
    return points


def best_within(curve: Sequence[Sequence[float]], budget: float) -> float | None:
    """The best dev metric of an anytime curve once at most `budget` epochs were spent; None when no
    trial had ended by then."""
    found = None
    for spent, best in curve:
        if spent > budget:
            break
        found = best
    return found


@dataclass
class TrialResult:
    """One trained trial: dev metric per epoch (one per epoch, those before a resume included), whether it
    was pruned (stopped early as hopeless), its satisficing measures (empty when pruned), and how many of
    its epochs a run before this one had trained (`resumed_at`, 0 unless it resumed)."""

    curve: list[float]
    pruned: bool
    measures: dict[str, float] = field(default_factory=dict)
    resumed_at: int = 0

    @property
    def epochs(self) -> int:
        return len(self.curve)

    @property
    def trained(self) -> int:
        """Epochs this run trained: its cost."""
        return len(self.curve) - self.resumed_at

    @property
    def dev_metric(self) -> float:
        return self.curve[-1] if self.curve else float("nan")


def run_trial(
    config: TrainConfig,
    train_xy: tuple[np.ndarray, np.ndarray],
    dev_xy: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    score: Callable[[np.ndarray, np.ndarray], float],
    on_epoch: Callable[[int, float], bool] = lambda epoch, value: False,
    babysit: bool = False,
    higher_is_better: bool = True,
    resume_from: str | Path | None = None,
    trained: Sequence[float] = (),
) -> tuple[Any, TrialResult]:
    """Train `config` on train_xy, scoring dev_xy (x (n, features), y (n,)) with `score(y, predicted)`
    after every epoch. `on_epoch(epoch, value)` returns True to prune (stop now). With `babysit`, the
    learning rate is halved whenever the dev metric has not improved for 3 epochs (the panda's care).

    `resume_from` continues a trial that stopped after `len(trained)` of `config.epochs` epochs (`trained`:
    its dev metric per epoch): a `.weights.h5` file its model saved then (Keras's `save_weights`, which
    holds the optimizer's state and step count too, so a decay schedule goes on where it was). Epochs are
    numbered from the first run's. Returns the model and its TrialResult."""
    import keras

    from components.callbacks import DevMetricWatch, RestoreWeights
    from components.training import train

    if len(trained) >= config.epochs:
        raise ValueError(f"a trial resumed after {len(trained)} epochs has none left of {config.epochs}")
    watch = DevMetricWatch(score, dev_xy, on_epoch, higher_is_better=higher_is_better, trained=trained)
    callbacks: list = [watch]
    if resume_from is not None:
        callbacks.insert(0, RestoreWeights(resume_from))
        config = dataclasses.replace(config, epochs=config.epochs - len(trained))
    elif trained:
        raise ValueError("`trained` epochs need the state they left: pass resume_from")
    if babysit and config.lr_decay == "none":  # a decay schedule already owns the learning rate
        callbacks.append(
            keras.callbacks.ReduceLROnPlateau(
                monitor="dev_metric", mode="max", factor=0.5, patience=3, min_lr=1e-6
            )
        )
    model, _ = train(config, *train_xy, n_classes, callbacks=callbacks)
    return model, TrialResult(curve=watch.curve, pruned=watch.pruned, resumed_at=len(trained))
