"""The basic recipe for machine learning, as a loop: diagnose, turn the principal gap's next knob with a few
trials, keep the change if the dev metric improves while every satisficing bound holds, and again.

High avoidable bias: a bigger model, train longer, a better optimizer, a hyperparameter search. High
variance: L2 regularization, dropout, a hyperparameter search; more data is the user's to get. Data
mismatch: synthesize training data like dev (when the caller can), then collecting such data is the user's.
Dev overfit (a bigger dev set) is the user's. What only the user can do becomes a request, and the loop
works on the largest problem it can act on, or ends when none is left. The loop never reads test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.config import TrainConfig
from components.diagnosis import Diagnosis, Errors, Sizes, diagnose
from components.evaluation import Candidate, select
from components.search_space import DEFAULT_SPACE, SearchSpace, configure, sample


@dataclass(frozen=True)
class Draw:
    """The random draws of trial `index` of `count` in one iteration. `log_uniform` is stratified: each
    trial samples its own equal slice of the exponent range, so even three trials try a weak, a middling
    and a strong value instead of three weak ones by chance (random, never a grid)."""

    rng: np.random.Generator
    index: int = 0
    count: int = 1
    # The sweep's search space (params.yaml sweep.space; None: its default): one range per knob for the
    # sweep and the loop's own draws.
    space: Mapping[str, Mapping[str, Any]] | None = None

    def search_space(self) -> SearchSpace:
        return SearchSpace.from_params(self.space or DEFAULT_SPACE)

    def within(self, name: str) -> Any:
        """A value of knob `name` from the sweep's own definition of it (its range and scale in the
        space, else in the default space), in this trial's slice of its sampling axis."""
        space = self.space if self.space and name in self.space else DEFAULT_SPACE
        [knob] = SearchSpace.from_params({name: space[name]}).parameters
        return knob.at((self.index + self.rng.random()) / self.count)

    def log_uniform(self, low: int | float, high: int | float) -> float:
        """10**r with r uniform in this trial's slice of [low, high]."""
        width = (high - low) / self.count
        return float(10 ** (low + width * (self.index + self.rng.random())))

    def uniform(self, low: float, high: float) -> float:
        """Uniform in this trial's slice of [low, high]."""
        return float(low + (high - low) / self.count * (self.index + self.rng.random()))

    def choice(self, options: list) -> Any:
        return options[int(self.rng.integers(len(options)))]


@dataclass(frozen=True)
class Synthesis:
    """Training data made to look like dev (artificial data synthesis): `strength` scales the target's
    estimated degradations (1: as estimated); `mode` replace swaps each non-target example for its
    synthesized version, add keeps both."""

    strength: float = 1.0
    mode: str = "replace"


@dataclass(frozen=True)
class Setup:
    """What a trial trains: the train config, on the split's training data or on synthesized data."""

    config: TrainConfig
    synthesis: Synthesis | None = None

    def changed(self, changes: Mapping[str, Any]) -> Setup:
        """This setup with `changes` (TrainConfig fields, or `synthesis`) applied."""
        fields = {k: v for k, v in changes.items() if k != "synthesis"}
        return Setup(dataclasses.replace(self.config, **fields), changes.get("synthesis", self.synthesis))


# Changes: (config, draw) -> the TrainConfig fields (or `synthesis`) to change in one trial.
Change = Callable[[TrainConfig, Draw], dict[str, Any]]


def _bigger(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    # 2x to 16x wider, on a log scale: the trials of one iteration span modest to large.
    factor = draw.log_uniform(np.log10(2), np.log10(16))
    units = tuple(round(units * factor) for units in config.hidden_units)
    if draw.index % 2:  # every other trial deeper as well as wider: both shapes in each iteration
        units = (*units, units[-1])
    return {"hidden_units": units}


def _longer(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    return {"epochs": config.epochs * draw.choice([2, 3])}


def _optimizer(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    return {
        "optimizer": draw.choice(["adam", "rmsprop", "sgd"]),
        "learning_rate": draw.within("learning_rate"),
    }


def _l2(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    # More regularization, as variance asks: from none, 1e-3 to 1; else from the current strength up to
    # a hundred times it (weaker L2 cannot close a variance gap; a kept trial is the next start).
    low, high = (-3, 0) if not config.l2 else (np.log10(config.l2), np.log10(config.l2) + 2)
    return {"l2": min(draw.log_uniform(low, high), 1.0)}


def _dropout(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    return {"dropout": draw.uniform(0.1, 0.6)}


def _search(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    # The sweep's space: log-scale learning rate, 1 - beta on a log scale, units, batch, layers.
    [values] = sample(draw.search_space(), 1, int(draw.rng.integers(2**31)))
    changed = configure(config, values)
    # Field by field, not asdict: that would hand the nested configs (cnn, tabular, ...) back as dicts.
    fields = (f.name for f in dataclasses.fields(changed))
    return {k: getattr(changed, k) for k in fields if getattr(config, k) != getattr(changed, k)}


def _synthesize(config: TrainConfig, draw: Draw) -> dict[str, Any]:
    # Weak to strong around the estimate; every other trial keeps the original examples beside them.
    return {"synthesis": Synthesis(round(draw.uniform(0.5, 1.5), 3), "add" if draw.index % 2 else "replace")}


SYNTHESIZE = "synthesize training data like dev"


@dataclass(frozen=True)
class Action:
    """A knob the loop turns itself: its name (in the course's words) and how one trial changes it."""

    name: str
    change: Change


@dataclass(frozen=True)
class Request:
    """A knob only the user can turn; the loop stops and says what to do."""

    name: str
    what_to_do: str


ACTIONS: dict[str, tuple[Action | Request, ...]] = {
    "avoidable_bias": (
        Action("train a bigger model", _bigger),
        Action("train longer", _longer),
        Action("use a better optimization algorithm", _optimizer),
        Action("search the hyperparameters", _search),
    ),
    "variance": (
        Action("add L2 regularization", _l2),
        Action("add dropout", _dropout),
        Action("search the hyperparameters", _search),
        Request("get more training data", "collect more training data: regularization did not close the gap"),
    ),
    "data_mismatch": (
        Action(SYNTHESIZE, _synthesize),
        Request(
            "address data mismatch",
            "do error analysis of train vs dev (how do dev examples differ?), then collect training data "
            "like the dev/test data, or synthesize it (the synthesize stage; images or a transform of yours)",
        ),
    ),
    "dev_overfit": (Request("get a bigger dev set", "get a bigger dev set: it has been tuned to"),),
}


def next_knob(gap: str, failed: Collection[str]) -> Action | Request:
    """The first knob of `gap` that has not failed (nor is unavailable: the caller puts those in `failed`
    too); a knob that helped is turned again. The gap's request to the user once every action has failed."""
    knobs = ACTIONS[gap]
    for knob in knobs:
        if isinstance(knob, Request) or knob.name not in failed:
            return knob
    return Request(f"every knob for {gap} tried", f"no knob left for {gap}; review the diagnosis by hand")


@dataclass(frozen=True)
class Outcome:
    """What a trained model scores: errors on train, train_dev and dev (never test), the dev value of the
    optimizing metric, and the satisficing measures."""

    errors: Errors
    dev_metric: float
    measures: dict[str, float] = field(default_factory=dict)


@dataclass
class Iteration:
    gap: str
    action: str
    params: dict[str, Any]
    dev_metric_before: float
    dev_metric_after: float
    kept: bool
    gap_before: float
    gap_after: float | None
    errors_after: dict[str, float | None]
    trials: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RecipeResult:
    """iterations: the decision log; stopped_because: why the loop ended; setup/outcome: the kept model's;
    requests: {gap: what the user has to do} for the problems the loop cannot act on."""

    iterations: list[Iteration]
    stopped_because: str
    setup: Setup
    outcome: Outcome
    diagnosis: Diagnosis
    requests: dict[str, str] = field(default_factory=dict)


def basic_recipe(
    start: Setup,
    baseline: Outcome,
    evaluate: Callable[[Setup], Outcome],
    human_level_error: float,
    sizes: Sizes,
    bounds: Mapping[str, float] | None = None,
    higher_is_better: bool = True,
    tolerance: float = 0.02,
    max_iterations: int = 3,
    trials: int = 4,
    seed: int = 0,
    on_trial: Callable[[int, str, str, dict[str, Any], Outcome], None] | None = None,
    unavailable: Collection[str] = (),
    space: Mapping[str, Mapping[str, Any]] | None = None,
) -> RecipeResult:
    """Run the loop from `start`, whose model scores `baseline`. `evaluate(setup)` trains and measures a
    model; `on_trial(iteration, gap, action, changes, outcome)` is told of every trial (for logging);
    `unavailable` names actions the caller cannot take (e.g. synthesis without images or a transform);
    `space` is the sweep's search space (params.yaml sweep.space), which the loop's draws of a knob share.

    Each iteration acts on the largest problem it has a knob for; a problem only the user can fix (data
    mismatch, dev overfit, more data) becomes a request. Stops when no problem remains, when only such
    problems remain, when `max_iterations` are spent, or after two iterations without improvement."""
    rng = np.random.default_rng(seed)
    bounds = dict(bounds or {})
    current, outcome = start, baseline
    log: list[Iteration] = []
    failed: set[str] = set(unavailable)
    without_improvement = 0
    seen = Sizes(train=sizes.train, train_dev=sizes.train_dev, dev=sizes.dev)  # never test

    def diagnosis_of(result: Outcome) -> Diagnosis:
        return diagnose(result.errors, human_level_error, tolerance, seen)

    found = diagnosis_of(outcome)
    stopped = f"budget spent ({max_iterations} iterations)"
    requests: dict[str, str] = {}
    for iteration in range(1, max_iterations + 1):
        # The largest problem the loop can act on; the others it asks the user to act on.
        knobs = {gap: next_knob(gap, failed) for gap in found.problems}
        requests.update({gap: k.what_to_do for gap, k in knobs.items() if isinstance(k, Request)})
        actionable = [gap for gap, k in knobs.items() if isinstance(k, Action)]
        if not found.problems:
            stopped = "no problem remains"
            break
        if not actionable:
            stopped = "only problems that need you remain: " + ", ".join(requests)
            break
        gap = actionable[0]
        knob = knobs[gap]
        entries = {"incumbent": ({}, current, outcome)}
        for trial in range(trials):
            changes = knob.change(current.config, Draw(rng, trial, trials, space))
            trial_setup = current.changed(changes)
            entries[f"trial {trial}"] = (changes, trial_setup, evaluate(trial_setup))
            if on_trial:
                on_trial(iteration, gap, knob.name, changes, entries[f"trial {trial}"][2])
        candidates = [Candidate(name, r.dev_metric, r.measures) for name, (_, _, r) in entries.items()]
        chosen = select(candidates, bounds, higher_is_better).chosen
        better = chosen is not None and chosen.name != "incumbent"
        changes, best_setup, best = entries[chosen.name if better else "incumbent"]
        tried_here = [entry for name, entry in entries.items() if name != "incumbent"]
        after = diagnosis_of(best)
        log.append(
            Iteration(
                gap=gap,
                action=knob.name,
                params=_plain(changes),
                dev_metric_before=outcome.dev_metric,
                dev_metric_after=best.dev_metric,
                kept=better,
                gap_before=float(found.gaps[gap]),
                gap_after=after.gaps[gap],
                errors_after=best.errors.to_dict(),
                trials=[
                    {"params": _plain(c), "dev_metric": r.dev_metric, "errors": r.errors.to_dict()}
                    | r.measures
                    for c, _, r in tried_here
                ],
            )
        )
        if better:
            current, outcome, found, without_improvement = best_setup, best, after, 0
        else:
            failed.add(knob.name)
            without_improvement += 1
            if without_improvement == 2:
                stopped = "two iterations without improvement"
                break
    else:
        if found.principal == "none":
            stopped = "no problem remains"
    return RecipeResult(log, stopped, current, outcome, found, requests)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return dataclasses.asdict(value)
        return list(value) if isinstance(value, tuple) else value

    return {k: plain(v) for k, v in values.items()}
